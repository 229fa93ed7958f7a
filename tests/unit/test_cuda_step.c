// The step ops' kernels (cuda/sampler_step.cu: step_input, cfg_combine,
// sampler_step; every registered version and the production entry points)
// against the CPU backend (host/backend/cpu/cpu_step.c), which
// test_step_ops holds to the host samplers.
//
// Cases are real sampler states of all five kinds (step_cases.h: PNDM
// warm-up and 2nd-4th order with the ets shift, DPM-Solver++ first, second
// and final order, Euler a noise, DDIM clip, v prediction), CFG on for
// some items, off for others, U-Net rows in a shuffled order. Shapes: SD
// latents 4x64x64 at batch 1, 2, 16 and 32 items (up to 64 U-Net rows), a
// 4x96x64 latent, and odd ones (4x9x7, 1 element, 3 items).
//
// Bound: exact. Every element is a fixed chain of IEEE single-precision
// operations (backend/step_math.h) that the kernel spells with
// round-to-nearest intrinsics (no FMA contraction), from the same fp32
// inputs and the same fp16-exact model outputs, so outputs must equal the
// CPU's bit for bit (step_input's fp16 rows: the CPU value rounded once to
// nearest even). Any difference is a bug, not rounding.
//
// Skipped (77) without a GPU; the emulated build (test_cuda_step_emulated)
// runs every case on the host.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/step_ops.h"
#include "core/assert.h"
#include "core/dtype.h"
#include "memory.h"
#include "registry.h"
#include "sampling/sampler.h"
#include "step_cases.h"
#include "test_cuda_common.h"
#include "testutil.h"

static void run_case(int n, size_t count, int cfg_every, unsigned seed) {
    char name[96];
    snprintf(name, sizeof name, "n%d_count%zu_cfg%d_seed%u", n, count, cfg_every, seed);
    if (tc_skip_in_emulation("step", name, 3.0 * n * (double)count)) return;
    struct step_case c;
    step_case_make(&c, n, count, cfg_every, seed);
    struct hsd_backend *cpu = tc_cpu();
    const size_t nx = (size_t)n * count, ns = nx * HSD_STEP_SLOTS, nr = (size_t)c.rows * count;

    // CPU reference: input rows, guided output, step.
    float *in_ref = tc_cpu_out(nr), *eps_ref = tc_cpu_out(nx);
    float *x_ref = tc_cpu_buf(c.x, nx), *slots_ref = tc_cpu_buf(c.slots, ns);
    const double t0 = tc_seconds();
    struct hsd_step_input_params ip = {in_ref, c.x, c.table, n, c.rows, count};
    CHECK_OK(cpu->ops->step_input(cpu, &ip));
    struct hsd_cfg_combine_params cp = {eps_ref, c.mo, c.table, n, c.rows, count};
    CHECK_OK(cpu->ops->cfg_combine(cpu, &cp));
    struct hsd_sampler_step_params sp = {x_ref, slots_ref, eps_ref, c.table, n, count};
    CHECK_OK(cpu->ops->sampler_step(cpu, &sp));
    for (size_t i = 0; i < nr; i++) in_ref[i] = hsd_f16_to_f32(hsd_f32_to_f16(in_ref[i]));
    if (!tc_gpu()) {
        tc_reference_only("step", name, x_ref, nx, tc_seconds() - t0);
        step_case_free(&c);
        tc_free_all();
        return;
    }

    void *table = tc_dev_f32((const float *)(const void *)c.table, hsd_step_table_words(n));
    void *x_dev = tc_dev_f32(c.x, nx), *mo_dev = tc_dev_f16(c.mo, nr);
    float *got = tc_host_alloc(ns > nr ? ns : nr);

    int count_v = 0;
    const struct hsd_cuda_step_input_entry *ti = hsd_cuda_step_input_table(&count_v);
    for (int v = 0; v <= count_v; v++) {
        const char *vname = v < count_v ? ti[v].info.name : "hsd_cuda_step_input";
        if (v < count_v && !hsd_cuda_kernel_runs_on(&ti[v].info, tc_arch())) continue;
        struct hsd_step_input_params p = {tc_dev_poisoned_f16(nr), x_dev, table, n, c.rows, count};
        enum hsd_status st = v < count_v ? ti[v].launch(&p, 0) : hsd_cuda_step_input(&p, 0);
        CHECKF(st == HSD_OK, "step_input %s %s: %s", vname, name, hsd_last_error());
        CHECK_OK(hsd_cuda_sync());
        tc_download_f16(got, p.in, nr);
        step_check_exact("step_input", vname, name, got, in_ref, nr);
    }

    const struct hsd_cuda_cfg_combine_entry *tcfg = hsd_cuda_cfg_combine_table(&count_v);
    for (int v = 0; v <= count_v; v++) {
        const char *vname = v < count_v ? tcfg[v].info.name : "hsd_cuda_cfg_combine";
        if (v < count_v && !hsd_cuda_kernel_runs_on(&tcfg[v].info, tc_arch())) continue;
        float *nan = tc_host_alloc(nx);
        for (size_t i = 0; i < nx; i++) nan[i] = NAN;
        struct hsd_cfg_combine_params p = {tc_dev_f32(nan, nx), mo_dev, table, n, c.rows, count};
        enum hsd_status st = v < count_v ? tcfg[v].launch(&p, 0) : hsd_cuda_cfg_combine(&p, 0);
        CHECKF(st == HSD_OK, "cfg_combine %s %s: %s", vname, name, hsd_last_error());
        CHECK_OK(hsd_cuda_sync());
        tc_download_f32(got, p.eps, nx);
        step_check_exact("cfg_combine", vname, name, got, eps_ref, nx);
    }

    void *eps_dev = tc_dev_f32(eps_ref, nx);
    const struct hsd_cuda_sampler_step_entry *ts = hsd_cuda_sampler_step_table(&count_v);
    for (int v = 0; v <= count_v; v++) {
        const char *vname = v < count_v ? ts[v].info.name : "hsd_cuda_sampler_step";
        if (v < count_v && !hsd_cuda_kernel_runs_on(&ts[v].info, tc_arch())) continue;
        struct hsd_sampler_step_params p = {tc_dev_f32(c.x, nx), tc_dev_f32(c.slots, ns), eps_dev,
                                            table, n, count};
        enum hsd_status st = v < count_v ? ts[v].launch(&p, 0) : hsd_cuda_sampler_step(&p, 0);
        CHECKF(st == HSD_OK, "sampler_step %s %s: %s", vname, name, hsd_last_error());
        CHECK_OK(hsd_cuda_sync());
        tc_download_f32(got, p.x, nx);
        step_check_exact("sampler_step x", vname, name, got, x_ref, nx);
        tc_download_f32(got, p.slots, ns);
        step_check_exact("sampler_step slots", vname, name, got, slots_ref, ns);
    }
    printf("step %s: input rows, guided output, latents and history bit-identical to the CPU\n",
           name);
    step_case_free(&c);
    tc_free_all();
}

// Launchers validate their parameters (as the CPU backend does,
// test_step_ops); a bad table row, which the CPU backend rejects, is left
// untouched by the kernels (they cannot report it).
static void check_validation(void) {
    if (!tc_gpu()) return;
    struct step_case c;
    step_case_make(&c, 3, 5, 2, 11);
    const size_t nx = 3 * 5;
    CHECK(hsd_cuda_sampler_step(NULL, 0) == HSD_ERR_INVALID_ARG);
    struct hsd_step_input_params ip = {NULL, c.x, c.table, 3, c.rows, 5};
    CHECK(hsd_cuda_step_input(&ip, 0) == HSD_ERR_INVALID_ARG);
    struct hsd_cfg_combine_params cb = {c.x, c.mo, c.table, 3, c.rows, 0};
    CHECK(hsd_cuda_cfg_combine(&cb, 0) == HSD_ERR_INVALID_ARG);
    hsd_clear_error();
    // Row 2's kind is unknown: its latent stays as it was.
    c.table[2].kind = 99;
    void *table = tc_dev_f32((const float *)(const void *)c.table, hsd_step_table_words(3));
    float *eps = tc_host_uniform(nx, -1.0f, 1.0f);
    struct hsd_sampler_step_params p = {tc_dev_f32(c.x, nx),
                                        tc_dev_f32(c.slots, nx * HSD_STEP_SLOTS),
                                        tc_dev_f32(eps, nx), table, 3, 5};
    CHECK_OK(hsd_cuda_sampler_step(&p, 0));
    CHECK_OK(hsd_cuda_sync());
    float *got = tc_host_alloc(nx);
    tc_download_f32(got, p.x, nx);
    step_check_exact("sampler_step bad row", "hsd_cuda_sampler_step", "row 2 untouched", got + 10,
                     c.x + 10, 5);
    step_case_free(&c);
    tc_free_all();
}

int main(int argc, char **argv) {
    if (!tc_init("test_cuda_step", argc, argv)) return HSD_TEST_SKIP;
    const size_t sd = 4 * 64 * 64;  // SD 1.x/2.x 512^2 latent
    run_case(1, sd, 1, 0);          // one request with CFG
    run_case(2, sd, 2, 3);
    run_case(16, sd, 2, 5);         // 16 requests, 8 with CFG: 24 U-Net rows
    run_case(32, sd, 1, 7);         // 32 requests with CFG: 64 rows
    run_case(5, 4 * 96 * 64, 3, 1); // 768x512
    run_case(10, 4 * 9 * 7, 2, 2);  // odd
    run_case(3, 1, 0, 4);           // one element, no CFG
    run_case(20, 37, 4, 9);
    check_validation();
    return tc_finish();
}
