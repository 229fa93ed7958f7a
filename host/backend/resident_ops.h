// The resident step's two data-movement ops (backend.h slots step_gather,
// step_scatter): a request's state lives in backend memory for its whole
// cloud part (issue 10, docs/denoise_step.md "Resident state"), in a slot
// of the pipeline's pool; each step gathers the batch's items from their
// slots, runs the step ops of backend/step_ops.h and the U-Net on the
// gathered buffers, and scatters the results back. No host memory is read
// or written: a steady-state step crosses PCIe zero times.
//
// A slot (host/pipeline/resident.c), all backend memory:
// - x       fp32 [lat]: the latent, NHWC (the U-Net's layout: the step ops
//           are element-wise, so the layout changes no bit)
// - hist    fp32 [HSD_STEP_SLOTS, lat]: the sampler history (step_ops.h)
// - plan    [calls] struct hsd_step_row: every step of the request planned
//           at admission on a host copy of its sampler (cond_row/uncond_row
//           left for the gather to fill)
// - t       fp32 [calls]: the U-Net timestep of each call
// - noise   fp32 [calls, lat] or NULL: Euler a's noise of each call, drawn
//           at admission from the request's torch generator
// - cond, uncond  act [ctx]: the text embeddings (uncond NULL without CFG)
// - counter int32 [1]: the request's next call, advanced by step_scatter
//
// The batch's refs (one struct hsd_step_slot_ref per item) are written by
// the host only when the batch's membership changes.
#ifndef HSD_BACKEND_RESIDENT_OPS_H
#define HSD_BACKEND_RESIDENT_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// One batch item: its slot's buffers (backend addresses) and its U-Net
// rows in this batch. 80 bytes of 32-bit-aligned fields: uploaded raw
// (upload_f32 of hsd_step_ref_words) and read by every backend alike.
struct hsd_step_slot_ref {
    void *x;             // fp32 [lat]
    void *hist;          // fp32 [HSD_STEP_SLOTS, lat]
    const void *plan;    // [calls] struct hsd_step_row
    const void *t;       // fp32 [calls]
    const void *noise;   // fp32 [calls, lat] or NULL
    const void *cond;    // act [ctx]
    const void *uncond;  // act [ctx] or NULL (no guidance)
    void *counter;       // int32 [1]: next call, 0..calls
    int32_t cond_row;    // the item's rows in this batch's U-Net call
    int32_t uncond_row;  // -1 without guidance
    int32_t calls;       // entries of plan / t / noise
    int32_t reserved;    // 0
};

static inline size_t hsd_step_ref_words(int n) {
    return (size_t)n * (sizeof(struct hsd_step_slot_ref) / 4);
}

// For each item i (ref r, its counter c = *r.counter, c < r.calls):
//   table[i]   = r.plan[c] with cond_row / uncond_row from r
//   x[i]       = r.x;  hist[i] = r.hist, slot 0 replaced by r.noise[c]
//                when r.noise (Euler a's noise travels in slot 0)
//   t_rows[row] = r.t[c], ctx_rows[row] = r.cond / r.uncond for the
//                item's rows
// Rows no item names (a bucket's padding) are left as they are. An unused
// item (ref.x NULL: the batch has fewer requests than the bucket has rows)
// gets table row kind HSD_STEP_SKIP and nothing else, so the step ops over
// a bucket always run on `rows` items, one recorded graph per bucket. An
// item whose counter is past its calls, or whose rows are outside [0,
// rows), is an error on the CPU; a device kernel gives it a SKIP row too.
struct hsd_step_gather_params {
    void *x;          // [n, lat] fp32
    void *hist;       // [n, HSD_STEP_SLOTS, lat] fp32
    void *table;      // [n] struct hsd_step_row
    void *t_rows;     // [rows] fp32: U-Net timesteps
    void *ctx_rows;   // [rows, ctx] act: U-Net context
    const void *refs; // [n] struct hsd_step_slot_ref
    int n, rows;
    size_t lat, ctx;
};

// For each used item i: r.x = x[i], r.hist = hist[i], *r.counter += 1.
struct hsd_step_scatter_params {
    const void *x;     // [n, lat] fp32
    const void *hist;  // [n, HSD_STEP_SLOTS, lat] fp32
    const void *refs;  // [n] struct hsd_step_slot_ref
    int n;
    size_t lat;
};

// Shared parameter checks (dims, non-NULL buffers), as step_ops.h's.
enum hsd_status hsd_step_gather_check(const struct hsd_step_gather_params *p, const char *who);
enum hsd_status hsd_step_scatter_check(const struct hsd_step_scatter_params *p, const char *who);

#ifdef __cplusplus
}
#endif

#endif
