// add_bias: x[b, q, j] += v[b, j] for x [n, p, c], v [n, c], in place
// (diffusers resnet.py ResnetBlock2D: hidden_states + temb[:, :, None, None],
// the time embedding broadcast over the pixels), fp16 in/out, fp32 add
// rounded once to fp16; the op of host/backend/cpu/cpu_eltwise.c (the
// reference truth).
//
// Versions (registry: cuda/registry.cu, table add_bias):
//   v1 hsd_add_bias_v1_vec8  REFERENCE and PRODUCTION. One thread per
//       16-byte vector of x (read, add the matching 16 bytes of v, write
//       back), grid-stride. Element-wise when c % 8 != 0 or x or v is not
//       16-byte aligned. v is n*c values, L1/L2-resident: ~2 * n*p*c * 2
//       bytes of DRAM traffic.
//       Status: compiled (sm_80, sm_90); passes the CPU emulation on every
//       test case; not yet run on a GPU.
// Planned: fold into the epilogue of the ResNet block's first conv (a
// per-sample bias), which removes this pass entirely.
//
// How to test: ctest --test-dir build -R test_cuda_eltwise (needs a GPU);
// ctest --test-dir build -R test_cuda_eltwise_emulated (no GPU).
// How to time: not in bench/bench_kernels.cu yet.
#include <stdint.h>

#include "add_bias.cuh"
#include "common.cuh"

namespace {

template <bool VEC>
__global__ void __launch_bounds__(256) hsd_add_bias_v1_vec8_kernel(const hsd_add_bias_params p) {
    __half *x = (__half *)p.x;              // [n, p, c]
    const __half *v = (const __half *)p.v;  // [n, c]
    const size_t c = (size_t)p.c, pix = (size_t)p.p;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    if (VEC) {
        const size_t cv = c / 8, total = (size_t)p.n * pix * cv;
        for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
            const size_t j = (i % cv) * 8, b = i / cv / pix;
            hsd_h8 xv, bv;
            xv.u = reinterpret_cast<const uint4 *>(x)[i];
            bv.u = *reinterpret_cast<const uint4 *>(v + b * c + j);
#pragma unroll
            for (int e = 0; e < 8; e++)
                xv.h[e] = __float2half_rn(__half2float(xv.h[e]) + __half2float(bv.h[e]));
            reinterpret_cast<uint4 *>(x)[i] = xv.u;
        }
    } else {
        const size_t total = (size_t)p.n * pix * c;
        for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
            const size_t j = i % c, b = i / c / pix;
            x[i] = __float2half_rn(__half2float(x[i]) + __half2float(v[b * c + j]));
        }
    }
}

}  // namespace

extern "C" enum hsd_status hsd_add_bias_v1_vec8(const struct hsd_add_bias_params *p,
                                                cudaStream_t stream) {
    const char *name = "hsd_add_bias_v1_vec8";
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: NULL params", name);
    if (p->n <= 0 || p->p <= 0 || p->c <= 0) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: dims must be positive (n=%d p=%d c=%d)", name,
                        p->n, p->p, p->c);
    }
    if (!p->x || !p->v) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: x and v must be non-NULL", name);
    const bool vec = p->c % 8 == 0 && hsd_aligned16(p->x) && hsd_aligned16(p->v);
    const size_t elems = (size_t)p->n * p->p * p->c;
    const size_t work = vec ? elems / 8 : elems;
    size_t blocks = (work + 255) / 256;
    if (blocks > 65536) blocks = 65536;  // grid-stride beyond
    auto kernel = vec ? hsd_add_bias_v1_vec8_kernel<true> : hsd_add_bias_v1_vec8_kernel<false>;
    HSD_LAUNCH(kernel, (unsigned)blocks, 256, 0, stream, *p);
    HSD_CUDA_CHECK_LAUNCH(name);
    return HSD_OK;
}
