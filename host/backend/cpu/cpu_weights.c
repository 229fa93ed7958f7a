// GEMM weights in their file's precision and layout (backend.h
// weight_view): the CPU backend keeps F16/BF16 weights as 2-byte values,
// reading them in place from the model's file mapping, and converts a block
// of output channels to fp32 (re-laying conv weights from PyTorch's
// [co, ci, kh, kw] to the [co, kh, kw, ci] order of the NHWC reduction) just
// before the sgemm that packs it. fp16 and bf16 widen to fp32 exactly, so
// the GEMM sees the same numbers as with weights converted at load: results
// are bitwise those of the fp32 path while a weight converts as one block
// (only the summation order may change beyond), with half the weight memory
// and no conversion at load (issue 14).
//
// Versions of the conversion (fp16 -> fp32, the common file type):
//   scalar: core/dtype.c hsd_f16_to_f32 per element (any CPU).
//   f16c: 8 lanes per vcvtph2ps, chosen at run time (AVX2-era x86 has it).
// Cost: BK-SDM-Tiny, batch 1, 32x32, 2 busy EPYC cores: 2.5 s converting
// against 85 s of GEMM over the same forwards; user+sys CPU time of the
// whole run 6.83 s against 7.55 s with weights converted at load
// (bench/RESULTS.md "CPU edge").
// Rejected: 1 MB blocks when the GEMM has few rows (to convert into cache
// right before the sgemm reads it): 6.81 s, no measurable gain on that
// machine, and more weights would lose bitwise equality with the fp32 path.
//
// A registry maps each buffer handed out to what it holds; conv2d and linear
// look their `weight` up there (a plain fp32 buffer, as the tests and the
// random-weight benchmarks pass, is simply not in it). The registry is read
// under a read lock, so a model may load into a backend while another runs.
//
// Test: ctest -R 'cpu_weight_view|cpu_ops'. Time: bench/cpu_vs_peers.sh.
#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define HSD_CPU_HAVE_F16C_PATH 1
#endif

#include "backend/cpu/cpu_internal.h"
#include "core/status.h"

// Converted-weight block budget: big enough that every SD1.5 weight up to
// 640 channels (3x3: 14.7 MB fp32) converts once per call, small enough to
// stay near the cache the sgemm reads it from. Larger weights (1280
// channels, 59 MB) run as a few GEMMs over blocks of output channels.
static const size_t k_block_bytes = (size_t)32 << 20;

struct hsd_cpu_weights {
    pthread_rwlock_t lock;
    struct hsd_cpu_weight *e;  // sorted by handle
    size_t n, cap;
};

enum hsd_status hsd_cpu_weights_init(struct hsd_cpu *cpu) {
    cpu->weights = calloc(1, sizeof *cpu->weights);
    if (!cpu->weights) return hsd_fail(HSD_ERR_NOMEM, "cpu backend: out of memory");
    if (pthread_rwlock_init(&cpu->weights->lock, NULL)) {
        free(cpu->weights);
        cpu->weights = NULL;
        return hsd_fail(HSD_ERR_INTERNAL, "cpu backend: pthread_rwlock_init failed");
    }
    return HSD_OK;
}

void hsd_cpu_weights_destroy(struct hsd_cpu *cpu) {
    struct hsd_cpu_weights *r = cpu->weights;
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) free(r->e[i].owned);
    free(r->e);
    pthread_rwlock_destroy(&r->lock);
    free(r);
    free(cpu->wconv);
    cpu->weights = NULL;
}

// First entry whose handle is >= h (caller holds the lock).
static size_t lower_bound(const struct hsd_cpu_weights *r, const void *h) {
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((uintptr_t)r->e[mid].data < (uintptr_t)h) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

int hsd_cpu_weight_find(struct hsd_backend *be, const void *h, struct hsd_cpu_weight *out) {
    struct hsd_cpu_weights *r = ((struct hsd_cpu *)be->impl)->weights;
    pthread_rwlock_rdlock(&r->lock);
    size_t i = lower_bound(r, h);
    int found = i < r->n && r->e[i].data == h;
    if (found) *out = r->e[i];
    pthread_rwlock_unlock(&r->lock);
    return found;
}

int hsd_cpu_weight_release(struct hsd_backend *be, void *h) {
    struct hsd_cpu *cpu = be->impl;
    struct hsd_cpu_weights *r = cpu->weights;
    pthread_rwlock_wrlock(&r->lock);
    size_t i = lower_bound(r, h);
    int found = i < r->n && r->e[i].data == h;
    if (found && --r->e[i].refs == 0) {
        free(r->e[i].owned);
        memmove(r->e + i, r->e + i + 1, (r->n - i - 1) * sizeof *r->e);
        r->n--;
        // The converted block may belong to this weight; a later weight at
        // the same address must not reuse it.
        cpu->wconv_key = NULL;
    }
    pthread_rwlock_unlock(&r->lock);
    return found;
}

static int grow(struct hsd_cpu_weights *r) {
    size_t cap = r->cap ? 2 * r->cap : 512;
    struct hsd_cpu_weight *e = realloc(r->e, cap * sizeof *e);
    if (!e) return -1;
    r->e = e;
    r->cap = cap;
    return 0;
}

void *hsd_cpu_weight_view(struct hsd_backend *be, const struct hsd_weight_view_params *p) {
    if (!p || !p->data || p->rows <= 0 || p->k <= 0 || p->taps <= 0 || p->k % p->taps ||
        (p->dtype != HSD_F32 && p->dtype != HSD_F16 && p->dtype != HSD_BF16)) {
        hsd_fail(HSD_ERR_INVALID_ARG, "weight_view: bad params (rows, k, taps must be positive, "
                                      "k a multiple of taps, dtype F32/F16/BF16)");
        return NULL;
    }
    struct hsd_cpu_weight w = {.data = p->data, .dtype = p->dtype, .rows = p->rows, .k = p->k,
                               .taps = p->taps, .refs = 1};
    const size_t bytes = (size_t)p->rows * p->k * hsd_dtype_size(p->dtype);
    // fp32 is read by the sgemm itself (when already in the backend's
    // layout) and by float loads: it must be float-aligned, so an unaligned
    // tensor (safetensors only aligns the buffer start) is copied. 2-byte
    // values are read with unaligned loads.
    if (p->copy || (p->dtype == HSD_F32 && (uintptr_t)p->data % sizeof(float))) {
        w.owned = hsd_cpu_aligned_alloc(bytes);
        if (!w.owned) {
            hsd_fail(HSD_ERR_NOMEM, "weight_view: cannot allocate %zu bytes", bytes);
            return NULL;
        }
        memcpy(w.owned, p->data, bytes);
        w.data = w.owned;
    }
    struct hsd_cpu_weights *r = ((struct hsd_cpu *)be->impl)->weights;
    pthread_rwlock_wrlock(&r->lock);
    size_t i = lower_bound(r, w.data);
    void *h = (void *)w.data;
    if (i < r->n && r->e[i].data == w.data) {
        // The same bytes viewed twice (one file loaded by two models).
        struct hsd_cpu_weight *e = &r->e[i];
        if (e->dtype != w.dtype || e->rows != w.rows || e->k != w.k || e->taps != w.taps) {
            h = NULL;
            hsd_fail(HSD_ERR_INTERNAL, "weight_view: the same bytes viewed with two shapes");
        } else {
            e->refs++;
        }
    } else if (r->n == r->cap && grow(r)) {
        h = NULL;
        hsd_fail(HSD_ERR_NOMEM, "weight_view: out of memory");
    } else {
        memmove(r->e + i + 1, r->e + i, (r->n - i) * sizeof *r->e);
        r->e[i] = w;
        r->n++;
        w.owned = NULL;  // now the registry's
    }
    pthread_rwlock_unlock(&r->lock);
    free(w.owned);
    return h;
}

static void f16_row_scalar(float *restrict dst, const unsigned char *restrict src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);  // little-endian hosts only (x86-64, aarch64)
        dst[i] = hsd_f16_to_f32(h);
    }
}

#ifdef HSD_CPU_HAVE_F16C_PATH
__attribute__((target("avx,f16c"))) static void f16_row_f16c(float *restrict dst,
                                                            const unsigned char *restrict src,
                                                            size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + 2 * i))));
    f16_row_scalar(dst + i, src + 2 * i, n - i);
}
#endif

static void bf16_row(float *restrict dst, const unsigned char *restrict src, size_t n) {
    // bf16 is the top half of an fp32: widening is a shift (exact), which
    // gcc vectorises on any x86-64.
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);
        uint32_t u = (uint32_t)h << 16;
        memcpy(dst + i, &u, 4);
    }
}

typedef void (*row_fn)(float *restrict, const unsigned char *restrict, size_t);

static row_fn g_f16_row = f16_row_scalar;
static pthread_once_t g_f16_once = PTHREAD_ONCE_INIT;

static void pick_f16_row(void) {
#ifdef HSD_CPU_HAVE_F16C_PATH
    // F16C from CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports
    // does not know "f16c"; "avx" also checks that the OS saves YMM state.
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) && __builtin_cpu_supports("avx"))
        g_f16_row = f16_row_f16c;
#endif
}

// Picked once: CPUID traps to the hypervisor in a VM (microseconds), and
// the Winograd conv converts its weights row by row.
static row_fn f16_row(void) {
    pthread_once(&g_f16_once, pick_f16_row);
    return g_f16_row;
}

static void f32_row(float *restrict dst, const unsigned char *restrict src, size_t n) {
    memcpy(dst, src, n * sizeof *dst);
}

static row_fn row_conv(enum hsd_dtype dt) {
    return dt == HSD_F16 ? f16_row() : dt == HSD_BF16 ? bf16_row : f32_row;
}

// Rows [r0, r0 + nr) of w as fp32 in the backend's layout ([co, kh, kw, ci]
// for a conv), into dst [nr, k]. `tmp` holds one row per thread ([threads, k]).
static void convert_rows(float *restrict dst, float *restrict tmp, const struct hsd_cpu_weight *w,
                         int r0, int nr, int threads) {
    const size_t k = (size_t)w->k, es = hsd_dtype_size(w->dtype);
    const size_t taps = (size_t)w->taps, ci = k / taps;
    const row_fn conv = row_conv(w->dtype);
    const unsigned char *src = w->data;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int r = 0; r < nr; r++) {
        const unsigned char *s = src + ((size_t)r0 + r) * k * es;
        float *restrict d = dst + (size_t)r * k;
        if (taps == 1) {
            conv(d, s, k);
            continue;
        }
        // Widen the row in its file order [ci, taps], then gather it into
        // [taps, ci] (one row is at most 2560 x 9 floats: it stays in L2).
        float *restrict t = tmp + (size_t)omp_get_thread_num() * k;
        conv(t, s, k);
        for (size_t c = 0; c < ci; c++)
            for (size_t j = 0; j < taps; j++) d[j * ci + c] = t[c * taps + j];
    }
}

void hsd_cpu_weight_row(float *restrict dst, const struct hsd_cpu_weight *w, int r) {
    const size_t k = (size_t)w->k, es = hsd_dtype_size(w->dtype);
    const row_fn conv = row_conv(w->dtype);
    conv(dst, (const unsigned char *)w->data + (size_t)r * k * es, k);
}

int hsd_cpu_weight_direct(const struct hsd_cpu_weight *w) {
    return w->dtype == HSD_F32 && w->taps == 1;
}

enum hsd_status hsd_cpu_gemm_view(struct hsd_backend *be, const struct hsd_cpu_weight *w,
                                  float *out, int ldo, const float *a, int m, float beta) {
    struct hsd_cpu *cpu = be->impl;
    const size_t k = (size_t)w->k;
    if (hsd_cpu_weight_direct(w)) {
        hsd_cpu_blas_threads(be);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, w->rows, w->k, 1.0f, a, w->k,
                    (const float *)w->data, w->k, beta, out, ldo);
        return HSD_OK;
    }
    size_t block = k_block_bytes / (k * sizeof(float));
    if (block < 16) block = 16;
    if (block > (size_t)w->rows) block = (size_t)w->rows;
    const size_t need = (block + (size_t)be->threads) * k * sizeof(float);
    if (need > cpu->wconv_bytes) {
        free(cpu->wconv);
        cpu->wconv = hsd_cpu_aligned_alloc(need);
        cpu->wconv_bytes = cpu->wconv ? need : 0;
        cpu->wconv_key = NULL;
        if (!cpu->wconv)
            return hsd_fail(HSD_ERR_NOMEM, "cpu backend: cannot allocate %zu bytes to convert "
                                           "weights", need);
    }
    for (int r0 = 0; r0 < w->rows; r0 += (int)block) {
        const int nr = w->rows - r0 < (int)block ? w->rows - r0 : (int)block;
        // A conv runs one GEMM per chunk of output pixels with the same
        // weight: the block converted for the previous chunk is still here.
        if (cpu->wconv_key != w->data || cpu->wconv_r0 != r0 || cpu->wconv_nr != nr) {
            convert_rows(cpu->wconv, cpu->wconv + block * k, w, r0, nr, be->threads);
            cpu->wconv_key = w->data;
            cpu->wconv_r0 = r0;
            cpu->wconv_nr = nr;
        }
        hsd_cpu_blas_threads(be);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, nr, w->k, 1.0f, a, w->k,
                    cpu->wconv, w->k, beta, out + r0, ldo);
    }
    return HSD_OK;
}
