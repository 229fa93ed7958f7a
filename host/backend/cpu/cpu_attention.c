// attention: softmax(scale * q k^T) v per (sample, head), the math of
// torch.nn.functional.scaled_dot_product_attention (no mask, no dropout)
// with an fp32 softmax (max subtraction, torch's _softmax on the last dim).
//
// Version: blocks of query rows. One task = (sample, head, block of R query
// rows); per task one sgemm writes the score tile S[R, t_kv] = scale q k^T,
// the softmax runs over S in place (exp(s - max), row sum), and a second
// sgemm computes P v into the output rows, which are then scaled by
// 1 / row sum (the same as normalising P first, R*d multiplies instead of
// R*t_kv). Heads are read with their token strides (ldq/ldk/ldv/ldo), so no
// copies or transposes. Tasks run in an OpenMP loop; OpenBLAS runs each
// sgemm single-threaded inside it. R is chosen so S stays in L2.
//
// Test: ctest -R cpu_ops. Time: bench_cpu_ops (t=4096 d=40, cross t_kv=77).
#include <cblas.h>
#include <math.h>
#include <omp.h>

#include "backend/cpu/cpu_internal.h"
#include "core/status.h"

// Score tile budget per thread: half of a 2 MiB L2, leaving room for the
// OpenBLAS packing buffers of k and v panels.
static const size_t k_score_tile_bytes = (size_t)1 << 20;
enum { k_min_rows = 16, k_max_rows = 256 };

// Softmax of one score row in place; returns 1 / (sum of exponentials).
static float softmax_row_unnormalised(float *restrict s, int t_kv) {
    float mx = s[0];
#pragma omp simd reduction(max : mx)
    for (int j = 0; j < t_kv; j++) mx = s[j] > mx ? s[j] : mx;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < t_kv; j++) {
        float e = hsd_cpu_expf(s[j] - mx);
        s[j] = e;
        sum += e;
    }
    return 1.0f / sum;
}

enum hsd_status hsd_cpu_attention(struct hsd_backend *be, const struct hsd_attention_params *p) {
    if (!p) return hsd_fail(HSD_ERR_INVALID_ARG, "attention: NULL params");
    if (p->n <= 0 || p->heads <= 0 || p->d <= 0 || p->t_q <= 0 || p->t_kv <= 0) {
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "attention: dims must be positive (n=%d heads=%d d=%d t_q=%d t_kv=%d)",
                        p->n, p->heads, p->d, p->t_q, p->t_kv);
    }
    const long hd = (long)p->heads * p->d;
    if (p->ldq < hd || p->ldk < hd || p->ldv < hd || p->ldo < hd) {
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "attention: token strides ldq=%d ldk=%d ldv=%d ldo=%d must be >= "
                        "heads*d=%ld",
                        p->ldq, p->ldk, p->ldv, p->ldo, hd);
    }
    if (!p->out || !p->q || !p->k || !p->v) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "attention: out, q, k, v must be non-NULL");
    }
    if (!isfinite(p->scale)) return hsd_fail(HSD_ERR_INVALID_ARG, "attention: scale not finite");

    const int t_kv = p->t_kv, d = p->d;
    size_t rows = k_score_tile_bytes / ((size_t)t_kv * sizeof(float));
    if (rows < (size_t)k_min_rows) rows = (size_t)k_min_rows;
    if (rows > (size_t)k_max_rows) rows = (size_t)k_max_rows;
    if (rows > (size_t)p->t_q) rows = (size_t)p->t_q;
    const int R = (int)rows;
    const int blocks = (p->t_q + R - 1) / R;
    const long tasks = (long)p->n * p->heads * blocks;
    const int threads = be->threads;
    // One score tile per thread, padded to whole cache lines.
    const size_t tile = ((size_t)R * t_kv + 15) & ~(size_t)15;
    float *scratch = hsd_cpu_scratch(be, (size_t)threads * tile * sizeof(float));
    if (!scratch) return hsd_fail_context(HSD_ERR_NOMEM, "attention: ");

    const float *q = p->q;  // [n, t_q, heads*d], stride ldq
    const float *k = p->k;  // [n, t_kv, heads*d], stride ldk
    const float *v = p->v;  // [n, t_kv, heads*d], stride ldv
    float *out = p->out;    // [n, t_q, heads*d], stride ldo
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (long task = 0; task < tasks; task++) {
        const int blk = (int)(task % blocks);
        const int h = (int)(task / blocks % p->heads);
        const int b = (int)(task / blocks / p->heads);
        const int r0 = blk * R;
        const int nr = p->t_q - r0 < R ? p->t_q - r0 : R;
        float *s = scratch + (size_t)omp_get_thread_num() * tile;  // [nr, t_kv]
        const float *qb = q + ((size_t)b * p->t_q + r0) * p->ldq + (size_t)h * d;
        const float *kb = k + (size_t)b * t_kv * p->ldk + (size_t)h * d;
        const float *vb = v + (size_t)b * t_kv * p->ldv + (size_t)h * d;
        float *ob = out + ((size_t)b * p->t_q + r0) * p->ldo + (size_t)h * d;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, t_kv, d, p->scale, qb, p->ldq, kb,
                    p->ldk, 0.0f, s, t_kv);
        float inv_sum[k_max_rows];
        for (int i = 0; i < nr; i++) inv_sum[i] = softmax_row_unnormalised(s + (size_t)i * t_kv, t_kv);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, d, t_kv, 1.0f, s, t_kv, vb,
                    p->ldv, 0.0f, ob, p->ldo);
        for (int i = 0; i < nr; i++) {
            float *restrict o = ob + (size_t)i * p->ldo;
            const float r = inv_sum[i];
            for (int j = 0; j < d; j++) o[j] *= r;
        }
    }
    return HSD_OK;
}
