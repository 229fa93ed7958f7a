// Step-op test cases (step_cases.h).
#include "step_cases.h"

#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/dtype.h"
#include "sampling/sampler.h"
#include "testutil.h"

static float *alloc_f(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    HSD_ASSERT(p);
    return p;
}

static int gcd(int a, int b) { return b ? gcd(b, a % b) : a; }

// n values uniform in [-3, 3), rounded to fp16 (what a GPU's U-Net gives).
static float *uniform_f16(size_t n, unsigned seed) {
    float *x = alloc_f(n);
    hsd_test_fill_uniform(x, n, 0x5eed0000u + seed, 3.0f);
    for (size_t i = 0; i < n; i++) x[i] = hsd_f16_to_f32(hsd_f32_to_f16(x[i]));
    return x;
}

// Bitwise equality of n floats (NaN payloads included).
void step_check_exact(const char *op, const char *version, const char *name, const float *got,
                      const float *ref, size_t n) {
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&got[i], &ref[i], sizeof *got) != 0 && bad++ == 0) first = i;
    }
    CHECKF(bad == 0, "%s %s %s: %zu of %zu values differ, first [%zu] got %.9g ref %.9g", op,
           version, name, bad, n, first, bad ? got[first] : 0.0, bad ? ref[first] : 0.0);
}

// Item i: sampler kind (seed + i) % 5, prediction type, clip and step
// count from the same number, advanced (5 v + 3) mod calls steps, so the
// items of a case cover the history states listed in step_cases.h.
void step_case_make(struct step_case *c, int n, size_t count, int cfg_every, unsigned seed) {
    c->n = n;
    c->count = count;
    c->table = calloc((size_t)n, sizeof *c->table);
    c->x = alloc_f((size_t)n * count);
    c->slots = alloc_f((size_t)n * HSD_STEP_SLOTS * count);
    int *has_cfg = calloc((size_t)n, sizeof *has_cfg);
    HSD_ASSERT(c->table && has_cfg);
    int rows = 0;
    for (int i = 0; i < n; i++) {
        has_cfg[i] = cfg_every > 0 && i % cfg_every == 0;
        rows += 1 + has_cfg[i];
    }
    c->rows = rows;
    // Rows handed out in a scrambled order: a stride coprime with rows
    // visits every row once.
    int stride = 7;
    while (gcd(stride, rows) != 1) stride++;
    int next = 0;
    float *mo = alloc_f(count);
    c->mo = uniform_f16((size_t)rows * count, seed);
    c->eps_host = alloc_f((size_t)n * count);
    c->x_host = alloc_f((size_t)n * count);
    c->in_host = alloc_f((size_t)n * count);
    for (int i = 0; i < n; i++) {
        const unsigned v = seed + (unsigned)i;
        const enum hsd_sampler_kind kind = (enum hsd_sampler_kind)(v % HSD_SAMPLER_COUNT);
        struct hsd_noise_schedule sc;
        hsd_noise_schedule_sd15(&sc);
        if ((v / HSD_SAMPLER_COUNT) % 2) sc.prediction_type = HSD_PRED_V;
        if (kind == HSD_SAMPLER_DDIM && (v / 2) % 2) sc.clip_sample = 1;
        const int steps = 3 + (int)(v % 4);  // 3..6: DPM's final first-order step is reached
        struct hsd_torch_rng rng;
        hsd_torch_rng_seed(&rng, 1000 + v);
        struct hsd_sampler s;
        CHECK_OK(hsd_sampler_init(&s, kind, &sc, steps, count, &rng));
        float *x = c->x + (size_t)i * count;
        hsd_torch_randn(&rng, x, count);
        const int pre = (int)((v * 5 + 3) % (unsigned)hsd_sampler_n_calls(&s));
        for (int k = 0; k < pre; k++) {
            hsd_torch_randn(&rng, mo, count);
            CHECK_OK(hsd_sampler_step(&s, x, mo));
        }
        hsd_sampler_scale_model_input(&s, c->in_host + (size_t)i * count, x);
        struct hsd_torch_rng after;
        CHECK_OK(hsd_sampler_plan_step(&s, &c->table[i], &after));
        // Unused slots random, used ones (history, noise) the sampler's.
        float *sl = c->slots + (size_t)i * HSD_STEP_SLOTS * count;
        hsd_torch_randn(&rng, sl, HSD_STEP_SLOTS * count);
        if (s.buf_len) memcpy(sl, s.buf, hsd_sampler_slot_floats(&s) * sizeof *sl);
        c->table[i].cond_row = next;
        next = (next + stride) % rows;
        if (has_cfg[i]) {
            c->table[i].uncond_row = next;
            next = (next + stride) % rows;
            c->table[i].guidance = 1.5f + (float)(v % 13);
        }
        const struct hsd_step_row *r = &c->table[i];
        const float *cr = c->mo + (size_t)r->cond_row * count;
        float *eps = c->eps_host + (size_t)i * count;
        for (size_t e = 0; e < count; e++) {
            if (r->uncond_row < 0) {
                eps[e] = cr[e];
            } else {
                const float u = c->mo[(size_t)r->uncond_row * count + e];
                eps[e] = u + r->guidance * (cr[e] - u);
            }
        }
        memcpy(c->x_host + (size_t)i * count, x, count * sizeof *x);
        CHECK_OK(hsd_sampler_step(&s, c->x_host + (size_t)i * count, eps));
        hsd_sampler_free(&s);
    }
    free(has_cfg);
    free(mo);
}

void step_case_free(struct step_case *c) {
    free(c->table);
    free(c->x);
    free(c->slots);
    free(c->mo);
    free(c->eps_host);
    free(c->x_host);
    free(c->in_host);
    memset(c, 0, sizeof *c);
}
