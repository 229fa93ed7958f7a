// conv2d: out[n, ho, wo, co] = conv(in[n, h, w, ci], weight[co, kh, kw, ci])
// + bias[co] (+ residual[n, ho, wo, co]), NHWC fp16, fp32 accumulation; the
// op of host/backend/cpu/cpu_conv2d.c (the reference truth): zero padding
// `pad` on every side plus pad_bottom / pad_right extra rows / columns
// (diffusers Downsample2D(padding=0)), square stride, no dilation/groups.
// The residual is added in fp32 before the single rounding to fp16 and may
// be `out` itself (each element is read and then written by one thread).
//
// Versions (registry: cuda/registry.cu, table conv2d):
//   v1 hsd_conv2d_v1_direct  REFERENCE. One thread per output element
//       (co fastest, so a warp shares the input pixel), fp32 loop over
//       kh*kw*ci. Every shape; slow (no reuse beyond L1).
//       Status: compiled (sm_80, sm_90); passes the CPU emulation; not yet
//       run on a GPU.
//   v2 hsd_conv2d_v2_igemm  PRODUCTION. Implicit GEMM on mma.sync
//       m16n8k16: M = n*ho*wo output pixels, N = co, K = kh*kw*ci in the
//       weight's [kh, kw, ci] order, so B is the weight as stored ([n][k],
//       k contiguous) and a 16-byte chunk of A is 8 channels of one input
//       pixel (one tap). Block tile 128 x 64 x 32, 4 warps of 64 x 32,
//       3-stage cp.async pipeline (46 KB static shared memory, rows padded
//       to 40 halves: conflict-free ldmatrix). Taps in the padding, rows
//       past M, columns past co and k past K are zero-filled by cp.async
//       (src-size 0). Each thread gathers the same 4 A rows at every k
//       step, so their (image, iy0, ix0) are computed once. Epilogue: bias
//       and residual in fp32, half2 stores. ci % 8 != 0 (conv_in, ci = 4)
//       or unaligned pointers take an element-wise loader into the same
//       tiles. Every pad/stride/kernel size of the params is honoured.
//       Status: compiled (sm_80: 146 registers, sm_90: 128; no spills per
//       ptxas); passes the CPU emulation; not yet run on a GPU.
// Emulation (cuda/emulate.cuh): v1 and v2 match the CPU reference on every
// odd and small case (scalar and 16-byte loaders, stride 2, 5x5, pad
// (0,1,0,1), co = 3, K tails, several m/n blocks and k tiles, residual in
// place) and, at HSD_EMU_MAX_WORK=5e8, on the SD conv_in, conv_out and
// 1x1 shortcut/proj shapes (when v2 was written; the 3x3 SD shapes are 2e9-3e10
// emulated MACs: GPU only). Swapping two B fragments fails it (checked).
// Planned: split-K or a 64x64 tile for the 8x8 / 16x16 levels (M = 128 /
// 512 at batch 2 fills 20-40 blocks of 132 SMs), 16-byte epilogue stores
// through shared memory, then a wgmma (sm_90a) version.
//
// How to test: ctest --test-dir build -R test_cuda_conv2d (needs a GPU);
// test_cuda_conv2d_emulated: the same program on the CPU emulation.
// How to time: build/cuda/bench_kernels --op conv2d (cuDNN's best
// algorithm and cuBLAS on the same GEMM in the same run).
#include <stdint.h>

#include "common.cuh"
#include "conv2d.cuh"

extern "C" void hsd_conv2d_out_size(const struct hsd_conv2d_params *p, int *ho, int *wo) {
    const int hp = p->h + 2 * p->pad + p->pad_bottom, wp = p->w + 2 * p->pad + p->pad_right;
    *ho = (hp - p->kh) / p->stride + 1;
    *wo = (wp - p->kw) / p->stride + 1;
}

namespace {

// The CPU backend's rules, plus the sizes the kernels index with int.
enum hsd_status conv2d_check(const hsd_conv2d_params *p, const char *name) {
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: NULL params", name);
    if (p->n <= 0 || p->h <= 0 || p->w <= 0 || p->ci <= 0 || p->co <= 0 || p->kh <= 0 ||
        p->kw <= 0 || p->stride <= 0 || p->pad < 0 || p->pad_bottom < 0 || p->pad_right < 0) {
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "%s: bad dims n=%d h=%d w=%d ci=%d co=%d kh=%d kw=%d stride=%d pad=%d "
                        "pad_bottom=%d pad_right=%d (sizes and stride must be positive, pads >= 0)",
                        name, p->n, p->h, p->w, p->ci, p->co, p->kh, p->kw, p->stride, p->pad,
                        p->pad_bottom, p->pad_right);
    }
    const int hp = p->h + 2 * p->pad + p->pad_bottom, wp = p->w + 2 * p->pad + p->pad_right;
    if (hp < p->kh || wp < p->kw) {
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "%s: kernel %dx%d larger than padded input %dx%d (%dx%d, pad %d)", name,
                        p->kh, p->kw, hp, wp, p->h, p->w, p->pad);
    }
    if (!p->out || !p->in || !p->weight) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: out, in and weight must be non-NULL", name);
    }
    int ho, wo;
    hsd_conv2d_out_size(p, &ho, &wo);
    const long long M = (long long)p->n * ho * wo;
    const long long K = (long long)p->kh * p->kw * p->ci;
    if (M > INT32_MAX / 2 || K > INT32_MAX / 2 || M * p->co > ((long long)1 << 40)) {
        return hsd_fail(HSD_ERR_UNSUPPORTED, "%s: %lld output pixels x %lld taps too large", name,
                        M, K);
    }
    return HSD_OK;
}

// ---- v1: direct ------------------------------------------------------------

__global__ void __launch_bounds__(256)
    hsd_conv2d_v1_direct_kernel(const hsd_conv2d_params p, int ho, int wo, long long total) {
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    const int co = (int)(idx % p.co);
    const long long pix = idx / p.co;
    const int ox = (int)(pix % wo);
    const int oy = (int)(pix / wo % ho);
    const int b = (int)(pix / ((long long)wo * ho));
    const __half *in = (const __half *)p.in + (size_t)b * p.h * p.w * p.ci;
    const __half *wt = (const __half *)p.weight + (size_t)co * p.kh * p.kw * p.ci;
    float acc = 0.0f;
    for (int ky = 0; ky < p.kh; ky++) {
        const int iy = oy * p.stride - p.pad + ky;
        if (iy < 0 || iy >= p.h) continue;
        for (int kx = 0; kx < p.kw; kx++) {
            const int ix = ox * p.stride - p.pad + kx;
            if (ix < 0 || ix >= p.w) continue;
            const __half *x = in + ((size_t)iy * p.w + ix) * p.ci;
            const __half *wk = wt + ((size_t)ky * p.kw + kx) * p.ci;
            for (int c = 0; c < p.ci; c++) acc = fmaf(__half2float(x[c]), __half2float(wk[c]), acc);
        }
    }
    if (p.bias) acc += __half2float(((const __half *)p.bias)[co]);
    if (p.residual) acc += __half2float(((const __half *)p.residual)[idx]);
    ((__half *)p.out)[idx] = __float2half_rn(acc);
}

// ---- v2: implicit GEMM on mma.sync -----------------------------------------

constexpr int kBM = 128, kBN = 64, kBK = 32, kStages = 3;
constexpr int kLDS = kBK + 8;  // halves per shared row: 80 bytes, ldmatrix conflict-free
constexpr int kThreads = 128;  // 4 warps, 2 (M) x 2 (N), warp tile 64 x 32
constexpr int kARows = kBM * (kBK / 8) / kThreads;  // A chunks (rows) per thread: 4
constexpr int kBRows = kBN * (kBK / 8) / kThreads;  // B chunks per thread: 2
static_assert(kARows == 4 && kBRows == 2, "loader mapping below assumes these");

struct v2_args {
    int ho, wo, M, K;
    int vec;  // 16-byte loads: ci % 8 == 0 and in/weight 16-byte aligned
};

__global__ void __launch_bounds__(kThreads)
    hsd_conv2d_v2_igemm_kernel(const hsd_conv2d_params p, const v2_args a) {
    __shared__ __align__(16) __half As[kStages][kBM][kLDS];
    __shared__ __align__(16) __half Bs[kStages][kBN][kLDS];
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int warp_m = warp >> 1, warp_n = warp & 1;
    const int m0 = blockIdx.x * kBM, n0 = blockIdx.y * kBN;
    const __half *in = (const __half *)p.in;   // [n, h, w, ci]
    const __half *wt = (const __half *)p.weight;  // [co, K]
    const int ci = p.ci, K = a.K;

    // This thread's A rows (output pixels) and chunk column: row
    // tid/4 + 32 i, k offset 8 * (tid % 4). A pixel past M gets an iy0 far
    // outside the image, so every one of its taps reads as padding.
    const int a_col = (tid & 3) * 8;
    const __half *a_img[kARows];
    int a_iy0[kARows], a_ix0[kARows];
#pragma unroll
    for (int i = 0; i < kARows; i++) {
        const int m = m0 + (tid >> 2) + 32 * i;
        const int mm = m < a.M ? m : 0;
        const int ox = mm % a.wo, oy = mm / a.wo % a.ho, b = mm / (a.wo * a.ho);
        a_img[i] = in + (size_t)b * p.h * p.w * ci;
        a_iy0[i] = m < a.M ? oy * p.stride - p.pad : -(1 << 28);
        a_ix0[i] = ox * p.stride - p.pad;
    }
    const int b_col = (tid & 3) * 8;

    auto load_stage = [&](int stage, int k0) {
        if (a.vec) {
            // ci % 8 == 0: the chunk's 8 k's are 8 channels of one tap.
            const int k = k0 + a_col;
            const int tap = k / ci, c = k - tap * ci;
            const int ky = tap / p.kw, kx = tap - ky * p.kw;
#pragma unroll
            for (int i = 0; i < kARows; i++) {
                const int iy = a_iy0[i] + ky, ix = a_ix0[i] + kx;
                const bool ok = k < K && iy >= 0 && iy < p.h && ix >= 0 && ix < p.w;
                const __half *src = ok ? a_img[i] + ((size_t)iy * p.w + ix) * ci + c : in;
                hsd_cp_async16(&As[stage][(tid >> 2) + 32 * i][a_col], src, ok);
            }
#pragma unroll
            for (int j = 0; j < kBRows; j++) {
                const int n = n0 + (tid >> 2) + 32 * j, kb = k0 + b_col;
                const bool ok = n < p.co && kb < K;  // K % 8 == 0: whole chunk inside
                hsd_cp_async16(&Bs[stage][(tid >> 2) + 32 * j][b_col],
                               ok ? wt + (size_t)n * K + kb : wt, ok);
            }
        } else {
#pragma unroll
            for (int i = 0; i < kARows; i++) {
                hsd_h8 x;
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    const int k = k0 + a_col + e;
                    __half v = __float2half_rn(0.0f);
                    if (k < K) {
                        const int tap = k / ci, c = k - tap * ci;
                        const int ky = tap / p.kw, kx = tap - ky * p.kw;
                        const int iy = a_iy0[i] + ky, ix = a_ix0[i] + kx;
                        if (iy >= 0 && iy < p.h && ix >= 0 && ix < p.w)
                            v = a_img[i][((size_t)iy * p.w + ix) * ci + c];
                    }
                    x.h[e] = v;
                }
                *reinterpret_cast<uint4 *>(&As[stage][(tid >> 2) + 32 * i][a_col]) = x.u;
            }
#pragma unroll
            for (int j = 0; j < kBRows; j++) {
                const int n = n0 + (tid >> 2) + 32 * j;
                hsd_h8 x;
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    const int k = k0 + b_col + e;
                    x.h[e] = (n < p.co && k < K) ? wt[(size_t)n * K + k] : __float2half_rn(0.0f);
                }
                *reinterpret_cast<uint4 *>(&Bs[stage][(tid >> 2) + 32 * j][b_col]) = x.u;
            }
        }
    };

    float acc[4][4][4];
#pragma unroll
    for (int mt = 0; mt < 4; mt++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++) acc[mt][nt][0] = acc[mt][nt][1] = acc[mt][nt][2] = acc[mt][nt][3] = 0.0f;

    const int k_tiles = (K + kBK - 1) / kBK;
#pragma unroll
    for (int s = 0; s < kStages - 1; s++) {
        if (s < k_tiles) load_stage(s, s * kBK);
        hsd_cp_async_commit();
    }
    for (int kt = 0; kt < k_tiles; kt++) {
        hsd_cp_async_wait<kStages - 2>();  // tile kt has landed (groups are one per tile)
        __syncthreads();                   // ... for every thread; stage (kt-1)%S is free
        {
            const int nk = kt + kStages - 1;
            if (nk < k_tiles) load_stage(nk % kStages, nk * kBK);
            hsd_cp_async_commit();
        }
        const int st = kt % kStages;
#pragma unroll
        for (int ks = 0; ks < kBK / 16; ks++) {
            uint32_t af[4][4], bf[4][2];
#pragma unroll
            for (int mt = 0; mt < 4; mt++) {
                hsd_ldmatrix_x4(af[mt], &As[st][warp_m * 64 + mt * 16 + (lane & 15)]
                                          [ks * 16 + (lane >> 4) * 8]);
            }
#pragma unroll
            for (int np = 0; np < 2; np++) {
                uint32_t r[4];
                hsd_ldmatrix_x4(r, &Bs[st][warp_n * 32 + np * 16 + (lane & 7) + ((lane >> 4) << 3)]
                                      [ks * 16 + ((lane >> 3) & 1) * 8]);
                bf[2 * np][0] = r[0];
                bf[2 * np][1] = r[1];
                bf[2 * np + 1][0] = r[2];
                bf[2 * np + 1][1] = r[3];
            }
#pragma unroll
            for (int mt = 0; mt < 4; mt++)
#pragma unroll
                for (int nt = 0; nt < 4; nt++) hsd_mma_16816(acc[mt][nt], af[mt], bf[nt][0], bf[nt][1]);
        }
    }
    hsd_cp_async_wait<0>();  // no copy may still target shared memory at exit

    // Epilogue: row m of the GEMM is output pixel m, so out[m * co + n].
    const __half *bias = (const __half *)p.bias;
    const __half *res = (const __half *)p.residual;
    __half *out = (__half *)p.out;
    const bool pairs = (p.co % 2 == 0) && hsd_aligned4(p.out) && (!res || hsd_aligned4(res));
#pragma unroll
    for (int mt = 0; mt < 4; mt++) {
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            const int m = m0 + warp_m * 64 + mt * 16 + (lane >> 2) + hr * 8;
            if (m >= a.M) continue;
#pragma unroll
            for (int nt = 0; nt < 4; nt++) {
                const int n = n0 + warp_n * 32 + nt * 8 + (lane & 3) * 2;
                if (n >= p.co) continue;
                const size_t o = (size_t)m * p.co + n;
                float v0 = acc[mt][nt][2 * hr], v1 = acc[mt][nt][2 * hr + 1];
                const bool two = n + 1 < p.co;
                if (bias) {
                    v0 += __half2float(bias[n]);
                    if (two) v1 += __half2float(bias[n + 1]);
                }
                if (res) {
                    v0 += __half2float(res[o]);
                    if (two) v1 += __half2float(res[o + 1]);
                }
                if (pairs && two) {
                    *reinterpret_cast<__half2 *>(out + o) = __floats2half2_rn(v0, v1);
                } else {
                    out[o] = __float2half_rn(v0);
                    if (two) out[o + 1] = __float2half_rn(v1);
                }
            }
        }
    }
}

}  // namespace

extern "C" enum hsd_status hsd_conv2d_v1_direct(const struct hsd_conv2d_params *p,
                                                cudaStream_t stream) {
    enum hsd_status st = conv2d_check(p, "hsd_conv2d_v1_direct");
    if (st != HSD_OK) return st;
    int ho, wo;
    hsd_conv2d_out_size(p, &ho, &wo);
    const long long total = (long long)p->n * ho * wo * p->co;
    const long long blocks = (total + 255) / 256;
    HSD_LAUNCH(hsd_conv2d_v1_direct_kernel, (unsigned)blocks, 256, 0, stream, *p, ho, wo, total);
    HSD_CUDA_CHECK_LAUNCH("hsd_conv2d_v1_direct");
    return HSD_OK;
}

extern "C" enum hsd_status hsd_conv2d_v2_igemm(const struct hsd_conv2d_params *p,
                                               cudaStream_t stream) {
    enum hsd_status st = conv2d_check(p, "hsd_conv2d_v2_igemm");
    if (st != HSD_OK) return st;
    v2_args a;
    hsd_conv2d_out_size(p, &a.ho, &a.wo);
    a.M = p->n * a.ho * a.wo;
    a.K = p->kh * p->kw * p->ci;
    a.vec = p->ci % 8 == 0 && hsd_aligned16(p->in) && hsd_aligned16(p->weight);
    const dim3 grid((unsigned)((a.M + kBM - 1) / kBM), (unsigned)((p->co + kBN - 1) / kBN));
    if (grid.y > 65535) {
        return hsd_fail(HSD_ERR_UNSUPPORTED, "hsd_conv2d_v2_igemm: co=%d too large", p->co);
    }
    HSD_LAUNCH(hsd_conv2d_v2_igemm_kernel, grid, kThreads, 0, stream, *p, a);
    HSD_CUDA_CHECK_LAUNCH("hsd_conv2d_v2_igemm");
    return HSD_OK;
}
