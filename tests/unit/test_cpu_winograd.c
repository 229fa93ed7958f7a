// The CPU conv2d's Winograd version (host/backend/cpu/cpu_conv2d_winograd.c)
// against its im2col version, the direct fp32 conv that test_cpu_ops holds
// to naive double references, on real SD shapes (U-Net, SD VAE, TAESD) and
// odd ones: sizes that are not a multiple of the tile, pad 0 and extra
// bottom/right padding, channel counts that are not a multiple of 8 or of
// the transforms' 64-channel blocks, batch > 1, bias and an in-place
// residual. Both F(2,3) and F(4,3) run, whichever the op table picks.
//
// Tolerances (max |winograd - direct| / max |direct|, direct = im2col fp32,
// whose own error is ~sqrt(K) * 6e-8 of max|ref|, K = 9 ci: test_cpu_ops):
// Winograd multiplies a*a transformed values per channel; the transforms'
// coefficients scale the rounding of every GEMM term (F(4,3): B^T entries
// up to 5, A^T up to 8, G down to 1/24; F(2,3): all 1 or 1/2), and the
// random-signed errors grow like sqrt(ci). Measured on the cases below,
// uniform [-1, 1] data: F(2,3) <= 8.6e-7, F(4,3) <= 1.45e-5 (at 320-640
// channels; ~10x the direct conv's own error for F(2,3) and ~100x for
// F(4,3), the order Barabasz et al., "Error analysis and improving the
// accuracy of Winograd convolution", arXiv 1803.10986, report for fp32).
// Bounds: TOL_WINO2 = 1e-5 (test_cpu_ops's TOL_GEMM, 10x margin) and
// TOL_WINO4 = 5e-5: sqrt growth to SD's largest K (1280 channels, 2x the
// 640 of the worst case measured) predicts ~2e-5, and 5e-5 still fails
// on any wrong tap, tile edge, channel or transform coefficient (errors
// of 1e-2 to 1 relative).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_internal.h"
#include "core/assert.h"
#include "core/dtype.h"
#include "testutil.h"

#define TOL_WINO2 1e-5
#define TOL_WINO4 5e-5

static struct hsd_backend *g_be;
static uint64_t g_seed = 3;
static double g_worst[5];  // by m
// Transformed-filter cap per block of output channels; 0: the op table's
// (hsd_cpu_conv2d_v2_winograd). 1 byte forces blocks of 16 channels.
static size_t g_cap;
// 1: all tiles in chunks (the op table runs up to 64 MB of transformed
// inputs and products at once, which every small case here fits).
static int g_chunked;

static enum hsd_status wino(const struct hsd_conv2d_params *p, int m) {
    if (!g_cap && !g_chunked) return hsd_cpu_conv2d_v2_winograd(g_be, p, m);
    return hsd_cpu_conv2d_v2_winograd_blocked(g_be, p, m, g_cap ? g_cap : (size_t)64 << 20,
                                              g_chunked ? 0 : (size_t)64 << 20);
}

// Uniform in [-scale, scale), or NaN (a poisoned output: an element the
// op forgets to write fails the comparison) when scale is NaN.
static float *uniform(size_t n, float scale) {
    float *x = hsd_cpu_aligned_alloc((n ? n : 1) * sizeof *x);
    HSD_ASSERT(x);
    hsd_test_fill_uniform(x, n, g_seed++, isnan(scale) ? 1.0f : scale);
    for (size_t i = 0; isnan(scale) && i < n; i++) x[i] = scale;
    return x;
}

// One shape: im2col once, then Winograd F(2,3) and F(4,3) with and without
// the residual in place.
static void wino_case(int n, int h, int w, int ci, int co, int pad, int pb, int pr, int bias_on,
                      int res_on) {
    const int ho = h + 2 * pad + pb - 2, wo = w + 2 * pad + pr - 2;
    const size_t nin = (size_t)n * h * w * ci, nw = (size_t)co * 9 * ci;
    const size_t nout = (size_t)n * ho * wo * co;
    float *in = uniform(nin, 1.0f), *wt = uniform(nw, 1.0f);
    float *bias = bias_on ? uniform((size_t)co, 1.0f) : NULL;
    float *res = res_on ? uniform(nout, 1.0f) : NULL;
    float *ref = uniform(nout, NAN), *got = uniform(nout, NAN);
    struct hsd_conv2d_params p = {.out = ref, .in = in, .weight = wt, .bias = bias,
                                  .residual = res, .n = n, .h = h, .w = w, .ci = ci, .co = co,
                                  .kh = 3, .kw = 3, .stride = 1, .pad = pad, .pad_bottom = pb,
                                  .pad_right = pr};
    CHECK(hsd_cpu_conv2d_winograd_applies(&p));
    CHECK_OK(hsd_cpu_conv2d_v1_im2col(g_be, &p));
    for (int m = 2; m <= 4; m += 2) {
        char what[160];
        snprintf(what, sizeof what, "winograd F(%d,3) n%d %dx%d %d->%d p%d+%d,%d%s%s cob %d", m,
                 n, h, w, ci, co, pad, pb, pr, bias_on ? " b" : "", res_on ? " r" : "",
                 hsd_cpu_winograd_block_co(m, ci, co, g_cap ? g_cap : (size_t)64 << 20));
        for (size_t i = 0; i < nout; i++) got[i] = NAN;
        p.out = got;
        CHECK_OK(wino(&p, m));
        CHECK_CLOSE(what, got, ref, nout, m == 2 ? TOL_WINO2 : TOL_WINO4);
        struct hsd_cmp c = hsd_compare(got, ref, nout);
        double e = c.max_abs_ref > 0 ? c.max_abs_err / c.max_abs_ref : c.max_abs_err;
        if (e > g_worst[m]) g_worst[m] = e;
        if (res) {
            // In place: the residual is the output buffer (the VAE's and
            // TAESD's ResNet blocks).
            memcpy(got, res, nout * sizeof *got);
            p.out = got;
            p.residual = got;
            CHECK_OK(wino(&p, m));
            strncat(what, " inplace", sizeof what - strlen(what) - 1);
            CHECK_CLOSE(what, got, ref, nout, m == 2 ? TOL_WINO2 : TOL_WINO4);
            p.residual = res;
        }
    }
    free(in), free(wt), free(bias), free(res), free(ref), free(got);
}

// The op table's conv2d with a weight kept fp16 (weight_view, PyTorch
// [co, ci, 3, 3] layout) must equal it with the same values as fp32 in the
// backend's layout, bitwise: the filter transform sees the same floats.
static void view_case(int n, int h, int ci, int co) {
    const size_t nin = (size_t)n * h * h * ci, nw = (size_t)co * 9 * ci;
    const size_t nout = (size_t)n * h * h * co;
    float *in = uniform(nin, 1.0f), *wf = uniform(nw, 1.0f), *wl = uniform(nw, 1.0f);
    uint16_t *half = malloc(nw * sizeof *half);
    HSD_ASSERT(half);
    for (size_t i = 0; i < nw; i++) {
        half[i] = hsd_f32_to_f16(wf[i]);
        wf[i] = hsd_f16_to_f32(half[i]);  // [co, ci, 9], exactly representable
    }
    for (int o = 0; o < co; o++)  // re-laid to [co, 9, ci]
        for (int c = 0; c < ci; c++)
            for (int k = 0; k < 9; k++)
                wl[((size_t)o * 9 + k) * ci + c] = wf[((size_t)o * ci + c) * 9 + k];
    struct hsd_weight_view_params vp = {.data = half, .dtype = HSD_F16, .rows = co,
                                        .k = ci * 9, .taps = 9, .copy = 1};
    void *view = g_be->ops->weight_view(g_be, &vp);
    CHECK(view != NULL);
    float *a = uniform(nout, NAN), *b = uniform(nout, NAN);
    struct hsd_conv2d_params p = {.out = a, .in = in, .weight = wl, .n = n, .h = h, .w = h,
                                  .ci = ci, .co = co, .kh = 3, .kw = 3, .stride = 1, .pad = 1};
    for (int m = 2; m <= 4; m += 2) {
        p.out = a, p.weight = wl;
        CHECK_OK(hsd_cpu_conv2d_v2_winograd(g_be, &p, m));
        p.out = b, p.weight = view;
        CHECK_OK(hsd_cpu_conv2d_v2_winograd(g_be, &p, m));
        struct hsd_cmp c = hsd_compare(b, a, nout);
        CHECKF(c.max_abs_err == 0.0 && c.n_nonfinite == 0,
               "F(%d,3) fp16 view vs fp32: max err %.3g at %zu, %zu non-finite", m,
               c.max_abs_err, c.worst, c.n_nonfinite);
    }
    g_be->ops->free(g_be, view);
    free(in), free(wf), free(wl), free(half), free(a), free(b);
}

int main(void) {
    CHECK_OK(hsd_backend_cpu_create(&g_be, 0));
    if (!g_be) return hsd_test_finish();

    // Odd shapes.
    //        n  h   w  ci co pad pb pr bias res
    wino_case(1, 1, 1, 3, 2, 1, 0, 0, 1, 0);     // one pixel: every tap but the centre is pad
    wino_case(1, 5, 7, 3, 5, 1, 0, 0, 1, 1);     // conv_in-like ci = 3, h != w, partial tiles
    wino_case(3, 9, 6, 5, 7, 1, 0, 0, 0, 1);     // batch 3, odd channels, no bias
    wino_case(1, 6, 6, 5, 3, 0, 0, 0, 1, 0);     // pad 0
    wino_case(2, 7, 10, 4, 6, 1, 1, 2, 1, 1);    // extra bottom/right padding
    wino_case(1, 13, 11, 65, 67, 1, 0, 0, 1, 1); // channels one past a 64-block
    wino_case(2, 17, 17, 130, 9, 1, 0, 0, 1, 0); // 2 channel blocks + 2
    // Output channels in blocks of 16 (a tiny filter cap): 67 = 4 blocks
    // + 3, bias and in-place residual on every block.
    g_cap = 1;
    wino_case(1, 13, 11, 65, 67, 1, 0, 0, 1, 1);
    wino_case(2, 7, 10, 4, 33, 1, 1, 2, 1, 1);
    wino_case(1, 9, 9, 20, 16, 1, 0, 0, 0, 1);   // exactly one block
    g_cap = 0;
    // Tiles in chunks of >= 64 (hsd_cpu_winograd_chunk_tiles), each thread
    // on its own: 1, 3 (F(2,3): 162 tiles) and several chunks, in blocks.
    g_chunked = 1;
    wino_case(3, 9, 6, 5, 7, 1, 0, 0, 0, 1);
    wino_case(2, 17, 17, 130, 9, 1, 0, 0, 1, 0);
    wino_case(1, 64, 64, 64, 64, 1, 0, 0, 1, 1);   // 3 and 4 chunks
    g_cap = 1;
    wino_case(2, 7, 10, 4, 33, 1, 1, 2, 1, 1);
    g_cap = 0;
    g_chunked = 0;
    // Real shapes (batch 1 to bound the test's time under ASan).
    wino_case(1, 64, 64, 320, 320, 1, 0, 0, 1, 1);   // SD1.5 U-Net down_blocks[0]
    wino_case(1, 32, 32, 640, 640, 1, 0, 0, 1, 0);   // down_blocks[2] / up_blocks[1]
    // up_blocks[2] concat conv: 118 MB of transformed filters, so two blocks
    // of 320 output channels under the 64 MB cap (16x16 instead of its
    // 32x32 map to bound the time under ASan; the blocks do not see h, w).
    wino_case(1, 16, 16, 1280, 640, 1, 0, 0, 1, 1);
    wino_case(1, 64, 64, 512, 512, 1, 0, 0, 1, 1);   // SD VAE mid block
    wino_case(1, 128, 128, 64, 64, 1, 0, 0, 1, 1);   // TAESD decoder
    wino_case(1, 64, 64, 4, 64, 1, 0, 0, 1, 0);      // TAESD decoder.layers.0 (4 latents)
    wino_case(1, 128, 128, 64, 3, 1, 0, 0, 1, 0);    // TAESD last conv (3 channels out)
    printf("worst max|winograd - direct| / max|direct|: F(2,3) %.2e (bound %.0e), F(4,3) %.2e "
           "(bound %.0e)\n",
           g_worst[2], TOL_WINO2, g_worst[4], TOL_WINO4);

    view_case(1, 9, 20, 12);
    view_case(2, 16, 64, 64);

    hsd_backend_destroy(g_be);
    return hsd_test_finish();
}
