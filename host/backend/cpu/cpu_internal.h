// Private to the CPU backend (backend/cpu): the per-op entry points that
// backend_cpu.c puts in the op table, the scratch buffer they share, and
// small inline helpers (a vectorisable expf) used by several op files.
//
// Threading: big GEMMs are called outside OpenMP regions so OpenBLAS (its
// OpenMP build) uses every thread; per-tile GEMMs are called inside a
// parallel region, where OpenBLAS runs single-threaded on the calling thread.
#ifndef HSD_BACKEND_CPU_INTERNAL_H
#define HSD_BACKEND_CPU_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backend/backend.h"

// Backend-private state (be->impl). One scratch block reused by every op
// (im2col columns, attention score tiles), grown on demand, so the step loop
// does not malloc once shapes have been seen (DESIGN.md §4 "Memory"). A
// backend is driven by one thread at a time, like a stream.
struct hsd_cpu {
    float *scratch;
    size_t scratch_bytes;
};

// Returns a 64-byte aligned scratch block of at least `bytes`, valid until
// the next call; NULL (with hsd_fail set) when allocation fails.
float *hsd_cpu_scratch(struct hsd_backend *be, size_t bytes);
// 64-byte aligned (cache line / AVX-512 vector) host allocation.
void *hsd_cpu_aligned_alloc(size_t bytes);

// out[r, :] = bias (+ residual[r, :]) for rows [0, rows): the GEMM then
// accumulates with beta = 1, so bias and residual cost no extra pass (with
// beta = 0 OpenBLAS would zero C in a pass of its own). Returns 0 when there
// is nothing to add (the caller then uses beta = 0).
int hsd_cpu_gemm_prefill(float *restrict out, const float *restrict bias,
                         const float *residual, size_t rows, size_t cols, int threads);

enum hsd_status hsd_cpu_conv2d(struct hsd_backend *be, const struct hsd_conv2d_params *p);
enum hsd_status hsd_cpu_linear(struct hsd_backend *be, const struct hsd_linear_params *p);
enum hsd_status hsd_cpu_group_norm(struct hsd_backend *be, const struct hsd_group_norm_params *p);
enum hsd_status hsd_cpu_layer_norm(struct hsd_backend *be, const struct hsd_layer_norm_params *p);
enum hsd_status hsd_cpu_attention(struct hsd_backend *be, const struct hsd_attention_params *p);
enum hsd_status hsd_cpu_geglu(struct hsd_backend *be, const struct hsd_geglu_params *p);
enum hsd_status hsd_cpu_upsample_nearest2x(struct hsd_backend *be,
                                           const struct hsd_upsample_params *p);
enum hsd_status hsd_cpu_concat_channels(struct hsd_backend *be, const struct hsd_concat_params *p);
enum hsd_status hsd_cpu_add_bias(struct hsd_backend *be, const struct hsd_add_bias_params *p);
enum hsd_status hsd_cpu_add(struct hsd_backend *be, const struct hsd_eltwise_params *p);
enum hsd_status hsd_cpu_silu(struct hsd_backend *be, const struct hsd_eltwise_params *p);
enum hsd_status hsd_cpu_timestep_embedding(struct hsd_backend *be,
                                           const struct hsd_timestep_embedding_params *p);

// expf that gcc vectorises (glibc's expf is a call, so loops using it stay
// scalar without -ffast-math). Cephes expf: Cody-Waite reduction by ln 2 and
// a degree-6 minimax polynomial, about 1 ulp, the accuracy class of the
// Sleef_expf*_u10 that PyTorch's vectorised CPU kernels use. Overflow gives
// +inf, underflow denormals then 0, NaN stays NaN, as expf does: 2^n is
// applied as two halves so each stays a normal float over the whole
// clamped range n in [-149, 129].
static inline float hsd_cpu_expf(float x) {
    float xc = x > -103.0f ? x : -103.0f;  // exp(-103) < 2^-149: rounds to 0
    xc = xc < 89.0f ? xc : 89.0f;          // exp(89) > FLT_MAX: becomes inf
    // Round-to-nearest by the 1.5 * 2^23 trick: exact, and vectorises
    // without SSE4.1 rounding instructions or -ffast-math.
    const float shifter = 12582912.0f;
    const float n = (xc * 1.44269504088896341f + shifter) - shifter;
    float r = xc - n * 0.693359375f;  // ln 2 split in a short high part...
    r = r - n * -2.12194440e-4f;      // ...and the rest (Cephes C1, C2)
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int32_t ni = (int32_t)n, n1 = ni / 2, n2 = ni - n1;
    const int32_t e1 = (n1 + 127) << 23, e2 = (n2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &e1, sizeof s1);
    memcpy(&s2, &e2, sizeof s2);
    const float y = p * s1 * s2;
    return x == x ? y : x;
}

// x * sigmoid(x) written as torch does, x / (1 + exp(-x)); like torch it
// returns -0 once exp(-x) overflows (x < -88.7).
static inline float hsd_cpu_silu1(float x) { return x / (1.0f + hsd_cpu_expf(-x)); }

#endif
