// CPU backend ops (host/backend/cpu) against naive references written here
// with double accumulation, on SD shapes and odd ones. Every output buffer
// is poisoned with NaN before the call, so an element the op forgets to
// write fails the comparison (hsd_compare counts non-finite values).
//
// Tolerances (relative to max|ref|, see CHECK_CLOSE):
// - GEMM-based ops (conv2d, linear): fp32 dot products of length K carry a
//   rounding error that grows like sqrt(K) * eps * |terms| (eps = 6e-8);
//   for K <= 4608 and inputs in [-1, 1] that is ~1e-6 of max|ref| at worst
//   (observed ~1e-7). TOL_GEMM = 1e-5 leaves 10x margin yet catches any
//   wrong tap, channel or stride (errors of order 1).
// - attention: the same GEMM error on q k^T and p v plus a ~1 ulp exp per
//   probability; TOL_GEMM as well.
// - norms: statistics in double, the apply step a single fp32 fma-like
//   expression: a few ulp of the normalised value. TOL_NORM = 2e-6 ("match
//   torch to ~1e-6").
// - pointwise transcendental ops (geglu, silu, timestep embedding): ~1-2
//   ulp of the result. TOL_POINT = 1e-6, plus a per-element relative check
//   for silu so small outputs are held to their own ulp.
// - copies and single fp32 additions: exact (tolerance 0).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_internal.h"
#include "core/assert.h"
#include "testutil.h"

#define TOL_GEMM 1e-5
#define TOL_NORM 2e-6
#define TOL_POINT 1e-6

static struct hsd_backend *g_be;
static uint64_t g_seed = 1;

// ---- buffers -------------------------------------------------------------

static float *host_uniform(size_t n, float scale) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    HSD_ASSERT(x);
    hsd_test_fill_uniform(x, n, g_seed++, scale);
    return x;
}

static float *host_nan(size_t n) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    HSD_ASSERT(x);
    for (size_t i = 0; i < n; i++) x[i] = NAN;
    return x;
}

// Backend copy of a host array.
static float *dev_from(const float *host, size_t n) {
    float *d = g_be->ops->alloc(g_be, n * sizeof(float));
    HSD_ASSERT(d);
    CHECK_OK(g_be->ops->upload(g_be, d, host, n));
    return d;
}

// Backend buffer filled with NaN (the poisoned output).
static float *dev_nan(size_t n) {
    float *h = host_nan(n);
    float *d = dev_from(h, n);
    free(h);
    return d;
}

static float *fetch(const float *d, size_t n) {
    float *h = malloc((n ? n : 1) * sizeof *h);
    HSD_ASSERT(h);
    CHECK_OK(g_be->ops->download(g_be, h, d, n));
    return h;
}

static void dev_free(void *d) { g_be->ops->free(g_be, d); }

// ---- conv2d --------------------------------------------------------------

struct conv_case {
    int n, h, w, ci, co, kh, kw, stride, pad, bias, residual;
};

static void ref_conv2d(float *out, const float *in, const float *wt, const float *bias,
                       const float *res, const struct conv_case *c, int ho, int wo) {
    for (int b = 0; b < c->n; b++)
        for (int oy = 0; oy < ho; oy++)
            for (int ox = 0; ox < wo; ox++)
                for (int o = 0; o < c->co; o++) {
                    double acc = bias ? bias[o] : 0.0;
                    for (int ky = 0; ky < c->kh; ky++)
                        for (int kx = 0; kx < c->kw; kx++) {
                            int iy = oy * c->stride - c->pad + ky;
                            int ix = ox * c->stride - c->pad + kx;
                            if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w) continue;
                            const float *x = in + (((size_t)b * c->h + iy) * c->w + ix) * c->ci;
                            const float *k = wt + (((size_t)o * c->kh + ky) * c->kw + kx) * c->ci;
                            for (int i = 0; i < c->ci; i++) acc += (double)x[i] * k[i];
                        }
                    size_t idx = (((size_t)b * ho + oy) * wo + ox) * c->co + o;
                    if (res) acc += res[idx];
                    out[idx] = (float)acc;
                }
}

// pb, pr: extra zero rows/columns at the bottom/right (pad_bottom,
// pad_right); ref_conv2d skips every tap outside the image, so it only
// needs the larger ho, wo.
static void test_conv2d_pads(const struct conv_case *c, int pb, int pr) {
    const int ho = (c->h + 2 * c->pad + pb - c->kh) / c->stride + 1;
    const int wo = (c->w + 2 * c->pad + pr - c->kw) / c->stride + 1;
    const size_t n_in = (size_t)c->n * c->h * c->w * c->ci;
    const size_t n_w = (size_t)c->co * c->kh * c->kw * c->ci;
    const size_t n_out = (size_t)c->n * ho * wo * c->co;
    float *in = host_uniform(n_in, 1.0f), *wt = host_uniform(n_w, 1.0f);
    float *bias = c->bias ? host_uniform((size_t)c->co, 1.0f) : NULL;
    float *res = c->residual ? host_uniform(n_out, 1.0f) : NULL;
    float *ref = malloc(n_out * sizeof *ref);
    ref_conv2d(ref, in, wt, bias, res, c, ho, wo);

    float *d_in = dev_from(in, n_in), *d_w = dev_from(wt, n_w), *d_out = dev_nan(n_out);
    float *d_b = bias ? dev_from(bias, (size_t)c->co) : NULL;
    float *d_r = res ? dev_from(res, n_out) : NULL;
    struct hsd_conv2d_params p = {.out = d_out, .in = d_in, .weight = d_w, .bias = d_b,
                                  .residual = d_r, .n = c->n, .h = c->h, .w = c->w,
                                  .ci = c->ci, .co = c->co, .kh = c->kh, .kw = c->kw,
                                  .stride = c->stride, .pad = c->pad, .pad_bottom = pb,
                                  .pad_right = pr};
    CHECK_OK(g_be->ops->conv2d(g_be, &p));
    float *got = fetch(d_out, n_out);
    char what[128];
    snprintf(what, sizeof what, "conv2d n%d %dx%d %d->%d k%dx%d s%d p%d%s%s", c->n, c->h, c->w,
             c->ci, c->co, c->kh, c->kw, c->stride, c->pad, c->bias ? " b" : "",
             c->residual ? " r" : "");
    if (pb || pr)
        snprintf(what + strlen(what), sizeof what - strlen(what), " +pad b%d r%d", pb, pr);
    CHECK_CLOSE(what, got, ref, n_out, TOL_GEMM);
    free(got);

    if (res) {
        // In place: residual is the output buffer itself.
        float *d_io = dev_from(res, n_out);
        p.out = d_io;
        p.residual = d_io;
        CHECK_OK(g_be->ops->conv2d(g_be, &p));
        got = fetch(d_io, n_out);
        strncat(what, " inplace", sizeof what - strlen(what) - 1);
        CHECK_CLOSE(what, got, ref, n_out, TOL_GEMM);
        free(got);
        dev_free(d_io);
    }
    dev_free(d_in), dev_free(d_w), dev_free(d_out), dev_free(d_b), dev_free(d_r);
    free(in), free(wt), free(bias), free(res), free(ref);
}

static void test_conv2d(const struct conv_case *c) { test_conv2d_pads(c, 0, 0); }

// ---- linear --------------------------------------------------------------

static void test_linear(int m, int k, int n_out, int bias_on, int res_on) {
    float *in = host_uniform((size_t)m * k, 1.0f), *wt = host_uniform((size_t)n_out * k, 1.0f);
    float *bias = bias_on ? host_uniform((size_t)n_out, 1.0f) : NULL;
    float *res = res_on ? host_uniform((size_t)m * n_out, 1.0f) : NULL;
    float *ref = malloc((size_t)m * n_out * sizeof *ref);
    for (int r = 0; r < m; r++)
        for (int o = 0; o < n_out; o++) {
            double acc = bias ? bias[o] : 0.0;
            for (int i = 0; i < k; i++) acc += (double)in[(size_t)r * k + i] * wt[(size_t)o * k + i];
            if (res) acc += res[(size_t)r * n_out + o];
            ref[(size_t)r * n_out + o] = (float)acc;
        }
    const size_t no = (size_t)m * n_out;
    float *d_in = dev_from(in, (size_t)m * k), *d_w = dev_from(wt, (size_t)n_out * k);
    float *d_b = bias ? dev_from(bias, (size_t)n_out) : NULL;
    float *d_r = res ? dev_from(res, no) : NULL;
    float *d_out = dev_nan(no);
    struct hsd_linear_params p = {.out = d_out, .in = d_in, .weight = d_w, .bias = d_b,
                                  .residual = d_r, .m = m, .k = k, .n_out = n_out};
    CHECK_OK(g_be->ops->linear(g_be, &p));
    float *got = fetch(d_out, no);
    char what[96];
    snprintf(what, sizeof what, "linear %dx%d->%d%s%s", m, k, n_out, bias_on ? " b" : "",
             res_on ? " r" : "");
    CHECK_CLOSE(what, got, ref, no, TOL_GEMM);
    free(got);
    if (res) {
        // In place: residual is the output buffer itself (the VAE's
        // attention adds its input back this way).
        float *d_io = dev_from(res, no);
        p.out = d_io;
        p.residual = d_io;
        CHECK_OK(g_be->ops->linear(g_be, &p));
        got = fetch(d_io, no);
        strncat(what, " inplace", sizeof what - strlen(what) - 1);
        CHECK_CLOSE(what, got, ref, no, TOL_GEMM);
        free(got);
        dev_free(d_io);
    }
    dev_free(d_in), dev_free(d_w), dev_free(d_b), dev_free(d_r), dev_free(d_out);
    free(in), free(wt), free(bias), free(res), free(ref);
}

// ---- group_norm / layer_norm --------------------------------------------

static void test_group_norm(int n, int hw, int c, int groups, int silu, float offset) {
    const size_t cnt = (size_t)n * hw * c;
    float *in = host_uniform(cnt, 1.0f);
    // A per-sample offset makes mean >> std somewhere, where a float
    // E[x^2] - E[x]^2 would lose digits.
    for (size_t i = 0; i < cnt; i++) in[i] += offset * (float)(i / ((size_t)hw * c) + 1);
    float *gamma = host_uniform((size_t)c, 1.0f), *beta = host_uniform((size_t)c, 1.0f);
    const float eps = 1e-5f;
    float *ref = malloc(cnt * sizeof *ref), *ref64 = malloc(cnt * sizeof *ref64);
    const int cg = c / groups;
    for (int b = 0; b < n; b++)
        for (int g = 0; g < groups; g++) {
            double sum = 0, sq = 0, count = (double)hw * cg;
            for (int px = 0; px < hw; px++)
                for (int j = g * cg; j < (g + 1) * cg; j++) sum += in[((size_t)b * hw + px) * c + j];
            double mean = sum / count;
            for (int px = 0; px < hw; px++)
                for (int j = g * cg; j < (g + 1) * cg; j++) {
                    double dv = in[((size_t)b * hw + px) * c + j] - mean;
                    sq += dv * dv;
                }
            double rstd = 1.0 / sqrt(sq / count + eps);  // biased variance
            for (int px = 0; px < hw; px++)
                for (int j = g * cg; j < (g + 1) * cg; j++) {
                    size_t i = ((size_t)b * hw + px) * c + j;
                    // torch's fp32 apply step (see cpu_norm.c): y = x a + b.
                    // Its rounding, ~ulp(|x a|), is what torch has too and
                    // dominates when mean >> std; statistics are exact here.
                    float a = (float)(rstd * gamma[j]);
                    float bb = (float)(beta[j] - (double)a * mean);
                    double y = in[i] * a + bb;
                    if (silu) y = y / (1.0 + exp(-y));
                    ref[i] = (float)y;
                    double y64 = (in[i] - mean) * rstd * gamma[j] + beta[j];
                    if (silu) y64 = y64 / (1.0 + exp(-y64));
                    ref64[i] = (float)y64;
                }
        }
    float *d_in = dev_from(in, cnt), *d_g = dev_from(gamma, (size_t)c);
    float *d_b = dev_from(beta, (size_t)c), *d_out = dev_nan(cnt);
    struct hsd_group_norm_params p = {.out = d_out, .in = d_in, .gamma = d_g, .beta = d_b,
                                      .n = n, .hw = hw, .c = c, .groups = groups, .eps = eps,
                                      .silu = silu};
    CHECK_OK(g_be->ops->group_norm(g_be, &p));
    float *got = fetch(d_out, cnt);
    char what[96];
    snprintf(what, sizeof what, "group_norm n%d hw%d c%d g%d%s +%g", n, hw, c, groups,
             silu ? " silu" : "", (double)offset);
    CHECK_CLOSE(what, got, ref, cnt, TOL_NORM);
    // Against the exact formula: torch's fp32 apply rounds x a to
    // ~eps * |x| * max|a|, so the bound grows with the offset.
    strncat(what, " vs f64", sizeof what - strlen(what) - 1);
    CHECK_CLOSE(what, got, ref64, cnt, TOL_NORM * (1.0 + 2.0 * n * offset));
    free(got);
    dev_free(d_in), dev_free(d_g), dev_free(d_b), dev_free(d_out);
    free(in), free(gamma), free(beta), free(ref), free(ref64);
}

static void test_layer_norm(int m, int c, float offset) {
    const size_t cnt = (size_t)m * c;
    float *in = host_uniform(cnt, 1.0f);
    for (size_t i = 0; i < cnt; i++) in[i] += offset;
    float *gamma = host_uniform((size_t)c, 1.0f), *beta = host_uniform((size_t)c, 1.0f);
    const float eps = 1e-5f;
    float *ref = malloc(cnt * sizeof *ref), *ref64 = malloc(cnt * sizeof *ref64);
    for (int r = 0; r < m; r++) {
        const float *x = in + (size_t)r * c;
        double sum = 0, sq = 0;
        for (int j = 0; j < c; j++) sum += x[j];
        double mean = sum / c;
        for (int j = 0; j < c; j++) sq += (x[j] - mean) * (x[j] - mean);
        // torch's fp32 apply step, y = (x rstd + (-rstd mean)) gamma + beta,
        // on exact statistics (see test_group_norm).
        float rstd = (float)(1.0 / sqrt(sq / c + eps));
        float shift = (float)(-mean) * rstd;
        for (int j = 0; j < c; j++) {
            ref[(size_t)r * c + j] = (x[j] * rstd + shift) * gamma[j] + beta[j];
            ref64[(size_t)r * c + j] =
                (float)((x[j] - mean) / sqrt(sq / c + eps) * gamma[j] + beta[j]);
        }
    }
    float *d_in = dev_from(in, cnt), *d_g = dev_from(gamma, (size_t)c);
    float *d_b = dev_from(beta, (size_t)c), *d_out = dev_nan(cnt);
    struct hsd_layer_norm_params p = {.out = d_out, .in = d_in, .gamma = d_g, .beta = d_b,
                                      .m = m, .c = c, .eps = eps};
    CHECK_OK(g_be->ops->layer_norm(g_be, &p));
    float *got = fetch(d_out, cnt);
    char what[96];
    snprintf(what, sizeof what, "layer_norm %dx%d +%g", m, c, (double)offset);
    CHECK_CLOSE(what, got, ref, cnt, TOL_NORM);
    strncat(what, " vs f64", sizeof what - strlen(what) - 1);
    CHECK_CLOSE(what, got, ref64, cnt, TOL_NORM * (1.0 + 2.0 * offset));
    free(got);
    dev_free(d_in), dev_free(d_g), dev_free(d_b), dev_free(d_out);
    free(in), free(gamma), free(beta), free(ref), free(ref64);
}

// ---- attention -----------------------------------------------------------

// How q, k, v are laid out in memory for one case.
enum attn_layout {
    ATTN_SEPARATE,   // q, k, v, out each contiguous [n, t, heads*d]
    ATTN_FUSED_QKV,  // self attention from one [n, t, 3*heads*d] projection
    ATTN_FUSED_KV,   // cross attention: q alone, k/v from one [n, t_kv, 2*heads*d]
};

// causal: transformers' causal mask, key j > query i scored -inf.
static void ref_attention(float *out, int ldo, const float *q, int ldq, const float *k, int ldk,
                          const float *v, int ldv, int n, int heads, int d, int t_q, int t_kv,
                          float scale, int causal) {
    double *s = malloc((size_t)t_kv * sizeof *s);
    for (int b = 0; b < n; b++)
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < t_q; i++) {
                const float *qi = q + ((size_t)b * t_q + i) * ldq + (size_t)h * d;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < t_kv; j++) {
                    const float *kj = k + ((size_t)b * t_kv + j) * ldk + (size_t)h * d;
                    double acc = 0;
                    for (int e = 0; e < d; e++) acc += (double)qi[e] * kj[e];
                    s[j] = causal && j > i ? -INFINITY : acc * scale;
                    if (s[j] > mx) mx = s[j];
                }
                for (int j = 0; j < t_kv; j++) sum += (s[j] = exp(s[j] - mx));
                float *oi = out + ((size_t)b * t_q + i) * ldo + (size_t)h * d;
                for (int e = 0; e < d; e++) {
                    double acc = 0;
                    for (int j = 0; j < t_kv; j++)
                        acc += s[j] * v[((size_t)b * t_kv + j) * ldv + (size_t)h * d + e];
                    oi[e] = (float)(acc / sum);
                }
            }
    free(s);
}

// Runs p (version 0: the op table's choice; 1: v1_blocks; 2: v2_flash,
// cpu_internal.h) into a NaN-poisoned output and compares it with ref.
static void check_attention_version(const struct hsd_attention_params *p0, int version,
                                    const float *ref, const char *shape) {
    const int hd = p0->heads * p0->d, ldo = p0->ldo;
    const size_t rows = (size_t)p0->n * p0->t_q, n_out = rows * ldo;
    struct hsd_attention_params p = *p0;
    float *d_out = dev_nan(n_out);
    p.out = d_out;
    if (version == 1) CHECK_OK(hsd_cpu_attention_v1_blocks(g_be, &p));
    else if (version == 2) CHECK_OK(hsd_cpu_attention_v2_flash(g_be, &p));
    else CHECK_OK(g_be->ops->attention(g_be, &p));
    float *got = fetch(d_out, n_out);
    // Compare the heads*d columns of each token; the ldo padding must stay
    // untouched (still NaN).
    float *got_c = malloc(rows * hd * sizeof *got_c);
    float *ref_c = malloc(rows * hd * sizeof *ref_c);
    size_t pad_written = 0;
    for (size_t r = 0; r < rows; r++) {
        memcpy(got_c + r * hd, got + r * ldo, (size_t)hd * sizeof *got_c);
        memcpy(ref_c + r * hd, ref + r * ldo, (size_t)hd * sizeof *ref_c);
        for (int e = hd; e < ldo; e++) pad_written += !isnan(got[r * ldo + e]);
    }
    static const char *const versions[] = {"auto", "v1_blocks", "v2_flash"};
    char what[160];
    snprintf(what, sizeof what, "attention %s %s", versions[version], shape);
    CHECK_CLOSE(what, got_c, ref_c, rows * hd, TOL_GEMM);
    CHECKF(pad_written == 0, "%s: %zu elements of the ldo padding were written", what,
           pad_written);
    free(got), free(got_c), free(ref_c);
    dev_free(d_out);
}

static void test_attention_mask(int n, int heads, int d, int t_q, int t_kv,
                                enum attn_layout layout, int ldo_pad, int causal) {
    const int hd = heads * d;
    float *qbuf, *kbuf;
    int ldq, ldk, ldv;
    size_t q_off = 0, k_off = 0, v_off = 0, n_q, n_k;
    if (layout == ATTN_FUSED_QKV) {
        HSD_ASSERT(t_q == t_kv);
        ldq = ldk = ldv = 3 * hd;
        n_q = (size_t)n * t_q * 3 * hd;
        qbuf = host_uniform(n_q, 2.0f);
        kbuf = NULL;
        n_k = 0;
        k_off = (size_t)hd;
        v_off = 2 * (size_t)hd;
    } else {
        ldq = hd;
        n_q = (size_t)n * t_q * hd;
        qbuf = host_uniform(n_q, 2.0f);
        if (layout == ATTN_FUSED_KV) {
            ldk = ldv = 2 * hd;
            n_k = (size_t)n * t_kv * 2 * hd;
            v_off = (size_t)hd;
        } else {
            // Separate k and v: one buffer [k | v] back to back.
            ldk = ldv = hd;
            n_k = 2 * (size_t)n * t_kv * hd;
            v_off = (size_t)n * t_kv * hd;
        }
        kbuf = host_uniform(n_k, 2.0f);
    }
    const float *hq = qbuf + q_off;
    const float *hk = (kbuf ? kbuf : qbuf) + k_off;
    const float *hv = (kbuf ? kbuf : qbuf) + v_off;
    const int ldo = hd + ldo_pad;
    const size_t n_out = (size_t)n * t_q * ldo;
    float *ref = host_nan(n_out);
    const float scale = 1.0f / sqrtf((float)d);
    ref_attention(ref, ldo, hq, ldq, hk, ldk, hv, ldv, n, heads, d, t_q, t_kv, scale, causal);

    float *d_q = dev_from(qbuf, n_q);
    float *d_k = kbuf ? dev_from(kbuf, n_k) : NULL;
    const float *base_kv = d_k ? d_k : d_q;
    struct hsd_attention_params p = {.q = d_q + q_off, .k = base_kv + k_off,
                                     .v = base_kv + v_off, .n = n, .heads = heads, .d = d,
                                     .t_q = t_q, .t_kv = t_kv, .ldq = ldq, .ldk = ldk,
                                     .ldv = ldv, .ldo = ldo, .scale = scale, .causal = causal};
    static const char *const names[] = {"separate", "fused qkv", "fused kv"};
    char what[128];
    snprintf(what, sizeof what, "n%d h%d d%d tq%d tkv%d %s ldo+%d%s", n, heads, d, t_q, t_kv,
             names[layout], ldo_pad, causal ? " causal" : "");
    // The op table's choice, then every version by name.
    for (int version = 0; version <= 2; version++) check_attention_version(&p, version, ref, what);
    free(ref);
    dev_free(d_q), dev_free(d_k);
    free(qbuf), free(kbuf);
}

// v2_flash must give the same bits on 1 thread as on every core: the
// hybrid chain compares hsd serve --threads 1 with hsd generate bitwise
// (tests/cli/prompt_a1111.sh). Self attention from a fused projection.
static void test_attention_threads_bitwise(int n, int heads, int d, int t, int causal) {
    struct hsd_backend *one = NULL;
    CHECK_OK(hsd_backend_cpu_create(&one, 1));
    const int hd = heads * d;
    const size_t n_qkv = (size_t)n * t * 3 * hd, n_out = (size_t)n * t * hd;
    float *qkv = host_uniform(n_qkv, 2.0f);
    float *a = host_nan(n_out), *b = host_nan(n_out);
    struct hsd_attention_params p = {.out = a, .q = qkv, .k = qkv + hd, .v = qkv + 2 * hd,
                                     .n = n, .heads = heads, .d = d, .t_q = t, .t_kv = t,
                                     .ldq = 3 * hd, .ldk = 3 * hd, .ldv = 3 * hd, .ldo = hd,
                                     .scale = 1.0f / sqrtf((float)d), .causal = causal};
    CHECK_OK(hsd_cpu_attention_v2_flash(g_be, &p));
    p.out = b;
    if (one) CHECK_OK(hsd_cpu_attention_v2_flash(one, &p));
    size_t differ = 0;
    for (size_t i = 0; i < n_out; i++) differ += memcmp(&a[i], &b[i], sizeof a[i]) != 0;
    CHECKF(differ == 0, "attention v2_flash n%d h%d d%d t%d%s: %zu of %zu outputs differ "
           "between %d threads and 1", n, heads, d, t, causal ? " causal" : "", differ, n_out,
           g_be->threads);
    printf("attention v2_flash n%d h%d d%d t%d%s: %d threads == 1 thread bitwise: %s\n", n, heads,
           d, t, causal ? " causal" : "", g_be->threads, differ ? "no" : "yes");
    free(qkv), free(a), free(b);
    hsd_backend_destroy(one);
}

static void test_attention(int n, int heads, int d, int t_q, int t_kv, enum attn_layout layout,
                           int ldo_pad) {
    test_attention_mask(n, heads, d, t_q, t_kv, layout, ldo_pad, 0);
}

// ---- pointwise and copies -----------------------------------------------

static void test_geglu(int m, int f, float scale) {
    const size_t n_in = (size_t)m * 2 * f, n_out = (size_t)m * f;
    float *in = host_uniform(n_in, scale), *ref = malloc(n_out * sizeof *ref);
    for (int r = 0; r < m; r++)
        for (int j = 0; j < f; j++) {
            double hid = in[(size_t)r * 2 * f + j], g = in[(size_t)r * 2 * f + f + j];
            ref[(size_t)r * f + j] = (float)(hid * 0.5 * g * (1.0 + erf(g / sqrt(2.0))));
        }
    float *d_in = dev_from(in, n_in), *d_out = dev_nan(n_out);
    struct hsd_geglu_params p = {.out = d_out, .in = d_in, .m = m, .f = f};
    CHECK_OK(g_be->ops->geglu(g_be, &p));
    float *got = fetch(d_out, n_out);
    char what[64];
    snprintf(what, sizeof what, "geglu %dx%d x%g", m, f, (double)scale);
    CHECK_CLOSE(what, got, ref, n_out, TOL_POINT);
    // Per element, relative to |hidden * gate| (the size of the output
    // before the Phi factor): catches a wrong tail where Phi is tiny, which
    // the max|ref| bound above would not see.
    double worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n_out; i++) {
        const size_t r = i / (size_t)f, j = i % (size_t)f;
        double scale_i = fabs((double)in[r * 2 * f + j] * in[r * 2 * f + f + j]) + 1e-30;
        double e = fabs((double)got[i] - ref[i]) / scale_i;
        if (!(e <= worst)) worst = e, wi = i;
    }
    CHECKF(worst <= 1e-6, "%s: worst error %.3g x |hidden*gate| at %zu (got %g ref %g)", what,
           worst, wi, (double)got[wi], (double)ref[wi]);
    free(got), free(in), free(ref);
    dev_free(d_in), dev_free(d_out);
}

static void test_upsample(int n, int h, int w, int c) {
    const size_t n_in = (size_t)n * h * w * c, n_out = 4 * n_in;
    float *in = host_uniform(n_in, 1.0f), *ref = malloc(n_out * sizeof *ref);
    for (int b = 0; b < n; b++)
        for (int y = 0; y < 2 * h; y++)
            for (int x = 0; x < 2 * w; x++)
                for (int j = 0; j < c; j++)
                    ref[(((size_t)b * 2 * h + y) * 2 * w + x) * c + j] =
                        in[(((size_t)b * h + y / 2) * w + x / 2) * c + j];
    float *d_in = dev_from(in, n_in), *d_out = dev_nan(n_out);
    struct hsd_upsample_params p = {.out = d_out, .in = d_in, .n = n, .h = h, .w = w, .c = c};
    CHECK_OK(g_be->ops->upsample_nearest2x(g_be, &p));
    float *got = fetch(d_out, n_out);
    char what[64];
    snprintf(what, sizeof what, "upsample2x n%d %dx%d c%d", n, h, w, c);
    CHECK_CLOSE(what, got, ref, n_out, 0.0);
    free(got), free(in), free(ref);
    dev_free(d_in), dev_free(d_out);
}

static void test_concat(int m, int ca, int cb) {
    float *a = host_uniform((size_t)m * ca, 1.0f), *b = host_uniform((size_t)m * cb, 1.0f);
    const size_t n_out = (size_t)m * (ca + cb);
    float *ref = malloc(n_out * sizeof *ref);
    for (int r = 0; r < m; r++) {
        for (int j = 0; j < ca; j++) ref[(size_t)r * (ca + cb) + j] = a[(size_t)r * ca + j];
        for (int j = 0; j < cb; j++) ref[(size_t)r * (ca + cb) + ca + j] = b[(size_t)r * cb + j];
    }
    float *d_a = dev_from(a, (size_t)m * ca), *d_b = dev_from(b, (size_t)m * cb);
    float *d_out = dev_nan(n_out);
    struct hsd_concat_params p = {.out = d_out, .a = d_a, .b = d_b, .m = m, .ca = ca, .cb = cb};
    CHECK_OK(g_be->ops->concat_channels(g_be, &p));
    float *got = fetch(d_out, n_out);
    char what[64];
    snprintf(what, sizeof what, "concat %d x (%d+%d)", m, ca, cb);
    CHECK_CLOSE(what, got, ref, n_out, 0.0);
    free(got), free(a), free(b), free(ref);
    dev_free(d_a), dev_free(d_b), dev_free(d_out);
}

static void test_add_bias(int n, int np, int c) {
    const size_t cnt = (size_t)n * np * c;
    float *x = host_uniform(cnt, 1.0f), *v = host_uniform((size_t)n * c, 1.0f);
    float *ref = malloc(cnt * sizeof *ref);
    for (size_t i = 0; i < cnt; i++) ref[i] = x[i] + v[(i / ((size_t)np * c)) * c + i % c];
    float *d_x = dev_from(x, cnt), *d_v = dev_from(v, (size_t)n * c);
    struct hsd_add_bias_params p = {.x = d_x, .v = d_v, .n = n, .p = np, .c = c};
    CHECK_OK(g_be->ops->add_bias(g_be, &p));
    float *got = fetch(d_x, cnt);
    char what[64];
    snprintf(what, sizeof what, "add_bias n%d p%d c%d", n, np, c);
    CHECK_CLOSE(what, got, ref, cnt, 0.0);
    free(got), free(x), free(v), free(ref);
    dev_free(d_x), dev_free(d_v);
}

static void test_add(size_t count, int in_place) {
    float *a = host_uniform(count, 1.0f), *b = host_uniform(count, 1.0f);
    float *ref = malloc(count * sizeof *ref);
    for (size_t i = 0; i < count; i++) ref[i] = a[i] + b[i];
    float *d_a = dev_from(a, count), *d_b = dev_from(b, count);
    float *d_out = in_place ? d_a : dev_nan(count);
    struct hsd_eltwise_params p = {.out = d_out, .a = d_a, .b = d_b, .count = count};
    CHECK_OK(g_be->ops->add(g_be, &p));
    float *got = fetch(d_out, count);
    char what[64];
    snprintf(what, sizeof what, "add %zu%s", count, in_place ? " inplace" : "");
    CHECK_CLOSE(what, got, ref, count, 0.0);
    free(got), free(a), free(b), free(ref);
    dev_free(d_a), dev_free(d_b);
    if (!in_place) dev_free(d_out);
}

static void test_silu(size_t count, int in_place, float scale) {
    float *a = host_uniform(count, scale), *ref = malloc(count * sizeof *ref);
    // Saturated ends and zero.
    const float special[] = {0.0f, -0.0f, 100.0f, -100.0f, 88.5f, -88.5f, 1e-30f, -1e-30f};
    for (size_t i = 0; i < HSD_ARRAY_LEN(special) && i < count; i++) a[i] = special[i];
    for (size_t i = 0; i < count; i++) ref[i] = (float)((double)a[i] / (1.0 + exp(-(double)a[i])));
    float *d_a = dev_from(a, count), *d_out = in_place ? d_a : dev_nan(count);
    struct hsd_eltwise_params p = {.out = d_out, .a = d_a, .count = count};
    CHECK_OK(g_be->ops->silu(g_be, &p));
    float *got = fetch(d_out, count);
    char what[64];
    snprintf(what, sizeof what, "silu %zu x%g%s", count, (double)scale, in_place ? " inplace" : "");
    CHECK_CLOSE(what, got, ref, count, TOL_POINT);
    // Per element: 4 ulp of the result. Where exp(-x) overflows fp32
    // (x < -ln(FLT_MAX) = -88.72) torch's x / (1 + exp(-x)) is -0 while
    // the exact value is a tiny negative: accept anything in [ref, 0].
    double worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < count; i++) {
        double e = fabs((double)got[i] - ref[i]) / fabs(ref[i]);
        if (a[i] < -88.72f && got[i] <= 0.0f && got[i] >= ref[i]) e = 0;
        if (ref[i] == 0.0f) e = got[i] == 0.0f ? 0 : INFINITY;
        if (!(e <= worst)) worst = e, wi = i;
    }
    CHECKF(worst <= 4 * 6e-8, "%s: worst relative error %.3g at x=%g (got %g ref %g)", what,
           worst, (double)a[wi], (double)got[wi], (double)ref[wi]);
    free(got), free(a), free(ref);
    dev_free(d_a);
    if (!in_place) dev_free(d_out);
}

static void test_relu(size_t count, int in_place) {
    float *a = host_uniform(count, 3.0f), *ref = malloc(count * sizeof *ref);
    for (size_t i = 0; i < count; i++) ref[i] = a[i] > 0.0f ? a[i] : 0.0f;
    float *d_a = dev_from(a, count), *d_out = in_place ? d_a : dev_nan(count);
    struct hsd_eltwise_params p = {.out = d_out, .a = d_a, .count = count};
    CHECK_OK(g_be->ops->relu(g_be, &p));
    float *got = fetch(d_out, count);
    char what[64];
    snprintf(what, sizeof what, "relu %zu%s", count, in_place ? " inplace" : "");
    CHECK_CLOSE(what, got, ref, count, 0.0);
    free(got), free(a), free(ref);
    dev_free(d_a);
    if (!in_place) dev_free(d_out);
}

// tanh_clamp against tanh in double; also NaN in -> NaN out and saturation.
static void test_tanh_clamp(size_t count, int in_place, float limit, float scale) {
    float *a = host_uniform(count, scale), *ref = malloc(count * sizeof *ref);
    const float special[] = {0.0f, 1e-30f, -1e-30f, 1e4f, -1e4f, 3.0f, -3.0f};
    for (size_t i = 0; i < HSD_ARRAY_LEN(special) && i < count; i++) a[i] = special[i];
    for (size_t i = 0; i < count; i++) ref[i] = (float)(tanh((double)a[i] / limit) * limit);
    float *d_a = dev_from(a, count), *d_out = in_place ? d_a : dev_nan(count);
    struct hsd_tanh_clamp_params p = {.out = d_out, .in = d_a, .count = count, .limit = limit};
    CHECK_OK(g_be->ops->tanh_clamp(g_be, &p));
    float *got = fetch(d_out, count);
    char what[64];
    snprintf(what, sizeof what, "tanh_clamp %zu lim%g x%g%s", count, (double)limit,
             (double)scale, in_place ? " inplace" : "");
    // x / limit rounds once and tanhf adds ~1 ulp: a few ulp of the result.
    CHECK_CLOSE(what, got, ref, count, TOL_POINT);
    double worst = 0;
    for (size_t i = 0; i < count; i++) {
        double e = ref[i] == 0.0f ? fabs(got[i]) : fabs((double)got[i] - ref[i]) / fabs(ref[i]);
        if (!(e <= worst)) worst = e;
    }
    CHECKF(worst <= 4 * 6e-8, "%s: worst relative error %.3g", what, worst);
    float nan_in = NAN, *d_n = dev_from(&nan_in, 1);
    struct hsd_tanh_clamp_params pn = {.out = d_n, .in = d_n, .count = 1, .limit = limit};
    CHECK_OK(g_be->ops->tanh_clamp(g_be, &pn));
    float *gn = fetch(d_n, 1);
    CHECKF(isnan(gn[0]), "tanh_clamp(NaN) = %g, want NaN", (double)gn[0]);
    free(gn), free(got), free(a), free(ref);
    dev_free(d_a), dev_free(d_n);
    if (!in_place) dev_free(d_out);
}

// gelu (exact erf) and quick_gelu (x * sigmoid(1.702 x), with 1.702 x
// rounded to fp32 first as torch does) against double references.
static void test_act(int quick, size_t count, int in_place, float scale) {
    float *a = host_uniform(count, scale), *ref = malloc(count * sizeof *ref);
    const float special[] = {0.0f, -0.0f, 100.0f, -100.0f, 60.0f, -60.0f, 1e-30f, -1e-30f};
    for (size_t i = 0; i < HSD_ARRAY_LEN(special) && i < count; i++) a[i] = special[i];
    for (size_t i = 0; i < count; i++) {
        double x = a[i];
        ref[i] = quick ? (float)(x / (1.0 + exp(-(double)(1.702f * a[i]))))
                       : (float)(0.5 * x * (1.0 + erf(x / sqrt(2.0))));
    }
    float *d_a = dev_from(a, count), *d_out = in_place ? d_a : dev_nan(count);
    struct hsd_eltwise_params p = {.out = d_out, .a = d_a, .count = count};
    CHECK_OK(quick ? g_be->ops->quick_gelu(g_be, &p) : g_be->ops->gelu(g_be, &p));
    float *got = fetch(d_out, count);
    char what[64];
    snprintf(what, sizeof what, "%s %zu x%g%s", quick ? "quick_gelu" : "gelu", count,
             (double)scale, in_place ? " inplace" : "");
    CHECK_CLOSE(what, got, ref, count, TOL_POINT);
    // Per element, relative to |x| (the output before the Phi / sigmoid
    // factor), so the tails where that factor is tiny are held to account.
    double worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < count; i++) {
        double e = fabs((double)got[i] - ref[i]) / (fabs((double)a[i]) + 1e-30);
        if (!(e <= worst)) worst = e, wi = i;
    }
    CHECKF(worst <= 1e-6, "%s: worst error %.3g x |x| at x=%g (got %g ref %g)", what, worst,
           (double)a[wi], (double)got[wi], (double)ref[wi]);
    free(got), free(a), free(ref);
    dev_free(d_a);
    if (!in_place) dev_free(d_out);
}

// ---- timestep embedding -------------------------------------------------

// Mirrors diffusers get_timestep_embedding in float32 as torch runs it (the
// sin/cos arguments rounded to float), then takes sin/cos in double.
static void ref_timestep_f32(float *out, const float *t, int n, int dim, int flip, float shift,
                             float max_period) {
    const int half = dim / 2;
    const float nl = (float)(-log((double)max_period));
    const float den = (float)((double)half - shift);
    for (int b = 0; b < n; b++) {
        float *row = out + (size_t)b * dim;
        for (int j = 0; j < half; j++) {
            float e = nl * (float)j;
            e = e / den;
            float arg = t[b] * (float)exp((double)e);
            row[(flip ? half : 0) + j] = (float)sin((double)arg);
            row[(flip ? 0 : half) + j] = (float)cos((double)arg);
        }
        if (dim % 2) row[dim - 1] = 0.0f;
    }
}

// The same formula entirely in double: an independent check of the
// formula itself (a mirrored reference could share a mistake).
static void ref_timestep_f64(float *out, const float *t, int n, int dim, int flip, float shift,
                             float max_period) {
    const int half = dim / 2;
    for (int b = 0; b < n; b++) {
        float *row = out + (size_t)b * dim;
        for (int j = 0; j < half; j++) {
            double arg = t[b] * exp(-log((double)max_period) * j / (half - (double)shift));
            row[(flip ? half : 0) + j] = (float)sin(arg);
            row[(flip ? 0 : half) + j] = (float)cos(arg);
        }
        if (dim % 2) row[dim - 1] = 0.0f;
    }
}

static void test_timestep(int dim, int flip, float shift) {
    const float ts[] = {0.0f, 1.0f, 500.5f, 999.0f, 37.0f};
    const int n = (int)HSD_ARRAY_LEN(ts);
    const size_t cnt = (size_t)n * dim;
    float *ref = malloc(cnt * sizeof *ref), *ref64 = malloc(cnt * sizeof *ref64);
    ref_timestep_f32(ref, ts, n, dim, flip, shift, 10000.0f);
    ref_timestep_f64(ref64, ts, n, dim, flip, shift, 10000.0f);
    float *d_t = dev_from(ts, (size_t)n), *d_out = dev_nan(cnt);
    struct hsd_timestep_embedding_params p = {.out = d_out, .t = d_t, .n = n, .dim = dim,
                                              .flip_sin_to_cos = flip, .shift = shift,
                                              .max_period = 10000.0f};
    CHECK_OK(g_be->ops->timestep_embedding(g_be, &p));
    float *got = fetch(d_out, cnt);
    char what[64];
    snprintf(what, sizeof what, "timestep_emb dim%d flip%d shift%g", dim, flip, (double)shift);
    // sinf/cosf of the same float argument: within 1-2 ulp of 1.
    CHECK_CLOSE(what, got, ref, cnt, TOL_POINT);
    // Against the all-double formula the float32 argument rounding shows:
    // |t f| <= 1000 carries up to ~1e-4 absolute error, as in torch.
    strncat(what, " vs f64", sizeof what - strlen(what) - 1);
    CHECK_CLOSE(what, got, ref64, cnt, 2e-4);
    free(got), free(ref), free(ref64);
    dev_free(d_t), dev_free(d_out);
}

// Hand-computed: dim 4, shift 1 -> half 2, freqs exp(-ln(1e4) * j / 1) =
// {1, 1e-4}; t = 1 gives [sin 1, sin 1e-4, cos 1, cos 1e-4], flipped
// [cos, sin].
static void test_timestep_literal(void) {
    const float t = 1.0f;
    float *d_t = dev_from(&t, 1), *d_out = dev_nan(4);
    struct hsd_timestep_embedding_params p = {.out = d_out, .t = d_t, .n = 1, .dim = 4,
                                              .flip_sin_to_cos = 1, .shift = 1.0f,
                                              .max_period = 10000.0f};
    CHECK_OK(g_be->ops->timestep_embedding(g_be, &p));
    float *got = fetch(d_out, 4);
    const float want[4] = {(float)cos(1.0), (float)cos(1e-4), (float)sin(1.0), (float)sin(1e-4)};
    CHECK_CLOSE("timestep_emb literal dim4", got, want, 4, 1e-6);
    free(got);
    dev_free(d_t), dev_free(d_out);
}

// ---- invalid parameters -------------------------------------------------

static void test_invalid(void) {
    float buf[64] = {0};
    const struct hsd_backend_ops *o = g_be->ops;
    struct hsd_conv2d_params cv = {.out = buf + 32, .in = buf, .weight = buf, .n = 1, .h = 2, .w = 2,
                                   .ci = 1, .co = 1, .kh = 1, .kw = 1, .stride = 1};
    struct hsd_conv2d_params c2 = cv;
    c2.co = 0;
    CHECK_INVALID(o->conv2d(g_be, &c2));
    c2 = cv, c2.stride = 0;
    CHECK_INVALID(o->conv2d(g_be, &c2));
    c2 = cv, c2.pad = -1;
    CHECK_INVALID(o->conv2d(g_be, &c2));
    c2 = cv, c2.kh = c2.kw = 5;  // kernel larger than the padded input
    CHECK_INVALID(o->conv2d(g_be, &c2));
    c2 = cv, c2.in = NULL;
    CHECK_INVALID(o->conv2d(g_be, &c2));
    c2 = cv, c2.pad_bottom = -1;
    CHECK_INVALID(o->conv2d(g_be, &c2));
    c2 = cv, c2.kh = c2.kw = 3, c2.pad_bottom = 1;  // 3 rows, 2 columns after padding
    CHECK_INVALID(o->conv2d(g_be, &c2));
    CHECK_INVALID(o->conv2d(g_be, NULL));
    CHECK_OK(o->conv2d(g_be, &cv));

    struct hsd_linear_params li = {.out = buf, .in = buf, .weight = buf, .m = 2, .k = -1,
                                   .n_out = 2};
    CHECK_INVALID(o->linear(g_be, &li));
    li.k = 2, li.weight = NULL;
    CHECK_INVALID(o->linear(g_be, &li));

    struct hsd_group_norm_params gn = {.out = buf, .in = buf, .gamma = buf, .beta = buf, .n = 1,
                                       .hw = 2, .c = 6, .groups = 4, .eps = 1e-5f};
    CHECK_INVALID(o->group_norm(g_be, &gn));  // 6 channels, 4 groups
    gn.groups = 0;
    CHECK_INVALID(o->group_norm(g_be, &gn));

    struct hsd_layer_norm_params ln = {.out = buf, .in = buf, .gamma = NULL, .beta = buf, .m = 1,
                                       .c = 4, .eps = 1e-5f};
    CHECK_INVALID(o->layer_norm(g_be, &ln));

    struct hsd_attention_params at = {.out = buf, .q = buf, .k = buf, .v = buf, .n = 1,
                                      .heads = 2, .d = 4, .t_q = 2, .t_kv = 2, .ldq = 7,
                                      .ldk = 8, .ldv = 8, .ldo = 8, .scale = 0.5f};
    CHECK_INVALID(o->attention(g_be, &at));  // ldq < heads*d
    at.ldq = 8, at.t_kv = 0;
    CHECK_INVALID(o->attention(g_be, &at));
    at.t_kv = 1, at.causal = 1;  // causal needs t_q == t_kv
    CHECK_INVALID(o->attention(g_be, &at));

    struct hsd_geglu_params gg = {.out = buf, .in = buf, .m = 0, .f = 2};
    CHECK_INVALID(o->geglu(g_be, &gg));
    struct hsd_upsample_params up = {.out = buf, .in = buf, .n = 1, .h = -2, .w = 2, .c = 1};
    CHECK_INVALID(o->upsample_nearest2x(g_be, &up));
    struct hsd_concat_params cc = {.out = buf, .a = buf, .b = NULL, .m = 1, .ca = 1, .cb = 1};
    CHECK_INVALID(o->concat_channels(g_be, &cc));
    struct hsd_add_bias_params ab = {.x = buf, .v = buf, .n = 1, .p = 0, .c = 1};
    CHECK_INVALID(o->add_bias(g_be, &ab));
    struct hsd_eltwise_params el = {.out = buf, .a = buf, .b = NULL, .count = 4};
    CHECK_INVALID(o->add(g_be, &el));
    el.out = NULL;
    CHECK_INVALID(o->silu(g_be, &el));
    CHECK_INVALID(o->gelu(g_be, &el));
    CHECK_INVALID(o->quick_gelu(g_be, &el));
    CHECK_INVALID(o->relu(g_be, &el));
    struct hsd_tanh_clamp_params tc = {.out = buf, .in = buf, .count = 4, .limit = 0.0f};
    CHECK_INVALID(o->tanh_clamp(g_be, &tc));
    tc.limit = 3.0f, tc.in = NULL;
    CHECK_INVALID(o->tanh_clamp(g_be, &tc));
    struct hsd_timestep_embedding_params te = {.out = buf, .t = buf, .n = 1, .dim = 0,
                                               .max_period = 10000.0f};
    CHECK_INVALID(o->timestep_embedding(g_be, &te));
    te.dim = 2, te.shift = 1.0f;  // half - shift = 0: torch divides by zero
    CHECK_INVALID(o->timestep_embedding(g_be, &te));
    CHECK_INVALID(hsd_backend_cpu_create(NULL, 1));
}

int main(void) {
    CHECK_OK(hsd_backend_cpu_create(&g_be, 0));
    if (!g_be) return hsd_test_finish();
    CHECK(g_be->act_size == sizeof(float));
    CHECK(g_be->threads >= 1);
    CHECK_OK(g_be->ops->synchronize(g_be));

    static const struct conv_case convs[] = {
        // n  h  w  ci co kh kw s  p  bias res
        {1, 5, 7, 3, 5, 3, 3, 1, 1, 1, 0},      // ci=3 (conv_in-like), h != w
        {3, 7, 6, 4, 5, 3, 3, 2, 1, 1, 1},      // stride 2 on odd h (downsampler)
        {1, 6, 6, 5, 3, 3, 3, 1, 0, 0, 0},      // pad 0, no bias
        {2, 8, 8, 16, 8, 1, 1, 1, 0, 1, 1},     // 1x1 fast path (conv_shortcut)
        {1, 9, 5, 6, 7, 1, 1, 2, 0, 1, 0},      // 1x1 stride 2 (im2col path)
        {1, 4, 6, 3, 2, 2, 3, 1, 1, 1, 0},      // kh != kw
        {2, 16, 16, 32, 24, 3, 3, 1, 1, 1, 1},  // residual, several rows per thread
        {1, 33, 33, 512, 16, 3, 3, 1, 1, 1, 1}, // K = 4608: several im2col chunks, last partial
        {2, 17, 15, 40, 8, 3, 3, 2, 1, 1, 0},   // stride 2 with odd h and w
    };
    for (size_t i = 0; i < HSD_ARRAY_LEN(convs); i++) test_conv2d(&convs[i]);
    // diffusers Downsample2D(padding=0): F.pad (0, 1, 0, 1), 3x3 stride 2
    // pad 0 (VAE encoder), on even and odd sizes; and one-sided extras.
    static const struct conv_case asym[] = {
        {2, 8, 8, 8, 8, 3, 3, 2, 0, 1, 0},
        {1, 7, 10, 5, 6, 3, 3, 2, 0, 1, 1},
        {1, 6, 5, 4, 3, 3, 3, 1, 1, 0, 0},
        {1, 4, 4, 3, 2, 1, 1, 1, 0, 1, 0},  // 1x1 with padding: not the GEMM fast path
    };
    test_conv2d_pads(&asym[0], 1, 1);
    test_conv2d_pads(&asym[1], 1, 1);
    test_conv2d_pads(&asym[2], 2, 0);
    test_conv2d_pads(&asym[3], 0, 1);

    test_linear(1, 3, 5, 1, 0);
    test_linear(77, 768, 320, 1, 1);  // text context into to_k/to_v sizes
    test_linear(130, 1280, 7, 0, 0);
    test_linear(3, 5, 1, 0, 1);

    test_group_norm(1, 64, 64, 32, 0, 0.0f);
    test_group_norm(3, 37, 96, 8, 1, 0.0f);
    test_group_norm(2, 1024, 320, 32, 1, 0.0f);   // SD 32x32 latent, resnet norm+act
    test_group_norm(1, 4096, 320, 32, 0, 0.0f);   // SD 64x64 latent
    test_group_norm(2, 300, 64, 8, 0, 20.0f);     // mean >> std

    test_layer_norm(5, 3, 0.0f);
    test_layer_norm(77, 768, 0.0f);
    test_layer_norm(300, 320, 30.0f);

    test_attention(1, 1, 8, 5, 7, ATTN_SEPARATE, 0);
    test_attention(3, 2, 59, 33, 77, ATTN_FUSED_KV, 0);   // odd d, cross, n=3
    test_attention(2, 3, 40, 300, 300, ATTN_FUSED_QKV, 5);// strided q/k/v, padded out
    test_attention(1, 2, 64, 1000, 1000, ATTN_FUSED_QKV, 0); // several row blocks, last partial
    test_attention(1, 1, 160, 257, 77, ATTN_SEPARATE, 0);
    test_attention(2, 8, 40, 256, 77, ATTN_FUSED_KV, 0);  // SD1.5 cross at 16x16 tokens
    test_attention(1, 1, 80, 4096, 16, ATTN_SEPARATE, 3); // long t_q, short t_kv
    // Causal (CLIP text encoder): SD 1.5's 12 heads of 64 over 77 tokens,
    // the tiny test encoders' shape, several row blocks (block r0 > 0 sees
    // keys 0..r0+nr-1), a single token.
    test_attention_mask(2, 12, 64, 77, 77, ATTN_FUSED_QKV, 0, 1);
    test_attention_mask(2, 4, 8, 77, 77, ATTN_FUSED_QKV, 0, 1);
    test_attention_mask(1, 2, 16, 1000, 1000, ATTN_FUSED_QKV, 3, 1);
    test_attention_mask(3, 1, 5, 1, 1, ATTN_SEPARATE, 0, 1);
    // v2_flash's tiles (96 query rows, 256 keys, 6-row microkernels, d
    // padded to 8): lengths that are not multiples of them, several key
    // tiles, every SD head width, causal across key tiles.
    test_attention(2, 2, 40, 517, 517, ATTN_FUSED_QKV, 0);
    test_attention(1, 3, 64, 200, 77, ATTN_FUSED_KV, 1);
    test_attention(1, 2, 80, 97, 300, ATTN_SEPARATE, 0);
    test_attention(1, 1, 160, 301, 513, ATTN_SEPARATE, 2);
    test_attention(1, 2, 13, 7, 1, ATTN_SEPARATE, 0);  // one key, d < 16
    test_attention_mask(1, 2, 40, 600, 600, ATTN_FUSED_QKV, 0, 1);
    test_attention_mask(1, 1, 80, 257, 257, ATTN_SEPARATE, 0, 1);
    test_attention_threads_bitwise(1, 1, 40, 1000, 0);  // 1 head: rows split over tasks
    test_attention_threads_bitwise(1, 2, 64, 300, 1);
    test_attention_threads_bitwise(2, 8, 40, 256, 0);
    for (int n = 1; n <= 6; n++) test_attention_threads_bitwise(n, 4, 8, 77, 1);  // tiny CLIP

    test_geglu(7, 13, 4.0f);
    test_geglu(64, 1280, 4.0f);
    test_geglu(33, 100, 16.0f);  // erfc tails, Phi underflow
    test_upsample(2, 3, 5, 7);
    test_upsample(1, 16, 16, 64);
    test_concat(9, 3, 5);
    test_concat(2048, 320, 640);
    test_add_bias(3, 10, 7);
    test_add_bias(2, 4096, 320);
    test_add(100003, 0);
    test_add(100003, 1);
    test_add(5, 0);
    test_silu(70001, 0, 20.0f);
    test_silu(70001, 1, 20.0f);
    test_silu(9, 0, 1.0f);
    test_silu(50001, 0, 110.0f);  // exp(-x) overflow and denormal ranges
    test_act(0, 70001, 0, 8.0f);
    test_act(0, 9, 1, 1.0f);
    test_act(1, 70001, 0, 8.0f);
    test_act(1, 70001, 1, 60.0f);  // sigmoid tails, exp(-1.702 x) overflow
    test_relu(70001, 0);
    test_relu(70001, 1);
    test_relu(3, 0);
    test_tanh_clamp(4 * 64 * 64 * 2, 0, 3.0f, 12.0f);  // DecoderTiny latent, SD 512^2, n=2
    test_tanh_clamp(9, 1, 3.0f, 4.0f);
    test_tanh_clamp(100, 0, 0.5f, 1.0f);

    test_timestep(320, 1, 0.0f);  // SD 1.x/2.x UNet: flip_sin_to_cos, freq_shift 0
    test_timestep(320, 0, 1.0f);  // diffusers default
    test_timestep(7, 1, 1.0f);    // odd dim: zero last column
    test_timestep(1, 0, 0.0f);    // half = 0: only the pad column
    test_timestep_literal();

    test_invalid();
    hsd_backend_destroy(g_be);
    return hsd_test_finish();
}
