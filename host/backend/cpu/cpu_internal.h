// Private to the CPU backend (backend/cpu): the per-op entry points that
// backend_cpu.c puts in the op table, the scratch buffer they share, and
// small inline helpers (a vectorisable expf) used by several op files.
//
// Threading: big GEMMs are called outside OpenMP regions so OpenBLAS (its
// OpenMP build) uses every thread; per-tile GEMMs are called inside a
// parallel region, where OpenBLAS runs single-threaded on the calling thread.
#ifndef HSD_BACKEND_CPU_INTERNAL_H
#define HSD_BACKEND_CPU_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backend/backend.h"

// gcc tunes Intel AVX-512 targets for 256-bit vectors by default (to avoid
// frequency drops on Skylake-SP); the backend's loops are long and uniform,
// and 512-bit vectors make the exp-heavy ones (softmax, SiLU) ~20% faster
// on Sapphire Rapids. Applies to every CPU backend file, which all include
// this header after their system headers.
#if defined(__GNUC__) && !defined(__clang__) && defined(__AVX512F__)
#pragma GCC target("prefer-vector-width=512")
#endif
// gcc (12) does not if-convert the selects of hsd_cpu_expf below under
// its default -ftrapping-math (a compare might trap, so it may not be
// speculated), and without AVX-512 masking the softmax and GELU/SiLU
// loops then stay scalar: on a 2-core AVX2 EPYC, perf put 26% of an SD1.5
// U-Net batch-2 forward in the scalar softmax loop. Not trapping changes
// no value (the same IEEE operations, FP exceptions are never enabled
// here), it only lets the loops vectorise.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

// Backend-private state (be->impl). One scratch block reused by every op
// (im2col columns, attention score tiles), grown on demand, so the step loop
// does not malloc once shapes have been seen (docs/architecture.md §4 "Memory"). A
// backend is driven by one thread at a time, like a stream.
struct hsd_cpu_weights;  // cpu_weights.c
struct hsd_cpu {
    float *scratch;
    size_t scratch_bytes;
    // Weights in file precision (cpu_weights.c): the registry, and the
    // fp32 block converted last (which weight, which rows), reused while
    // the same weight is multiplied again (a conv's pixel chunks).
    struct hsd_cpu_weights *weights;
    float *wconv;
    size_t wconv_bytes;
    const void *wconv_key;
    int wconv_r0, wconv_nr;
    // The bf16 compute mode (cpu_bf16.c): on/off, and its weight copies.
    int bf16;
    struct hsd_cpu_bf16 *bf16c;
};

// One buffer made by weight_view (backend.h): `data` is the handle given
// out, borrowed from the file mapping or `owned` (an aligned copy).
struct hsd_cpu_weight {
    const void *data;     // [rows, k]; k in [ci, taps] order when taps > 1
    void *owned;          // NULL when borrowed
    enum hsd_dtype dtype;
    int rows, k, taps, refs;
};
enum hsd_status hsd_cpu_weights_init(struct hsd_cpu *cpu);
void hsd_cpu_weights_destroy(struct hsd_cpu *cpu);
void *hsd_cpu_weight_view(struct hsd_backend *be, const struct hsd_weight_view_params *p);
// Whether `h` is a weight_view buffer (then *out describes it): 0 for a
// plain fp32 buffer in the backend's layout.
int hsd_cpu_weight_find(struct hsd_backend *be, const void *h, struct hsd_cpu_weight *out);
// Drops one reference to a weight_view buffer; 0 when `h` is not one.
int hsd_cpu_weight_release(struct hsd_backend *be, void *h);
// Whether the sgemm can read w's bytes as they are (fp32, not re-laid).
int hsd_cpu_weight_direct(const struct hsd_cpu_weight *w);
// Row r of w as fp32 in its file order ([ci, taps] for a conv) into dst [k].
void hsd_cpu_weight_row(float *restrict dst, const struct hsd_cpu_weight *w, int r);
// out[m, :rows] (ldo) = a[m, k] w^T + beta out, converting w to fp32 in
// blocks of output channels (cpu_weights.c).
enum hsd_status hsd_cpu_gemm_view(struct hsd_backend *be, const struct hsd_cpu_weight *w,
                                  float *out, int ldo, const float *a, int m, float beta);

// bf16 mode (cpu_bf16.c): out[m, :n] (ldo) = bf16(a[m, k]) bf16(W)^T + beta
// out with fp32 accumulation; W is `weight` ([n, k] fp32 when wv is NULL,
// else the weight_view wv), rounded once and cached under its handle.
enum hsd_status hsd_cpu_gemm_bf16(struct hsd_backend *be, const void *weight,
                                  const struct hsd_cpu_weight *wv, float *out, int ldo,
                                  const float *a, int m, int n, int k, float beta);
// Drops the bf16 copy of the weight `key` (freed or released).
void hsd_cpu_bf16_forget(struct hsd_backend *be, const void *key);
void hsd_cpu_bf16_destroy(struct hsd_cpu *cpu);
// "sbgemm" (OpenBLAS exports cblas_sbgemm) or "emulated".
const char *hsd_cpu_bf16_path(void);
// Whether the CPU has avx512_bf16 or amx_bf16 (/proc/cpuinfo).
int hsd_cpu_bf16_native(void);

// Returns a 64-byte aligned scratch block of at least `bytes`, valid until
// the next call; NULL (with hsd_fail set) when allocation fails.
float *hsd_cpu_scratch(struct hsd_backend *be, size_t bytes);
// Makes a cblas call from this thread run on be->threads threads. The
// OpenMP build of OpenBLAS sizes each call from omp_get_max_threads() of
// the calling thread, a per-thread setting: a service worker thread that
// never set it ran its GEMMs on every core while the backend was made for
// one, and 2-thread OpenBLAS partitions round some elements differently
// (test_service's bitwise in-process comparison failed on a 2-core EPYC).
void hsd_cpu_blas_threads(const struct hsd_backend *be);
// 64-byte aligned (cache line / AVX-512 vector) host allocation.
void *hsd_cpu_aligned_alloc(size_t bytes);

// out[r, :] = bias (+ residual[r, :]) for rows [0, rows): the GEMM then
// accumulates with beta = 1, so bias and residual cost no extra pass (with
// beta = 0 OpenBLAS would zero C in a pass of its own). Returns 0 when there
// is nothing to add (the caller then uses beta = 0).
int hsd_cpu_gemm_prefill(float *restrict out, const float *restrict bias,
                         const float *residual, size_t rows, size_t cols, int threads);

enum hsd_status hsd_cpu_conv2d(struct hsd_backend *be, const struct hsd_conv2d_params *p);
// conv2d versions (cpu_conv2d.c, cpu_conv2d_winograd.c); hsd_cpu_conv2d
// checks the params and picks one. Tests and bench_cpu_ops call them by name.
enum hsd_status hsd_cpu_conv2d_v1_im2col(struct hsd_backend *be,
                                         const struct hsd_conv2d_params *p);
// Winograd F(m x m, 3 x 3), m = 2 or 4: 3x3 kernels at stride 1 only.
enum hsd_status hsd_cpu_conv2d_v2_winograd(struct hsd_backend *be,
                                           const struct hsd_conv2d_params *p, int m);
// The same, with the transformed filters of at most max_filter_bytes
// (rounded up to 16 channels) in scratch at a time: larger convs run in
// blocks of output channels (hsd_cpu_conv2d_v2_winograd uses 64 MB); and
// with every tile's transformed input and products at once when they take
// at most max_whole_bytes (64 MB there; 0: always in chunks of tiles).
enum hsd_status hsd_cpu_conv2d_v2_winograd_blocked(struct hsd_backend *be,
                                                   const struct hsd_conv2d_params *p, int m,
                                                   size_t max_filter_bytes,
                                                   size_t max_whole_bytes);
// Output channels per block for that cap.
int hsd_cpu_winograd_block_co(int m, int ci, int co, size_t max_filter_bytes);
int hsd_cpu_conv2d_winograd_applies(const struct hsd_conv2d_params *p);
// Which Winograd F(m,3) hsd_cpu_conv2d runs p with (4 or 2; 0: im2col;
// the measured rule).
int hsd_cpu_conv2d_winograd_pick(const struct hsd_conv2d_params *p);
// Tiles per thread chunk of the Winograd version.
size_t hsd_cpu_winograd_chunk_tiles(int m, int ci, int co);

enum hsd_status hsd_cpu_linear(struct hsd_backend *be, const struct hsd_linear_params *p);
enum hsd_status hsd_cpu_lora(struct hsd_backend *be, const struct hsd_lora_params *p);
enum hsd_status hsd_cpu_group_norm(struct hsd_backend *be, const struct hsd_group_norm_params *p);
enum hsd_status hsd_cpu_layer_norm(struct hsd_backend *be, const struct hsd_layer_norm_params *p);
enum hsd_status hsd_cpu_attention(struct hsd_backend *be, const struct hsd_attention_params *p);
// attention versions (cpu_attention.c, cpu_attention_flash.c);
// hsd_cpu_attention checks the params and runs the one
// hsd_cpu_attention_pick names (1 or 2, the measured rule). Tests and
// bench_cpu_ops call them by name.
enum hsd_status hsd_cpu_attention_v1_blocks(struct hsd_backend *be,
                                            const struct hsd_attention_params *p);
enum hsd_status hsd_cpu_attention_v2_flash(struct hsd_backend *be,
                                           const struct hsd_attention_params *p);
int hsd_cpu_attention_pick(const struct hsd_attention_params *p);
enum hsd_status hsd_cpu_geglu(struct hsd_backend *be, const struct hsd_geglu_params *p);
enum hsd_status hsd_cpu_upsample_nearest2x(struct hsd_backend *be,
                                           const struct hsd_upsample_params *p);
enum hsd_status hsd_cpu_concat_channels(struct hsd_backend *be, const struct hsd_concat_params *p);
enum hsd_status hsd_cpu_add_bias(struct hsd_backend *be, const struct hsd_add_bias_params *p);
enum hsd_status hsd_cpu_add(struct hsd_backend *be, const struct hsd_eltwise_params *p);
enum hsd_status hsd_cpu_silu(struct hsd_backend *be, const struct hsd_eltwise_params *p);
enum hsd_status hsd_cpu_gelu(struct hsd_backend *be, const struct hsd_eltwise_params *p);
enum hsd_status hsd_cpu_quick_gelu(struct hsd_backend *be, const struct hsd_eltwise_params *p);
enum hsd_status hsd_cpu_relu(struct hsd_backend *be, const struct hsd_eltwise_params *p);
enum hsd_status hsd_cpu_tanh_clamp(struct hsd_backend *be, const struct hsd_tanh_clamp_params *p);
enum hsd_status hsd_cpu_timestep_embedding(struct hsd_backend *be,
                                           const struct hsd_timestep_embedding_params *p);
// Step ops (cpu_step.c, backend/step_ops.h).
enum hsd_status hsd_cpu_step_input(struct hsd_backend *be, const struct hsd_step_input_params *p);
enum hsd_status hsd_cpu_cfg_combine(struct hsd_backend *be, const struct hsd_cfg_combine_params *p);
enum hsd_status hsd_cpu_sampler_step(struct hsd_backend *be,
                                     const struct hsd_sampler_step_params *p);
// The resident step's gather and scatter (cpu_resident.c, backend/resident_ops.h).
enum hsd_status hsd_cpu_step_gather(struct hsd_backend *be, const struct hsd_step_gather_params *p);
enum hsd_status hsd_cpu_step_scatter(struct hsd_backend *be,
                                     const struct hsd_step_scatter_params *p);

// fmaf where the target has FMA (C99 FP_FAST_FMAF, set by -mfma/-march),
// else a multiply and an add. The build is ISO C (-std=c11), where gcc does
// not contract a * b + c on its own.
#ifdef FP_FAST_FMAF
#define HSD_CPU_FMAF(a, b, c) fmaf(a, b, c)
#else
#define HSD_CPU_FMAF(a, b, c) ((a) * (b) + (c))
#endif

// expf that gcc vectorises (glibc's expf is a call, so loops using it stay
// scalar without -ffast-math). Cephes expf: Cody-Waite reduction by ln 2
// and a degree-6 minimax polynomial, ~1 ulp, the accuracy class of the
// Sleef_expf*_u10 behind PyTorch's vectorised CPU kernels. 2^n goes into
// the exponent bits as 2^(n-1), then one multiply by 2, so results above
// FLT_MAX become +inf exactly as expf does. NaN stays NaN. Differs from
// expf only below x = -86, where it returns 0 for values < 4.5e-38 (softmax
// and SiLU cannot see them).
static inline float hsd_cpu_expf(float x) {
    float xc = x < -86.0f ? -86.0f : x;  // n >= -124: 2^(n-1) stays normal
    xc = xc > 89.0f ? 89.0f : xc;        // exp(89) > FLT_MAX: still overflows
    // Round-to-nearest by the 1.5 * 2^23 trick: t's low mantissa bits hold
    // n as an integer, so no float-to-int conversion is needed.
    const float shifter = 12582912.0f;
    const float t = HSD_CPU_FMAF(xc, 1.44269504088896341f, shifter);
    const float n = t - shifter;
    float r = HSD_CPU_FMAF(n, -0.693359375f, xc);  // ln 2 in a short high part
    r = HSD_CPU_FMAF(n, 2.12194440e-4f, r);        // and the rest (Cephes C1, C2)
    float p = 1.9875691500e-4f;
    p = HSD_CPU_FMAF(p, r, 1.3981999507e-3f);
    p = HSD_CPU_FMAF(p, r, 8.3334519073e-3f);
    p = HSD_CPU_FMAF(p, r, 4.1665795894e-2f);
    p = HSD_CPU_FMAF(p, r, 1.6666665459e-1f);
    p = HSD_CPU_FMAF(p, r, 5.0000001201e-1f);
    p = HSD_CPU_FMAF(p * r, r, r) + 1.0f;
    uint32_t tb, pb;
    memcpy(&tb, &t, sizeof tb);
    memcpy(&pb, &p, sizeof pb);
    pb += (tb - 0x4B400001u) << 23;  // n - 1 added to p's exponent
    float y;
    memcpy(&y, &pb, sizeof y);
    y *= 2.0f;
    y = x < -86.0f ? 0.0f : y;
    return x == x ? y : x;
}

// x * sigmoid(x) written as torch does, x / (1 + exp(-x)); like torch it
// returns -0 once exp(-x) overflows (x < -88.72).
static inline float hsd_cpu_silu1(float x) { return x / (1.0f + hsd_cpu_expf(-x)); }

#endif
