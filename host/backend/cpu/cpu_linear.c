// linear: torch.nn.functional.linear (out = in W^T + b), plus an optional
// fused residual add (diffusers attention/FF blocks add their input back).
// One cblas_sgemm over all m rows, called outside any OpenMP region so
// OpenBLAS spreads it over every thread. A weight kept in its file's
// precision (cpu_weights.c) is converted in blocks of output rows instead.
// --cpu-precision bf16: bf16 operands, fp32 accumulation (cpu_bf16.c).
//
// Test: ctest -R 'cpu_ops|cpu_bf16'. Time: bench_cpu_ops (linear 8192x320 -> 320).
#include <cblas.h>

#include "backend/cpu/cpu_internal.h"
#include "core/status.h"

enum hsd_status hsd_cpu_linear(struct hsd_backend *be, const struct hsd_linear_params *p) {
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "linear: NULL params");
    if (p->m <= 0 || p->k <= 0 || p->n_out <= 0) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "linear: dims must be positive (m=%d k=%d n_out=%d)",
                        p->m, p->k, p->n_out);
    }
    if (!p->out || !p->in || !p->weight) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "linear: out, in and weight must be non-NULL");
    }
    float *out = p->out;  // [m, n_out]
    // Bias and residual go into C first and the GEMM accumulates (beta 1):
    // the same one pass over C that beta 0 would spend zeroing it.
    int acc = hsd_cpu_gemm_prefill(out, p->bias, p->residual, (size_t)p->m, (size_t)p->n_out,
                                   be->threads);
    struct hsd_cpu_weight wv;
    const int view = hsd_cpu_weight_find(be, p->weight, &wv);
    if (view && (wv.rows != p->n_out || wv.k != p->k || wv.taps != 1))
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "linear: weight is [%d, %d] (taps %d), the call wants [%d, %d]", wv.rows,
                        wv.k, wv.taps, p->n_out, p->k);
    // --cpu-precision bf16 (cpu_bf16.c): bf16 operands, fp32 accumulation.
    if (((struct hsd_cpu *)be->impl)->bf16)
        return hsd_cpu_gemm_bf16(be, p->weight, view ? &wv : NULL, out, p->n_out, p->in, p->m,
                                 p->n_out, p->k, acc ? 1.0f : 0.0f);
    if (view) return hsd_cpu_gemm_view(be, &wv, out, p->n_out, p->in, p->m, acc ? 1.0f : 0.0f);
    hsd_cpu_blas_threads(be);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p->m, p->n_out, p->k, 1.0f,
                p->in, p->k,       // [m, k]
                p->weight, p->k,   // [n_out, k]
                acc ? 1.0f : 0.0f, out, p->n_out);
    return HSD_OK;
}
