// attention for wide heads (d = 161..512): the same op as attention.cu
// (out = softmax(scale * q k^T) v per (sample, head), fp16 in/out, fp32
// softmax and accumulation; host/backend/cpu/cpu_attention.c is the truth).
// The head this exists for: the SD VAE's mid-block attention, one head of
// width 512 over every latent pixel (diffusers Attention with heads = 1,
// dim_head = 512 in UNetMidBlock2D of AutoencoderKL): t = 4096 at 512x512,
// t = 16384 at 1024x1024. v2 (attention.cu) keeps a warp's 16 rows x D
// output in registers, which at D = 512 would be 256 floats per thread.
//
// Versions (registry: cuda/registry.cu, table attention):
//   v3 hsd_attn_fwd_v3_wide  FALLBACK (what hsd_cuda_attention() runs when
//       v2 answers unsupported, before the reference). A block of 4 warps
//       owns 16 query rows and walks the keys in tiles of BN = 32:
//       - S = Q K^T on mma.sync m16n8k16: warp w scores keys 8w..8w+7 of
//         the tile over the whole head (Q and K from shared memory by
//         ldmatrix), scaled into the log2 domain and masked, into shared S;
//       - online softmax per row by 8 threads (running max / sum in shared
//         memory, P rounded to fp16 into shared P, the rescale factor per
//         row published for the warps);
//       - O += P V: warp w owns head columns [w D/4, (w+1) D/4), i.e. 16
//         rows x 128 columns at D = 512 (64 accumulators per thread); V by
//         ldmatrix.trans as in v2.
//       K (with Q on the first tile) and V are two cp.async groups: V lands
//       while S and the softmax run. Head dim padded to D = 256/384/512
//       (zero columns, as v2 pads). Shared memory (16 + 2*BN) * (D + 8)
//       halves + S and P: 86 KB at D = 512 (the launcher opts in beyond
//       48 KB; sm_80 allows 163 KB, sm_90 227 KB).
//       Status: compiled (sm_80, sm_90; 63-124 registers by D, no spills
//       per ptxas); passes the CPU emulation
//       (test_cuda_attention_emulated, test_cuda_attention_vae_emulated at
//       t <= 300; swapping two K fragments fails them); not yet run on a GPU.
// Planned: 32 or 64 rows per block (K/V are re-read from L2 for every 16
// query rows: 2 GB of L2 reads at t = 4096), K/V double-buffered.
// Rejected: a cuBLASLt GEMM - softmax - GEMM path: it materialises S
// (n x t x t fp32: 1 GB at t = 16384), needs the backend's handle and
// workspace inside the registry, and cannot run in the host emulation.
//
// How to test: ctest -R test_cuda_attention (every version, every case; the
// VAE widths at t = 4096 and 16384 in test_cuda_attention_vae; both skip
// without a GPU; *_emulated run the small cases on the CPU).
// How to time: build/cuda/bench_kernels --op attention.
#include <math.h>
#include <stdint.h>

#include "attention.cuh"
#include "attention_internal.cuh"
#include "common.cuh"

namespace {

constexpr int kV3Warps = 4;
constexpr int kV3Threads = kV3Warps * 32;  // = kV2Threads: the tile loader's stride
constexpr int kV3BM = 16;                  // query rows per block
constexpr int kV3BN = 32;                  // keys per tile: 8 per warp
constexpr int kV3MaxD = 512;
constexpr int kV3LDP = kV3BN + 8;          // P row stride (halves): conflict-free ldmatrix
static_assert(kV3Threads == kV2Threads, "v2_load_tile strides by kV2Threads");

template <int D>
__global__ void __launch_bounds__(kV3Threads)
    hsd_attn_fwd_v3_wide_kernel(const hsd_attention_params p, int flags) {
    static_assert(D % 64 == 0, "each warp owns D/4 columns, whole 16-column ldmatrix steps");
    constexpr int LDS = D + 8;
    constexpr int NO = D / kV3Warps / 8;  // n-tiles of O per warp
    HSD_DYNAMIC_SMEM(smem_raw);
    __half *Qs = reinterpret_cast<__half *>(smem_raw);  // [BM][LDS]
    __half *Ks = Qs + kV3BM * LDS;                      // [BN][LDS]
    __half *Vs = Ks + kV3BN * LDS;                      // [BN][LDS]
    __half *Ps = Vs + kV3BN * LDS;                      // [BM][LDP]
    float *Ss = reinterpret_cast<float *>(Ps + kV3BM * kV3LDP);  // [BM][BN]
    float *row_m = Ss + kV3BM * kV3BN;                  // [BM] running max (log2 domain)
    float *row_l = row_m + kV3BM;                       // [BM] running sum
    float *row_a = row_l + kV3BM;                       // [BM] this tile's rescale factor

    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int m0 = blockIdx.x * kV3BM, h = blockIdx.y, b = blockIdx.z;
    const int d = p.d;
    const bool vec = (flags & kV2VecLoad) != 0;
    const __half *qg = (const __half *)p.q + ((size_t)b * p.t_q + m0) * p.ldq + (size_t)h * d;
    const __half *kg = (const __half *)p.k + (size_t)b * p.t_kv * p.ldk + (size_t)h * d;
    const __half *vg = (const __half *)p.v + (size_t)b * p.t_kv * p.ldv + (size_t)h * d;
    const int kv_end = p.causal ? min(p.t_kv, m0 + kV3BM) : p.t_kv;
    const int n_tiles = (kv_end + kV3BN - 1) / kV3BN;
    if (tid < kV3BM) {
        row_m[tid] = -INFINITY;
        row_l[tid] = 0.0f;
    }
    v2_load_tile<kV3BM, D, LDS>(Qs, qg, p.ldq, min(kV3BM, p.t_q - m0), d, vec);

    float o[NO][4];
#pragma unroll
    for (int j = 0; j < NO; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    const float scale_log2 = p.scale * 1.4426950408889634f;  // exp(x) = exp2(x log2 e)
    const int g = lane / 4, t4 = lane % 4;
    const int col0 = warp * (D / kV3Warps);  // this warp's first O column

    for (int it = 0; it < n_tiles; it++) {
        const int kv0 = it * kV3BN, rows_valid = min(kV3BN, p.t_kv - kv0);
        // Group 1: K (and Q on the first tile); group 2: V, which lands
        // while S and the softmax run. The buffers were last read before
        // the previous iteration's trailing barrier.
        v2_load_tile<kV3BN, D, LDS>(Ks, kg + (size_t)kv0 * p.ldk, p.ldk, rows_valid, d, vec);
        hsd_cp_async_commit();
        v2_load_tile<kV3BN, D, LDS>(Vs, vg + (size_t)kv0 * p.ldv, p.ldv, rows_valid, d, vec);
        hsd_cp_async_commit();
        hsd_cp_async_wait<1>();  // K (and Q) landed for this thread's copies
        __syncthreads();         // ... and for everyone's

        // S = Q K^T for keys kv0 + 8 warp .. +7: one n-tile, D/16 k-steps,
        // two per ldmatrix.x4 of K (matrices: k-cols +0, +8, +16, +24).
        float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll 4
        for (int kk = 0; kk < D / 16; kk += 2) {
            uint32_t qa[4], qb[4], kf[4];
            hsd_ldmatrix_x4(qa, Qs + (lane & 15) * LDS + kk * 16 + (lane >> 4) * 8);
            hsd_ldmatrix_x4(qb, Qs + (lane & 15) * LDS + (kk + 1) * 16 + (lane >> 4) * 8);
            hsd_ldmatrix_x4(kf, Ks + (warp * 8 + (lane & 7)) * LDS + kk * 16 + (lane >> 3) * 8);
            hsd_mma_16816(s, qa, kf[0], kf[1]);
            hsd_mma_16816(s, qb, kf[2], kf[3]);
        }
        // c[e]: row g (+8 for e >= 2), key 2 t4 + (e & 1) of the warp's 8.
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int r = g + (e >= 2 ? 8 : 0), kc = warp * 8 + 2 * t4 + (e & 1);
            const int key = kv0 + kc;
            const bool masked = key >= p.t_kv || (p.causal && key > m0 + r);
            Ss[r * kV3BN + kc] = masked ? -INFINITY : s[e] * scale_log2;
        }
        __syncthreads();

        // Online softmax: row tid/8, keys 4 (tid%8) .. +3. The 8 threads of
        // a row are consecutive lanes of one warp.
        {
            const int r = tid / 8, k0 = (tid % 8) * (kV3BN / 8);
            float v[kV3BN / 8], mx = -INFINITY;
#pragma unroll
            for (int e = 0; e < kV3BN / 8; e++) {
                v[e] = Ss[r * kV3BN + k0 + e];
                mx = fmaxf(mx, v[e]);
            }
#pragma unroll
            for (int o2 = 1; o2 < 8; o2 <<= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o2));
            const float m_old = row_m[r];
            const float m_new = fmaxf(m_old, mx);
            // Every key so far masked: keep -inf, subtract 0 (exp2 gives 0, never NaN).
            const float base = m_new == -INFINITY ? 0.0f : m_new;
            float sum = 0.0f;
#pragma unroll
            for (int e = 0; e < kV3BN / 8; e++) {
                const float pe = exp2f(v[e] - base);
                sum += pe;
                Ps[r * kV3LDP + k0 + e] = __float2half_rn(pe);
            }
#pragma unroll
            for (int o2 = 1; o2 < 8; o2 <<= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o2);
            __syncwarp();  // every lane of the row read row_m before it changes
            if (tid % 8 == 0) {
                const float alpha = exp2f(m_old - base);  // 0 while m_old = -inf
                row_a[r] = alpha;
                row_l[r] = row_l[r] * alpha + sum;
                row_m[r] = m_new;
            }
        }
        hsd_cp_async_wait<0>();  // V landed
        __syncthreads();

        // O = alpha O + P V over this warp's columns.
        const float a0 = row_a[g], a1 = row_a[g + 8];
#pragma unroll
        for (int j = 0; j < NO; j++) {
            o[j][0] *= a0;
            o[j][1] *= a0;
            o[j][2] *= a1;
            o[j][3] *= a1;
        }
#pragma unroll
        for (int kk = 0; kk < kV3BN / 16; kk++) {
            uint32_t pa[4];
            hsd_ldmatrix_x4(pa, Ps + (lane & 15) * kV3LDP + kk * 16 + (lane >> 4) * 8);
#pragma unroll
            for (int dp = 0; dp < NO / 2; dp++) {
                uint32_t vf[4];
                hsd_ldmatrix_x4_trans(vf, Vs + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDS +
                                              col0 + dp * 16 + (lane >> 4) * 8);
                hsd_mma_16816(o[2 * dp], pa, vf[0], vf[1]);
                hsd_mma_16816(o[2 * dp + 1], pa, vf[2], vf[3]);
            }
        }
        __syncthreads();  // K, V, S and P are rewritten next iteration
    }

    // Normalise and store rows < t_q, columns < d.
    const bool half2_out = (flags & kV2Half2Out) != 0;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int r = g + 8 * i;
        if (m0 + r >= p.t_q) continue;
        const float l = row_l[r];
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        __half *orow = (__half *)p.out + ((size_t)b * p.t_q + m0 + r) * p.ldo + (size_t)h * d;
#pragma unroll
        for (int j = 0; j < NO; j++) {
            const int col = col0 + j * 8 + t4 * 2;
            const float v0 = o[j][2 * i] * inv, v1 = o[j][2 * i + 1] * inv;
            if (half2_out && col + 1 < d) {
                *reinterpret_cast<__half2 *>(orow + col) = __floats2half2_rn(v0, v1);
            } else {
                if (col < d) orow[col] = __float2half_rn(v0);
                if (col + 1 < d) orow[col + 1] = __float2half_rn(v1);
            }
        }
    }
}

template <int D>
enum hsd_status v3_launch(const hsd_attention_params *p, int flags, cudaStream_t stream) {
    constexpr int LDS = D + 8;
    constexpr size_t smem = (size_t)(kV3BM + 2 * kV3BN) * LDS * sizeof(__half) +
                            (size_t)kV3BM * kV3LDP * sizeof(__half) +
                            ((size_t)kV3BM * kV3BN + 3 * kV3BM) * sizeof(float);
    return attention_launch(hsd_attn_fwd_v3_wide_kernel<D>, smem, kV3BM, kV3Threads, p, flags,
                            stream, "hsd_attn_fwd_v3_wide");
}

}  // namespace

extern "C" enum hsd_status hsd_attn_fwd_v3_wide(const struct hsd_attention_params *p,
                                                cudaStream_t stream) {
    enum hsd_status st = attention_check(p, "hsd_attn_fwd_v3_wide");
    if (st != HSD_OK) return st;
    const int flags = attention_io_flags(p);
    if (p->d <= 256) return v3_launch<256>(p, flags, stream);
    if (p->d <= 384) return v3_launch<384>(p, flags, stream);
    if (p->d <= kV3MaxD) return v3_launch<512>(p, flags, stream);
    return hsd_fail(HSD_ERR_UNSUPPORTED, "hsd_attn_fwd_v3_wide: head dim %d > %d", p->d, kV3MaxD);
}
