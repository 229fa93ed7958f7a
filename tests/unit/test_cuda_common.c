// Helpers of the CUDA kernel tests: see test_cuda_common.h.
#include "test_cuda_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/assert.h"
#include "core/dtype.h"
#include "device.h"
#include "memory.h"
#include "testutil.h"

static struct hsd_backend *g_cpu;
static uint64_t g_seed;
static int g_arch;
static int g_unsupported;
static char *g_torch;  // contents of the torch table, or NULL

// Every buffer a case allocates, freed by tc_free_all().
enum { K_HOST, K_DEV, K_CPU };
struct tracked {
    void *p;
    int kind;
};
static struct tracked *g_tracked;
static size_t g_ntracked, g_captracked;

static void track(void *p, int kind) {
    if (g_ntracked == g_captracked) {
        g_captracked = g_captracked ? 2 * g_captracked : 64;
        g_tracked = realloc(g_tracked, g_captracked * sizeof *g_tracked);
        HSD_ASSERT(g_tracked);
    }
    g_tracked[g_ntracked].p = p;
    g_tracked[g_ntracked].kind = kind;
    g_ntracked++;
}

void tc_free_all(void) {
    for (size_t i = 0; i < g_ntracked; i++) {
        switch (g_tracked[i].kind) {
        case K_HOST: free(g_tracked[i].p); break;
        case K_DEV: hsd_cuda_free(g_tracked[i].p); break;
        case K_CPU: g_cpu->ops->free(g_cpu, g_tracked[i].p); break;
        }
    }
    g_ntracked = 0;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s && fread(s, 1, (size_t)n, f) == (size_t)n) {
        s[n] = 0;
    } else {
        free(s);
        s = NULL;
    }
    fclose(f);
    return s;
}

static int g_gpu;
static int g_emulated, g_emu_skipped;
static double g_emu_max_work = 3e7;

int tc_gpu(void) { return g_gpu; }

double tc_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int tc_init(const char *test_name, int argc, char **argv) {
    int reference_only = 0;
    for (int i = 1; i < argc; i++) reference_only |= strcmp(argv[i], "--reference-only") == 0;
    struct hsd_cuda_probe probe;
    CHECK_OK(hsd_cuda_probe(&probe));
    const int count = probe.count;
    if (count == 0 && !reference_only) {
        // Says which: no GPU, no driver, or a driver too old for this build.
        printf("%s: %s: skipped\n", test_name, probe.why);
        return 0;
    }
    g_gpu = count > 0;
    g_emulated = hsd_cuda_emulated();
    if (g_emulated) {
        const char *w = getenv("HSD_EMU_MAX_WORK");
        if (w && *w) g_emu_max_work = strtod(w, NULL);
        printf("%s: EMULATED on the CPU (cuda/emulate.cuh): checks what the kernels compute on "
               "the cases small enough (work <= %.3g, HSD_EMU_MAX_WORK), not the hardware\n",
               test_name, g_emu_max_work);
    }
    const char *seed_env = getenv("HSD_TEST_SEED");
    g_seed = seed_env ? strtoull(seed_env, NULL, 0) : (uint64_t)time(NULL);
    if (g_gpu) {
        struct hsd_cuda_device_info info;
        CHECK_OK(hsd_cuda_device_info(0, &info));
        g_arch = info.sm_major * 10 + info.sm_minor;
        printf("%s: %s sm_%d, seed %llu (rerun with HSD_TEST_SEED=%llu)\n", test_name,
               info.name, g_arch, (unsigned long long)g_seed, (unsigned long long)g_seed);
    } else {
        printf("%s: no GPU: reference-only mode (inputs and CPU references, no kernels), "
               "seed %llu\n", test_name, (unsigned long long)g_seed);
    }
    const char *tj = getenv("HSD_TORCH_FP16_ERR_JSON");
    if (tj && *tj) {
        g_torch = read_file(tj);
        printf("torch fp16 error table: %s%s\n", tj, g_torch ? "" : " (unreadable: not used)");
    } else {
        printf("torch fp16 error table: none (HSD_TORCH_FP16_ERR_JSON unset): own bounds only\n");
    }
    CHECK_OK(hsd_backend_cpu_create(&g_cpu, 0));
    if (!g_cpu) return 0;
    return g_gpu ? 1 : 2;
}

void tc_reference_only(const char *op, const char *case_name, const float *ref, size_t n,
                       double seconds) {
    size_t bad = 0;
    double mx = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(ref[i])) bad++;
        else if (fabs(ref[i]) > mx) mx = fabs(ref[i]);
    }
    printf("%-11s %-28s reference: %zu values, max|ref| %.3g, %.2f s on the CPU%s\n", op,
           case_name, n, mx, seconds, bad ? " NON-FINITE" : "");
    hsd_test_check(bad == 0 && mx > 0.0, __FILE__, __LINE__, "%s %s: reference has %zu non-finite values (max %g)",
                   op, case_name, bad, mx);
}

struct hsd_backend *tc_cpu(void) { return g_cpu; }
int tc_arch(void) { return g_arch; }

int tc_finish(void) {
    tc_free_all();
    free(g_tracked);
    g_tracked = NULL;
    g_captracked = 0;
    hsd_backend_destroy(g_cpu);
    g_cpu = NULL;
    free(g_torch);
    g_torch = NULL;
    if (g_emu_skipped) printf("%d case(s) too large to emulate: skipped\n", g_emu_skipped);
    if (g_unsupported) printf("%d case(s) unsupported by a non-reference version\n", g_unsupported);
    return hsd_test_finish();
}

float *tc_host_alloc(size_t n) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    HSD_ASSERT(x);
    track(x, K_HOST);
    return x;
}

float *tc_host_uniform(size_t n, float lo, float hi) {
    float *x = tc_host_alloc(n);
    hsd_test_fill_uniform(x, n, g_seed++, 1.0f);  // [-1, 1)
    const float mid = 0.5f * (lo + hi), half = 0.5f * (hi - lo);
    for (size_t i = 0; i < n; i++) x[i] = hsd_f16_to_f32(hsd_f32_to_f16(mid + half * x[i]));
    return x;
}

void *tc_dev_f16(const float *host, size_t n) {
    void *d = NULL;
    CHECK_OK(hsd_cuda_alloc(&d, n * 2));
    HSD_ASSERT(d);
    track(d, K_DEV);
    CHECK_OK(hsd_cuda_upload_f16(d, host, n));
    return d;
}

void *tc_dev_f32(const float *host, size_t n) {
    void *d = NULL;
    CHECK_OK(hsd_cuda_alloc(&d, n * 4));
    HSD_ASSERT(d);
    track(d, K_DEV);
    CHECK_OK(hsd_cuda_upload_f32(d, host, n));
    return d;
}

void *tc_dev_poisoned_f16(size_t n) {
    void *d = NULL;
    CHECK_OK(hsd_cuda_alloc(&d, n * 2));
    HSD_ASSERT(d);
    track(d, K_DEV);
    CHECK_OK(hsd_cuda_poison_f16(d, n));
    return d;
}

void tc_download_f16(float *dst, const void *dev, size_t n) {
    CHECK_OK(hsd_cuda_download_f16(dst, dev, n));
}

void tc_download_f32(float *dst, const void *dev, size_t n) {
    CHECK_OK(hsd_cuda_download_f32(dst, dev, n));
}

float *tc_cpu_buf(const float *host, size_t n) {
    float *d = g_cpu->ops->alloc(g_cpu, (n ? n : 1) * sizeof(float));
    HSD_ASSERT(d);
    track(d, K_CPU);
    CHECK_OK(g_cpu->ops->upload(g_cpu, d, host, n));
    return d;
}

float *tc_cpu_out(size_t n) {
    float *d = g_cpu->ops->alloc(g_cpu, (n ? n : 1) * sizeof(float));
    HSD_ASSERT(d);
    track(d, K_CPU);
    for (size_t i = 0; i < n; i++) d[i] = NAN;
    return d;
}

struct tc_err tc_error(const float *got, const float *ref, size_t n) {
    struct tc_err e = {0};
    double se = 0.0, sr = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double g = got[i], r = ref[i];
        if (!isfinite(g) || !isfinite(r)) {
            if (e.nonfinite++ == 0) {
                e.worst = i;
                e.worst_got = g;
                e.worst_ref = r;
            }
            continue;
        }
        const double d = fabs(g - r);
        se += d * d;
        sr += r * r;
        if (fabs(r) > e.max_ref) e.max_ref = fabs(r);
        if (e.nonfinite == 0 && (d > e.max_abs || i == 0)) {
            e.max_abs = d;
            e.worst = i;
            e.worst_got = g;
            e.worst_ref = r;
        }
    }
    e.nmse = sr > 0.0 ? se / sr : se;
    if (e.nonfinite) e.max_abs = INFINITY;
    return e;
}

// The torch table's max_abs for (op, case), or -1 when absent.
static double torch_max_abs(const char *op, const char *case_name, double *nmse) {
    if (!g_torch) return -1.0;
    char key[256];
    snprintf(key, sizeof key, "\"case\": \"%s\"", case_name);
    char opkey[128];
    snprintf(opkey, sizeof opkey, "\"op\": \"%s\"", op);
    for (const char *line = g_torch; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char buf[1024];
        if (len < sizeof buf) {
            memcpy(buf, line, len);
            buf[len] = 0;
            const char *m = strstr(buf, "\"max_abs\":");
            const char *q = strstr(buf, "\"nmse\":");
            if (strstr(buf, key) && strstr(buf, opkey) && m) {
                if (nmse) *nmse = q ? strtod(q + 7, NULL) : -1.0;
                return strtod(m + 10, NULL);
            }
        }
        line = end ? end + 1 : NULL;
    }
    return -1.0;
}

int tc_check(const char *op, const char *version, const char *case_name, const float *got,
             const float *ref, size_t n, double tol, double nmse_tol) {
    const struct tc_err e = tc_error(got, ref, n);
    double t_nmse = -1.0;
    const double t_max = torch_max_abs(op, case_name, &t_nmse);
    int ok = e.nonfinite == 0 && e.max_abs <= tol * e.max_ref && e.nmse <= nmse_tol;
    int torch_ok = 1;
    if (t_max >= 0.0) torch_ok = e.max_abs <= 2.0 * t_max;
    ok = ok && torch_ok;
    char torch_txt[96] = "";
    if (t_max >= 0.0) {
        snprintf(torch_txt, sizeof torch_txt, " torch %.2e (x%.2f)%s", t_max,
                 t_max > 0 ? e.max_abs / t_max : (e.max_abs == 0 ? 0.0 : INFINITY),
                 torch_ok ? "" : " >2x");
    }
    printf("%-11s %-32s %-28s max|err| %.3e (%.1e of max|ref| %.3g, tol %.0e) nmse %.2e (tol %.0e)"
           "%s worst[%zu] got %.6g ref %.6g%s %s\n",
           op, version, case_name, e.max_abs, e.max_ref > 0 ? e.max_abs / e.max_ref : 0.0,
           e.max_ref, tol, e.nmse, nmse_tol, torch_txt, e.worst, e.worst_got, e.worst_ref,
           e.nonfinite ? " NON-FINITE" : "", ok ? "ok" : "FAIL");
    hsd_test_check(ok, __FILE__, __LINE__, "%s %s %s: max|err| %.3e nmse %.3e nonfinite %zu", op,
                   version, case_name, e.max_abs, e.nmse, e.nonfinite);
    return ok;
}

int tc_skip_in_emulation(const char *op, const char *case_name, double work) {
    if (!g_emulated || work <= g_emu_max_work) return 0;
    g_emu_skipped++;
    printf("%-11s %-28s skipped in emulation (work %.3g > %.3g)\n", op, case_name, work,
           g_emu_max_work);
    return 1;
}

void tc_note_unsupported(const char *op, const char *version, const char *case_name) {
    g_unsupported++;
    printf("%-11s %-32s %-28s unsupported (%s): the registry runs a fallback or the reference here\n", op,
           version, case_name, hsd_last_error());
}
