// The resident step's data movement on the device (host/backend/resident_ops.h):
// step_gather copies each batch item's state out of its slot (latent,
// history with Euler a's noise of this call in slot 0, the planned step
// row with this batch's U-Net rows, the call's timestep and the fp16 text
// embeddings into the U-Net's context rows); step_scatter copies latent
// and history back and advances the slot's call counter. Plain copies: on
// the same inputs every output equals the CPU backend's
// (host/backend/cpu/cpu_resident.c) bit for bit.
//
// An unused item (ref.x NULL) gets table row kind HSD_STEP_SKIP and nothing
// else; so does an item whose counter is past its plan or whose rows fall
// outside the call (the CPU backend answers that with an error). The step
// ops skip SKIP rows.
//
// Versions (registry: cuda/registry.cu, tables step_gather, step_scatter):
//   v1 hsd_step_gather_v1_direct, hsd_step_scatter_v1_direct  REFERENCE and
//      PRODUCTION. Grid (blocks, items): each item's blocks stride over its
//      HSD_STEP_SLOTS * lat history elements (latent and context on the
//      way). Memory-bound: at SD1.5 512^2 and 32 items the gather moves
//      32 * (5 * 64 KB + 2 * 118 KB) = 18 MB, the scatter 10 MB, ~10 us
//      of H100 bandwidth next to a ~300 ms U-Net call.
//      Status: compiled (sm_80, sm_90); passes the CPU emulation bit-exactly
//      (test_resident_step_emulated); not yet run on a GPU.
//
// How to test: ctest --test-dir build -R test_resident_step_emulated (no GPU).
// How to time: not in bench/bench_kernels.cu yet.
#include <stdint.h>

#include "backend/step_math.h"
#include "common.cuh"
#include "step_gather.cuh"

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ bool ref_ok(const hsd_step_slot_ref &r, int32_t c, int rows) {
    return r.x != nullptr && c >= 0 && c < r.calls && r.cond_row >= 0 && r.cond_row < rows && r.uncond_row < rows &&
           (r.uncond_row < 0 || r.uncond != nullptr);
}

__global__ void __launch_bounds__(kThreads) hsd_step_gather_v1_kernel(const hsd_step_gather_params p) {
    const int i = blockIdx.y;
    const hsd_step_slot_ref r = ((const hsd_step_slot_ref *)p.refs)[i];
    const int32_t c = r.x ? *(const int32_t *)r.counter : -1;  // x NULL: an unused item
    hsd_step_row *table = (hsd_step_row *)p.table;  // [n]
    const bool ok = ref_ok(r, c, p.rows);
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        hsd_step_row row = {};
        if (ok) row = ((const hsd_step_row *)r.plan)[c];
        else row.kind = HSD_STEP_SKIP;
        row.cond_row = r.cond_row;
        row.uncond_row = r.uncond_row;
        table[i] = row;
        if (ok) {
            const float ts = ((const float *)r.t)[c];
            ((float *)p.t_rows)[r.cond_row] = ts;
            if (r.uncond_row >= 0) ((float *)p.t_rows)[r.uncond_row] = ts;
        }
    }
    if (!ok) return;
    const size_t lat = p.lat, hl = (size_t)HSD_STEP_SLOTS * lat, nc = p.ctx;
    const size_t span = hl > nc ? hl : nc;
    float *x = (float *)p.x + (size_t)i * lat;       // [lat]
    float *hist = (float *)p.hist + (size_t)i * hl;  // [SLOTS, lat]
    const float *noise = r.noise ? (const float *)r.noise + (size_t)c * lat : nullptr;
    __half *cc = (__half *)p.ctx_rows + (size_t)r.cond_row * nc;
    __half *cu = r.uncond_row >= 0 ? (__half *)p.ctx_rows + (size_t)r.uncond_row * nc : nullptr;
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < span;
         e += (size_t)gridDim.x * blockDim.x) {
        if (e < hl) hist[e] = noise && e < lat ? noise[e] : ((const float *)r.hist)[e];
        if (e < lat) x[e] = ((const float *)r.x)[e];
        if (e < nc) {
            cc[e] = ((const __half *)r.cond)[e];
            if (cu) cu[e] = ((const __half *)r.uncond)[e];
        }
    }
}

__global__ void __launch_bounds__(kThreads) hsd_step_scatter_v1_kernel(const hsd_step_scatter_params p) {
    const int i = blockIdx.y;
    const hsd_step_slot_ref r = ((const hsd_step_slot_ref *)p.refs)[i];
    if (!r.x) return;  // an unused item
    const size_t lat = p.lat, hl = (size_t)HSD_STEP_SLOTS * lat;
    const float *x = (const float *)p.x + (size_t)i * lat;
    const float *hist = (const float *)p.hist + (size_t)i * hl;
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < hl;
         e += (size_t)gridDim.x * blockDim.x) {
        ((float *)r.hist)[e] = hist[e];
        if (e < lat) ((float *)r.x)[e] = x[e];
    }
    // The counter is read by no thread of this kernel.
    if (blockIdx.x == 0 && threadIdx.x == 0) ++*(int32_t *)r.counter;
}

unsigned blocks_for(size_t elems) {
    size_t b = (elems + kThreads - 1) / kThreads;
    return (unsigned)(b > 64 ? 64 : b);
}

}  // namespace

extern "C" enum hsd_status hsd_step_gather_v1_direct(const struct hsd_step_gather_params *p,
                                                     cudaStream_t stream) {
    enum hsd_status s = hsd_step_gather_check(p, "hsd_step_gather_v1_direct");
    if (s) return s;
    const size_t hl = (size_t)HSD_STEP_SLOTS * p->lat;
    dim3 grid(blocks_for(hl > p->ctx ? hl : p->ctx), (unsigned)p->n);
    HSD_LAUNCH(hsd_step_gather_v1_kernel, grid, kThreads, 0, stream, *p);
    HSD_CUDA_CHECK_LAUNCH("hsd_step_gather_v1_direct");
    return HSD_OK;
}

extern "C" enum hsd_status hsd_step_scatter_v1_direct(const struct hsd_step_scatter_params *p,
                                                      cudaStream_t stream) {
    enum hsd_status s = hsd_step_scatter_check(p, "hsd_step_scatter_v1_direct");
    if (s) return s;
    dim3 grid(blocks_for((size_t)HSD_STEP_SLOTS * p->lat), (unsigned)p->n);
    HSD_LAUNCH(hsd_step_scatter_v1_kernel, grid, kThreads, 0, stream, *p);
    HSD_CUDA_CHECK_LAUNCH("hsd_step_scatter_v1_direct");
    return HSD_OK;
}
