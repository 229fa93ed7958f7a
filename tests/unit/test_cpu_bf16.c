// The CPU backend's bf16 compute mode (--cpu-precision bf16,
// host/backend/cpu/cpu_bf16.c): linear and conv2d in bf16 mode against
// double references, on SD shapes and odd ones, with fp32 weights and with
// fp16 weight_view weights (the production path, conv weights re-laid).
//
// Two bounds per case, both derived, not measured:
//  1. Against a double GEMM of the bf16-rounded operands (rounded here by
//     rint on 8 significant bits: round-to-nearest-even, as torch's
//     c10::BFloat16, written independently of core/dtype.c): only fp32
//     accumulation separates them, so NMSE <= 1e-10 (per-element relative
//     error ~ sqrt(k) * 2^-24 for random signs, NMSE ~ k * 4e-15 <= 1.2e-11
//     at k = 2880); any other rounding of the operands (truncation, no
//     rounding at all) gives NMSE ~ 1e-6 or more.
//  2. Against the fp32 GEMM: each operand rounds with relative error
//     <= u = 2^-8 (8 significant bits), a product by <= 2u + u^2, so per
//     element |got - fp32| <= ((2u + u^2) + 2 k 2^-24) * sum |a||w| (the
//     second term: fp32 accumulation worst case, both sides).
// The worst element of each bound and the NMSE against fp32 are printed.
//
// Built twice: test_cpu_bf16 runs the path this machine's OpenBLAS gives
// (Debian 12's exports no cblas_sbgemm: the emulated one), and
// test_cpu_bf16_sbgemm (HSD_TEST_FAKE_SBGEMM) exports a plain-C
// cblas_sbgemm from the executable, which the backend's dlsym lookup then
// finds: the call made on CPUs with an sbgemm-enabled OpenBLAS (argument
// order, leading dimensions, the bf16 activation buffer) is checked here too.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_internal.h"  // hsd_cpu_bf16_path
#include "core/dtype.h"
#include "testutil.h"

static struct hsd_backend *g_be;

#ifdef HSD_TEST_FAKE_SBGEMM
#include <cblas.h>
static int g_sbgemm_calls;
// OpenBLAS's contract: C = alpha op(A) op(B) + beta C, bf16 A and B, fp32
// accumulation. Only the form the backend uses (row-major, A as is, B
// transposed); anything else fails the test.
void cblas_sbgemm(OPENBLAS_CONST enum CBLAS_ORDER order, OPENBLAS_CONST enum CBLAS_TRANSPOSE ta,
                  OPENBLAS_CONST enum CBLAS_TRANSPOSE tb, OPENBLAS_CONST blasint m,
                  OPENBLAS_CONST blasint n, OPENBLAS_CONST blasint k, OPENBLAS_CONST float alpha,
                  OPENBLAS_CONST bfloat16 *a, OPENBLAS_CONST blasint lda,
                  OPENBLAS_CONST bfloat16 *b, OPENBLAS_CONST blasint ldb,
                  OPENBLAS_CONST float beta, float *c, OPENBLAS_CONST blasint ldc) {
    g_sbgemm_calls++;
    CHECKF(order == CblasRowMajor && ta == CblasNoTrans && tb == CblasTrans,
           "sbgemm called with order %d, transposes %d %d", order, ta, tb);
    for (blasint i = 0; i < m; i++)
        for (blasint j = 0; j < n; j++) {
            float acc = 0;
            for (blasint q = 0; q < k; q++)
                acc += hsd_bf16_to_f32(a[i * lda + q]) * hsd_bf16_to_f32(b[j * ldb + q]);
            c[i * ldc + j] = alpha * acc + (beta != 0.0f ? beta * c[i * ldc + j] : 0.0f);
        }
}
#endif

// Round-to-nearest-even to 8 significant bits (bf16), finite inputs.
static double bf16r(float x) {
    if (x == 0.0f) return 0.0;
    int e;
    double m = frexp((double)x, &e);  // x = m 2^e, 0.5 <= |m| < 1
    return ldexp(rint(ldexp(m, 8)), e - 8);
}

struct conv_case {
    const char *name;
    int n, h, w, ci, co, kh, kw, stride, pad;
    int f16_view;  // weights as an fp16 weight_view in PyTorch's [co, ci, kh, kw] layout
    int linear;    // run through the linear op (h = 1, kh = kw = 1)
};

static void run_case(const struct conv_case *c) {
    const int ho = (c->h + 2 * c->pad - c->kh) / c->stride + 1;
    const int wo = (c->w + 2 * c->pad - c->kw) / c->stride + 1;
    const size_t K = (size_t)c->kh * c->kw * c->ci, rows = (size_t)c->n * ho * wo;
    const size_t nin = (size_t)c->n * c->h * c->w * c->ci, nw = (size_t)c->co * K;
    float *in = malloc(nin * sizeof *in), *w = malloc(nw * sizeof *w);
    float *bias = malloc((size_t)c->co * sizeof *bias), *out = malloc(rows * c->co * sizeof *out);
    uint16_t *wf16 = malloc(nw * sizeof *wf16);
    hsd_test_fill_uniform(in, nin, 11 + (uint64_t)K, 1.0f);
    hsd_test_fill_uniform(w, nw, 23 + (uint64_t)c->co, 1.0f / sqrtf((float)K));
    hsd_test_fill_uniform(bias, (size_t)c->co, 5, 0.1f);
    const void *weight = w;
    void *view = NULL;
    if (c->f16_view) {
        // fp16 values, stored [co, ci, kh, kw]; w keeps them in [co, kh, kw, ci].
        const int taps = c->kh * c->kw;
        for (int o = 0; o < c->co; o++)
            for (int t = 0; t < taps; t++)
                for (int i = 0; i < c->ci; i++) {
                    float *v = &w[((size_t)o * taps + t) * c->ci + i];
                    uint16_t h = hsd_f32_to_f16(*v);
                    *v = hsd_f16_to_f32(h);
                    wf16[((size_t)o * c->ci + i) * taps + t] = h;
                }
        struct hsd_weight_view_params vp = {.data = wf16, .dtype = HSD_F16, .rows = c->co,
                                            .k = (int)K, .taps = taps, .copy = 1};
        view = g_be->ops->weight_view(g_be, &vp);
        CHECKF(view != NULL, "%s: weight_view: %s", c->name, hsd_last_error());
        weight = view;
    }
    // The operands rounded once (the reference loop reads them many times).
    double *inb = malloc(nin * sizeof *inb), *wb = malloc(nw * sizeof *wb);
    for (size_t i = 0; i < nin; i++) inb[i] = bf16r(in[i]);
    for (size_t i = 0; i < nw; i++) wb[i] = bf16r(w[i]);
    const size_t bytes0 = hsd_cpu_bf16_bytes(g_be);
    if (c->linear) {
        struct hsd_linear_params p = {.out = out, .in = in, .weight = weight, .bias = bias,
                                      .m = (int)rows, .k = (int)K, .n_out = c->co};
        CHECK_OK(g_be->ops->linear(g_be, &p));
    } else {
        struct hsd_conv2d_params p = {.out = out, .in = in, .weight = weight, .bias = bias,
                                      .n = c->n, .h = c->h, .w = c->w, .ci = c->ci, .co = c->co,
                                      .kh = c->kh, .kw = c->kw, .stride = c->stride,
                                      .pad = c->pad};
        CHECK_OK(g_be->ops->conv2d(g_be, &p));
    }
    // Memory accounting: one bf16 copy of the weight, 2 bytes an element.
    CHECKF(hsd_cpu_bf16_bytes(g_be) - bytes0 == nw * 2, "%s: bf16 copies grew by %zu bytes, "
           "want %zu", c->name, hsd_cpu_bf16_bytes(g_be) - bytes0, nw * 2);

    const double u = ldexp(1.0, -8);
    double se_b = 0, se_f = 0, ss = 0, worst1 = 0, worst2 = 0;
    for (int b = 0; b < c->n; b++)
        for (int oy = 0; oy < ho; oy++)
            for (int ox = 0; ox < wo; ox++)
                for (int o = 0; o < c->co; o++) {
                    double ref32 = bias[o], refbf = bias[o], absum = fabs(bias[o]);
                    for (int ky = 0; ky < c->kh; ky++)
                        for (int kx = 0; kx < c->kw; kx++) {
                            const int iy = oy * c->stride - c->pad + ky;
                            const int ix = ox * c->stride - c->pad + kx;
                            if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w) continue;
                            const size_t ia = (((size_t)b * c->h + iy) * c->w + ix) * c->ci;
                            const size_t iw = (((size_t)o * c->kh + ky) * c->kw + kx) * c->ci;
                            const float *a = in + ia, *wr = w + iw;
                            for (int i = 0; i < c->ci; i++) {
                                ref32 += (double)a[i] * wr[i];
                                refbf += inb[ia + i] * wb[iw + i];
                                absum += fabs((double)a[i] * wr[i]);
                            }
                        }
                    const double got =
                        out[(((size_t)b * ho + oy) * wo + ox) * c->co + o];
                    se_b += (got - refbf) * (got - refbf);
                    se_f += (got - ref32) * (got - ref32);
                    ss += ref32 * ref32;
                    const double bound = (2 * u + u * u + 2.0 * (double)K * ldexp(1.0, -24)) * absum;
                    const double r = fabs(got - ref32) / bound;
                    if (r > worst2) worst2 = r;
                    if (fabs(got - refbf) > worst1) worst1 = fabs(got - refbf);
                }
    const double nmse_b = se_b / ss, nmse_f = se_f / ss;
    printf("%-28s K=%-5zu rows=%-6zu vs bf16-operand ref: NMSE %.2e (max %.2e); vs fp32: NMSE "
           "%.2e, worst |err| / bound %.3f\n",
           c->name, K, rows, nmse_b, worst1, nmse_f, worst2);
    CHECKF(nmse_b <= 1e-10, "%s: NMSE %.3e against the bf16-operand reference (bound 1e-10)",
           c->name, nmse_b);
    CHECKF(worst2 <= 1.0, "%s: an element is %.3f x the bf16 error bound from fp32", c->name,
           worst2);
    if (view) g_be->ops->free(g_be, view);
    free(in);
    free(w);
    free(bias);
    free(out);
    free(wf16);
    free(inb);
    free(wb);
}

int main(void) {
    CHECK_OK(hsd_backend_cpu_create(&g_be, 0));
    if (!g_be) return hsd_test_finish();
    CHECK_OK(hsd_backend_cpu_set_precision(g_be, HSD_CPU_BF16));
    static const struct conv_case cases[] = {
        // SD 1.5: attention projections at 32x32 tokens, the text context
        // (77 x 768 -> 320), an FF layer; odd: head dim 59, one row.
        {"linear 1024x320->320", 1, 1, 1024, 320, 320, 1, 1, 1, 0, 0, 1},
        {"linear ctx 77x768->320 f16", 2, 1, 77, 768, 320, 1, 1, 1, 0, 1, 1},
        {"linear ff 64x640->2560", 1, 1, 64, 640, 2560, 1, 1, 1, 0, 0, 1},
        {"linear odd 1x59->77", 1, 1, 1, 59, 77, 1, 1, 1, 0, 0, 1},
        // conv: SD 3x3 (Winograd's shapes, which the bf16 mode runs as
        // im2col), 1x1 shortcut, stride-2 downsample, conv_in; odd sizes.
        {"conv3x3 320 16x16 f16", 1, 16, 16, 320, 320, 3, 3, 1, 1, 1, 0},
        {"conv3x3 640->320 4x4 n2", 2, 4, 4, 640, 320, 3, 3, 1, 1, 0, 0},
        {"conv1x1 640->320 8x8", 1, 8, 8, 640, 320, 1, 1, 1, 0, 1, 0},
        {"conv3x3 s2 320 16x16", 1, 16, 16, 320, 320, 3, 3, 2, 1, 0, 0},
        {"conv_in 4->320 32x32", 1, 32, 32, 4, 320, 3, 3, 1, 1, 0, 0},
        {"conv odd 5x3 7x9 ci3 co5", 3, 7, 9, 3, 5, 5, 3, 1, 2, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
#ifdef HSD_TEST_FAKE_SBGEMM
    CHECKF(!strcmp(hsd_cpu_bf16_path(), "sbgemm") && g_sbgemm_calls > 0,
           "path %s, %d sbgemm calls: the exported cblas_sbgemm was not used",
           hsd_cpu_bf16_path(), g_sbgemm_calls);
#endif
    // fp32 mode again: no bf16 copies are made and the result is the fp32 one.
    CHECK_OK(hsd_backend_cpu_set_precision(g_be, HSD_CPU_FP32));
    {
        float in[3 * 5], w[4 * 5], out[3 * 4];
        hsd_test_fill_uniform(in, 15, 1, 1.0f);
        hsd_test_fill_uniform(w, 20, 2, 1.0f);
        const size_t before = hsd_cpu_bf16_bytes(g_be);
        struct hsd_linear_params p = {.out = out, .in = in, .weight = w, .m = 3, .k = 5,
                                      .n_out = 4};
        CHECK_OK(g_be->ops->linear(g_be, &p));
        double worst = 0;
        for (int r = 0; r < 3; r++)
            for (int o = 0; o < 4; o++) {
                double ref = 0;
                for (int i = 0; i < 5; i++) ref += (double)in[r * 5 + i] * w[o * 5 + i];
                if (fabs(out[r * 4 + o] - ref) > worst) worst = fabs(out[r * 4 + o] - ref);
            }
        // fp32 with k = 5 and |terms| <= 1: a few ulps of 5.
        CHECKF(worst < 1e-5, "fp32 mode after bf16: max error %.3e", worst);
        CHECK(hsd_cpu_bf16_bytes(g_be) == before);
    }
    hsd_backend_destroy(g_be);
    // Another backend refuses bf16 with a message and accepts fp32 (no-op);
    // only kind and desc are read.
    struct hsd_backend gpu = {.kind = HSD_BACKEND_CUDA, .desc = "cuda:0 (test)"};
    CHECK_INVALID(hsd_backend_cpu_set_precision(&gpu, HSD_CPU_BF16));
    CHECK_OK(hsd_backend_cpu_set_precision(&gpu, HSD_CPU_FP32));
    return hsd_test_finish();
}
