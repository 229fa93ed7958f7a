// Pointwise ops the VAEs need and the U-Net does not: relu (TAESD's
// AutoencoderTinyBlock) and tanh_clamp (DecoderTiny's input clamp). Flat,
// memory-bound passes in fixed-size blocks like cpu_eltwise.c, so an
// in-place call (out == in) stays correct.
//
// Test: ctest -R cpu_ops.
#include <math.h>

#include "backend/cpu/cpu_internal.h"
#include "core/status.h"

// Below this many elements a parallel region costs more than it saves.
#define PAR_MIN ((size_t)65536)
#define ELT_BLOCK ((size_t)4096)

enum hsd_status hsd_cpu_relu(struct hsd_backend *be, const struct hsd_eltwise_params *p) {
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "relu: NULL params");
    if (p->count && (!p->out || !p->a))
        return hsd_fail(HSD_ERR_INVALID_ARG, "relu: out, a must be non-NULL");
    const size_t count = p->count, blocks = (count + ELT_BLOCK - 1) / ELT_BLOCK;
    const float *a = p->a;  // [count]
    float *out = p->out;    // [count], may be a (in place)
#pragma omp parallel for num_threads(be->threads) schedule(static) if (count > PAR_MIN)
    for (size_t blk = 0; blk < blocks; blk++) {
        const size_t i1 = (blk + 1) * ELT_BLOCK < count ? (blk + 1) * ELT_BLOCK : count;
        // torch.relu keeps NaN (clamp_min propagates it): compare so that
        // NaN takes the "keep" branch.
        for (size_t i = blk * ELT_BLOCK; i < i1; i++) out[i] = a[i] < 0.0f ? 0.0f : a[i];
    }
    return HSD_OK;
}

enum hsd_status hsd_cpu_tanh_clamp(struct hsd_backend *be, const struct hsd_tanh_clamp_params *p) {
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "tanh_clamp: NULL params");
    if (!(p->limit > 0.0f) || !isfinite(p->limit))
        return hsd_fail(HSD_ERR_INVALID_ARG, "tanh_clamp: limit %g must be positive and finite",
                        (double)p->limit);
    if (p->count && (!p->out || !p->in))
        return hsd_fail(HSD_ERR_INVALID_ARG, "tanh_clamp: out, in must be non-NULL");
    const size_t count = p->count, blocks = (count + ELT_BLOCK - 1) / ELT_BLOCK;
    const float *in = p->in;  // [count]
    float *out = p->out;      // [count], may be in (in place)
    const float lim = p->limit;
    // Applied to latents only (n*4*h*w values): glibc tanhf (< 1 ulp, a
    // call, not vectorised) costs nothing next to the decoder's convs.
#pragma omp parallel for num_threads(be->threads) schedule(static) if (count > PAR_MIN)
    for (size_t blk = 0; blk < blocks; blk++) {
        const size_t i1 = (blk + 1) * ELT_BLOCK < count ? (blk + 1) * ELT_BLOCK : count;
        // diffusers DecoderTiny.forward: torch.tanh(x / 3) * 3, same order.
        for (size_t i = blk * ELT_BLOCK; i < i1; i++) out[i] = tanhf(in[i] / lim) * lim;
    }
    return HSD_OK;
}
