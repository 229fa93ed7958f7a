// Shared between sampler.c and the per-kind files sampler_<kind>.c: the
// per-kind table and the numpy emulation that the timestep schedules use.
#ifndef HSD_SAMPLING_SAMPLER_INTERNAL_H
#define HSD_SAMPLING_SAMPLER_INTERNAL_H

#include "backend/step_ops.h"
#include "sampling/sampler.h"

struct hsd_sampler_ops {
    const char *name;
    // diffusers' timestep_spacing default of the scheduler class.
    enum hsd_timestep_spacing default_spacing;
    int history_slots;  // latents kept between steps (serialized while live)
    int scratch_slots;  // per-step scratch latents (not serialized)
    int scales_input;   // scale_model_input divides by sqrt(sigma^2 + 1)
    int ancestral;      // draws noise each step (into scratch slot 0); LCM: every
                        // step whose row has HSD_STEP_NOISE (all but the last)
    // Fills n_timesteps, timesteps[], sigmas[], alpha_prod[], alpha_prod_prev[]
    // from s->sched, s->n_steps and alphas_cumprod[num_train_timesteps].
    enum hsd_status (*setup)(struct hsd_sampler *s, const float *alphas_cumprod);
    // History slots holding data at the current step.
    int (*live_slots)(const struct hsd_sampler *s);
    // lower_order_nums / counter / n_ets agree with s->step.
    int (*progress_ok)(const struct hsd_sampler *s);
    // scheduler.step for call s->step (< n_timesteps), host half: the
    // row's kind-specific fields (coefficients, history bookkeeping); the
    // element arithmetic is backend/step_math.h. Changes nothing.
    void (*plan)(const struct hsd_sampler *s, struct hsd_step_row *row);
    // The bookkeeping of that call once it ran (history counters); NULL:
    // nothing kept. Does not advance s->step.
    void (*advance)(struct hsd_sampler *s);
};

extern const struct hsd_sampler_ops hsd_sampler_ops_dpmpp_2m;
extern const struct hsd_sampler_ops hsd_sampler_ops_ddim;
extern const struct hsd_sampler_ops hsd_sampler_ops_euler;
extern const struct hsd_sampler_ops hsd_sampler_ops_euler_a;
extern const struct hsd_sampler_ops hsd_sampler_ops_pndm;
extern const struct hsd_sampler_ops hsd_sampler_ops_lcm;

// live_slots/progress_ok of the samplers that keep no model-output history
// (DDIM, Euler, Euler a): nothing live, and every history counter zero.
int hsd_sampler_no_history_live_slots(const struct hsd_sampler *s);
int hsd_sampler_no_history_progress_ok(const struct hsd_sampler *s);

// Euler and Euler ancestral share set_timesteps and the v-prediction
// coefficients of sigma (sampler_euler.c).
enum hsd_status hsd_sampler_euler_setup(struct hsd_sampler *s, const float *alphas_cumprod);
void hsd_sampler_euler_plan_sigma(struct hsd_step_row *row, float sigma);

// The config's spacing, or the scheduler class's default when absent.
enum hsd_timestep_spacing hsd_sampler_spacing(const struct hsd_sampler *s,
                                              enum hsd_timestep_spacing class_default);

// numpy, float64: np.linspace(start, stop, num) (endpoint=True).
void hsd_np_linspace(double *out, double start, double stop, int num);
// np.arange(start, stop, step) for a float step: length, then the values
// (numpy fills start + i * ((start + step) - start)). out may be NULL.
int hsd_np_arange(double *out, int cap, double start, double stop, double step);
// ndarray.round(): half to even.
double hsd_np_round(double x);
// np.interp(x, np.arange(n), fp) for fp given as float32 values.
double hsd_np_interp_grid(double x, const float *fp, int n);

// ((1 - ac) / ac) ** 0.5 in float32 torch ops.
float hsd_sigma_from_alpha_cumprod(float ac);
// The timesteps are valid indices of alphas_cumprod; fails with a message
// naming N otherwise (diffusers would raise IndexError).
enum hsd_status hsd_sampler_check_index(const struct hsd_sampler *s, long long t);
// Euler/DPM-Solver find their first step with index_for_timestep, which
// takes the second match when timesteps[0] repeats: unsupported here.
enum hsd_status hsd_sampler_check_first_unique(const struct hsd_sampler *s);

// Slot i of the history/scratch buffer (n_latent floats each).
static inline float *hsd_sampler_slot(struct hsd_sampler *s, int i) {
    return s->buf + (size_t)i * s->n_latent;
}

#endif
