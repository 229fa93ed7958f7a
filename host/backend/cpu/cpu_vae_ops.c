// tanh_clamp, DecoderTiny's input clamp (relu, TAESD's other pointwise op,
// is with the other unary ops in cpu_eltwise.c). Flat,
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
