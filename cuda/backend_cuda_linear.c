// The CUDA backend's linear op on cuBLASLt (backend_cuda.h):
//   out[m, n_out] = in[m, k] * W[n_out, k]^T + bias (+ residual)
// Column-major view (cuBLASLt's): D (n_out x m, ld n_out) =
//   op_T(A) * B + beta * C, with A = W read as a k x n_out column-major
//   matrix (ld k), B = in as k x m (ld k), C = residual (beta 1) or D
//   (beta 0). The bias is the epilogue's per-row vector of D (length
//   n_out: cublasLt's CUBLASLT_EPILOGUE_BIAS). fp16 A/B/C/D, fp32 compute
//   and scale. C may be D itself (in-place residual): C and D share one
//   layout, which cuBLASLt requires for in-place use.
// One plan (descriptors + heuristic algorithm) per (m, k, n_out, bias,
// residual, pointer alignment), made on the first call with that shape:
// during an eager run, never inside a graph capture (graph_begin records on
// the second call of a bucket).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cuda_internal.h"
#include "core/plan_stats.h"

enum { LT_WORKSPACE = 32 << 20 };  // cuBLAS's recommended size for Hopper

static const char *lt_err(cublasStatus_t s) { return cublasLtGetStatusString(s); }

#define LT_TRY(call)                                                                      \
    do {                                                                                  \
        cublasStatus_t st_ = (call);                                                      \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                 \
            return hsd_fail(HSD_ERR_DEVICE, "cuBLASLt: %s: %s", #call, lt_err(st_));      \
    } while (0)

enum hsd_status hsd_cuda_be_linear_init(struct cuda_impl *c) {
    LT_TRY(cublasLtCreate(&c->lt));
    cudaError_t e = cudaMalloc(&c->lt_ws, LT_WORKSPACE);
    if (e != cudaSuccess)
        return hsd_fail(HSD_ERR_NOMEM, "cuBLASLt workspace (%d MB): %s", LT_WORKSPACE >> 20,
                        cudaGetErrorString(e));
    c->lt_ws_bytes = LT_WORKSPACE;
    return HSD_OK;
}

static void plan_destroy(struct cuda_lt_plan *p) {
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->cd) cublasLtMatrixLayoutDestroy(p->cd);
}

void hsd_cuda_be_linear_destroy(struct cuda_impl *c) {
    for (int i = 0; i < c->n_plans; i++) plan_destroy(&c->plans[i]);
    free(c->plans);
    c->plans = NULL;
    c->n_plans = c->cap_plans = 0;
    if (c->lt_ws) cudaFree(c->lt_ws);
    c->lt_ws = NULL;
    if (c->lt) cublasLtDestroy(c->lt);
    c->lt = NULL;
}

// Largest power of two (<= 256) dividing every pointer: cuBLASLt's
// heuristics assume 256-byte alignment unless told less.
static int alignment(const struct hsd_linear_params *p) {
    uintptr_t bits = (uintptr_t)p->out | (uintptr_t)p->in | (uintptr_t)p->weight;
    if (p->bias) bits |= (uintptr_t)p->bias;
    if (p->residual) bits |= (uintptr_t)p->residual;
    int a = 256;
    while (a > 2 && (bits & (uintptr_t)(a - 1))) a >>= 1;
    return a;
}

static enum hsd_status plan_make(struct cuda_impl *c, struct cuda_lt_plan *pl) {
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cudaDataType_t f16 = CUDA_R_16F;
    LT_TRY(cublasLtMatmulDescCreate(&pl->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT_TRY(cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_TRY(cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    cublasLtEpilogue_t epi = pl->has_bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    LT_TRY(cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
                                          sizeof epi));
    if (pl->has_bias)
        LT_TRY(cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &f16,
                                              sizeof f16));
    LT_TRY(cublasLtMatrixLayoutCreate(&pl->a, f16, (uint64_t)pl->k, (uint64_t)pl->n, pl->k));
    LT_TRY(cublasLtMatrixLayoutCreate(&pl->b, f16, (uint64_t)pl->k, (uint64_t)pl->m, pl->k));
    LT_TRY(cublasLtMatrixLayoutCreate(&pl->cd, f16, (uint64_t)pl->n, (uint64_t)pl->m, pl->n));

    cublasLtMatmulPreference_t pref;
    LT_TRY(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = c->lt_ws_bytes;
    uint32_t al = (uint32_t)pl->align;
    cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    const cublasLtMatmulPreferenceAttributes_t al_attr[] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4 && st == CUBLAS_STATUS_SUCCESS; i++)
        st = cublasLtMatmulPreferenceSetAttribute(pref, al_attr[i], &al, sizeof al);
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulAlgoGetHeuristic(c->lt, pl->op, pl->a, pl->b, pl->cd, pl->cd, pref, 1,
                                            &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS)
        return hsd_fail(HSD_ERR_DEVICE, "cuBLASLt heuristic for linear m=%d k=%d n=%d: %s",
                        pl->m, pl->k, pl->n, lt_err(st));
    if (!found)
        return hsd_fail(HSD_ERR_UNSUPPORTED,
                        "cuBLASLt has no algorithm for linear m=%d k=%d n=%d (alignment %d)",
                        pl->m, pl->k, pl->n, pl->align);
    pl->algo = res.algo;
    return HSD_OK;
}

static enum hsd_status plan_get(struct cuda_impl *c, const struct hsd_linear_params *p,
                                struct cuda_lt_plan **out) {
    int align = alignment(p), hb = p->bias != NULL, hr = p->residual != NULL;
    for (int i = 0; i < c->n_plans; i++) {
        struct cuda_lt_plan *pl = &c->plans[i];
        if (pl->m == p->m && pl->k == p->k && pl->n == p->n_out && pl->has_bias == hb &&
            pl->has_res == hr && pl->align == align) {
            *out = pl;
            return HSD_OK;
        }
    }
    if (c->mode == CUDA_CAPTURE)
        return hsd_fail(HSD_ERR_INTERNAL,
                        "linear m=%d k=%d n=%d first seen inside a graph capture (graphs record "
                        "on the second call of a bucket)",
                        p->m, p->k, p->n_out);
    if (c->n_plans == c->cap_plans) {
        int cap = c->cap_plans ? 2 * c->cap_plans : 64;
        struct cuda_lt_plan *np = realloc(c->plans, (size_t)cap * sizeof *np);
        if (!np) return hsd_fail(HSD_ERR_NOMEM, "cuBLASLt plans");
        c->plans = np;
        c->cap_plans = cap;
    }
    struct cuda_lt_plan *pl = &c->plans[c->n_plans];
    memset(pl, 0, sizeof *pl);
    pl->m = p->m;
    pl->k = p->k;
    pl->n = p->n_out;
    pl->has_bias = hb;
    pl->has_res = hr;
    pl->align = align;
    enum hsd_status s = plan_make(c, pl);
    if (s) {
        plan_destroy(pl);
        return s;
    }
    c->n_plans++;
    hsd_plan_stats_add(HSD_PLAN_GEMM_PLAN);
    *out = pl;
    return HSD_OK;
}

enum hsd_status hsd_cuda_be_linear(struct hsd_backend *be, const struct hsd_linear_params *p) {
    struct cuda_impl *c = be->impl;
    if (c->mode == CUDA_REPLAY) return HSD_OK;
    if (!p->out || !p->in || !p->weight || p->m < 1 || p->k < 1 || p->n_out < 1)
        return hsd_fail(HSD_ERR_INVALID_ARG, "linear: bad params m=%d k=%d n_out=%d", p->m, p->k,
                        p->n_out);
    if (c->lost) return hsd_fail(HSD_ERR_DEVICE, "cuda:%d lost: %s", c->device, c->lost_msg);
    struct cuda_lt_plan *pl = NULL;
    enum hsd_status s = plan_get(c, p, &pl);
    if (s) return s;
    if (pl->has_bias) {
        cublasStatus_t st = cublasLtMatmulDescSetAttribute(
            pl->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p->bias, sizeof p->bias);
        if (st != CUBLAS_STATUS_SUCCESS)
            return hsd_fail(HSD_ERR_DEVICE, "cuBLASLt bias pointer: %s", lt_err(st));
    }
    float alpha = 1.0f, beta = p->residual ? 1.0f : 0.0f;
    const void *cmat = p->residual ? p->residual : p->out;
    cublasStatus_t st = cublasLtMatmul(c->lt, pl->op, &alpha, p->weight, pl->a, p->in, pl->b,
                                       &beta, cmat, pl->cd, p->out, pl->cd, &pl->algo, c->lt_ws,
                                       c->lt_ws_bytes, c->stream);
    if (st != CUBLAS_STATUS_SUCCESS)
        return hsd_fail(HSD_ERR_DEVICE, "cuBLASLt linear m=%d k=%d n=%d: %s", p->m, p->k,
                        p->n_out, lt_err(st));
    return HSD_OK;
}
