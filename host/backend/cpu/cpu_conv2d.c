// conv2d: torch.nn.functional.conv2d (zero padding, square stride, no
// dilation/groups; optional extra bottom/right padding, F.pad (0, 1, 0, 1)
// of diffusers Downsample2D(padding=0)) on NHWC maps with weights re-laid to [co, kh, kw, ci],
// plus bias and an optional fused residual (diffusers ResnetBlock2D adds its
// shortcut after conv2).
//
// Versions (hsd_cpu_conv2d checks the params and picks one):
//   v2 Winograd F(4,3) (cpu_conv2d_winograd.c): 3x3 stride 1 with >= 64
//     output tiles, F(2,3) with >= 16 (16x16 and 8x8 maps; its rule,
//     measured there), in blocks of output
//     channels whose transformed filters fit 64 MB; TAESD decode 512^2
//     1650 -> 589 ms, SD VAE 18.6 -> 8.0 s, SD1.5 up_blocks[2] concat convs
//     (1920/1280/960 -> 640, 32x32, batch 2) 2-3x faster than im2col.
//   v1 im2col, everything else:
//   1x1, stride 1, pad 0: one GEMM straight on the input, no copy.
//   otherwise: im2col over a chunk of output pixels into a [rows, kh*kw*ci]
//     column buffer whose row order equals the weight's [kh, kw, ci] order,
//     then one GEMM per chunk writes NHWC output directly.
//   Chunk sizing: see k_col_target_bytes.
//   --cpu-precision bf16: im2col for every shape (no Winograd), each GEMM
//     through hsd_cpu_gemm_bf16 (cpu_bf16.c).
//   Weights kept in file precision/layout (cpu_weights.c) go through
//   hsd_cpu_gemm_view: a weight of up to 32 MB as fp32 converts once per
//   call and serves every chunk; a larger one converts per chunk, in blocks.
//   SD1.5 64x64 latent, batch 2, 2 SPR cores (bench_cpu_ops): 3x3 convs at
//   220-277 GFLOP/s = 66-83% of the 333 GFLOP/s FMA peak (run-to-run noise
//   of this shared VM), 80-95% of sgemm 2048^3 in the same run; im2col and
//   the weight repacking per chunk are the rest.
//
// Test: ctest -R 'cpu_ops|cpu_winograd'. Time: bench_cpu_ops [threads] conv2d|vae
// (every version per shape).
#include <cblas.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/status.h"

// Column-buffer budget per GEMM. Each chunk's GEMM repacks the whole weight
// (co x K), so chunks must have enough rows to amortise that (rows >= 512
// keeps it under a few %), while the columns should stay small enough to be
// re-read from cache by the GEMM. Measured flat (within the 5% noise of this
// 2-core machine) from 2 to 32 MiB at SD1.5 shapes; 1 MiB is ~8% slower at
// 64x64x320.
static const size_t k_col_target_bytes = (size_t)8 << 20;
static const size_t k_min_chunk_rows = 512;

// Copies the receptive fields of output pixels [r0, r1) into col
// ([r1 - r0, kh*kw*ci]); taps falling in the padding are zero.
static void im2col_chunk(float *restrict col, const float *restrict in, size_t r0, size_t r1,
                         const struct hsd_conv2d_params *p, int ho, int wo, int threads) {
    const size_t ci = (size_t)p->ci, K = (size_t)p->kh * p->kw * ci;
    const size_t plane = (size_t)ho * wo;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_t r = r0; r < r1; r++) {
        float *restrict dst = col + (r - r0) * K;
        const size_t b = r / plane, rem = r % plane;
        const int oy = (int)(rem / (size_t)wo), ox = (int)(rem % (size_t)wo);
        const int iy0 = oy * p->stride - p->pad, ix0 = ox * p->stride - p->pad;
        const float *src_b = in + b * (size_t)p->h * p->w * ci;
        // The kw taps of one kernel row are adjacent pixels, so when they are
        // all inside the image they are one contiguous kw*ci run.
        const int row_inside = ix0 >= 0 && ix0 + p->kw <= p->w;
        for (int ky = 0; ky < p->kh; ky++) {
            const int iy = iy0 + ky;
            float *restrict d = dst + (size_t)ky * p->kw * ci;
            if (iy < 0 || iy >= p->h) {
                memset(d, 0, (size_t)p->kw * ci * sizeof *d);
                continue;
            }
            const float *src_row = src_b + (size_t)iy * p->w * ci;
            if (row_inside) {
                memcpy(d, src_row + (size_t)ix0 * ci, (size_t)p->kw * ci * sizeof *d);
                continue;
            }
            for (int kx = 0; kx < p->kw; kx++) {
                const int ix = ix0 + kx;
                if (ix < 0 || ix >= p->w) {
                    memset(d + (size_t)kx * ci, 0, ci * sizeof *d);
                } else {
                    memcpy(d + (size_t)kx * ci, src_row + (size_t)ix * ci, ci * sizeof *d);
                }
            }
        }
    }
}

static enum hsd_status check(const struct hsd_conv2d_params *p) {
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "conv2d: NULL params");
    if (p->n <= 0 || p->h <= 0 || p->w <= 0 || p->ci <= 0 || p->co <= 0 || p->kh <= 0 ||
        p->kw <= 0 || p->stride <= 0 || p->pad < 0 || p->pad_bottom < 0 || p->pad_right < 0) {
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "conv2d: bad dims n=%d h=%d w=%d ci=%d co=%d kh=%d kw=%d stride=%d pad=%d "
                        "pad_bottom=%d pad_right=%d (sizes and stride must be positive, pads >= 0)",
                        p->n, p->h, p->w, p->ci, p->co, p->kh, p->kw, p->stride, p->pad,
                        p->pad_bottom, p->pad_right);
    }
    const int hp = p->h + 2 * p->pad + p->pad_bottom, wp = p->w + 2 * p->pad + p->pad_right;
    if (hp < p->kh || wp < p->kw) {
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "conv2d: kernel %dx%d larger than padded input %dx%d (%dx%d, pad %d)",
                        p->kh, p->kw, hp, wp, p->h, p->w, p->pad);
    }
    if (!p->out || !p->in || !p->weight) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "conv2d: out, in and weight must be non-NULL");
    }
    return HSD_OK;
}

enum hsd_status hsd_cpu_conv2d_v1_im2col(struct hsd_backend *be,
                                         const struct hsd_conv2d_params *p) {
    const int hp = p->h + 2 * p->pad + p->pad_bottom, wp = p->w + 2 * p->pad + p->pad_right;
    // Taps past the bottom/right edge (pad_bottom, pad_right) read as zero
    // in im2col_chunk like any other padding tap.
    const int ho = (hp - p->kh) / p->stride + 1;
    const int wo = (wp - p->kw) / p->stride + 1;
    const size_t rows = (size_t)p->n * ho * wo;
    const size_t K = (size_t)p->kh * p->kw * p->ci;
    const size_t co = (size_t)p->co;
    if (rows > (size_t)INT32_MAX || K > (size_t)INT32_MAX) {
        return hsd_fail(HSD_ERR_UNSUPPORTED, "conv2d: %zu output pixels x %zu taps exceed BLAS int",
                        rows, K);
    }
    float *out = p->out;                 // [n, ho, wo, co]
    const float *in = p->in;             // [n, h, w, ci]
    const float *weight = p->weight;     // [co, kh, kw, ci]
    const float *residual = p->residual; // [n, ho, wo, co] or NULL

    // A weight kept in its file's precision and layout (cpu_weights.c).
    struct hsd_cpu_weight wv;
    const int view = hsd_cpu_weight_find(be, weight, &wv);
    // --cpu-precision bf16 (cpu_bf16.c): the GEMMs take bf16 operands.
    const int bf16 = ((struct hsd_cpu *)be->impl)->bf16;
    if (view && (wv.rows != p->co || wv.k != (int)K || wv.taps != p->kh * p->kw))
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "conv2d: weight is [%d, %d] with %d taps, the call wants [%d, %zu] with "
                        "%dx%d taps",
                        wv.rows, wv.k, wv.taps, p->co, K, p->kh, p->kw);

    if (p->kh == 1 && p->kw == 1 && p->stride == 1 && hp == p->h && wp == p->w) {
        // The NHWC input already is the [rows, ci] column matrix.
        int acc = hsd_cpu_gemm_prefill(out, p->bias, residual, rows, co, be->threads);
        if (bf16)
            return hsd_cpu_gemm_bf16(be, weight, view ? &wv : NULL, out, p->co, in, (int)rows,
                                     p->co, p->ci, acc ? 1.0f : 0.0f);
        if (view) return hsd_cpu_gemm_view(be, &wv, out, p->co, in, (int)rows, acc ? 1.0f : 0.0f);
        hsd_cpu_blas_threads(be);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, p->co, p->ci, 1.0f, in,
                    p->ci, weight, p->ci, acc ? 1.0f : 0.0f, out, p->co);
        return HSD_OK;
    }

    size_t chunk = k_col_target_bytes / (K * sizeof(float));
    if (chunk < k_min_chunk_rows) chunk = k_min_chunk_rows;
    if (chunk > rows) chunk = rows;
    float *col = hsd_cpu_scratch(be, chunk * K * sizeof(float));
    if (!col) return hsd_fail_context(HSD_ERR_NOMEM, "conv2d: ");
    for (size_t r0 = 0; r0 < rows; r0 += chunk) {
        const size_t r1 = r0 + chunk < rows ? r0 + chunk : rows;
        im2col_chunk(col, in, r0, r1, p, ho, wo, be->threads);
        float *o = out + r0 * co;
        int acc = hsd_cpu_gemm_prefill(o, p->bias, residual ? residual + r0 * co : NULL, r1 - r0,
                                       co, be->threads);
        if (bf16 || view) {
            enum hsd_status s =
                bf16 ? hsd_cpu_gemm_bf16(be, weight, view ? &wv : NULL, o, p->co, col,
                                         (int)(r1 - r0), p->co, (int)K, acc ? 1.0f : 0.0f)
                     : hsd_cpu_gemm_view(be, &wv, o, p->co, col, (int)(r1 - r0),
                                         acc ? 1.0f : 0.0f);
            if (s) return s;
            continue;
        }
        hsd_cpu_blas_threads(be);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(r1 - r0), p->co, (int)K, 1.0f,
                    col, (int)K, weight, (int)K, acc ? 1.0f : 0.0f, o, p->co);
    }
    return HSD_OK;
}

enum hsd_status hsd_cpu_conv2d(struct hsd_backend *be, const struct hsd_conv2d_params *p) {
    enum hsd_status s = check(p);
    if (s) return s;
    // The bf16 mode bypasses Winograd: torch's bf16 autocast rounds the
    // conv's inputs and weights, not Winograd's transformed tiles.
    const int bf16 = ((struct hsd_cpu *)be->impl)->bf16;
    const int m = bf16 ? 0 : hsd_cpu_conv2d_winograd_pick(p);
    if (m) return hsd_cpu_conv2d_v2_winograd(be, p, m);
    return hsd_cpu_conv2d_v1_im2col(be, p);
}
