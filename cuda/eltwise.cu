// Elementwise ops over struct hsd_eltwise_params, fp16 in/out, fp32 math,
// each the op of host/backend/cpu/cpu_eltwise.c (the reference truth):
//   add         out = a + b
//   silu        out = a / (1 + exp(-a))                    (torch F.silu)
//   gelu        out = a * Phi(a), exact erf form           (F.gelu, approximate="none")
//   quick_gelu  out = a * sigmoid(1.702 a)                 (transformers QuickGELUActivation)
//   relu        out = max(a, 0), NaN propagated            (torch.relu)
// In place (out == a, or out == b for add) is allowed: each element is
// read and written by one thread.
//
// Versions (registry: cuda/registry.cu, tables add, silu, gelu, quick_gelu,
// relu), one templated kernel per op:
//   v1 hsd_<op>_v1_vec8  REFERENCE and PRODUCTION. 16-byte loads/stores,
//       grid-stride over count/8 vectors, the < 8 tail element-wise; all
//       element-wise when a pointer is not 16-byte aligned.
//       Status: compiled (sm_80, sm_90); passes the CPU emulation on every
//       test case; not yet run on a GPU.
//
// How to test: ctest --test-dir build -R test_cuda_eltwise (needs a GPU).
// How to time: build/cuda/bench_kernels --op silu (etc.).
#include <math.h>
#include <stdint.h>

#include "common.cuh"
#include "eltwise.cuh"

namespace {

enum class Op { add, silu, gelu, quick_gelu, relu };

template <Op OP>
__device__ __forceinline__ float apply(float a, float b) {
    if constexpr (OP == Op::add) return a + b;
    if constexpr (OP == Op::silu) return hsd_silu(a);
    if constexpr (OP == Op::gelu) return hsd_gelu_erf(a);
    if constexpr (OP == Op::quick_gelu) {
        const float y = 1.702f * a;
        return a * (1.0f / (1.0f + expf(-y)));
    }
    if constexpr (OP == Op::relu) return a != a ? a : fmaxf(a, 0.0f);
    return 0.0f;
}

template <Op OP, bool VEC>
__global__ void __launch_bounds__(256) hsd_eltwise_v1_vec8_kernel(const hsd_eltwise_params p) {
    const __half *a = (const __half *)p.a;
    const __half *b = (const __half *)p.b;  // add only
    __half *out = (__half *)p.out;
    const size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t done = 0;
    if (VEC) {
        const size_t nv = p.count / 8;
        for (size_t v = tid; v < nv; v += stride) {
            hsd_h8 x, y, o;
            x.u = reinterpret_cast<const uint4 *>(a)[v];
            if (OP == Op::add) y.u = reinterpret_cast<const uint4 *>(b)[v];
#pragma unroll
            for (int e = 0; e < 8; e++) {
                const float bv = OP == Op::add ? __half2float(y.h[e]) : 0.0f;
                o.h[e] = __float2half_rn(apply<OP>(__half2float(x.h[e]), bv));
            }
            reinterpret_cast<uint4 *>(out)[v] = o.u;
        }
        done = nv * 8;
    }
    for (size_t i = done + tid; i < p.count; i += stride) {
        const float bv = OP == Op::add ? __half2float(b[i]) : 0.0f;
        out[i] = __float2half_rn(apply<OP>(__half2float(a[i]), bv));
    }
}

template <Op OP>
enum hsd_status launch(const hsd_eltwise_params *p, cudaStream_t stream, const char *name) {
    const bool need_b = OP == Op::add;
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: NULL params", name);
    if (p->count && (!p->out || !p->a || (need_b && !p->b))) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: out, a%s must be non-NULL", name,
                        need_b ? ", b" : "");
    }
    if (p->count == 0) return HSD_OK;
    const bool vec = hsd_aligned16(p->out) && hsd_aligned16(p->a) && (!need_b || hsd_aligned16(p->b));
    const size_t work = vec ? (p->count + 7) / 8 : p->count;
    size_t blocks = (work + 255) / 256;
    if (blocks > 65536) blocks = 65536;  // grid-stride beyond
    auto kernel = vec ? hsd_eltwise_v1_vec8_kernel<OP, true> : hsd_eltwise_v1_vec8_kernel<OP, false>;
    HSD_LAUNCH(kernel, (unsigned)blocks, 256, 0, stream, *p);
    HSD_CUDA_CHECK_LAUNCH(name);
    return HSD_OK;
}

}  // namespace

extern "C" enum hsd_status hsd_add_v1_vec8(const struct hsd_eltwise_params *p, cudaStream_t s) {
    return launch<Op::add>(p, s, "hsd_add_v1_vec8");
}
extern "C" enum hsd_status hsd_silu_v1_vec8(const struct hsd_eltwise_params *p, cudaStream_t s) {
    return launch<Op::silu>(p, s, "hsd_silu_v1_vec8");
}
extern "C" enum hsd_status hsd_gelu_v1_vec8(const struct hsd_eltwise_params *p, cudaStream_t s) {
    return launch<Op::gelu>(p, s, "hsd_gelu_v1_vec8");
}
extern "C" enum hsd_status hsd_quick_gelu_v1_vec8(const struct hsd_eltwise_params *p,
                                                  cudaStream_t s) {
    return launch<Op::quick_gelu>(p, s, "hsd_quick_gelu_v1_vec8");
}
extern "C" enum hsd_status hsd_relu_v1_vec8(const struct hsd_eltwise_params *p, cudaStream_t s) {
    return launch<Op::relu>(p, s, "hsd_relu_v1_vec8");
}
