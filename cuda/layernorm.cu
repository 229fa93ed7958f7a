// layer_norm: torch.nn.LayerNorm over the last dim of [m, c], fp16 in/out,
// statistics in fp32 from two passes (mean, then squared deviations: no
// cancellation however large the mean), torch's apply expression
// y = (x * rstd + (-mean * rstd)) * gamma + beta (LayerNormKernelImpl); the
// op of host/backend/cpu/cpu_norm.c (the reference truth).
//
// Versions (registry: cuda/registry.cu, table layer_norm):
//   v1 hsd_layer_norm_v1_warp  REFERENCE and PRODUCTION. One warp per row,
//       8 rows per block; three passes over the row (sum, squared
//       deviations, apply), the second and third from L1 (SD rows: 640 B
//       to 2.5 KB). 16-byte accesses when c % 8 == 0 and the pointers are
//       aligned, element-wise otherwise (any c).
//       Status: compiled (sm_80, sm_90); passes the CPU emulation on every
//       test case; not yet run on a GPU.
//
// How to test: ctest --test-dir build -R test_cuda_norm (needs a GPU).
// How to time: build/cuda/bench_kernels --op layer_norm.
#include <math.h>
#include <stdint.h>

#include "common.cuh"
#include "layernorm.cuh"

namespace {

constexpr int kWarps = 8;

template <bool VEC>
__global__ void __launch_bounds__(kWarps * 32)
    hsd_layer_norm_v1_warp_kernel(const hsd_layer_norm_params p) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const long long row = (long long)blockIdx.x * kWarps + warp;
    if (row >= p.m) return;  // whole warp; no block barrier in this kernel
    const int c = p.c;
    const __half *x = (const __half *)p.in + (size_t)row * c;
    __half *y = (__half *)p.out + (size_t)row * c;
    const __half *gamma = (const __half *)p.gamma, *beta = (const __half *)p.beta;
    float s = 0.0f;
    if (VEC) {
        for (int v = lane; v < c / 8; v += 32) {
            hsd_h8 t;
            t.u = reinterpret_cast<const uint4 *>(x)[v];
#pragma unroll
            for (int e = 0; e < 8; e++) s += __half2float(t.h[e]);
        }
    } else {
        for (int j = lane; j < c; j += 32) s += __half2float(x[j]);
    }
    const float mean = hsd_warp_sum(s) / (float)c;
    float ss = 0.0f;
    if (VEC) {
        for (int v = lane; v < c / 8; v += 32) {
            hsd_h8 t;
            t.u = reinterpret_cast<const uint4 *>(x)[v];
#pragma unroll
            for (int e = 0; e < 8; e++) {
                const float dv = __half2float(t.h[e]) - mean;
                ss = fmaf(dv, dv, ss);
            }
        }
    } else {
        for (int j = lane; j < c; j += 32) {
            const float dv = __half2float(x[j]) - mean;
            ss = fmaf(dv, dv, ss);
        }
    }
    const float var = hsd_warp_sum(ss) / (float)c;
    const float rstd = 1.0f / sqrtf(var + p.eps);
    const float shift = -mean * rstd;
    if (VEC) {
        for (int v = lane; v < c / 8; v += 32) {
            hsd_h8 t, g, bt, o;
            t.u = reinterpret_cast<const uint4 *>(x)[v];
            g.u = reinterpret_cast<const uint4 *>(gamma)[v];
            bt.u = reinterpret_cast<const uint4 *>(beta)[v];
#pragma unroll
            for (int e = 0; e < 8; e++) {
                const float n = fmaf(__half2float(t.h[e]), rstd, shift);
                o.h[e] = __float2half_rn(fmaf(n, __half2float(g.h[e]), __half2float(bt.h[e])));
            }
            reinterpret_cast<uint4 *>(y)[v] = o.u;
        }
    } else {
        for (int j = lane; j < c; j += 32) {
            const float n = fmaf(__half2float(x[j]), rstd, shift);
            y[j] = __float2half_rn(fmaf(n, __half2float(gamma[j]), __half2float(beta[j])));
        }
    }
}

}  // namespace

extern "C" enum hsd_status hsd_layer_norm_v1_warp(const struct hsd_layer_norm_params *p,
                                                  cudaStream_t stream) {
    const char *name = "hsd_layer_norm_v1_warp";
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: NULL params", name);
    if (p->m <= 0 || p->c <= 0) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: dims must be positive (m=%d c=%d)", name, p->m,
                        p->c);
    }
    if (!p->out || !p->in || !p->gamma || !p->beta) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: out, in, gamma, beta must be non-NULL", name);
    }
    if (!(p->eps >= 0.0f)) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: eps must be >= 0", name);
    const bool vec = p->c % 8 == 0 && hsd_aligned16(p->in) && hsd_aligned16(p->out) &&
                     hsd_aligned16(p->gamma) && hsd_aligned16(p->beta);
    const unsigned blocks = (unsigned)((p->m + kWarps - 1) / kWarps);
    auto kernel = vec ? hsd_layer_norm_v1_warp_kernel<true> : hsd_layer_norm_v1_warp_kernel<false>;
    HSD_LAUNCH(kernel, blocks, kWarps * 32, 0, stream, *p);
    HSD_CUDA_CHECK_LAUNCH(name);
    return HSD_OK;
}
