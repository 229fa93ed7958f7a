// DPM-Solver++ 2M: diffusers scheduling_dpmsolver_multistep.py
// DPMSolverMultistepScheduler with algorithm_type "dpmsolver++",
// solver_order 2, solver_type "midpoint", lower_order_final True,
// final_sigmas_type "zero" (its default, and what from_config of an SD
// config gets), no karras/lu/exponential sigmas.
//
// Scalars are 0-dim float32 tensors in diffusers (self.sigmas is float32),
// so the coefficients are computed in float with torch's operation order;
// log/exp may differ from torch's SLEEF versions by an ulp.
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
    // lambda_min_clipped = -inf: clipped_idx 0, last_timestep = T.
    const int last = t_train;
    long long ts[HSD_SAMPLER_MAX_STEPS + 2];
    int count = 0;
    double tmp[HSD_SAMPLER_MAX_STEPS + 2];
    switch (hsd_sampler_spacing(s, HSD_SPACING_LINSPACE)) {
    case HSD_SPACING_LINSPACE:
        // np.linspace(0, last - 1, N + 1).round()[::-1][:-1]
        hsd_np_linspace(tmp, 0.0, (double)(last - 1), n + 1);
        for (int i = 0; i < n; i++) ts[i] = (long long)hsd_np_round(tmp[n - i]);
        count = n;
        break;
    case HSD_SPACING_LEADING: {
        // (np.arange(0, N + 1) * (last // (N + 1))).round()[::-1][:-1] + steps_offset
        const long long ratio = last / (n + 1);
        for (int i = 0; i < n; i++) ts[i] = (long long)(n - i) * ratio + s->sched.steps_offset;
        count = n;
        break;
    }
    case HSD_SPACING_TRAILING: {
        // np.arange(last, 0, -T / N).round().astype(int64) - 1
        const double ratio = (double)t_train / n;
        count = hsd_np_arange(tmp, HSD_SAMPLER_MAX_STEPS + 1, (double)last, 0.0, -ratio);
        if (count < 1) return hsd_fail(HSD_ERR_INTERNAL, "dpmpp-2m: empty trailing schedule");
        for (int i = 0; i < count; i++) ts[i] = (long long)hsd_np_round(tmp[i]) - 1;
        break;
    }
    default:
        return hsd_fail(HSD_ERR_INTERNAL, "dpmpp-2m: bad spacing");
    }
    s->n_timesteps = count;
    for (int i = 0; i < count; i++) {
        enum hsd_status st = hsd_sampler_check_index(s, ts[i]);
        if (st != HSD_OK) return st;
        s->timesteps[i] = (float)ts[i];
        // np.interp at integer timesteps returns the table value; the
        // table is float32 (torch), the result cast back to float32.
        s->sigmas[i] = (double)hsd_sigma_from_alpha_cumprod(ac[ts[i]]);
    }
    s->sigmas[count] = 0.0;  // final_sigmas_type "zero"
    return hsd_sampler_check_first_unique(s);
}

// _sigma_to_alpha_sigma_t: alpha_t = 1 / ((sigma**2 + 1) ** 0.5),
// sigma_t = sigma * alpha_t; and lambda = log(alpha_t) - log(sigma_t).
struct coef {
    float alpha, sigma, lambda;
};

static struct coef coef_of(double sigma_table) {
    struct coef c;
    const float sigma = (float)sigma_table;
    c.alpha = 1.0f / sqrtf(sigma * sigma + 1.0f);
    c.sigma = sigma * c.alpha;
    c.lambda = logf(c.alpha) - logf(c.sigma);  // sigma 0 gives +inf, as in torch
    return c;
}

static void plan(const struct hsd_sampler *s, struct hsd_step_row *row) {
    const int i = s->step;
    const struct coef s0 = coef_of(s->sigmas[i]);
    const struct coef t = coef_of(s->sigmas[i + 1]);
    // lower_order_final: the last step is first order (final sigma 0).
    const int first_order = s->lower_order_nums < 1 || i == s->n_timesteps - 1;

    // dpm_solver_first_order_update / multistep_dpm_solver_second_order_update
    // (dpmsolver++, midpoint); the element maths is step_math.h's.
    const float h = t.lambda - s0.lambda;
    row->k.dpm.alpha = s0.alpha;
    row->k.dpm.sigma = s0.sigma;
    row->k.dpm.a = t.sigma / s0.sigma;
    row->k.dpm.b = t.alpha * (expf(-h) - 1.0f);
    if (first_order) {
        row->flags |= HSD_STEP_FIRST_ORDER;
    } else {
        const struct coef s1 = coef_of(s->sigmas[i - 1]);
        const float h_0 = s0.lambda - s1.lambda;
        const float r0 = h_0 / h;
        row->k.dpm.c1 = 1.0f / r0;  // D1 = (1.0 / r0) * (m0 - m1)
        row->k.dpm.c = 0.5f * row->k.dpm.b;
    }
}

static void advance(struct hsd_sampler *s) {
    if (s->lower_order_nums < 2) s->lower_order_nums++;
}

static int live_slots(const struct hsd_sampler *s) { return s->lower_order_nums > 0 ? 1 : 0; }

static int progress_ok(const struct hsd_sampler *s) {
    const int want = s->step < 2 ? s->step : 2;
    return s->lower_order_nums == want && s->counter == 0 && s->n_ets == 0;
}

const struct hsd_sampler_ops hsd_sampler_ops_dpmpp_2m = {
    .name = "dpmpp-2m",
    .default_spacing = HSD_SPACING_LINSPACE,
    .history_slots = 1,
    .scratch_slots = 0,
    .scales_input = 0,
    .ancestral = 0,
    .setup = setup,
    .live_slots = live_slots,
    .progress_ok = progress_ok,
    .plan = plan,
    .advance = advance,
};
