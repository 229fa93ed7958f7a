// Planned activation arena and counted op wrappers (fwd.h); moved out of
// unet_forward.c so the VAEs plan memory the same way.
#include "models/fwd.h"

#include <stdint.h>

#include "core/assert.h"

enum { ARENA_ALIGN = 256 };

void *hsd_fwd_act(struct hsd_fwd *f, size_t count) {
    size_t bytes = (count * f->be->act_size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    // Planning hands out distinct fake addresses that are never touched.
    char *p = f->planning ? (char *)(uintptr_t)(ARENA_ALIGN + f->used) : f->base + f->used;
    f->used += bytes;
    if (f->used > f->peak) f->peak = f->used;
    HSD_ASSERT(f->planning || f->used <= f->cap);
    return p;
}

enum hsd_status hsd_fwd_reserve(struct hsd_backend *be, void **arena, size_t *cap, size_t peak,
                                const char *model) {
    if (peak <= *cap && *arena) return HSD_OK;
    if (*arena) be->ops->free(be, *arena);
    *arena = be->ops->alloc(be, peak ? peak : ARENA_ALIGN);
    *cap = *arena ? peak : 0;
    if (!*arena)
        return hsd_fail_context(HSD_ERR_NOMEM, "%s: activation arena of %zu MB: ", model,
                                peak >> 20);
    return HSD_OK;
}

enum hsd_status hsd_fwd_conv2d(struct hsd_fwd *f, const struct hsd_conv2d_params *p) {
    int ho = (p->h + 2 * p->pad + p->pad_bottom - p->kh) / p->stride + 1;
    int wo = (p->w + 2 * p->pad + p->pad_right - p->kw) / p->stride + 1;
    f->flops += 2.0 * p->n * ho * wo * p->co * p->ci * p->kh * p->kw;
    HSD_FWD_RUN(f, conv2d, p);
    return HSD_OK;
}

enum hsd_status hsd_fwd_conv(struct hsd_fwd *f, void *out, const void *in, const void *w,
                             const void *bias, const void *res, int n, int h, int wd, int ci,
                             int co, int k, int stride) {
    struct hsd_conv2d_params p = {.out = out, .in = in, .weight = w, .bias = bias,
                                  .residual = res, .n = n, .h = h, .w = wd, .ci = ci, .co = co,
                                  .kh = k, .kw = k, .stride = stride, .pad = k / 2};
    return hsd_fwd_conv2d(f, &p);
}

enum hsd_status hsd_fwd_linear(struct hsd_fwd *f, void *out, const void *in, const void *w,
                               const void *bias, const void *res, int m, int k, int n_out) {
    struct hsd_linear_params p = {.out = out, .in = in, .weight = w, .bias = bias,
                                  .residual = res, .m = m, .k = k, .n_out = n_out};
    f->flops += 2.0 * m * k * n_out;
    HSD_FWD_RUN(f, linear, &p);
    return HSD_OK;
}

enum hsd_status hsd_fwd_gnorm(struct hsd_fwd *f, void *out, const void *in, const void *g,
                              const void *b, int n, int hw, int c, int groups, float eps,
                              int silu) {
    struct hsd_group_norm_params p = {.out = out, .in = in, .gamma = g, .beta = b, .n = n,
                                      .hw = hw, .c = c, .groups = groups, .eps = eps,
                                      .silu = silu};
    HSD_FWD_RUN(f, group_norm, &p);
    return HSD_OK;
}

enum hsd_status hsd_fwd_abort_status(void) {
    return hsd_fail(HSD_ERR_CANCELLED, "forward pass stopped: every request of the batch was "
                                       "cancelled or ran out of time");
}
