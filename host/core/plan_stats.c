#include "core/plan_stats.h"

#include <stdatomic.h>

static _Atomic uint64_t g_count[HSD_PLAN_KINDS];

void hsd_plan_stats_add(enum hsd_plan_kind k) {
    if ((unsigned)k < HSD_PLAN_KINDS) atomic_fetch_add_explicit(&g_count[k], 1, memory_order_relaxed);
}

uint64_t hsd_plan_stats_get(enum hsd_plan_kind k) {
    return (unsigned)k < HSD_PLAN_KINDS ? atomic_load_explicit(&g_count[k], memory_order_relaxed)
                                        : 0;
}

const char *hsd_plan_kind_name(enum hsd_plan_kind k) {
    static const char *const names[HSD_PLAN_KINDS] = {"unet_plan", "arena_growth",
                                                      "graph_capture", "conv_tune", "gemm_plan",
                                                      "text_arena"};
    return (unsigned)k < HSD_PLAN_KINDS ? names[k] : "unknown";
}
