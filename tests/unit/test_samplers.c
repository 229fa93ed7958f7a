// The five samplers against diffusers (tests/data/sampling/samplers.json and
// samplers.safetensors from tests/oracle/make_sampler_cases.py), and the
// serialized sampler state (hybrid handover).
//
// Timesteps, sigmas, init_noise_sigma and alphas_cumprod must be equal
// exactly: diffusers computes them in numpy float64 / torch float32 with a
// fixed operation order that the C code follows (the oracle pins torch's
// MKL to its AVX2 path, whose float32 sqrt is IEEE; see the script).
// Trajectories (x after each model call, with a fixed stand-in model) must
// be within 1e-5 x max|ref| per step: the latent arithmetic is the same
// float32 operations in the same order, so DDIM, Euler, Euler a and PNDM
// match bit for bit; DPM-Solver++ takes log/exp of 0-dim tensors, which
// torch evaluates with MKL VML and C with glibc (an ulp apart), and an ulp
// in lambda is ~1e-6 relative in the step size h at 25 steps. Measured:
// <= 2.3e-7 x max|ref| (torch 2.15, diffusers 0.42.1); each trajectory
// prints its worst step.
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "io/safetensors.h"
#include "sampling/sampler.h"
#include "testutil.h"

#define N_LATENT 256  // [1, 4, 8, 8]

static uint64_t g_traj_seed = 42, g_noise_seed = 1000;

static enum hsd_status schedule_from_json(struct hsd_noise_schedule *s, json_t *cfg) {
    char *text = json_dumps(cfg, 0);
    enum hsd_status st = hsd_noise_schedule_parse(s, text, strlen(text), "samplers.json config");
    free(text);
    return st;
}

static void test_alphas_cumprod(json_t *doc) {
    const char *name;
    json_t *arr;
    json_object_foreach(json_object_get(doc, "alphas_cumprod"), name, arr) {
        struct hsd_noise_schedule sc;
        CHECK_OK(schedule_from_json(&sc, json_object_get(json_object_get(doc, "configs"), name)));
        size_t n = json_array_size(arr);
        CHECK(n == (size_t)sc.num_train_timesteps);
        float *ac = malloc(n * sizeof *ac);
        CHECK_OK(hsd_noise_schedule_alphas_cumprod(&sc, ac));
        int bad = 0;
        for (size_t i = 0; i < n; i++) {
            float want = (float)json_real_value(json_array_get(arr, i));
            if (ac[i] != want) {
                if (!bad) fprintf(stderr, "%s alphas_cumprod[%zu] %.9g want %.9g\n", name, i, ac[i], want);
                bad++;
            }
        }
        printf("alphas_cumprod %-8s %zu values, %d differ (exact)\n", name, n, bad);
        CHECKF(bad == 0, "alphas_cumprod %s: %d differ", name, bad);
        free(ac);
    }
}

static void test_schedules(json_t *doc) {
    json_t *configs = json_object_get(doc, "configs");
    size_t i;
    json_t *c;
    int n_cases = 0, n_bad = 0;
    json_array_foreach(json_object_get(doc, "schedules"), i, c) {
        const char *sname = json_string_value(json_object_get(c, "sampler"));
        const char *cname = json_string_value(json_object_get(c, "config"));
        int n = (int)json_integer_value(json_object_get(c, "n"));
        enum hsd_sampler_kind kind;
        struct hsd_noise_schedule sc;
        CHECK_OK(hsd_sampler_parse(sname, &kind));
        CHECK_OK(schedule_from_json(&sc, json_object_get(configs, cname)));
        struct hsd_torch_rng rng;
        hsd_torch_rng_seed(&rng, 0);
        struct hsd_sampler s;
        enum hsd_status st = hsd_sampler_init(&s, kind, &sc, n, N_LATENT, &rng);
        CHECKF(st == HSD_OK, "%s %s N=%d: init: %s", sname, cname, n, hsd_last_error());
        if (st != HSD_OK) continue;
        int bad = 0;
        json_t *ts = json_object_get(c, "timesteps");
        if (json_array_size(ts) != (size_t)s.n_timesteps) {
            bad++;
            fprintf(stderr, "%s %s N=%d: %d timesteps, diffusers %zu\n", sname, cname, n,
                    s.n_timesteps, json_array_size(ts));
        } else {
            for (int k = 0; k < s.n_timesteps; k++) {
                double want = json_number_value(json_array_get(ts, (size_t)k));
                if ((double)s.timesteps[k] != want) {
                    if (!bad) {
                        fprintf(stderr, "%s %s N=%d: timesteps[%d] %.9g want %.9g\n", sname,
                                cname, n, k, (double)s.timesteps[k], want);
                    }
                    bad++;
                }
            }
        }
        json_t *sg = json_object_get(c, "sigmas");
        if (sg && json_array_size(sg) == (size_t)s.n_timesteps + 1) {
            for (int k = 0; k <= s.n_timesteps; k++) {
                double want = json_number_value(json_array_get(sg, (size_t)k));
                if (s.sigmas[k] != want) {
                    if (!bad) {
                        fprintf(stderr, "%s %s N=%d: sigmas[%d] %.9g want %.9g\n", sname, cname,
                                n, k, s.sigmas[k], want);
                    }
                    bad++;
                }
            }
        } else if (sg) {
            bad++;
        }
        double want_ins = json_number_value(json_object_get(c, "init_noise_sigma"));
        if ((double)hsd_sampler_init_noise_sigma(&s) != want_ins) {
            fprintf(stderr, "%s %s N=%d: init_noise_sigma %.9g want %.9g\n", sname, cname, n,
                    (double)hsd_sampler_init_noise_sigma(&s), want_ins);
            bad++;
        }
        CHECKF(bad == 0, "%s %s N=%d: %d schedule values differ", sname, cname, n, bad);
        n_cases++;
        n_bad += bad != 0;
        hsd_sampler_free(&s);
    }
    printf("schedules: %d (sampler, config, N) cases, %d with differences (exact)\n", n_cases,
           n_bad);
}

// The stand-in model of the oracle, for model call `call`:
// 0.9 * scale_model_input(x) + 0.1 * randn(seed NOISE_SEED + call).
static void fake_model(const struct hsd_sampler *s, float *out, const float *x, int call) {
    float inp[N_LATENT], noise[N_LATENT];
    hsd_sampler_scale_model_input(s, inp, x);
    struct hsd_torch_rng g;
    hsd_torch_rng_seed(&g, g_noise_seed + (uint64_t)call);
    hsd_torch_randn(&g, noise, N_LATENT);
    for (int e = 0; e < N_LATENT; e++) out[e] = 0.9f * inp[e] + 0.1f * noise[e];
}

// Initial latent as StableDiffusionPipeline.prepare_latents; the generator
// continues into the sampler.
static enum hsd_status start(struct hsd_sampler *s, float *x, enum hsd_sampler_kind kind,
                             const struct hsd_noise_schedule *sc, int n) {
    struct hsd_torch_rng g;
    hsd_torch_rng_seed(&g, g_traj_seed);
    hsd_torch_randn(&g, x, N_LATENT);
    enum hsd_status st = hsd_sampler_init(s, kind, sc, n, N_LATENT, &g);
    if (st != HSD_OK) return st;
    const float ins = hsd_sampler_init_noise_sigma(s);
    for (int e = 0; e < N_LATENT; e++) x[e] = x[e] * ins;
    return HSD_OK;
}

static void run_until(struct hsd_sampler *s, float *x, int stop) {
    float mo[N_LATENT];
    while (s->step < stop) {
        fake_model(s, mo, x, s->step);
        CHECK_OK(hsd_sampler_step(s, x, mo));
    }
}

static void test_trajectories(json_t *doc, const struct hsd_safetensors *st) {
    json_t *configs = json_object_get(doc, "configs");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(doc, "trajectories"), i, c) {
        const char *sname = json_string_value(json_object_get(c, "sampler"));
        const char *cname = json_string_value(json_object_get(c, "config"));
        const char *key = json_string_value(json_object_get(c, "tensor"));
        int n = (int)json_integer_value(json_object_get(c, "n"));
        enum hsd_sampler_kind kind;
        struct hsd_noise_schedule sc;
        CHECK_OK(hsd_sampler_parse(sname, &kind));
        CHECK_OK(schedule_from_json(&sc, json_object_get(configs, cname)));
        const struct hsd_st_tensor *t = hsd_safetensors_find(st, key);
        CHECKF(t != NULL, "%s missing", key);
        if (!t) continue;
        float *ref = malloc((size_t)t->numel * sizeof *ref);
        CHECK_OK(hsd_safetensors_read_f32(st, key, ref, (size_t)t->numel));
        struct hsd_sampler s;
        float x[N_LATENT];
        CHECK_OK(start(&s, x, kind, &sc, n));
        CHECKF(t->shape[0] == s.n_timesteps + 1 && t->shape[1] == N_LATENT, "%s shape", key);
        // Row 0: the initial latent is exact (bitwise torch RNG).
        CHECKF(memcmp(x, ref, sizeof x) == 0, "%s: initial latent differs", key);
        double worst = 0;
        int worst_step = -1;
        for (int k = 0; k < s.n_timesteps && t->shape[0] == s.n_timesteps + 1; k++) {
            run_until(&s, x, k + 1);
            const float *r = ref + (size_t)(k + 1) * N_LATENT;
            struct hsd_cmp cmp = hsd_compare(x, r, N_LATENT);
            double rel = cmp.max_abs_ref > 0 ? cmp.max_abs_err / cmp.max_abs_ref : cmp.max_abs_err;
            if (rel > worst || worst_step < 0) {
                worst = rel;
                worst_step = k;
            }
            if (!(rel <= 1e-5) || cmp.n_nonfinite) {
                char what[96];
                snprintf(what, sizeof what, "%s step %d", key, k);
                CHECK_CLOSE(what, x, r, N_LATENT, 1e-5);
            }
        }
        printf("trajectory %-28s %3d calls  worst step %3d: max|err| = %.2e x max|ref|\n", key,
               s.n_timesteps, worst_step, worst);
        CHECKF(hsd_sampler_done(&s), "%s not done", key);
        // Stepping past the end is an error, not a silent no-op.
        float mo[N_LATENT] = {0};
        CHECK(hsd_sampler_step(&s, x, mo) == HSD_ERR_INVALID_ARG);
        hsd_sampler_free(&s);
        free(ref);
    }
}

// Run k calls, serialize, deserialize into a fresh object, finish: the
// result (latent and final state) must be bit-identical to an
// uninterrupted run.
static void test_handover(enum hsd_sampler_kind kind, const struct hsd_noise_schedule *sc, int n,
                          const char *label) {
    struct hsd_sampler ref;
    float x_ref[N_LATENT];
    CHECK_OK(start(&ref, x_ref, kind, sc, n));
    const int calls = hsd_sampler_n_calls(&ref);
    run_until(&ref, x_ref, calls);
    size_t ref_size = hsd_sampler_serialized_size(&ref);
    unsigned char *ref_bytes = malloc(ref_size);
    CHECK_OK(hsd_sampler_serialize(&ref, ref_bytes, ref_size));

    int ks[] = {0, 1, 2, calls / 2, calls - 1, calls};
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
        int k = ks[ki];
        if (k > calls) continue;
        struct hsd_sampler a, b;
        float x[N_LATENT];
        CHECK_OK(start(&a, x, kind, sc, n));
        run_until(&a, x, k);
        size_t size = hsd_sampler_serialized_size(&a);
        unsigned char *bytes = malloc(size);
        CHECK_OK(hsd_sampler_serialize(&a, bytes, size));
        hsd_sampler_free(&a);
        CHECK_OK(hsd_sampler_deserialize(&b, bytes, size));
        // deserialize -> serialize reproduces the bytes.
        unsigned char *again = malloc(size);
        CHECK(hsd_sampler_serialized_size(&b) == size);
        CHECK_OK(hsd_sampler_serialize(&b, again, size));
        CHECKF(memcmp(bytes, again, size) == 0, "%s k=%d: re-serialized state differs", label, k);
        run_until(&b, x, calls);
        CHECKF(memcmp(x, x_ref, sizeof x) == 0, "%s: handover at k=%d changes the result", label, k);
        size_t fsize = hsd_sampler_serialized_size(&b);
        unsigned char *fbytes = malloc(fsize);
        CHECK_OK(hsd_sampler_serialize(&b, fbytes, fsize));
        CHECKF(fsize == ref_size && memcmp(fbytes, ref_bytes, fsize) == 0,
               "%s: final state after handover at k=%d differs", label, k);
        free(fbytes);
        free(again);
        free(bytes);
        hsd_sampler_free(&b);
    }
    printf("handover %-22s %d calls, k in {0, 1, 2, %d, %d, %d}: bit-identical\n", label, calls,
           calls / 2, calls - 1, calls);
    free(ref_bytes);
    hsd_sampler_free(&ref);
}

// ---- corrupted states -------------------------------------------------

// Offsets of the version-1 layout (sampler.c).
enum {
    OFF_VERSION = 8, OFF_KIND = 12, OFF_TOTAL = 16, OFF_NTRAIN = 24, OFF_BETA_START = 28,
    OFF_BETA_SCHED = 44, OFF_OFFSET = 48, OFF_ALPHA_ONE = 52, OFF_CLIP_RANGE = 60, OFF_PRED = 64,
    OFF_SPACING = 68, OFF_SKIP_PRK = 72, OFF_NSTEPS = 76, OFF_STEP = 80, OFF_NLATENT = 84,
    OFF_NTIMESTEPS = 92, OFF_LOWER = 96, OFF_COUNTER = 100, OFF_NETS = 104, OFF_TABLES = 108,
};

static void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void fix_crc(unsigned char *b, size_t len) {
    put32(b + len - 4, (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, (uInt)(len - 4)));
}

static void expect_reject(const char *what, const unsigned char *b, size_t len) {
    struct hsd_sampler s;
    enum hsd_status st = hsd_sampler_deserialize(&s, b, len);
    CHECKF(st == HSD_ERR_FORMAT, "%s: deserialize gave %s, want format error", what,
           hsd_status_str(st));
    CHECK(s.buf == NULL);
    hsd_sampler_free(&s);
}

static void test_corruption(const struct hsd_noise_schedule *sc) {
    // PNDM at call 3: history, counters and a full table.
    struct hsd_sampler a;
    float x[N_LATENT];
    CHECK_OK(start(&a, x, HSD_SAMPLER_PNDM, sc, 10));
    run_until(&a, x, 3);
    const size_t len = hsd_sampler_serialized_size(&a);
    unsigned char *good = malloc(len), *b = malloc(len);
    CHECK_OK(hsd_sampler_serialize(&a, good, len));
    const int nt = a.n_timesteps;
    hsd_sampler_free(&a);

    // Every truncation and every single-byte change (CRC).
    int ok = 1;
    for (size_t l = 0; l < len; l++) {
        struct hsd_sampler s;
        ok &= hsd_sampler_deserialize(&s, good, l) == HSD_ERR_FORMAT;
    }
    CHECKF(ok, "a truncated state was accepted");
    ok = 1;
    for (size_t i = 0; i < len; i++) {
        memcpy(b, good, len);
        b[i] ^= (unsigned char)(1u << (i % 8));
        struct hsd_sampler s;
        enum hsd_status st = hsd_sampler_deserialize(&s, b, len);
        ok &= st == HSD_ERR_FORMAT;
        if (st == HSD_OK) hsd_sampler_free(&s);
    }
    CHECKF(ok, "a state with a flipped bit was accepted");
    unsigned char *longer = malloc(len + 1);
    memcpy(longer, good, len);
    longer[len] = 0;
    expect_reject("trailing byte", longer, len + 1);
    free(longer);

    // Field changes with a valid CRC: the semantic checks.
    static const struct {
        const char *what;
        int off;
        uint32_t value;
    } cases[] = {
        {"version 2", OFF_VERSION, 2},
        {"kind 99", OFF_KIND, 99},
        {"kind ddim", OFF_KIND, HSD_SAMPLER_DDIM},
        {"total length", OFF_TOTAL, 12},
        {"num_train_timesteps 0", OFF_NTRAIN, 0},
        {"num_train_timesteps 999", OFF_NTRAIN, 999},
        {"num_train_timesteps huge", OFF_NTRAIN, 0x80000000u},
        {"beta_schedule 7", OFF_BETA_SCHED, 7},
        {"steps_offset -1", OFF_OFFSET, 0xffffffffu},
        {"steps_offset 2", OFF_OFFSET, 2},
        {"set_alpha_to_one 5", OFF_ALPHA_ONE, 5},
        {"clip_sample_range NaN", OFF_CLIP_RANGE, 0x7fc00000u},
        {"prediction_type 9", OFF_PRED, 9},
        {"timestep_spacing 9", OFF_SPACING, 9},
        {"skip_prk_steps 0", OFF_SKIP_PRK, 0},
        {"n_steps 0", OFF_NSTEPS, 0},
        {"n_steps 1001", OFF_NSTEPS, 1001},
        {"n_steps 9", OFF_NSTEPS, 9},
        {"step 12", OFF_STEP, 12},
        {"step 2", OFF_STEP, 2},
        {"n_latent 0", OFF_NLATENT, 0},
        {"n_latent 255", OFF_NLATENT, 255},
        {"n_latent huge", OFF_NLATENT + 4, 1},
        {"n_timesteps 10", OFF_NTIMESTEPS, 10},
        {"n_timesteps 0", OFF_NTIMESTEPS, 0},
        {"lower_order_nums 1", OFF_LOWER, 1},
        {"counter 2", OFF_COUNTER, 2},
        {"n_ets 4", OFF_NETS, 4},
        {"timesteps[0]", OFF_TABLES, 0x44000000u},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(b, good, len);
        put32(b + cases[i].off, cases[i].value);
        fix_crc(b, len);
        expect_reject(cases[i].what, b, len);
    }
    // Offsets past the tables.
    const size_t rng_off = OFF_TABLES + (size_t)nt * 4 + (size_t)(nt + 1) * 8 + (size_t)nt * 8;
    const size_t idx_off = rng_off + 624 * 4, hasd_off = idx_off + 4, nextd_off = hasd_off + 4;
    const size_t hasf_off = nextd_off + 8, nextf_off = hasf_off + 4, flavor_off = nextf_off + 4;
    const size_t live_off = flavor_off + 4, hist_off = live_off + 4;
    static const struct {
        const char *what;
        int rel;  // which offset below
        uint32_t value;
    } tail_cases[] = {
        {"rng index 625", 0, 625},      {"has_next_double 2", 1, 2}, {"next_double w/o flag", 2, 1},
        {"has_next_float 3", 3, 3},     {"next_float w/o flag", 4, 0x3f800000u},
        {"flavor 5", 5, 5},             {"live slots 3", 6, 3},      {"live slots 99", 6, 99},
        {"history NaN", 7, 0x7fc00000u}, {"history Inf", 7, 0x7f800000u},
    };
    const size_t offs[] = {idx_off, hasd_off, nextd_off, hasf_off, nextf_off, flavor_off, live_off,
                           hist_off};
    CHECK(get32(good + live_off) == 2);  // 2 ets before call 3
    CHECK(len == hist_off + 2 * N_LATENT * 4 + 4);
    for (size_t i = 0; i < sizeof tail_cases / sizeof tail_cases[0]; i++) {
        memcpy(b, good, len);
        put32(b + offs[tail_cases[i].rel], tail_cases[i].value);
        fix_crc(b, len);
        expect_reject(tail_cases[i].what, b, len);
    }
    // The unmodified state still loads (the helpers above are sound).
    memcpy(b, good, len);
    fix_crc(b, len);
    struct hsd_sampler s;
    CHECK_OK(hsd_sampler_deserialize(&s, b, len));
    hsd_sampler_free(&s);
    printf("corruption: %zu truncations, %zu bit flips, %zu field edits rejected\n", len, len,
           sizeof cases / sizeof cases[0] + sizeof tail_cases / sizeof tail_cases[0] + 1);
    free(b);
    free(good);
}

static void test_api(const struct hsd_noise_schedule *sd15) {
    for (int k = 0; k < HSD_SAMPLER_COUNT; k++) {
        enum hsd_sampler_kind got;
        CHECK_OK(hsd_sampler_parse(hsd_sampler_name((enum hsd_sampler_kind)k), &got));
        CHECK(got == (enum hsd_sampler_kind)k);
    }
    enum hsd_sampler_kind kind;
    CHECK(hsd_sampler_parse("dpm++", &kind) == HSD_ERR_INVALID_ARG);
    struct hsd_sampler s;
    // Euler ancestral needs the generator.
    CHECK(hsd_sampler_init(&s, HSD_SAMPLER_EULER_A, sd15, 10, N_LATENT, NULL) ==
          HSD_ERR_INVALID_ARG);
    CHECK(s.buf == NULL);
    CHECK(hsd_sampler_init(&s, HSD_SAMPLER_DDIM, sd15, 0, N_LATENT, NULL) == HSD_ERR_INVALID_ARG);
    CHECK(hsd_sampler_init(&s, HSD_SAMPLER_DDIM, sd15, 1001, N_LATENT, NULL) ==
          HSD_ERR_INVALID_ARG);
    CHECK(hsd_sampler_init(&s, HSD_SAMPLER_DDIM, sd15, 10, 0, NULL) == HSD_ERR_INVALID_ARG);
    CHECK(hsd_sampler_init(&s, HSD_SAMPLER_COUNT, sd15, 10, N_LATENT, NULL) == HSD_ERR_INVALID_ARG);
    // DDIM leading with steps_offset 1 and N = 1000 would use timestep 1000.
    CHECK(hsd_sampler_init(&s, HSD_SAMPLER_DDIM, sd15, 1000, N_LATENT, NULL) ==
          HSD_ERR_INVALID_ARG);
    // numpy's arange makes 62 trailing timesteps for N = 61, the last -1.
    struct hsd_noise_schedule tr = *sd15;
    tr.timestep_spacing = HSD_SPACING_TRAILING;
    CHECK(hsd_sampler_init(&s, HSD_SAMPLER_DDIM, &tr, 61, N_LATENT, NULL) == HSD_ERR_INVALID_ARG);
    CHECK_OK(hsd_sampler_init(&s, HSD_SAMPLER_DDIM, &tr, 60, N_LATENT, NULL));
    CHECK(s.n_timesteps == 60);
    hsd_sampler_free(&s);
    // PRK steps (PNDM without skip_prk_steps) are not implemented.
    struct hsd_noise_schedule prk = *sd15;
    prk.skip_prk_steps = -1;
    CHECK(hsd_sampler_init(&s, HSD_SAMPLER_PNDM, &prk, 10, N_LATENT, NULL) == HSD_ERR_UNSUPPORTED);
    // PNDM: N + 1 calls, the repeated timestep second.
    CHECK_OK(hsd_sampler_init(&s, HSD_SAMPLER_PNDM, sd15, 10, N_LATENT, NULL));
    CHECK(hsd_sampler_n_calls(&s) == 11 && s.timesteps[0] == 901 && s.timesteps[1] == 801 &&
          s.timesteps[2] == 801 && s.timesteps[10] == 1);
    // copy is a deep copy.
    struct hsd_sampler c;
    CHECK_OK(hsd_sampler_copy(&c, &s));
    CHECK(c.buf != s.buf && c.buf_len == s.buf_len);
    hsd_sampler_free(&c);
    hsd_sampler_free(&s);
    // serialize into a short buffer fails cleanly.
    CHECK_OK(hsd_sampler_init(&s, HSD_SAMPLER_EULER, sd15, 5, N_LATENT, NULL));
    unsigned char small[16];
    CHECK(hsd_sampler_serialize(&s, small, sizeof small) == HSD_ERR_INVALID_ARG);
    hsd_sampler_free(&s);
}

int main(void) {
    json_error_t err;
    json_t *doc = json_load_file(HSD_TEST_DATA "/sampling/samplers.json", 0, &err);
    CHECKF(doc != NULL, "samplers.json: %s (run tests/oracle/regen.sh)", err.text);
    struct hsd_safetensors *st = NULL;
    CHECK_OK(hsd_safetensors_open(&st, HSD_TEST_DATA "/sampling/samplers.safetensors"));
    if (!doc || !st) return hsd_test_finish();
    g_traj_seed = (uint64_t)json_integer_value(json_object_get(doc, "traj_seed"));
    g_noise_seed = (uint64_t)json_integer_value(json_object_get(doc, "noise_seed"));

    test_alphas_cumprod(doc);
    test_schedules(doc);
    test_trajectories(doc, st);

    struct hsd_noise_schedule sd15, sd2v;
    hsd_noise_schedule_sd15(&sd15);
    sd2v = sd15;
    sd2v.prediction_type = HSD_PRED_V;
    for (int k = 0; k < HSD_SAMPLER_COUNT; k++) {
        char label[64];
        snprintf(label, sizeof label, "%s sd15 N=10", hsd_sampler_name((enum hsd_sampler_kind)k));
        test_handover((enum hsd_sampler_kind)k, &sd15, 10, label);
        snprintf(label, sizeof label, "%s sd2v N=7", hsd_sampler_name((enum hsd_sampler_kind)k));
        test_handover((enum hsd_sampler_kind)k, &sd2v, 7, label);
        snprintf(label, sizeof label, "%s sd15 N=1", hsd_sampler_name((enum hsd_sampler_kind)k));
        test_handover((enum hsd_sampler_kind)k, &sd15, 1, label);
    }
    test_corruption(&sd15);
    test_api(&sd15);

    hsd_safetensors_close(st);
    json_decref(doc);
    return hsd_test_finish();
}
