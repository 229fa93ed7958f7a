// Samplers (diffusers schedulers) for one sample's latent, as plain data
// that can be serialized: the cloud runs steps 0..k-1, ships the state, the
// edge runs k..N-1 with the same object (DESIGN.md §3). Each kind produces
// the timesteps of diffusers' `from_config` on the model's
// scheduler_config.json and, given the same model outputs, the same
// trajectory.
#ifndef HSD_SAMPLING_SAMPLER_H
#define HSD_SAMPLING_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "sampling/torch_rng.h"

enum hsd_sampler_kind {
    HSD_SAMPLER_DPMPP_2M,   // DPMSolverMultistepScheduler (dpmsolver++, order 2, lower_order_final)
    HSD_SAMPLER_DDIM,       // DDIMScheduler (eta 0)
    HSD_SAMPLER_EULER,      // EulerDiscreteScheduler
    HSD_SAMPLER_EULER_A,    // EulerAncestralDiscreteScheduler
    HSD_SAMPLER_PNDM,       // PNDMScheduler (skip_prk_steps as in SD configs)
    HSD_SAMPLER_COUNT
};

// "dpmpp-2m", "ddim", "euler", "euler-a", "pndm".
const char *hsd_sampler_name(enum hsd_sampler_kind k);
enum hsd_status hsd_sampler_parse(const char *name, enum hsd_sampler_kind *out);

enum hsd_beta_schedule { HSD_BETA_LINEAR, HSD_BETA_SCALED_LINEAR, HSD_BETA_SQUAREDCOS };
enum hsd_timestep_spacing {
    HSD_SPACING_DEFAULT,    // absent from the config: each scheduler's own default
    HSD_SPACING_LEADING, HSD_SPACING_LINSPACE, HSD_SPACING_TRAILING
};
enum hsd_prediction { HSD_PRED_EPSILON, HSD_PRED_V };

// scheduler/scheduler_config.json (the keys the five samplers read).
struct hsd_noise_schedule {
    int num_train_timesteps;
    float beta_start, beta_end;
    enum hsd_beta_schedule beta_schedule;
    int steps_offset;
    int set_alpha_to_one;
    int clip_sample;
    float clip_sample_range;
    enum hsd_prediction prediction_type;
    enum hsd_timestep_spacing timestep_spacing;
};

// The SD 1.5 scheduler config (PNDMScheduler's published file).
void hsd_noise_schedule_sd15(struct hsd_noise_schedule *s);
// `path`: a pipeline root (reads scheduler/scheduler_config.json) or the
// json file itself. Unknown keys ignored; bad values are errors.
enum hsd_status hsd_noise_schedule_load(struct hsd_noise_schedule *s, const char *path);

#define HSD_SAMPLER_MAX_STEPS 1000

struct hsd_sampler {
    // Plain data, no pointers except `buf`; see hsd_sampler_serialize.
    enum hsd_sampler_kind kind;
    struct hsd_noise_schedule sched;
    int n_steps;            // N
    int step;               // index of the next step to run, 0..N
    size_t n_latent;        // elements of one latent (c*h*w)
    // kind-specific scalars and per-step tables (timesteps, sigmas, ...)
    // are defined by the implementation below this line.
    int n_timesteps;        // length of timesteps[] (PNDM repeats one)
    float timesteps[HSD_SAMPLER_MAX_STEPS + 2];
    double sigmas[HSD_SAMPLER_MAX_STEPS + 2];
    int lower_order_nums;   // DPM-Solver++ multistep history depth so far
    int counter;            // PNDM: model calls so far
    int n_ets;              // PNDM: model outputs kept
    struct hsd_torch_rng rng;  // ancestral noise (continues the initial-noise generator)
    float *buf;             // history: up to 4 latents + PNDM's cur_sample (owned)
    size_t buf_len;
};

// Sets up N steps for one latent of n_latent elements. `rng` (may be NULL
// for the deterministic samplers) is copied: pass the generator that drew
// the initial noise, as diffusers' pipeline passes one generator to both.
enum hsd_status hsd_sampler_init(struct hsd_sampler *s, enum hsd_sampler_kind kind,
                                 const struct hsd_noise_schedule *sched, int n_steps,
                                 size_t n_latent, const struct hsd_torch_rng *rng);
void hsd_sampler_free(struct hsd_sampler *s);
enum hsd_status hsd_sampler_copy(struct hsd_sampler *dst, const struct hsd_sampler *src);

// The U-Net timestep for the next step.
float hsd_sampler_timestep(const struct hsd_sampler *s);
// Multiply the initial N(0, 1) noise by this (scheduler.init_noise_sigma).
float hsd_sampler_init_noise_sigma(const struct hsd_sampler *s);
// scheduler.scale_model_input for the next step: out = x / sqrt(sigma^2+1)
// for the Euler family, a copy otherwise. out may equal x.
void hsd_sampler_scale_model_input(const struct hsd_sampler *s, float *out, const float *x);
// scheduler.step: advances x (in place) with the model output (after CFG)
// and moves to the next step. Fails if all N steps were already taken.
enum hsd_status hsd_sampler_step(struct hsd_sampler *s, float *x, const float *model_out);

// Versioned little-endian binary form of the whole state (history and RNG
// included). deserialize validates everything (a network peer sent it) and
// fails with HSD_ERR_FORMAT on any inconsistency; on success `s` owns a
// fresh buffer.
size_t hsd_sampler_serialized_size(const struct hsd_sampler *s);
enum hsd_status hsd_sampler_serialize(const struct hsd_sampler *s, void *buf, size_t cap);
enum hsd_status hsd_sampler_deserialize(struct hsd_sampler *s, const void *buf, size_t len);

#endif
