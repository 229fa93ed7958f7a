// geglu: out[m, f] = in[m, :f] * gelu(in[m, f:]) (diffusers attention.py
// GEGLU: hidden_states * F.gelu(gate), exact erf GELU), fp16 in/out, fp32
// math; the op of host/backend/cpu/cpu_eltwise.c (the reference truth).
//
// Versions (registry: cuda/registry.cu, table geglu):
//   v1 hsd_geglu_v1_vec8  REFERENCE and PRODUCTION. One thread per 8
//       outputs: two 16-byte loads (hidden, gate), one 16-byte store, grid-
//       stride; element-wise when f % 8 != 0 or a pointer is unaligned.
//       Memory-bound: 3 * m * f * 2 bytes.
//       Status: compiled (sm_80, sm_90); passes the CPU emulation on every
//       test case; not yet run on a GPU.
// Planned: fuse into the epilogue of the GEGLU projection GEMM.
//
// How to test: ctest --test-dir build -R test_cuda_eltwise (needs a GPU).
// How to time: build/cuda/bench_kernels --op geglu.
#include <stdint.h>

#include "common.cuh"
#include "geglu.cuh"

namespace {

template <bool VEC>
__global__ void __launch_bounds__(256) hsd_geglu_v1_vec8_kernel(const hsd_geglu_params p) {
    const __half *in = (const __half *)p.in;  // [m, 2f]
    __half *out = (__half *)p.out;            // [m, f]
    const size_t f = (size_t)p.f;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    if (VEC) {
        const size_t fv = f / 8, total = (size_t)p.m * fv;
        for (size_t v = (size_t)blockIdx.x * blockDim.x + threadIdx.x; v < total; v += stride) {
            const size_t r = v / fv, j = (v % fv) * 8;
            hsd_h8 hid, gate, o;
            hid.u = *reinterpret_cast<const uint4 *>(in + r * 2 * f + j);
            gate.u = *reinterpret_cast<const uint4 *>(in + r * 2 * f + f + j);
#pragma unroll
            for (int e = 0; e < 8; e++) {
                o.h[e] = __float2half_rn(__half2float(hid.h[e]) *
                                         hsd_gelu_erf(__half2float(gate.h[e])));
            }
            *reinterpret_cast<uint4 *>(out + r * f + j) = o.u;
        }
    } else {
        const size_t total = (size_t)p.m * f;
        for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
            const size_t r = i / f, j = i % f;
            out[i] = __float2half_rn(__half2float(in[r * 2 * f + j]) *
                                     hsd_gelu_erf(__half2float(in[r * 2 * f + f + j])));
        }
    }
}

}  // namespace

extern "C" enum hsd_status hsd_geglu_v1_vec8(const struct hsd_geglu_params *p,
                                             cudaStream_t stream) {
    const char *name = "hsd_geglu_v1_vec8";
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: NULL params", name);
    if (p->m <= 0 || p->f <= 0) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: dims must be positive (m=%d f=%d)", name, p->m,
                        p->f);
    }
    if (!p->out || !p->in) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: out and in must be non-NULL", name);
    const bool vec = p->f % 8 == 0 && hsd_aligned16(p->in) && hsd_aligned16(p->out);
    const size_t work = (size_t)p->m * p->f / (vec ? 8 : 1);
    size_t blocks = (work + 255) / 256;
    if (blocks > 65536) blocks = 65536;  // grid-stride beyond
    auto kernel = vec ? hsd_geglu_v1_vec8_kernel<true> : hsd_geglu_v1_vec8_kernel<false>;
    HSD_LAUNCH(kernel, (unsigned)blocks, 256, 0, stream, *p);
    HSD_CUDA_CHECK_LAUNCH(name);
    return HSD_OK;
}
