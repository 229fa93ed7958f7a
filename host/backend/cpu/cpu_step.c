// The step ops (backend/step_ops.h) on host memory: scale_model_input,
// CFG combine and the sampler step, element maths from backend/step_math.h
// (the same functions hsd_sampler_step runs, so this backend reproduces
// the host samplers bit for bit). Items in parallel over element blocks:
// each element is one independent chain, so threads change no bits.
//
// Test: ctest -R 'test_step_ops|test_samplers|test_pipeline'.
#include "backend/cpu/cpu_internal.h"
#include "backend/step_math.h"
#include "core/status.h"

// Below this many elements a parallel region costs more than it saves.
#define PAR_MIN ((size_t)65536)

// Every row of a host-memory table, before anything is written (a SKIP
// row is sound: the loops below pass it by).
static enum hsd_status check_table(const char *who, const struct hsd_step_row *t, int n,
                                   int rows) {
    for (int i = 0; i < n; i++) {
        if (!hsd_step_row_skip(&t[i]) && !hsd_step_row_ok(&t[i], rows))
            return hsd_fail(HSD_ERR_INVALID_ARG,
                            "%s: table row %d invalid (kind %d, rows %d/%d of %d, pndm %d/%d/%d)",
                            who, i, (int)t[i].kind, (int)t[i].cond_row, (int)t[i].uncond_row,
                            rows, (int)t[i].pndm_counter, (int)t[i].pndm_n_ets,
                            (int)t[i].pndm_shift);
    }
    return HSD_OK;
}

enum hsd_status hsd_cpu_step_input(struct hsd_backend *be, const struct hsd_step_input_params *p) {
    enum hsd_status s = hsd_step_input_check(p, "step_input");
    if (!s) s = check_table("step_input", p->table, p->n, p->rows);
    if (s) return s;
    const struct hsd_step_row *t = p->table;  // [n]
    const float *x = p->x;                    // [n, count]
    float *in = p->in;                        // [rows, count]
    const size_t count = p->count, total = (size_t)p->n * count;
#pragma omp parallel for num_threads(be->threads) schedule(static) if (total > PAR_MIN)
    for (int i = 0; i < p->n; i++) {
        if (hsd_step_row_skip(&t[i])) continue;
        const float *xi = x + (size_t)i * count;
        float *c = in + (size_t)t[i].cond_row * count;
        float *u = t[i].uncond_row >= 0 ? in + (size_t)t[i].uncond_row * count : NULL;
        for (size_t e = 0; e < count; e++) {
            const float v = hsd_step_input(&t[i], xi[e]);
            c[e] = v;
            if (u) u[e] = v;
        }
    }
    return HSD_OK;
}

enum hsd_status hsd_cpu_cfg_combine(struct hsd_backend *be, const struct hsd_cfg_combine_params *p) {
    enum hsd_status s = hsd_cfg_combine_check(p, "cfg_combine");
    if (!s) s = check_table("cfg_combine", p->table, p->n, p->rows);
    if (s) return s;
    const struct hsd_step_row *t = p->table;  // [n]
    const float *mo = p->model_out;           // [rows, count]
    float *eps = p->eps;                      // [n, count]
    const size_t count = p->count, total = (size_t)p->n * count;
#pragma omp parallel for num_threads(be->threads) schedule(static) if (total > PAR_MIN)
    for (int i = 0; i < p->n; i++) {
        if (hsd_step_row_skip(&t[i])) continue;
        const float *c = mo + (size_t)t[i].cond_row * count;
        float *o = eps + (size_t)i * count;
        if (t[i].uncond_row < 0) {
            for (size_t e = 0; e < count; e++) o[e] = c[e];
            continue;
        }
        const float *u = mo + (size_t)t[i].uncond_row * count, g = t[i].guidance;
        for (size_t e = 0; e < count; e++) o[e] = hsd_step_cfg(g, c[e], u[e]);
    }
    return HSD_OK;
}

enum hsd_status hsd_cpu_sampler_step(struct hsd_backend *be,
                                     const struct hsd_sampler_step_params *p) {
    enum hsd_status s = hsd_sampler_step_check(p, "sampler_step");
    // U-Net rows play no part here: any row index passes (rows = INT_MAX).
    if (!s) s = check_table("sampler_step", p->table, p->n, 0x7fffffff);
    if (s) return s;
    const struct hsd_step_row *t = p->table;  // [n]
    float *x = p->x;                          // [n, count]
    float *slots = p->slots;                  // [n, HSD_STEP_SLOTS, count]
    const float *eps = p->eps;                // [n, count]
    const size_t count = p->count, total = (size_t)p->n * count;
#pragma omp parallel for num_threads(be->threads) schedule(static) if (total > PAR_MIN)
    for (int i = 0; i < p->n; i++) {
        if (hsd_step_row_skip(&t[i])) continue;
        float *xi = x + (size_t)i * count, *si = slots + (size_t)i * HSD_STEP_SLOTS * count;
        const float *ei = eps + (size_t)i * count;
        for (size_t e = 0; e < count; e++) hsd_step_element(&t[i], &xi[e], ei[e], si, e, count);
    }
    return HSD_OK;
}
