// PNDM with skip_prk_steps (PLMS only): diffusers scheduling_pndm.py
// PNDMScheduler.set_timesteps / step_plms / _get_prev_sample.
//
// The schedule has N + 1 model calls: the second-to-last training timestep
// of the ascending list is repeated, and the PLMS warm-up uses it: call 0
// steps t0 -> t0 - r with the plain model output, call 1 (same U-Net
// timestep t0 - r) restarts from call 0's input with the mean of both
// outputs, steps t0 -> t0 - r again; calls 2, 3 use 2nd/3rd-order
// Adams-Bashforth, later ones 4th order (r = T // N).
//
// History slots: ets (model outputs, oldest first) in slots 0..n_ets-1;
// between calls 0 and 1 the cur_sample of call 0 sits in slot n_ets (= 1),
// so the live history is always one contiguous run of slots.
#include <math.h>

#include "sampling/sampler_internal.h"

// No FMA contraction: diffusers' float32 ops round one by one (GCC: off in
// ISO C mode, which the build uses; clang contracts unless told).
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

static enum hsd_status setup(struct hsd_sampler *s, const float *ac) {
    if (s->sched.skip_prk_steps != 1) {
        return hsd_fail(HSD_ERR_UNSUPPORTED,
                        "pndm: only skip_prk_steps = true (PLMS, as in the SD scheduler "
                        "configs) is implemented; this config %s",
                        s->sched.skip_prk_steps == 0 ? "sets it false" : "leaves it at false");
    }
    const int t_train = s->sched.num_train_timesteps;
    const int n = s->n_steps;
    long long asc[HSD_SAMPLER_MAX_STEPS + 2];  // self._timesteps, ascending
    double tmp[HSD_SAMPLER_MAX_STEPS + 2];
    int m = n;
    switch (hsd_sampler_spacing(s, HSD_SPACING_LEADING)) {
    case HSD_SPACING_LINSPACE:
        hsd_np_linspace(tmp, 0.0, (double)(t_train - 1), n);
        for (int i = 0; i < n; i++) asc[i] = (long long)hsd_np_round(tmp[i]);
        break;
    case HSD_SPACING_LEADING: {
        const long long ratio = t_train / n;
        for (int i = 0; i < n; i++) asc[i] = (long long)i * ratio + s->sched.steps_offset;
        break;
    }
    case HSD_SPACING_TRAILING:
        // np.round(np.arange(T, 0, -T / N))[::-1].astype(int64) - 1
        m = hsd_np_arange(tmp, HSD_SAMPLER_MAX_STEPS + 1, (double)t_train, 0.0,
                          -((double)t_train / n));
        if (m < 1) return hsd_fail(HSD_ERR_INTERNAL, "pndm: empty trailing schedule");
        for (int i = 0; i < m; i++) asc[i] = (long long)hsd_np_round(tmp[m - 1 - i]) - 1;
        break;
    default:
        return hsd_fail(HSD_ERR_INTERNAL, "pndm: bad spacing");
    }
    // plms_timesteps = concat(_t[:-1], _t[-2:-1], _t[-1:])[::-1]
    long long plms[HSD_SAMPLER_MAX_STEPS + 2];
    int count = 0;
    for (int i = 0; i < m - 1; i++) plms[count++] = asc[i];
    if (m >= 2) plms[count++] = asc[m - 2];
    plms[count++] = asc[m - 1];
    for (int i = 0; i < count / 2; i++) {
        long long t = plms[i];
        plms[i] = plms[count - 1 - i];
        plms[count - 1 - i] = t;
    }
    const float final_ac = s->sched.set_alpha_to_one == 1 ? 1.0f : ac[0];  // default False
    const long long ratio = t_train / n;
    s->n_timesteps = count;
    for (int c = 0; c < count; c++) {
        // step_plms: counter 1 steps from t + r to t (the repeated timestep).
        long long t = plms[c], prev = plms[c] - ratio;
        if (c == 1) {
            prev = plms[c];
            t = plms[c] + ratio;
        }
        enum hsd_status st = hsd_sampler_check_index(s, plms[c]);
        if (st == HSD_OK) st = hsd_sampler_check_index(s, t);
        if (st != HSD_OK) return st;
        s->timesteps[c] = (float)plms[c];
        s->alpha_prod[c] = ac[t];
        s->alpha_prod_prev[c] = prev >= 0 ? ac[prev] : final_ac;
    }
    return HSD_OK;
}

static void plan(const struct hsd_sampler *s, struct hsd_step_row *row) {
    // self.ets = self.ets[-3:]; self.ets.append(model_output), except on
    // call 1 (which reuses ets[-1]); step_math.h does it per element.
    const int c = s->counter;
    row->pndm_counter = c;
    row->pndm_shift = c != 1 && s->n_ets == 4;
    row->pndm_n_ets = c == 1 ? s->n_ets : (row->pndm_shift ? 4 : s->n_ets + 1);
    // _get_prev_sample coefficients (float32 0-dim tensors in diffusers).
    const float a_t = s->alpha_prod[c], a_prev = s->alpha_prod_prev[c];
    const float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
    row->k.pndm.sample_coeff = sqrtf(a_prev / a_t);
    row->k.pndm.denom = a_t * sqrtf(b_prev) + sqrtf(a_t * b_t * a_prev);
    row->k.pndm.diff = a_prev - a_t;
    row->k.pndm.sa = sqrtf(a_t);
    row->k.pndm.sb = sqrtf(b_t);
}

static void advance(struct hsd_sampler *s) {
    if (s->counter != 1) s->n_ets = s->n_ets == 4 ? 4 : s->n_ets + 1;
    s->counter++;
}

static int live_slots(const struct hsd_sampler *s) {
    return s->n_ets + (s->counter == 1 ? 1 : 0);
}

static int progress_ok(const struct hsd_sampler *s) {
    // ets after `step` calls: call 0 keeps one, call 1 none, later calls
    // one each up to four.
    const int c = s->step;
    const int want = c <= 2 ? (c > 0) : (c - 1 < 4 ? c - 1 : 4);
    return s->counter == c && s->n_ets == want && s->lower_order_nums == 0;
}

const struct hsd_sampler_ops hsd_sampler_ops_pndm = {
    .name = "pndm",
    .default_spacing = HSD_SPACING_LEADING,
    .history_slots = 4,
    .scratch_slots = 0,
    .scales_input = 0,
    .ancestral = 0,
    .setup = setup,
    .live_slots = live_slots,
    .progress_ok = progress_ok,
    .plan = plan,
    .advance = advance,
};
