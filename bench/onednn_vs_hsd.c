// oneDNN against hsd's fp16-weight GEMM and 3x3 convolution (issue 14 item
// 1: "measure OpenBLAS's sbgemm/shgemm, oneDNN and your own packing, and
// choose by measurement"; bench/RESULTS.md records the run).
//
// Shapes: the SD1.5 U-Net at 512^2, batch 2 (64x64 latent): linear layers
// (attention projections, GEGLU, feed-forward out, the 8x8 level's GEGLU)
// and 3x3 convolutions, NHWC, pad 1, stride 1, at every U-Net level. Rows
// per shape, every one checked against the same reference:
//   hsd f16w      hsd_cpu_linear / hsd_cpu_conv2d with the weight kept fp16
//                 through weight_view, as models/loader.c loads it (the
//                 baseline of the "speed" column: its ms / the row's ms)
//   hsd f32w      the same op with fp32 weights (the backend's layout)
//   sgemm / im2col  the reference: OpenBLAS cblas_sgemm (linear) or hsd's
//                 im2col conv on cblas_sgemm (conv), fp32; it is itself
//                 spot-checked against double-precision sums first
//   dnnl f32 ...  oneDNN matmul (weights [n_out, k] as PyTorch stores them,
//                 a transposed-B memory desc, or format_tag_any) or
//                 convolution (NHWC src/dst, convolution_auto, weights in the
//                 format oneDNN picks), f32 x f32 -> f32
//   dnnl bf16/f16 the same with src and weights in bf16 / f16, dst f32; on a
//                 CPU without native support oneDNN 2.6 may have no
//                 implementation at all: the row then says "unimplemented"
// Every oneDNN row prints the implementation oneDNN picked (impl_info_str)
// and the weights' layout. Reorders (weights into oneDNN's layout, src into
// bf16/f16) run once before the timed loop, not in it, as weights packed at
// load would; the per-call conversion of fp32 activations a bf16/f16 model
// would pay is therefore NOT in the bf16/f16 rows' times. All rows use the
// same fp16-rounded weights (exact in fp32), so the fp16-weight rows and the
// fp32 reference multiply identical values.
//
// Timing: 1 warm-up call, then 5 calls (1 when the warm-up took over 2 s: a
// slow reference implementation) with an 8 MiB cache flush between them;
// the median is reported. oneDNN, OpenBLAS and hsd all run on OpenMP with
// `threads` threads. Output: a human line per row, then a JSON line.
//
// Run: build/bench/onednn_vs_hsd [threads]   (default 2; about 30 s on
//      a 2-core AVX2 EPYC). Built only when CMake finds oneDNN (Debian
//      libdnnl-dev, scripts/setup.sh installs it): bench/CMakeLists.txt.
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_internal.h"
#include "bench_timing.h"
#include "core/assert.h"
#include "core/dtype.h"

#define REPS 5
#define SLOW_S 2.0  // a warm-up call slower than this is timed once more only
// The reference (fp32, blocked summation) against double sums on sampled
// outputs, relative to max|ref|: its own error is ~sqrt(K) * 6e-8 (K up to
// 11520 here: ~6e-6); a wrong tap, transpose or layout errs by 1e-2 or more.
#define REF_TOL 1e-4
#define SAMPLES 256

static uint32_t g_seed = 12345u;
static uint32_t lcg(void) { return g_seed = g_seed * 1664525u + 1013904223u; }

// 64-byte aligned, uniform in [-scale, scale).
static float *rand_buf(size_t n, float scale) {
    float *x = hsd_cpu_aligned_alloc(n * sizeof *x);
    HSD_ASSERT(x);
    for (size_t i = 0; i < n; i++)
        x[i] = scale * ((float)(lcg() >> 8) * (1.0f / 8388608.0f) - 1.0f);
    return x;
}

// Rounds w to fp16 in place; the fp16 bits go to *half (malloc'd).
static uint16_t *round_f16(float *w, size_t n) {
    uint16_t *half = malloc(n * sizeof *half);
    HSD_ASSERT(half);
    for (size_t i = 0; i < n; i++) {
        half[i] = hsd_f32_to_f16(w[i]);
        w[i] = hsd_f16_to_f32(half[i]);
    }
    return half;
}

static void poison(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = NAN;
}

typedef void (*run_fn)(void *ctx);
// Median seconds of fn(ctx); *reps gets the number of timed calls.
static double time_median(run_fn fn, void *ctx, int *reps) {
    double t0 = hsd_bench_now_s();
    fn(ctx);
    const int n = hsd_bench_now_s() - t0 > SLOW_S ? 1 : REPS;
    double t[REPS];
    for (int i = 0; i < n; i++) {
        hsd_bench_flush_cache();
        t0 = hsd_bench_now_s();
        fn(ctx);
        t[i] = hsd_bench_now_s() - t0;
    }
    *reps = n;
    return hsd_bench_median(t, n);
}

// max|got - ref| / max|ref|; infinity when got has a non-finite element
// (the outputs are poisoned with NaN before each row).
static double rel_err(const float *got, const float *ref, size_t n) {
    double err = 0.0, mx = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) return INFINITY;
        double d = fabs((double)got[i] - ref[i]);
        err = d > err ? d : err;
        mx = fabs(ref[i]) > mx ? fabs(ref[i]) : mx;
    }
    return mx > 0 ? err / mx : err;
}

// ---- output ---------------------------------------------------------------

struct row {
    const char *op;     // "linear" or "conv3x3"
    const char *shape;
    const char *path;   // "hsd f16w", "dnnl bf16", ...
    char impl[128];     // which implementation ran, or why none did
    int ok;             // 0: no implementation (or it failed): not timed
    double ms, flop, err;
    int reps;
};

static double g_base_ms;  // hsd f16w of the current shape

// Quotes and backslashes never occur in oneDNN's names; replaced anyway so
// the JSON line stays valid.
static void json_safe(char *s) {
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20) *s = '_';
}

static void report(struct row *r) {
    json_safe(r->impl);
    if (!r->ok) {
        printf("%-7s %-24s %-15s %10s  %s\n", r->op, r->shape, r->path, "--", r->impl);
        printf("{\"bench\":\"onednn_vs_hsd\",\"op\":\"%s\",\"shape\":\"%s\",\"path\":\"%s\","
               "\"status\":\"none\",\"impl\":\"%s\"}\n",
               r->op, r->shape, r->path, r->impl);
    } else {
        const double gflops = r->flop / r->ms * 1e-6, speed = g_base_ms / r->ms;
        printf("%-7s %-24s %-15s %10.2f ms %7.1f GFLOP/s %5.2fx  err %.1e  %s\n", r->op,
               r->shape, r->path, r->ms, gflops, speed, r->err, r->impl);
        printf("{\"bench\":\"onednn_vs_hsd\",\"op\":\"%s\",\"shape\":\"%s\",\"path\":\"%s\","
               "\"status\":\"ok\",\"impl\":\"%s\",\"ms\":%.3f,\"gflops\":%.2f,"
               "\"speed_vs_hsd_f16w\":%.3f,\"max_rel_err\":%.3g,\"reps\":%d}\n",
               r->op, r->shape, r->path, r->impl, r->ms, gflops, speed, r->err, r->reps);
    }
    fflush(stdout);
}

// Times fn(ctx), which writes `out`, and checks out against ref; `base`:
// the row is the shape's hsd f16w, the baseline of the speed column.
static void time_row(struct row *r, run_fn fn, void *ctx, float *out, const float *ref,
                     size_t n_out, int base) {
    poison(out, n_out);
    r->ms = 1e3 * time_median(fn, ctx, &r->reps);
    r->err = rel_err(out, ref, n_out);
    r->ok = 1;
    if (base) g_base_ms = r->ms;
    report(r);
}

// ---- oneDNN ---------------------------------------------------------------

static dnnl_engine_t g_eng;
static dnnl_stream_t g_stream;

// oneDNN's name of a blocked layout: outer dimensions by decreasing stride
// (upper case when also blocked), then the inner blocks ("OIhw8i8o").
static void layout_name(char *buf, size_t len, const dnnl_memory_desc_t *md, const char *dims) {
    if (md->format_kind != dnnl_blocked) {
        snprintf(buf, len, "%s", dnnl_fmt_kind2str(md->format_kind));
        return;
    }
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    int order[DNNL_MAX_NDIMS], blocked[DNNL_MAX_NDIMS] = {0};
    for (int i = 0; i < b->inner_nblks; i++) blocked[b->inner_idxs[i]] = 1;
    for (int i = 0; i < md->ndims; i++) order[i] = i;
    for (int i = 1; i < md->ndims; i++)  // insertion sort, stable: strides descending
        for (int j = i; j > 0 && b->strides[order[j]] > b->strides[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1], order[j - 1] = t;
        }
    size_t o = 0;
    for (int i = 0; i < md->ndims && o + 1 < len; i++) {
        char c = dims[order[i]];
        buf[o++] = blocked[order[i]] ? (char)(c - 'a' + 'A') : c;
    }
    buf[o] = '\0';
    for (int i = 0; i < b->inner_nblks && o + 1 < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%d%c", (int)b->inner_blks[i],
                              dims[b->inner_idxs[i]]);
}

// One oneDNN primitive with its arguments, ready to execute.
struct dnnl_job {
    dnnl_primitive_t prim;
    dnnl_exec_arg_t args[3];
    dnnl_memory_t mem[3];
};

static void run_dnnl(void *p) {
    struct dnnl_job *j = p;
    HSD_ASSERT(dnnl_primitive_execute(j->prim, g_stream, 3, j->args) == dnnl_success);
    HSD_ASSERT(dnnl_stream_wait(g_stream) == dnnl_success);
}

// *mem = user data in the layout and type `want` (a reorder, run once, when
// they differ; *mem then owns its buffer).
static dnnl_status_t dnnl_input(dnnl_memory_t *mem, const dnnl_memory_desc_t *want,
                                const dnnl_memory_desc_t *user, void *data) {
    if (dnnl_memory_desc_equal(want, user))
        return dnnl_memory_create(mem, user, g_eng, data);
    dnnl_memory_t from = NULL;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_status_t s = dnnl_memory_create(mem, want, g_eng, DNNL_MEMORY_ALLOCATE);
    if (!s) s = dnnl_memory_create(&from, user, g_eng, data);
    if (!s) s = dnnl_reorder_primitive_desc_create(&rpd, user, g_eng, want, g_eng, NULL);
    if (!s) s = dnnl_primitive_create(&reorder, rpd);
    if (!s) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, *mem}};
        s = dnnl_primitive_execute(reorder, g_stream, 2, args);
    }
    if (!s) s = dnnl_stream_wait(g_stream);
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(rpd);
    dnnl_memory_destroy(from);
    return s;
}

// Makes j from the op descriptor: src and weights come from fp32 user
// buffers (reordered once where oneDNN wants another layout or type), dst
// is written straight into `dst` (the caller asks for a plain layout).
// r->impl gets the implementation's name and the weights' layout.
static dnnl_status_t dnnl_job_make(struct dnnl_job *j, struct row *r, const void *op_desc,
                                   const dnnl_memory_desc_t *src_user, float *src,
                                   const dnnl_memory_desc_t *wei_user, float *wei, float *dst,
                                   const char *wei_dims) {
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s = dnnl_primitive_desc_create(&pd, op_desc, NULL, g_eng, NULL);
    if (s != dnnl_success) {
        snprintf(r->impl, sizeof r->impl, "no implementation: primitive_desc_create returned %s",
                 dnnl_status2str(s));
        return s;
    }
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    const dnnl_memory_desc_t *src_md = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *wei_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *dst_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    char layout[32];
    layout_name(layout, sizeof layout, wei_md, wei_dims);
    snprintf(r->impl, sizeof r->impl, "%s, weights %s %s%s", impl ? impl : "?", layout,
             dnnl_dt2str(wei_md->data_type),
             dnnl_memory_desc_equal(wei_md, wei_user) ? " (as stored)" : " (reordered once)");
    s = dnnl_input(&j->mem[0], src_md, src_user, src);
    if (!s) s = dnnl_input(&j->mem[1], wei_md, wei_user, wei);
    if (!s) s = dnnl_memory_create(&j->mem[2], dst_md, g_eng, dst);
    if (!s) s = dnnl_primitive_create(&j->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    if (s) {
        snprintf(r->impl, sizeof r->impl, "setup failed: %s", dnnl_status2str(s));
        return s;
    }
    static const int ids[3] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST};
    for (int i = 0; i < 3; i++) j->args[i] = (dnnl_exec_arg_t){ids[i], j->mem[i]};
    return dnnl_success;
}

static void dnnl_job_free(struct dnnl_job *j) {
    dnnl_primitive_destroy(j->prim);
    for (int i = 0; i < 3; i++) dnnl_memory_destroy(j->mem[i]);
}

// One oneDNN row from an initialised op descriptor: made, timed, checked,
// reported; "none" when oneDNN has no implementation.
static void dnnl_row(struct row *r, const void *op_desc, const dnnl_memory_desc_t *src_user,
                     float *src, const dnnl_memory_desc_t *wei_user, float *wei, float *dst,
                     const float *ref, size_t n_out, const char *wei_dims) {
    struct dnnl_job j = {0};
    if (dnnl_job_make(&j, r, op_desc, src_user, src, wei_user, wei, dst, wei_dims) ==
        dnnl_success)
        time_row(r, run_dnnl, &j, dst, ref, n_out, 0);
    else
        report(r);
    dnnl_job_free(&j);
}

// ---- linear ---------------------------------------------------------------

struct lin_ctx {
    struct hsd_backend *be;
    struct hsd_linear_params p;
    const float *wr;  // [n_out, k] fp32
};
static void run_hsd_linear(void *p) {
    struct lin_ctx *c = p;
    HSD_ASSERT(hsd_cpu_linear(c->be, &c->p) == HSD_OK);
}
static void run_sgemm(void *p) {
    struct lin_ctx *c = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c->p.m, c->p.n_out, c->p.k, 1.0f,
                c->p.in, c->p.k, c->wr, c->p.k, 0.0f, c->p.out, c->p.n_out);
}

// The reference against double sums at SAMPLES outputs; 0 when it fails.
static int check_ref_linear(const float *ref, const float *in, const float *w, int m, int k,
                            int n_out) {
    double err = 0.0, mx = 0.0;
    for (size_t i = 0; i < (size_t)m * n_out; i++) mx = fmax(mx, fabs(ref[i]));
    for (int s = 0; s < SAMPLES; s++) {
        const int i = (int)(lcg() % (uint32_t)m), o = (int)(lcg() % (uint32_t)n_out);
        double sum = 0.0;
        for (int kk = 0; kk < k; kk++) sum += (double)in[(size_t)i * k + kk] * w[(size_t)o * k + kk];
        err = fmax(err, fabs(sum - ref[(size_t)i * n_out + o]));
    }
    if (err <= REF_TOL * mx) return 1;
    fprintf(stderr, "onednn_vs_hsd: sgemm reference %dx%d->%d off by %.3g of max|ref|\n", m, k,
            n_out, err / mx);
    return 0;
}

static int bench_linear(struct hsd_backend *be, int m, int k, int n_out) {
    const size_t n_in = (size_t)m * k, n_w = (size_t)n_out * k, n_o = (size_t)m * n_out;
    float *in = rand_buf(n_in, 1.0f), *wr = rand_buf(n_w, 0.05f);
    uint16_t *w16 = round_f16(wr, n_w);
    float *ref = rand_buf(n_o, 1.0f), *out = rand_buf(n_o, 1.0f);
    char shape[48];
    snprintf(shape, sizeof shape, "%dx%d->%d", m, k, n_out);
    const double flop = 2.0 * m * k * (double)n_out;

    struct lin_ctx c = {.be = be, .wr = wr,
                        .p = {.out = ref, .in = in, .m = m, .k = k, .n_out = n_out}};
    run_sgemm(&c);
    int ok = check_ref_linear(ref, in, wr, m, k, n_out);
    c.p.out = out;

    // hsd, fp16-resident weight borrowed from the caller's buffer (copy = 0),
    // as the loader borrows it from the mapped file.
    struct hsd_weight_view_params vp = {.data = w16, .dtype = HSD_F16, .rows = n_out, .k = k,
                                        .taps = 1};
    void *view = be->ops->weight_view(be, &vp);
    HSD_ASSERT(view);
    struct row r = {.op = "linear", .shape = shape, .flop = flop};
    r.path = "hsd f16w", c.p.weight = view;
    snprintf(r.impl, sizeof r.impl, "hsd_cpu_gemm_view (fp16 -> fp32 while packing)");
    time_row(&r, run_hsd_linear, &c, out, ref, n_o, 1);
    be->ops->free(be, view);

    r.path = "hsd f32w", c.p.weight = wr;
    snprintf(r.impl, sizeof r.impl, "cblas_sgemm on fp32 weights");
    time_row(&r, run_hsd_linear, &c, out, ref, n_o, 0);
    r.path = "openblas sgemm";
    snprintf(r.impl, sizeof r.impl, "cblas_sgemm (NoTrans, Trans): the reference");
    time_row(&r, run_sgemm, &c, out, ref, n_o, 0);

    // oneDNN matmul: src [m, k], weights [k, n_out] stored as [n_out, k]
    // ("ba": PyTorch's nn.Linear layout, no reorder) or in the layout it
    // picks ("any"), dst [m, n_out] f32.
    const dnnl_dims_t sd = {m, k}, wd = {k, n_out}, dd = {m, n_out};
    dnnl_memory_desc_t src_user, wei_user, dst_md;
    HSD_ASSERT(!dnnl_memory_desc_init_by_tag(&src_user, 2, sd, dnnl_f32, dnnl_ab));
    HSD_ASSERT(!dnnl_memory_desc_init_by_tag(&wei_user, 2, wd, dnnl_f32, dnnl_ba));
    HSD_ASSERT(!dnnl_memory_desc_init_by_tag(&dst_md, 2, dd, dnnl_f32, dnnl_ab));
    static const struct {
        const char *path;
        dnnl_data_type_t dt;
        dnnl_format_tag_t wtag;
    } v[] = {{"dnnl f32 ba", dnnl_f32, dnnl_ba},
             {"dnnl f32 any", dnnl_f32, dnnl_format_tag_any},
             {"dnnl bf16", dnnl_bf16, dnnl_format_tag_any},
             {"dnnl f16", dnnl_f16, dnnl_format_tag_any}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        dnnl_memory_desc_t src_md, wei_md;
        dnnl_matmul_desc_t desc;
        HSD_ASSERT(!dnnl_memory_desc_init_by_tag(&src_md, 2, sd, v[i].dt, dnnl_ab));
        HSD_ASSERT(!dnnl_memory_desc_init_by_tag(&wei_md, 2, wd, v[i].dt, v[i].wtag));
        r.path = v[i].path;
        dnnl_status_t s = dnnl_matmul_desc_init(&desc, &src_md, &wei_md, NULL, &dst_md);
        if (s != dnnl_success) {
            snprintf(r.impl, sizeof r.impl, "matmul_desc_init: %s", dnnl_status2str(s));
            r.ok = 0;
            report(&r);
            continue;
        }
        r.ok = 0;
        dnnl_row(&r, &desc, &src_user, in, &wei_user, wr, out, ref, n_o, "kn");
    }
    free(in), free(wr), free(w16), free(ref), free(out);
    return ok;
}

// ---- 3x3 convolution --------------------------------------------------------

struct conv_ctx {
    struct hsd_backend *be;
    struct hsd_conv2d_params p;
};
static void run_hsd_conv(void *p) {
    struct conv_ctx *c = p;
    HSD_ASSERT(hsd_cpu_conv2d(c->be, &c->p) == HSD_OK);
}
static void run_hsd_im2col(void *p) {
    struct conv_ctx *c = p;
    HSD_ASSERT(hsd_cpu_conv2d_v1_im2col(c->be, &c->p) == HSD_OK);
}

// The reference (NHWC, pad 1) against double sums over PyTorch's
// cross-correlation with w [co, ci, 3, 3] at SAMPLES outputs.
static int check_ref_conv(const float *ref, const float *in, const float *w, int n, int h,
                          int ci, int co) {
    const size_t n_o = (size_t)n * h * h * co;
    double err = 0.0, mx = 0.0;
    for (size_t i = 0; i < n_o; i++) mx = fmax(mx, fabs(ref[i]));
    for (int s = 0; s < SAMPLES; s++) {
        const size_t idx = lcg() % (uint32_t)n_o;
        const int o = (int)(idx % co), x = (int)(idx / co % h), y = (int)(idx / co / h % h);
        const int b = (int)(idx / co / h / h);
        double sum = 0.0;
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) {
                const int iy = y + ky - 1, ix = x + kx - 1;
                if (iy < 0 || iy >= h || ix < 0 || ix >= h) continue;
                const float *px = in + (((size_t)b * h + iy) * h + ix) * ci;
                for (int c = 0; c < ci; c++)
                    sum += (double)px[c] * w[(((size_t)o * ci + c) * 3 + ky) * 3 + kx];
            }
        err = fmax(err, fabs(sum - ref[idx]));
    }
    if (err <= REF_TOL * mx) return 1;
    fprintf(stderr, "onednn_vs_hsd: im2col reference n%d %dx%d %d->%d off by %.3g\n", n, h, h,
            ci, co, err / mx);
    return 0;
}

static int bench_conv(struct hsd_backend *be, int n, int h, int ci, int co) {
    const size_t n_in = (size_t)n * h * h * ci, n_w = (size_t)co * ci * 9;
    const size_t n_o = (size_t)n * h * h * co;
    float *in = rand_buf(n_in, 1.0f), *wr = rand_buf(n_w, 0.05f);  // [co, ci, 3, 3]
    uint16_t *w16 = round_f16(wr, n_w);
    float *wl = rand_buf(n_w, 1.0f);  // [co, 3, 3, ci]: the backend's fp32 layout
    for (int o = 0; o < co; o++)
        for (int c = 0; c < ci; c++)
            for (int t = 0; t < 9; t++)
                wl[((size_t)o * 9 + t) * ci + c] = wr[((size_t)o * ci + c) * 9 + t];
    float *ref = rand_buf(n_o, 1.0f), *out = rand_buf(n_o, 1.0f);
    char shape[48];
    snprintf(shape, sizeof shape, "n%d %dx%d %d->%d", n, h, h, ci, co);
    const double flop = 2.0 * n * h * h * (double)co * ci * 9;

    struct conv_ctx c = {.be = be,
                         .p = {.out = ref, .in = in, .weight = wl, .n = n, .h = h, .w = h,
                               .ci = ci, .co = co, .kh = 3, .kw = 3, .stride = 1, .pad = 1}};
    run_hsd_im2col(&c);
    int ok = check_ref_conv(ref, in, wr, n, h, ci, co);
    c.p.out = out;
    const int wino = hsd_cpu_conv2d_winograd_pick(&c.p);
    char hsd_impl[48];
    if (wino) snprintf(hsd_impl, sizeof hsd_impl, "Winograd F(%d,3)", wino);
    else snprintf(hsd_impl, sizeof hsd_impl, "im2col + sgemm");

    struct hsd_weight_view_params vp = {.data = w16, .dtype = HSD_F16, .rows = co,
                                        .k = ci * 9, .taps = 9};
    void *view = be->ops->weight_view(be, &vp);
    HSD_ASSERT(view);
    struct row r = {.op = "conv3x3", .shape = shape, .flop = flop};
    r.path = "hsd f16w", c.p.weight = view;
    snprintf(r.impl, sizeof r.impl, "%s, fp16 weights converted while packing", hsd_impl);
    time_row(&r, run_hsd_conv, &c, out, ref, n_o, 1);
    be->ops->free(be, view);

    r.path = "hsd f32w", c.p.weight = wl;
    snprintf(r.impl, sizeof r.impl, "%s, fp32 weights", hsd_impl);
    time_row(&r, run_hsd_conv, &c, out, ref, n_o, 0);
    r.path = "hsd im2col f32";
    snprintf(r.impl, sizeof r.impl, "im2col + cblas_sgemm: the reference");
    time_row(&r, run_hsd_im2col, &c, out, ref, n_o, 0);

    // oneDNN convolution: logical dims NCHW / OIHW; src and dst NHWC as hsd
    // holds them, the user's weights OIHW as PyTorch stores them, the
    // primitive's weights in the layout it picks (reordered once).
    const dnnl_dims_t sd = {n, ci, h, h}, wd = {co, ci, 3, 3}, dd = {n, co, h, h};
    const dnnl_dims_t strides = {1, 1}, pad = {1, 1};
    dnnl_memory_desc_t src_user, wei_user, dst_md;
    HSD_ASSERT(!dnnl_memory_desc_init_by_tag(&src_user, 4, sd, dnnl_f32, dnnl_nhwc));
    HSD_ASSERT(!dnnl_memory_desc_init_by_tag(&wei_user, 4, wd, dnnl_f32, dnnl_oihw));
    HSD_ASSERT(!dnnl_memory_desc_init_by_tag(&dst_md, 4, dd, dnnl_f32, dnnl_nhwc));
    static const struct {
        const char *path;
        dnnl_data_type_t dt;
    } v[] = {{"dnnl f32", dnnl_f32}, {"dnnl bf16", dnnl_bf16}, {"dnnl f16", dnnl_f16}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        dnnl_memory_desc_t src_md, wei_md;
        dnnl_convolution_desc_t desc;
        HSD_ASSERT(!dnnl_memory_desc_init_by_tag(&src_md, 4, sd, v[i].dt, dnnl_nhwc));
        HSD_ASSERT(!dnnl_memory_desc_init_by_tag(&wei_md, 4, wd, v[i].dt, dnnl_format_tag_any));
        r.path = v[i].path;
        dnnl_status_t s = dnnl_convolution_forward_desc_init(
            &desc, dnnl_forward_inference, dnnl_convolution_auto, &src_md, &wei_md, NULL,
            &dst_md, strides, pad, pad);
        r.ok = 0;
        if (s != dnnl_success) {
            snprintf(r.impl, sizeof r.impl, "convolution_forward_desc_init: %s",
                     dnnl_status2str(s));
            report(&r);
            continue;
        }
        dnnl_row(&r, &desc, &src_user, in, &wei_user, wr, out, ref, n_o, "oihw");
    }
    free(in), free(wr), free(w16), free(wl), free(ref), free(out);
    return ok;
}

// ---- header -----------------------------------------------------------------

// The value of the first /proc/cpuinfo line starting with `key` into buf.
static void cpuinfo(char *buf, size_t len, const char *key) {
    snprintf(buf, len, "?");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    static char line[8192];
    while (fgets(line, sizeof line, f)) {
        const char *colon = strchr(line, ':');
        if (strncmp(line, key, strlen(key)) == 0 && colon) {
            snprintf(buf, len, "%s", colon + (colon[1] == ' ' ? 2 : 1));
            buf[strcspn(buf, "\n")] = '\0';
            break;
        }
    }
    fclose(f);
}

static const char *isa_name(dnnl_cpu_isa_t isa) {
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

static void print_header(int threads) {
    char model[256], flags[8192], have[160] = "";
    cpuinfo(model, sizeof model, "model name");
    cpuinfo(flags, sizeof flags, "flags");
    static const char *const want[] = {"avx2", "fma", "f16c", "avx512f", "avx512_bf16",
                                       "avx512_fp16", "amx_bf16"};
    strcat(flags, " ");
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char pat[32];
        snprintf(pat, sizeof pat, " %s ", want[i]);
        strcat(have, strstr(flags, pat) ? " +" : " -");
        strcat(have, want[i]);
    }
    json_safe(model);
    const dnnl_version_t *v = dnnl_version();
    printf("# cpu: %s;%s; %d threads\n", model, have, threads);
    printf("# oneDNN %d.%d.%d (%s), cpu runtime %s, effective ISA %s\n", v->major, v->minor,
           v->patch, v->hash ? v->hash : "?",
           v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "not OpenMP",
           isa_name(dnnl_get_effective_cpu_isa()));
    printf("# OpenBLAS: %s\n", openblas_get_config());
    printf("# columns: ms (median of %d after 1 warm-up), GFLOP/s, speed vs hsd f16w of the "
           "same shape, max|out - ref| / max|ref|, implementation\n",
           REPS);
    printf("{\"bench\":\"onednn_vs_hsd\",\"cpu\":\"%s\",\"threads\":%d,\"onednn\":\"%d.%d.%d\","
           "\"openblas\":\"%s\"}\n",
           model, threads, v->major, v->minor, v->patch, openblas_get_config());
}

int main(int argc, char **argv) {
    const int threads = argc > 1 ? atoi(argv[1]) : 2;
    if (threads < 1) {
        fprintf(stderr, "usage: onednn_vs_hsd [threads >= 1]\n");
        return 2;
    }
    // oneDNN (OpenMP runtime) and OpenBLAS (its OpenMP build) size their
    // parallel regions from the calling thread's omp_get_max_threads().
    omp_set_num_threads(threads);
    struct hsd_backend *be = NULL;
    if (hsd_backend_cpu_create(&be, threads) != HSD_OK) {
        fprintf(stderr, "onednn_vs_hsd: cannot create the CPU backend\n");
        return 1;
    }
    if (dnnl_engine_create(&g_eng, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&g_stream, g_eng, dnnl_stream_default_flags) != dnnl_success) {
        fprintf(stderr, "onednn_vs_hsd: cannot create a oneDNN CPU engine and stream\n");
        hsd_backend_destroy(be);
        return 1;
    }
    print_header(threads);
    int ok = 1;
    // SD1.5 U-Net, 512^2, batch 2: m = 2 * tokens.
    ok &= bench_linear(be, 8192, 320, 320);    // 64x64 attention to_q/k/v/out
    ok &= bench_linear(be, 8192, 320, 2560);   // 64x64 GEGLU proj
    ok &= bench_linear(be, 2048, 640, 5120);   // 32x32 GEGLU proj
    ok &= bench_linear(be, 512, 1280, 10240);  // 16x16 GEGLU proj
    ok &= bench_linear(be, 512, 5120, 1280);   // 16x16 feed-forward out
    ok &= bench_conv(be, 2, 64, 320, 320);     // down_blocks[0] / up_blocks[3] resnets
    ok &= bench_conv(be, 2, 32, 640, 640);
    ok &= bench_conv(be, 2, 16, 1280, 1280);
    ok &= bench_conv(be, 2, 8, 1280, 1280);    // down_blocks[3] / mid_block
    dnnl_stream_destroy(g_stream);
    dnnl_engine_destroy(g_eng);
    hsd_backend_destroy(be);
    if (!ok) fprintf(stderr, "onednn_vs_hsd: a reference failed its double-precision check\n");
    return ok ? 0 : 1;
}
