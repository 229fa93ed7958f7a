// Every registered group_norm and layer_norm version (cuda/registry.h),
// and the production entry points, against the CPU backend in fp32 (its
// statistics in double) on the same fp16-rounded inputs: the SD1.5 U-Net's
// group norms at a 64x64 latent, batch 2 (ResNet norm1/norm2 + SiLU with
// eps 1e-5, the up blocks' concatenated widths 960-2560, transformer norms
// with eps 1e-6, conv_norm_out), its layer norms (320/640/1280 wide, CLIP's
// 768), and odd shapes (c % 8 != 0, 2 channels per group, n = 1, one
// group, a mean 40x the spread). Skipped (77) without a GPU;
// --reference-only builds the CPU references only.
//
// Inputs 0.5 + uniform[-2, 2) (non-zero mean), or 10 + uniform[-0.5, 0.5)
// for the cancellation case; gamma in [0.5, 1.5), beta in [-0.5, 0.5).
//
// Bounds (test_cuda_common.h for the rule): fp32 statistics (Welford/Chan,
// or two-pass) over <= 4096*80 values are good to ~1e-6 relative; outputs
// are O(3) and rounded once to fp16 (<= 2^-11 = 4.9e-4 of |out|), SiLU in
// fp32 adds ~1e-7. tol = 1e-3 of max|ref|, NMSE 1e-6 (rounding alone gives
// ~1e-7). A wrong group, channel or statistic errs by O(1).
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

struct gn_case {
    const char *what;
    int n, hw, c, groups;
    float eps;
    int silu;
    int big_mean;
};

static const struct gn_case k_gn[] = {
    // ResNet norm1/norm2 (+SiLU), eps 1e-5, 32 groups.
    {"res_64", 2, 4096, 320, 32, 1e-5f, 1, 0},
    {"res_32a", 2, 1024, 320, 32, 1e-5f, 1, 0},
    {"res_32", 2, 1024, 640, 32, 1e-5f, 1, 0},
    {"res_16a", 2, 256, 640, 32, 1e-5f, 1, 0},
    {"res_16", 2, 256, 1280, 32, 1e-5f, 1, 0},
    {"res_8", 2, 64, 1280, 32, 1e-5f, 1, 0},
    {"up0_8", 2, 64, 2560, 32, 1e-5f, 1, 0},
    {"up1_16a", 2, 256, 2560, 32, 1e-5f, 1, 0},
    {"up1_16b", 2, 256, 1920, 32, 1e-5f, 1, 0},
    {"up2_32a", 2, 1024, 1920, 32, 1e-5f, 1, 0},
    {"up2_32b", 2, 1024, 1280, 32, 1e-5f, 1, 0},
    {"up2_32c", 2, 1024, 960, 32, 1e-5f, 1, 0},
    {"up3_64a", 2, 4096, 960, 32, 1e-5f, 1, 0},
    {"up3_64b", 2, 4096, 640, 32, 1e-5f, 1, 0},
    // Transformer2DModel norm (eps 1e-6, no SiLU).
    {"attn_64", 2, 4096, 320, 32, 1e-6f, 0, 0},
    {"attn_32", 2, 1024, 640, 32, 1e-6f, 0, 0},
    {"attn_16", 2, 256, 1280, 32, 1e-6f, 0, 0},
    {"attn_8", 2, 64, 1280, 32, 1e-6f, 0, 0},
    // Odd.
    {"cg2", 1, 37, 64, 32, 1e-5f, 1, 0},
    {"c12", 1, 50, 12, 4, 1e-5f, 0, 0},    // c % 8 != 0: v2 unsupported, falls back
    {"one_group", 1, 1000, 8, 1, 1e-5f, 1, 0},
    {"big_mean", 2, 1024, 640, 32, 1e-5f, 0, 1},
    {"c96_g3", 3, 33, 96, 3, 1e-5f, 1, 0},
};

struct ln_case {
    const char *what;
    int m, c;
};

static const struct ln_case k_ln[] = {
    {"attn_64", 2 * 4096, 320}, {"attn_32", 2 * 1024, 640}, {"attn_16", 2 * 256, 1280},
    {"attn_8", 2 * 64, 1280},   {"clip", 2 * 77, 768},      {"odd_c59", 33, 59},
    {"c8", 1, 8},
};

static void run_gn(const struct gn_case *c) {
    char name[96];
    snprintf(name, sizeof name, "%s_n%d_hw%d_c%d_g%d%s", c->what, c->n, c->hw, c->c, c->groups,
             c->silu ? "_silu" : "");
    const size_t nx = (size_t)c->n * c->hw * c->c;
    if (tc_skip_in_emulation("group_norm", name, (double)nx)) return;
    float *hx = c->big_mean ? tc_host_uniform(nx, 9.5f, 10.5f) : tc_host_uniform(nx, -1.5f, 2.5f);
    float *hg = tc_host_uniform((size_t)c->c, 0.5f, 1.5f);
    float *hb = tc_host_uniform((size_t)c->c, -0.5f, 0.5f);
    struct hsd_group_norm_params p = {0};
    p.n = c->n;
    p.hw = c->hw;
    p.c = c->c;
    p.groups = c->groups;
    p.eps = c->eps;
    p.silu = c->silu;

    struct hsd_backend *cpu = tc_cpu();
    struct hsd_group_norm_params pc = p;
    pc.in = tc_cpu_buf(hx, nx);
    pc.gamma = tc_cpu_buf(hg, (size_t)c->c);
    pc.beta = tc_cpu_buf(hb, (size_t)c->c);
    float *ref = tc_cpu_out(nx);
    pc.out = ref;
    const double t0 = tc_seconds();
    CHECK_OK(cpu->ops->group_norm(cpu, &pc));
    const double t_ref = tc_seconds() - t0;
    if (!tc_gpu()) {
        tc_reference_only("group_norm", name, ref, nx, t_ref);
        tc_free_all();
        return;
    }
    p.in = tc_dev_f16(hx, nx);
    p.gamma = tc_dev_f16(hg, (size_t)c->c);
    p.beta = tc_dev_f16(hb, (size_t)c->c);
    float *got = tc_host_alloc(nx);
    int count = 0;
    const struct hsd_cuda_group_norm_entry *table = hsd_cuda_group_norm_table(&count);
    for (int i = 0; i <= count; i++) {
        const char *vname = i < count ? table[i].info.name : "hsd_cuda_group_norm";
        if (i < count && !hsd_cuda_kernel_runs_on(&table[i].info, tc_arch())) continue;
        p.out = tc_dev_poisoned_f16(nx);
        enum hsd_status st = i < count ? table[i].launch(&p, 0) : hsd_cuda_group_norm(&p, 0);
        if (st == HSD_ERR_UNSUPPORTED && i < count && !(table[i].info.flags & HSD_CUDA_REFERENCE)) {
            tc_note_unsupported("group_norm", vname, name);
            continue;
        }
        CHECKF(st == HSD_OK, "group_norm %s %s: %s", vname, name, hsd_last_error());
        CHECK_OK(hsd_cuda_sync());
        tc_download_f16(got, p.out, nx);
        tc_check("group_norm", vname, name, got, ref, nx, TOL, NMSE_TOL);
    }
    tc_free_all();
}

static void run_ln(const struct ln_case *c) {
    char name[96];
    snprintf(name, sizeof name, "%s_m%d_c%d", c->what, c->m, c->c);
    const size_t nx = (size_t)c->m * c->c;
    if (tc_skip_in_emulation("layer_norm", name, (double)nx)) return;
    float *hx = tc_host_uniform(nx, -1.5f, 2.5f);
    float *hg = tc_host_uniform((size_t)c->c, 0.5f, 1.5f);
    float *hb = tc_host_uniform((size_t)c->c, -0.5f, 0.5f);
    struct hsd_layer_norm_params p = {0};
    p.m = c->m;
    p.c = c->c;
    p.eps = 1e-5f;

    struct hsd_backend *cpu = tc_cpu();
    struct hsd_layer_norm_params pc = p;
    pc.in = tc_cpu_buf(hx, nx);
    pc.gamma = tc_cpu_buf(hg, (size_t)c->c);
    pc.beta = tc_cpu_buf(hb, (size_t)c->c);
    float *ref = tc_cpu_out(nx);
    pc.out = ref;
    const double t0 = tc_seconds();
    CHECK_OK(cpu->ops->layer_norm(cpu, &pc));
    const double t_ref = tc_seconds() - t0;
    if (!tc_gpu()) {
        tc_reference_only("layer_norm", name, ref, nx, t_ref);
        tc_free_all();
        return;
    }
    p.in = tc_dev_f16(hx, nx);
    p.gamma = tc_dev_f16(hg, (size_t)c->c);
    p.beta = tc_dev_f16(hb, (size_t)c->c);
    float *got = tc_host_alloc(nx);
    int count = 0;
    const struct hsd_cuda_layer_norm_entry *table = hsd_cuda_layer_norm_table(&count);
    for (int i = 0; i <= count; i++) {
        const char *vname = i < count ? table[i].info.name : "hsd_cuda_layer_norm";
        if (i < count && !hsd_cuda_kernel_runs_on(&table[i].info, tc_arch())) continue;
        p.out = tc_dev_poisoned_f16(nx);
        enum hsd_status st = i < count ? table[i].launch(&p, 0) : hsd_cuda_layer_norm(&p, 0);
        if (st == HSD_ERR_UNSUPPORTED && i < count && !(table[i].info.flags & HSD_CUDA_REFERENCE)) {
            tc_note_unsupported("layer_norm", vname, name);
            continue;
        }
        CHECKF(st == HSD_OK, "layer_norm %s %s: %s", vname, name, hsd_last_error());
        CHECK_OK(hsd_cuda_sync());
        tc_download_f16(got, p.out, nx);
        tc_check("layer_norm", vname, name, got, ref, nx, TOL, NMSE_TOL);
    }
    tc_free_all();
}

int main(int argc, char **argv) {
    if (!tc_init("test_cuda_norm", argc, argv)) return HSD_TEST_SKIP;
    for (size_t i = 0; i < sizeof k_gn / sizeof k_gn[0]; i++) run_gn(&k_gn[i]);
    for (size_t i = 0; i < sizeof k_ln / sizeof k_ln[0]; i++) run_ln(&k_ln[i]);
    return tc_finish();
}
