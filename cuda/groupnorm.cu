// group_norm: torch.nn.GroupNorm over NHWC [n, hw, c] (statistics per
// (sample, group) over hw * c/groups values, biased variance) then
// optionally SiLU (diffusers ResnetBlock2D norm1 + nonlinearity); fp16
// in/out, statistics in fp32 (v1: double). The apply step is torch's: per
// channel a = rstd * gamma, b = beta - a * mean, y = x a + b; the op of
// host/backend/cpu/cpu_norm.c (the reference truth).
//
// Versions (registry: cuda/registry.cu, table group_norm):
//   v1 hsd_group_norm_v1_twopass  REFERENCE. One block per (group, sample):
//       sum -> mean, sum of squared deviations -> variance (both in
//       double), then the apply pass: three strided reads of the group.
//       Every shape. Few blocks (n * groups = 64 at SD batch 2) and
//       cg-wide strided accesses: not for speed.
//       Status: compiled (sm_80, sm_90); passes the CPU emulation on every
//       test case; not yet run on a GPU.
//   v2 hsd_group_norm_v2_welford  PRODUCTION. Two kernels, 16-byte
//       accesses throughout. Stats: a grid of (pixel splits, n) blocks;
//       thread (r, cv) owns the 8 channels of vector column cv and walks
//       pixels r, r + rpb, ... of its split with a Welford update per
//       channel (one reciprocal per pixel); the block folds its threads'
//       (count, mean, M2) into groups with Chan's parallel formula (one
//       warp per group, shuffle butterfly) and writes one partial per
//       (sample, split, group). Apply: every block first folds its
//       sample's partials (Chan again) into per-channel a, b in shared
//       memory, then streams its pixel range: load 8 halves, y = x a + b,
//       SiLU, store 8 halves. Traffic: 2 reads + 1 write of the tensor
//       (the second read mostly from L2: SD maps are 0.3-16 MB). Partials
//       live in one workspace per device, allocated on the first call and
//       kept for the process (3 MB: n * splits * groups <= 2^18 partials;
//       splits shrink to fit, so only n * groups > 2^18 is refused). A
//       cudaMallocAsync/cudaFreeAsync pair per call, as before, went
//       through a pool whose release threshold is 0: every call could
//       return the memory to the OS and map it again.
//       Needs c % 8 == 0, c <= 4096, 16-byte aligned in/out, groups of
//       fewer than 2^24 values; otherwise HSD_ERR_UNSUPPORTED (the
//       registry then runs v1).
//       Status: compiled (sm_80, sm_90, no spills per ptxas); passes the
//       CPU emulation on every test case, all SD1.5 shapes included
//       (test_cuda_norm_emulated); not yet run on a GPU.
// Planned: a single-kernel version for small maps (8x8, 16x16: one block
// per sample holds the whole map in registers/shared memory).
//
// How to test: ctest --test-dir build -R test_cuda_norm (needs a GPU);
// test_cuda_norm_emulated: the same program on the CPU emulation.
// How to time: build/cuda/bench_kernels --op group_norm (GB/s against the
// measured device-to-device copy bandwidth).
#include <math.h>
#include <stdint.h>

#include <mutex>

#include "common.cuh"
#include "groupnorm.cuh"

namespace {

enum hsd_status group_norm_check(const hsd_group_norm_params *p, const char *name) {
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: NULL params", name);
    if (p->n <= 0 || p->hw <= 0 || p->c <= 0 || p->groups <= 0) {
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "%s: dims must be positive (n=%d hw=%d c=%d groups=%d)", name, p->n,
                        p->hw, p->c, p->groups);
    }
    if (p->c % p->groups != 0) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: c=%d is not divisible by groups=%d", name,
                        p->c, p->groups);
    }
    if (!p->out || !p->in || !p->gamma || !p->beta) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: out, in, gamma, beta must be non-NULL", name);
    }
    if (!(p->eps >= 0.0f)) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: eps must be >= 0", name);
    if (p->groups > 65535 || p->n > 65535) {
        return hsd_fail(HSD_ERR_UNSUPPORTED, "%s: groups=%d or n=%d over the grid limit", name,
                        p->groups, p->n);
    }
    return HSD_OK;
}

// ---- v1: one block per (group, sample), double statistics -------------------

constexpr int kV1Threads = 256;

__device__ double v1_block_sum(double v, double *red) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();  // `red` may still be read from the previous call
    if (lane == 0) red[warp] = v;
    __syncthreads();
    double t = 0.0;
    for (int w = 0; w < kV1Threads / 32; w++) t += red[w];
    return t;
}

__global__ void __launch_bounds__(kV1Threads)
    hsd_group_norm_v1_twopass_kernel(const hsd_group_norm_params p) {
    __shared__ double red[kV1Threads / 32];
    const int g = blockIdx.x, b = blockIdx.y;
    const int cg = p.c / p.groups;
    const long long count = (long long)p.hw * cg;
    const __half *x = (const __half *)p.in + (size_t)b * p.hw * p.c + (size_t)g * cg;
    __half *y = (__half *)p.out + (size_t)b * p.hw * p.c + (size_t)g * cg;
    // Element e of the group: pixel e / cg, channel g*cg + e % cg.
    double s = 0.0;
    for (long long e = threadIdx.x; e < count; e += kV1Threads)
        s += (double)__half2float(x[(e / cg) * p.c + e % cg]);
    const double mean = v1_block_sum(s, red) / (double)count;
    double ss = 0.0;
    for (long long e = threadIdx.x; e < count; e += kV1Threads) {
        const double dv = (double)__half2float(x[(e / cg) * p.c + e % cg]) - mean;
        ss += dv * dv;
    }
    const double var = v1_block_sum(ss, red) / (double)count;  // biased, as torch
    const double rstd = 1.0 / sqrt(var + (double)p.eps);
    const __half *gamma = (const __half *)p.gamma + (size_t)g * cg;
    const __half *beta = (const __half *)p.beta + (size_t)g * cg;
    for (long long e = threadIdx.x; e < count; e += kV1Threads) {
        const int j = (int)(e % cg);
        const float a = (float)(rstd * (double)__half2float(gamma[j]));
        const float bb = (float)((double)__half2float(beta[j]) - (double)a * mean);
        const size_t off = (size_t)(e / cg) * p.c + j;
        float v = fmaf(__half2float(x[off]), a, bb);
        if (p.silu) v = hsd_silu(v);
        y[off] = __float2half_rn(v);
    }
}

// ---- v2: Welford partials + apply --------------------------------------------

constexpr int kV2MaxC = 4096;         // per-channel coefficients in shared memory
constexpr int kV2TargetThreads = 512;  // stats block: nvec * rpb, rounded up to warps
constexpr int kV2ApplyThreads = 256;
constexpr int kV2MaxSplits = 64;
constexpr long kV2MaxPartials = 1L << 18;  // (sample, split, group) partials per call
constexpr int kV2MaxDevices = 64;

// The partials workspace of each device (see the header): allocated once,
// under relaxed stream-capture mode so that a first call inside a graph
// capture may allocate too; never freed (process lifetime).
std::mutex g_part_mutex;
float *g_part[kV2MaxDevices];

enum hsd_status v2_workspace(float **out) {
    int dev = 0;
    HSD_CUDA_TRY(cudaGetDevice(&dev));
    if (dev < 0 || dev >= kV2MaxDevices)
        return hsd_fail(HSD_ERR_UNSUPPORTED, "group_norm: device %d past %d", dev, kV2MaxDevices);
    std::lock_guard<std::mutex> lock(g_part_mutex);
    if (!g_part[dev]) {
        cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
        HSD_CUDA_TRY(cudaThreadExchangeStreamCaptureMode(&mode));
        void *p = nullptr;
        cudaError_t e = cudaMalloc(&p, (size_t)kV2MaxPartials * 3 * sizeof(float));
        cudaThreadExchangeStreamCaptureMode(&mode);
        if (e != cudaSuccess)
            return hsd_fail(HSD_ERR_NOMEM, "group_norm workspace: %s", cudaGetErrorString(e));
        g_part[dev] = (float *)p;
    }
    *out = g_part[dev];
    return HSD_OK;
}

struct v2_args {
    int nvec;          // c / 8 vector columns
    int rpb;           // pixel rows per stats block
    int splits;        // stats blocks per sample
    int pix_per_split; // pixels per stats block
    int apply_splits;  // apply blocks per sample
    int pix_per_apply; // pixels per apply block
    float *part;       // [n, splits, groups, 3]: count, mean, M2
};

// (n, mean, m2) += (nb, mb, m2b): Chan et al.'s pairwise update.
__device__ __forceinline__ void chan_merge(float &n, float &mean, float &m2, float nb, float mb,
                                           float m2b) {
    if (nb == 0.0f) return;
    if (n == 0.0f) {
        n = nb;
        mean = mb;
        m2 = m2b;
        return;
    }
    const float nn = n + nb;
    const float delta = mb - mean;
    const float fb = nb / nn;
    mean += delta * fb;
    m2 += m2b + delta * delta * n * fb;  // delta^2 * na * nb / (na + nb)
    n = nn;
}

__device__ __forceinline__ void chan_warp_merge(float &n, float &mean, float &m2) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float nb = __shfl_xor_sync(0xffffffffu, n, o);
        const float mb = __shfl_xor_sync(0xffffffffu, mean, o);
        const float m2b = __shfl_xor_sync(0xffffffffu, m2, o);
        chan_merge(n, mean, m2, nb, mb, m2b);
    }
}

__global__ void hsd_group_norm_v2_stats_kernel(const hsd_group_norm_params p, const v2_args a) {
    HSD_DYNAMIC_SMEM(smem_raw);
    float *sm = reinterpret_cast<float *>(smem_raw);  // mean [rpb][c], m2 [rpb][c], count [rpb]
    float *sm_mean = sm, *sm_m2 = sm + (size_t)a.rpb * p.c, *sm_cnt = sm + 2 * (size_t)a.rpb * p.c;
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int r = tid / a.nvec, cv = tid % a.nvec;
    const int s = blockIdx.x, b = blockIdx.y;
    const int p0 = s * a.pix_per_split, p1 = min(p.hw, p0 + a.pix_per_split);
    if (r < a.rpb) {
        float mean[8], m2[8], cnt = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; e++) mean[e] = m2[e] = 0.0f;
        const __half *x = (const __half *)p.in + (size_t)b * p.hw * p.c + (size_t)cv * 8;
        for (int px = p0 + r; px < p1; px += a.rpb) {
            hsd_h8 v;
            v.u = *reinterpret_cast<const uint4 *>(x + (size_t)px * p.c);
            cnt += 1.0f;
            const float inv = 1.0f / cnt;
#pragma unroll
            for (int e = 0; e < 8; e++) {
                const float xv = __half2float(v.h[e]);
                const float dl = xv - mean[e];
                mean[e] = fmaf(dl, inv, mean[e]);
                m2[e] = fmaf(dl, xv - mean[e], m2[e]);
            }
        }
#pragma unroll
        for (int e = 0; e < 8; e++) {
            sm_mean[(size_t)r * p.c + cv * 8 + e] = mean[e];
            sm_m2[(size_t)r * p.c + cv * 8 + e] = m2[e];
        }
        if (cv == 0) sm_cnt[r] = cnt;
    }
    __syncthreads();
    const int cg = p.c / p.groups, nwarps = blockDim.x / 32;
    for (int g = warp; g < p.groups; g += nwarps) {
        float n = 0.0f, mean = 0.0f, m2 = 0.0f;
        for (int item = lane; item < a.rpb * cg; item += 32) {
            const int rr = item / cg;
            const size_t j = (size_t)rr * p.c + (size_t)g * cg + item % cg;
            chan_merge(n, mean, m2, sm_cnt[rr], sm_mean[j], sm_m2[j]);
        }
        chan_warp_merge(n, mean, m2);
        if (lane == 0) {
            float *dst = a.part + (((size_t)b * a.splits + s) * p.groups + g) * 3;
            dst[0] = n;
            dst[1] = mean;
            dst[2] = m2;
        }
    }
}

__global__ void __launch_bounds__(kV2ApplyThreads)
    hsd_group_norm_v2_apply_kernel(const hsd_group_norm_params p, const v2_args a) {
    __shared__ float coef_a[kV2MaxC], coef_b[kV2MaxC];
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int b = blockIdx.y;
    const int cg = p.c / p.groups;
    for (int g = warp; g < p.groups; g += kV2ApplyThreads / 32) {
        float n = 0.0f, mean = 0.0f, m2 = 0.0f;
        for (int s = lane; s < a.splits; s += 32) {
            const float *src = a.part + (((size_t)b * a.splits + s) * p.groups + g) * 3;
            chan_merge(n, mean, m2, src[0], src[1], src[2]);
        }
        chan_warp_merge(n, mean, m2);
        const float var = fmaxf(m2 / n, 0.0f);  // biased, as torch
        const float rstd = 1.0f / sqrtf(var + p.eps);
        for (int j = lane; j < cg; j += 32) {
            const int ch = g * cg + j;
            const float ga = rstd * __half2float(((const __half *)p.gamma)[ch]);
            coef_a[ch] = ga;
            coef_b[ch] = __half2float(((const __half *)p.beta)[ch]) - ga * mean;
        }
    }
    __syncthreads();
    const int p0 = blockIdx.x * a.pix_per_apply, p1 = min(p.hw, p0 + a.pix_per_apply);
    const size_t base = (size_t)b * p.hw * p.c;
    const __half *x = (const __half *)p.in + base;
    __half *y = (__half *)p.out + base;
    for (size_t v = (size_t)p0 * a.nvec + tid; v < (size_t)p1 * a.nvec; v += kV2ApplyThreads) {
        const int ch0 = (int)(v % a.nvec) * 8;
        hsd_h8 in, out;
        in.u = *reinterpret_cast<const uint4 *>(x + v * 8);
#pragma unroll
        for (int e = 0; e < 8; e++) {
            float t = fmaf(__half2float(in.h[e]), coef_a[ch0 + e], coef_b[ch0 + e]);
            if (p.silu) t = hsd_silu(t);
            out.h[e] = __float2half_rn(t);
        }
        *reinterpret_cast<uint4 *>(y + v * 8) = out.u;
    }
}

}  // namespace

extern "C" enum hsd_status hsd_group_norm_v1_twopass(const struct hsd_group_norm_params *p,
                                                     cudaStream_t stream) {
    enum hsd_status st = group_norm_check(p, "hsd_group_norm_v1_twopass");
    if (st != HSD_OK) return st;
    HSD_LAUNCH(hsd_group_norm_v1_twopass_kernel, dim3((unsigned)p->groups, (unsigned)p->n),
               kV1Threads, 0, stream, *p);
    HSD_CUDA_CHECK_LAUNCH("hsd_group_norm_v1_twopass");
    return HSD_OK;
}

extern "C" enum hsd_status hsd_group_norm_v2_welford(const struct hsd_group_norm_params *p,
                                                     cudaStream_t stream) {
    const char *name = "hsd_group_norm_v2_welford";
    enum hsd_status st = group_norm_check(p, name);
    if (st != HSD_OK) return st;
    const int cg = p->c / p->groups;
    if (p->c % 8 != 0 || p->c > kV2MaxC || !hsd_aligned16(p->in) || !hsd_aligned16(p->out) ||
        (long long)p->hw * cg >= (1LL << 24)) {
        return hsd_fail(HSD_ERR_UNSUPPORTED,
                        "%s: needs c %% 8 == 0, c <= %d, 16-byte aligned in/out and groups of "
                        "< 2^24 values (c=%d hw=%d groups=%d)",
                        name, kV2MaxC, p->c, p->hw, p->groups);
    }
    v2_args a;
    a.nvec = p->c / 8;
    a.rpb = kV2TargetThreads / a.nvec > 0 ? kV2TargetThreads / a.nvec : 1;
    if (a.rpb > p->hw) a.rpb = p->hw;
    // At least 8 pixels per thread in the stats pass (its partial merge is
    // the fixed cost), at most kV2MaxSplits blocks per sample.
    a.splits = p->hw / (a.rpb * 8);
    if (a.splits > kV2MaxSplits) a.splits = kV2MaxSplits;
    const long per_split = (long)p->n * p->groups;  // partials of one split
    if (per_split > kV2MaxPartials) {
        return hsd_fail(HSD_ERR_UNSUPPORTED, "%s: n*groups=%ld over the workspace's %ld", name,
                        per_split, kV2MaxPartials);
    }
    if ((long)a.splits * per_split > kV2MaxPartials) a.splits = (int)(kV2MaxPartials / per_split);
    if (a.splits < 1) a.splits = 1;
    a.pix_per_split = (p->hw + a.splits - 1) / a.splits;
    a.splits = (p->hw + a.pix_per_split - 1) / a.pix_per_split;  // no empty split
    // Apply: ~8 vectors per thread.
    const long long vecs = (long long)p->hw * a.nvec;
    long long asplits = (vecs + kV2ApplyThreads * 8 - 1) / (kV2ApplyThreads * 8);
    if (asplits > p->hw) asplits = p->hw;
    if (asplits > 65535) asplits = 65535;
    a.pix_per_apply = (int)((p->hw + asplits - 1) / asplits);
    a.apply_splits = (p->hw + a.pix_per_apply - 1) / a.pix_per_apply;

    const int stats_threads = (a.nvec * a.rpb + 31) / 32 * 32;
    const size_t stats_smem = (2 * (size_t)a.rpb * p->c + a.rpb) * sizeof(float);
    if (stats_threads > 1024 || stats_smem > 48 * 1024) {
        return hsd_fail(HSD_ERR_UNSUPPORTED, "%s: c=%d needs %d threads / %zu B shared memory",
                        name, p->c, stats_threads, stats_smem);
    }
    st = v2_workspace(&a.part);
    if (st != HSD_OK) return st;
    HSD_LAUNCH(hsd_group_norm_v2_stats_kernel, dim3((unsigned)a.splits, (unsigned)p->n),
               stats_threads, stats_smem, stream, *p, a);
    HSD_CUDA_CHECK_LAUNCH(name);
    HSD_LAUNCH(hsd_group_norm_v2_apply_kernel, dim3((unsigned)a.apply_splits, (unsigned)p->n),
               kV2ApplyThreads, 0, stream, *p, a);
    HSD_CUDA_CHECK_LAUNCH(name);
    return HSD_OK;
}
