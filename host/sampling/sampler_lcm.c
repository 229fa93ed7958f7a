// LCM: diffusers scheduling_lcm.py LCMScheduler (latent consistency
// models, LCM-LoRA). set_timesteps takes N of the distillation schedule's
// original_inference_steps timesteps (k - 1, 2k - 1, ..., with k =
// num_train_timesteps // original_inference_steps), evenly spaced by index
// from the last; each step maps the model output to the consistency
// function's denoised sample with the boundary-condition scalings c_skip /
// c_out and, except on the last step, re-noises it to the next timestep
// with randn_tensor(model_output.shape, generator) from the request's
// generator (drawn into scratch slot 0 by sampler.c, like Euler a's noise).
#include <math.h>

#include "sampling/sampler_internal.h"

// No FMA contraction: diffusers' float32 ops round one by one (GCC: off in
// ISO C mode, which the build uses; clang contracts unless told).
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

static enum hsd_status setup(struct hsd_sampler *s, const float *alphas_cumprod) {
    const struct hsd_noise_schedule *c = &s->sched;
    const int n = s->n_steps, orig = c->original_inference_steps;
    if (c->clip_sample == 1)
        return hsd_fail(HSD_ERR_UNSUPPORTED, "lcm: clip_sample is not supported");
    // strength 1: lcm_origin_timesteps = arange(1, orig + 1) * k - 1.
    const int k = c->num_train_timesteps / orig;
    if (orig / n < 1 || n > orig)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "lcm: %d steps exceed original_inference_steps %d (diffusers raises too)",
                        n, orig);
    for (int i = 0; i < n; i++) {
        // np.floor(np.linspace(0, orig, num=n, endpoint=False)): i * (orig / n).
        const long long idx = (long long)floor((double)i * ((double)orig / (double)n));
        const long long t = (long long)(orig - idx) * k - 1;  // reversed origin schedule
        enum hsd_status st = hsd_sampler_check_index(s, t);
        if (st) return st;
        s->timesteps[i] = (float)t;
        s->alpha_prod[i] = alphas_cumprod[t];
    }
    // prev_timestep: the next timestep, or the same one on the last step
    // (whose re-noising is skipped).
    for (int i = 0; i < n; i++)
        s->alpha_prod_prev[i] = i + 1 < n ? s->alpha_prod[i + 1] : s->alpha_prod[i];
    s->n_timesteps = n;
    return HSD_OK;
}

static void plan(const struct hsd_sampler *s, struct hsd_step_row *row) {
    const int i = s->step;
    const float a = s->alpha_prod[i], ap = s->alpha_prod_prev[i];
    row->k.lcm.sa = sqrtf(a);
    row->k.lcm.sb = sqrtf(1.0f - a);
    row->k.lcm.sp = sqrtf(ap);
    row->k.lcm.sbp = sqrtf(1.0f - ap);
    // get_scalings_for_boundary_condition_discrete: timestep (a long
    // tensor) * timestep_scaling in float32, sigma_data = 0.5.
    const float scaled = s->timesteps[i] * s->sched.timestep_scaling;
    const float d = scaled * scaled + 0.25f;
    row->k.lcm.c_skip = 0.25f / d;
    row->k.lcm.c_out = scaled / sqrtf(d);
    if (i != s->n_steps - 1) row->flags |= HSD_STEP_NOISE;
}

const struct hsd_sampler_ops hsd_sampler_ops_lcm = {
    .name = "lcm",
    .default_spacing = HSD_SPACING_LEADING,  // unused by its set_timesteps
    .history_slots = 0,
    .scratch_slots = 1,
    .scales_input = 0,
    .ancestral = 1,
    .setup = setup,
    .live_slots = hsd_sampler_no_history_live_slots,
    .progress_ok = hsd_sampler_no_history_progress_ok,
    .plan = plan,
    .advance = NULL,
};
