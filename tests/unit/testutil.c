#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "pipeline/pipeline.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

static int g_pass, g_fail;

void hsd_test_check(int ok, const char *file, int line, const char *fmt, ...) {
    if (ok) {
        g_pass++;
        return;
    }
    g_fail++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s:%d: FAILED: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int hsd_test_failures(void) { return g_fail; }

int hsd_test_finish(void) {
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}

struct hsd_cmp hsd_compare(const float *got, const float *ref, size_t n) {
    struct hsd_cmp c = {0};
    for (size_t i = 0; i < n; i++) {
        double r = ref[i], g = got[i];
        if (!isfinite(g) || !isfinite(r)) {
            c.n_nonfinite++;
            if (c.n_nonfinite == 1) {
                c.worst = i;
                c.worst_got = g;
                c.worst_ref = r;
                c.max_abs_err = INFINITY;
            }
            continue;
        }
        if (fabs(r) > c.max_abs_ref) c.max_abs_ref = fabs(r);
        double e = fabs(g - r);
        if (e > c.max_abs_err) {
            c.max_abs_err = e;
            c.worst = i;
            c.worst_got = g;
            c.worst_ref = r;
        }
    }
    return c;
}

int hsd_check_close(const char *what, const float *got, const float *ref, size_t n,
                    double rel_tol, const char *file, int line) {
    struct hsd_cmp c = hsd_compare(got, ref, n);
    double bound = rel_tol * c.max_abs_ref;
    int ok = c.n_nonfinite == 0 && c.max_abs_err <= bound;
    printf("%-32s n=%-9zu max|err|=%.3e (%.2e x max|ref| %.3e) worst[%zu] got %.7g ref %.7g%s %s\n",
           what, n, c.max_abs_err, c.max_abs_ref > 0 ? c.max_abs_err / c.max_abs_ref : 0.0,
           c.max_abs_ref, c.worst, c.worst_got, c.worst_ref,
           c.n_nonfinite ? " NON-FINITE" : "", ok ? "ok" : "FAIL");
    hsd_test_check(ok, file, line, "%s: max|err| %.3e > %.1e x max|ref| %.3e", what,
                   c.max_abs_err, rel_tol, c.max_abs_ref);
    return ok;
}

void hsd_test_fill_uniform(float *x, size_t n, uint64_t seed, float scale) {
    // splitmix64: a fixed, well-mixed sequence per seed.
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        double u = (double)(z >> 11) * (1.0 / 9007199254740992.0);
        x[i] = (float)((2.0 * u - 1.0) * scale);
    }
}

float *hsd_test_read_input(const struct hsd_safetensors *io, const char *name,
                           const struct hsd_st_tensor **t) {
    *t = hsd_safetensors_find(io, name);
    CHECKF(*t != NULL, "golden file lacks '%s'", name);
    if (!*t) return NULL;
    float *x = malloc((size_t)((*t)->numel ? (*t)->numel : 1) * sizeof *x);
    if (!x) return NULL;
    if ((*t)->dtype == HSD_I64) {
        for (int64_t i = 0; i < (*t)->numel; i++) {
            int64_t v;
            memcpy(&v, (const char *)(*t)->data + 8 * i, 8);
            x[i] = (float)v;
        }
    } else if ((*t)->dtype == HSD_U8) {
        for (int64_t i = 0; i < (*t)->numel; i++) x[i] = ((const uint8_t *)(*t)->data)[i];
    } else {
        CHECK_OK(hsd_safetensors_read_f32(io, name, x, (size_t)(*t)->numel));
    }
    return x;
}

int hsd_test_rgb_worst(const uint8_t *got, const float *ref, size_t n) {
    int worst = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)got[i] - (int)ref[i]);
        if (d > worst) worst = d;
    }
    return worst;
}

float *hsd_test_golden(const struct hsd_safetensors *g, const char *name, const char *part,
                       size_t *count) {
    char key[128];
    const struct hsd_st_tensor *t;
    snprintf(key, sizeof key, "%s.%s", name, part);
    float *x = hsd_test_read_input(g, key, &t);
    *count = x ? (size_t)t->numel : 0;
    return x;
}

void hsd_test_generate_vs_goldens(struct hsd_pipeline *p, const struct hsd_gen_request *r,
                                  const struct hsd_safetensors *g, const char *name, double tol) {
    const size_t lat = 4 * 8 * 8, img = 3 * 64 * 64;
    float latent[4 * 8 * 8], *image = malloc(img * sizeof *image);
    uint8_t *rgb = malloc(img);
    CHECK_OK(hsd_pipeline_generate(p, r, rgb, image, latent, NULL, NULL, NULL));
    char what[160];
    size_t n;
    float *ref;
    if ((ref = hsd_test_golden(g, name, "latent", &n)) && n == lat) {
        snprintf(what, sizeof what, "%s latent", name);
        CHECK_CLOSE(what, latent, ref, n, tol);
    }
    free(ref);
    if ((ref = hsd_test_golden(g, name, "image", &n)) && n == img) {
        snprintf(what, sizeof what, "%s image", name);
        CHECK_CLOSE(what, image, ref, n, tol);
    }
    free(ref);
    if ((ref = hsd_test_golden(g, name, "rgb", &n)) && n == img) {
        int worst = hsd_test_rgb_worst(rgb, ref, n);
        printf("%-16s 8-bit image max |diff| = %d/255\n", name, worst);
        CHECKF(worst <= 1, "%s: 8-bit image differs by %d/255", name, worst);
    }
    free(ref);
    free(image);
    free(rgb);
}

float *hsd_test_encode_prompt_pairs(struct hsd_pipeline *p) {
    const size_t ctx = (size_t)HSD_TEXT_LEN * hsd_pipeline_text_width(p);
    float *emb = malloc(HSD_TEST_PROMPT_PAIRS * 2 * ctx * sizeof *emb);
    CHECK(emb != NULL);
    if (!emb) return NULL;
    static const char *words[HSD_TEST_PROMPT_PAIRS] = {
        "a red fox", "a lighthouse", "snow", "a city at night", "an astronaut", "tea"};
    const char *prompts[2 * HSD_TEST_PROMPT_PAIRS];
    for (int i = 0; i < HSD_TEST_PROMPT_PAIRS; i++) {
        prompts[2 * i] = i % 2 ? "blurry" : "";
        prompts[2 * i + 1] = words[i];
    }
    CHECK_OK(hsd_pipeline_encode_text(p, emb, prompts, 2 * HSD_TEST_PROMPT_PAIRS, 0));
    return emb;
}
