// The per-element arithmetic of the step ops (backend/step_ops.h), one
// definition compiled three ways: host C (the CPU backend's ops and
// host/sampling's hsd_sampler_step), host C++ (the CUDA emulation) and CUDA
// device code (cuda/sampler_step.cu). Each expression is diffusers'
// float32 tensor expression in its order (cited per kind), one IEEE
// rounding per operation: host C is built in ISO C mode (GCC: no FMA
// contraction; clang: the pragma below), device code spells every
// operation as a round-to-nearest intrinsic (__fmul_rn, ...), which nvcc
// never fuses. So the CUDA kernels are bit-identical to the CPU backend,
// and the CPU backend to the samplers as they were before the ops existed.
#ifndef HSD_BACKEND_STEP_MATH_H
#define HSD_BACKEND_STEP_MATH_H

#include <math.h>
#include <stddef.h>

#include "backend/step_ops.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#ifdef __CUDACC__
#define HSD_STEP_FN __host__ __device__ static inline
#else
#define HSD_STEP_FN static inline
#endif

#ifdef __CUDA_ARCH__
#define HSD_ADD(a, b) __fadd_rn((a), (b))
#define HSD_SUB(a, b) __fsub_rn((a), (b))
#define HSD_MUL(a, b) __fmul_rn((a), (b))
#define HSD_DIV(a, b) __fdiv_rn((a), (b))
#else
#define HSD_ADD(a, b) ((a) + (b))
#define HSD_SUB(a, b) ((a) - (b))
#define HSD_MUL(a, b) ((a) * (b))
#define HSD_DIV(a, b) ((a) / (b))
#endif

// A row the ops skip, by design (not an error on any backend).
HSD_STEP_FN int hsd_step_row_skip(const struct hsd_step_row *r) { return r->kind == HSD_STEP_SKIP; }

// A row the ops can run: a known kind, U-Net rows inside [0, rows) (uncond
// -1 allowed), PNDM bookkeeping that names slots 0..3. The CPU backend
// rejects a table with a bad row; a kernel skips the row (its outputs stay
// as they were), since it cannot report from the device.
HSD_STEP_FN int hsd_step_row_ok(const struct hsd_step_row *r, int rows) {
    if (r->kind < 0 || r->kind >= HSD_STEP_KIND_COUNT) return 0;
    if (r->cond_row < 0 || r->cond_row >= rows) return 0;
    if (r->uncond_row < -1 || r->uncond_row >= rows) return 0;
    if (r->kind == HSD_STEP_PNDM) {
        if (r->pndm_n_ets < 1 || r->pndm_n_ets > HSD_STEP_SLOTS || r->pndm_counter < 0) return 0;
        if (r->pndm_shift && r->pndm_n_ets != HSD_STEP_SLOTS) return 0;
    }
    return 1;
}

// scheduler.scale_model_input: EulerDiscreteScheduler divides by
// (sigma**2 + 1) ** 0.5; the others return the sample.
HSD_STEP_FN float hsd_step_input(const struct hsd_step_row *r, float x) {
    return (r->flags & HSD_STEP_SCALE_INPUT) ? HSD_DIV(x, r->input_div) : x;
}

// StableDiffusionPipeline: noise_pred_uncond + guidance_scale *
// (noise_pred_text - noise_pred_uncond).
HSD_STEP_FN float hsd_step_cfg(float g, float cond, float uncond) {
    return HSD_ADD(uncond, HSD_MUL(g, HSD_SUB(cond, uncond)));
}

// diffusers scheduling_ddim.py DDIMScheduler.step (eta 0, no thresholding).
HSD_STEP_FN float hsd_step_ddim(const struct hsd_step_row *r, float xs, float mo) {
    const float sa = r->k.ddim.sa, sb = r->k.ddim.sb;
    float x0, eps;
    if (r->flags & HSD_STEP_V_PRED) {
        x0 = HSD_SUB(HSD_MUL(sa, xs), HSD_MUL(sb, mo));
        eps = HSD_ADD(HSD_MUL(sa, mo), HSD_MUL(sb, xs));
    } else {
        x0 = HSD_DIV(HSD_SUB(xs, HSD_MUL(sb, mo)), sa);
        eps = mo;
    }
    if (r->flags & HSD_STEP_CLIP) x0 = fminf(fmaxf(x0, -r->k.ddim.range), r->k.ddim.range);
    const float dir = HSD_MUL(r->k.ddim.dir, eps);
    return HSD_ADD(HSD_MUL(r->k.ddim.sp, x0), dir);
}

// scheduling_euler_discrete.py / scheduling_euler_ancestral_discrete.py
// step: pred_original_sample, derivative = (sample - pred) / sigma,
// prev = sample + derivative * dt (+ noise * sigma_up for Euler a).
HSD_STEP_FN float hsd_step_euler(const struct hsd_step_row *r, float xs, float mo) {
    const float sigma = r->k.euler.sigma;
    float pred;
    if (r->flags & HSD_STEP_V_PRED) {
        pred = HSD_ADD(HSD_MUL(mo, r->k.euler.c_out), HSD_DIV(xs, r->k.euler.s2p1));
    } else {
        pred = HSD_SUB(xs, HSD_MUL(sigma, mo));
    }
    const float derivative = HSD_DIV(HSD_SUB(xs, pred), sigma);
    return HSD_ADD(xs, HSD_MUL(derivative, r->k.euler.dt));
}

// scheduling_pndm.py step_plms + _get_prev_sample. h[j] = slot j of the
// item at this element (slots j*stride apart); PNDM's history update
// (self.ets[-3:] + append, cur_sample) happens here per element, reads
// before writes, so the history needs no separate shift pass.
HSD_STEP_FN float hsd_step_pndm(const struct hsd_step_row *r, float xs, float mo, float *h,
                                size_t stride) {
    const int c = r->pndm_counter, k = r->pndm_n_ets;
    if (c != 1) {
        if (r->pndm_shift) {
            h[0] = h[stride];
            h[stride] = h[2 * stride];
            h[2 * stride] = h[3 * stride];
        }
        h[(size_t)(k - 1) * stride] = mo;
    }
    const float e1 = h[(size_t)(k - 1) * stride];
    float sample = xs, m;
    if (k == 1 && c == 0) {
        m = mo;
        h[stride] = sample;  // cur_sample
    } else if (k == 1) {
        m = HSD_DIV(HSD_ADD(mo, e1), 2.0f);
        sample = h[stride];
    } else if (k == 2) {
        m = HSD_DIV(HSD_SUB(HSD_MUL(3.0f, e1), h[0]), 2.0f);
    } else if (k == 3) {
        m = HSD_DIV(HSD_ADD(HSD_SUB(HSD_MUL(23.0f, e1), HSD_MUL(16.0f, h[stride])),
                            HSD_MUL(5.0f, h[0])),
                    12.0f);
    } else {
        const float inv24 = (float)(1.0 / 24.0);  // Python 1 / 24 times a float tensor
        m = HSD_MUL(inv24,
                    HSD_SUB(HSD_ADD(HSD_SUB(HSD_MUL(55.0f, e1), HSD_MUL(59.0f, h[2 * stride])),
                                    HSD_MUL(37.0f, h[stride])),
                            HSD_MUL(9.0f, h[0])));
    }
    if (r->flags & HSD_STEP_V_PRED) {
        m = HSD_ADD(HSD_MUL(r->k.pndm.sa, m), HSD_MUL(r->k.pndm.sb, sample));
    }
    return HSD_SUB(HSD_MUL(r->k.pndm.sample_coeff, sample),
                   HSD_DIV(HSD_MUL(r->k.pndm.diff, m), r->k.pndm.denom));
}

// scheduling_dpmsolver_multistep.py: convert_model_output (x0),
// dpm_solver_first_order_update, multistep_dpm_solver_second_order_update
// (dpmsolver++, midpoint). h0 = slot 0 (previous x0, then this one).
HSD_STEP_FN float hsd_step_dpmpp_2m(const struct hsd_step_row *r, float xs, float mo, float *h0) {
    float x0;
    if (r->flags & HSD_STEP_V_PRED) {
        x0 = HSD_SUB(HSD_MUL(r->k.dpm.alpha, xs), HSD_MUL(r->k.dpm.sigma, mo));
    } else {
        x0 = HSD_DIV(HSD_SUB(xs, HSD_MUL(r->k.dpm.sigma, mo)), r->k.dpm.alpha);
    }
    float xn = HSD_SUB(HSD_MUL(r->k.dpm.a, xs), HSD_MUL(r->k.dpm.b, x0));
    if (!(r->flags & HSD_STEP_FIRST_ORDER)) {
        const float d1 = HSD_MUL(r->k.dpm.c1, HSD_SUB(x0, *h0));
        xn = HSD_SUB(xn, HSD_MUL(r->k.dpm.c, d1));
    }
    *h0 = x0;
    return xn;
}

// scheduling_lcm.py LCMScheduler.step: predicted_original_sample (epsilon:
// (sample - beta_prod_t.sqrt() * model_output) / alpha_prod_t.sqrt(); v:
// alpha_prod_t.sqrt() * sample - beta_prod_t.sqrt() * model_output),
// denoised = c_out * x0 + c_skip * sample, then (not the last step)
// alpha_prod_t_prev.sqrt() * denoised + beta_prod_t_prev.sqrt() * noise.
HSD_STEP_FN float hsd_step_lcm(const struct hsd_step_row *r, float xs, float mo, float noise) {
    float x0;
    if (r->flags & HSD_STEP_V_PRED) {
        x0 = HSD_SUB(HSD_MUL(r->k.lcm.sa, xs), HSD_MUL(r->k.lcm.sb, mo));
    } else {
        x0 = HSD_DIV(HSD_SUB(xs, HSD_MUL(r->k.lcm.sb, mo)), r->k.lcm.sa);
    }
    const float denoised = HSD_ADD(HSD_MUL(r->k.lcm.c_out, x0), HSD_MUL(r->k.lcm.c_skip, xs));
    if (!(r->flags & HSD_STEP_NOISE)) return denoised;
    return HSD_ADD(HSD_MUL(r->k.lcm.sp, denoised), HSD_MUL(r->k.lcm.sbp, noise));
}

// One element e of one item: x[e] advanced with the guided model output
// mo; slots is the item's [HSD_STEP_SLOTS, stride] block (untouched, may
// be NULL, for DDIM and Euler).
HSD_STEP_FN void hsd_step_element(const struct hsd_step_row *r, float *x, float mo, float *slots,
                                  size_t e, size_t stride) {
    const float xs = *x;
    switch (r->kind) {
    case HSD_STEP_DDIM:
        *x = hsd_step_ddim(r, xs, mo);
        break;
    case HSD_STEP_EULER:
        *x = hsd_step_euler(r, xs, mo);
        break;
    case HSD_STEP_EULER_A:
        *x = HSD_ADD(hsd_step_euler(r, xs, mo), HSD_MUL(slots[e], r->k.euler.sigma_up));
        break;
    case HSD_STEP_PNDM:
        *x = hsd_step_pndm(r, xs, mo, slots + e, stride);
        break;
    case HSD_STEP_DPMPP_2M:
        *x = hsd_step_dpmpp_2m(r, xs, mo, slots + e);
        break;
    case HSD_STEP_LCM:
        *x = hsd_step_lcm(r, xs, mo, (r->flags & HSD_STEP_NOISE) ? slots[e] : 0.0f);
        break;
    default:
        break;  // hsd_step_row_ok rejects it first
    }
}

#endif
