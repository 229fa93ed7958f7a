// The denoising step's ops after the U-Net (backend.h slots step_input,
// cfg_combine, sampler_step): scheduler.scale_model_input, classifier-free
// guidance and scheduler.step of every sampler, as backend ops over per-item
// buffers in backend memory, so a backend can keep a request's latent and
// sampler history where its U-Net runs (issue 10: the device-resident step).
//
// The split (docs/architecture.md §3, step 4: guidance and sampler step per request):
// - The host owns the schedule. host/sampling computes, per item and step,
//   one struct hsd_step_row: the sampler kind, its per-step coefficients
//   (every sqrt/exp/log of diffusers' step, in diffusers' float32 order),
//   the PNDM/DPM-Solver++ history bookkeeping, and the item's U-Net rows
//   and guidance scale (hsd_sampler_plan_step, sampling/sampler.h).
// - The ops do the per-element arithmetic only (+ - * / min max), one
//   definition for every backend (backend/step_math.h), so the CPU backend
//   is bit-identical to the host samplers and a device kernel that keeps
//   IEEE single rounding (no FMA contraction) is bit-identical to the CPU.
// - Ancestral noise (Euler a, LCM's re-noising) is drawn on the host from the request's
//   torch-compatible generator, as diffusers' randn_tensor on a CPU
//   generator does, and travels in the item's slot 0: the device never
//   generates random numbers, so every backend reproduces torch's stream.
//
// A new scheduler (LCM, ...) adds a kind: its coefficients in the union and
// a case in backend/step_math.h.
//
// Buffers (backend memory, `n` items, `count` = elements of one latent):
// - x      fp32 [n, count]: the latents (fp32 on every backend: the sampler
//          update is not done in the U-Net's fp16).
// - slots  fp32 [n, HSD_STEP_SLOTS, count]: each item's sampler history
//          (DPM-Solver++: slot 0 = previous x0; PNDM: ets in slots 0..3,
//          cur_sample in slot 1 between its calls 0 and 1; Euler a and
//          LCM: slot 0 = this step's noise), the layout of struct
//          hsd_sampler's buf.
// - model_out act [rows, count] (the backend's element type, the U-Net's
//          output rows), in  act [rows, count] (the U-Net's input rows).
// - eps    fp32 [n, count]: the guided model output of each item.
// - table  [n] struct hsd_step_row (32-bit fields, uploaded with
//          upload_f32 as raw words: hsd_step_table_words).
// Rows are a per-element map (layout-free): NCHW or NHWC alike.
#ifndef HSD_BACKEND_STEP_OPS_H
#define HSD_BACKEND_STEP_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum hsd_step_kind {
    // No item: every op leaves this row's outputs as they are (the resident
    // step's unused items, backend/resident_ops.h: one graph per bucket
    // whatever the number of requests in it).
    HSD_STEP_SKIP = -1,
    HSD_STEP_DDIM,      // diffusers DDIMScheduler.step, eta 0
    HSD_STEP_EULER,     // EulerDiscreteScheduler.step, s_churn 0
    HSD_STEP_EULER_A,   // EulerAncestralDiscreteScheduler.step (noise in slot 0)
    HSD_STEP_PNDM,      // PNDMScheduler.step_plms
    HSD_STEP_DPMPP_2M,  // DPMSolverMultistepScheduler.step, dpmsolver++ order 2 midpoint
    HSD_STEP_LCM,       // LCMScheduler.step (noise in slot 0 unless the last step)
    HSD_STEP_KIND_COUNT
};

enum hsd_step_flags {
    HSD_STEP_V_PRED = 1 << 0,       // prediction_type "v_prediction"
    HSD_STEP_CLIP = 1 << 1,         // DDIM clip_sample (to +-ddim.range)
    HSD_STEP_FIRST_ORDER = 1 << 2,  // DPM-Solver++: first-order update this step
    HSD_STEP_SCALE_INPUT = 1 << 3,  // step_input divides by input_div (Euler family)
    HSD_STEP_NOISE = 1 << 4,        // LCM: re-noise with slot 0 (every step but the last)
};

#define HSD_STEP_SLOTS 4  // history slots per item (PNDM's four ets)

// One item's inputs to one step: 64 bytes of 32-bit fields, the same
// layout in C, C++ and CUDA.
struct hsd_step_row {
    int32_t kind;        // enum hsd_step_kind
    int32_t flags;       // enum hsd_step_flags
    int32_t cond_row;    // the item's conditional U-Net row
    int32_t uncond_row;  // its unconditional row, or -1: no guidance (eps = cond row)
    float guidance;      // CFG scale (used when uncond_row >= 0)
    float input_div;     // scale_model_input divisor (HSD_STEP_SCALE_INPUT)
    // PNDM bookkeeping (step_plms): counter before this call, ets kept
    // after it, whether the oldest is dropped first (self.ets[-3:]).
    int32_t pndm_counter, pndm_n_ets, pndm_shift;
    int32_t reserved;    // 0
    union {              // per-kind coefficients, named after diffusers' variables
        struct {
            float sa, sb;      // alpha_prod_t ** 0.5, beta_prod_t ** 0.5
            float sp;          // alpha_prod_t_prev ** 0.5
            float dir;         // (1 - alpha_prod_t_prev - std_dev_t**2) ** 0.5
            float range;       // clip_sample_range
        } ddim;
        struct {
            float sigma;       // sigma_hat (= sigma, gamma 0)
            float dt;          // sigma_next - sigma_hat (Euler a: sigma_down - sigma)
            float s2p1;        // sigma**2 + 1
            float c_out;       // -sigma / (sigma**2 + 1) ** 0.5 (v-prediction)
            float sigma_up;    // Euler a only
        } euler;
        struct {
            float sample_coeff, diff, denom;  // _get_prev_sample
            float sa, sb;                     // v-prediction
        } pndm;
        struct {
            float sa, sb;        // alpha_prod_t ** 0.5, beta_prod_t ** 0.5
            float c_skip, c_out; // get_scalings_for_boundary_condition_discrete
            float sp, sbp;       // alpha_prod_t_prev ** 0.5, beta_prod_t_prev ** 0.5
        } lcm;
        struct {
            float alpha, sigma;  // alpha_s0, sigma_s0 (convert_model_output)
            float a, b;          // sigma_t / sigma_s0, alpha_t * (exp(-h) - 1)
            float c1, c;         // 1 / r0 and 0.5 * b (second order)
        } dpm;
        float c[6];
    } k;
};

// Words of a table of n rows, for upload_f32.
static inline size_t hsd_step_table_words(int n) {
    return (size_t)n * (sizeof(struct hsd_step_row) / 4);
}

// U-Net input rows: in[row] = x[item] (/ input_div with HSD_STEP_SCALE_INPUT),
// for the item's cond_row and, when >= 0, its uncond_row; rows no item
// names are left as they are.
struct hsd_step_input_params {
    void *in;             // [rows, count] act
    const void *x;        // [n, count] fp32
    const void *table;    // [n] struct hsd_step_row
    int n, rows;
    size_t count;
};

// eps[i] = u + guidance * (c - u) with c, u the item's cond/uncond rows of
// model_out (diffusers: noise_pred_uncond + guidance_scale *
// (noise_pred_text - noise_pred_uncond)); eps[i] = c without uncond_row.
struct hsd_cfg_combine_params {
    void *eps;             // [n, count] fp32
    const void *model_out; // [rows, count] act
    const void *table;     // [n] struct hsd_step_row
    int n, rows;
    size_t count;
};

// scheduler.step of each item: x[i] advanced in place with eps[i], the
// item's slots read and updated as its kind does (see the file header).
struct hsd_sampler_step_params {
    void *x;               // [n, count] fp32, in place
    void *slots;           // [n, HSD_STEP_SLOTS, count] fp32, in place
    const void *eps;       // [n, count] fp32
    const void *table;     // [n] struct hsd_step_row
    int n;
    size_t count;
};

// Parameter checks every backend's launcher shares (dims, non-NULL buffers;
// `who` names the op or kernel in the message): HSD_ERR_INVALID_ARG with a
// message, else HSD_OK. The table's contents live in backend memory and
// are the backend's to check (backend/step_math.h hsd_step_row_ok).
enum hsd_status hsd_step_input_check(const struct hsd_step_input_params *p, const char *who);
enum hsd_status hsd_cfg_combine_check(const struct hsd_cfg_combine_params *p, const char *who);
enum hsd_status hsd_sampler_step_check(const struct hsd_sampler_step_params *p, const char *who);

#ifdef __cplusplus
}
#endif

#endif
