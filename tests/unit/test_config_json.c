// Configs as diffusers writes them (issue 12): Python's JSON dialect
// (Infinity, -Infinity, NaN as bare tokens) in every config reader, and the
// scheduler configs diffusers saves for each scheduler class hsd maps to a
// sampler (tests/data/sampling/saved_configs, made by
// tests/oracle/make_scheduler_configs.py) giving diffusers' timesteps.
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/config_json.h"
#include "sampling/sampler.h"
#include "testutil.h"

static json_t *parse(const char *text) {
    json_t *root = NULL;
    if (hsd_cfg_parse(text, strlen(text), "test", &root) != HSD_OK) return NULL;
    return root;
}

static void test_python_tokens(void) {
    json_t *r = parse("{\"a\": -Infinity, \"b\": Infinity, \"c\": NaN, \"d\": [NaN,-Infinity],"
                      " \"e\": \"-Infinity\", \"f\": \"x \\\" NaN\", \"g\": 1.5}");
    CHECKF(r != NULL, "Python tokens parse: %s", hsd_last_error());
    if (!r) return;
    double x = 0;
    CHECK(hsd_cfg_number(json_object_get(r, "a"), &x) && isinf(x) && x < 0);
    CHECK(hsd_cfg_number(json_object_get(r, "b"), &x) && isinf(x) && x > 0);
    CHECK(hsd_cfg_number(json_object_get(r, "c"), &x) && isnan(x));
    CHECK(hsd_cfg_number(json_array_get(json_object_get(r, "d"), 0), &x) && isnan(x));
    CHECK(hsd_cfg_number(json_array_get(json_object_get(r, "d"), 1), &x) && isinf(x));
    // Strings keep their text, even when it spells a token.
    CHECK(!hsd_cfg_number(json_object_get(r, "e"), &x));
    CHECK(!strcmp(json_string_value(json_object_get(r, "e")), "-Infinity"));
    CHECK(!strcmp(json_string_value(json_object_get(r, "f")), "x \" NaN"));
    CHECK(hsd_cfg_number(json_object_get(r, "g"), &x) && x == 1.5);
    // A float key read by hsd refuses a non-finite value with its name.
    float f = 0;
    CHECK(hsd_cfg_float(r, "test", "b", &f) == HSD_ERR_FORMAT);
    CHECKF(strstr(hsd_last_error(), "'b'") != NULL, "message names the key: %s", hsd_last_error());
    json_decref(r);

    // Tokens glued to other characters stay invalid JSON.
    static const char *const bad[] = {"{\"a\": NaNx}", "{\"a\": -Infinity1}", "{\"a\": nan}",
                                      "{\"a\": +Infinity}", "{\"a\": xNaN}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *b = parse(bad[i]);
        CHECKF(b == NULL, "%s must be refused", bad[i]);
        json_decref(b);
    }
    // Worst-case growth: every byte a token.
    char many[3 * 4000 + 64];
    size_t o = (size_t)sprintf(many, "{\"a\":[");
    for (int i = 0; i < 3000; i++) o += (size_t)sprintf(many + o, "%sNaN", i ? "," : "");
    sprintf(many + o, "]}");
    r = parse(many);
    CHECKF(r && json_array_size(json_object_get(r, "a")) == 3000, "3000 NaN tokens: %s",
           r ? "parsed" : hsd_last_error());
    json_decref(r);
}

static void test_scheduler_non_finite(void) {
    struct hsd_noise_schedule s;
    const char *ok = "{\"beta_start\": 0.00085, \"lambda_min_clipped\": -Infinity}";
    CHECK_OK(hsd_noise_schedule_parse(&s, ok, strlen(ok), "ok"));
    const char *nan = "{\"beta_start\": NaN}";
    CHECK(hsd_noise_schedule_parse(&s, nan, strlen(nan), "nan") == HSD_ERR_FORMAT);
    CHECKF(strstr(hsd_last_error(), "beta_start") != NULL, "names the key: %s", hsd_last_error());
}

// SDXL-base's scheduler config: every sampler built from it gives the
// timesteps and sigmas it gives for tests/data/sampling's sd15_leading
// config, which test_samplers matches bit for bit to diffusers (and
// make_scheduler_configs.py asserts diffusers gives both configs the same).
static int same_as_sd15_leading(const struct hsd_noise_schedule *sdxl, enum hsd_sampler_kind kind,
                                const char *file) {
    char path[1024];
    snprintf(path, sizeof path, "%s/sampling/samplers.json", HSD_TEST_DATA);
    json_t *doc = json_load_file(path, 0, NULL);
    json_t *cfg = json_object_get(json_object_get(doc, "configs"), "sd15_leading");
    CHECKF(cfg != NULL, "%s: no sd15_leading config", path);
    char *text = cfg ? json_dumps(cfg, 0) : NULL;
    struct hsd_noise_schedule lead;
    int ok = text && hsd_noise_schedule_parse(&lead, text, strlen(text), "sd15_leading") == HSD_OK;
    static const int steps[] = {1, 2, 3, 7, 10, 25, 50, 100};
    for (size_t i = 0; ok && i < sizeof steps / sizeof steps[0]; i++) {
        struct hsd_torch_rng r1, r2;
        hsd_torch_rng_seed(&r1, 0);
        hsd_torch_rng_seed(&r2, 0);
        struct hsd_sampler a, b;
        CHECK_OK(hsd_sampler_init(&a, kind, sdxl, steps[i], 16, &r1));
        CHECK_OK(hsd_sampler_init(&b, kind, &lead, steps[i], 16, &r2));
        int same = a.n_timesteps == b.n_timesteps;
        for (int k = 0; same && k < a.n_timesteps; k++) same = a.timesteps[k] == b.timesteps[k];
        for (int k = 0; same && k <= a.n_timesteps; k++)
            same = !memcmp(&a.sigmas[k], &b.sigmas[k], sizeof a.sigmas[k]);  // bits
        CHECKF(same, "%s, N=%d: schedule differs from sd15_leading's", file, steps[i]);
        ok = same;
        hsd_sampler_free(&a);
        hsd_sampler_free(&b);
    }
    free(text);
    json_decref(doc);
    return ok;
}

// Every saved config loads; the mapped sampler's timesteps equal diffusers'.
static void test_saved_configs(void) {
    const char *dir = HSD_TEST_DATA "/sampling/saved_configs";
    char path[1024];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    json_error_t err;
    json_t *man = json_load_file(path, 0, &err);
    CHECKF(man && json_is_array(man), "%s: %s", path, err.text);
    if (!man) return;
    int files = 0, compared = 0, sdxl_same = 0;
    size_t i;
    json_t *e;
    json_array_foreach(man, i, e) {
        const char *file = json_string_value(json_object_get(e, "file"));
        const char *sampler = json_string_value(json_object_get(e, "sampler"));
        snprintf(path, sizeof path, "%s/%s", dir, file);
        struct hsd_noise_schedule sched;
        CHECK_OK(hsd_noise_schedule_load(&sched, path));
        files++;
        if (!sampler) continue;  // LCMScheduler: no hsd sampler yet; parsing is the check
        enum hsd_sampler_kind kind;
        CHECK_OK(hsd_sampler_parse(sampler, &kind));
        if (strstr(file, ".sdxl.")) sdxl_same += same_as_sd15_leading(&sched, kind, file);
        const char *n_str;
        json_t *ts;
        json_object_foreach(json_object_get(e, "timesteps"), n_str, ts) {
            struct hsd_torch_rng rng;
            hsd_torch_rng_seed(&rng, 0);
            struct hsd_sampler s;
            const int n = atoi(n_str);
            CHECK_OK(hsd_sampler_init(&s, kind, &sched, n, 16, &rng));
            int same = s.n_timesteps == (int)json_array_size(ts);
            for (int k = 0; same && k < s.n_timesteps; k++)
                same = s.timesteps[k] == (float)json_real_value(json_array_get(ts, (size_t)k));
            CHECKF(same, "%s (%s), N=%d: timesteps equal diffusers' (%d vs %zu)", file, sampler,
                   n, s.n_timesteps, json_array_size(ts));
            hsd_sampler_free(&s);
            compared++;
        }
    }
    printf("saved scheduler configs: %d files loaded, %d timestep tables compared; SDXL's "
           "schedules equal to sd15_leading's (sigmas included) for %d samplers\n",
           files, compared, sdxl_same);
    CHECK(files >= 18 && compared >= 30 && sdxl_same == 5);
    json_decref(man);
}

int main(void) {
    test_python_tokens();
    test_scheduler_non_finite();
    test_saved_configs();
    return hsd_test_finish();
}
