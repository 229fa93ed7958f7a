// LoRA in hsd bench unet (--loras K --lora-rank R): the unfused way hsd
// serves them (K random adapters attached, batch row b choosing adapter
// b % K) and, for comparison, what the fused way pays per switch: merging
// one adapter into every targeted weight (W += (alpha/r) B A: one
// [n_out, r] x [r, k] GEMM and an add over W per layer), done again to
// unmerge. bench/RESULTS.md "LoRA" records both.
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cmd_bench_lora.h"
#include "models/lora.h"

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

enum hsd_status hsd_bench_lora_attach(struct hsd_unet *u, int k, int rank, int rows,
                                      struct hsd_lora_file **file) {
    *file = NULL;
    if (k <= 0) return HSD_OK;
    enum hsd_status s = hsd_unet_lora_random(file, u, rank, 42);
    for (int i = 0; i < k && !s; i++) {
        int a;
        s = hsd_unet_lora_attach(u, *file, "U-Net", &a);
    }
    float *scale = s ? NULL : calloc((size_t)rows * k, sizeof *scale);
    if (!s && !scale) s = hsd_fail(HSD_ERR_NOMEM, "out of memory");
    for (int b = 0; !s && b < rows; b++) scale[(size_t)b * k + b % k] = 1.0f;
    if (!s) s = hsd_unet_lora_select(u, scale, rows);
    free(scale);
    return s;
}

double hsd_bench_lora_merge_ms(const struct hsd_lora_file *f) {
    size_t cap = 0;
    for (int i = 0; i < f->n_layers; i++) {
        size_t n = (size_t)f->layers[i].n_out * f->layers[i].k;
        if (n > cap) cap = n;
    }
    float *w = calloc(cap ? cap : 1, sizeof *w);
    if (!w) return -1;
    double t0 = now_ms();
    for (int i = 0; i < f->n_layers; i++) {
        const struct hsd_lora_layer *ly = &f->layers[i];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ly->n_out, ly->k, ly->r,
                    ly->alpha / (float)ly->r, ly->up, ly->r, ly->down, ly->k, 1.0f, w, ly->k);
    }
    double ms = now_ms() - t0;
    free(w);
    return ms;
}
