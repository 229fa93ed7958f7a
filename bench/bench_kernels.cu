// bench_kernels: every CUDA kernel version of the registry (cuda/registry.h)
// on the SD1.5 shapes at a 64x64 latent, batch 2, with the baselines in the
// same run:
//   conv2d     cuDNN's best algorithm (cudnnFindConvolutionForwardAlgorithmEx,
//              NHWC fp16, fp32 compute, tensor-op math; plain conv, no bias)
//              and cuBLAS on the same GEMM (M = n*ho*wo, N = co, K =
//              kh*kw*ci, fp16 in/out, fp32 compute) -- the implicit GEMM's
//              roofline without the gather. Row hsd_cudnn_conv2d: the
//              backend's cuDNN alternative (cuda/conv2d_cudnn.h, bias and
//              residual fused like ours), timed as a version
//   attention  cuBLAS's two GEMMs of unfused attention (Q K^T, P V; no
//              softmax): a floor for the GEMM work; PyTorch SDPA (flash)
//              comes from bench/sdpa_bench.py on the same card
//   memory-bound ops  the measured device-to-device copy bandwidth
//   lora       cuBLAS's two GEMMs of the same side product (shrink
//              in down^T into tmp, expand tmp up^T accumulated into out;
//              the per-sample scale left out): what cuBLAS strided calls
//              would cost instead of cuda/lora.cu's kernel
// SDXL's shapes (issue 11, 1024^2 = 128x128 latents, batch 2) join the SD1.5
// ones: attention d = 64 with 10/20 heads at t = 4096/1024 and kv 77 (the
// 2048-wide context is projected to 640/1280 by to_k/to_v before it), and
// every distinct convolution of the SDXL-base U-Net (cases named sdxl_*).
// Timing (docs/conventions.md "Timing"): CUDA events around each launch, 3 warm-up
// launches, the L2 flushed (a memset of 2x its size) before every timed
// repeat, median of --reps (default 30, >= 20); REFERENCE versions (simple,
// slow, not performance targets) get 3 repeats. Random inputs (never
// zeros). Peaks measured in the same run: copy bandwidth (cudaMemcpyAsync
// of 1 GiB, bytes read + written) and the fp16 tensor-core rate (cuBLAS
// 8192^3, fp32 accumulate).
//
// Output: a table on stdout, and one JSON object per line (--json PATH, or
// stdout lines starting with '{' with --json -):
//   {"bench": "kernels", "device": ..., "op": ..., "case": ..., "version": ...,
//    "ms": ..., "tflops": ..., "gbps": ..., "pct_peak": ..., "baseline": ...,
//    "baseline_ms": ..., "speedup_vs_baseline": ..., "reps": ...}
// speedup_vs_baseline = baseline_ms / ms (> 1: ours is faster).
//
// Usage: bench_kernels [--op NAME] [--reps N] [--json PATH] [--no-ref]
// Without a GPU: prints "no GPU: skipped" and exits 77.
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#ifdef HSD_HAVE_CUDNN
#include <cudnn.h>
#endif

#include <algorithm>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <string>
#include <vector>

#include "conv2d.cuh"
#include "conv2d_cudnn.h"
#include "registry.h"

namespace {

#define CUDA_OK(call)                                                                    \
    do {                                                                                 \
        cudaError_t e_ = (call);                                                         \
        if (e_ != cudaSuccess) {                                                         \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call,                \
                    cudaGetErrorString(e_));                                             \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)
#define CUBLAS_OK(call)                                                                  \
    do {                                                                                 \
        cublasStatus_t s_ = (call);                                                      \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                               \
            fprintf(stderr, "%s:%d: %s: cublas status %d\n", __FILE__, __LINE__, #call,  \
                    (int)s_);                                                            \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

struct opts {
    const char *op = nullptr;
    int reps = 30;
    bool ref = true;
    FILE *json = nullptr;
} g_opt;

char g_device[256];
void *g_flush;
size_t g_flush_bytes;
cudaEvent_t g_ev0, g_ev1;
cublasHandle_t g_cublas;
double g_copy_gbps, g_gemm_tflops;

// Uniform values in [lo, hi) from a hash of the index: random, never zeros.
__global__ void fill_kernel(__half *x, size_t n, uint32_t seed, float lo, float hi) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed;
        h ^= h >> 16;
        h *= 0x7feb352dU;
        h ^= h >> 15;
        h *= 0x846ca68bU;
        h ^= h >> 16;
        x[i] = __float2half_rn(lo + (hi - lo) * (float)(h >> 8) * (1.0f / 16777216.0f));
    }
}

uint32_t g_seed = 12345;
void *dev_random(size_t n, float lo = -1.0f, float hi = 1.0f) {
    void *p = nullptr;
    CUDA_OK(cudaMalloc(&p, n * 2 + 16));
    fill_kernel<<<1024, 256>>>((__half *)p, n, g_seed++, lo, hi);
    CUDA_OK(cudaGetLastError());
    return p;
}

// Median milliseconds of `reps` launches of fn, each after an L2 flush.
template <typename F>
double time_ms(F fn, int reps) {
    for (int i = 0; i < 3; i++) fn();
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<float> t;
    for (int i = 0; i < reps; i++) {
        CUDA_OK(cudaMemsetAsync(g_flush, i & 0xff, g_flush_bytes, 0));
        CUDA_OK(cudaEventRecord(g_ev0, 0));
        fn();
        CUDA_OK(cudaEventRecord(g_ev1, 0));
        CUDA_OK(cudaEventSynchronize(g_ev1));
        float ms = 0.0f;
        CUDA_OK(cudaEventElapsedTime(&ms, g_ev0, g_ev1));
        t.push_back(ms);
    }
    std::sort(t.begin(), t.end());
    return t.size() % 2 ? t[t.size() / 2] : 0.5 * (t[t.size() / 2 - 1] + t[t.size() / 2]);
}

bool want(const char *op) { return !g_opt.op || strcmp(g_opt.op, op) == 0; }

// One result: a table row and a JSON line. flops or bytes (one is 0).
void report(const char *op, const std::string &cs, const char *version, double ms, double flops,
            double bytes, const char *baseline, double baseline_ms, int reps) {
    const double tflops = flops > 0 ? flops / (ms * 1e-3) / 1e12 : 0.0;
    const double gbps = bytes > 0 ? bytes / (ms * 1e-3) / 1e9 : 0.0;
    const double pct = flops > 0 ? 100.0 * tflops / g_gemm_tflops : 100.0 * gbps / g_copy_gbps;
    const double speedup = baseline_ms > 0 ? baseline_ms / ms : 0.0;
    char rate[48];
    if (flops > 0) snprintf(rate, sizeof rate, "%8.1f TFLOP/s", tflops);
    else snprintf(rate, sizeof rate, "%8.0f GB/s    ", gbps);
    char vs[64] = "";
    if (baseline_ms > 0) snprintf(vs, sizeof vs, "%5.2fx vs %s", speedup, baseline);
    printf("%-11s %-34s %-32s %9.4f ms %s %5.1f%% %s\n", op, cs.c_str(), version, ms, rate, pct, vs);
    fflush(stdout);
    if (g_opt.json) {
        fprintf(g_opt.json,
                "{\"bench\": \"kernels\", \"device\": \"%s\", \"op\": \"%s\", \"case\": \"%s\", "
                "\"version\": \"%s\", \"ms\": %.6f, \"tflops\": %.3f, \"gbps\": %.1f, "
                "\"pct_peak\": %.2f, \"baseline\": \"%s\", \"baseline_ms\": %.6f, "
                "\"speedup_vs_baseline\": %.4f, \"reps\": %d}\n",
                g_device, op, cs.c_str(), version, ms, tflops, gbps, pct,
                baseline ? baseline : "", baseline_ms, speedup, reps);
        fflush(g_opt.json);
    }
}

int reps_for(const hsd_cuda_kernel_info &info) {
    return (info.flags & HSD_CUDA_REFERENCE) && !(info.flags & HSD_CUDA_PRODUCTION) ? 3 : g_opt.reps;
}
bool skip_version(const hsd_cuda_kernel_info &info, int arch) {
    if (!hsd_cuda_kernel_runs_on(&info, arch)) return true;
    return !g_opt.ref && (info.flags & HSD_CUDA_REFERENCE) && !(info.flags & HSD_CUDA_PRODUCTION);
}

// ---- peaks -------------------------------------------------------------------

void measure_peaks() {
    const size_t bytes = (size_t)1 << 30;
    void *a = nullptr, *b = nullptr;
    CUDA_OK(cudaMalloc(&a, bytes));
    CUDA_OK(cudaMalloc(&b, bytes));
    CUDA_OK(cudaMemset(a, 1, bytes));
    const double copy_ms =
        time_ms([&] { CUDA_OK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0)); }, 10);
    g_copy_gbps = 2.0 * bytes / (copy_ms * 1e-3) / 1e9;
    CUDA_OK(cudaFree(a));
    CUDA_OK(cudaFree(b));

    const int n = 8192;
    void *A = dev_random((size_t)n * n), *B = dev_random((size_t)n * n), *C = dev_random((size_t)n * n);
    const float one = 1.0f, zero = 0.0f;
    const double gemm_ms = time_ms(
        [&] {
            CUBLAS_OK(cublasGemmEx(g_cublas, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &one, A, CUDA_R_16F,
                                   n, B, CUDA_R_16F, n, &zero, C, CUDA_R_16F, n,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        },
        10);
    g_gemm_tflops = 2.0 * n * n * (double)n / (gemm_ms * 1e-3) / 1e12;
    CUDA_OK(cudaFree(A));
    CUDA_OK(cudaFree(B));
    CUDA_OK(cudaFree(C));
    printf("peaks: copy %.0f GB/s (read + write, 1 GiB), fp16 GEMM %.1f TFLOP/s (cuBLAS 8192^3, "
           "fp32 accumulate)\n",
           g_copy_gbps, g_gemm_tflops);
    if (g_opt.json) {
        fprintf(g_opt.json,
                "{\"bench\": \"kernels\", \"device\": \"%s\", \"op\": \"peak\", \"copy_gbps\": %.1f, "
                "\"gemm_fp16_tflops\": %.2f}\n",
                g_device, g_copy_gbps, g_gemm_tflops);
    }
}

// cuBLAS out[M][N] = A[M][K] * W[N][K]^T, row-major fp16, fp32 compute.
void cublas_gemm_rm(int M, int N, int K, const void *A, const void *W, void *out) {
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_OK(cublasGemmEx(g_cublas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, W, CUDA_R_16F, K, A,
                           CUDA_R_16F, K, &zero, out, CUDA_R_16F, N, CUBLAS_COMPUTE_32F,
                           CUBLAS_GEMM_DEFAULT));
}

// ---- conv2d ------------------------------------------------------------------

struct conv_shape {
    const char *what;
    int n, h, w, ci, co, k, stride, pad, residual;
};
const conv_shape k_conv[] = {
    {"conv_in", 2, 64, 64, 4, 320, 3, 1, 1, 0},
    {"res_64", 2, 64, 64, 320, 320, 3, 1, 1, 1},
    {"down_64", 2, 64, 64, 320, 320, 3, 2, 1, 0},
    {"res_conv1_32a", 2, 32, 32, 320, 640, 3, 1, 1, 0},
    {"res_32", 2, 32, 32, 640, 640, 3, 1, 1, 1},
    {"shortcut_32a", 2, 32, 32, 320, 640, 1, 1, 0, 0},
    {"down_32", 2, 32, 32, 640, 640, 3, 2, 1, 0},
    {"res_conv1_16a", 2, 16, 16, 640, 1280, 3, 1, 1, 0},
    {"res_16", 2, 16, 16, 1280, 1280, 3, 1, 1, 1},
    {"shortcut_16a", 2, 16, 16, 640, 1280, 1, 1, 0, 0},
    {"down_16", 2, 16, 16, 1280, 1280, 3, 2, 1, 0},
    {"res_8", 2, 8, 8, 1280, 1280, 3, 1, 1, 1},
    {"up0_conv1_8", 2, 8, 8, 2560, 1280, 3, 1, 1, 0},
    {"up0_shortcut_8", 2, 8, 8, 2560, 1280, 1, 1, 0, 0},
    {"up1_conv1_16a", 2, 16, 16, 2560, 1280, 3, 1, 1, 0},
    {"up1_conv1_16b", 2, 16, 16, 1920, 1280, 3, 1, 1, 0},
    {"upsampler_32", 2, 32, 32, 1280, 1280, 3, 1, 1, 0},
    {"up2_conv1_32a", 2, 32, 32, 1920, 640, 3, 1, 1, 0},
    {"up2_conv1_32b", 2, 32, 32, 1280, 640, 3, 1, 1, 0},
    {"up2_conv1_32c", 2, 32, 32, 960, 640, 3, 1, 1, 0},
    {"upsampler_64", 2, 64, 64, 640, 640, 3, 1, 1, 0},
    {"up3_conv1_64a", 2, 64, 64, 960, 320, 3, 1, 1, 0},
    {"up3_conv1_64b", 2, 64, 64, 640, 320, 3, 1, 1, 0},
    {"up3_shortcut_64a", 2, 64, 64, 960, 320, 1, 1, 0, 0},
    {"proj_64", 2, 64, 64, 320, 320, 1, 1, 0, 0},
    {"conv_out", 2, 64, 64, 320, 4, 3, 1, 1, 0},
    // SDXL-base at 128x128 latents (diffusers UNet2DConditionModel of
    // stable-diffusion-xl-base-1.0: blocks 320/640/1280, no 8x8 level).
    {"sdxl_conv_in", 2, 128, 128, 4, 320, 3, 1, 1, 0},
    {"sdxl_res_128", 2, 128, 128, 320, 320, 3, 1, 1, 1},
    {"sdxl_down_128", 2, 128, 128, 320, 320, 3, 2, 1, 0},
    {"sdxl_res_conv1_64a", 2, 64, 64, 320, 640, 3, 1, 1, 0},
    {"sdxl_res_64", 2, 64, 64, 640, 640, 3, 1, 1, 1},
    {"sdxl_shortcut_64a", 2, 64, 64, 320, 640, 1, 1, 0, 0},
    {"sdxl_down_64", 2, 64, 64, 640, 640, 3, 2, 1, 0},
    {"sdxl_res_conv1_32a", 2, 32, 32, 640, 1280, 3, 1, 1, 0},
    {"sdxl_res_32", 2, 32, 32, 1280, 1280, 3, 1, 1, 1},
    {"sdxl_shortcut_32a", 2, 32, 32, 640, 1280, 1, 1, 0, 0},
    {"sdxl_up0_conv1_32a", 2, 32, 32, 2560, 1280, 3, 1, 1, 0},
    {"sdxl_up0_conv1_32c", 2, 32, 32, 1920, 1280, 3, 1, 1, 0},
    {"sdxl_up0_shortcut_32a", 2, 32, 32, 2560, 1280, 1, 1, 0, 0},
    {"sdxl_upsampler_64", 2, 64, 64, 1280, 1280, 3, 1, 1, 0},
    {"sdxl_up1_conv1_64a", 2, 64, 64, 1920, 640, 3, 1, 1, 0},
    {"sdxl_up1_conv1_64b", 2, 64, 64, 1280, 640, 3, 1, 1, 0},
    {"sdxl_up1_conv1_64c", 2, 64, 64, 960, 640, 3, 1, 1, 0},
    {"sdxl_upsampler_128", 2, 128, 128, 640, 640, 3, 1, 1, 0},
    {"sdxl_up2_conv1_128a", 2, 128, 128, 960, 320, 3, 1, 1, 0},
    {"sdxl_up2_conv1_128b", 2, 128, 128, 640, 320, 3, 1, 1, 0},
    {"sdxl_up2_shortcut_128a", 2, 128, 128, 960, 320, 1, 1, 0, 0},
    {"sdxl_conv_out", 2, 128, 128, 320, 4, 3, 1, 1, 0},
};

#ifdef HSD_HAVE_CUDNN
#define CUDNN_OK(call)                                                                   \
    do {                                                                                 \
        cudnnStatus_t s_ = (call);                                                       \
        if (s_ != CUDNN_STATUS_SUCCESS) {                                                \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call,                \
                    cudnnGetErrorString(s_));                                            \
            return -1.0;                                                                 \
        }                                                                                \
    } while (0)
cudnnHandle_t g_cudnn;
void *g_cudnn_ws;
const size_t k_cudnn_ws_bytes = (size_t)512 << 20;
// The backend's cuDNN alternative (cuda/conv2d_cudnn.h: fused bias and
// residual, IMPLICIT_PRECOMP_GEMM), timed as a version next to ours with
// the backend's 64 MiB workspace: what the backend's per-shape choice sees.
hsd_cudnn_conv *g_cudnn_conv;

// cuDNN's best forward algorithm for this conv, timed like ours; -1 if none.
double cudnn_conv_ms(const hsd_conv2d_params &p, int ho, int wo, int *algo_out) {
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    CUDNN_OK(cudnnCreateTensorDescriptor(&xd));
    CUDNN_OK(cudnnCreateTensorDescriptor(&yd));
    CUDNN_OK(cudnnCreateFilterDescriptor(&wd));
    CUDNN_OK(cudnnCreateConvolutionDescriptor(&cd));
    CUDNN_OK(cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NHWC, CUDNN_DATA_HALF, p.n, p.ci, p.h, p.w));
    CUDNN_OK(cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NHWC, CUDNN_DATA_HALF, p.n, p.co, ho, wo));
    // NHWC filter = [co][kh][kw][ci]: our weight layout.
    CUDNN_OK(cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_HALF, CUDNN_TENSOR_NHWC, p.co, p.ci, p.kh, p.kw));
    CUDNN_OK(cudnnSetConvolution2dDescriptor(cd, p.pad, p.pad, p.stride, p.stride, 1, 1,
                                             CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_OK(cudnnSetConvolutionMathType(cd, CUDNN_TENSOR_OP_MATH));
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int found = 0;
    CUDNN_OK(cudnnFindConvolutionForwardAlgorithmEx(
        g_cudnn, xd, p.in, wd, p.weight, cd, yd, p.out, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &found,
        perf, g_cudnn_ws, k_cudnn_ws_bytes));
    double best = -1.0;
    for (int i = 0; i < found; i++) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > k_cudnn_ws_bytes) continue;
        const cudnnConvolutionFwdAlgo_t algo = perf[i].algo;
        const float one = 1.0f, zero = 0.0f;
        bool ok = true;
        const double ms = time_ms(
            [&] {
                ok &= cudnnConvolutionForward(g_cudnn, &one, xd, p.in, wd, p.weight, cd, algo,
                                              g_cudnn_ws, k_cudnn_ws_bytes, &zero, yd, p.out) ==
                      CUDNN_STATUS_SUCCESS;
            },
            g_opt.reps);
        if (ok) {
            best = ms;
            *algo_out = (int)algo;
        }
        break;  // Find sorts by its own time: re-time the winner only
    }
    cudnnDestroyTensorDescriptor(xd);
    cudnnDestroyTensorDescriptor(yd);
    cudnnDestroyFilterDescriptor(wd);
    cudnnDestroyConvolutionDescriptor(cd);
    return best;
}
#endif

void bench_conv(int arch) {
    if (!want("conv2d")) return;
    int count = 0;
    const hsd_cuda_conv2d_entry *table = hsd_cuda_conv2d_table(&count);
    for (const conv_shape &s : k_conv) {
        hsd_conv2d_params p = {};
        p.n = s.n;
        p.h = s.h;
        p.w = s.w;
        p.ci = s.ci;
        p.co = s.co;
        p.kh = p.kw = s.k;
        p.stride = s.stride;
        p.pad = s.pad;
        int ho, wo;
        hsd_conv2d_out_size(&p, &ho, &wo);
        const int M = s.n * ho * wo, K = s.k * s.k * s.ci;
        const double flops = 2.0 * M * (double)s.co * K;
        char cs[96];
        snprintf(cs, sizeof cs, "%s_%dx%d_%d-%d_k%ds%d", s.what, s.h, s.w, s.ci, s.co, s.k, s.stride);
        void *in = dev_random((size_t)s.n * s.h * s.w * s.ci);
        void *wt = dev_random((size_t)s.co * K, -0.05f, 0.05f);
        void *bias = dev_random((size_t)s.co);
        void *out = dev_random((size_t)M * s.co);
        void *res = s.residual ? dev_random((size_t)M * s.co) : nullptr;
        p.in = in;
        p.weight = wt;
        p.out = out;

        // Baselines first: cuDNN (plain conv, no bias), cuBLAS (same GEMM).
        double base_ms = -1.0;
        const char *base = "cudnn";
#ifdef HSD_HAVE_CUDNN
        int algo = -1;
        base_ms = cudnn_conv_ms(p, ho, wo, &algo);
        if (base_ms > 0) {
            char v[48];
            snprintf(v, sizeof v, "cudnn_best(algo %d)", algo);
            report("conv2d", cs, v, base_ms, flops, 0, nullptr, 0, g_opt.reps);
        } else {
            printf("conv2d      %-34s cudnn: no algorithm ran\n", cs);
        }
#else
        printf("conv2d      %-34s cudnn: not built (no cudnn.h/libcudnn)\n", cs);
#endif
        {
            void *A = dev_random((size_t)M * K);  // the im2col matrix's size
            const double ms = time_ms([&] { cublas_gemm_rm(M, s.co, K, A, wt, out); }, g_opt.reps);
            report("conv2d", cs, "cublas_same_gemm", ms, flops, 0, nullptr, 0, g_opt.reps);
            if (base_ms <= 0) {
                base_ms = ms;
                base = "cublas_same_gemm";
            }
            CUDA_OK(cudaFree(A));
        }
        p.bias = bias;
        p.residual = res;
        for (int i = 0; i < count; i++) {
            if (skip_version(table[i].info, arch)) continue;
            bool ok = true;
            const int reps = reps_for(table[i].info);
            const double ms = time_ms([&] { ok &= table[i].launch(&p, 0) == HSD_OK; }, reps);
            if (!ok) {
                printf("conv2d      %-34s %-32s failed: %s\n", cs, table[i].info.name, hsd_last_error());
                continue;
            }
            report("conv2d", cs, table[i].info.name, ms, flops, 0, base, base_ms, reps);
        }
#ifdef HSD_HAVE_CUDNN
        if (g_cudnn_conv) {
            bool ok = hsd_cudnn_conv_supports(&p);
            const double ms =
                ok ? time_ms([&] { ok &= hsd_cudnn_conv2d(g_cudnn_conv, &p) == HSD_OK; }, g_opt.reps)
                   : -1.0;
            if (ok)
                report("conv2d", cs, "hsd_cudnn_conv2d", ms, flops, 0, base, base_ms, g_opt.reps);
            else
                printf("conv2d      %-34s %-32s not taken: %s\n", cs, "hsd_cudnn_conv2d",
                       hsd_cudnn_conv_supports(&p) ? hsd_last_error() : "supports() is 0");
        }
#endif
        CUDA_OK(cudaFree(in));
        CUDA_OK(cudaFree(wt));
        CUDA_OK(cudaFree(bias));
        CUDA_OK(cudaFree(out));
        if (res) CUDA_OK(cudaFree(res));
    }
}

// ---- attention -----------------------------------------------------------------

struct att_shape {
    const char *kind;
    int n, heads, d, t_q, t_kv;
};
const att_shape k_att[] = {
    {"self", 2, 8, 40, 4096, 4096},  {"self", 2, 8, 80, 1024, 1024},
    {"self", 2, 8, 160, 256, 256},   {"self", 2, 8, 160, 64, 64},
    {"cross", 2, 8, 40, 4096, 77},   {"cross", 2, 8, 80, 1024, 77},
    {"cross", 2, 8, 160, 256, 77},   {"cross", 2, 8, 160, 64, 77},
    {"self", 1, 8, 64, 16384, 16384},
    // SDXL-base at 1024^2: 64-wide heads, 10 at 64x64 (640 wide), 20 at
    // 32x32 (1280 wide); cross-attention over 77 tokens.
    {"self", 2, 10, 64, 4096, 4096}, {"self", 2, 20, 64, 1024, 1024},
    {"cross", 2, 10, 64, 4096, 77},  {"cross", 2, 20, 64, 1024, 77},
    // The SD VAE's mid-block attention: one 512-wide head (512x512 image).
    {"self", 1, 1, 512, 4096, 4096},
};

void bench_attention(int arch) {
    if (!want("attention")) return;
    int count = 0;
    const hsd_cuda_attention_entry *table = hsd_cuda_attention_table(&count);
    for (const att_shape &s : k_att) {
        const int hd = s.heads * s.d;
        char cs[96];
        // The case names of sdpa_bench.py and torch_fp16_error.py.
        snprintf(cs, sizeof cs, "%s_n%d_h%d_tq%d_tkv%d_d%d", s.kind, s.n, s.heads, s.t_q, s.t_kv, s.d);
        const double flops = 4.0 * s.n * s.heads * (double)s.t_q * s.t_kv * s.d;
        void *q = dev_random((size_t)s.n * s.t_q * hd, -2.0f, 2.0f);
        void *k = dev_random((size_t)s.n * s.t_kv * hd, -2.0f, 2.0f);
        void *v = dev_random((size_t)s.n * s.t_kv * hd, -2.0f, 2.0f);
        void *o = dev_random((size_t)s.n * s.t_q * hd);
        hsd_attention_params p = {};
        p.out = o;
        p.q = q;
        p.k = k;
        p.v = v;
        p.n = s.n;
        p.heads = s.heads;
        p.d = s.d;
        p.t_q = s.t_q;
        p.t_kv = s.t_kv;
        p.ldq = p.ldk = p.ldv = p.ldo = hd;
        p.scale = 1.0f / sqrtf((float)s.d);

        // cuBLAS: S = Q K^T and O = S V per (sample, head), heads strided
        // in place (strided-batched over heads, one call per sample).
        double base_ms = -1.0;
        {
            const size_t s_elems = (size_t)s.heads * s.t_q * s.t_kv;
            void *S = nullptr;
            if (cudaMalloc(&S, s_elems * 2) == cudaSuccess) {
                const float one = 1.0f, zero = 0.0f;
                base_ms = time_ms(
                    [&] {
                        for (int b = 0; b < s.n; b++) {
                            const __half *qb = (const __half *)q + (size_t)b * s.t_q * hd;
                            const __half *kb = (const __half *)k + (size_t)b * s.t_kv * hd;
                            const __half *vb = (const __half *)v + (size_t)b * s.t_kv * hd;
                            __half *ob = (__half *)o + (size_t)b * s.t_q * hd;
                            // S^T (col-major t_kv x t_q) = K Q^T per head.
                            CUBLAS_OK(cublasGemmStridedBatchedEx(
                                g_cublas, CUBLAS_OP_T, CUBLAS_OP_N, s.t_kv, s.t_q, s.d, &one, kb,
                                CUDA_R_16F, hd, s.d, qb, CUDA_R_16F, hd, s.d, &zero, S, CUDA_R_16F,
                                s.t_kv, (long long)s.t_q * s.t_kv, s.heads, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT));
                            // O^T (col-major d x t_q, ld hd) = V^T S^T.
                            CUBLAS_OK(cublasGemmStridedBatchedEx(
                                g_cublas, CUBLAS_OP_N, CUBLAS_OP_N, s.d, s.t_q, s.t_kv, &one, vb,
                                CUDA_R_16F, hd, s.d, S, CUDA_R_16F, s.t_kv,
                                (long long)s.t_q * s.t_kv, &zero, ob, CUDA_R_16F, hd, s.d, s.heads,
                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
                        }
                    },
                    g_opt.reps);
                report("attention", cs, "cublas_qk_pv_unfused", base_ms, flops, 0, nullptr, 0,
                       g_opt.reps);
                CUDA_OK(cudaFree(S));
            }
        }
        for (int i = 0; i < count; i++) {
            if (skip_version(table[i].info, arch)) continue;
            bool ok = true;
            const int reps = reps_for(table[i].info);
            const double ms = time_ms([&] { ok &= table[i].launch(&p, 0) == HSD_OK; }, reps);
            if (!ok) {
                printf("attention   %-34s %-32s failed: %s\n", cs, table[i].info.name, hsd_last_error());
                continue;
            }
            report("attention", cs, table[i].info.name, ms, flops, 0,
                   base_ms > 0 ? "cublas_qk_pv_unfused" : nullptr, base_ms, reps);
        }
        CUDA_OK(cudaFree(q));
        CUDA_OK(cudaFree(k));
        CUDA_OK(cudaFree(v));
        CUDA_OK(cudaFree(o));
    }
}

// ---- lora ---------------------------------------------------------------------

// The side product of one LoRA on both samples of a batch of 2 (both chose
// it: one run, the op's largest launch): SD1.5 and SDXL attention and
// feed-forward targets at real ranks.
struct lora_shape {
    const char *what;
    int tokens, k, r, n_out;
};
const lora_shape k_lora[] = {
    {"attn_l0", 4096, 320, 16, 320},         {"attn_l0", 4096, 320, 64, 320},
    {"attn_l1", 1024, 640, 128, 640},        {"ff0_l0", 4096, 320, 16, 2560},
    {"xattn_sdxl", 77, 2048, 32, 1280},      {"sdxl_attn_l1", 4096, 640, 32, 640},
    {"sdxl_attn_l2", 1024, 1280, 64, 1280},
};

void bench_lora(int arch) {
    if (!want("lora")) return;
    int count = 0;
    const hsd_cuda_lora_entry *table = hsd_cuda_lora_table(&count);
    for (const lora_shape &s : k_lora) {
        const int m = 2 * s.tokens;
        char cs[96];
        snprintf(cs, sizeof cs, "%s_n2_t%d_k%d_r%d_o%d", s.what, s.tokens, s.k, s.r, s.n_out);
        const double flops = 2.0 * m * (double)s.r * (s.k + s.n_out);
        void *in = dev_random((size_t)m * s.k), *out = dev_random((size_t)m * s.n_out);
        void *down = dev_random((size_t)s.r * s.k, -0.05f, 0.05f);
        void *up = dev_random((size_t)s.n_out * s.r, -0.05f, 0.05f);
        void *tmp = dev_random((size_t)m * s.r);
        const float scale[2] = {0.8f, 1.0f};
        hsd_lora_params p = {};
        p.out = out;
        p.in = in;
        p.down = down;
        p.up = up;
        p.tmp = tmp;
        p.scale = scale;
        p.n = 2;
        p.tokens = s.tokens;
        p.k = s.k;
        p.r = s.r;
        p.n_out = s.n_out;
        p.ldo = s.n_out;
        p.scale_ld = 1;
        p.mult = 1.0f;
        const float one = 1.0f;
        const double base_ms = time_ms(
            [&] {
                cublas_gemm_rm(m, s.r, s.k, in, down, tmp);
                // out (col-major n_out x m) += up (n_out x r) tmp^T.
                CUBLAS_OK(cublasGemmEx(g_cublas, CUBLAS_OP_T, CUBLAS_OP_N, s.n_out, m, s.r, &one,
                                       up, CUDA_R_16F, s.r, tmp, CUDA_R_16F, s.r, &one, out,
                                       CUDA_R_16F, s.n_out, CUBLAS_COMPUTE_32F,
                                       CUBLAS_GEMM_DEFAULT));
            },
            g_opt.reps);
        report("lora", cs, "cublas_shrink_expand", base_ms, flops, 0, nullptr, 0, g_opt.reps);
        for (int i = 0; i < count; i++) {
            if (skip_version(table[i].info, arch)) continue;
            bool ok = true;
            const int reps = reps_for(table[i].info);
            const double ms = time_ms([&] { ok &= table[i].launch(&p, 0) == HSD_OK; }, reps);
            if (!ok) {
                printf("lora        %-34s %-32s failed: %s\n", cs, table[i].info.name,
                       hsd_last_error());
                continue;
            }
            report("lora", cs, table[i].info.name, ms, flops, 0, "cublas_shrink_expand", base_ms,
                   reps);
        }
        CUDA_OK(cudaFree(in));
        CUDA_OK(cudaFree(out));
        CUDA_OK(cudaFree(down));
        CUDA_OK(cudaFree(up));
        CUDA_OK(cudaFree(tmp));
    }
}

// ---- memory-bound ops ------------------------------------------------------------

// Times every version of a table on one params struct; bytes = the
// minimum traffic (each input read once, each output written once).
template <typename Entry, typename Params>
void bench_table(const char *op, const Entry *table, int count, const Params &p,
                 const std::string &cs, double bytes, int arch) {
    for (int i = 0; i < count; i++) {
        if (skip_version(table[i].info, arch)) continue;
        bool ok = true;
        const int reps = reps_for(table[i].info);
        const double ms = time_ms([&] { ok &= table[i].launch(&p, 0) == HSD_OK; }, reps);
        if (!ok) {
            printf("%-11s %-34s %-32s failed: %s\n", op, cs.c_str(), table[i].info.name, hsd_last_error());
            continue;
        }
        report(op, cs, table[i].info.name, ms, 0, bytes, "copy", bytes / (g_copy_gbps * 1e6), reps);
    }
}

void bench_memory_ops(int arch) {
    int count = 0;
    if (want("group_norm")) {
        const struct { int hw, c, silu; } shapes[] = {{4096, 320, 1}, {1024, 640, 1},
                                                       {256, 1280, 1}, {64, 1280, 1},
                                                       {64, 2560, 1},  {4096, 960, 1},
                                                       {4096, 320, 0}};
        const hsd_cuda_group_norm_entry *t = hsd_cuda_group_norm_table(&count);
        for (auto &s : shapes) {
            const size_t nx = (size_t)2 * s.hw * s.c;
            hsd_group_norm_params p = {};
            p.in = dev_random(nx);
            p.out = dev_random(nx);
            p.gamma = dev_random((size_t)s.c);
            p.beta = dev_random((size_t)s.c);
            p.n = 2;
            p.hw = s.hw;
            p.c = s.c;
            p.groups = 32;
            p.eps = 1e-5f;
            p.silu = s.silu;
            char cs[64];
            snprintf(cs, sizeof cs, "n2_hw%d_c%d_g32%s", s.hw, s.c, s.silu ? "_silu" : "");
            bench_table("group_norm", t, count, p, cs, 2.0 * nx * 2, arch);
            cudaFree((void *)p.in);
            cudaFree(p.out);
            cudaFree((void *)p.gamma);
            cudaFree((void *)p.beta);
        }
    }
    if (want("layer_norm")) {
        const struct { int m, c; } shapes[] = {{8192, 320}, {2048, 640}, {512, 1280}, {154, 768}};
        const hsd_cuda_layer_norm_entry *t = hsd_cuda_layer_norm_table(&count);
        for (auto &s : shapes) {
            const size_t nx = (size_t)s.m * s.c;
            hsd_layer_norm_params p = {};
            p.in = dev_random(nx);
            p.out = dev_random(nx);
            p.gamma = dev_random((size_t)s.c);
            p.beta = dev_random((size_t)s.c);
            p.m = s.m;
            p.c = s.c;
            p.eps = 1e-5f;
            char cs[64];
            snprintf(cs, sizeof cs, "m%d_c%d", s.m, s.c);
            bench_table("layer_norm", t, count, p, cs, 2.0 * nx * 2, arch);
            cudaFree((void *)p.in);
            cudaFree(p.out);
            cudaFree((void *)p.gamma);
            cudaFree((void *)p.beta);
        }
    }
    if (want("geglu")) {
        const struct { int m, f; } shapes[] = {{8192, 1280}, {2048, 2560}, {512, 5120}};
        const hsd_cuda_geglu_entry *t = hsd_cuda_geglu_table(&count);
        for (auto &s : shapes) {
            hsd_geglu_params p = {};
            p.in = dev_random((size_t)s.m * 2 * s.f);
            p.out = dev_random((size_t)s.m * s.f);
            p.m = s.m;
            p.f = s.f;
            char cs[64];
            snprintf(cs, sizeof cs, "m%d_f%d", s.m, s.f);
            bench_table("geglu", t, count, p, cs, 3.0 * s.m * s.f * 2, arch);
            cudaFree((void *)p.in);
            cudaFree(p.out);
        }
    }
    if (want("upsample_nearest2x")) {
        const struct { int h, c; } shapes[] = {{8, 1280}, {16, 1280}, {32, 640}};
        const hsd_cuda_upsample_nearest2x_entry *t = hsd_cuda_upsample_nearest2x_table(&count);
        for (auto &s : shapes) {
            const size_t nin = (size_t)2 * s.h * s.h * s.c;
            hsd_upsample_params p = {};
            p.in = dev_random(nin);
            p.out = dev_random(4 * nin);
            p.n = 2;
            p.h = p.w = s.h;
            p.c = s.c;
            char cs[64];
            snprintf(cs, sizeof cs, "n2_%dx%d_c%d", s.h, s.h, s.c);
            bench_table("upsample", t, count, p, cs, 5.0 * nin * 2, arch);
            cudaFree((void *)p.in);
            cudaFree(p.out);
        }
    }
    {
        const size_t n = (size_t)2 * 4096 * 320;
        void *a = dev_random(n, -4.0f, 4.0f), *b = dev_random(n), *o = dev_random(n);
        hsd_eltwise_params p = {};
        p.out = o;
        p.a = a;
        p.b = b;
        p.count = n;
        const std::string cs = "count2621440";
        if (want("add")) bench_table("add", hsd_cuda_add_table(&count), count, p, cs, 3.0 * n * 2, arch);
        if (want("silu")) bench_table("silu", hsd_cuda_silu_table(&count), count, p, cs, 2.0 * n * 2, arch);
        if (want("gelu")) bench_table("gelu", hsd_cuda_gelu_table(&count), count, p, cs, 2.0 * n * 2, arch);
        if (want("quick_gelu"))
            bench_table("quick_gelu", hsd_cuda_quick_gelu_table(&count), count, p, cs, 2.0 * n * 2, arch);
        if (want("relu")) bench_table("relu", hsd_cuda_relu_table(&count), count, p, cs, 2.0 * n * 2, arch);
        cudaFree(a);
        cudaFree(b);
        cudaFree(o);
    }
}

}  // namespace

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--op") && i + 1 < argc) {
            g_opt.op = argv[++i];
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            g_opt.reps = atoi(argv[++i]);
            if (g_opt.reps < 20) {
                fprintf(stderr, "bench_kernels: --reps below 20 gives no stable median; using 20\n");
                g_opt.reps = 20;
            }
        } else if (!strcmp(argv[i], "--json") && i + 1 < argc) {
            const char *path = argv[++i];
            g_opt.json = strcmp(path, "-") ? fopen(path, "w") : stdout;
            if (!g_opt.json) {
                perror(path);
                return 2;
            }
        } else if (!strcmp(argv[i], "--no-ref")) {
            g_opt.ref = false;
        } else {
            fprintf(stderr,
                    "usage: bench_kernels [--op NAME] [--reps N>=20] [--json PATH|-] [--no-ref]\n");
            return 2;
        }
    }
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        cudaGetLastError();
        printf("bench_kernels: no GPU: skipped\n");
        return 77;
    }
    cudaDeviceProp prop;
    CUDA_OK(cudaGetDeviceProperties(&prop, 0));
    snprintf(g_device, sizeof g_device, "%s", prop.name);
    const int arch = prop.major * 10 + prop.minor;
    printf("bench_kernels: %s (sm_%d, %d SMs, L2 %d MB), median of %d (reference versions: 3), "
           "L2 flushed between repeats\n",
           prop.name, arch, prop.multiProcessorCount, prop.l2CacheSize >> 20, g_opt.reps);
    g_flush_bytes = 2 * (size_t)prop.l2CacheSize;
    CUDA_OK(cudaMalloc(&g_flush, g_flush_bytes));
    CUDA_OK(cudaEventCreate(&g_ev0));
    CUDA_OK(cudaEventCreate(&g_ev1));
    CUBLAS_OK(cublasCreate(&g_cublas));
#ifdef HSD_HAVE_CUDNN
    if (cudnnCreate(&g_cudnn) != CUDNN_STATUS_SUCCESS) {
        fprintf(stderr, "cudnnCreate failed\n");
        return 1;
    }
    CUDA_OK(cudaMalloc(&g_cudnn_ws, k_cudnn_ws_bytes));
    if (hsd_cudnn_conv_create(&g_cudnn_conv, 0, (size_t)64 << 20) != HSD_OK)
        printf("hsd_cudnn_conv_create: %s: no hsd_cudnn_conv2d rows\n", hsd_last_error());
#endif
    measure_peaks();
    printf("%-11s %-34s %-32s %12s %15s %6s %s\n", "op", "case", "version", "time", "rate",
           "%peak", "vs baseline (baseline_ms / ms)");
    bench_conv(arch);
    bench_attention(arch);
    bench_memory_ops(arch);
    bench_lora(arch);
    if (g_opt.json && g_opt.json != stdout) fclose(g_opt.json);
    return 0;
}
