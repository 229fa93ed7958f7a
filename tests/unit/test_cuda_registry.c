// The kernel registry's invariants (cuda/registry.cu), checked without a
// GPU: every op table has exactly one production and at least one
// reference row, rows are named hsd_..._v<N>_<what> with unique names,
// a launcher, a status line and min_arch >= 80; the production entry
// point's row is the flagged one; sm_90a rows run on sm_90 only.
#include <stdio.h>
#include <string.h>

#include "registry.h"
#include "testutil.h"

static int has_version_tag(const char *name) {
    // "_v" followed by digits and "_".
    for (const char *s = strstr(name, "_v"); s; s = strstr(s + 1, "_v")) {
        const char *t = s + 2;
        if (*t < '0' || *t > '9') continue;
        while (*t >= '0' && *t <= '9') t++;
        if (*t == '_' && t[1]) return 1;
    }
    return 0;
}

static int g_rows;
static const char *g_names[256];

static void check_info(const char *op, const struct hsd_cuda_kernel_info *info, int has_launch) {
    CHECKF(info->name && strncmp(info->name, "hsd_", 4) == 0, "%s: name %s", op, info->name);
    CHECKF(has_version_tag(info->name), "%s: %s lacks _v<N>_<what>", op, info->name);
    CHECKF(has_launch, "%s: %s has no launcher", op, info->name);
    CHECKF(info->status && info->status[0], "%s: %s has no status", op, info->name);
    CHECKF(info->what && info->what[0], "%s: %s has no description", op, info->name);
    CHECKF(info->min_arch >= 80, "%s: %s min_arch %d", op, info->name, info->min_arch);
    if (info->flags & HSD_CUDA_NEEDS_SM90A) {
        CHECK(hsd_cuda_kernel_runs_on(info, 90) && !hsd_cuda_kernel_runs_on(info, 100));
        CHECKF(!(info->flags & (HSD_CUDA_PRODUCTION | HSD_CUDA_REFERENCE)),
               "%s: sm_90a-only %s cannot be production or reference (A100s run the table too)",
               op, info->name);
    }
    CHECKF(!((info->flags & HSD_CUDA_FALLBACK) && (info->flags & HSD_CUDA_NEEDS_SM90A)),
           "%s: sm_90a-only %s cannot be a fallback (A100s run it too)", op, info->name);
    CHECKF(!((info->flags & HSD_CUDA_FALLBACK) &&
             (info->flags & (HSD_CUDA_PRODUCTION | HSD_CUDA_REFERENCE))),
           "%s: %s is a fallback and production/reference", op, info->name);
    for (int i = 0; i < g_rows; i++) CHECKF(strcmp(g_names[i], info->name) != 0, "duplicate %s", info->name);
    if (g_rows < 256) g_names[g_rows++] = info->name;
    printf("%-20s %-34s %s%s%s%s%s sm_%d  %s\n", op, info->name,
           info->flags & HSD_CUDA_PRODUCTION ? "production " : "",
           info->flags & HSD_CUDA_REFERENCE ? "reference " : "",
           info->flags & HSD_CUDA_EXPERIMENTAL ? "experimental " : "",
           info->flags & HSD_CUDA_FALLBACK ? "fallback " : "",
           info->flags & HSD_CUDA_NEEDS_SM90A ? "sm90a " : "", info->min_arch, info->status);
}

#define CHECK_OP(op, params)                                                                  \
    do {                                                                                      \
        int count = 0, prod = 0, ref = 0;                                                     \
        const struct hsd_cuda_##op##_entry *t = hsd_cuda_##op##_table(&count);                \
        CHECKF(t && count > 0, "%s: empty table", #op);                                       \
        for (int i = 0; i < count; i++) {                                                     \
            check_info(#op, &t[i].info, t[i].launch != NULL);                                 \
            prod += (t[i].info.flags & HSD_CUDA_PRODUCTION) != 0;                             \
            ref += (t[i].info.flags & HSD_CUDA_REFERENCE) != 0;                               \
        }                                                                                     \
        CHECKF(prod == 1, "%s: %d production rows", #op, prod);                               \
        CHECKF(ref >= 1, "%s: no reference row", #op);                                        \
        const struct hsd_cuda_##op##_entry *pe = hsd_cuda_##op##_production();                 \
        CHECKF(pe && (pe->info.flags & HSD_CUDA_PRODUCTION), "%s: production()", #op);        \
        CHECKF(hsd_cuda_##op(NULL, 0) == HSD_ERR_INVALID_ARG, "%s: NULL params accepted", #op); \
    } while (0);

int main(void) {
    HSD_CUDA_OPS(CHECK_OP)
    return hsd_test_finish();
}
