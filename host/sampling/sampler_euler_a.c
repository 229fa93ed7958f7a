// Euler ancestral: diffusers scheduling_euler_ancestral_discrete.py
// EulerAncestralDiscreteScheduler. set_timesteps is Euler's (shared
// setup); each step draws randn_tensor(model_output.shape, generator) from
// the sampler's copy of the torch generator, the one that drew the initial
// latent, as StableDiffusionPipeline passes one generator to both
// (sampler.c draws it into scratch slot 0, the noise the step op reads).
#include <math.h>

#include "sampling/sampler_internal.h"

// No FMA contraction: diffusers' float32 ops round one by one (GCC: off in
// ISO C mode, which the build uses; clang contracts unless told).
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

static void plan(const struct hsd_sampler *s, struct hsd_step_row *row) {
    const int i = s->step;
    const float sigma = (float)s->sigmas[i];
    const float sigma_from = sigma, sigma_to = (float)s->sigmas[i + 1];
    // sigma_up = (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5
    const float to2 = sigma_to * sigma_to, from2 = sigma_from * sigma_from;
    const float sigma_up = sqrtf(to2 * (from2 - to2) / from2);
    const float sigma_down = sqrtf(to2 - sigma_up * sigma_up);
    row->k.euler.sigma = sigma;
    row->k.euler.dt = sigma_down - sigma;
    row->k.euler.sigma_up = sigma_up;
    hsd_sampler_euler_plan_sigma(row, sigma);
}

const struct hsd_sampler_ops hsd_sampler_ops_euler_a = {
    .name = "euler-a",
    .default_spacing = HSD_SPACING_LINSPACE,
    .history_slots = 0,
    .scratch_slots = 1,
    .scales_input = 1,
    .ancestral = 1,
    .setup = hsd_sampler_euler_setup,
    .live_slots = hsd_sampler_no_history_live_slots,
    .progress_ok = hsd_sampler_no_history_progress_ok,
    .plan = plan,
    .advance = NULL,
};
