// Helpers shared by the kernel files of cuda/ (not an op): launch checks,
// 16-byte fp16 vectors, and the PTX wrappers for the tensor-core path
// (cp.async, ldmatrix, mma.sync m16n8k16). C++ only (nvcc), never included
// by C code.
//
// Fragment layouts of mma.sync.m16n8k16.row.col.f32.f16.f16.f32 (PTX ISA,
// "Matrix fragments for mma.m16n8k16 with floating point type"), with
// g = lane / 4 and t = lane % 4. Every kernel's index math is derived from
// these three lines:
//   A 16x16 (row-major [m][k]): a[0] = (m=g,   k=2t..2t+1)  a[1] = (m=g+8, k=2t..2t+1)
//                               a[2] = (m=g,   k=2t+8..+9)  a[3] = (m=g+8, k=2t+8..+9)
//   B 16x8 (stored [n][k]):     b[0] = (k=2t..2t+1, n=g)    b[1] = (k=2t+8..+9, n=g)
//   C 16x8 fp32:                c[0..1] = (m=g, n=2t..2t+1) c[2..3] = (m=g+8, n=2t..2t+1)
// ldmatrix.x4: lanes 8i..8i+7 give the row addresses of 8x8 matrix i, and
// register i of lane l receives row l/4, columns 2(l%4)..+1 of matrix i
// (.trans: rows 2(l%4)..+1 of column l/4), so one ldmatrix.x4 yields a
// whole A fragment or two B fragments.
#ifndef HSD_CUDA_COMMON_CUH
#define HSD_CUDA_COMMON_CUH

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#include "core/status.h"

// docs/conventions.md "Errors": the last error is checked after every launch. Returns from
// the calling launcher with HSD_ERR_DEVICE naming the kernel.
#define HSD_CUDA_CHECK_LAUNCH(name)                                                        \
    do {                                                                                   \
        cudaError_t e_ = cudaGetLastError();                                               \
        if (e_ != cudaSuccess)                                                             \
            return hsd_fail(HSD_ERR_DEVICE, "%s: launch failed: %s", name,                 \
                            cudaGetErrorString(e_));                                       \
    } while (0)

// Any runtime call: returns HSD_ERR_DEVICE with the call's text.
#define HSD_CUDA_TRY(call)                                                                 \
    do {                                                                                   \
        cudaError_t e_ = (call);                                                           \
        if (e_ != cudaSuccess)                                                             \
            return hsd_fail(HSD_ERR_DEVICE, "%s: %s", #call, cudaGetErrorString(e_));      \
    } while (0)

__host__ __device__ static inline bool hsd_aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }
__host__ __device__ static inline bool hsd_aligned4(const void *p) { return ((uintptr_t)p & 3u) == 0; }

// Eight fp16 values moved as one 16-byte access.
union hsd_h8 {
    uint4 u;
    __half2 h2[4];
    __half h[8];
};

#ifdef HSD_CUDA_EMULATE
// Host emulation (tests only): cuda/emulate.cuh, force-included before
// this file, provides hsd_cp_async16, hsd_cp_async_commit/wait,
// hsd_ldmatrix_x4(_trans), hsd_mma_16816, HSD_LAUNCH and HSD_DYNAMIC_SMEM.
#else
// kernel<<<grid, block, smem, stream>>>(args...), written so that the host
// emulation can run the same launcher (a template kernel goes through a
// local `auto k = kernel<A, B>;` first: a macro argument cannot hold a comma).
#define HSD_LAUNCH(kernel, grid, block, smem, stream, ...) \
    kernel<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__)
// The block's dynamic shared memory as `unsigned char name[]`, 16-byte aligned.
#define HSD_DYNAMIC_SMEM(name) extern __shared__ __align__(16) unsigned char name[]

__device__ __forceinline__ uint32_t hsd_smem_u32(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

// 16-byte global -> shared copy; when `pred` is false nothing is read and
// the 16 bytes are zero-filled (src-size 0), so padding columns, rows past
// the tensor and taps in the convolution's zero padding all come from here.
// `src` must still be a valid global address.
__device__ __forceinline__ void hsd_cp_async16(void *smem, const void *src, bool pred) {
    const int n = pred ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(hsd_smem_u32(smem)),
                 "l"(src), "r"(n)
                 : "memory");
}
__device__ __forceinline__ void hsd_cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}
// Waits until at most N of this thread's committed groups are pending.
template <int N>
__device__ __forceinline__ void hsd_cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void hsd_ldmatrix_x4(uint32_t (&r)[4], const void *smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(hsd_smem_u32(smem))
                 : "memory");
}
__device__ __forceinline__ void hsd_ldmatrix_x4_trans(uint32_t (&r)[4], const void *smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(hsd_smem_u32(smem))
                 : "memory");
}

// c += a * b on the tensor cores, fp16 inputs, fp32 accumulators.
__device__ __forceinline__ void hsd_mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                              uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

#endif  // HSD_CUDA_EMULATE

// Two floats rounded to one f16x2 register, `lo` in the low half (the
// element with the smaller column index in every fragment above).
__device__ __forceinline__ uint32_t hsd_pack_half2(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    uint32_t u;
    memcpy(&u, &h, sizeof u);
    return u;
}

__device__ __forceinline__ float hsd_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float hsd_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// torch's silu, x / (1 + exp(-x)), in fp32 (accurate expf, not __expf).
__device__ __forceinline__ float hsd_silu(float x) { return x / (1.0f + expf(-x)); }

// Exact (erf) GELU, torch F.gelu(approximate="none"): x * Phi(x). normcdff
// is Phi with its tail accurate in relative terms, so negative x keep their
// precision where 0.5 * (1 + erf(x / sqrt 2)) would cancel (the CPU
// backend's gelu_erf does the same through erfc).
__device__ __forceinline__ float hsd_gelu_erf(float x) { return x * normcdff(x); }

#endif
