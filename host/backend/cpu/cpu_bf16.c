// The opt-in bf16 compute mode of the CPU backend (--cpu-precision bf16,
// issue 14 item 5): the GEMMs of linear layers and of the im2col
// convolution take bf16 operands with fp32 accumulation and fp32 output,
// what torch.autocast("cpu", dtype=torch.bfloat16) does to nn.Linear and
// nn.Conv2d. Everything else (softmax, norms, element-wise ops, the bias
// and residual adds) stays fp32, as autocast keeps them.
//
// Rounding: activations are rounded to bf16 per call, weights once per
// weight (a cached [rows, k] bf16 copy in the backend's layout), both
// round-to-nearest-even as torch's c10::BFloat16 (core/dtype.c
// hsd_f32_to_bf16). Products of two bf16 values are exact in fp32 (8 + 8
// significant bits), so a GEMM on bf16 operands differs from the fp32 one
// only by the operand rounding and the summation order.
//
// Two paths, picked once per process:
//   sbgemm: OpenBLAS's cblas_sbgemm when the loaded library exports it
//     (built with BUILD_BFLOAT16=1; it has Cooper Lake / Sapphire Rapids /
//     Zen 4 kernels and a generic one). Looked up with dlsym because
//     Debian 12's libopenblas0 0.3.21 declares it in cblas.h but does not
//     export it (nm -D shows no sbgemm), so a direct call would not link.
//   emulated: the bf16 operands widened back to fp32 (exact) and
//     cblas_sgemm; the same products and fp32 accumulation, so the same
//     error against fp32 up to summation order, at fp32 speed plus the
//     rounding passes. For accuracy studies on CPUs and libraries without
//     native bf16.
// Without avx512_bf16 or amx_bf16 neither path is faster than fp32; the
// backend says so once when the mode is turned on.
//
// Memory: the bf16 weight copies are 2 bytes per element (counted in
// hsd_cpu_bf16_bytes); with fp16 files they sit beside the file mapping.
//
// The copy is made on a weight's first GEMM and keyed by its handle, so a
// weight must not change while the backend holds it (true of every model
// weight: LoRA runs unfused, beside the GEMM, in fp32); cpu_free drops the
// copy of a buffer it frees.
//
// Test: ctest -R 'cpu_bf16|unet_bf16_oracle' (test_cpu_bf16_sbgemm drives
// the sbgemm path through a cblas_sbgemm its executable exports).
// Docs: docs/cpu-precision.md.
// RTLD_DEFAULT needs _GNU_SOURCE, which the build defines.
#include <cblas.h>
#include <dlfcn.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/dtype.h"
#include "core/log.h"
#include "core/status.h"

typedef void (*sbgemm_fn)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, blasint,
                          blasint, blasint, float, const uint16_t *, blasint, const uint16_t *,
                          blasint, float, float *, blasint);

static sbgemm_fn g_sbgemm;
static pthread_once_t g_pick_once = PTHREAD_ONCE_INIT;

static void pick_sbgemm(void) {
    void *sym = dlsym(RTLD_DEFAULT, "cblas_sbgemm");
    // A function pointer from dlsym's void * (POSIX guarantees it works).
    memcpy(&g_sbgemm, &sym, sizeof g_sbgemm);
}

// Whether /proc/cpuinfo's flags line names `flag` (whole word).
static int cpu_has_flag(const char *flag) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return 0;
    char line[8192];
    int found = 0;
    const size_t n = strlen(flag);
    while (!found && fgets(line, sizeof line, f)) {
        if (strncmp(line, "flags", 5)) continue;
        for (const char *p = strstr(line, flag); p && !found; p = strstr(p + 1, flag))
            found = (p[-1] == ' ' || p[-1] == '\t') && (p[n] == ' ' || p[n] == '\n');
        break;  // one CPU's flags are enough
    }
    fclose(f);
    return found;
}

int hsd_cpu_bf16_native(void) { return cpu_has_flag("avx512_bf16") || cpu_has_flag("amx_bf16"); }

const char *hsd_cpu_bf16_path(void) {
    pthread_once(&g_pick_once, pick_sbgemm);
    return g_sbgemm ? "sbgemm" : "emulated";
}

enum hsd_status hsd_backend_cpu_set_precision(struct hsd_backend *be,
                                              enum hsd_cpu_precision prec) {
    if (!be) return hsd_fail(HSD_ERR_INVALID_ARG, "cpu precision: NULL backend");
    if (be->kind != HSD_BACKEND_CPU) {
        if (prec == HSD_CPU_FP32) return HSD_OK;
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "--cpu-precision bf16 applies to the CPU backend only; %s computes in "
                        "fp16 with fp32 accumulation (drop the flag or use --backend cpu)",
                        be->desc);
    }
    struct hsd_cpu *cpu = be->impl;
    cpu->bf16 = prec == HSD_CPU_BF16;
    if (!cpu->bf16) return HSD_OK;
    const char *path = hsd_cpu_bf16_path();
    static int told;
    if (!__atomic_exchange_n(&told, 1, __ATOMIC_RELAXED)) {
        // WARN, not INFO: the user asked for the mode and should see which
        // path serves it without -v.
        HSD_WARN("cpu backend: bf16 compute for linear and conv GEMMs via %s (OpenBLAS core %s)",
                 !strcmp(path, "sbgemm") ? "cblas_sbgemm"
                                         : "bf16-rounded operands and cblas_sgemm (this OpenBLAS "
                                           "exports no cblas_sbgemm)",
                 openblas_get_corename());
        if (!hsd_cpu_bf16_native())
            HSD_WARN("cpu backend: this CPU has neither avx512_bf16 nor amx_bf16: the bf16 mode is "
                     "slower than fp32 here and only useful for accuracy studies");
    }
    return HSD_OK;
}

// ---- the cache of bf16 weight copies, keyed by the weight's handle ----

struct hsd_cpu_bf16_w {
    const void *key;
    uint16_t *data;  // [rows, k] in the backend's layout
    int rows, k;
};

struct hsd_cpu_bf16 {
    pthread_mutex_t mu;
    struct hsd_cpu_bf16_w *e;
    size_t n, cap, bytes;
    uint16_t *act;  // bf16 activations of the current call (sbgemm path)
    float *actf;    // the same rounded and widened (emulated path)
    size_t act_cap, actf_cap;
};

void hsd_cpu_bf16_destroy(struct hsd_cpu *cpu) {
    struct hsd_cpu_bf16 *c = cpu->bf16c;
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) free(c->e[i].data);
    free(c->e);
    free(c->act);
    free(c->actf);
    pthread_mutex_destroy(&c->mu);
    free(c);
    cpu->bf16c = NULL;
}

size_t hsd_cpu_bf16_bytes(const struct hsd_backend *be) {
    const struct hsd_cpu *cpu = be->impl;
    return be->kind == HSD_BACKEND_CPU && cpu->bf16c ? cpu->bf16c->bytes : 0;
}

void hsd_cpu_bf16_forget(struct hsd_backend *be, const void *key) {
    struct hsd_cpu *cpu = be->impl;
    struct hsd_cpu_bf16 *c = cpu->bf16c;
    if (!c || !key) return;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n; i++) {
        if (c->e[i].key != key) continue;
        // The emulated path's converted block may hold this copy's rows.
        if (cpu->wconv_key == c->e[i].data) cpu->wconv_key = NULL;
        c->bytes -= (size_t)c->e[i].rows * c->e[i].k * sizeof(uint16_t);
        free(c->e[i].data);
        c->e[i] = c->e[--c->n];
        break;
    }
    pthread_mutex_unlock(&c->mu);
}

static void round_row(uint16_t *restrict dst, const float *restrict src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = hsd_f32_to_bf16(src[i]);
}

// Rounds the weight (a weight_view buffer `wv`, or a plain fp32 [rows, k]
// buffer when wv is NULL) into a new [rows, k] bf16 array in the backend's
// layout ([co, kh, kw, ci] for a conv).
static uint16_t *round_weight(struct hsd_backend *be, const void *weight,
                              const struct hsd_cpu_weight *wv, int rows, int k) {
    uint16_t *dst = hsd_cpu_aligned_alloc((size_t)rows * k * sizeof *dst);
    float *tmp = wv ? malloc((size_t)be->threads * k * 2 * sizeof *tmp) : NULL;
    if (!dst || (wv && !tmp)) {
        free(dst);
        free(tmp);
        hsd_fail(HSD_ERR_NOMEM, "cpu bf16: cannot allocate a %d x %d weight copy", rows, k);
        return NULL;
    }
    const size_t taps = wv ? (size_t)wv->taps : 1, ci = (size_t)k / taps;
#pragma omp parallel for num_threads(be->threads) schedule(static)
    for (int r = 0; r < rows; r++) {
        uint16_t *d = dst + (size_t)r * k;
        if (!wv) {
            round_row(d, (const float *)weight + (size_t)r * k, (size_t)k);
            continue;
        }
        float *t = tmp + (size_t)omp_get_thread_num() * k * 2, *g = t + k;
        hsd_cpu_weight_row(t, wv, r);  // file order [ci, taps]
        for (size_t c = 0; c < ci; c++)
            for (size_t j = 0; j < taps; j++) g[j * ci + c] = t[c * taps + j];
        round_row(d, g, (size_t)k);
    }
    free(tmp);
    return dst;
}

static const uint16_t *cached_weight(struct hsd_backend *be, const void *weight,
                                     const struct hsd_cpu_weight *wv, int rows, int k) {
    struct hsd_cpu *cpu = be->impl;
    if (!cpu->bf16c) {
        cpu->bf16c = calloc(1, sizeof *cpu->bf16c);
        if (!cpu->bf16c) {
            hsd_fail(HSD_ERR_NOMEM, "cpu bf16: out of memory");
            return NULL;
        }
        pthread_mutex_init(&cpu->bf16c->mu, NULL);
    }
    struct hsd_cpu_bf16 *c = cpu->bf16c;
    pthread_mutex_lock(&c->mu);
    const uint16_t *found = NULL;
    for (size_t i = 0; i < c->n && !found; i++)
        if (c->e[i].key == weight && c->e[i].rows == rows && c->e[i].k == k) found = c->e[i].data;
    pthread_mutex_unlock(&c->mu);
    if (found) return found;
    uint16_t *data = round_weight(be, weight, wv, rows, k);
    if (!data) return NULL;
    pthread_mutex_lock(&c->mu);
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 256;
        struct hsd_cpu_bf16_w *e = realloc(c->e, cap * sizeof *e);
        if (!e) {
            pthread_mutex_unlock(&c->mu);
            free(data);
            hsd_fail(HSD_ERR_NOMEM, "cpu bf16: out of memory");
            return NULL;
        }
        c->e = e;
        c->cap = cap;
    }
    c->e[c->n++] = (struct hsd_cpu_bf16_w){.key = weight, .data = data, .rows = rows, .k = k};
    c->bytes += (size_t)rows * k * sizeof *data;
    pthread_mutex_unlock(&c->mu);
    return data;
}

static int grow(void **buf, size_t *cap, size_t bytes) {
    if (bytes <= *cap) return 0;
    free(*buf);
    *buf = hsd_cpu_aligned_alloc(bytes);
    *cap = *buf ? bytes : 0;
    return *buf ? 0 : -1;
}

enum hsd_status hsd_cpu_gemm_bf16(struct hsd_backend *be, const void *weight,
                                  const struct hsd_cpu_weight *wv, float *out, int ldo,
                                  const float *a, int m, int n, int k, float beta) {
    const uint16_t *w = cached_weight(be, weight, wv, n, k);
    if (!w) return hsd_fail_context(HSD_ERR_NOMEM, "linear/conv (bf16): ");
    struct hsd_cpu_bf16 *c = ((struct hsd_cpu *)be->impl)->bf16c;
    const size_t mk = (size_t)m * k;
    const int sb = !strcmp(hsd_cpu_bf16_path(), "sbgemm");
    if (sb ? grow((void **)&c->act, &c->act_cap, mk * sizeof *c->act)
           : grow((void **)&c->actf, &c->actf_cap, mk * sizeof *c->actf))
        return hsd_fail(HSD_ERR_NOMEM, "cpu bf16: cannot allocate %zu activations", mk);
#pragma omp parallel for num_threads(be->threads) schedule(static) if (mk > 65536)
    for (int r = 0; r < m; r++) {
        const float *s = a + (size_t)r * k;
        if (sb) {
            round_row(c->act + (size_t)r * k, s, (size_t)k);
            continue;
        }
        float *d = c->actf + (size_t)r * k;
        for (int i = 0; i < k; i++) d[i] = hsd_bf16_to_f32(hsd_f32_to_bf16(s[i]));
    }
    hsd_cpu_blas_threads(be);
    if (sb) {
        g_sbgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, c->act, k, w, k, beta,
                 out, ldo);
        return HSD_OK;
    }
    // Emulated: the bf16 copy is a BF16 weight view in the backend's layout,
    // which hsd_cpu_gemm_view widens (exactly) in blocks for cblas_sgemm.
    const struct hsd_cpu_weight view = {.data = w, .dtype = HSD_BF16, .rows = n, .k = k, .taps = 1};
    return hsd_cpu_gemm_view(be, &view, out, ldo, c->actf, m, beta);
}
