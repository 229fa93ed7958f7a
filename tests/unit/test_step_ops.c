// The CPU backend's step ops (host/backend/cpu/cpu_step.c: step_input,
// cfg_combine, sampler_step) against the host samplers, on real sampler
// states of all five kinds (step_cases.h): batched, with CFG on and off
// and U-Net rows in a scrambled order, the ops must give exactly what
// hsd_sampler_scale_model_input and hsd_sampler_step give item by item
// (the same IEEE operations in the same order: bit-identical), at SD
// latent shapes (4x64x64, 1 and 32 items) and odd ones. Then the ops'
// parameter and table checks. No GPU needed (label unit; the ASan job
// runs it); test_cuda_step holds the kernels to the same results.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "step_cases.h"
#include "testutil.h"

static struct hsd_backend *g_cpu;

static void run_case(int n, size_t count, int cfg_every, unsigned seed) {
    char name[96];
    snprintf(name, sizeof name, "n%d_count%zu_cfg%d_seed%u", n, count, cfg_every, seed);
    struct step_case c;
    step_case_make(&c, n, count, cfg_every, seed);
    const size_t nx = (size_t)n * count, nr = (size_t)c.rows * count;
    float *in = malloc(nr * sizeof *in), *eps = malloc(nx * sizeof *eps);
    for (size_t i = 0; i < nr; i++) in[i] = NAN;
    struct hsd_step_input_params ip = {in, c.x, c.table, n, c.rows, count};
    CHECK_OK(g_cpu->ops->step_input(g_cpu, &ip));
    // Each item's cond row, and its uncond row with CFG, hold its input.
    for (int i = 0; i < n; i++) {
        const float *want = c.in_host + (size_t)i * count;
        step_check_exact("step_input cond row", "cpu", name,
                         in + (size_t)c.table[i].cond_row * count, want, count);
        if (c.table[i].uncond_row >= 0)
            step_check_exact("step_input uncond row", "cpu", name,
                             in + (size_t)c.table[i].uncond_row * count, want, count);
    }
    struct hsd_cfg_combine_params cp = {eps, c.mo, c.table, n, c.rows, count};
    CHECK_OK(g_cpu->ops->cfg_combine(g_cpu, &cp));
    step_check_exact("cfg_combine", "cpu", name, eps, c.eps_host, nx);
    struct hsd_sampler_step_params sp = {c.x, c.slots, eps, c.table, n, count};
    CHECK_OK(g_cpu->ops->sampler_step(g_cpu, &sp));
    step_check_exact("sampler_step", "cpu", name, c.x, c.x_host, nx);
    printf("step %s: input rows, guided output and latents equal the host samplers\n", name);
    free(in);
    free(eps);
    step_case_free(&c);
}

static void check_validation(void) {
    const struct hsd_backend_ops *o = g_cpu->ops;
    struct step_case c;
    step_case_make(&c, 3, 5, 2, 11);
    float eps[15] = {0}, in[64];
    struct hsd_sampler_step_params sp = {c.x, c.slots, eps, c.table, 3, 5}, bad = sp;
    bad.n = 0;
    CHECK_INVALID(o->sampler_step(g_cpu, &bad));
    bad = sp, bad.slots = NULL;
    CHECK_INVALID(o->sampler_step(g_cpu, &bad));
    CHECK_INVALID(o->sampler_step(g_cpu, NULL));
    struct hsd_step_input_params ip = {in, c.x, c.table, 3, c.rows, 0};
    CHECK_INVALID(o->step_input(g_cpu, &ip));
    struct hsd_cfg_combine_params cp = {eps, c.mo, c.table, 3, c.rows - 1, 5};
    c.table[1].uncond_row = c.rows - 1;  // outside rows - 1
    CHECK_INVALID(o->cfg_combine(g_cpu, &cp));
    c.table[1].uncond_row = -1;
    c.table[2].kind = 99;
    CHECK_INVALID(o->sampler_step(g_cpu, &sp));
    c.table[2].kind = HSD_STEP_PNDM;
    c.table[2].pndm_n_ets = 5;  // names a fifth slot
    CHECK_INVALID(o->sampler_step(g_cpu, &sp));
    step_case_free(&c);
}

int main(void) {
    CHECK_OK(hsd_backend_cpu_create(&g_cpu, 2));
    if (!g_cpu) return hsd_test_finish();
    const size_t sd = 4 * 64 * 64;  // SD 1.x/2.x 512^2 latent
    run_case(1, sd, 1, 0);
    run_case(32, sd, 1, 7);          // 64 U-Net rows
    run_case(16, sd, 2, 5);
    run_case(10, 4 * 9 * 7, 2, 2);   // odd
    run_case(3, 1, 0, 4);            // one element, no CFG
    run_case(20, 37, 4, 9);
    check_validation();
    hsd_backend_destroy(g_cpu);
    return hsd_test_finish();
}
