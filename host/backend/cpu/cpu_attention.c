// attention: softmax(scale * q k^T) v per (sample, head), the math of
// torch.nn.functional.scaled_dot_product_attention (no dropout; no mask, or
// the causal one with causal = 1) with an fp32 softmax (max subtraction,
// torch's _softmax on the last dim).
//
// Causal (CLIP text encoder): a block of rows r0..r0+nr-1 sees keys
// 0..r0+nr-1 only, so both sgemms run over those kv_len keys and each row's
// scores past its own position are set to -inf, whose exp is exactly 0 (as
// transformers' additive mask of finfo.min gives after the max
// subtraction).
//
// Versions (hsd_cpu_attention_pick chooses; tests and bench_cpu_ops walk
// both by name):
//   v1_blocks (this file): below.
//   v2_flash (cpu_attention_flash.c): online softmax over L2 tiles with
//     K/V packed once per task and AVX2/FMA microkernels; 1.36x v1 at
//     d = 40, t = 4096, 2 threads (bench/RESULTS.md "Fused CPU attention").
//
// v1_blocks: blocks of query rows. One task = (sample, head, block of R query
// rows); per task one sgemm writes the score tile S[R, t_kv] = scale q k^T,
// the softmax runs over S in place (exp(s - max), row sum), and a second
// sgemm computes P v into the output rows, which are then scaled by
// 1 / row sum (the same as normalising P first, R*d multiplies instead of
// R*t_kv). Heads are read with their token strides (ldq/ldk/ldv/ldo), so no
// copies or transposes. Tasks run in an OpenMP loop; OpenBLAS runs each
// sgemm single-threaded inside it. R: see k_score_tile_bytes.
//
// Where the time goes (1 thread, t = 4096, d = 40, 8 heads, R = 256): q k^T
// 128 ms (84 GFLOP/s: K = 40 is a short reduction for OpenBLAS), softmax
// 72 ms (0.53 ns per score), p v 141 ms (76 GFLOP/s). At d = 40 a score
// carries only 160 flops of GEMM, so the exp is a third of the time; d = 80
// and 160 reach 55-63% of the FMA peak on 2 cores.
// Rejected: R = 64 (1 MiB tile, in L2): 25% slower at t = 4096, the k/v
// panels are repacked per task.
//
// Test: ctest -R cpu_ops (both versions). Time: bench_cpu_ops 0 attention
// (v1, v2 and the op table's choice, side by side).
#include <cblas.h>
#include <math.h>
#include <omp.h>

#include "backend/cpu/cpu_internal.h"
#include "core/status.h"

// Score tile budget per thread. Each task's two sgemms repack its k and v
// panels ([t_kv, d] each), so more rows per task amortise that better; at
// t = 4096, d = 40 (1 thread, 8 heads): 64 rows (1 MiB tile, in L2) 165+178
// ms of GEMM, 256 rows (4 MiB, in L3) 135+144 ms: the packing costs more
// than the L2 misses. 512+ rows measured no better (2 cores).
static const size_t k_score_tile_bytes = (size_t)4 << 20;
static const int k_min_rows = 16;
// Enough tasks per thread for dynamic scheduling to even out the tail.
static const long k_tasks_per_thread = 4;

// Softmax of one score row in place, without the final normalisation;
// returns 1 / (sum of exponentials). n is a multiple of 16 (the row is
// padded with -inf, whose exp is 0), so both loops run in whole vectors
// (one AVX-512 or two AVX2 vectors per 16 floats, no scalar tail): with t_kv = 77 the scalar remainder of 13 elements made the
// softmax 3.5x slower per element than at t_kv = 4096.
static float softmax_row_unnormalised(float *restrict s, int n) {
    float mx = s[0];
#pragma omp simd reduction(max : mx)
    for (int j = 0; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < n; j++) {
        float e = hsd_cpu_expf(s[j] - mx);
        s[j] = e;
        sum += e;
    }
    return 1.0f / sum;
}

enum hsd_status hsd_cpu_attention_v1_blocks(struct hsd_backend *be,
                                            const struct hsd_attention_params *p) {
    const int t_kv = p->t_kv, d = p->d, threads = be->threads;
    // Rows per task: as many as the tile budget allows (all of t_q for
    // cross attention with 77 keys), halved while there are too few tasks
    // to keep every thread busy.
    // Score rows padded to whole 64-byte lines (see softmax_row_unnormalised).
    const int ld_s = (t_kv + 15) & ~15;
    size_t rows = k_score_tile_bytes / ((size_t)ld_s * sizeof(float));

    if (rows > (size_t)p->t_q) rows = (size_t)p->t_q;
    if (rows < (size_t)k_min_rows) rows = (size_t)k_min_rows;
    while (rows > (size_t)k_min_rows &&
           (long)p->n * p->heads * (long)((p->t_q + rows - 1) / rows) <
               k_tasks_per_thread * threads) {
        rows /= 2;
    }
    const int R = (int)rows;
    const int blocks = (p->t_q + R - 1) / R;
    const long tasks = (long)p->n * p->heads * blocks;
    // Per thread: a score tile [R, ld_s] then R row-sum reciprocals padded
    // to whole cache lines.
    const size_t tile = (size_t)R * ld_s;
    const size_t sums = ((size_t)R + 15) & ~(size_t)15;
    float *scratch = hsd_cpu_scratch(be, (size_t)threads * (tile + sums) * sizeof(float));
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
        float *s = scratch + (size_t)omp_get_thread_num() * (tile + sums);  // [nr, ld_s]
        float *inv_sum = s + tile;                                           // [nr]
        const float *qb = q + ((size_t)b * p->t_q + r0) * p->ldq + (size_t)h * d;
        const float *kb = k + (size_t)b * t_kv * p->ldk + (size_t)h * d;
        const float *vb = v + (size_t)b * t_kv * p->ldv + (size_t)h * d;
        float *ob = out + ((size_t)b * p->t_q + r0) * p->ldo + (size_t)h * d;
        // Keys this block can see, and its score rows' length padded to 16.
        const int kv_len = p->causal ? r0 + nr : t_kv;
        const int ld_row = (kv_len + 15) & ~15;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, kv_len, d, p->scale, qb, p->ldq,
                    kb, p->ldk, 0.0f, s, ld_s);
        for (int i = 0; i < nr; i++) {
            float *row = s + (size_t)i * ld_s;
            for (int j = p->causal ? r0 + i + 1 : t_kv; j < ld_row; j++) row[j] = -INFINITY;
            inv_sum[i] = softmax_row_unnormalised(row, ld_row);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, d, kv_len, 1.0f, s, ld_s, vb,
                    p->ldv, 0.0f, ob, p->ldo);
        for (int i = 0; i < nr; i++) {
            float *restrict o = ob + (size_t)i * p->ldo;
            const float r = inv_sum[i];
            for (int j = 0; j < d; j++) o[j] *= r;
        }
    }
    return HSD_OK;
}

// v2_flash wherever its AVX2/FMA microkernels are built: it was faster on
// every bench_cpu_ops shape (2 threads: 1.26x at d = 80 to 1.85x for the
// 77-key cross attention and the causal text encoder; bench/RESULTS.md).
// Without AVX2 its plain C fallback has not been timed, and v1's OpenBLAS
// sgemms are the known quantity.
int hsd_cpu_attention_pick(const struct hsd_attention_params *p) {
    (void)p;
#if defined(__AVX2__) && defined(__FMA__)
    return 2;
#else
    return 1;
#endif
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
    if (p->causal && p->t_q != p->t_kv) {
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "attention: causal needs t_q == t_kv (got t_q=%d t_kv=%d)", p->t_q,
                        p->t_kv);
    }

    return hsd_cpu_attention_pick(p) == 2 ? hsd_cpu_attention_v2_flash(be, p)
                                          : hsd_cpu_attention_v1_blocks(be, p);
}
