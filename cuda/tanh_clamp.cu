// tanh_clamp: out = tanh(in / limit) * limit over count elements (diffusers
// autoencoders/vae.py DecoderTiny.forward: torch.tanh(x / 3) * 3, same
// order), fp16 in/out, fp32 math (accurate tanhf, IEEE division), rounded
// once to fp16; the op of host/backend/cpu/cpu_vae_ops.c (the reference
// truth). In place (out == in) is allowed: each element is read and written
// by one thread.
//
// Versions (registry: cuda/registry.cu, table tanh_clamp):
//   v1 hsd_tanh_clamp_v1_vec8  REFERENCE and PRODUCTION. 16-byte loads/
//       stores, grid-stride over count/8 vectors, the < 8 tail element-
//       wise; all element-wise when in or out is not 16-byte aligned.
//       Memory-bound: 2 * count * 2 bytes (latents only: n*4*h*w values).
//       Status: compiled (sm_80, sm_90); passes the CPU emulation on every
//       test case; not yet run on a GPU.
//
// How to test: ctest --test-dir build -R test_cuda_eltwise (needs a GPU);
// ctest --test-dir build -R test_cuda_eltwise_emulated (no GPU).
// How to time: not in bench/bench_kernels.cu yet.
#include <math.h>
#include <stdint.h>

#include "common.cuh"
#include "tanh_clamp.cuh"

namespace {

__device__ __forceinline__ float soft_clamp(float x, float lim) { return tanhf(x / lim) * lim; }

template <bool VEC>
__global__ void __launch_bounds__(256) hsd_tanh_clamp_v1_vec8_kernel(const hsd_tanh_clamp_params p) {
    const __half *in = (const __half *)p.in;  // [count]
    __half *out = (__half *)p.out;            // [count], may be in
    const float lim = p.limit;
    const size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t done = 0;
    if (VEC) {
        const size_t nv = p.count / 8;
        for (size_t v = tid; v < nv; v += stride) {
            hsd_h8 x;
            x.u = reinterpret_cast<const uint4 *>(in)[v];
#pragma unroll
            for (int e = 0; e < 8; e++) x.h[e] = __float2half_rn(soft_clamp(__half2float(x.h[e]), lim));
            reinterpret_cast<uint4 *>(out)[v] = x.u;
        }
        done = nv * 8;
    }
    for (size_t i = done + tid; i < p.count; i += stride)
        out[i] = __float2half_rn(soft_clamp(__half2float(in[i]), lim));
}

}  // namespace

extern "C" enum hsd_status hsd_tanh_clamp_v1_vec8(const struct hsd_tanh_clamp_params *p,
                                                  cudaStream_t stream) {
    const char *name = "hsd_tanh_clamp_v1_vec8";
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: NULL params", name);
    if (!(p->limit > 0.0f) || !isfinite(p->limit)) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: limit %g must be positive and finite", name,
                        (double)p->limit);
    }
    if (p->count && (!p->out || !p->in)) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: out, in must be non-NULL", name);
    }
    if (p->count == 0) return HSD_OK;
    const bool vec = hsd_aligned16(p->out) && hsd_aligned16(p->in);
    const size_t work = vec ? (p->count + 7) / 8 : p->count;
    size_t blocks = (work + 255) / 256;
    if (blocks > 65536) blocks = 65536;  // grid-stride beyond
    auto kernel = vec ? hsd_tanh_clamp_v1_vec8_kernel<true> : hsd_tanh_clamp_v1_vec8_kernel<false>;
    HSD_LAUNCH(kernel, (unsigned)blocks, 256, 0, stream, *p);
    HSD_CUDA_CHECK_LAUNCH(name);
    return HSD_OK;
}
