// Times the CPU backend's heavy ops at SD1.5 shapes (64x64 latent, batch 2)
// and reports GFLOP/s and % of the machine's fp32 FMA peak.
//
// Peak, two ways:
//   theoretical = cores x 2 FMA ports x (vector bits / 32) lanes x 2 flop x
//                 clock (from /proc/cpuinfo "cpu MHz"; AVX-512 assumed when
//                 the CPU has avx512f, which SPR/ICX-server have on 2 ports),
//   practical   = cblas_sgemm 2048^3 (NoTrans, Trans), best of several.
// Each op: 2 warm-up calls, then repeats (at least 5, about 0.5 s) with an
// 8 MiB cache flush between them (not timed); the median is reported.
// Output: one human line per configuration, then a JSON line.
//
// Run: build/tests/bench_cpu_ops [threads [op]]   (threads 0: every core;
//      op: only configurations of that op, e.g. attention)
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_internal.h"
#include "bench_timing.h"
#include "core/assert.h"

static float *rand_buf(size_t n, float scale) {
    float *x = aligned_alloc(64, ((n * sizeof *x) + 63) & ~(size_t)63);
    HSD_ASSERT(x);
    uint32_t s = 12345u + (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = scale * ((float)(s >> 8) * (1.0f / 8388608.0f) - 1.0f);
    }
    return x;
}

// Median seconds of `fn(ctx)`.
typedef void (*bench_fn)(void *ctx);
static double time_median(bench_fn fn, void *ctx) {
    fn(ctx);
    fn(ctx);
    double t[64];
    int reps = 0;
    double start = hsd_bench_now_s();
    while (reps < 64 && (reps < 5 || hsd_bench_now_s() - start < 0.5)) {
        hsd_bench_flush_cache();
        double t0 = hsd_bench_now_s();
        fn(ctx);
        t[reps++] = hsd_bench_now_s() - t0;
    }
    return hsd_bench_median(t, reps);
}

// ---- peak ---------------------------------------------------------------

static double cpu_mhz(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return 0.0;
    char line[512];
    double mhz = 0.0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "cpu MHz", 7) == 0) {
            const char *colon = strchr(line, ':');
            if (colon) mhz = atof(colon + 1);
            break;
        }
    }
    fclose(f);
    return mhz;
}

static int has_avx512(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return 0;
    char line[4096];
    int yes = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "flags", 5) == 0) {
            yes = strstr(line, " avx512f") != NULL;
            break;
        }
    }
    fclose(f);
    return yes;
}

struct gemm_ctx {
    int n;
    float *a, *b, *c;
};
static void run_gemm(void *p) {
    struct gemm_ctx *g = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->n, g->n, g->n, 1.0f, g->a, g->n,
                g->b, g->n, 0.0f, g->c, g->n);
}

// ---- ops ----------------------------------------------------------------

struct op_ctx {
    struct hsd_backend *be;
    int conv_version;  // 0: the op table's choice; 1: im2col; 2, 4: Winograd F(m, 3)
    int attn_version;  // 0: the op table's choice; 1: v1_blocks; 2: v2_flash
    struct hsd_conv2d_params conv;
    struct hsd_linear_params lin;
    struct hsd_attention_params attn;
    struct hsd_group_norm_params gn;
};
static void run_conv(void *p) {
    struct op_ctx *c = p;
    enum hsd_status s;
    if (c->conv_version == 1) s = hsd_cpu_conv2d_v1_im2col(c->be, &c->conv);
    else if (c->conv_version) s = hsd_cpu_conv2d_v2_winograd(c->be, &c->conv, c->conv_version);
    else s = c->be->ops->conv2d(c->be, &c->conv);
    HSD_ASSERT(s == HSD_OK);
}
static void run_linear(void *p) {
    struct op_ctx *c = p;
    HSD_ASSERT(c->be->ops->linear(c->be, &c->lin) == HSD_OK);
}
static void run_attn(void *p) {
    struct op_ctx *c = p;
    enum hsd_status s;
    if (c->attn_version == 1) s = hsd_cpu_attention_v1_blocks(c->be, &c->attn);
    else if (c->attn_version == 2) s = hsd_cpu_attention_v2_flash(c->be, &c->attn);
    else s = c->be->ops->attention(c->be, &c->attn);
    HSD_ASSERT(s == HSD_OK);
}
static void run_gn(void *p) {
    struct op_ctx *c = p;
    HSD_ASSERT(c->be->ops->group_norm(c->be, &c->gn) == HSD_OK);
}

static double g_peak_theory, g_peak_gemm;

static void report(const char *op, const char *shape, double sec, double flop, double bytes) {
    double gflops = flop / sec * 1e-9;
    if (flop > 0) {
        printf("%-10s %-34s %9.3f ms %8.1f GFLOP/s %5.1f%% of theory %5.1f%% of sgemm\n", op,
               shape, sec * 1e3, gflops, 100 * gflops / g_peak_theory,
               100 * gflops / g_peak_gemm);
    } else {
        printf("%-10s %-34s %9.3f ms %8.1f GB/s\n", op, shape, sec * 1e3, bytes / sec * 1e-9);
    }
    printf("{\"bench\":\"cpu_ops\",\"op\":\"%s\",\"shape\":\"%s\",\"ms\":%.4f,\"gflops\":%.2f,"
           "\"gbps\":%.2f,\"pct_theory\":%.1f,\"pct_sgemm\":%.1f}\n",
           op, shape, sec * 1e3, flop > 0 ? gflops : 0.0, bytes > 0 ? bytes / sec * 1e-9 : 0.0,
           flop > 0 ? 100 * gflops / g_peak_theory : 0.0,
           flop > 0 ? 100 * gflops / g_peak_gemm : 0.0);
    fflush(stdout);
}

// Every version that applies to the shape, then the op table's choice
// ("auto"). Winograd rows count the direct conv's flop, so their GFLOP/s is
// the effective rate (above the machine's peak once the saving is real).
static void bench_conv(struct hsd_backend *be, int n, int h, int ci, int co, int k, int stride) {
    const int pad = k / 2;
    const int ho = (h + 2 * pad - k) / stride + 1;
    struct op_ctx c = {.be = be};
    float *in = rand_buf((size_t)n * h * h * ci, 1.0f);
    float *w = rand_buf((size_t)co * k * k * ci, 0.05f);
    float *b = rand_buf((size_t)co, 1.0f);
    float *r = rand_buf((size_t)n * ho * ho * co, 1.0f);
    float *out = rand_buf((size_t)n * ho * ho * co, 1.0f);
    c.conv = (struct hsd_conv2d_params){.out = out, .in = in, .weight = w, .bias = b,
                                        .residual = r, .n = n, .h = h, .w = h, .ci = ci,
                                        .co = co, .kh = k, .kw = k, .stride = stride, .pad = pad};
    static const int versions[] = {1, 2, 4, 0};
    static const char *names[] = {"im2col", "wino2", "wino4", "auto"};
    for (int v = 0; v < 4; v++) {
        if ((versions[v] == 2 || versions[v] == 4) && !hsd_cpu_conv2d_winograd_applies(&c.conv))
            continue;
        c.conv_version = versions[v];
        double sec = time_median(run_conv, &c);
        char shape[64];
        snprintf(shape, sizeof shape, "n%d %dx%d %d->%d k%d s%d %s", n, h, h, ci, co, k, stride,
                 names[v]);
        report("conv2d", shape, sec, 2.0 * n * ho * ho * co * (double)k * k * ci, 0);
    }
    free(in), free(w), free(b), free(r), free(out);
}

static void bench_linear(struct hsd_backend *be, int m, int k, int n_out, int bias_res) {
    struct op_ctx c = {.be = be};
    float *in = rand_buf((size_t)m * k, 1.0f), *w = rand_buf((size_t)n_out * k, 0.05f);
    float *b = rand_buf((size_t)n_out, 1.0f), *r = rand_buf((size_t)m * n_out, 1.0f);
    float *out = rand_buf((size_t)m * n_out, 1.0f);
    c.lin = (struct hsd_linear_params){.out = out, .in = in, .weight = w,
                                       .bias = bias_res ? b : NULL,
                                       .residual = bias_res ? r : NULL, .m = m, .k = k,
                                       .n_out = n_out};
    double sec = time_median(run_linear, &c);
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%d->%d%s", m, k, n_out, bias_res ? " +b+r" : "");
    report("linear", shape, sec, 2.0 * m * k * (double)n_out, 0);
    free(in), free(w), free(b), free(r), free(out);
}

static void bench_attention(struct hsd_backend *be, int n, int heads, int d, int t_q, int t_kv,
                            int causal) {
    const int hd = heads * d;
    struct op_ctx c = {.be = be};
    // Self attention reads q, k, v from one fused projection, cross from q
    // alone plus a fused k/v projection of the text context, as the model does.
    const int self = t_q == t_kv;
    float *qkv = rand_buf((size_t)n * t_q * (self ? 3 : 1) * hd, 1.0f);
    float *kv = self ? NULL : rand_buf((size_t)n * t_kv * 2 * hd, 1.0f);
    float *out = rand_buf((size_t)n * t_q * hd, 1.0f);
    c.attn = (struct hsd_attention_params){
        .out = out, .q = qkv, .k = self ? qkv + hd : kv, .v = self ? qkv + 2 * hd : kv + hd,
        .n = n, .heads = heads, .d = d, .t_q = t_q, .t_kv = t_kv,
        .ldq = self ? 3 * hd : hd, .ldk = self ? 3 * hd : 2 * hd, .ldv = self ? 3 * hd : 2 * hd,
        .ldo = hd, .scale = 1.0f / sqrtf((float)d), .causal = causal};
    // Every version, then the op table's choice ("auto").
    static const char *names[] = {"auto", "v1", "v2"};
    for (int v = 1; v <= 3; v++) {
        c.attn_version = v % 3;
        double sec = time_median(run_attn, &c);
        char shape[64];
        snprintf(shape, sizeof shape, "n%d h%d d%d tq%d tkv%d%s %s", n, heads, d, t_q, t_kv,
                 causal ? " causal" : "", names[v % 3]);
        // Causal: the flop of the full score matrix (the rate is then
        // comparable between versions, not with the other shapes).
        report("attention", shape, sec, 4.0 * n * heads * (double)t_q * t_kv * d, 0);
    }
    free(qkv), free(kv), free(out);
}

static void bench_group_norm(struct hsd_backend *be, int n, int hw, int c_, int groups, int silu) {
    struct op_ctx c = {.be = be};
    const size_t cnt = (size_t)n * hw * c_;
    float *in = rand_buf(cnt, 1.0f), *out = rand_buf(cnt, 1.0f);
    float *g = rand_buf((size_t)c_, 1.0f), *b = rand_buf((size_t)c_, 1.0f);
    c.gn = (struct hsd_group_norm_params){.out = out, .in = in, .gamma = g, .beta = b, .n = n,
                                          .hw = hw, .c = c_, .groups = groups, .eps = 1e-5f,
                                          .silu = silu};
    double sec = time_median(run_gn, &c);
    char shape[64];
    snprintf(shape, sizeof shape, "n%d hw%d c%d g%d%s", n, hw, c_, groups, silu ? " silu" : "");
    // Memory-bound: count one read of the input (the statistics pass) and
    // one read + one write (the apply pass).
    report("group_norm", shape, sec, 0, 3.0 * (double)cnt * sizeof(float));
    free(in), free(out), free(g), free(b);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 0;
    const char *only = argc > 2 ? argv[2] : NULL;
    struct hsd_backend *be = NULL;
    if (hsd_backend_cpu_create(&be, threads) != HSD_OK) {
        fprintf(stderr, "bench_cpu_ops: cannot create the CPU backend\n");
        return 1;
    }
    const double mhz = cpu_mhz();
    const int lanes = has_avx512() ? 16 : 8;
    g_peak_theory = be->threads * 2.0 * lanes * 2.0 * mhz * 1e-3;
    struct gemm_ctx g = {.n = 2048};
    g.a = rand_buf((size_t)g.n * g.n, 1.0f);
    g.b = rand_buf((size_t)g.n * g.n, 1.0f);
    g.c = rand_buf((size_t)g.n * g.n, 1.0f);
    run_gemm(&g);
    double best = 1e30;
    for (int i = 0; i < 5; i++) {
        double t0 = hsd_bench_now_s();
        run_gemm(&g);
        double t = hsd_bench_now_s() - t0;
        best = t < best ? t : best;
    }
    g_peak_gemm = 2.0 * g.n * g.n * (double)g.n / best * 1e-9;
    free(g.a), free(g.b), free(g.c);
    printf("# cpu backend, %d threads; %s\n", be->threads, openblas_get_config());
    printf("# theoretical fp32 peak: %d cores x 2 FMA ports x %d lanes x 2 flop x %.0f MHz = "
           "%.1f GFLOP/s\n",
           be->threads, lanes, mhz, g_peak_theory);
    printf("# practical peak (cblas_sgemm 2048^3, best of 5): %.1f GFLOP/s (%.1f%% of theory)\n",
           g_peak_gemm, 100 * g_peak_gemm / g_peak_theory);
    printf("{\"bench\":\"cpu_ops\",\"threads\":%d,\"peak_theory_gflops\":%.1f,"
           "\"peak_sgemm_gflops\":%.1f}\n",
           be->threads, g_peak_theory, g_peak_gemm);

    // SD1.5 U-Net, 64x64 latent, batch 2.
#define WANT(op) (!only || strcmp(only, op) == 0)
    if (WANT("conv2d")) {
        bench_conv(be, 2, 64, 320, 320, 3, 1);
        bench_conv(be, 2, 32, 640, 640, 3, 1);
        bench_conv(be, 2, 16, 1280, 1280, 3, 1);
        bench_conv(be, 2, 8, 1280, 1280, 3, 1);
        bench_conv(be, 2, 64, 320, 320, 3, 2);  // down_blocks[0] downsampler
        bench_conv(be, 2, 32, 640, 320, 1, 1);  // conv_shortcut-like 1x1 (GEMM path)
        bench_conv(be, 1, 64, 320, 320, 3, 1);  // batch 1
        bench_conv(be, 1, 32, 640, 640, 3, 1);
        bench_conv(be, 1, 16, 1280, 1280, 3, 1);
    }
    if (WANT("conv2d") || WANT("concat")) {
        // up_blocks' skip-concat convs, batch 2: Winograd runs these in
        // blocks of output channels (transformed filters over 64 MB).
        bench_conv(be, 2, 32, 1920, 640, 3, 1);
        bench_conv(be, 2, 32, 1280, 640, 3, 1);
        bench_conv(be, 2, 32, 960, 640, 3, 1);
        bench_conv(be, 2, 64, 960, 320, 3, 1);
        bench_conv(be, 2, 16, 2560, 1280, 3, 1);
    }
    if (WANT("vae")) {
        // TAESD decoder (64 channels) and SD VAE decoder at 512^2, batch 1.
        bench_conv(be, 1, 512, 64, 64, 3, 1);
        bench_conv(be, 1, 128, 64, 64, 3, 1);
        bench_conv(be, 1, 512, 128, 128, 3, 1);
        bench_conv(be, 1, 256, 256, 256, 3, 1);
        bench_conv(be, 1, 128, 512, 512, 3, 1);
        bench_conv(be, 1, 64, 512, 512, 3, 1);
    }
    if (WANT("linear")) {
        bench_linear(be, 8192, 320, 320, 1);  // attn to_out at 64x64
        bench_linear(be, 8192, 320, 320, 0);
        bench_linear(be, 8192, 320, 2560, 0);  // GEGLU proj
    }
    if (WANT("attention")) {
        bench_attention(be, 2, 8, 40, 4096, 4096, 0);
        bench_attention(be, 2, 8, 40, 4096, 77, 0);
        bench_attention(be, 2, 8, 80, 1024, 1024, 0);
        bench_attention(be, 2, 8, 160, 256, 256, 0);
        bench_attention(be, 2, 12, 64, 77, 77, 1);  // CLIP ViT-L text encoder
    }
    if (WANT("group_norm")) {
        bench_group_norm(be, 2, 4096, 320, 32, 0);
        bench_group_norm(be, 2, 4096, 320, 32, 1);
    }
#undef WANT
    hsd_backend_destroy(be);
    return 0;
}
