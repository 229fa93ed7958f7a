// CPU weights kept in their file's precision and layout (backend.h
// weight_view, host/backend/cpu/cpu_weights.c): conv2d and linear with a
// viewed F16/BF16/F32 weight in PyTorch layout must give exactly what they
// give with the same values widened to fp32 and re-laid at load (the path
// test_cpu_ops checks against double references). fp16 and bf16 widen to
// fp32 exactly and the sgemm sees the same numbers in the same order, so
// the tolerance is 0 (bitwise) while the weight converts as one block.
// Larger weights run as one sgemm per block of output channels, which
// OpenBLAS partitions differently (its threading and small-matrix paths
// depend on n): there only the summation order may change, and the bound is
// test_cpu_ops's TOL_GEMM, 1e-5 of max|ref| (fp32 dot products of length K
// = 11520 err by ~sqrt(K) * 6e-8 = 6.4e-6 relative at worst; observed
// 4e-7). Plus the registry's bookkeeping: a weight viewed twice, freeing,
// bad parameters.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/assert.h"
#include "core/dtype.h"
#include "testutil.h"

static struct hsd_backend *g_be;
static uint64_t g_seed = 7;

static const enum hsd_dtype k_dtypes[] = {HSD_F16, HSD_BF16, HSD_F32};

// File bytes of `n` values in `dtype` (little-endian), starting `skew`
// bytes into the returned block (an unaligned tensor, as safetensors
// allows); *widened gets the exact fp32 values those bytes hold.
static unsigned char *file_bytes(enum hsd_dtype dtype, size_t n, size_t skew, float **widened) {
    float *x = malloc(n * sizeof *x);
    unsigned char *block = malloc(n * hsd_dtype_size(dtype) + skew);
    HSD_ASSERT(x && block);
    hsd_test_fill_uniform(x, n, g_seed++, 0.5f);
    unsigned char *b = block + skew;
    for (size_t i = 0; i < n; i++) {
        if (dtype == HSD_F16) {
            uint16_t h = hsd_f32_to_f16(x[i]);
            memcpy(b + 2 * i, &h, 2);
        } else if (dtype == HSD_BF16) {
            uint16_t h = hsd_f32_to_bf16(x[i]);
            memcpy(b + 2 * i, &h, 2);
        } else {
            memcpy(b + 4 * i, &x[i], 4);
        }
    }
    HSD_ASSERT(hsd_convert_to_f32(x, b, dtype, n) == 0);
    *widened = x;
    return block;
}

static float *dev_copy(const float *host, size_t n) {
    float *d = g_be->ops->alloc(g_be, n * sizeof(float));
    HSD_ASSERT(d);
    CHECK_OK(g_be->ops->upload(g_be, d, host, n));
    return d;
}

#define TOL_GEMM 1e-5

// Bitwise for weights that convert as one block (up to 32 MB of fp32,
// cpu_weights.c k_block_bytes), TOL_GEMM beyond.
// Frees backend buffers (a NULL-terminated list).
static void free_dev(void *first, ...) {
    va_list ap;
    va_start(ap, first);
    for (void *p = first; p; p = va_arg(ap, void *)) g_be->ops->free(g_be, p);
    va_end(ap);
}

static void check_same(const char *what, const float *got, const float *ref, size_t n,
                       size_t weights) {
    if (weights * sizeof(float) > ((size_t)32 << 20)) {
        CHECK_CLOSE(what, got, ref, n, TOL_GEMM);
        return;
    }
    struct hsd_cmp c = hsd_compare(got, ref, n);
    CHECKF(c.max_abs_err == 0.0 && c.n_nonfinite == 0,
           "%s: max |view - fp32 path| %.3g at %zu (%.9g vs %.9g), %zu non-finite", what,
           c.max_abs_err, c.worst, c.worst_got, c.worst_ref, c.n_nonfinite);
}

// Compares a case's two outputs, then frees its backend buffers.
static void finish_case(const char *what, float *d_got, float *d_ref, size_t nout, size_t nw,
                        void *view, float *d_in, float *d_w, float *d_b) {
    check_same(what, d_got, d_ref, nout, nw);
    if (view) g_be->ops->free(g_be, view);
    free_dev(d_in, d_w, d_b, d_ref, d_got, NULL);
}

// conv2d with a viewed weight against the re-laid fp32 weight.
// n_dtypes: how many of k_dtypes to run (the large cases run F16 only, to
// stay fast under ASan).
static void conv_case(int n, int h, int w, int ci, int co, int kk, int stride, int pad,
                      int pad_br, int residual, size_t n_dtypes) {
    const size_t taps = (size_t)kk * kk, nw = (size_t)co * ci * taps;
    const int ho = (h + 2 * pad + pad_br - kk) / stride + 1;
    const int wo = (w + 2 * pad + pad_br - kk) / stride + 1;
    const size_t nin = (size_t)n * h * w * ci, nout = (size_t)n * ho * wo * co;
    float *in = malloc(nin * sizeof *in), *bias = malloc((size_t)co * sizeof *bias);
    float *res = malloc(nout * sizeof *res);
    HSD_ASSERT(in && bias && res);
    hsd_test_fill_uniform(in, nin, g_seed++, 1.0f);
    hsd_test_fill_uniform(bias, (size_t)co, g_seed++, 0.1f);
    hsd_test_fill_uniform(res, nout, g_seed++, 1.0f);
    for (size_t d = 0; d < n_dtypes; d++) {
        const enum hsd_dtype dt = k_dtypes[d];
        for (size_t skew = 0; skew <= 2; skew += 2) {
            float *wf;
            unsigned char *block = file_bytes(dt, nw, skew, &wf);
            // The load-time path: [co, ci, kh, kw] re-laid to [co, kh, kw, ci].
            float *relaid = malloc(nw * sizeof *relaid);
            HSD_ASSERT(relaid);
            for (size_t o = 0; o < (size_t)co; o++)
                for (size_t c = 0; c < (size_t)ci; c++)
                    for (size_t t = 0; t < taps; t++)
                        relaid[(o * taps + t) * ci + c] = wf[(o * ci + c) * taps + t];
            struct hsd_weight_view_params vp = {.data = block + skew, .dtype = dt, .rows = co,
                                                .k = (int)(ci * taps), .taps = (int)taps};
            void *view = g_be->ops->weight_view(g_be, &vp);
            CHECKF(view != NULL, "weight_view: %s", hsd_last_error());
            float *d_in = dev_copy(in, nin), *d_w = dev_copy(relaid, nw);
            float *d_b = dev_copy(bias, (size_t)co);
            float *d_ref = dev_copy(res, nout), *d_got = dev_copy(res, nout);
            struct hsd_conv2d_params p = {.out = d_ref, .in = d_in, .weight = d_w, .bias = d_b,
                                          .residual = residual ? d_ref : NULL, .n = n, .h = h,
                                          .w = w, .ci = ci, .co = co, .kh = kk, .kw = kk,
                                          .stride = stride, .pad = pad, .pad_bottom = pad_br,
                                          .pad_right = pad_br};
            CHECK_OK(g_be->ops->conv2d(g_be, &p));
            p.out = d_got;
            p.residual = residual ? d_got : NULL;
            p.weight = view;
            if (view) CHECK_OK(g_be->ops->conv2d(g_be, &p));
            char what[160];
            snprintf(what, sizeof what, "conv %dx%d %s%s ci=%d co=%d stride=%d n=%d %dx%d%s", kk,
                     kk, hsd_dtype_name(dt), skew ? " unaligned" : "", ci, co, stride, n, h, w,
                     residual ? " +residual" : "");
            finish_case(what, d_got, d_ref, nout, nw, view, d_in, d_w, d_b);
            free(relaid);
            free(wf);
            free(block);
        }
    }
    free(in);
    free(bias);
    free(res);
}

// linear with a viewed weight against the fp32 weight.
static void linear_case(int m, int k, int n_out, size_t n_dtypes) {
    const size_t nw = (size_t)n_out * k, nin = (size_t)m * k, nout = (size_t)m * n_out;
    float *in = malloc(nin * sizeof *in), *bias = malloc((size_t)n_out * sizeof *bias);
    HSD_ASSERT(in && bias);
    hsd_test_fill_uniform(in, nin, g_seed++, 1.0f);
    hsd_test_fill_uniform(bias, (size_t)n_out, g_seed++, 0.1f);
    for (size_t d = 0; d < n_dtypes; d++) {
        const enum hsd_dtype dt = k_dtypes[d];
        float *wf;
        unsigned char *block = file_bytes(dt, nw, 2, &wf);
        struct hsd_weight_view_params vp = {.data = block + 2, .dtype = dt, .rows = n_out,
                                            .k = k, .taps = 1};
        void *view = g_be->ops->weight_view(g_be, &vp);
        CHECKF(view != NULL, "weight_view: %s", hsd_last_error());
        float *d_in = dev_copy(in, nin), *d_w = dev_copy(wf, nw), *d_b = dev_copy(bias, n_out);
        float *d_ref = g_be->ops->alloc(g_be, nout * sizeof(float));
        float *d_got = g_be->ops->alloc(g_be, nout * sizeof(float));
        HSD_ASSERT(d_ref && d_got);
        struct hsd_linear_params p = {.out = d_ref, .in = d_in, .weight = d_w, .bias = d_b,
                                      .m = m, .k = k, .n_out = n_out};
        CHECK_OK(g_be->ops->linear(g_be, &p));
        p.out = d_got;
        p.weight = view;
        if (view) CHECK_OK(g_be->ops->linear(g_be, &p));
        char what[128];
        snprintf(what, sizeof what, "linear %s m=%d k=%d n_out=%d", hsd_dtype_name(dt), m, k,
                 n_out);
        finish_case(what, d_got, d_ref, nout, nw, view, d_in, d_w, d_b);
        free(wf);
        free(block);
    }
    free(in);
    free(bias);
}

static void registry_case(void) {
    uint16_t bytes[6 * 4] = {0};
    struct hsd_weight_view_params vp = {.data = bytes, .dtype = HSD_F16, .rows = 6, .k = 4,
                                        .taps = 1};
    // One file loaded by two models: one handle, freed twice.
    void *a = g_be->ops->weight_view(g_be, &vp), *b = g_be->ops->weight_view(g_be, &vp);
    CHECK(a != NULL && a == b);
    g_be->ops->free(g_be, a);
    g_be->ops->free(g_be, b);
    // Gone from the registry: the same bytes as another shape are fine now.
    vp.rows = 3;
    vp.k = 8;
    void *c = g_be->ops->weight_view(g_be, &vp);
    CHECK(c == (void *)bytes);
    // ...but not while viewed as one shape already.
    vp.rows = 6;
    vp.k = 4;
    CHECK(g_be->ops->weight_view(g_be, &vp) == NULL);
    hsd_clear_error();
    g_be->ops->free(g_be, c);
    // A linear call with dims the weight does not have fails, naming both.
    vp.rows = 6;
    void *d = g_be->ops->weight_view(g_be, &vp);
    float in[4 * 2] = {0}, out[5 * 2];
    struct hsd_linear_params lp = {.out = out, .in = in, .weight = d, .m = 2, .k = 4, .n_out = 5};
    CHECK_INVALID(g_be->ops->linear(g_be, &lp));
    g_be->ops->free(g_be, d);
    // Bad parameters.
    vp.taps = 3;  // k = 4 is not a whole number of taps
    CHECK(g_be->ops->weight_view(g_be, &vp) == NULL);
    hsd_clear_error();
    vp.taps = 1;
    vp.dtype = HSD_I8;
    CHECK(g_be->ops->weight_view(g_be, &vp) == NULL);
    hsd_clear_error();
}

int main(void) {
    CHECK_OK(hsd_backend_cpu_create(&g_be, 2));
    if (!g_be) return hsd_test_finish();
    registry_case();
    const size_t all = sizeof k_dtypes / sizeof *k_dtypes;
    // SD shapes (a 320-channel 3x3 conv on a 16x16 map) and odd ones.
    conv_case(2, 16, 16, 320, 320, 3, 1, 1, 0, 1, all);
    conv_case(1, 9, 11, 13, 17, 3, 1, 1, 0, 0, all);
    conv_case(1, 9, 11, 13, 17, 3, 2, 0, 1, 0, all);  // Downsample2D(padding=0)
    conv_case(2, 5, 7, 24, 40, 1, 1, 0, 0, 1, all);   // 1x1: the GEMM on the map itself
    linear_case(37, 70, 33, all);
    linear_case(77, 768, 320, all);
    // 9.4M weights = 37.5 MB of fp32: more than one converted block
    // (cpu_weights.c k_block_bytes), as SD1.5's 1280-channel layers.
    linear_case(3, 8192, 1145, 1);
    conv_case(1, 4, 4, 1280, 1152, 3, 1, 1, 0, 0, 1);
    hsd_backend_destroy(g_be);
    return hsd_test_finish();
}
