// Process-wide counts of the one-off work a new batch shape costs: planning
// passes, activation-arena growths, CUDA graph captures, conv algorithm
// timings and cuBLASLt plans. `hsd serve --warmup` does all of it at start;
// after that, serving the warmed (bucket, size) shapes leaves the counts
// unchanged, and /metrics exports them as hsd_plans_total{kind="..."}
// (docs/denoise_step.md "Warm-up").
#ifndef HSD_CORE_PLAN_STATS_H
#define HSD_CORE_PLAN_STATS_H

#include <stdint.h>

enum hsd_plan_kind {
    HSD_PLAN_UNET,           // a U-Net planning pass (a new (rows, h, w, t_ctx))
    HSD_PLAN_ARENA_GROWTH,   // the U-Net's activation arena reallocated larger
    HSD_PLAN_GRAPH_CAPTURE,  // a CUDA graph recorded
    HSD_PLAN_CONV_TUNE,      // a conv shape timed (cuDNN vs hsd)
    HSD_PLAN_GEMM_PLAN,      // a cuBLASLt plan made
    HSD_PLAN_TEXT_ARENA,     // the text encoder's activation arena reallocated larger
    HSD_PLAN_KINDS
};

void hsd_plan_stats_add(enum hsd_plan_kind k);
uint64_t hsd_plan_stats_get(enum hsd_plan_kind k);
// "unet_plan", "arena_growth", ...: the metric's kind label.
const char *hsd_plan_kind_name(enum hsd_plan_kind k);

#endif
