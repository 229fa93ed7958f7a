// Euler: diffusers scheduling_euler_discrete.py EulerDiscreteScheduler
// (interpolation_type "linear", timestep_type "discrete", s_churn 0 so
// gamma = 0 and sigma_hat = sigma). The timestep/sigma tables are shared
// with Euler ancestral (sampler_euler_a.c), whose set_timesteps is the same.
#include <math.h>
#include <stdlib.h>

#include "sampling/sampler_internal.h"

// No FMA contraction: diffusers' float32 ops round one by one (GCC: off in
// ISO C mode, which the build uses; clang contracts unless told).
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

enum hsd_status hsd_sampler_euler_setup(struct hsd_sampler *s, const float *ac) {
    const int t_train = s->sched.num_train_timesteps;
    const int n = s->n_steps;
    double tmp[HSD_SAMPLER_MAX_STEPS + 2];
    int count = n;
    switch (hsd_sampler_spacing(s, HSD_SPACING_LINSPACE)) {
    case HSD_SPACING_LINSPACE:
        // np.linspace(0, T - 1, N, dtype=np.float32)[::-1]: float64 maths,
        // then rounded to float32 (non-integer timesteps).
        hsd_np_linspace(tmp, 0.0, (double)(t_train - 1), n);
        for (int i = 0; i < n; i++) s->timesteps[i] = (float)tmp[n - 1 - i];
        break;
    case HSD_SPACING_LEADING: {
        // (np.arange(0, N) * (T // N)).round()[::-1].astype(np.float32)
        // + steps_offset (float32 + Python int stays float32).
        const long long ratio = t_train / n;
        for (int i = 0; i < n; i++) {
            s->timesteps[i] = (float)((long long)(n - 1 - i) * ratio) + (float)s->sched.steps_offset;
        }
        break;
    }
    case HSD_SPACING_TRAILING:
        // np.arange(T, 0, -T / N).round().astype(np.float32) - 1
        count = hsd_np_arange(tmp, HSD_SAMPLER_MAX_STEPS + 1, (double)t_train, 0.0,
                              -((double)t_train / n));
        if (count < 1) return hsd_fail(HSD_ERR_INTERNAL, "euler: empty trailing schedule");
        for (int i = 0; i < count; i++) s->timesteps[i] = (float)hsd_np_round(tmp[i]) - 1.0f;
        break;
    default:
        return hsd_fail(HSD_ERR_INTERNAL, "euler: bad spacing");
    }
    s->n_timesteps = count;
    // sigmas = np.interp(timesteps, np.arange(T), float32 table) -> float64,
    // then np.concatenate([sigmas, [0.0]]).astype(np.float32).
    float *table = malloc((size_t)t_train * sizeof *table);
    if (!table) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    for (int k = 0; k < t_train; k++) table[k] = hsd_sigma_from_alpha_cumprod(ac[k]);
    for (int i = 0; i < count; i++) {
        s->sigmas[i] = (double)(float)hsd_np_interp_grid((double)s->timesteps[i], table, t_train);
    }
    free(table);
    s->sigmas[count] = 0.0;
    return hsd_sampler_check_first_unique(s);
}

// pred_original_sample for v_prediction (both Euler schedulers) needs
// -sigma / (sigma**2 + 1) ** 0.5 and sigma**2 + 1.
void hsd_sampler_euler_plan_sigma(struct hsd_step_row *row, float sigma) {
    row->k.euler.s2p1 = sigma * sigma + 1.0f;
    row->k.euler.c_out = -sigma / sqrtf(row->k.euler.s2p1);
}

static void plan(const struct hsd_sampler *s, struct hsd_step_row *row) {
    const int i = s->step;
    const float sigma = (float)s->sigmas[i];
    const float sigma_hat = sigma * (0.0f + 1.0f);  // gamma = 0
    row->k.euler.sigma = sigma_hat;
    row->k.euler.dt = (float)s->sigmas[i + 1] - sigma_hat;
    hsd_sampler_euler_plan_sigma(row, sigma);
}

const struct hsd_sampler_ops hsd_sampler_ops_euler = {
    .name = "euler",
    .default_spacing = HSD_SPACING_LINSPACE,
    .history_slots = 0,
    .scratch_slots = 0,
    .scales_input = 1,
    .ancestral = 0,
    .setup = hsd_sampler_euler_setup,
    .live_slots = hsd_sampler_no_history_live_slots,
    .progress_ok = hsd_sampler_no_history_progress_ok,
    .plan = plan,
    .advance = NULL,
};
