// Every registered version of the memory-bound ops (cuda/registry.h) and
// their production entry points, against the CPU backend in fp32 on the
// same fp16-rounded inputs: geglu, upsample_nearest2x, timestep_embedding,
// add, silu, gelu, quick_gelu, relu, concat_channels, add_bias, tanh_clamp,
// on SD1.5 shapes at a 64x64 latent, batch 2 (GEGLU [m, 2*4c] of every
// transformer level, the upsamplers' inputs, the 320-wide timestep
// embedding, a 64x64x320 map, the up blocks' skip concatenations, the
// ResNet time-embedding bias of every level, TAESD's latent clamp) and odd
// ones (f, c or count not a multiple of 8, channel counts 3/5/77, pointers
// off 16-byte alignment by one element, sub-buffers 8 elements in, in
// place). concat/add_bias/tanh_clamp sub-buffers carry guard elements that
// must come back untouched, and their launchers' parameter validation is
// checked (HSD_ERR_INVALID_ARG, like the CPU backend). Skipped (77)
// without a GPU; --reference-only builds the CPU references only.
//
// Inputs uniform in [-4, 4) (covers the curved part of SiLU/GELU and both
// tails); timesteps uniform in [0, 1000); tanh_clamp inputs in [-12, 12)
// for limit 3 (tanh(x/3) up to 0.9993) plus the fp16 extremes.
//
// Bounds: each output is one fp32 evaluation rounded once to fp16, so on
// top of test_cuda_common.h's rule (tol 1e-3 of max|ref|, NMSE 1e-6) every
// element must satisfy |got - ref| <= 6e-4 |ref| + 6e-8: the fp16 half-ulp
// is <= 2^-11 = 4.9e-4 of |ref| (6e-8 is the subnormal half-step), the
// fp32 math ~3e-7 of |ref| (expf/normcdff vs the CPU's Cephes expf/erfc,
// a few ulp each). upsample is a copy: exact. timestep_embedding is
// absolute: sin/cos of arguments up to 1e3, where the 1-2 ulp difference
// between CUDA's and glibc's expf moves the argument by up to ~2.5e-4, plus
// the fp16 half-ulp 2.4e-4 of values in [0.5, 1): |err| <= 1e-3.
// concat_channels is a copy: exact. add_bias is one fp32 addition of two
// fp16 values on both sides (IEEE, nothing to contract), so the kernel
// must return exactly the CPU's fp32 sum rounded to nearest-even fp16.
// tanh_clamp: x / limit is correctly rounded on both sides, CUDA's and
// glibc's tanhf are within 2 ulp (CUDA C Programming Guide, "Mathematical
// Functions"), * limit one more rounding: a few fp32 ulp (< 1e-6 of
// |ref|), far below the fp16 half-ulp, so the 6e-4 |ref| + 6e-8 rule holds.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "memory.h"
#include "registry.h"
#include "test_cuda_common.h"
#include "testutil.h"

#define TOL 1e-3
#define NMSE_TOL 1e-6

// The per-element rule above (abs_tol only: timestep_embedding).
static void check_elementwise(const char *op, const char *version, const char *name,
                              const float *got, const float *ref, size_t n, double rel,
                              double abs_tol) {
    size_t bad = 0, worst = 0;
    double worst_excess = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double lim = rel * fabs(ref[i]) + abs_tol;
        const double d = fabs((double)got[i] - ref[i]);
        if (!(d <= lim)) {
            if (bad++ == 0 || d - lim > worst_excess) {
                worst_excess = d - lim;
                worst = i;
            }
        }
    }
    CHECKF(bad == 0, "%s %s %s: %zu elements beyond %.0e|ref| + %.0e, e.g. [%zu] got %.8g ref %.8g",
           op, version, name, bad, rel, abs_tol, worst, got[worst], ref[worst]);
}

// ---- geglu -----------------------------------------------------------------

static void run_geglu(int m, int f) {
    char name[64];
    snprintf(name, sizeof name, "m%d_f%d", m, f);
    const size_t nin = (size_t)m * 2 * f, nout = (size_t)m * f;
    if (tc_skip_in_emulation("geglu", name, (double)nout)) return;
    float *hx = tc_host_uniform(nin, -4.0f, 4.0f);
    struct hsd_backend *cpu = tc_cpu();
    struct hsd_geglu_params pc = {.m = m, .f = f};
    pc.in = tc_cpu_buf(hx, nin);
    float *ref = tc_cpu_out(nout);
    pc.out = ref;
    const double t0 = tc_seconds();
    CHECK_OK(cpu->ops->geglu(cpu, &pc));
    if (!tc_gpu()) {
        tc_reference_only("geglu", name, ref, nout, tc_seconds() - t0);
        tc_free_all();
        return;
    }
    struct hsd_geglu_params p = {.m = m, .f = f};
    p.in = tc_dev_f16(hx, nin);
    float *got = tc_host_alloc(nout);
    int count = 0;
    const struct hsd_cuda_geglu_entry *table = hsd_cuda_geglu_table(&count);
    for (int i = 0; i <= count; i++) {
        const char *vname = i < count ? table[i].info.name : "hsd_cuda_geglu";
        if (i < count && !hsd_cuda_kernel_runs_on(&table[i].info, tc_arch())) continue;
        p.out = tc_dev_poisoned_f16(nout);
        enum hsd_status st = i < count ? table[i].launch(&p, 0) : hsd_cuda_geglu(&p, 0);
        CHECKF(st == HSD_OK, "geglu %s %s: %s", vname, name, hsd_last_error());
        CHECK_OK(hsd_cuda_sync());
        tc_download_f16(got, p.out, nout);
        tc_check("geglu", vname, name, got, ref, nout, TOL, NMSE_TOL);
        check_elementwise("geglu", vname, name, got, ref, nout, 6e-4, 6e-8);
    }
    tc_free_all();
}

// ---- upsample --------------------------------------------------------------

static void run_upsample(int n, int h, int w, int c) {
    char name[64];
    snprintf(name, sizeof name, "n%d_%dx%d_c%d", n, h, w, c);
    const size_t nin = (size_t)n * h * w * c, nout = 4 * nin;
    if (tc_skip_in_emulation("upsample", name, (double)nout)) return;
    float *hx = tc_host_uniform(nin, -4.0f, 4.0f);
    struct hsd_backend *cpu = tc_cpu();
    struct hsd_upsample_params pc = {.n = n, .h = h, .w = w, .c = c};
    pc.in = tc_cpu_buf(hx, nin);
    float *ref = tc_cpu_out(nout);
    pc.out = ref;
    const double t0 = tc_seconds();
    CHECK_OK(cpu->ops->upsample_nearest2x(cpu, &pc));
    if (!tc_gpu()) {
        tc_reference_only("upsample", name, ref, nout, tc_seconds() - t0);
        tc_free_all();
        return;
    }
    struct hsd_upsample_params p = {.n = n, .h = h, .w = w, .c = c};
    p.in = tc_dev_f16(hx, nin);
    float *got = tc_host_alloc(nout);
    int count = 0;
    const struct hsd_cuda_upsample_nearest2x_entry *table = hsd_cuda_upsample_nearest2x_table(&count);
    for (int i = 0; i <= count; i++) {
        const char *vname = i < count ? table[i].info.name : "hsd_cuda_upsample_nearest2x";
        if (i < count && !hsd_cuda_kernel_runs_on(&table[i].info, tc_arch())) continue;
        p.out = tc_dev_poisoned_f16(nout);
        enum hsd_status st = i < count ? table[i].launch(&p, 0) : hsd_cuda_upsample_nearest2x(&p, 0);
        CHECKF(st == HSD_OK, "upsample %s %s: %s", vname, name, hsd_last_error());
        CHECK_OK(hsd_cuda_sync());
        tc_download_f16(got, p.out, nout);
        tc_check("upsample", vname, name, got, ref, nout, 0.0, 0.0);  // a copy: exact
    }
    tc_free_all();
}

// ---- timestep embedding ----------------------------------------------------

static void run_timestep(int n, int dim, int flip, float shift) {
    char name[64];
    snprintf(name, sizeof name, "n%d_dim%d_flip%d_shift%g", n, dim, flip, (double)shift);
    const size_t nout = (size_t)n * dim;
    if (tc_skip_in_emulation("timestep", name, (double)nout)) return;
    float *ht = tc_host_uniform((size_t)n, 0.0f, 1000.0f);
    struct hsd_backend *cpu = tc_cpu();
    struct hsd_timestep_embedding_params pc = {
        .n = n, .dim = dim, .flip_sin_to_cos = flip, .shift = shift, .max_period = 10000.0f};
    pc.t = tc_cpu_buf(ht, (size_t)n);
    float *ref = tc_cpu_out(nout);
    pc.out = ref;
    const double t0 = tc_seconds();
    CHECK_OK(cpu->ops->timestep_embedding(cpu, &pc));
    if (!tc_gpu()) {
        tc_reference_only("timestep", name, ref, nout, tc_seconds() - t0);
        tc_free_all();
        return;
    }
    struct hsd_timestep_embedding_params p = pc;
    p.t = tc_dev_f32(ht, (size_t)n);
    float *got = tc_host_alloc(nout);
    int count = 0;
    const struct hsd_cuda_timestep_embedding_entry *table = hsd_cuda_timestep_embedding_table(&count);
    for (int i = 0; i <= count; i++) {
        const char *vname = i < count ? table[i].info.name : "hsd_cuda_timestep_embedding";
        if (i < count && !hsd_cuda_kernel_runs_on(&table[i].info, tc_arch())) continue;
        p.out = tc_dev_poisoned_f16(nout);
        enum hsd_status st = i < count ? table[i].launch(&p, 0) : hsd_cuda_timestep_embedding(&p, 0);
        CHECKF(st == HSD_OK, "timestep %s %s: %s", vname, name, hsd_last_error());
        CHECK_OK(hsd_cuda_sync());
        tc_download_f16(got, p.out, nout);
        tc_check("timestep", vname, name, got, ref, nout, 1e-3, 1e-5);
        check_elementwise("timestep", vname, name, got, ref, nout, 0.0, 1e-3);
    }
    tc_free_all();
}

// ---- flat ops ----------------------------------------------------------------

typedef enum hsd_status (*flat_cpu_fn)(struct hsd_backend *, const struct hsd_eltwise_params *);

struct flat_op {
    const char *op;
    int binary;
    flat_cpu_fn (*cpu)(void);
    const void *(*table)(int *count, size_t *entry_size);
    hsd_cuda_add_fn production;  // all flat ops share the signature
};

static flat_cpu_fn cpu_add(void) { return tc_cpu()->ops->add; }
static flat_cpu_fn cpu_silu(void) { return tc_cpu()->ops->silu; }
static flat_cpu_fn cpu_gelu(void) { return tc_cpu()->ops->gelu; }
static flat_cpu_fn cpu_quick_gelu(void) { return tc_cpu()->ops->quick_gelu; }
static flat_cpu_fn cpu_relu(void) { return tc_cpu()->ops->relu; }

// The five tables have the same layout (info, launch): viewed as the add one.
#define FLAT_TABLE(op)                                                         \
    static const void *table_##op(int *count, size_t *entry_size) {           \
        *entry_size = sizeof(struct hsd_cuda_##op##_entry);                    \
        return hsd_cuda_##op##_table(count);                                   \
    }
FLAT_TABLE(add)
FLAT_TABLE(silu)
FLAT_TABLE(gelu)
FLAT_TABLE(quick_gelu)
FLAT_TABLE(relu)

static const struct flat_op k_flat[] = {
    {"add", 1, cpu_add, table_add, hsd_cuda_add},
    {"silu", 0, cpu_silu, table_silu, hsd_cuda_silu},
    {"gelu", 0, cpu_gelu, table_gelu, hsd_cuda_gelu},
    {"quick_gelu", 0, cpu_quick_gelu, table_quick_gelu, hsd_cuda_quick_gelu},
    {"relu", 0, cpu_relu, table_relu, hsd_cuda_relu},
};

// offset: elements added to every pointer (1 breaks 16-byte alignment).
static void run_flat(const struct flat_op *o, size_t count, int offset, int in_place) {
    char name[64];
    snprintf(name, sizeof name, "count%zu%s%s", count, offset ? "_unaligned" : "",
             in_place ? "_inplace" : "");
    if (tc_skip_in_emulation(o->op, name, (double)count)) return;
    float *ha = tc_host_uniform(count, -4.0f, 4.0f);
    float *hb = o->binary ? tc_host_uniform(count, -4.0f, 4.0f) : NULL;
    struct hsd_eltwise_params pc = {.count = count};
    pc.a = tc_cpu_buf(ha, count);
    pc.b = hb ? tc_cpu_buf(hb, count) : NULL;
    float *ref = tc_cpu_out(count);
    pc.out = ref;
    const double t0 = tc_seconds();
    CHECK_OK(o->cpu()(tc_cpu(), &pc));
    if (!tc_gpu()) {
        tc_reference_only(o->op, name, ref, count, tc_seconds() - t0);
        tc_free_all();
        return;
    }
    // Device buffers with `offset` leading elements.
    float *ha_pad = tc_host_alloc(count + offset), *hb_pad = tc_host_alloc(count + offset);
    memset(ha_pad, 0, (count + offset) * sizeof(float));
    memset(hb_pad, 0, (count + offset) * sizeof(float));
    memcpy(ha_pad + offset, ha, count * sizeof(float));
    if (hb) memcpy(hb_pad + offset, hb, count * sizeof(float));
    uint16_t *db = o->binary ? (uint16_t *)tc_dev_f16(hb_pad, count + offset) + offset : NULL;
    float *got = tc_host_alloc(count);
    int n = 0;
    size_t esz = 0;
    const unsigned char *table = o->table(&n, &esz);
    for (int i = 0; i <= n; i++) {
        const struct hsd_cuda_add_entry *e =
            i < n ? (const struct hsd_cuda_add_entry *)(const void *)(table + (size_t)i * esz) : NULL;
        char vname[64];
        snprintf(vname, sizeof vname, "%s", e ? e->info.name : "production");
        if (e && !hsd_cuda_kernel_runs_on(&e->info, tc_arch())) continue;
        uint16_t *da = (uint16_t *)tc_dev_f16(ha_pad, count + offset) + offset;
        uint16_t *dout = in_place ? da : (uint16_t *)tc_dev_poisoned_f16(count + offset) + offset;
        struct hsd_eltwise_params p = {.out = dout, .a = da, .b = db, .count = count};
        enum hsd_status st = e ? e->launch(&p, 0) : o->production(&p, 0);
        CHECKF(st == HSD_OK, "%s %s %s: %s", o->op, vname, name, hsd_last_error());
        CHECK_OK(hsd_cuda_sync());
        tc_download_f16(got, dout, count);
        tc_check(o->op, vname, name, got, ref, count, TOL, NMSE_TOL);
        check_elementwise(o->op, vname, name, got, ref, count, 6e-4, 6e-8);
    }
    tc_free_all();
}

// ---- sub-buffers with guards --------------------------------------------------

// A device fp16 sub-buffer `off` elements into its allocation, with GUARD
// elements after it: the guards (and the `off` leading elements) hold NaN
// for a poisoned output, else GUARD_VAL; a kernel must never touch them.
#define GUARD 8
#define GUARD_VAL (-1000.0f)  // exact in fp16

struct sub {
    uint16_t *base, *p;
    size_t n;
    int off, poisoned;
};

// host == NULL: a NaN-poisoned output; else a copy of host[0..n).
static struct sub dev_sub(const float *host, size_t n, int off) {
    struct sub d = {.n = n, .off = off, .poisoned = host == NULL};
    const size_t total = (size_t)off + n + GUARD;
    if (!host) {
        d.base = tc_dev_poisoned_f16(total);
    } else {
        float *h = tc_host_alloc(total);
        for (size_t i = 0; i < total; i++) h[i] = GUARD_VAL;
        memcpy(h + off, host, n * sizeof(float));
        d.base = tc_dev_f16(h, total);
    }
    d.p = d.base + off;
    return d;
}

static void check_guards(const char *op, const char *version, const char *name, struct sub d) {
    const size_t total = (size_t)d.off + d.n + GUARD;
    float *h = tc_host_alloc(total);
    tc_download_f16(h, d.base, total);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < total; i++) {
        if (i >= (size_t)d.off && i < d.off + d.n) continue;
        const int ok = d.poisoned ? isnan(h[i]) : h[i] == GUARD_VAL;
        if (!ok && bad++ == 0) first = i;
    }
    CHECKF(bad == 0, "%s %s %s: %zu guard elements written, e.g. [%zu] of %zu (sub-buffer %d..%zu) = %g",
           op, version, name, bad, first, total, d.off, d.off + d.n, bad ? h[first] : 0.0);
}

// got[i] must be ref[i] rounded to nearest-even fp16, bit for bit (add_bias).
static void check_rounded(const char *op, const char *version, const char *name, const float *got,
                          const float *ref, size_t n) {
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        const float want = hsd_f16_to_f32(hsd_f32_to_f16(ref[i]));
        if (!(got[i] == want) && bad++ == 0) first = i;
    }
    CHECKF(bad == 0, "%s %s %s: %zu elements not the fp16 rounding of the fp32 reference, e.g. "
           "[%zu] got %.8g ref %.8g", op, version, name, bad, first, bad ? got[first] : 0.0,
           bad ? ref[first] : 0.0);
}

// ---- concat_channels -----------------------------------------------------------

// offsets: elements into out, a, b (1: off 16-byte alignment; 8: aligned).
static void run_concat(int m, int ca, int cb, int off_out, int off_a, int off_b) {
    char name[80];
    snprintf(name, sizeof name, "m%d_ca%d_cb%d", m, ca, cb);
    if (off_out || off_a || off_b) {
        const size_t l = strlen(name);
        snprintf(name + l, sizeof name - l, "_off%d_%d_%d", off_out, off_a, off_b);
    }
    const size_t na = (size_t)m * ca, nb = (size_t)m * cb, nout = na + nb;
    if (tc_skip_in_emulation("concat", name, (double)nout)) return;
    float *ha = tc_host_uniform(na, -4.0f, 4.0f);
    float *hb = tc_host_uniform(nb, -4.0f, 4.0f);
    struct hsd_backend *cpu = tc_cpu();
    struct hsd_concat_params pc = {.m = m, .ca = ca, .cb = cb};
    pc.a = tc_cpu_buf(ha, na);
    pc.b = tc_cpu_buf(hb, nb);
    float *ref = tc_cpu_out(nout);
    pc.out = ref;
    const double t0 = tc_seconds();
    CHECK_OK(cpu->ops->concat_channels(cpu, &pc));
    if (!tc_gpu()) {
        tc_reference_only("concat", name, ref, nout, tc_seconds() - t0);
        tc_free_all();
        return;
    }
    const struct sub da = dev_sub(ha, na, off_a), db = dev_sub(hb, nb, off_b);
    float *got = tc_host_alloc(nout);
    int count = 0;
    const struct hsd_cuda_concat_channels_entry *table = hsd_cuda_concat_channels_table(&count);
    for (int i = 0; i <= count; i++) {
        const char *vname = i < count ? table[i].info.name : "hsd_cuda_concat_channels";
        if (i < count && !hsd_cuda_kernel_runs_on(&table[i].info, tc_arch())) continue;
        const struct sub dout = dev_sub(NULL, nout, off_out);
        struct hsd_concat_params p = {.out = dout.p, .a = da.p, .b = db.p, .m = m, .ca = ca, .cb = cb};
        enum hsd_status st = i < count ? table[i].launch(&p, 0) : hsd_cuda_concat_channels(&p, 0);
        CHECKF(st == HSD_OK, "concat %s %s: %s", vname, name, hsd_last_error());
        CHECK_OK(hsd_cuda_sync());
        tc_download_f16(got, dout.p, nout);
        tc_check("concat", vname, name, got, ref, nout, 0.0, 0.0);  // a copy: exact
        check_guards("concat", vname, name, dout);
        check_guards("concat", vname, name, da);
        check_guards("concat", vname, name, db);
    }
    tc_free_all();
}

// ---- add_bias ----------------------------------------------------------------

// offsets: elements into x and v.
static void run_add_bias(int n, int pix, int c, int off_x, int off_v) {
    char name[80];
    snprintf(name, sizeof name, "n%d_p%d_c%d", n, pix, c);
    if (off_x || off_v) {
        const size_t l = strlen(name);
        snprintf(name + l, sizeof name - l, "_off%d_%d", off_x, off_v);
    }
    const size_t nx = (size_t)n * pix * c, nv = (size_t)n * c;
    if (tc_skip_in_emulation("add_bias", name, (double)nx)) return;
    float *hx = tc_host_uniform(nx, -4.0f, 4.0f);
    float *hv = tc_host_uniform(nv, -4.0f, 4.0f);
    struct hsd_backend *cpu = tc_cpu();
    struct hsd_add_bias_params pc = {.n = n, .p = pix, .c = c};
    float *ref = tc_cpu_buf(hx, nx);  // in place: x becomes the reference
    pc.x = ref;
    pc.v = tc_cpu_buf(hv, nv);
    const double t0 = tc_seconds();
    CHECK_OK(cpu->ops->add_bias(cpu, &pc));
    if (!tc_gpu()) {
        tc_reference_only("add_bias", name, ref, nx, tc_seconds() - t0);
        tc_free_all();
        return;
    }
    const struct sub dv = dev_sub(hv, nv, off_v);
    float *got = tc_host_alloc(nx);
    int count = 0;
    const struct hsd_cuda_add_bias_entry *table = hsd_cuda_add_bias_table(&count);
    for (int i = 0; i <= count; i++) {
        const char *vname = i < count ? table[i].info.name : "hsd_cuda_add_bias";
        if (i < count && !hsd_cuda_kernel_runs_on(&table[i].info, tc_arch())) continue;
        const struct sub dx = dev_sub(hx, nx, off_x);  // fresh x per version: in place
        struct hsd_add_bias_params p = {.x = dx.p, .v = dv.p, .n = n, .p = pix, .c = c};
        enum hsd_status st = i < count ? table[i].launch(&p, 0) : hsd_cuda_add_bias(&p, 0);
        CHECKF(st == HSD_OK, "add_bias %s %s: %s", vname, name, hsd_last_error());
        CHECK_OK(hsd_cuda_sync());
        tc_download_f16(got, dx.p, nx);
        tc_check("add_bias", vname, name, got, ref, nx, TOL, NMSE_TOL);
        check_rounded("add_bias", vname, name, got, ref, nx);
        check_guards("add_bias", vname, name, dx);
        check_guards("add_bias", vname, name, dv);
    }
    tc_free_all();
}

// ---- tanh_clamp --------------------------------------------------------------

// Inputs uniform in [-range, range) plus, where count allows, the fp16
// extremes (+-65504, the smallest subnormal, -0).
static void run_tanh_clamp(size_t count, float limit, float range, int offset, int in_place) {
    char name[80];
    snprintf(name, sizeof name, "count%zu_limit%g", count, (double)limit);
    size_t l = strlen(name);
    if (offset) l += (size_t)snprintf(name + l, sizeof name - l, "_off%d", offset);
    if (in_place) snprintf(name + l, sizeof name - l, "_inplace");
    if (tc_skip_in_emulation("tanh_clamp", name, (double)count)) return;
    float *hin = tc_host_uniform(count, -range, range);
    const float specials[] = {65504.0f, -65504.0f, 5.9604645e-8f, -0.0f};
    for (size_t i = 0; i < 4 && 4 * i + 1 < count; i++) hin[4 * i + 1] = specials[i];
    struct hsd_backend *cpu = tc_cpu();
    struct hsd_tanh_clamp_params pc = {.count = count, .limit = limit};
    pc.in = tc_cpu_buf(hin, count);
    float *ref = tc_cpu_out(count);
    pc.out = ref;
    const double t0 = tc_seconds();
    CHECK_OK(cpu->ops->tanh_clamp(cpu, &pc));
    if (!tc_gpu()) {
        tc_reference_only("tanh_clamp", name, ref, count, tc_seconds() - t0);
        tc_free_all();
        return;
    }
    float *got = tc_host_alloc(count);
    int n = 0;
    const struct hsd_cuda_tanh_clamp_entry *table = hsd_cuda_tanh_clamp_table(&n);
    for (int i = 0; i <= n; i++) {
        const char *vname = i < n ? table[i].info.name : "hsd_cuda_tanh_clamp";
        if (i < n && !hsd_cuda_kernel_runs_on(&table[i].info, tc_arch())) continue;
        const struct sub din = dev_sub(hin, count, offset);
        const struct sub dout = in_place ? din : dev_sub(NULL, count, offset);
        struct hsd_tanh_clamp_params p = {.out = dout.p, .in = din.p, .count = count, .limit = limit};
        enum hsd_status st = i < n ? table[i].launch(&p, 0) : hsd_cuda_tanh_clamp(&p, 0);
        CHECKF(st == HSD_OK, "tanh_clamp %s %s: %s", vname, name, hsd_last_error());
        CHECK_OK(hsd_cuda_sync());
        tc_download_f16(got, dout.p, count);
        tc_check("tanh_clamp", vname, name, got, ref, count, TOL, NMSE_TOL);
        check_elementwise("tanh_clamp", vname, name, got, ref, count, 6e-4, 6e-8);
        check_guards("tanh_clamp", vname, name, dout);
        if (!in_place) check_guards("tanh_clamp", vname, name, din);
    }
    tc_free_all();
}

// ---- parameter validation ----------------------------------------------------

// The launchers reject what the CPU backend rejects (HSD_ERR_INVALID_ARG
// with a message) before touching memory, so no pointer here is valid.
static void expect_invalid(const char *op, const char *version, const char *what,
                           enum hsd_status st) {
    const char *msg = hsd_last_error();
    CHECKF(st == HSD_ERR_INVALID_ARG && msg && msg[0], "%s %s: %s accepted (status %d)", op,
           version, what, (int)st);
}

static void check_validation(void) {
    if (!tc_gpu()) return;
    void *dummy = (void *)(uintptr_t)0x100;  // never dereferenced: validation fails first
    int count = 0;
    const struct hsd_cuda_concat_channels_entry *tc = hsd_cuda_concat_channels_table(&count);
    for (int i = 0; i <= count; i++) {
        hsd_cuda_concat_channels_fn f = i < count ? tc[i].launch : hsd_cuda_concat_channels;
        const char *v = i < count ? tc[i].info.name : "hsd_cuda_concat_channels";
        struct hsd_concat_params p = {.out = dummy, .a = dummy, .b = dummy, .m = 1, .ca = 1, .cb = 1};
        expect_invalid("concat", v, "NULL params", f(NULL, 0));
        p.m = 0;
        expect_invalid("concat", v, "m = 0", f(&p, 0));
        p.m = 1, p.ca = -1;
        expect_invalid("concat", v, "ca = -1", f(&p, 0));
        p.ca = 1, p.cb = 0;
        expect_invalid("concat", v, "cb = 0", f(&p, 0));
        p.cb = 1, p.b = NULL;
        expect_invalid("concat", v, "b = NULL", f(&p, 0));
        p.b = dummy, p.out = NULL;
        expect_invalid("concat", v, "out = NULL", f(&p, 0));
    }
    const struct hsd_cuda_add_bias_entry *tb = hsd_cuda_add_bias_table(&count);
    for (int i = 0; i <= count; i++) {
        hsd_cuda_add_bias_fn f = i < count ? tb[i].launch : hsd_cuda_add_bias;
        const char *v = i < count ? tb[i].info.name : "hsd_cuda_add_bias";
        struct hsd_add_bias_params p = {.x = dummy, .v = dummy, .n = 1, .p = 1, .c = 1};
        expect_invalid("add_bias", v, "NULL params", f(NULL, 0));
        p.n = 0;
        expect_invalid("add_bias", v, "n = 0", f(&p, 0));
        p.n = 1, p.p = -3;
        expect_invalid("add_bias", v, "p = -3", f(&p, 0));
        p.p = 1, p.c = 0;
        expect_invalid("add_bias", v, "c = 0", f(&p, 0));
        p.c = 1, p.x = NULL;
        expect_invalid("add_bias", v, "x = NULL", f(&p, 0));
        p.x = dummy, p.v = NULL;
        expect_invalid("add_bias", v, "v = NULL", f(&p, 0));
    }
    const struct hsd_cuda_tanh_clamp_entry *tt = hsd_cuda_tanh_clamp_table(&count);
    for (int i = 0; i <= count; i++) {
        hsd_cuda_tanh_clamp_fn f = i < count ? tt[i].launch : hsd_cuda_tanh_clamp;
        const char *v = i < count ? tt[i].info.name : "hsd_cuda_tanh_clamp";
        struct hsd_tanh_clamp_params p = {.out = dummy, .in = dummy, .count = 8, .limit = 3.0f};
        expect_invalid("tanh_clamp", v, "NULL params", f(NULL, 0));
        const float bad_limits[] = {0.0f, -3.0f, NAN, INFINITY};
        for (int k = 0; k < 4; k++) {
            p.limit = bad_limits[k];
            char what[32];
            snprintf(what, sizeof what, "limit %g", (double)bad_limits[k]);
            expect_invalid("tanh_clamp", v, what, f(&p, 0));
        }
        p.limit = 3.0f, p.in = NULL;
        expect_invalid("tanh_clamp", v, "in = NULL", f(&p, 0));
        p.in = dummy, p.out = NULL;
        expect_invalid("tanh_clamp", v, "out = NULL", f(&p, 0));
        // count 0 is a no-op, as on the CPU backend: no pointers needed.
        struct hsd_tanh_clamp_params z = {.count = 0, .limit = 3.0f};
        CHECKF(f(&z, 0) == HSD_OK, "tanh_clamp %s: count 0 rejected: %s", v, hsd_last_error());
    }
    printf("validation: concat_channels, add_bias, tanh_clamp launchers reject bad params: done\n");
}

int main(int argc, char **argv) {
    if (!tc_init("test_cuda_eltwise", argc, argv)) return HSD_TEST_SKIP;
    // GEGLU of each transformer level: m = 2 * hw tokens, f = 4 * width.
    run_geglu(2 * 4096, 1280);
    run_geglu(2 * 1024, 2560);
    run_geglu(2 * 256, 5120);
    run_geglu(2 * 64, 5120);
    run_geglu(5, 37);
    // Upsample2D inputs (8->16, 16->32, 32->64) and odd ones.
    run_upsample(2, 8, 8, 1280);
    run_upsample(2, 16, 16, 1280);
    run_upsample(2, 32, 32, 640);
    run_upsample(1, 5, 7, 12);
    run_upsample(1, 3, 2, 8);
    // SD1.5: 320 wide, flip_sin_to_cos, shift 0; odd dim with the shift.
    run_timestep(2, 320, 1, 0.0f);
    run_timestep(16, 320, 1, 0.0f);
    run_timestep(3, 33, 0, 1.0f);
    for (size_t i = 0; i < sizeof k_flat / sizeof k_flat[0]; i++) {
        run_flat(&k_flat[i], (size_t)2 * 4096 * 320, 0, 0);
        run_flat(&k_flat[i], 1001, 1, 0);
        run_flat(&k_flat[i], 4099, 0, 1);
    }
    check_validation();
    // Up-block skip concatenations [hidden | res_hidden] at 64, 32 and 8
    // (batch 2), then odd ones: c = 3/5/77, cb not a multiple of 8 (the
    // element-wise path), pointers off by one element, sub-buffers 8 in.
    run_concat(2 * 64 * 64, 320, 320, 0, 0, 0);
    run_concat(2 * 64 * 64, 640, 320, 0, 0, 0);
    run_concat(2 * 32 * 32, 1280, 640, 0, 0, 0);
    run_concat(2 * 8 * 8, 1280, 1280, 0, 0, 0);
    run_concat(5, 3, 5, 0, 0, 0);
    run_concat(7, 77, 3, 0, 0, 0);
    run_concat(33, 320, 4, 0, 0, 0);
    run_concat(9, 16, 8, 1, 0, 3);
    run_concat(9, 16, 8, 8, 8, 8);
    run_concat(1, 1, 1, 1, 1, 1);
    // ResnetBlock2D time-embedding bias of every level (batch 2), odd ones.
    run_add_bias(2, 64 * 64, 320, 0, 0);
    run_add_bias(2, 32 * 32, 640, 0, 0);
    run_add_bias(2, 16 * 16, 1280, 0, 0);
    run_add_bias(2, 8 * 8, 1280, 0, 0);
    run_add_bias(1, 7, 3, 0, 0);
    run_add_bias(3, 5, 77, 0, 0);
    run_add_bias(2, 9, 16, 1, 0);
    run_add_bias(2, 9, 16, 0, 1);
    run_add_bias(2, 9, 16, 8, 8);
    run_add_bias(1, 1, 5, 1, 3);
    // TAESD DecoderTiny's clamp (limit 3) of 64x64 and 128x128 latents
    // (batch 2, 4 channels), then odd counts, unaligned and in place.
    run_tanh_clamp(2 * 4 * 64 * 64, 3.0f, 12.0f, 0, 0);
    run_tanh_clamp(2 * 4 * 128 * 128, 3.0f, 12.0f, 0, 1);
    run_tanh_clamp(1001, 3.0f, 12.0f, 1, 0);
    run_tanh_clamp(4099, 3.0f, 12.0f, 0, 1);
    run_tanh_clamp(4099, 3.0f, 12.0f, 1, 1);
    run_tanh_clamp(4103, 3.0f, 12.0f, 8, 0);
    run_tanh_clamp(7, 3.0f, 12.0f, 0, 0);
    run_tanh_clamp(1000, 1.0f, 20.0f, 0, 0);
    run_tanh_clamp(1000, 0.5f, 4.0f, 3, 1);
    return tc_finish();
}
