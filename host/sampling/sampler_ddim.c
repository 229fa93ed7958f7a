// DDIM with eta = 0: diffusers scheduling_ddim.py DDIMScheduler
// (set_timesteps, step; no thresholding). alphas_cumprod and every
// coefficient are float32 tensors there, so the arithmetic is float.
#include <math.h>

#include "sampling/sampler_internal.h"

// No FMA contraction: diffusers' float32 ops round one by one (GCC: off in
// ISO C mode, which the build uses; clang contracts unless told).
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

static enum hsd_status setup(struct hsd_sampler *s, const float *ac) {
    const int t_train = s->sched.num_train_timesteps;
    const int n = s->n_steps;
    long long ts[HSD_SAMPLER_MAX_STEPS + 2];
    double tmp[HSD_SAMPLER_MAX_STEPS + 2];
    int count = n;
    switch (hsd_sampler_spacing(s, HSD_SPACING_LEADING)) {
    case HSD_SPACING_LINSPACE:
        // np.linspace(0, T - 1, N).round()[::-1]
        hsd_np_linspace(tmp, 0.0, (double)(t_train - 1), n);
        for (int i = 0; i < n; i++) ts[i] = (long long)hsd_np_round(tmp[n - 1 - i]);
        break;
    case HSD_SPACING_LEADING: {
        // (np.arange(0, N) * (T // N)).round()[::-1] + steps_offset
        const long long ratio = t_train / n;
        for (int i = 0; i < n; i++) ts[i] = (long long)(n - 1 - i) * ratio + s->sched.steps_offset;
        break;
    }
    case HSD_SPACING_TRAILING:
        // np.round(np.arange(T, 0, -T / N)).astype(int64) - 1: for some N
        // numpy's arange gives N + 1 values, which diffusers then runs.
        count = hsd_np_arange(tmp, HSD_SAMPLER_MAX_STEPS + 1, (double)t_train, 0.0,
                              -((double)t_train / n));
        if (count < 1) return hsd_fail(HSD_ERR_INTERNAL, "ddim: empty trailing schedule");
        for (int i = 0; i < count; i++) ts[i] = (long long)hsd_np_round(tmp[i]) - 1;
        break;
    default:
        return hsd_fail(HSD_ERR_INTERNAL, "ddim: bad spacing");
    }
    // final_alpha_cumprod: set_alpha_to_one defaults to True in DDIMScheduler.
    const int one = s->sched.set_alpha_to_one != 0;
    const float final_ac = one ? 1.0f : ac[0];
    const long long ratio = t_train / n;  // step(): prev = t - T // num_inference_steps
    s->n_timesteps = count;
    for (int i = 0; i < count; i++) {
        enum hsd_status st = hsd_sampler_check_index(s, ts[i]);
        if (st != HSD_OK) return st;
        const long long prev = ts[i] - ratio;
        s->timesteps[i] = (float)ts[i];
        s->alpha_prod[i] = ac[ts[i]];
        s->alpha_prod_prev[i] = prev >= 0 ? ac[prev] : final_ac;
    }
    return HSD_OK;
}

static void plan(const struct hsd_sampler *s, struct hsd_step_row *row) {
    const int i = s->step;
    const float a_t = s->alpha_prod[i], a_prev = s->alpha_prod_prev[i];
    const float b_t = 1.0f - a_t;
    // _get_variance and std_dev_t = eta * variance ** 0.5 with eta = 0
    // (kept so a NaN would propagate as in diffusers).
    const float b_prev = 1.0f - a_prev;
    const float variance = (b_prev / b_t) * (1.0f - a_t / a_prev);
    const float std_dev = 0.0f * sqrtf(variance);
    row->k.ddim.sa = sqrtf(a_t);
    row->k.ddim.sb = sqrtf(b_t);
    row->k.ddim.dir = sqrtf(1.0f - a_prev - std_dev * std_dev);
    row->k.ddim.sp = sqrtf(a_prev);
    row->k.ddim.range = s->sched.clip_sample_range;
    if (s->sched.clip_sample != 0) row->flags |= HSD_STEP_CLIP;  // DDIMScheduler default: True
}

const struct hsd_sampler_ops hsd_sampler_ops_ddim = {
    .name = "ddim",
    .default_spacing = HSD_SPACING_LEADING,
    .history_slots = 0,
    .scratch_slots = 0,
    .scales_input = 0,
    .ancestral = 0,
    .setup = setup,
    .live_slots = hsd_sampler_no_history_live_slots,
    .progress_ok = hsd_sampler_no_history_progress_ok,
    .plan = plan,
    .advance = NULL,
};
