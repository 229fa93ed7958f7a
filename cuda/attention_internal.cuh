// Shared by the attention kernel files (attention.cu: v1, v2;
// attention_wide.cu: v3): parameter validation, the 16-byte tile loader and
// the I/O path flags. C++ (nvcc or the host emulation) only; not an op.
#ifndef HSD_CUDA_ATTENTION_INTERNAL_CUH
#define HSD_CUDA_ATTENTION_INTERNAL_CUH

#include <math.h>

#include "backend/backend.h"
#include "common.cuh"

// Shared validation: the CPU backend's rules, plus the grid limits.
static inline enum hsd_status attention_check(const hsd_attention_params *p, const char *name) {
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: NULL params", name);
    if (p->n <= 0 || p->heads <= 0 || p->d <= 0 || p->t_q <= 0 || p->t_kv <= 0) {
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "%s: dims must be positive (n=%d heads=%d d=%d t_q=%d t_kv=%d)", name,
                        p->n, p->heads, p->d, p->t_q, p->t_kv);
    }
    const long hd = (long)p->heads * p->d;
    if (p->ldq < hd || p->ldk < hd || p->ldv < hd || p->ldo < hd) {
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "%s: token strides ldq=%d ldk=%d ldv=%d ldo=%d must be >= heads*d=%ld",
                        name, p->ldq, p->ldk, p->ldv, p->ldo, hd);
    }
    if (!p->out || !p->q || !p->k || !p->v) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: out, q, k, v must be non-NULL", name);
    }
    if (!isfinite(p->scale)) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: scale not finite", name);
    if (p->causal && p->t_q != p->t_kv) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: causal needs t_q == t_kv (got t_q=%d t_kv=%d)",
                        name, p->t_q, p->t_kv);
    }
    if (p->heads > 65535 || p->n > 65535) {
        return hsd_fail(HSD_ERR_UNSUPPORTED, "%s: heads=%d or n=%d over the grid limit 65535",
                        name, p->heads, p->n);
    }
    return HSD_OK;
}

constexpr int kV2Warps = 4;
constexpr int kV2Threads = kV2Warps * 32;
constexpr int kV2BM = 16 * kV2Warps;  // query rows per block

enum : int {
    kV2VecLoad = 1,   // q, k, v rows load as 16-byte chunks (d, strides, pointers % 8 halves)
    kV2Half2Out = 2,  // out rows store as half2 (d, ldo even, out 4-byte aligned)
};

// Stages rows [0, R) x columns [0, D) of a head into `s` (row stride LDS
// halves) from `src` (row 0, head offset applied; row r at src + r*ld):
// rows >= rows_valid and columns >= d become zeros.
template <int R, int D, int LDS>
static __device__ __forceinline__ void v2_load_tile(__half *s, const __half *src, long ld, int rows_valid,
                                             int d, bool vec) {
    constexpr int kChunks = D / 8;  // 16-byte chunks per row
    for (int c = threadIdx.x; c < R * kChunks; c += kV2Threads) {
        const int r = c / kChunks, col = (c % kChunks) * 8;
        __half *dst = s + r * LDS + col;
        const __half *g = src + (long)r * ld + col;
        if (vec) {
            // d % 8 == 0 here, so col < d means the whole chunk is inside.
            const bool ok = r < rows_valid && col < d;
            hsd_cp_async16(dst, ok ? g : src, ok);
        } else {
            hsd_h8 x;
#pragma unroll
            for (int e = 0; e < 8; e++) {
                x.h[e] = (r < rows_valid && col + e < d) ? g[e] : __float2half_rn(0.0f);
            }
            *reinterpret_cast<uint4 *>(dst) = x.u;
        }
    }
}

// kV2VecLoad when q/k/v rows load as 16-byte chunks, kV2Half2Out when out
// rows store as half2.
static inline int attention_io_flags(const hsd_attention_params *p) {
    int flags = 0;
    if (p->d % 8 == 0 && p->ldq % 8 == 0 && p->ldk % 8 == 0 && p->ldv % 8 == 0 &&
        hsd_aligned16(p->q) && hsd_aligned16(p->k) && hsd_aligned16(p->v)) {
        flags |= kV2VecLoad;
    }
    if (p->d % 2 == 0 && p->ldo % 2 == 0 && hsd_aligned4(p->out)) flags |= kV2Half2Out;
    return flags;
}

typedef void (*attention_kernel_fn)(const hsd_attention_params, int);

// Launches a tiled kernel: one block per `bm` query rows x head x sample,
// `smem` bytes of dynamic shared memory (over 48 KB needs the opt-in).
static inline enum hsd_status attention_launch(attention_kernel_fn kernel, size_t smem, int bm,
                                               int threads, const hsd_attention_params *p,
                                               int flags, cudaStream_t stream, const char *name) {
    if (smem > 48 * 1024) {
        HSD_CUDA_TRY(
            cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    }
    const dim3 grid((unsigned)((p->t_q + bm - 1) / bm), (unsigned)p->heads, (unsigned)p->n);
    HSD_LAUNCH(kernel, grid, threads, smem, stream, *p, flags);
    HSD_CUDA_CHECK_LAUNCH(name);
    return HSD_OK;
}

#endif
