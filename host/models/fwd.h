// Forward passes on backend ops with a planned activation arena, shared by
// the U-Net and the VAEs.
//
// A forward runs twice per new input shape: first in planning mode (no op
// runs; allocations only advance a counter) to size the arena exactly, then
// for real. Allocation is a bump pointer with stack marks: a block
// allocates its output first, then its temporaries, and releases the
// temporaries when done (f->used = mark). No allocation happens in a
// planned forward (docs/architecture.md §4: no malloc in the step loop).
#ifndef HSD_MODELS_FWD_H
#define HSD_MODELS_FWD_H

#include <stdatomic.h>
#include <stddef.h>

#include "backend/backend.h"
#include "core/status.h"

struct hsd_fwd {
    struct hsd_backend *be;
    int planning;       // 1: count bytes and flops only, run nothing
    char *base;         // the arena (not planning)
    size_t used, peak, cap;
    double flops;       // counted while planning (multiply-add = 2)
    // Set (non-zero) by another thread to stop this forward before its next
    // op: the scheduler's way to drop a call every request of which was
    // cancelled or ran out of time (issue 15, finding 5). NULL: never.
    const atomic_int *abort;
};

// `count` activation elements from the arena (256-byte aligned).
void *hsd_fwd_act(struct hsd_fwd *f, size_t count);

// p + elems activation elements.
static inline const void *hsd_fwd_off(const struct hsd_fwd *f, const void *p, size_t elems) {
    return (const char *)p + elems * f->be->act_size;
}

// Runs backend op `op` outside planning; returns its failure, or
// HSD_ERR_CANCELLED once *abort is set (checked before every op: one op is
// at most a few hundred ms on a CPU at the largest allowed size).
#define HSD_FWD_RUN(f, op, params)                                         \
    do {                                                                   \
        if (!(f)->planning) {                                              \
            if (hsd_fwd_aborted(f)) return hsd_fwd_abort_status();         \
            enum hsd_status s_ = (f)->be->ops->op((f)->be, (params));      \
            if (s_) return s_;                                             \
        }                                                                  \
    } while (0)

static inline int hsd_fwd_aborted(const struct hsd_fwd *f) {
    return f->abort && atomic_load_explicit(f->abort, memory_order_relaxed);
}
enum hsd_status hsd_fwd_abort_status(void);

// Grows *arena (backend memory) to `peak` bytes after a planning pass.
enum hsd_status hsd_fwd_reserve(struct hsd_backend *be, void **arena, size_t *cap, size_t peak,
                                const char *model);

// Op wrappers that count flops while planning.
// k x k conv, stride `stride`, padding k / 2 (every 3x3 and 1x1 conv of SD).
enum hsd_status hsd_fwd_conv(struct hsd_fwd *f, void *out, const void *in, const void *w,
                             const void *bias, const void *res, int n, int h, int wd, int ci,
                             int co, int k, int stride);
// Any conv2d (asymmetric padding, ...): the params as the backend takes them.
enum hsd_status hsd_fwd_conv2d(struct hsd_fwd *f, const struct hsd_conv2d_params *p);
enum hsd_status hsd_fwd_linear(struct hsd_fwd *f, void *out, const void *in, const void *w,
                               const void *bias, const void *res, int m, int k, int n_out);
enum hsd_status hsd_fwd_gnorm(struct hsd_fwd *f, void *out, const void *in, const void *g,
                              const void *b, int n, int hw, int c, int groups, float eps,
                              int silu);

#endif
