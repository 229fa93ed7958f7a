// upsample_nearest2x: out[n, 2h, 2w, c] with out[b, y, x] = in[b, y/2, x/2]
// (F.interpolate(scale_factor=2, mode="nearest"), diffusers Upsample2D),
// fp16; the op of host/backend/cpu/cpu_eltwise.c (the reference truth).
//
// Versions (registry: cuda/registry.cu, table upsample_nearest2x):
//   v1 hsd_upsample_nearest2x_v1_vec8  REFERENCE and PRODUCTION. One
//       thread per 16-byte input vector, written to its 4 output pixels;
//       grid-stride. Element-wise (one thread per output element) when
//       c % 8 != 0 or a pointer is unaligned. 5 * n*h*w*c * 2 bytes.
//       Status: compiled (sm_80, sm_90); passes the CPU emulation on every
//       test case; not yet run on a GPU.
// Planned: fold into the following 3x3 conv's A loader (iy/2, ix/2), which
// removes the 4x-sized intermediate entirely.
//
// How to test: ctest --test-dir build -R test_cuda_eltwise (needs a GPU).
// How to time: build/cuda/bench_kernels --op upsample_nearest2x.
#include <stdint.h>

#include "common.cuh"
#include "upsample.cuh"

namespace {

template <bool VEC>
__global__ void __launch_bounds__(256) hsd_upsample_nearest2x_v1_vec8_kernel(const hsd_upsample_params p) {
    const __half *in = (const __half *)p.in;  // [n, h, w, c]
    __half *out = (__half *)p.out;            // [n, 2h, 2w, c]
    const size_t c = (size_t)p.c, w = (size_t)p.w, h = (size_t)p.h;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    if (VEC) {
        const size_t cv = c / 8, total = (size_t)p.n * h * w * cv;
        for (size_t v = (size_t)blockIdx.x * blockDim.x + threadIdx.x; v < total; v += stride) {
            const size_t ch = (v % cv) * 8, pix = v / cv;
            const size_t x = pix % w, y = pix / w % h, b = pix / (w * h);
            const uint4 val = *reinterpret_cast<const uint4 *>(in + pix * c + ch);
            __half *o = out + ((b * 2 * h + 2 * y) * 2 * w + 2 * x) * c + ch;
            *reinterpret_cast<uint4 *>(o) = val;
            *reinterpret_cast<uint4 *>(o + c) = val;
            *reinterpret_cast<uint4 *>(o + 2 * w * c) = val;
            *reinterpret_cast<uint4 *>(o + 2 * w * c + c) = val;
        }
    } else {
        const size_t total = (size_t)p.n * 4 * h * w * c;
        for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
            const size_t ch = i % c, pix = i / c;
            const size_t ox = pix % (2 * w), oy = pix / (2 * w) % (2 * h), b = pix / (4 * w * h);
            out[i] = in[((b * h + oy / 2) * w + ox / 2) * c + ch];
        }
    }
}

}  // namespace

extern "C" enum hsd_status hsd_upsample_nearest2x_v1_vec8(const struct hsd_upsample_params *p,
                                                          cudaStream_t stream) {
    const char *name = "hsd_upsample_nearest2x_v1_vec8";
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: NULL params", name);
    if (p->n <= 0 || p->h <= 0 || p->w <= 0 || p->c <= 0) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: dims must be positive (n=%d h=%d w=%d c=%d)",
                        name, p->n, p->h, p->w, p->c);
    }
    if (!p->out || !p->in) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: out and in must be non-NULL", name);
    const bool vec = p->c % 8 == 0 && hsd_aligned16(p->in) && hsd_aligned16(p->out);
    const size_t elems = (size_t)p->n * p->h * p->w * p->c;
    const size_t work = vec ? elems / 8 : elems * 4;
    size_t blocks = (work + 255) / 256;
    if (blocks > 65536) blocks = 65536;
    auto kernel = vec ? hsd_upsample_nearest2x_v1_vec8_kernel<true>
                      : hsd_upsample_nearest2x_v1_vec8_kernel<false>;
    HSD_LAUNCH(kernel, (unsigned)blocks, 256, 0, stream, *p);
    HSD_CUDA_CHECK_LAUNCH(name);
    return HSD_OK;
}
