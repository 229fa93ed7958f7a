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

static void step(struct hsd_sampler *s, float *x, const float *model_out) {
    const int i = s->step;
    const size_t n = s->n_latent;
    const float a_t = s->alpha_prod[i], a_prev = s->alpha_prod_prev[i];
    const float b_t = 1.0f - a_t;
    const float sa = sqrtf(a_t), sb = sqrtf(b_t);
    // _get_variance and std_dev_t = eta * variance ** 0.5 with eta = 0
    // (kept so a NaN would propagate as in diffusers).
    const float b_prev = 1.0f - a_prev;
    const float variance = (b_prev / b_t) * (1.0f - a_t / a_prev);
    const float std_dev = 0.0f * sqrtf(variance);
    const float dir_coef = sqrtf(1.0f - a_prev - std_dev * std_dev);
    const float sp = sqrtf(a_prev);
    const int v_pred = s->sched.prediction_type == HSD_PRED_V;
    const int clip = s->sched.clip_sample != 0;  // DDIMScheduler default: True
    const float range = s->sched.clip_sample_range;
    for (size_t e = 0; e < n; e++) {
        const float xs = x[e], mo = model_out[e];
        float x0, eps;
        if (v_pred) {
            x0 = sa * xs - sb * mo;
            eps = sa * mo + sb * xs;
        } else {
            x0 = (xs - sb * mo) / sa;
            eps = mo;
        }
        if (clip) x0 = fminf(fmaxf(x0, -range), range);
        const float dir = dir_coef * eps;
        x[e] = sp * x0 + dir;
    }
}

const struct hsd_sampler_ops hsd_sampler_ops_ddim = {
    .name = "ddim",
    .default_spacing = HSD_SPACING_LEADING,
    .history_slots = 0,
    .scratch_slots = 0,
    .scales_input = 0,
    .setup = setup,
    .live_slots = hsd_sampler_no_history_live_slots,
    .progress_ok = hsd_sampler_no_history_progress_ok,
    .step = step,
};
