// attention: out = softmax(scale * q k^T) v per (sample, head), fp16 in/out,
// fp32 accumulation and softmax; the op of host/backend/cpu/cpu_attention.c
// (the reference truth) and of torch scaled_dot_product_attention (no
// dropout; no mask or the causal one). Heads are read with their token
// strides (ldq/ldk/ldv/ldo) straight from the NHWC projections, so a fused
// qkv projection [n, t, 3*heads*d] is read in place.
//
// Versions (registry: cuda/registry.cu, table attention):
//   v1 hsd_attn_fwd_v1_rowwarp  REFERENCE. One warp per query row, 4 rows
//       per block; each lane scores one key of a 32-key chunk (fp32 dot
//       product over d), the chunk goes through an online softmax (expf,
//       warp max/sum), then p v with lane j owning output columns j, j+32,
//       ... Any d <= 3072 (q in dynamic shared memory; heads over 256 wide
//       take one pass over the keys per 256 output columns), any stride or
//       alignment, causal. No tensor cores, K/V re-read from L1/L2 by every
//       row: for debugging and as the last fallback, not for speed.
//       Status: compiled (sm_80, sm_90); passes the CPU emulation
//       (test_cuda_attention_emulated, below); not yet run on a GPU.
//   v2 hsd_attn_fwd_v2_flash  PRODUCTION. FlashAttention-2 forward on
//       mma.sync m16n8k16: a block of 4 warps owns 64 query rows (16 per
//       warp, Q fragments kept in registers), walks the keys in tiles of
//       BN = 64 staged in shared memory by cp.async, double-buffered (the
//       next K/V tile loads while this one is computed); S = Q K^T on the
//       tensor cores, scale and mask in fp32, online softmax in the base-2
//       domain (exp2f, the scale pre-multiplied by log2 e), P rounded to
//       fp16 straight from the S accumulators into A fragments (no trip
//       through shared memory), O += P V with V read by ldmatrix.trans.
//       Head dim padded to D = 32/48/64/80/96/128/160 inside the kernel:
//       the padding columns and the rows past t_q / t_kv are zero-filled
//       (cp.async src-size 0), so d = 40 costs 48 columns of work (torch's
//       FlashAttention-2 pads 40 to 64 and 80 to 96). 16-byte loads when d,
//       the strides and the pointers allow (SD: always); otherwise an
//       element-wise loader fills the same tiles (d = 59, 72 odd strides).
//       Keys past t_kv and, with causal, past the query row get -inf
//       before the max, and a block skips the key tiles wholly above its
//       last row. Shared memory: (64 + 4*BN) * (D + 8) halves (row pad of
//       16 bytes keeps ldmatrix free of bank conflicts for every D), so
//       107 KB at D = 160: the launcher raises the dynamic limit.
//       Status: compiled (sm_80, sm_90; 83-218 registers by D, no spills
//       per ptxas); passes the CPU emulation; not yet run on a GPU.
//   v3 hsd_attn_fwd_v3_wide  FALLBACK for d = 161..512 (the SD VAE's one
//       512-wide head): cuda/attention_wide.cu, whose header describes it.
// Emulation (cuda/emulate.cuh, host fibers, ldmatrix/mma per the PTX ISA):
// v1 and v2 match the CPU reference on every test case up to work 2.1e8,
// i.e. all but self t = 4096/1024 and t = 16384: every cross-attention SD
// shape (t_q = 4096..64 x 77 keys, d = 40/80/160), self 256 and 64 at
// d = 160, CLIP causal, d = 16/59/72/128/200, fused qkv, ragged t
// (when v2 was written; CI runs the cases under work 3e7). Swapping two
// B fragments or the causal row index makes it fail (checked).
// Planned: v3 with 2 m-tiles per warp (halves the shared-memory reads of
// K/V per flop, which bound v2 near the mma.sync rate), then a wgmma
// (sm_90a) version with TMA loads and a producer warp.
//
// How to test: ctest --test-dir build -R test_cuda_attention (needs a GPU;
// skipped without one): every version against the CPU backend on the SD1.5
// 64x64-latent shapes and odd ones; test_cuda_attention_emulated runs the
// same program on the CPU emulation (no GPU; HSD_EMU_MAX_WORK=2.1e8 for the
// larger cases, ~1 min). How to time: build/cuda/bench_kernels
// --op attention; bench/sdpa_bench.py gives torch SDPA (flash) on the same
// shapes. Both run from bench/device-check.sh.
#include <math.h>
#include <stdint.h>

#include "attention.cuh"
#include "attention_internal.cuh"
#include "common.cuh"

namespace {

// ---- v1: one warp per query row --------------------------------------------

constexpr int kV1Warps = 4;
constexpr int kV1ChunkD = 256;             // output columns per pass
constexpr int kV1Cols = kV1ChunkD / 32;    // output columns per lane per pass
// q rows (fp32, one per warp) live in dynamic shared memory; without the
// opt-in that is 48 KB, i.e. d <= 3072.
constexpr int kV1MaxD = 48 * 1024 / (kV1Warps * (int)sizeof(float));

__global__ void __launch_bounds__(kV1Warps * 32)
    hsd_attn_fwd_v1_rowwarp_kernel(const hsd_attention_params p) {
    HSD_DYNAMIC_SMEM(smem_raw);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int row = blockIdx.x * kV1Warps + warp;
    const int h = blockIdx.y, b = blockIdx.z;
    if (row >= p.t_q) return;  // whole warp: no block barrier below
    const int d = p.d;
    float *qs = reinterpret_cast<float *>(smem_raw) + (size_t)warp * d;
    const __half *q = (const __half *)p.q + ((size_t)b * p.t_q + row) * p.ldq + (size_t)h * d;
    const __half *k = (const __half *)p.k + (size_t)b * p.t_kv * p.ldk + (size_t)h * d;
    const __half *v = (const __half *)p.v + (size_t)b * p.t_kv * p.ldv + (size_t)h * d;
    for (int c = lane; c < d; c += 32) qs[c] = __half2float(q[c]);
    __syncwarp();

    const int kv_end = p.causal ? row + 1 : p.t_kv;  // keys this row sees
    __half *o = (__half *)p.out + ((size_t)b * p.t_q + row) * p.ldo + (size_t)h * d;
    // Heads wider than one pass (the SD VAE's 512) take several passes over
    // the keys, each recomputing the scores: a reference, not a fast path.
    for (int c0 = 0; c0 < d; c0 += kV1ChunkD) {
        float acc[kV1Cols];
#pragma unroll
        for (int i = 0; i < kV1Cols; i++) acc[i] = 0.0f;
        float m = -INFINITY, l = 0.0f;
        for (int j0 = 0; j0 < kv_end; j0 += 32) {
            const int j = j0 + lane;
            float s = -INFINITY;
            if (j < kv_end) {
                const __half *kr = k + (size_t)j * p.ldk;
                float dot = 0.0f;
                for (int c = 0; c < d; c++) dot = fmaf(qs[c], __half2float(kr[c]), dot);
                s = p.scale * dot;
            }
            // Lane 0's key j0 < kv_end, so the chunk max is finite.
            const float m_new = fmaxf(m, hsd_warp_max(s));
            const float alpha = expf(m - m_new);  // 0 on the first chunk (m = -inf)
            const float pj = j < kv_end ? expf(s - m_new) : 0.0f;
            l = l * alpha + hsd_warp_sum(pj);
#pragma unroll
            for (int i = 0; i < kV1Cols; i++) acc[i] *= alpha;
            const int nj = min(32, kv_end - j0);  // warp-uniform
            for (int jj = 0; jj < nj; jj++) {
                const float pv = __shfl_sync(0xffffffffu, pj, jj);
                const __half *vr = v + (size_t)(j0 + jj) * p.ldv;
#pragma unroll
                for (int i = 0; i < kV1Cols; i++) {
                    const int c = c0 + lane + 32 * i;
                    if (c < d) acc[i] = fmaf(pv, __half2float(vr[c]), acc[i]);
                }
            }
            m = m_new;
        }
        const float inv = 1.0f / l;
#pragma unroll
        for (int i = 0; i < kV1Cols; i++) {
            const int c = c0 + lane + 32 * i;
            if (c < d) o[c] = __float2half_rn(acc[i] * inv);
        }
    }
}

// ---- v2: FlashAttention-2 on mma.sync ----------------------------------------

template <int D, int BN>
__global__ void __launch_bounds__(kV2Threads)
    hsd_attn_fwd_v2_flash_kernel(const hsd_attention_params p, int flags) {
    static_assert(D % 16 == 0 && BN % 16 == 0, "tiles are whole mma steps");
    constexpr int LDS = D + 8;  // +16 bytes per row: conflict-free ldmatrix
    constexpr int KS = D / 16;  // k-steps of S = Q K^T
    constexpr int NS = BN / 8;  // n-tiles of S (keys)
    constexpr int NO = D / 8;   // n-tiles of O (head columns)
    HSD_DYNAMIC_SMEM(smem_raw);
    __half *Qs = reinterpret_cast<__half *>(smem_raw);  // [BM][LDS]
    __half *Ks = Qs + kV2BM * LDS;                      // [2][BN][LDS]
    __half *Vs = Ks + 2 * BN * LDS;                     // [2][BN][LDS]

    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int m0 = blockIdx.x * kV2BM, h = blockIdx.y, b = blockIdx.z;
    const int d = p.d;
    const bool vec = (flags & kV2VecLoad) != 0;
    const __half *qg = (const __half *)p.q + ((size_t)b * p.t_q + m0) * p.ldq + (size_t)h * d;
    const __half *kg = (const __half *)p.k + (size_t)b * p.t_kv * p.ldk + (size_t)h * d;
    const __half *vg = (const __half *)p.v + (size_t)b * p.t_kv * p.ldv + (size_t)h * d;

    // Causal: rows m0..m0+BM-1 see keys <= m0+BM-1 at most.
    const int kv_end = p.causal ? min(p.t_kv, m0 + kV2BM) : p.t_kv;
    const int n_tiles = (kv_end + BN - 1) / BN;

    // Prologue: Q and key tile 0 in one cp.async group.
    v2_load_tile<kV2BM, D, LDS>(Qs, qg, p.ldq, min(kV2BM, p.t_q - m0), d, vec);
    v2_load_tile<BN, D, LDS>(Ks, kg, p.ldk, min(BN, p.t_kv), d, vec);
    v2_load_tile<BN, D, LDS>(Vs, vg, p.ldv, min(BN, p.t_kv), d, vec);
    hsd_cp_async_commit();

    uint32_t qf[KS][4];
    float o[NO][4];
#pragma unroll
    for (int j = 0; j < NO; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    // This thread's two rows (fragment rows g and g+8 of the warp's 16).
    float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.0f, 0.0f};
    const int row_a = m0 + warp * 16 + lane / 4;
    const int rows[2] = {row_a, row_a + 8};
    const float scale_log2 = p.scale * 1.4426950408889634f;  // exp(x) = exp2(x log2 e)

    for (int it = 0; it < n_tiles; it++) {
        // Next tile into the other buffer; that buffer was last read in
        // iteration it-1, which every warp has left (trailing barrier).
        if (it + 1 < n_tiles) {
            const int kv0 = (it + 1) * BN;
            const int buf = (it + 1) & 1;
            v2_load_tile<BN, D, LDS>(Ks + buf * BN * LDS, kg + (size_t)kv0 * p.ldk, p.ldk,
                                     min(BN, p.t_kv - kv0), d, vec);
            v2_load_tile<BN, D, LDS>(Vs + buf * BN * LDS, vg + (size_t)kv0 * p.ldv, p.ldv,
                                     min(BN, p.t_kv - kv0), d, vec);
        }
        hsd_cp_async_commit();    // possibly empty: keeps the group count uniform
        hsd_cp_async_wait<1>();   // all but the newest group: tile `it` (and Q) landed
        __syncthreads();
        if (it == 0) {
#pragma unroll
            for (int kk = 0; kk < KS; kk++) {
                hsd_ldmatrix_x4(qf[kk], Qs + (warp * 16 + (lane & 15)) * LDS + kk * 16 +
                                            (lane >> 4) * 8);
            }
        }
        const __half *Kb = Ks + (it & 1) * BN * LDS;
        const __half *Vb = Vs + (it & 1) * BN * LDS;

        // S = Q K^T: K stored [key][d] is B stored [n][k]. One ldmatrix.x4
        // gives b0/b1 of key tiles 2jp and 2jp+1 for one k-step.
        float s[NS][4];
#pragma unroll
        for (int j = 0; j < NS; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < KS; kk++) {
#pragma unroll
            for (int jp = 0; jp < NS / 2; jp++) {
                uint32_t kf[4];
                hsd_ldmatrix_x4(kf, Kb + (jp * 16 + (lane & 7) + ((lane >> 4) << 3)) * LDS +
                                        kk * 16 + ((lane >> 3) & 1) * 8);
                hsd_mma_16816(s[2 * jp], qf[kk], kf[0], kf[1]);
                hsd_mma_16816(s[2 * jp + 1], qf[kk], kf[2], kf[3]);
            }
        }

        // Scale into the log2 domain and mask: keys past t_kv, and with
        // causal keys after the row. c[e]: row rows[e/2], key 2t + e%2.
        const int kv0 = it * BN;
#pragma unroll
        for (int j = 0; j < NS; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int key = kv0 + j * 8 + (lane & 3) * 2 + (e & 1);
                const bool masked = key >= p.t_kv || (p.causal && key > rows[e >> 1]);
                s[j][e] = masked ? -INFINITY : s[j][e] * scale_log2;
            }
        }

        // Online softmax. A row's values sit in the 4 lanes of a quad.
        float mx[2] = {row_max[0], row_max[1]};
#pragma unroll
        for (int j = 0; j < NS; j++) {
            mx[0] = fmaxf(mx[0], fmaxf(s[j][0], s[j][1]));
            mx[1] = fmaxf(mx[1], fmaxf(s[j][2], s[j][3]));
        }
        float base[2], alpha[2];
#pragma unroll
        for (int i = 0; i < 2; i++) {
            mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
            mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
            // A row with every key so far masked keeps max -inf: subtract 0
            // instead, so exp2(-inf - base) = 0 and never NaN.
            base[i] = mx[i] == -INFINITY ? 0.0f : mx[i];
            alpha[i] = exp2f(row_max[i] - base[i]);  // 0 while row_max = -inf
            row_max[i] = mx[i];
        }
        float tile_sum[2] = {0.0f, 0.0f};
#pragma unroll
        for (int j = 0; j < NS; j++) {
            s[j][0] = exp2f(s[j][0] - base[0]);
            s[j][1] = exp2f(s[j][1] - base[0]);
            s[j][2] = exp2f(s[j][2] - base[1]);
            s[j][3] = exp2f(s[j][3] - base[1]);
            tile_sum[0] += s[j][0] + s[j][1];
            tile_sum[1] += s[j][2] + s[j][3];
        }
        // Per-lane partial sums; the quad's are added once at the end.
        row_sum[0] = row_sum[0] * alpha[0] + tile_sum[0];
        row_sum[1] = row_sum[1] * alpha[1] + tile_sum[1];
#pragma unroll
        for (int j = 0; j < NO; j++) {
            o[j][0] *= alpha[0];
            o[j][1] *= alpha[0];
            o[j][2] *= alpha[1];
            o[j][3] *= alpha[1];
        }

        // O += P V. The C fragments of key tiles 2kk, 2kk+1 are exactly the
        // A fragment of k-step kk (rows g/g+8, keys 2t.. and 2t+8..). V
        // stored [key][d] is B stored [k][n]: ldmatrix.trans.
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            uint32_t pa[4];
            pa[0] = hsd_pack_half2(s[2 * kk][0], s[2 * kk][1]);
            pa[1] = hsd_pack_half2(s[2 * kk][2], s[2 * kk][3]);
            pa[2] = hsd_pack_half2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            pa[3] = hsd_pack_half2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
            for (int dp = 0; dp < NO / 2; dp++) {
                uint32_t vf[4];
                hsd_ldmatrix_x4_trans(vf, Vb + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDS +
                                              dp * 16 + (lane >> 4) * 8);
                hsd_mma_16816(o[2 * dp], pa, vf[0], vf[1]);
                hsd_mma_16816(o[2 * dp + 1], pa, vf[2], vf[3]);
            }
        }
        __syncthreads();  // this tile's buffers are reloaded next iteration
    }

    // Normalise and store the rows < t_q, columns < d.
    float inv[2];
#pragma unroll
    for (int i = 0; i < 2; i++) {
        row_sum[i] += __shfl_xor_sync(0xffffffffu, row_sum[i], 1);
        row_sum[i] += __shfl_xor_sync(0xffffffffu, row_sum[i], 2);
        inv[i] = row_sum[i] > 0.0f ? 1.0f / row_sum[i] : 0.0f;
    }
    const bool half2_out = (flags & kV2Half2Out) != 0;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        if (rows[i] >= p.t_q) continue;
        __half *orow = (__half *)p.out + ((size_t)b * p.t_q + rows[i]) * p.ldo + (size_t)h * d;
#pragma unroll
        for (int j = 0; j < NO; j++) {
            const int col = j * 8 + (lane & 3) * 2;
            const float v0 = o[j][2 * i] * inv[i], v1 = o[j][2 * i + 1] * inv[i];
            if (half2_out && col + 1 < d) {
                *reinterpret_cast<__half2 *>(orow + col) = __floats2half2_rn(v0, v1);
            } else {
                if (col < d) orow[col] = __float2half_rn(v0);
                if (col + 1 < d) orow[col + 1] = __float2half_rn(v1);
            }
        }
    }
}

template <int D, int BN>
enum hsd_status v2_launch(const hsd_attention_params *p, int flags, cudaStream_t stream) {
    constexpr int LDS = D + 8;
    constexpr size_t smem = (size_t)(kV2BM + 4 * BN) * LDS * sizeof(__half);
    // Over 48 KB of dynamic shared memory (D >= 80): the launcher opts in.
    return attention_launch(hsd_attn_fwd_v2_flash_kernel<D, BN>, smem, kV2BM, kV2Threads, p,
                            flags, stream, "hsd_attn_fwd_v2_flash");
}

}  // namespace

extern "C" enum hsd_status hsd_attn_fwd_v1_rowwarp(const struct hsd_attention_params *p,
                                                   cudaStream_t stream) {
    enum hsd_status st = attention_check(p, "hsd_attn_fwd_v1_rowwarp");
    if (st != HSD_OK) return st;
    if (p->d > kV1MaxD) {
        return hsd_fail(HSD_ERR_UNSUPPORTED, "hsd_attn_fwd_v1_rowwarp: d=%d > %d", p->d, kV1MaxD);
    }
    const dim3 grid((unsigned)((p->t_q + kV1Warps - 1) / kV1Warps), (unsigned)p->heads,
                    (unsigned)p->n);
    const size_t smem = (size_t)kV1Warps * p->d * sizeof(float);
    HSD_LAUNCH(hsd_attn_fwd_v1_rowwarp_kernel, grid, kV1Warps * 32, smem, stream, *p);
    HSD_CUDA_CHECK_LAUNCH("hsd_attn_fwd_v1_rowwarp");
    return HSD_OK;
}

extern "C" enum hsd_status hsd_attn_fwd_v2_flash(const struct hsd_attention_params *p,
                                                 cudaStream_t stream) {
    enum hsd_status st = attention_check(p, "hsd_attn_fwd_v2_flash");
    if (st != HSD_OK) return st;
    const int flags = attention_io_flags(p);
    // Smallest instantiated padded head dim >= d.
    if (p->d <= 32) return v2_launch<32, 64>(p, flags, stream);
    if (p->d <= 48) return v2_launch<48, 64>(p, flags, stream);
    if (p->d <= 64) return v2_launch<64, 64>(p, flags, stream);
    if (p->d <= 80) return v2_launch<80, 64>(p, flags, stream);
    if (p->d <= 96) return v2_launch<96, 64>(p, flags, stream);
    if (p->d <= 128) return v2_launch<128, 64>(p, flags, stream);
    if (p->d <= 160) return v2_launch<160, 64>(p, flags, stream);
    return hsd_fail(HSD_ERR_UNSUPPORTED, "hsd_attn_fwd_v2_flash: head dim %d > 160", p->d);
}
