// Parameter checks of the step ops (backend/step_ops.h), shared by the CPU
// backend (cpu/cpu_step.c) and the CUDA launchers (cuda/sampler_step.cu).
#include "backend/resident_ops.h"
#include "backend/step_ops.h"

static enum hsd_status dims(const char *who, int n, int rows, size_t count) {
    if (n < 1 || rows < 1 || count < 1)
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: n=%d rows=%d count=%zu must all be positive",
                        who, n, rows, count);
    return HSD_OK;
}

enum hsd_status hsd_step_input_check(const struct hsd_step_input_params *p, const char *who) {
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: NULL params", who);
    if (!p->in || !p->x || !p->table)
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: in, x, table must be non-NULL", who);
    return dims(who, p->n, p->rows, p->count);
}

enum hsd_status hsd_cfg_combine_check(const struct hsd_cfg_combine_params *p, const char *who) {
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: NULL params", who);
    if (!p->eps || !p->model_out || !p->table)
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: eps, model_out, table must be non-NULL", who);
    return dims(who, p->n, p->rows, p->count);
}

enum hsd_status hsd_sampler_step_check(const struct hsd_sampler_step_params *p, const char *who) {
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: NULL params", who);
    if (!p->x || !p->slots || !p->eps || !p->table)
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: x, slots, eps, table must be non-NULL", who);
    return dims(who, p->n, 1, p->count);
}

enum hsd_status hsd_step_gather_check(const struct hsd_step_gather_params *p, const char *who) {
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: NULL params", who);
    if (!p->x || !p->hist || !p->table || !p->t_rows || !p->ctx_rows || !p->refs)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "%s: x, hist, table, t_rows, ctx_rows, refs must be non-NULL", who);
    if (p->ctx < 1) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: ctx=%zu must be positive", who, p->ctx);
    return dims(who, p->n, p->rows, p->lat);
}

enum hsd_status hsd_step_scatter_check(const struct hsd_step_scatter_params *p, const char *who) {
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: NULL params", who);
    if (!p->x || !p->hist || !p->refs)
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: x, hist, refs must be non-NULL", who);
    return dims(who, p->n, 1, p->lat);
}
