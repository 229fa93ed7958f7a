// group_norm (torch.nn.GroupNorm, + optional SiLU: diffusers ResnetBlock2D
// norm1/act) and layer_norm (torch.nn.LayerNorm) over NHWC / [m, c] rows.
//
// Statistics: sums of x and x^2 accumulated in double, so mean and the
// biased variance match torch to ~1e-7 relative whatever the count
// (hw * c/groups reaches 4096*10 per group at SD 64x64). The apply step is
// torch's: per channel a = rstd * gamma, b = beta - a * mean, y = x a + b
// (aten/src/ATen/native/cpu/group_norm_kernel.cpp, channels-last path).
//
// GroupNorm streams each sample once for per-channel sums (threads split
// the pixels, inner loop over contiguous channels), folds the channel sums
// into groups, then streams once more to apply.
//
// Test: ctest -R cpu_ops. Time: bench_cpu_ops (group_norm [2, 4096, 320]).
#include <math.h>
#include <omp.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/status.h"

// Per-channel sum and sum of squares over pixels [p0, p1) of one sample.
static void channel_sums(double *restrict s, double *restrict ss, const float *restrict x,
                         size_t p0, size_t p1, size_t c) {
    for (size_t j = 0; j < c; j++) s[j] = ss[j] = 0.0;
    for (size_t px = p0; px < p1; px++) {
        const float *restrict row = x + px * c;
        for (size_t j = 0; j < c; j++) {
            double v = row[j];
            s[j] += v;
            ss[j] += v * v;
        }
    }
}

enum hsd_status hsd_cpu_group_norm(struct hsd_backend *be, const struct hsd_group_norm_params *p) {
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "group_norm: NULL params");
    if (p->n <= 0 || p->hw <= 0 || p->c <= 0 || p->groups <= 0) {
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "group_norm: dims must be positive (n=%d hw=%d c=%d groups=%d)", p->n,
                        p->hw, p->c, p->groups);
    }
    if (p->c % p->groups != 0) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "group_norm: c=%d is not divisible by groups=%d",
                        p->c, p->groups);
    }
    if (!p->out || !p->in || !p->gamma || !p->beta) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "group_norm: out, in, gamma, beta must be non-NULL");
    }
    if (!(p->eps >= 0.0f)) return hsd_fail(HSD_ERR_INVALID_ARG, "group_norm: eps must be >= 0");
    const size_t n = (size_t)p->n, hw = (size_t)p->hw, c = (size_t)p->c;
    const size_t cg = c / (size_t)p->groups;
    const int threads = be->threads;
    const float *in = p->in;        // [n, hw, c]
    float *out = p->out;            // [n, hw, c]
    const float *gamma = p->gamma;  // [c]
    const float *beta = p->beta;    // [c]

    // Scratch: per-thread partial channel sums (2 * threads * c doubles),
    // then the per-sample apply coefficients a, b ([n, c] floats each).
    const size_t part_doubles = 2 * (size_t)threads * c;
    double *part = (double *)hsd_cpu_scratch(be, part_doubles * sizeof(double) +
                                                     2 * n * c * sizeof(float));
    if (!part) return hsd_fail_context(HSD_ERR_NOMEM, "group_norm: ");
    float *coef_a = (float *)(part + part_doubles);
    float *coef_b = coef_a + n * c;

    for (size_t b = 0; b < n; b++) {
        const float *x = in + b * hw * c;
        int used = 1;
#pragma omp parallel num_threads(threads) if (hw * c > 65536)
        {
            const int nt = omp_get_num_threads(), t = omp_get_thread_num();
            const size_t p0 = hw * (size_t)t / (size_t)nt, p1 = hw * (size_t)(t + 1) / (size_t)nt;
            double *s = part + 2 * (size_t)t * c;
            channel_sums(s, s + c, x, p0, p1, c);
            if (t == 0) used = nt;
        }
        for (int g = 0; g < p->groups; g++) {
            double sum = 0.0, sumsq = 0.0;
            for (int t = 0; t < used; t++) {
                const double *s = part + 2 * (size_t)t * c;
                for (size_t j = (size_t)g * cg; j < (size_t)(g + 1) * cg; j++) {
                    sum += s[j];
                    sumsq += s[c + j];
                }
            }
            const double count = (double)hw * (double)cg;
            const double mean = sum / count;
            double var = sumsq / count - mean * mean;  // biased, as torch
            if (var < 0.0) var = 0.0;                   // rounding on constant groups
            const double rstd = 1.0 / sqrt(var + (double)p->eps);
            for (size_t j = (size_t)g * cg; j < (size_t)(g + 1) * cg; j++) {
                // b from the float-rounded a, as torch computes it in fp32:
                // x a + b then cancels consistently when |mean| >> std.
                const float a = (float)(rstd * (double)gamma[j]);
                coef_a[b * c + j] = a;
                coef_b[b * c + j] = (float)((double)beta[j] - (double)a * mean);
            }
        }
    }

    const int silu = p->silu;
#pragma omp parallel for num_threads(threads) schedule(static) if (n * hw * c > 65536)
    for (size_t row = 0; row < n * hw; row++) {
        const float *restrict x = in + row * c;
        float *restrict y = out + row * c;
        const float *restrict a = coef_a + (row / hw) * c;
        const float *restrict bb = coef_b + (row / hw) * c;
        if (silu) {
            for (size_t j = 0; j < c; j++) y[j] = hsd_cpu_silu1(x[j] * a[j] + bb[j]);
        } else {
            for (size_t j = 0; j < c; j++) y[j] = x[j] * a[j] + bb[j];
        }
    }
    return HSD_OK;
}

enum hsd_status hsd_cpu_layer_norm(struct hsd_backend *be, const struct hsd_layer_norm_params *p) {
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "layer_norm: NULL params");
    if (p->m <= 0 || p->c <= 0) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "layer_norm: dims must be positive (m=%d c=%d)", p->m,
                        p->c);
    }
    if (!p->out || !p->in || !p->gamma || !p->beta) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "layer_norm: out, in, gamma, beta must be non-NULL");
    }
    if (!(p->eps >= 0.0f)) return hsd_fail(HSD_ERR_INVALID_ARG, "layer_norm: eps must be >= 0");
    const size_t m = (size_t)p->m, c = (size_t)p->c;
    const float *in = p->in;        // [m, c]
    float *out = p->out;            // [m, c]
    const float *gamma = p->gamma;  // [c]
    const float *beta = p->beta;    // [c]
#pragma omp parallel for num_threads(be->threads) schedule(static) if (m * c > 65536)
    for (size_t r = 0; r < m; r++) {
        const float *restrict x = in + r * c;
        float *restrict y = out + r * c;
        double sum = 0.0, sumsq = 0.0;
        // omp simd lets gcc reorder this double reduction into vector lanes
        // (strict C forbids it without -ffast-math).
#pragma omp simd reduction(+ : sum, sumsq)
        for (size_t j = 0; j < c; j++) {
            double v = x[j];
            sum += v;
            sumsq += v * v;
        }
        const double mean = sum / (double)c;
        double var = sumsq / (double)c - mean * mean;
        if (var < 0.0) var = 0.0;
        // torch LayerNormKernelImpl: y = (x * rstd + (-rstd * mean)) * gamma + beta
        const float rstd = (float)(1.0 / sqrt(var + (double)p->eps));
        const float shift = (float)(-mean) * rstd;
        for (size_t j = 0; j < c; j++) y[j] = (x[j] * rstd + shift) * gamma[j] + beta[j];
    }
    return HSD_OK;
}
