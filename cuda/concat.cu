// concat_channels: out[m, ca + cb] with out[r, :ca] = a[r], out[r, ca:] =
// b[r] (diffusers UNet2DConditionModel up blocks: torch.cat([hidden,
// res_hidden], dim=1), the channel dim, last in our NHWC), fp16; the op of
// host/backend/cpu/cpu_eltwise.c (the reference truth). A copy: exact.
//
// Versions (registry: cuda/registry.cu, table concat_channels):
//   v1 hsd_concat_channels_v1_vec8  REFERENCE and PRODUCTION. One thread
//       per 16-byte output vector, read from a or b (ca % 8 == 0, so no
//       vector straddles the seam), grid-stride. Element-wise (one thread
//       per output element) when ca or cb is not a multiple of 8 or a
//       pointer is not 16-byte aligned. 2 * m * (ca + cb) * 2 bytes.
//       Status: compiled (sm_80, sm_90); passes the CPU emulation on every
//       test case; not yet run on a GPU.
// Planned: fold into the following conv's A loader (two base pointers split
// at channel ca), which removes the concatenated intermediate entirely.
//
// How to test: ctest --test-dir build -R test_cuda_eltwise (needs a GPU);
// ctest --test-dir build -R test_cuda_eltwise_emulated (no GPU).
// How to time: not in bench/bench_kernels.cu yet.
#include <stdint.h>

#include "common.cuh"
#include "concat.cuh"

namespace {

template <bool VEC>
__global__ void __launch_bounds__(256) hsd_concat_channels_v1_vec8_kernel(const hsd_concat_params p) {
    const __half *a = (const __half *)p.a;  // [m, ca]
    const __half *b = (const __half *)p.b;  // [m, cb]
    __half *out = (__half *)p.out;          // [m, ca + cb]
    const size_t ca = (size_t)p.ca, cb = (size_t)p.cb, cc = ca + cb;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    if (VEC) {
        const size_t cv = cc / 8, total = (size_t)p.m * cv;
        for (size_t v = (size_t)blockIdx.x * blockDim.x + threadIdx.x; v < total; v += stride) {
            const size_t r = v / cv, j = (v % cv) * 8;
            const __half *src = j < ca ? a + r * ca + j : b + r * cb + (j - ca);
            reinterpret_cast<uint4 *>(out)[v] = *reinterpret_cast<const uint4 *>(src);
        }
    } else {
        const size_t total = (size_t)p.m * cc;
        for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
            const size_t r = i / cc, j = i % cc;
            out[i] = j < ca ? a[r * ca + j] : b[r * cb + (j - ca)];
        }
    }
}

}  // namespace

extern "C" enum hsd_status hsd_concat_channels_v1_vec8(const struct hsd_concat_params *p,
                                                       cudaStream_t stream) {
    const char *name = "hsd_concat_channels_v1_vec8";
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: NULL params", name);
    if (p->m <= 0 || p->ca <= 0 || p->cb <= 0) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: dims must be positive (m=%d ca=%d cb=%d)", name,
                        p->m, p->ca, p->cb);
    }
    if (!p->out || !p->a || !p->b) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: out, a, b must be non-NULL", name);
    }
    const bool vec = p->ca % 8 == 0 && p->cb % 8 == 0 && hsd_aligned16(p->out) &&
                     hsd_aligned16(p->a) && hsd_aligned16(p->b);
    const size_t elems = (size_t)p->m * ((size_t)p->ca + (size_t)p->cb);
    const size_t work = vec ? elems / 8 : elems;
    size_t blocks = (work + 255) / 256;
    if (blocks > 65536) blocks = 65536;  // grid-stride beyond
    auto kernel = vec ? hsd_concat_channels_v1_vec8_kernel<true>
                      : hsd_concat_channels_v1_vec8_kernel<false>;
    HSD_LAUNCH(kernel, (unsigned)blocks, 256, 0, stream, *p);
    HSD_CUDA_CHECK_LAUNCH(name);
    return HSD_OK;
}
