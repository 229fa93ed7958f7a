// scheduler/scheduler_config.json -> struct hsd_noise_schedule, and the
// training noise schedule (alphas_cumprod) exactly as diffusers builds it in
// every scheduler's __init__ (scheduling_ddim.py, scheduling_pndm.py,
// scheduling_euler_discrete.py, ..., identical code in each).
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sampling/sampler.h"
#include "io/config_json.h"
#include "io/file.h"

// No FMA contraction: diffusers' float32 ops round one by one (GCC: off in
// ISO C mode, which the build uses; clang contracts unless told).
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

void hsd_noise_schedule_sd15(struct hsd_noise_schedule *s) {
    // runwayml/stable-diffusion-v1-5 scheduler/scheduler_config.json
    // (PNDMScheduler): no timestep_spacing, no prediction_type.
    memset(s, 0, sizeof *s);
    s->num_train_timesteps = 1000;
    s->beta_start = 0.00085;
    s->beta_end = 0.012;
    s->beta_schedule = HSD_BETA_SCALED_LINEAR;
    s->steps_offset = 1;
    s->set_alpha_to_one = 0;
    s->clip_sample = 0;
    s->clip_sample_range = 1.0f;
    s->prediction_type = HSD_PRED_EPSILON;
    s->timestep_spacing = HSD_SPACING_DEFAULT;
    s->skip_prk_steps = 1;
    s->original_inference_steps = 50;
    s->timestep_scaling = 10.0f;
}

void hsd_noise_schedule_sdxl(struct hsd_noise_schedule *s) {
    // stabilityai/stable-diffusion-xl-base-1.0 scheduler/scheduler_config.json
    // (EulerDiscreteScheduler): SD 1.5's betas and offset, and an explicit
    // "leading" spacing that every sampler built from it inherits.
    hsd_noise_schedule_sd15(s);
    s->timestep_spacing = HSD_SPACING_LEADING;
}

// Defaults of a key that is absent: diffusers' __init__ defaults, which
// agree between the five schedulers except the tri-states.
static void schedule_defaults(struct hsd_noise_schedule *s) {
    memset(s, 0, sizeof *s);
    s->num_train_timesteps = 1000;
    s->beta_start = 0.0001;
    s->beta_end = 0.02;
    s->beta_schedule = HSD_BETA_LINEAR;
    s->steps_offset = 0;
    s->set_alpha_to_one = -1;
    s->clip_sample = -1;
    s->clip_sample_range = 1.0f;
    s->prediction_type = HSD_PRED_EPSILON;
    s->timestep_spacing = HSD_SPACING_DEFAULT;
    s->skip_prk_steps = -1;
    s->original_inference_steps = 50;  // LCMScheduler's defaults
    s->timestep_scaling = 10.0f;
}

static enum hsd_status bad(const char *label, const char *key, const char *why) {
    return hsd_fail(HSD_ERR_FORMAT, "%s: scheduler config key '%s': %s", label, key, why);
}

static enum hsd_status unsupported(const char *label, const char *key, const char *what) {
    return hsd_fail(HSD_ERR_UNSUPPORTED, "%s: scheduler config key '%s': %s is not supported",
                    label, key, what);
}

// Present and not null.
static json_t *get(json_t *root, const char *key) {
    json_t *v = json_object_get(root, key);
    return (v && !json_is_null(v)) ? v : NULL;
}

static enum hsd_status get_int(json_t *root, const char *label, const char *key, long long lo,
                               long long hi, int *out) {
    json_t *v = get(root, key);
    if (!v) return HSD_OK;
    if (!json_is_integer(v)) return bad(label, key, "expected an integer");
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi) {
        return hsd_fail(HSD_ERR_FORMAT, "%s: scheduler config key '%s': %lld is outside [%lld, %lld]",
                        label, key, (long long)x, lo, hi);
    }
    *out = (int)x;
    return HSD_OK;
}

static enum hsd_status get_real(json_t *root, const char *label, const char *key, double *out) {
    json_t *v = get(root, key);
    if (!v) return HSD_OK;
    double x;
    if (!hsd_cfg_number(v, &x)) return bad(label, key, "expected a number");
    if (!isfinite(x)) return bad(label, key, "not a finite number");
    *out = x;
    return HSD_OK;
}

static enum hsd_status get_bool(json_t *root, const char *label, const char *key, int *out) {
    json_t *v = get(root, key);
    if (!v) return HSD_OK;
    if (!json_is_boolean(v)) return bad(label, key, "expected true or false");
    *out = json_is_true(v) ? 1 : 0;
    return HSD_OK;
}

// Index of `name` in `names` (n entries), or -1; absent keys return -2.
static int get_choice(json_t *root, const char *key, const char *const *names, int n,
                      const char **value) {
    json_t *v = get(root, key);
    if (!v) return -2;
    if (!json_is_string(v)) {
        *value = NULL;
        return -1;
    }
    *value = json_string_value(v);
    for (int i = 0; i < n; i++) {
        if (strcmp(*value, names[i]) == 0) return i;
    }
    return -1;
}

// Keys whose non-default values change the schedule in ways not implemented
// here: accepting them silently would give other timesteps than diffusers.
static enum hsd_status reject_features(json_t *root, const char *label) {
    static const char *const flags[] = {
        "thresholding",   "rescale_betas_zero_snr", "use_karras_sigmas", "use_exponential_sigmas",
        "use_beta_sigmas", "use_lu_lambdas",        "use_flow_sigmas",   "use_dynamic_shifting",
    };
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        int on = 0;
        enum hsd_status st = get_bool(root, label, flags[i], &on);
        if (st != HSD_OK) return st;
        if (on) return unsupported(label, flags[i], "true");
    }
    static const struct {
        const char *key, *only;
    } strings[] = {
        {"timestep_type", "discrete"},
        {"interpolation_type", "linear"},
        {"final_sigmas_type", "zero"},
    };
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        json_t *v = get(root, strings[i].key);
        if (!v) continue;
        if (!json_is_string(v)) return bad(label, strings[i].key, "expected a string");
        if (strcmp(json_string_value(v), strings[i].only) != 0) {
            return hsd_fail(HSD_ERR_UNSUPPORTED,
                            "%s: scheduler config key '%s': \"%s\" is not supported (only \"%s\")",
                            label, strings[i].key, json_string_value(v), strings[i].only);
        }
    }
    if (get(root, "trained_betas")) return unsupported(label, "trained_betas", "a non-null value");
    return HSD_OK;
}

enum hsd_status hsd_noise_schedule_parse(struct hsd_noise_schedule *s, const char *json,
                                         size_t len, const char *label) {
    // Python's JSON dialect included (hsd_cfg_parse): diffusers saves
    // DPMSolverMultistepScheduler with "lambda_min_clipped": -Infinity.
    json_t *root;
    enum hsd_status st = hsd_cfg_parse(json, len, label, &root);
    if (st) return st;
    struct hsd_noise_schedule r;
    schedule_defaults(&r);
    const char *value = NULL;
    if ((st = reject_features(root, label)) != HSD_OK) goto out;
    if ((st = get_int(root, label, "num_train_timesteps", 2, HSD_NOISE_SCHEDULE_MAX_TRAIN,
                      &r.num_train_timesteps)) != HSD_OK)
        goto out;
    if ((st = get_real(root, label, "beta_start", &r.beta_start)) != HSD_OK) goto out;
    if ((st = get_real(root, label, "beta_end", &r.beta_end)) != HSD_OK) goto out;
    if ((st = get_int(root, label, "steps_offset", 0, HSD_NOISE_SCHEDULE_MAX_TRAIN,
                      &r.steps_offset)) != HSD_OK)
        goto out;
    if ((st = get_bool(root, label, "set_alpha_to_one", &r.set_alpha_to_one)) != HSD_OK) goto out;
    if ((st = get_bool(root, label, "clip_sample", &r.clip_sample)) != HSD_OK) goto out;
    if ((st = get_bool(root, label, "skip_prk_steps", &r.skip_prk_steps)) != HSD_OK) goto out;
    double range = r.clip_sample_range;
    if ((st = get_real(root, label, "clip_sample_range", &range)) != HSD_OK) goto out;
    r.clip_sample_range = (float)range;
    if ((st = get_int(root, label, "original_inference_steps", 1, HSD_NOISE_SCHEDULE_MAX_TRAIN,
                      &r.original_inference_steps)) != HSD_OK)
        goto out;
    double scaling = r.timestep_scaling;
    if ((st = get_real(root, label, "timestep_scaling", &scaling)) != HSD_OK) goto out;
    r.timestep_scaling = (float)scaling;

    static const char *const schedules[] = {"linear", "scaled_linear", "squaredcos_cap_v2"};
    int i = get_choice(root, "beta_schedule", schedules, 3, &value);
    if (i == -1) {
        st = value ? unsupported(label, "beta_schedule", value)
                   : bad(label, "beta_schedule", "expected a string");
        goto out;
    }
    if (i >= 0) r.beta_schedule = (enum hsd_beta_schedule)i;

    static const char *const preds[] = {"epsilon", "v_prediction"};
    i = get_choice(root, "prediction_type", preds, 2, &value);
    if (i == -1) {
        st = value ? unsupported(label, "prediction_type", value)
                   : bad(label, "prediction_type", "expected a string");
        goto out;
    }
    if (i >= 0) r.prediction_type = i == 0 ? HSD_PRED_EPSILON : HSD_PRED_V;

    static const char *const spacings[] = {"leading", "linspace", "trailing"};
    i = get_choice(root, "timestep_spacing", spacings, 3, &value);
    if (i == -1) {
        st = value ? unsupported(label, "timestep_spacing", value)
                   : bad(label, "timestep_spacing", "expected a string");
        goto out;
    }
    if (i == 0) r.timestep_spacing = HSD_SPACING_LEADING;
    if (i == 1) r.timestep_spacing = HSD_SPACING_LINSPACE;
    if (i == 2) r.timestep_spacing = HSD_SPACING_TRAILING;

    st = hsd_noise_schedule_validate(&r);
    if (st != HSD_OK) {
        st = hsd_fail_context(HSD_ERR_FORMAT, "%s", label);
        goto out;
    }
    *s = r;
out:
    json_decref(root);
    return st;
}

static enum hsd_status parse_text(void *s, const char *text, size_t len, const char *label) {
    return hsd_noise_schedule_parse(s, text, len, label);
}

enum hsd_status hsd_noise_schedule_load(struct hsd_noise_schedule *s, const char *path) {
    // A directory is a pipeline root (diffusers layout); anything else is
    // the json file itself.
    char file[4096];
    struct stat sb;
    int n;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        n = snprintf(file, sizeof file, "%s/scheduler/scheduler_config.json", path);
    } else {
        n = snprintf(file, sizeof file, "%s", path);
    }
    if (n < 0 || (size_t)n >= sizeof file) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: path too long", path);
    }
    // Real scheduler configs are < 1 KB.
    return hsd_parse_small_file(file, 1u << 20, "scheduler config", parse_text, s);
}

// Fills betas[n] as float32, the way diffusers + torch compute them.
static void make_betas(const struct hsd_noise_schedule *s, float *betas) {
    const int n = s->num_train_timesteps;
    if (s->beta_schedule == HSD_BETA_SQUAREDCOS) {
        // diffusers betas_for_alpha_bar (cosine), Python floats, then
        // torch.tensor(..., float32). x ** 2 in Python is pow(x, 2.0).
        for (int i = 0; i < n; i++) {
            double t1 = (double)i / n, t2 = (double)(i + 1) / n;
            double a1 = pow(cos((t1 + 0.008) / 1.008 * 3.141592653589793 / 2), 2.0);
            double a2 = pow(cos((t2 + 0.008) / 1.008 * 3.141592653589793 / 2), 2.0);
            double b = 1 - a2 / a1;
            betas[i] = (float)(b < 0.999 ? b : 0.999);
        }
        return;
    }
    // torch.linspace(start, end, n, dtype=float32), torch
    // aten/src/ATen/native/cpu/RangeFactoriesKernel.cpp linspace_kernel:
    // step = (end - start) / (n - 1) in float; the first half counts up
    // from start, the second half down from end. The wheel's build fuses
    // start + step * i into one FMA (checked against torch on random ranges).
    double a = s->beta_start, b = s->beta_end;
    if (s->beta_schedule == HSD_BETA_SCALED_LINEAR) {
        a = pow(a, 0.5);  // Python beta_start**0.5
        b = pow(b, 0.5);
    }
    const float start = (float)a, end = (float)b;
    const float step = (end - start) / (float)(n - 1);
    const int halfway = n / 2;
    for (int i = 0; i < n; i++) {
        float v = i < halfway ? fmaf(step, (float)i, start) : fmaf(-step, (float)(n - i - 1), end);
        betas[i] = s->beta_schedule == HSD_BETA_SCALED_LINEAR ? v * v : v;
    }
}

enum hsd_status hsd_noise_schedule_alphas_cumprod(const struct hsd_noise_schedule *s,
                                                  float *alphas_cumprod) {
    if (s->num_train_timesteps < 2 || s->num_train_timesteps > HSD_NOISE_SCHEDULE_MAX_TRAIN) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "num_train_timesteps %d outside [2, %d]",
                        s->num_train_timesteps, HSD_NOISE_SCHEDULE_MAX_TRAIN);
    }
    make_betas(s, alphas_cumprod);
    // torch.cumprod on CPU accumulates float in double (acc_type), rounding
    // each output (aten ReduceOpsKernel.cpp cumprod_cpu_kernel).
    double acc = 1.0;
    for (int i = 0; i < s->num_train_timesteps; i++) {
        acc *= (double)(1.0f - alphas_cumprod[i]);
        alphas_cumprod[i] = (float)acc;
    }
    return HSD_OK;
}

enum hsd_status hsd_noise_schedule_validate(const struct hsd_noise_schedule *s) {
    const int t = s->num_train_timesteps;
    if (t < 2 || t > HSD_NOISE_SCHEDULE_MAX_TRAIN) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "num_train_timesteps %d outside [2, %d]", t,
                        HSD_NOISE_SCHEDULE_MAX_TRAIN);
    }
    if ((unsigned)s->beta_schedule > HSD_BETA_SQUAREDCOS) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "beta_schedule %d unknown", (int)s->beta_schedule);
    }
    if (s->beta_schedule != HSD_BETA_SQUAREDCOS &&
        !(s->beta_start >= 0 && s->beta_start < 1 && s->beta_end >= 0 && s->beta_end < 1)) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "beta_start %g / beta_end %g outside [0, 1)",
                        s->beta_start, s->beta_end);
    }
    if (s->steps_offset < 0 || s->steps_offset >= t) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "steps_offset %d outside [0, %d)", s->steps_offset, t);
    }
    if (s->set_alpha_to_one < -1 || s->set_alpha_to_one > 1 || s->clip_sample < -1 ||
        s->clip_sample > 1 || s->skip_prk_steps < -1 || s->skip_prk_steps > 1) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "set_alpha_to_one/clip_sample/skip_prk_steps not -1/0/1");
    }
    if (!(s->clip_sample_range > 0) || !isfinite(s->clip_sample_range)) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "clip_sample_range %g is not a positive number",
                        (double)s->clip_sample_range);
    }
    if (s->original_inference_steps < 1 || s->original_inference_steps > t) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "original_inference_steps %d outside [1, %d]",
                        s->original_inference_steps, t);
    }
    if (!(s->timestep_scaling > 0) || !isfinite(s->timestep_scaling)) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "timestep_scaling %g is not a positive number",
                        (double)s->timestep_scaling);
    }
    if ((unsigned)s->prediction_type > HSD_PRED_V) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "prediction_type %d unknown", (int)s->prediction_type);
    }
    if ((unsigned)s->timestep_spacing > HSD_SPACING_TRAILING) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "timestep_spacing %d unknown",
                        (int)s->timestep_spacing);
    }
    float *ac = malloc((size_t)t * sizeof *ac);
    if (!ac) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    enum hsd_status st = hsd_noise_schedule_alphas_cumprod(s, ac);
    for (int i = 0; st == HSD_OK && i < t; i++) {
        // sigma = sqrt((1 - ac) / ac) must be finite and > 0 (Euler and
        // DPM-Solver take its log).
        if (!(ac[i] > 0 && ac[i] < 1)) {
            st = hsd_fail(HSD_ERR_INVALID_ARG,
                          "betas give alphas_cumprod[%d] = %g, outside (0, 1)", i, (double)ac[i]);
        }
    }
    free(ac);
    return st;
}
