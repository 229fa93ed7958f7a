// attention v2_flash: the same math as v1_blocks (cpu_attention.c header:
// torch SDPA, fp32 softmax, optional causal mask) without a score row of
// t_kv floats: flash-attention's online softmax (Dao et al. 2022, alg. 1)
// over L2-sized tiles, with AVX2/FMA register-blocked microkernels.
//
// One task = (sample, head, chunk of query rows). The task first packs the
// keys it can see once: K as blocks of 16 keys [d][16] (the q k^T
// microkernel loads 16 keys of one channel as two vectors) and V as
// [keys, dp] rows (dp = d rounded up to 8, zero padded). Then for each
// block of k_rows query rows (packed to [k_rows, d]) and each tile of
// k_keys keys:
//   S = scale log2(e) q k^T     [k_rows, k_keys], 6x16 microkernel
//   m' = max(m, rowmax S); c = 2^(m - m'); P = 2^(S - m');
//   l = c l + rowsum P; O = c O + P v   (6x16 and 6x8 microkernels)
// and finally out = O / l. Everything a tile touches stays in L2 (S 96 KB,
// K and V tiles 40 KB each at d = 40), and K/V are packed per task instead
// of per sgemm call (OpenBLAS repacked them for every 256 rows in v1).
//
// Rounding differs from v1 in the order of the sums (p v summed per tile
// after a rescale by c, which is exact when the row maximum did not change
// and one rounding otherwise) and in the exponential (base 2, see
// exp2_nonpos): within test_cpu_ops' TOL_GEMM, errors of the same size
// as v1's there (max 1.4e-6 of max|ref| against the double reference).
//
// Without AVX2+FMA the same tiles run through plain C loops (the compiler
// vectorises what it can); only the microkernels differ (tested with a
// -DHSD_NATIVE=OFF build; not timed, so hsd_cpu_attention_pick keeps v1
// there).
//
// Measured (bench_cpu_ops 2 attention, 2-core AVX2 EPYC, quiet, v1 -> v2):
// d40 t4096 461 -> 338 ms (127 GFLOP/s, 70% of sgemm), d40 kv77 18.6 ->
// 10.0 ms, d80 t1024 45 -> 36 ms, d160 t256 6.1 -> 4.6 ms, causal 12x64
// t77 0.73 -> 0.40 ms. Where d40's time goes (1 thread, perf): q k^T 33%,
// softmax 30%, p v 36%; both GEMM parts run at about the sgemm rate, so
// the exp is what is left. In base 2: d40 t4096 341 -> 306 ms (140
// GFLOP/s, 78% of sgemm), d80 t1024 36.7 -> 34.0 ms, d160 t256 4.9 -> 4.5
// ms, causal 0.43 -> 0.38 ms; with no exp at all (an upper bound, wrong
// results) d40 t4096 took 267 ms. Rejected (d40 t4096, 1 thread, loaded box,
// within noise of 96 x 256): tiles of 48 x 128 (+5%), 48 x 256 (+7%),
// 96 x 128, 24 x 512, 192 x 128 (+2-3%).
//
// Test: ctest -R cpu_ops (both versions against a double reference; v2 on
// 1 thread bitwise equal to v2 on every core).
// Time: bench_cpu_ops 0 attention (v1, v2 and the op table's choice).
#include <math.h>
#include <omp.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/status.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define HSD_ATTN_AVX2 1
#endif

// Query rows per block (a multiple of the microkernels' 6 rows) and keys
// per tile (a multiple of 16): S is 96 x 256 floats = 96 KB.
enum { k_rows = 96, k_keys = 256, k_mr = 6 };
static const long k_tasks_per_thread = 4;

static size_t round16(size_t x) { return (x + 15) & ~(size_t)15; }

// Per-thread scratch: packed K, packed V, packed q block, S, O, m, l.
struct flash_scratch {
    float *kp, *vp, *qp, *s, *o, *m, *l;
};
static size_t flash_scratch_floats(int t_kv, int d, int dp) {
    const size_t keys = round16((size_t)t_kv);
    return round16(keys * d) + round16(keys * dp) + round16((size_t)k_rows * d) +
           (size_t)k_rows * k_keys + (size_t)k_rows * dp + 2 * (size_t)k_rows;
}
static struct flash_scratch flash_scratch_at(float *base, int t_kv, int d, int dp) {
    const size_t keys = round16((size_t)t_kv);
    struct flash_scratch f;
    f.kp = base;
    f.vp = f.kp + round16(keys * d);
    f.qp = f.vp + round16(keys * dp);
    f.s = f.qp + round16((size_t)k_rows * d);
    f.o = f.s + (size_t)k_rows * k_keys;
    f.m = f.o + (size_t)k_rows * dp;
    f.l = f.m + k_rows;
    return f;
}

// K rows 0..kv_len-1 of one head into blocks of 16 keys [d][16], V into
// [kv_len rounded to 16, dp]; padding keys and channels are zero, so they
// add 0 * 0 to every sum (their probabilities are 0 as well).
static void pack_kv(float *restrict kp, float *restrict vp,
                                              const float *k, int ldk, const float *v, int ldv,
                                              int kv_len, int d, int dp) {
    const int keys = (int)round16((size_t)kv_len);
    for (int j0 = 0; j0 < keys; j0 += 16) {
        float *blk = kp + (size_t)j0 * d;
        for (int jj = 0; jj < 16; jj++) {
            const int j = j0 + jj;
            if (j < kv_len) {
                const float *kr = k + (size_t)j * ldk;
                for (int c = 0; c < d; c++) blk[c * 16 + jj] = kr[c];
            } else {
                for (int c = 0; c < d; c++) blk[c * 16 + jj] = 0.0f;
            }
        }
    }
    for (int j = 0; j < keys; j++) {
        float *vr = vp + (size_t)j * dp;
        if (j < kv_len) {
            memcpy(vr, v + (size_t)j * ldv, (size_t)d * sizeof *vr);
            for (int c = d; c < dp; c++) vr[c] = 0.0f;
        } else {
            memset(vr, 0, (size_t)dp * sizeof *vr);
        }
    }
}

// The AVX2 microkernels name their accumulators one by one: gcc 12 kept
// an array of __m256 accumulators on the stack and stored every one of
// them in each iteration (the q k^T kernel ran at half the p v rate).
#ifdef HSD_ATTN_AVX2
#define HSD_ATTN_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
// One row of a 6x16 AVX2 microkernel: a<r>0..1 += broadcast(*src) * b0..1.
#define HSD_ATTN_FMA_ROW16(r, src)                   \
    {                                                \
        const __m256 x = _mm256_broadcast_ss(src);   \
        a##r##0 = _mm256_fmadd_ps(x, b0, a##r##0);   \
        a##r##1 = _mm256_fmadd_ps(x, b1, a##r##1);   \
    }
#endif

// s[r, 0:16] = scale * sum_c qp[r, c] kblk[c, 0:16] for r < k_mr.
static void qk_6x16(float *restrict s, int lds, const float *restrict qp,
                                              int d, const float *restrict kblk, float scale) {
#ifdef HSD_ATTN_AVX2
#define DECL(r) __m256 a##r##0 = _mm256_setzero_ps(), a##r##1 = _mm256_setzero_ps();
    HSD_ATTN_ROWS(DECL)
#undef DECL
    for (int c = 0; c < d; c++) {
        const __m256 b0 = _mm256_load_ps(kblk + c * 16);
        const __m256 b1 = _mm256_load_ps(kblk + c * 16 + 8);
#define STEP(r) HSD_ATTN_FMA_ROW16(r, qp + (size_t)(r)*d + c)
        HSD_ATTN_ROWS(STEP)
#undef STEP
    }
    const __m256 sc = _mm256_set1_ps(scale);
#define STORE(r)                                                      \
    _mm256_store_ps(s + (size_t)(r)*lds, _mm256_mul_ps(a##r##0, sc)); \
    _mm256_store_ps(s + (size_t)(r)*lds + 8, _mm256_mul_ps(a##r##1, sc));
    HSD_ATTN_ROWS(STORE)
#undef STORE
#else
    for (int r = 0; r < k_mr; r++) {
        float acc[16] = {0};
        for (int c = 0; c < d; c++)
            for (int jj = 0; jj < 16; jj++)
                acc[jj] = HSD_CPU_FMAF(qp[(size_t)r * d + c], kblk[c * 16 + jj], acc[jj]);
        for (int jj = 0; jj < 16; jj++) s[(size_t)r * lds + jj] = acc[jj] * scale;
    }
#endif
}

// o[r, 0:w] += sum_j s[r, j] vp[j, 0:w] for r < k_mr, j < nk; w = 16 or 8
// (the AVX2 kernels keep the 6 x w accumulator in registers).
static void pv_6xw(float *restrict o, int ldo, const float *restrict s,
                                             int lds, const float *restrict vp, int dp, int nk,
                                             int w) {
#ifdef HSD_ATTN_AVX2
    if (w == 16) {
#define LOAD(r)                                            \
    __m256 a##r##0 = _mm256_loadu_ps(o + (size_t)(r)*ldo); \
    __m256 a##r##1 = _mm256_loadu_ps(o + (size_t)(r)*ldo + 8);
        HSD_ATTN_ROWS(LOAD)
#undef LOAD
        for (int j = 0; j < nk; j++) {
            const __m256 b0 = _mm256_loadu_ps(vp + (size_t)j * dp);
            const __m256 b1 = _mm256_loadu_ps(vp + (size_t)j * dp + 8);
#define STEP(r) HSD_ATTN_FMA_ROW16(r, s + (size_t)(r)*lds + j)
            HSD_ATTN_ROWS(STEP)
#undef STEP
        }
#define STORE(r)                                    \
    _mm256_storeu_ps(o + (size_t)(r)*ldo, a##r##0); \
    _mm256_storeu_ps(o + (size_t)(r)*ldo + 8, a##r##1);
        HSD_ATTN_ROWS(STORE)
#undef STORE
        return;
    }
    // 8 columns: even and odd keys into separate accumulators, 12 FMA
    // chains instead of 6 (6 left the FMA latency exposed: this tail of
    // d = 40 took 23% of the p v time for 20% of its flops).
#define LOAD(r)                                         \
    __m256 a##r = _mm256_loadu_ps(o + (size_t)(r)*ldo); \
    __m256 c##r = _mm256_setzero_ps();
    HSD_ATTN_ROWS(LOAD)
#undef LOAD
    for (int j = 0; j < nk; j += 2) {  // nk is a multiple of 16
        const __m256 b0 = _mm256_loadu_ps(vp + (size_t)j * dp);
        const __m256 b1 = _mm256_loadu_ps(vp + (size_t)(j + 1) * dp);
#define STEP(r)                                                                     \
    a##r = _mm256_fmadd_ps(_mm256_broadcast_ss(s + (size_t)(r)*lds + j), b0, a##r); \
    c##r = _mm256_fmadd_ps(_mm256_broadcast_ss(s + (size_t)(r)*lds + j + 1), b1, c##r);
        HSD_ATTN_ROWS(STEP)
#undef STEP
    }
#define STORE(r) _mm256_storeu_ps(o + (size_t)(r)*ldo, _mm256_add_ps(a##r, c##r));
    HSD_ATTN_ROWS(STORE)
#undef STORE
#else
    for (int r = 0; r < k_mr; r++) {
        float *restrict orow = o + (size_t)r * ldo;
        for (int j = 0; j < nk; j++) {
            const float x = s[(size_t)r * lds + j];
            for (int c = 0; c < w; c++) orow[c] = HSD_CPU_FMAF(x, vp[(size_t)j * dp + c], orow[c]);
        }
    }
#endif
}

// Scores are kept in base 2: qk_6x16 scales by scale * log2(e), so the
// softmax needs 2^x, which skips exp's Cody-Waite reduction by ln 2 (the
// base changes no probability: 2^(s log2 e - m) = e^(s - m ln 2)). This is
// what flash-attention 2 does on GPUs; here it cut the softmax's vector
// ops per 8 scores from 19 to 15 (bench below).
//
// 2^x for x <= 0 (or NaN): x = n + f with n = round(x), |f| <= 1/2, 2^f
// from a degree-6 polynomial (relative-error minimax on [-1/2, 1/2],
// fitted for this file: 1.9e-9 in exact arithmetic, <= 1e-7 measured with
// fp32 Horner steps, about the 1-ulp class of hsd_cpu_expf), 2^n added to
// its exponent bits. x < -125 gives 0 (masked scores are -inf), so 2^n
// stays normal.
#define HSD_EXP2_C6 1.534581242594868e-4f
#define HSD_EXP2_C5 1.3399930903688073e-3f
#define HSD_EXP2_C4 9.618489071726799e-3f
#define HSD_EXP2_C3 5.550328642129898e-2f
#define HSD_EXP2_C2 2.4022646248340607e-1f
#define HSD_EXP2_C1 6.931471824645996e-1f
static inline float exp2_nonpos(float x) {
    const float xc = x < -125.0f ? -125.0f : x;
    const float shifter = 12582912.0f;  // 1.5 * 2^23: t's low bits hold n
    const float t = xc + shifter;
    const float f = xc - (t - shifter);
    float p = HSD_EXP2_C6;
    p = HSD_CPU_FMAF(p, f, HSD_EXP2_C5);
    p = HSD_CPU_FMAF(p, f, HSD_EXP2_C4);
    p = HSD_CPU_FMAF(p, f, HSD_EXP2_C3);
    p = HSD_CPU_FMAF(p, f, HSD_EXP2_C2);
    p = HSD_CPU_FMAF(p, f, HSD_EXP2_C1);
    p = HSD_CPU_FMAF(p, f, 1.0f);
    uint32_t tb, pb;
    memcpy(&tb, &t, sizeof tb);
    memcpy(&pb, &p, sizeof pb);
    pb += (tb - 0x4B400000u) << 23;
    float y;
    memcpy(&y, &pb, sizeof y);
    y = x < -125.0f ? 0.0f : y;
    return x == x ? y : x;
}

#ifdef HSD_ATTN_AVX2
// exp2_nonpos, 8 at a time (the same operations, so the same bits).
static inline __m256 exp2_nonpos8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-125.0f);
    const __m256 xc = _mm256_max_ps(lo, x);  // a NaN x stays NaN (max returns x)
    const __m256 shifter = _mm256_set1_ps(12582912.0f);
    const __m256 t = _mm256_add_ps(xc, shifter);
    const __m256 f = _mm256_sub_ps(xc, _mm256_sub_ps(t, shifter));
    __m256 p = _mm256_set1_ps(HSD_EXP2_C6);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(HSD_EXP2_C5));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(HSD_EXP2_C4));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(HSD_EXP2_C3));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(HSD_EXP2_C2));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(HSD_EXP2_C1));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(
        _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(0x4B400000)), 23);
    const __m256 y = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), e));
    return _mm256_andnot_ps(_mm256_cmp_ps(x, lo, _CMP_LT_OQ), y);
}
#endif

// Online softmax of one score row over a tile: the first `vis` of n
// scores are visible (the rest are masked or padding); turns the row into
// probabilities exp(s - m') in place, updates *m and *l and returns the
// factor c = exp(m - m') the row's accumulator must be scaled by.
static float softmax_tile_row(float *restrict s, int n, int vis, float *m,
                                                        float *l) {
    if (vis <= 0) {  // a causal row before this tile: sees none of its keys
        memset(s, 0, (size_t)n * sizeof *s);
        return 1.0f;
    }
    for (int j = vis; j < n; j++) s[j] = -INFINITY;
    float mx = *m;
#pragma omp simd reduction(max : mx)
    for (int j = 0; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    // *m is -inf before the first tile: exp(-inf) = 0 scales the (zero)
    // accumulator; mx is finite since the row sees a key here.
    const float c = exp2_nonpos(*m - mx);
    float sum = 0.0f;
#ifdef HSD_ATTN_AVX2
    const __m256 mxv = _mm256_set1_ps(mx);
    __m256 sv = _mm256_setzero_ps();
    for (int j = 0; j < n; j += 8) {  // n is a multiple of 16
        const __m256 e = exp2_nonpos8(_mm256_sub_ps(_mm256_load_ps(s + j), mxv));
        _mm256_store_ps(s + j, e);
        sv = _mm256_add_ps(sv, e);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, sv);
    for (int i = 0; i < 8; i++) sum += lanes[i];
#else
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < n; j++) {
        const float e = exp2_nonpos(s[j] - mx);
        s[j] = e;
        sum += e;
    }
#endif
    *m = mx;
    *l = *l * c + sum;
    return c;
}

// One block of nr (<= k_rows) query rows starting at row r0 against keys
// 0..kv_len-1 (packed in f), result into ob (stride ldo).
static void flash_block(const struct flash_scratch *f, float *ob, int ldo, const float *qb, int ldq,
                        int r0, int nr, int kv_len, int d, int dp, float scale, int causal) {
    const int nr6 = (nr + k_mr - 1) / k_mr * k_mr;
    for (int i = 0; i < nr6; i++) {
        float *qr = f->qp + (size_t)i * d;
        if (i < nr)
            memcpy(qr, qb + (size_t)i * ldq, (size_t)d * sizeof *qr);
        else
            memset(qr, 0, (size_t)d * sizeof *qr);
        f->m[i] = -INFINITY;
        f->l[i] = 0.0f;
    }
    memset(f->o, 0, (size_t)nr6 * dp * sizeof *f->o);
    const int kv_hi = causal ? r0 + nr : kv_len;  // the last key any row sees, + 1
    for (int j0 = 0; j0 < kv_hi; j0 += k_keys) {
        const int nk = kv_hi - j0 < k_keys ? kv_hi - j0 : k_keys;
        const int nk16 = (int)round16((size_t)nk);
        for (int i = 0; i < nr6; i += k_mr)
            for (int jj = 0; jj < nk16; jj += 16)
                qk_6x16(f->s + (size_t)i * k_keys + jj, k_keys, f->qp + (size_t)i * d, d,
                        f->kp + (size_t)(j0 + jj) * d, scale);
        for (int i = 0; i < nr; i++) {
            int vis = nk;
            if (causal && r0 + i + 1 - j0 < vis) vis = r0 + i + 1 - j0;
            float *srow = f->s + (size_t)i * k_keys;
            const float c = softmax_tile_row(srow, nk16, vis, &f->m[i], &f->l[i]);
            if (c != 1.0f) {
                float *orow = f->o + (size_t)i * dp;
                for (int e = 0; e < dp; e++) orow[e] *= c;
            }
        }
        // Rows nr..nr6-1 are padding: their scores (0) were never turned
        // into probabilities, and their outputs are never written back.
        for (int i = 0; i < nr6; i += k_mr) {
            int e = 0;
            for (; e + 16 <= dp; e += 16)
                pv_6xw(f->o + (size_t)i * dp + e, dp, f->s + (size_t)i * k_keys, k_keys,
                       f->vp + (size_t)j0 * dp + e, dp, nk16, 16);
            if (e < dp)
                pv_6xw(f->o + (size_t)i * dp + e, dp, f->s + (size_t)i * k_keys, k_keys,
                       f->vp + (size_t)j0 * dp + e, dp, nk16, 8);
        }
    }
    for (int i = 0; i < nr; i++) {
        const float r = 1.0f / f->l[i];
        float *restrict orow = ob + (size_t)i * ldo;
        const float *restrict acc = f->o + (size_t)i * dp;
        for (int e = 0; e < d; e++) orow[e] = acc[e] * r;
    }
}

// Task `task` of p: query rows [c0, c1) of one (sample, head), with its
// K/V packed into f first.
static void flash_task(const struct hsd_attention_params *p, const struct flash_scratch *f,
                       long task, int chunk, int chunks, int dp) {
    const int ch = (int)(task % chunks), h = (int)(task / chunks % p->heads);
    const int b = (int)(task / chunks / p->heads), d = p->d;
    const int c0 = ch * chunk, c1 = p->t_q - c0 < chunk ? p->t_q : c0 + chunk;
    const int kv_len = p->causal ? c1 : p->t_kv;  // keys this chunk can see
    const size_t kv0 = (size_t)b * p->t_kv;       // first token of sample b
    pack_kv(f->kp, f->vp, (const float *)p->k + kv0 * p->ldk + (size_t)h * d, p->ldk,
            (const float *)p->v + kv0 * p->ldv + (size_t)h * d, p->ldv, kv_len, d, dp);
    for (int r0 = c0; r0 < c1; r0 += k_rows) {
        const int nr = c1 - r0 < k_rows ? c1 - r0 : k_rows;
        const size_t row = (size_t)b * p->t_q + r0;  // [n, t_q, heads*d] token index
        flash_block(f, (float *)p->out + row * p->ldo + (size_t)h * d, p->ldo,
                    (const float *)p->q + row * p->ldq + (size_t)h * d, p->ldq, r0, nr, kv_len,
                    d, dp, p->scale * 1.44269504088896341f, p->causal);  // log2(e): base 2
    }
}

enum hsd_status hsd_cpu_attention_v2_flash(struct hsd_backend *be,
                                           const struct hsd_attention_params *p) {
    const int t_kv = p->t_kv, d = p->d, threads = be->threads;
    const int dp = (d + 7) & ~7;
    // Query rows per task: all of t_q, halved (in whole blocks) while
    // there are too few tasks to keep every thread busy. Each task packs
    // its head's K and V once, which costs ~1/(4 chunk) of its flops.
    int chunk = (p->t_q + k_rows - 1) / k_rows * k_rows;
    while (chunk > k_rows &&
           (long)p->n * p->heads * ((p->t_q + chunk - 1) / chunk) < k_tasks_per_thread * threads)
        chunk = (chunk / 2 + k_rows - 1) / k_rows * k_rows;
    const int chunks = (p->t_q + chunk - 1) / chunk;
    const long tasks = (long)p->n * p->heads * chunks;
    const size_t per_thread = flash_scratch_floats(t_kv, d, dp);
    float *scratch = hsd_cpu_scratch(be, (size_t)threads * per_thread * sizeof(float));
    if (!scratch) return hsd_fail_context(HSD_ERR_NOMEM, "attention: ");
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (long task = 0; task < tasks; task++) {
        const struct flash_scratch f =
            flash_scratch_at(scratch + (size_t)omp_get_thread_num() * per_thread, t_kv, d, dp);
        flash_task(p, &f, task, chunk, chunks, dp);
    }
    return HSD_OK;
}
