// timestep_embedding: diffusers embeddings.get_timestep_embedding, fp32
// timesteps in, fp16 embedding out, evaluated in fp32 step by step as
// torch does (and as host/backend/cpu/cpu_embed.c, the reference truth,
// does): exponent = (-ln(max_period) * j) / (half - shift) with both
// constants rounded to fp32 first, arg = t * exp(exponent), then
// [sin | cos] (or [cos | sin] with flip_sin_to_cos), odd dim zero-padded.
// Accurate expf/sinf/cosf (no fast-math intrinsics): at t = 999 the
// argument is ~1e3 and __sinf's range reduction would be off by ~1e-3.
//
// Versions (registry: cuda/registry.cu, table timestep_embedding):
//   v1 hsd_timestep_embedding_v1_direct  REFERENCE and PRODUCTION. One
//       thread per (sample, frequency). [n, dim] is tiny (n * 320 values).
//       Status: compiled (sm_80, sm_90); passes the CPU emulation on every
//       test case; not yet run on a GPU.
//
// How to test: ctest --test-dir build -R test_cuda_eltwise (needs a GPU).
#include <math.h>
#include <stdint.h>

#include "common.cuh"
#include "timestep_embedding.cuh"

namespace {

__global__ void __launch_bounds__(256)
    hsd_timestep_embedding_v1_direct_kernel(const hsd_timestep_embedding_params p,
                                            float neg_log_period, float denom) {
    const int half_dim = p.dim / 2;
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)p.n * half_dim + p.n) return;
    __half *out = (__half *)p.out;  // [n, dim]
    if (i >= (long long)p.n * half_dim) {
        // The last column of odd dims: torch pads with a zero column.
        const int b = (int)(i - (long long)p.n * half_dim);
        if (p.dim % 2) out[(size_t)b * p.dim + p.dim - 1] = __float2half_rn(0.0f);
        return;
    }
    const int b = (int)(i / half_dim), j = (int)(i % half_dim);
    const float exponent = (neg_log_period * (float)j) / denom;
    const float arg = ((const float *)p.t)[b] * expf(exponent);
    const int sin_at = p.flip_sin_to_cos ? half_dim : 0;
    const int cos_at = p.flip_sin_to_cos ? 0 : half_dim;
    __half *row = out + (size_t)b * p.dim;
    row[sin_at + j] = __float2half_rn(sinf(arg));
    row[cos_at + j] = __float2half_rn(cosf(arg));
}

}  // namespace

extern "C" enum hsd_status hsd_timestep_embedding_v1_direct(
    const struct hsd_timestep_embedding_params *p, cudaStream_t stream) {
    const char *name = "hsd_timestep_embedding_v1_direct";
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: NULL params", name);
    if (p->n <= 0 || p->dim <= 0) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: dims must be positive (n=%d dim=%d)", name,
                        p->n, p->dim);
    }
    if (!p->out || !p->t) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: out and t must be non-NULL", name);
    const int half_dim = p->dim / 2;
    if (!(p->max_period > 0.0f)) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: max_period must be > 0 (got %g)", name,
                        (double)p->max_period);
    }
    if (half_dim > 0 && !((double)half_dim - (double)p->shift != 0.0)) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: half dim %d - shift %g must be non-zero", name,
                        half_dim, (double)p->shift);
    }
    // The same fp32 constants as the CPU backend (a Python float meeting a
    // float32 tensor is rounded to float32 first).
    const float neg_log_period = (float)(-log((double)p->max_period));
    const float denom = (float)((double)half_dim - (double)p->shift);
    const long long work = (long long)p->n * half_dim + p->n;
    HSD_LAUNCH(hsd_timestep_embedding_v1_direct_kernel, (unsigned)((work + 255) / 256), 256, 0,
               stream, *p, neg_log_period, denom);
    HSD_CUDA_CHECK_LAUNCH(name);
    return HSD_OK;
}
