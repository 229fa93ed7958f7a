// lora: the unfused LoRA side product of backend.h (struct hsd_lora_params),
// out[b, t, 0:n_out] += s_b * (in[b, t, :] down^T) up^T for every sample b
// whose s_b = scale[b * scale_ld] * mult is not 0 (diffusers/PEFT
// LoraLayer: base(x) + lora_B(lora_A(x)) * scaling); rows of samples with
// s_b = 0 are neither read nor written. The op of
// host/backend/cpu/cpu_lora.c (the reference truth), done the same way:
// the samples that chose the adapter come in runs of consecutive rows, and
// each run is two rank-r GEMMs, "shrink" (in down^T, scaled per sample,
// into tmp) and "expand" (tmp up^T accumulated into out), as Punica's
// SGMV shrink/expand (arXiv 2310.18547).
//
// Precision: fp16 operands, fp32 accumulation; tmp holds s_b * (x A^T)
// rounded once to fp16 (tmp is an activation buffer of the backend's
// element size, models/lora.c), out is read, added to in fp32 and rounded
// once to fp16. A LoRA whose s * x A^T passes 65504 would overflow tmp;
// the scales are bounded by 16 (pipeline.c) and published adapters keep
// x A^T far below that.
//
// The per-sample scales are host memory (hsd_lora_select); the launcher
// reads them and passes each run's scales by value in the kernel
// arguments (at most kMaxRun samples per launch; longer runs are split),
// so no upload and no synchronization. A recorded CUDA graph would keep
// the scales of its recording: the U-Net therefore runs LoRA calls
// outside graphs (models/unet_forward.c, hsd_lora_active).
//
// Versions (registry: cuda/registry.cu, table lora):
//   v1 hsd_lora_v1_tiled  REFERENCE and PRODUCTION. One kernel for both
//      GEMMs, C[m, n] (+)= s(m) * A[m, :] . B[n, :]: 64x64 output tiles,
//      256 threads with 4x4 outputs each, k in steps of 16 through shared
//      memory as fp32, every load bounds-checked element by element (any
//      k, r, n_out, ldo, any alignment). Rank r < 64 leaves most of a
//      shrink tile idle; both GEMMs together are 2 * rows * r * (k + n_out)
//      flops, r/k of the base linear's (r = 16 at k = 320: 5%), so the
//      side product stays small next to the base GEMM even on CUDA cores.
//      Status: compiled (sm_80, sm_90); passes the CPU emulation
//      (test_cuda_lora_emulated); not yet run on a GPU.
// Planned: tensor-core (mma.sync) shrink/expand with the rank padded to 16,
// one launch for every run (Punica's segment pointers), measured against
// two cuBLAS strided-batched GEMMs per run.
//
// How to test: ctest --test-dir build -R test_cuda_lora (needs a GPU; SD and
// SDXL shapes, ranks 4..128) or -R test_cuda_lora_emulated (no GPU, small
// cases). How to time: bench_kernels --op lora (bench/bench_kernels.cu).
#include <stdint.h>

#include "common.cuh"
#include "lora.cuh"

namespace {

constexpr int kBM = 64, kBN = 64, kBK = 16, kThreads = 256;
// Samples per launch: their scales travel in the kernel arguments
// (4 * 64 bytes, far below the 4 KB argument limit).
constexpr int kMaxRun = 64;

struct lora_gemm {
    const __half *a;  // [m, lda], columns [0, k) used
    const __half *b;  // [n, k]
    __half *c;        // [m, ldc], columns [0, n) written
    int m, n, k, lda, ldc;
    int tokens;       // rows per sample: row i has scale[i / tokens]
    int accumulate;   // 1: c += s * A B^T; 0: c = s * A B^T
    float scale[kMaxRun];
};

__global__ void __launch_bounds__(kThreads) hsd_lora_v1_gemm_kernel(const lora_gemm g) {
    // +1 column: the stores below (consecutive threads, consecutive k)
    // hit 16 different banks.
    __shared__ float as[kBK][kBM + 1];
    __shared__ float bs[kBK][kBN + 1];
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const int m0 = blockIdx.x * kBM, n0 = blockIdx.y * kBN;
    float acc[4][4] = {};
    for (int k0 = 0; k0 < g.k; k0 += kBK) {
        for (int e = threadIdx.x; e < kBM * kBK; e += kThreads) {
            const int r = e / kBK, kk = e % kBK, k = k0 + kk;
            const int m = m0 + r, n = n0 + r;
            as[kk][r] = m < g.m && k < g.k ? __half2float(g.a[(size_t)m * g.lda + k]) : 0.0f;
            bs[kk][r] = n < g.n && k < g.k ? __half2float(g.b[(size_t)n * g.k + k]) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < kBK; kk++) {
            float av[4], bv[4];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                av[i] = as[kk][ty + 16 * i];
                bv[i] = bs[kk][tx + 16 * i];
            }
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int m = m0 + ty + 16 * i;
        if (m >= g.m) continue;
        const float s = g.scale[m / g.tokens];
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int n = n0 + tx + 16 * j;
            if (n >= g.n) continue;
            __half *c = g.c + (size_t)m * g.ldc + n;
            float v = s * acc[i][j];
            if (g.accumulate) v += __half2float(*c);
            *c = __float2half_rn(v);
        }
    }
}

enum hsd_status launch_gemm(const lora_gemm *g, cudaStream_t stream, const char *name) {
    const dim3 grid((unsigned)((g->m + kBM - 1) / kBM), (unsigned)((g->n + kBN - 1) / kBN));
    HSD_LAUNCH(hsd_lora_v1_gemm_kernel, grid, kThreads, 0, stream, *g);
    HSD_CUDA_CHECK_LAUNCH(name);
    return HSD_OK;
}

}  // namespace

extern "C" enum hsd_status hsd_lora_v1_tiled(const struct hsd_lora_params *p,
                                             cudaStream_t stream) {
    const char *name = "hsd_lora_v1_tiled";
    // The CPU backend's checks (cpu_lora.c), so both refuse the same calls.
    if (!p || !p->out || !p->in || !p->down || !p->up || !p->tmp || !p->scale)
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: NULL operand", name);
    if (p->n <= 0 || p->tokens <= 0 || p->k <= 0 || p->r <= 0 || p->n_out <= 0 ||
        p->ldo < p->n_out || p->scale_ld < 1)
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: bad dims n=%d tokens=%d k=%d r=%d n_out=%d",
                        name, p->n, p->tokens, p->k, p->r, p->n_out);
    // A launch's rows (kMaxRun samples) are counted in int.
    if ((size_t)p->tokens * kMaxRun > (size_t)INT32_MAX - kBM)
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: %d tokens per sample are too many", name,
                        p->tokens);
    const size_t t = (size_t)p->tokens;
    for (int b = 0; b < p->n;) {
        if (p->scale[(size_t)b * p->scale_ld] * p->mult == 0.0f) {
            b++;
            continue;
        }
        int e = b + 1;
        while (e < p->n && e - b < kMaxRun && p->scale[(size_t)e * p->scale_ld] * p->mult != 0.0f)
            e++;
        const int rows = (int)((size_t)(e - b) * t);
        const __half *in = (const __half *)p->in + (size_t)b * t * p->k;
        __half *out = (__half *)p->out + (size_t)b * t * p->ldo, *tmp = (__half *)p->tmp;
        // a, b, c, m, n, k, lda, ldc, tokens, accumulate, scale
        lora_gemm shrink = {in, (const __half *)p->down, tmp, rows, p->r, p->k, p->k, p->r,
                            p->tokens, 0, {}};
        lora_gemm expand = {tmp, (const __half *)p->up, out, rows, p->n_out, p->r, p->r, p->ldo,
                            p->tokens, 1, {}};
        for (int i = b; i < e; i++) {
            shrink.scale[i - b] = p->scale[(size_t)i * p->scale_ld] * p->mult;
            expand.scale[i - b] = 1.0f;
        }
        enum hsd_status s = launch_gemm(&shrink, stream, name);
        if (s) return s;
        if ((s = launch_gemm(&expand, stream, name))) return s;
        b = e;
    }
    return HSD_OK;
}
