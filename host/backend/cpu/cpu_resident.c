// The resident step's gather and scatter (backend/resident_ops.h) on host
// memory: the CPU backend's "device" is host memory, so these are copies,
// and the CPU runs the same resident path as a GPU (every CPU parity test
// proves its logic). Copies change no bits.
//
// Test: ctest -R 'test_resident_step|test_pipeline|test_sched'.
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "backend/step_math.h"
#include "core/status.h"

static enum hsd_status check_ref(const struct hsd_step_slot_ref *r, int i) {
    if (!r->x) return HSD_OK;  // unused item
    if (!r->hist || !r->plan || !r->t || !r->cond || !r->counter)
        return hsd_fail(HSD_ERR_INVALID_ARG, "step_gather: item %d's slot has a NULL buffer", i);
    const int32_t c = *(const int32_t *)r->counter;
    if (c < 0 || c >= r->calls)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "step_gather: item %d is at call %d of a plan of %d calls", i, (int)c,
                        (int)r->calls);
    return HSD_OK;
}

enum hsd_status hsd_cpu_step_gather(struct hsd_backend *be, const struct hsd_step_gather_params *p) {
    (void)be;
    enum hsd_status s = hsd_step_gather_check(p, "step_gather");
    if (s) return s;
    const struct hsd_step_slot_ref *refs = p->refs;  // [n]
    for (int i = 0; i < p->n && !s; i++) s = check_ref(&refs[i], i);
    if (s) return s;
    struct hsd_step_row *table = p->table;  // [n]
    float *x = p->x, *hist = p->hist, *t = p->t_rows, *ctx = p->ctx_rows;
    const size_t lat = p->lat, nc = p->ctx, hl = (size_t)HSD_STEP_SLOTS * lat;
    for (int i = 0; i < p->n; i++) {
        const struct hsd_step_slot_ref *r = &refs[i];
        if (!r->x) {
            table[i] = (struct hsd_step_row){.kind = HSD_STEP_SKIP, .uncond_row = -1};
            continue;
        }
        const int32_t c = *(const int32_t *)r->counter;
        struct hsd_step_row row = ((const struct hsd_step_row *)r->plan)[c];
        row.cond_row = r->cond_row;
        row.uncond_row = r->uncond_row;
        if (!hsd_step_row_ok(&row, p->rows))
            return hsd_fail(HSD_ERR_INVALID_ARG, "step_gather: item %d: rows %d/%d of %d", i,
                            (int)r->cond_row, (int)r->uncond_row, p->rows);
        if (row.uncond_row >= 0 && !r->uncond)
            return hsd_fail(HSD_ERR_INVALID_ARG, "step_gather: item %d has no uncond context", i);
        table[i] = row;
        memcpy(x + (size_t)i * lat, r->x, lat * sizeof(float));
        memcpy(hist + (size_t)i * hl, r->hist, hl * sizeof(float));
        if (r->noise)
            memcpy(hist + (size_t)i * hl, (const float *)r->noise + (size_t)c * lat,
                   lat * sizeof(float));
        const float ts = ((const float *)r->t)[c];
        t[row.cond_row] = ts;
        memcpy(ctx + (size_t)row.cond_row * nc, r->cond, nc * sizeof(float));
        if (row.uncond_row >= 0) {
            t[row.uncond_row] = ts;
            memcpy(ctx + (size_t)row.uncond_row * nc, r->uncond, nc * sizeof(float));
        }
    }
    return HSD_OK;
}

enum hsd_status hsd_cpu_step_scatter(struct hsd_backend *be,
                                     const struct hsd_step_scatter_params *p) {
    (void)be;
    enum hsd_status s = hsd_step_scatter_check(p, "step_scatter");
    if (s) return s;
    const struct hsd_step_slot_ref *refs = p->refs;  // [n]
    const float *x = p->x, *hist = p->hist;
    const size_t lat = p->lat, hl = (size_t)HSD_STEP_SLOTS * lat;
    for (int i = 0; i < p->n; i++)
        if (refs[i].x && (!refs[i].hist || !refs[i].counter))
            return hsd_fail(HSD_ERR_INVALID_ARG, "step_scatter: item %d's slot has a NULL buffer",
                            i);
    for (int i = 0; i < p->n; i++) {
        if (!refs[i].x) continue;  // unused item
        memcpy(refs[i].x, x + (size_t)i * lat, lat * sizeof(float));
        memcpy(refs[i].hist, hist + (size_t)i * hl, hl * sizeof(float));
        ++*(int32_t *)refs[i].counter;
    }
    return HSD_OK;
}
