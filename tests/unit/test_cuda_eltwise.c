// Every registered version of the memory-bound ops (cuda/registry.h) and
// their production entry points, against the CPU backend in fp32 on the
// same fp16-rounded inputs: geglu, upsample_nearest2x, timestep_embedding,
// add, silu, gelu, quick_gelu, relu, on SD1.5 shapes at a 64x64 latent,
// batch 2 (GEGLU [m, 2*4c] of every transformer level, the upsamplers'
// inputs, the 320-wide timestep embedding, a 64x64x320 map) and odd ones
// (f, c or count not a multiple of 8, pointers off 16-byte alignment by one
// element, in place). Skipped (77) without a GPU; --reference-only builds
// the CPU references only.
//
// Inputs uniform in [-4, 4) (covers the curved part of SiLU/GELU and both
// tails); timesteps uniform in [0, 1000).
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
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    return tc_finish();
}
