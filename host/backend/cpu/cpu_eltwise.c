// Memory-bound elementwise ops: geglu, upsample_nearest2x, concat_channels,
// add_bias, add, silu, gelu, quick_gelu. Each is one OpenMP pass over its output with a
// simple, vectorisable inner loop over contiguous channels.
//
// Test: ctest -R cpu_ops.
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/status.h"

// Below this many elements a parallel region costs more than it saves.
#define PAR_MIN ((size_t)65536)

// Exact (erf) GELU, torch's GeluType::None: x * Phi(x) with
// Phi(x) = 0.5 * (1 + erf(x / sqrt 2)) = 0.5 * erfc(-x / sqrt 2).
// glibc's erff is a call that keeps the loop scalar (31 ms for SD's
// [8192, 1280] GEGLU at 64x64, batch 2, more than half of its projection
// GEMM), so erfc comes from Numerical Recipes' erfcc (Chebyshev fit,
// fractional error < 1.2e-7 for all z >= 0) around the vectorisable
// hsd_cpu_expf. Taking the tail from erfc keeps Phi accurate relatively for
// negative x too, where 1 + erf(x) would cancel; torch's own vectorised
// erf (Abramowitz-Stegun 7.1.26) is good to 1.5e-7 absolute.
static inline float gelu_erf(float x) {
    const float z = fabsf(x) * (float)M_SQRT1_2;
    const float t = 1.0f / HSD_CPU_FMAF(0.5f, z, 1.0f);
    float q = 0.17087277f;
    q = HSD_CPU_FMAF(q, t, -0.82215223f);
    q = HSD_CPU_FMAF(q, t, 1.48851587f);
    q = HSD_CPU_FMAF(q, t, -1.13520398f);
    q = HSD_CPU_FMAF(q, t, 0.27886807f);
    q = HSD_CPU_FMAF(q, t, -0.18628806f);
    q = HSD_CPU_FMAF(q, t, 0.09678418f);
    q = HSD_CPU_FMAF(q, t, 0.37409196f);
    q = HSD_CPU_FMAF(q, t, 1.00002368f);
    q = HSD_CPU_FMAF(q, t, -1.26551223f);
    // -z^2 as a rounded square plus its rounding error (exact with FMA,
    // 0 without), so large |x| keep their relative accuracy.
    const float zz = z * z;
    const float zz_err = HSD_CPU_FMAF(z, z, -zz);
    const float half_erfc = 0.5f * t * hsd_cpu_expf((q - zz) - zz_err);  // Phi(-|x|)
    const float phi = x >= 0.0f ? 1.0f - half_erfc : half_erfc;
    return x * phi;
}

enum hsd_status hsd_cpu_geglu(struct hsd_backend *be, const struct hsd_geglu_params *p) {
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "geglu: NULL params");
    if (p->m <= 0 || p->f <= 0) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "geglu: dims must be positive (m=%d f=%d)", p->m, p->f);
    }
    if (!p->out || !p->in) return hsd_fail(HSD_ERR_INVALID_ARG, "geglu: out and in must be non-NULL");
    const size_t m = (size_t)p->m, f = (size_t)p->f;
    const float *in = p->in;  // [m, 2f] = [hidden | gate]
    float *out = p->out;      // [m, f]
#pragma omp parallel for num_threads(be->threads) schedule(static) if (m * f > PAR_MIN)
    for (size_t r = 0; r < m; r++) {
        const float *restrict hidden = in + r * 2 * f;
        const float *restrict gate = hidden + f;
        float *restrict o = out + r * f;
        // diffusers GEGLU: hidden_states * F.gelu(gate)
        for (size_t j = 0; j < f; j++) o[j] = hidden[j] * gelu_erf(gate[j]);
    }
    return HSD_OK;
}

enum hsd_status hsd_cpu_upsample_nearest2x(struct hsd_backend *be,
                                           const struct hsd_upsample_params *p) {
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "upsample_nearest2x: NULL params");
    if (p->n <= 0 || p->h <= 0 || p->w <= 0 || p->c <= 0) {
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "upsample_nearest2x: dims must be positive (n=%d h=%d w=%d c=%d)", p->n,
                        p->h, p->w, p->c);
    }
    if (!p->out || !p->in) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "upsample_nearest2x: out and in must be non-NULL");
    }
    const size_t h = (size_t)p->h, w = (size_t)p->w, c = (size_t)p->c;
    const size_t out_rows = (size_t)p->n * 2 * h;  // rows of the output image
    const float *in = p->in;  // [n, h, w, c]
    float *out = p->out;      // [n, 2h, 2w, c]
#pragma omp parallel for num_threads(be->threads) schedule(static) if (out_rows * 2 * w * c > PAR_MIN)
    for (size_t orow = 0; orow < out_rows; orow++) {
        // F.interpolate(scale_factor=2, mode="nearest"): source = dst / 2.
        const size_t b = orow / (2 * h), iy = (orow % (2 * h)) / 2;
        const float *src = in + (b * h + iy) * w * c;
        float *dst = out + orow * 2 * w * c;
        for (size_t x = 0; x < w; x++) {
            memcpy(dst + 2 * x * c, src + x * c, c * sizeof *dst);
            memcpy(dst + (2 * x + 1) * c, src + x * c, c * sizeof *dst);
        }
    }
    return HSD_OK;
}

enum hsd_status hsd_cpu_concat_channels(struct hsd_backend *be, const struct hsd_concat_params *p) {
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "concat_channels: NULL params");
    if (p->m <= 0 || p->ca <= 0 || p->cb <= 0) {
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "concat_channels: dims must be positive (m=%d ca=%d cb=%d)", p->m, p->ca,
                        p->cb);
    }
    if (!p->out || !p->a || !p->b) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "concat_channels: out, a, b must be non-NULL");
    }
    const size_t m = (size_t)p->m, ca = (size_t)p->ca, cb = (size_t)p->cb;
    const float *a = p->a;  // [m, ca]
    const float *bb = p->b; // [m, cb]
    float *out = p->out;    // [m, ca + cb]
#pragma omp parallel for num_threads(be->threads) schedule(static) if (m * (ca + cb) > PAR_MIN)
    for (size_t r = 0; r < m; r++) {
        memcpy(out + r * (ca + cb), a + r * ca, ca * sizeof *out);
        memcpy(out + r * (ca + cb) + ca, bb + r * cb, cb * sizeof *out);
    }
    return HSD_OK;
}

enum hsd_status hsd_cpu_add_bias(struct hsd_backend *be, const struct hsd_add_bias_params *p) {
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "add_bias: NULL params");
    if (p->n <= 0 || p->p <= 0 || p->c <= 0) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "add_bias: dims must be positive (n=%d p=%d c=%d)",
                        p->n, p->p, p->c);
    }
    if (!p->x || !p->v) return hsd_fail(HSD_ERR_INVALID_ARG, "add_bias: x and v must be non-NULL");
    const size_t np = (size_t)p->n * p->p, c = (size_t)p->c, pp = (size_t)p->p;
    float *x = p->x;        // [n, p, c]
    const float *v = p->v;  // [n, c]
#pragma omp parallel for num_threads(be->threads) schedule(static) if (np * c > PAR_MIN)
    for (size_t r = 0; r < np; r++) {
        float *restrict xr = x + r * c;
        const float *restrict vr = v + (r / pp) * c;
        for (size_t j = 0; j < c; j++) xr[j] += vr[j];
    }
    return HSD_OK;
}

// Shared checks of the flat ops; `need_b` for binary ones.
static enum hsd_status check_eltwise(const char *op, const struct hsd_eltwise_params *p,
                                     int need_b) {
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: NULL params", op);
    if (p->count && (!p->out || !p->a || (need_b && !p->b))) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: out, a%s must be non-NULL", op,
                        need_b ? ", b" : "");
    }
    return HSD_OK;
}

// Flat ops run in fixed-size blocks so each thread's inner loop is a plain
// vectorisable loop and an in-place call (out == a) stays correct.
#define ELT_BLOCK ((size_t)4096)

enum hsd_status hsd_cpu_add(struct hsd_backend *be, const struct hsd_eltwise_params *p) {
    enum hsd_status st = check_eltwise("add", p, 1);
    if (st != HSD_OK) return st;
    const size_t count = p->count, blocks = (count + ELT_BLOCK - 1) / ELT_BLOCK;
    const float *a = p->a, *b = p->b;  // [count]
    float *out = p->out;               // [count], may be a or b (in place)
#pragma omp parallel for num_threads(be->threads) schedule(static) if (count > PAR_MIN)
    for (size_t blk = 0; blk < blocks; blk++) {
        const size_t i1 = (blk + 1) * ELT_BLOCK < count ? (blk + 1) * ELT_BLOCK : count;
        for (size_t i = blk * ELT_BLOCK; i < i1; i++) out[i] = a[i] + b[i];
    }
    return HSD_OK;
}

// Unary pointwise ops: one flat, blocked, in-place-safe pass each; only the
// per-element expression differs.
#define HSD_CPU_UNARY(fn, name, expr)                                                      \
    enum hsd_status fn(struct hsd_backend *be, const struct hsd_eltwise_params *p) {       \
        enum hsd_status st = check_eltwise(name, p, 0);                                    \
        if (st != HSD_OK) return st;                                                       \
        const size_t count = p->count, blocks = (count + ELT_BLOCK - 1) / ELT_BLOCK;       \
        const float *a = p->a; /* [count] */                                               \
        float *out = p->out;   /* [count], may be a (in place) */                          \
        _Pragma("omp parallel for num_threads(be->threads) schedule(static) if (count > PAR_MIN)") \
        for (size_t blk = 0; blk < blocks; blk++) {                                        \
            const size_t i1 = (blk + 1) * ELT_BLOCK < count ? (blk + 1) * ELT_BLOCK : count; \
            for (size_t i = blk * ELT_BLOCK; i < i1; i++) {                                \
                const float x = a[i];                                                      \
                out[i] = (expr);                                                           \
            }                                                                              \
        }                                                                                  \
        return HSD_OK;                                                                     \
    }

// torch.nn.functional.silu: x / (1 + exp(-x)).
HSD_CPU_UNARY(hsd_cpu_silu, "silu", hsd_cpu_silu1(x))
// transformers GELUActivation = F.gelu (exact erf), CLIP MLP in SD 2.x.
HSD_CPU_UNARY(hsd_cpu_gelu, "gelu", gelu_erf(x))
// transformers QuickGELUActivation: input * torch.sigmoid(1.702 * input),
// with 1.702 * x rounded to fp32 first as torch does, and torch's sigmoid
// 1 / (1 + exp(-y)) (0 once exp(-y) overflows, so -0 out).
HSD_CPU_UNARY(hsd_cpu_quick_gelu, "quick_gelu", x * (1.0f / (1.0f + hsd_cpu_expf(-(1.702f * x)))))
// torch.relu keeps NaN (clamp_min propagates it): the comparison sends NaN
// to the "keep" branch. TAESD's AutoencoderTinyBlock uses it.
HSD_CPU_UNARY(hsd_cpu_relu, "relu", x < 0.0f ? 0.0f : x)
