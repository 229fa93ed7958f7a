// Samplers (diffusers schedulers) for one sample's latent, as plain data
// that can be serialized: the cloud runs steps 0..k-1, ships the state, the
// edge runs k..N-1 with the same object (docs/architecture.md §3). Each kind produces
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
    HSD_SAMPLER_LCM,        // LCMScheduler (latent consistency models, LCM-LoRA)
    HSD_SAMPLER_COUNT
};

// "dpmpp-2m", "ddim", "euler", "euler-a", "pndm", "lcm".
const char *hsd_sampler_name(enum hsd_sampler_kind k);
enum hsd_status hsd_sampler_parse(const char *name, enum hsd_sampler_kind *out);

enum hsd_beta_schedule { HSD_BETA_LINEAR, HSD_BETA_SCALED_LINEAR, HSD_BETA_SQUAREDCOS };
enum hsd_timestep_spacing {
    HSD_SPACING_DEFAULT,    // absent from the config: each scheduler's own default
    HSD_SPACING_LEADING, HSD_SPACING_LINSPACE, HSD_SPACING_TRAILING
};
enum hsd_prediction { HSD_PRED_EPSILON, HSD_PRED_V };

// scheduler/scheduler_config.json (the keys the five samplers read).
// Tri-state ints are 1/0 when the file sets them and -1 when it does not,
// because diffusers' defaults differ per scheduler class (set_alpha_to_one:
// DDIM true, PNDM false; clip_sample: DDIM true; skip_prk_steps: PNDM false).
struct hsd_noise_schedule {
    int num_train_timesteps;    // 2..HSD_NOISE_SCHEDULE_MAX_TRAIN
    double beta_start, beta_end;  // double: scaled_linear takes sqrt in Python floats
    enum hsd_beta_schedule beta_schedule;
    int steps_offset;
    int set_alpha_to_one;       // -1/0/1
    int clip_sample;            // -1/0/1 (DDIM only)
    float clip_sample_range;
    enum hsd_prediction prediction_type;
    enum hsd_timestep_spacing timestep_spacing;
    int skip_prk_steps;         // -1/0/1 (PNDM; only 1 is implemented)
    // LCMScheduler (absent: its defaults 50 and 10.0).
    int original_inference_steps;  // 1..num_train_timesteps
    float timestep_scaling;        // boundary-condition scalings' timestep factor
};

#define HSD_NOISE_SCHEDULE_MAX_TRAIN 100000

// The SD 1.5 scheduler config (PNDMScheduler's published file).
void hsd_noise_schedule_sd15(struct hsd_noise_schedule *s);
// The SDXL-base scheduler config (EulerDiscreteScheduler's published file).
void hsd_noise_schedule_sdxl(struct hsd_noise_schedule *s);
// `path`: a pipeline root (reads scheduler/scheduler_config.json) or the
// json file itself. Unknown keys ignored; bad values are errors.
enum hsd_status hsd_noise_schedule_load(struct hsd_noise_schedule *s, const char *path);
// The same from JSON text (len bytes, no NUL needed); `label` names the
// source in error messages.
enum hsd_status hsd_noise_schedule_parse(struct hsd_noise_schedule *s, const char *json,
                                         size_t len, const char *label);
// Range checks of every field, and that the betas give 0 < alphas_cumprod < 1
// everywhere (HSD_ERR_INVALID_ARG otherwise).
enum hsd_status hsd_noise_schedule_validate(const struct hsd_noise_schedule *s);
// alphas_cumprod[num_train_timesteps] exactly as diffusers computes it:
// torch.linspace in float32 (start + step * i as one FMA, as the wheel does),
// ** 2 for scaled_linear, cumprod accumulated in double.
enum hsd_status hsd_noise_schedule_alphas_cumprod(const struct hsd_noise_schedule *s,
                                                  float *alphas_cumprod);

#define HSD_SAMPLER_MAX_STEPS 1000
// Elements of one latent: 16 channels at 512x512 (a 4096-pixel SD image).
#define HSD_SAMPLER_MAX_LATENT ((size_t)1 << 22)

struct hsd_sampler {
    // Plain data, no pointers except `buf`; see hsd_sampler_serialize.
    enum hsd_sampler_kind kind;
    struct hsd_noise_schedule sched;
    int n_steps;            // N, as passed to diffusers' set_timesteps
    int step;               // index of the next model call, 0..n_timesteps
    size_t n_latent;        // elements of one latent (c*h*w)
    // Tables, filled by init from `sched` and N (and checked again by
    // deserialize). One entry per model call:
    // Model calls: N; N+1 for PNDM (PLMS repeats one timestep); with
    // "trailing" spacing numpy's float arange gives N+1 for some N
    // (e.g. 61), and diffusers runs them all.
    int n_timesteps;
    float timesteps[HSD_SAMPLER_MAX_STEPS + 2];    // the U-Net timestep
    // DPM++/Euler: diffusers' sigmas (float32 values; n_timesteps + 1, the
    // last one 0). Unused (0) for DDIM/PNDM.
    double sigmas[HSD_SAMPLER_MAX_STEPS + 2];
    // DDIM/PNDM: alphas_cumprod at the step's timestep and at the previous
    // one (final_alpha_cumprod past 0). Unused (0) for the others.
    float alpha_prod[HSD_SAMPLER_MAX_STEPS + 2];
    float alpha_prod_prev[HSD_SAMPLER_MAX_STEPS + 2];
    int lower_order_nums;   // DPM-Solver++ multistep history depth so far
    int counter;            // PNDM: model calls so far
    int n_ets;              // PNDM: model outputs kept
    struct hsd_torch_rng rng;  // ancestral noise (continues the initial-noise generator)
    float *buf;             // history (DPM++: previous x0; PNDM: ets[0..3], cur_sample),
                            // then per-step scratch; owned
    size_t buf_len;         // floats in buf
};

// Sets up N steps for one latent of n_latent elements. `rng` (may be NULL
// for the deterministic samplers) is copied: pass the generator that drew
// the initial noise, as diffusers' pipeline passes one generator to both.
// `s` is treated as uninitialised; on failure it is left empty (buf NULL),
// which hsd_sampler_free accepts.
enum hsd_status hsd_sampler_init(struct hsd_sampler *s, enum hsd_sampler_kind kind,
                                 const struct hsd_noise_schedule *sched, int n_steps,
                                 size_t n_latent, const struct hsd_torch_rng *rng);
void hsd_sampler_free(struct hsd_sampler *s);
enum hsd_status hsd_sampler_copy(struct hsd_sampler *dst, const struct hsd_sampler *src);

// Model calls in the whole run (n_timesteps), and whether all were made.
int hsd_sampler_n_calls(const struct hsd_sampler *s);
int hsd_sampler_done(const struct hsd_sampler *s);
// The U-Net timestep for the next step (asserts !done).
float hsd_sampler_timestep(const struct hsd_sampler *s);
// Multiply the initial N(0, 1) noise by this (scheduler.init_noise_sigma).
float hsd_sampler_init_noise_sigma(const struct hsd_sampler *s);
// scheduler.scale_model_input for the next step: out = x / sqrt(sigma^2+1)
// for the Euler family, a copy otherwise. out may equal x.
void hsd_sampler_scale_model_input(const struct hsd_sampler *s, float *out, const float *x);
// scheduler.step: advances x (in place) with the model output (after CFG,
// must not overlap x) and moves to the next call. Fails with
// HSD_ERR_INVALID_ARG once all n_timesteps calls were made. It is
// plan_step, the element maths of the sampler_step op on the host
// (backend/step_math.h), then commit_step.
enum hsd_status hsd_sampler_step(struct hsd_sampler *s, float *x, const float *model_out);

// The same step as a backend op (backend/step_ops.h), in two halves around
// it. plan_step fills the sampler's part of `row` for the next call (kind,
// flags, input_div, coefficients, history bookkeeping; the caller sets
// cond_row/uncond_row/guidance) and, for Euler a, draws the step's noise
// into scratch slot 0 of s->buf from a copy of the generator left in
// *rng_after; it changes no state, so a step that fails after it can be
// run again. After the op ran on x and on s->buf's slots (or copies of
// them), commit_step moves s to the next call and takes the generator.
// plan_step fails with HSD_ERR_INVALID_ARG once all calls were made.
struct hsd_step_row;
enum hsd_status hsd_sampler_plan_step(struct hsd_sampler *s, struct hsd_step_row *row,
                                      struct hsd_torch_rng *rng_after);
void hsd_sampler_commit_step(struct hsd_sampler *s, const struct hsd_torch_rng *rng_after);
// Floats of s->buf the step op reads and writes (the item's first slots of
// its [HSD_STEP_SLOTS, n_latent] block): history and noise.
size_t hsd_sampler_slot_floats(const struct hsd_sampler *s);

// Versioned little-endian binary form of the whole state (history and RNG
// included, CRC-32 at the end). deserialize validates everything (a network
// peer sent it) and fails with HSD_ERR_FORMAT on any inconsistency; on
// success `s` owns a fresh buffer. Like init, it treats `s` as
// uninitialised and leaves it empty on failure. Layout: sampler.c.
size_t hsd_sampler_serialized_size(const struct hsd_sampler *s);
enum hsd_status hsd_sampler_serialize(const struct hsd_sampler *s, void *buf, size_t cap);
enum hsd_status hsd_sampler_deserialize(struct hsd_sampler *s, const void *buf, size_t len);

#endif
