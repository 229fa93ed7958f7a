// CPU fp32 backend: the reference truth every CUDA kernel is tested
// against (docs/architecture.md §4). This file holds creation, memory and the op table;
// each op lives in its own file (cpu_conv2d.c, cpu_linear.c, cpu_norm.c,
// cpu_attention.c, cpu_eltwise.c, cpu_embed.c, cpu_vae_ops.c, cpu_step.c).
//
// Test: ctest -R cpu_ops (tests/unit/test_cpu_ops.c, naive double references).
// Time: build/bench_cpu_ops (bench/bench_cpu_ops.c, GFLOP/s and % of peak).
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend/cpu/cpu_internal.h"
#include "core/status.h"

void *hsd_cpu_aligned_alloc(size_t bytes) {
    // aligned_alloc wants a multiple of the alignment; 0 bytes still gets a
    // unique pointer so callers can treat NULL as failure.
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes) return NULL;
    return aligned_alloc(64, rounded ? rounded : 64);
}

float *hsd_cpu_scratch(struct hsd_backend *be, size_t bytes) {
    struct hsd_cpu *cpu = be->impl;
    if (bytes <= cpu->scratch_bytes) return cpu->scratch;
    free(cpu->scratch);
    cpu->scratch = hsd_cpu_aligned_alloc(bytes);
    cpu->scratch_bytes = cpu->scratch ? bytes : 0;
    if (!cpu->scratch) {
        hsd_fail(HSD_ERR_NOMEM, "cpu backend: cannot allocate %zu bytes of scratch", bytes);
    }
    return cpu->scratch;
}

int hsd_cpu_gemm_prefill(float *restrict out, const float *restrict bias,
                         const float *residual, size_t rows, size_t cols, int threads) {
    if (!bias && !residual) return 0;
#pragma omp parallel for num_threads(threads) schedule(static) if (rows * cols > 32768)
    for (size_t r = 0; r < rows; r++) {
        float *restrict o = out + r * cols;
        const float *res = residual ? residual + r * cols : NULL;
        if (res == o) {
            // residual may be `out` itself (an in-place skip connection).
            if (bias)
                for (size_t c = 0; c < cols; c++) o[c] += bias[c];
        } else if (bias && res) {
            const float *restrict rr = res;
            for (size_t c = 0; c < cols; c++) o[c] = bias[c] + rr[c];
        } else if (bias) {
            memcpy(o, bias, cols * sizeof *o);
        } else {
            memcpy(o, res, cols * sizeof *o);
        }
    }
    return 1;
}

static void cpu_destroy(struct hsd_backend *be) {
    struct hsd_cpu *cpu = be->impl;
    if (cpu) {
        free(cpu->scratch);
        hsd_cpu_bf16_destroy(cpu);
        hsd_cpu_weights_destroy(cpu);
    }
    free(cpu);
    free(be);
}

static void *cpu_alloc(struct hsd_backend *be, size_t bytes) {
    void *p = hsd_cpu_aligned_alloc(bytes);
    if (!p) hsd_fail(HSD_ERR_NOMEM, "cpu backend: cannot allocate %zu bytes", bytes);
    return p;
}

static void cpu_free(struct hsd_backend *be, void *p) {
    // A weight_view buffer may be borrowed from a file mapping: the
    // registry frees what it owns. A bf16 copy made of it goes too, so a
    // later buffer at the same address is not read through a stale copy.
    if (p && ((struct hsd_cpu *)be->impl)->bf16c) hsd_cpu_bf16_forget(be, p);
    if (p && !hsd_cpu_weight_release(be, p)) free(p);
}

static enum hsd_status cpu_upload(struct hsd_backend *be, void *dst, const float *src,
                                  size_t count) {
    if (count && (!dst || !src)) return hsd_fail(HSD_ERR_INVALID_ARG, "upload: NULL buffer");
    if (count) {
        memcpy(dst, src, count * sizeof(float));
        hsd_xfer_up(&be->xfer, count * sizeof(float));
    }
    return HSD_OK;
}

static enum hsd_status cpu_download(struct hsd_backend *be, float *dst, const void *src,
                                    size_t count) {
    if (count && (!dst || !src)) return hsd_fail(HSD_ERR_INVALID_ARG, "download: NULL buffer");
    if (count) {
        memcpy(dst, src, count * sizeof(float));
        hsd_xfer_down(&be->xfer, count * sizeof(float));
    }
    return HSD_OK;
}

static enum hsd_status cpu_upload_f32(struct hsd_backend *be, void *dst, const float *src,
                                      size_t count) {
    return cpu_upload(be, dst, src, count);  // the CPU backend's elements are fp32 already
}

static enum hsd_status cpu_download_f32(struct hsd_backend *be, float *dst, const void *src,
                                        size_t count) {
    return cpu_download(be, dst, src, count);  // fp32 both sides
}

static void cpu_discard(struct hsd_backend *be, void *p, size_t bytes) {
    // Whole pages inside the range only: the rest of a page at either end
    // may belong to another allocation.
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)p + page - 1) & ~(page - 1);
    uintptr_t hi = ((uintptr_t)p + bytes) & ~(page - 1);
    if (p && hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

static enum hsd_status cpu_synchronize(struct hsd_backend *be) { return HSD_OK; }

static const struct hsd_backend_ops k_cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_upload,
    .download = cpu_download,
    .upload_f32 = cpu_upload_f32,
    .download_f32 = cpu_download_f32,
    .synchronize = cpu_synchronize,
    .discard = cpu_discard,
    .weight_view = hsd_cpu_weight_view,
    .conv2d = hsd_cpu_conv2d,
    .linear = hsd_cpu_linear,
    .group_norm = hsd_cpu_group_norm,
    .layer_norm = hsd_cpu_layer_norm,
    .attention = hsd_cpu_attention,
    .geglu = hsd_cpu_geglu,
    .upsample_nearest2x = hsd_cpu_upsample_nearest2x,
    .concat_channels = hsd_cpu_concat_channels,
    .add_bias = hsd_cpu_add_bias,
    .add = hsd_cpu_add,
    .silu = hsd_cpu_silu,
    .gelu = hsd_cpu_gelu,
    .quick_gelu = hsd_cpu_quick_gelu,
    .relu = hsd_cpu_relu,
    .tanh_clamp = hsd_cpu_tanh_clamp,
    .timestep_embedding = hsd_cpu_timestep_embedding,
    .step_input = hsd_cpu_step_input,
    .cfg_combine = hsd_cpu_cfg_combine,
    .sampler_step = hsd_cpu_sampler_step,
    .lora = hsd_cpu_lora,
    .step_gather = hsd_cpu_step_gather,
    .step_scatter = hsd_cpu_step_scatter,
};

void hsd_cpu_blas_threads(const struct hsd_backend *be) {
    if (omp_get_max_threads() != be->threads) omp_set_num_threads(be->threads);
}

enum hsd_status hsd_backend_cpu_create(struct hsd_backend **out, int threads) {
    if (!out) return hsd_fail(HSD_ERR_INVALID_ARG, "cpu backend: NULL output pointer");
    *out = NULL;
    struct hsd_backend *be = calloc(1, sizeof *be);
    struct hsd_cpu *cpu = calloc(1, sizeof *cpu);
    if (!be || !cpu) {
        free(be);
        free(cpu);
        return hsd_fail(HSD_ERR_NOMEM, "cpu backend: out of memory");
    }
    enum hsd_status s = hsd_cpu_weights_init(cpu);
    if (s) {
        free(be);
        free(cpu);
        return s;
    }
    if (threads <= 0) threads = omp_get_num_procs();
    // The OpenMP build of OpenBLAS sizes its own parallel regions from this;
    // it is process-wide state, like OMP_NUM_THREADS.
    openblas_set_num_threads(threads);
    be->ops = &k_cpu_ops;
    be->act_size = sizeof(float);
    be->threads = threads;
    be->kind = HSD_BACKEND_CPU;
    be->device = -1;
    snprintf(be->desc, sizeof be->desc, "cpu (%d threads)", threads);
    be->impl = cpu;
    *out = be;
    return HSD_OK;
}
