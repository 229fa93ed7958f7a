// scheduler/scheduler_config.json parsing (host/sampling/noise_schedule.c):
// real configs load, unknown keys are ignored, and every bad or unsupported
// value is an error that names the key.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sampling/sampler.h"
#include "testutil.h"

static enum hsd_status parse(struct hsd_noise_schedule *s, const char *json) {
    return hsd_noise_schedule_parse(s, json, strlen(json), "test");
}

#define SD15_JSON                                                                            \
    "{\"_class_name\": \"PNDMScheduler\", \"_diffusers_version\": \"0.6.0\", "               \
    "\"beta_end\": 0.012, \"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, "  \
    "\"clip_sample\": false, \"num_train_timesteps\": 1000, \"set_alpha_to_one\": false, "   \
    "\"skip_prk_steps\": true, \"steps_offset\": 1, \"trained_betas\": null}"

static void expect(enum hsd_status want, const char *json, const char *needle) {
    struct hsd_noise_schedule s;
    enum hsd_status st = parse(&s, json);
    CHECKF(st == want, "%s -> %s (%s), want %s", json, hsd_status_str(st), hsd_last_error(),
           hsd_status_str(want));
    if (needle && st != HSD_OK) {
        CHECKF(strstr(hsd_last_error(), needle) != NULL, "message '%s' lacks '%s'",
               hsd_last_error(), needle);
    }
}

static void test_good(void) {
    struct hsd_noise_schedule s, ref;
    CHECK_OK(parse(&s, SD15_JSON));
    hsd_noise_schedule_sd15(&ref);
    CHECK(memcmp(&s, &ref, sizeof s) == 0);
    // Absent keys: diffusers defaults, tri-states left to the scheduler.
    CHECK_OK(parse(&s, "{}"));
    CHECK(s.num_train_timesteps == 1000 && s.beta_start == 0.0001 && s.beta_end == 0.02 &&
          s.beta_schedule == HSD_BETA_LINEAR && s.steps_offset == 0 && s.set_alpha_to_one == -1 &&
          s.clip_sample == -1 && s.skip_prk_steps == -1 && s.clip_sample_range == 1.0f &&
          s.prediction_type == HSD_PRED_EPSILON && s.timestep_spacing == HSD_SPACING_DEFAULT);
    // SD 2.1 (DDIMScheduler, v-prediction) and SDXL-style (Euler, leading),
    // with keys this reader ignores.
    CHECK_OK(parse(&s, "{\"_class_name\": \"DDIMScheduler\", \"beta_end\": 0.012, "
                       "\"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, "
                       "\"clip_sample\": false, \"prediction_type\": \"v_prediction\", "
                       "\"set_alpha_to_one\": false, \"steps_offset\": 1, \"trained_betas\": null, "
                       "\"dynamic_thresholding_ratio\": 0.995, \"thresholding\": false, "
                       "\"sample_max_value\": 1.0, \"rescale_betas_zero_snr\": false}"));
    CHECK(s.prediction_type == HSD_PRED_V && s.set_alpha_to_one == 0);
    CHECK_OK(parse(&s, "{\"_class_name\": \"EulerDiscreteScheduler\", \"interpolation_type\": "
                       "\"linear\", \"timestep_spacing\": \"leading\", \"use_karras_sigmas\": "
                       "false, \"timestep_type\": \"discrete\", \"final_sigmas_type\": \"zero\", "
                       "\"sigma_min\": null, \"algorithm_type\": \"dpmsolver++\", "
                       "\"solver_order\": 2, \"some_future_key\": [1, {\"x\": 2}]}"));
    CHECK(s.timestep_spacing == HSD_SPACING_LEADING);
    CHECK_OK(parse(&s, "{\"beta_schedule\": \"squaredcos_cap_v2\", \"timestep_spacing\": "
                       "\"trailing\", \"clip_sample_range\": 2}"));
    CHECK(s.beta_schedule == HSD_BETA_SQUAREDCOS && s.timestep_spacing == HSD_SPACING_TRAILING &&
          s.clip_sample_range == 2.0f);
}

static void test_bad(void) {
    // Not JSON / not an object.
    expect(HSD_ERR_FORMAT, "", "invalid JSON");
    expect(HSD_ERR_FORMAT, "{\"beta_start\": 0.1", "invalid JSON");
    expect(HSD_ERR_FORMAT, "[1, 2]", "not a JSON object");
    expect(HSD_ERR_FORMAT, "{\"steps_offset\": 1, \"steps_offset\": 2}", "invalid JSON");
    // Wrong types.
    expect(HSD_ERR_FORMAT, "{\"num_train_timesteps\": 1000.5}", "num_train_timesteps");
    expect(HSD_ERR_FORMAT, "{\"num_train_timesteps\": \"1000\"}", "num_train_timesteps");
    expect(HSD_ERR_FORMAT, "{\"beta_start\": \"0.1\"}", "beta_start");
    expect(HSD_ERR_FORMAT, "{\"clip_sample\": 0}", "clip_sample");
    expect(HSD_ERR_FORMAT, "{\"beta_schedule\": 3}", "beta_schedule");
    expect(HSD_ERR_FORMAT, "{\"timestep_spacing\": true}", "timestep_spacing");
    // Out of range.
    expect(HSD_ERR_FORMAT, "{\"num_train_timesteps\": 1}", "num_train_timesteps");
    expect(HSD_ERR_FORMAT, "{\"num_train_timesteps\": 100001}", "num_train_timesteps");
    expect(HSD_ERR_FORMAT, "{\"num_train_timesteps\": -5}", "num_train_timesteps");
    expect(HSD_ERR_FORMAT, "{\"steps_offset\": -1}", "steps_offset");
    expect(HSD_ERR_FORMAT, "{\"steps_offset\": 1000}", "steps_offset");
    expect(HSD_ERR_FORMAT, "{\"beta_start\": -0.1}", "beta_start");
    expect(HSD_ERR_FORMAT, "{\"beta_end\": 1.5}", "beta_end");
    expect(HSD_ERR_FORMAT, "{\"beta_end\": 1e400}", NULL);
    expect(HSD_ERR_FORMAT, "{\"clip_sample_range\": 0}", "clip_sample_range");
    // betas of 0 everywhere: alphas_cumprod = 1, sigma = 0.
    expect(HSD_ERR_FORMAT, "{\"beta_start\": 0, \"beta_end\": 0}", "alphas_cumprod");
    // Unsupported values and features.
    expect(HSD_ERR_UNSUPPORTED, "{\"beta_schedule\": \"sigmoid\"}", "beta_schedule");
    expect(HSD_ERR_UNSUPPORTED, "{\"prediction_type\": \"sample\"}", "prediction_type");
    expect(HSD_ERR_UNSUPPORTED, "{\"timestep_spacing\": \"karras\"}", "timestep_spacing");
    expect(HSD_ERR_UNSUPPORTED, "{\"trained_betas\": [0.1, 0.2]}", "trained_betas");
    expect(HSD_ERR_UNSUPPORTED, "{\"use_karras_sigmas\": true}", "use_karras_sigmas");
    expect(HSD_ERR_UNSUPPORTED, "{\"thresholding\": true}", "thresholding");
    expect(HSD_ERR_UNSUPPORTED, "{\"rescale_betas_zero_snr\": true}", "rescale_betas_zero_snr");
    expect(HSD_ERR_UNSUPPORTED, "{\"final_sigmas_type\": \"sigma_min\"}", "final_sigmas_type");
    expect(HSD_ERR_UNSUPPORTED, "{\"timestep_type\": \"continuous\"}", "timestep_type");
    expect(HSD_ERR_UNSUPPORTED, "{\"interpolation_type\": \"log_linear\"}", "interpolation_type");
    expect(HSD_ERR_FORMAT, "{\"use_karras_sigmas\": 1}", "use_karras_sigmas");
    // A failed parse leaves the output untouched.
    struct hsd_noise_schedule s;
    memset(&s, 0x5a, sizeof s);
    struct hsd_noise_schedule before = s;
    CHECK(parse(&s, "{\"steps_offset\": -1}") != HSD_OK);
    CHECK(memcmp(&s, &before, sizeof s) == 0);
}

static void test_load(void) {
    // A pipeline root and the file itself.
    char dir[512], sub[600], file[700];
    snprintf(dir, sizeof dir, "%s/test_noise_schedule_root", HSD_BINARY_DIR);
    snprintf(sub, sizeof sub, "%s/scheduler", dir);
    snprintf(file, sizeof file, "%s/scheduler_config.json", sub);
    mkdir(dir, 0755);
    mkdir(sub, 0755);
    FILE *f = fopen(file, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(SD15_JSON, f);
    fclose(f);
    struct hsd_noise_schedule s, ref;
    hsd_noise_schedule_sd15(&ref);
    CHECK_OK(hsd_noise_schedule_load(&s, dir));
    CHECK(memcmp(&s, &ref, sizeof s) == 0);
    CHECK_OK(hsd_noise_schedule_load(&s, file));
    CHECK(memcmp(&s, &ref, sizeof s) == 0);
    enum hsd_status st = hsd_noise_schedule_load(&s, HSD_BINARY_DIR "/no/such/dir");
    CHECK(st == HSD_ERR_IO);
    CHECKF(strstr(hsd_last_error(), "no/such/dir") != NULL, "message: %s", hsd_last_error());
    // A bad file names the file.
    f = fopen(file, "w");
    fputs("{\"beta_schedule\": \"cubic\"}", f);
    fclose(f);
    CHECK(hsd_noise_schedule_load(&s, dir) == HSD_ERR_UNSUPPORTED);
    CHECKF(strstr(hsd_last_error(), "scheduler_config.json") != NULL, "message: %s",
           hsd_last_error());
}

static void test_validate(void) {
    struct hsd_noise_schedule s;
    hsd_noise_schedule_sd15(&s);
    CHECK_OK(hsd_noise_schedule_validate(&s));
    s.beta_schedule = (enum hsd_beta_schedule)7;
    CHECK(hsd_noise_schedule_validate(&s) == HSD_ERR_INVALID_ARG);
    hsd_noise_schedule_sd15(&s);
    s.timestep_spacing = (enum hsd_timestep_spacing)9;
    CHECK(hsd_noise_schedule_validate(&s) == HSD_ERR_INVALID_ARG);
    hsd_noise_schedule_sd15(&s);
    s.num_train_timesteps = 0;
    CHECK(hsd_noise_schedule_validate(&s) == HSD_ERR_INVALID_ARG);
}

int main(void) {
    test_good();
    test_bad();
    test_load();
    test_validate();
    return hsd_test_finish();
}
