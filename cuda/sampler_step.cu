// The step ops around the U-Net (host/backend/step_ops.h) on the device:
// step_input (scheduler.scale_model_input, fp32 latent -> fp16 U-Net input
// rows), cfg_combine (fp16 U-Net output rows -> fp32 guided output) and
// sampler_step (scheduler.step of DDIM, Euler, Euler a, PNDM and
// DPM-Solver++ 2M on fp32 latents and history). The element maths is
// host/backend/step_math.h, the very functions the CPU backend runs,
// spelled with __fadd_rn/__fmul_rn/... on the device so nvcc fuses
// nothing: on the same inputs every output is bit-identical to the CPU
// backend (fp16 outputs: the CPU's fp32 value rounded once to nearest
// even). Per-item coefficients come in the table (struct hsd_step_row,
// computed on the host from the sampler's schedule); Euler a's noise is
// drawn on the host and read from slot 0.
//
// A row the table gets wrong (unknown kind, a U-Net row outside [0, rows),
// PNDM counters naming no slot) is skipped: its outputs are left as they
// were (the host builds the table with hsd_sampler_plan_step; the CPU
// backend rejects such a table with an error).
//
// Versions (registry: cuda/registry.cu, tables step_input, cfg_combine,
// sampler_step):
//   v1 hsd_step_input_v1_direct, hsd_cfg_combine_v1_direct,
//      hsd_sampler_step_v1_direct  REFERENCE and PRODUCTION. One thread
//      per (item, element), grid-stride, each thread reading its item's
//      64-byte row (L1/L2 hits after the first). Memory-bound and tiny
//      next to the U-Net: at SD1.5 512^2 (4x64x64 = 16384 elements per
//      item) and 32 items, the
//      sampler step moves <= 32 * 16384 * 4 B * (2 + 2 * 4 slots) = 21 MB.
//      Status: compiled (sm_80, sm_90); passes the CPU emulation
//      bit-exactly on every test case; not yet run on a GPU.
//
// How to test: ctest --test-dir build -R test_cuda_step (needs a GPU);
// ctest --test-dir build -R test_cuda_step_emulated (no GPU).
// How to time: not in bench/bench_kernels.cu yet.
#include <stdint.h>

#include "backend/step_math.h"
#include "common.cuh"
#include "sampler_step.cuh"

namespace {

constexpr int kThreads = 256;

// Grid-stride over the (item, element) pairs of p: f(row, i, e, idx) with
// idx = i * count + e, for the items whose row is sound (hsd_step_row_ok
// against `rows` U-Net rows).
template <typename Params, typename F>
__device__ __forceinline__ void each_element(const Params &p, int rows, F f) {
    const hsd_step_row *table = (const hsd_step_row *)p.table;  // [n]
    const size_t total = (size_t)p.n * p.count;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        const int i = (int)(idx / p.count);
        const hsd_step_row r = table[i];
        if (hsd_step_row_ok(&r, rows)) f(r, i, idx - (size_t)i * p.count, idx);
    }
}

__global__ void __launch_bounds__(kThreads) hsd_step_input_v1_kernel(const hsd_step_input_params p) {
    const float *x = (const float *)p.x;  // [n, count]
    __half *in = (__half *)p.in;          // [rows, count]
    each_element(p, p.rows, [&](const hsd_step_row &r, int, size_t e, size_t idx) {
        const __half v = __float2half_rn(hsd_step_input(&r, x[idx]));
        in[(size_t)r.cond_row * p.count + e] = v;
        if (r.uncond_row >= 0) in[(size_t)r.uncond_row * p.count + e] = v;
    });
}

__global__ void __launch_bounds__(kThreads) hsd_cfg_combine_v1_kernel(const hsd_cfg_combine_params p) {
    const __half *mo = (const __half *)p.model_out;  // [rows, count]
    float *eps = (float *)p.eps;                      // [n, count]
    each_element(p, p.rows, [&](const hsd_step_row &r, int, size_t e, size_t idx) {
        const float c = __half2float(mo[(size_t)r.cond_row * p.count + e]);
        eps[idx] = r.uncond_row < 0
                       ? c
                       : hsd_step_cfg(r.guidance, c,
                                      __half2float(mo[(size_t)r.uncond_row * p.count + e]));
    });
}

__global__ void __launch_bounds__(kThreads) hsd_sampler_step_v1_kernel(const hsd_sampler_step_params p) {
    float *x = (float *)p.x;                  // [n, count]
    float *slots = (float *)p.slots;          // [n, HSD_STEP_SLOTS, count]
    const float *eps = (const float *)p.eps;  // [n, count]
    // U-Net rows play no part in the step: any non-negative row passes.
    each_element(p, 0x7fffffff, [&](const hsd_step_row &r, int i, size_t e, size_t idx) {
        hsd_step_element(&r, &x[idx], eps[idx], slots + (size_t)i * HSD_STEP_SLOTS * p.count, e,
                         p.count);
    });
}

// Checks (host/backend/step_ops.c, shared with the CPU backend), then one
// thread per (item, element), grid-stride past 4096 blocks.
template <typename Params>
enum hsd_status launch(const char *name, void (*kernel)(const Params), const Params *p,
                       enum hsd_status (*check)(const Params *, const char *),
                       cudaStream_t stream) {
    enum hsd_status s = check(p, name);
    if (s) return s;
    const size_t total = (size_t)p->n * p->count;
    size_t blocks = (total + kThreads - 1) / kThreads;
    if (blocks > 4096) blocks = 4096;
    HSD_LAUNCH(kernel, (unsigned)blocks, kThreads, 0, stream, *p);
    HSD_CUDA_CHECK_LAUNCH(name);
    return HSD_OK;
}

}  // namespace

extern "C" enum hsd_status hsd_step_input_v1_direct(const struct hsd_step_input_params *p,
                                                    cudaStream_t stream) {
    return launch("hsd_step_input_v1_direct", hsd_step_input_v1_kernel, p, hsd_step_input_check,
                  stream);
}

extern "C" enum hsd_status hsd_cfg_combine_v1_direct(const struct hsd_cfg_combine_params *p,
                                                     cudaStream_t stream) {
    return launch("hsd_cfg_combine_v1_direct", hsd_cfg_combine_v1_kernel, p,
                  hsd_cfg_combine_check, stream);
}

extern "C" enum hsd_status hsd_sampler_step_v1_direct(const struct hsd_sampler_step_params *p,
                                                      cudaStream_t stream) {
    return launch("hsd_sampler_step_v1_direct", hsd_sampler_step_v1_kernel, p,
                  hsd_sampler_step_check, stream);
}
