// A1111 request bodies -> edge requests and settings (a1111_request.h).
#include "edge/a1111_request.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/wire.h"

// A1111's names (modules/sd_samplers_kdiffusion.py, sd_samplers_timesteps.py)
// for the samplers hsd has; our own names are accepted as aliases too.
// A1111's PLMS is diffusers' PNDM with skip_prk_steps (SD's config).
static const struct {
    const char *name;
    const char *aliases[4];
    enum hsd_sampler_kind kind;
} k_samplers[] = {
    {"DPM++ 2M", {"k_dpmpp_2m", "dpmpp-2m"}, HSD_SAMPLER_DPMPP_2M},
    {"Euler a", {"k_euler_a", "k_euler_ancestral", "euler-a"}, HSD_SAMPLER_EULER_A},
    {"Euler", {"k_euler", "euler"}, HSD_SAMPLER_EULER},
    {"DDIM", {"ddim"}, HSD_SAMPLER_DDIM},
    {"PLMS", {"plms", "pndm"}, HSD_SAMPLER_PNDM},
    // A1111 1.8's LCM sampler (sd_samplers_lcm.py, diffusers' LCMScheduler
    // step); hsd's is diffusers' LCMScheduler (docs/lcm.md).
    {"LCM", {"lcm", "k_lcm"}, HSD_SAMPLER_LCM},
};
#define N_SAMPLERS (sizeof k_samplers / sizeof k_samplers[0])

__attribute__((format(printf, 3, 4))) static int fail(char *msg, size_t cap, const char *fmt,
                                                      ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    return 422;  // FastAPI's status for a body that fails validation
}

json_t *hsd_a1111_samplers_json(void) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < N_SAMPLERS; i++) {
        json_t *al = json_array();
        for (int j = 0; j < 4 && k_samplers[i].aliases[j]; j++)
            json_array_append_new(al, json_string(k_samplers[i].aliases[j]));
        json_array_append_new(a, json_pack("{s:s, s:o, s:{}}", "name", k_samplers[i].name,
                                           "aliases", al, "options"));
    }
    return a;
}

static int find_sampler(const char *name, size_t *idx) {
    for (size_t i = 0; i < N_SAMPLERS; i++) {
        if (!strcmp(name, k_samplers[i].name)) return *idx = i, 1;
        for (int j = 0; j < 4 && k_samplers[i].aliases[j]; j++)
            if (!strcmp(name, k_samplers[i].aliases[j])) return *idx = i, 1;
    }
    return 0;
}

// An integer field (JSON integer, or a real with an integral value, as
// pydantic accepts), absent or null = keep *out. [lo, hi] inclusive.
static int get_int(json_t *o, const char *key, long long lo, long long hi, long long *out,
                   char *msg, size_t cap) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    double d = json_is_integer(v) ? (double)json_integer_value(v)
               : json_is_real(v)  ? json_real_value(v)
                                  : NAN;
    if (!(d == floor(d) && fabs(d) < 9e15)) return fail(msg, cap, "%s must be an integer", key);
    if (d < (double)lo || d > (double)hi)
        return fail(msg, cap, "%s must be in [%lld, %lld], got %.0f", key, lo, hi, d);
    *out = json_is_integer(v) ? json_integer_value(v) : (long long)d;
    return 0;
}

static int get_str(json_t *o, const char *key, const char **out, char *msg, size_t cap) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) return fail(msg, cap, "%s must be a string", key);
    *out = json_string_value(v);
    return 0;
}

static int get_bool(json_t *o, const char *key, int *out, char *msg, size_t cap) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return fail(msg, cap, "%s must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

// "K" or "KMIN:KMAX" (or an integer) -> the cloud's U-Net calls.
static int parse_split(json_t *v, int *lo, int *hi, char *msg, size_t cap) {
    long long a, b;
    if (json_is_integer(v)) {
        a = b = json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *t = json_string_value(v);
        char *end;
        a = strtoll(t, &end, 10);
        if (end == t) goto bad;
        b = a;
        if (*end == ':') {
            const char *t2 = end + 1;
            b = strtoll(t2, &end, 10);
            if (end == t2) goto bad;
        }
        if (*end) goto bad;
    } else {
        goto bad;
    }
    if (a < 0 || b < a || b > (long long)HSD_WIRE_MAX_STEPS) goto bad;
    *lo = (int)a;
    *hi = (int)b;
    return 0;
bad:
    return fail(msg, cap, "hsd_split must be K or \"KMIN:KMAX\" with 0 <= KMIN <= KMAX <= %u",
                HSD_WIRE_MAX_STEPS);
}

// sd_vae: "Automatic"/"None" (the VAE hsd started with) or a listed name.
static int apply_vae(struct hsd_a1111_settings *s, const char *t, int per_request, char *msg,
                     size_t cap) {
    const char *want = NULL;
    if (!strcasecmp(t, "Automatic") || !strcasecmp(t, "None")) want = s->vaes[0];
    for (int i = 0; i < s->n_vaes && !want; i++)
        if (!strcmp(t, s->vaes[i])) want = s->vaes[i];
    if (!want) {
        char list[3 * HSD_A1111_TITLE_MAX] = "";
        for (int i = 0; i < s->n_vaes; i++) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%s'%s'", i ? ", " : "", s->vaes[i]);
        }
        return fail(msg, cap, "VAE '%s' not found (this edge has %s)", t, list);
    }
    // Changing the decoder reloads the edge model: a setting of its own
    // (POST /sdapi/v1/options), not something to flip per request.
    if (per_request && strcmp(want, s->vae))
        return fail(msg, cap, "sd_vae '%s' differs from the current '%s': set it with POST "
                              "/sdapi/v1/options first", t, s->vae);
    memmove(s->vae, want, strlen(want) + 1);
    return 0;
}

// One A1111 option hsd gives a meaning to; others are ignored (return 0).
static int apply_setting(struct hsd_a1111_settings *s, const char *key, json_t *v,
                         int per_request, char *msg, size_t cap) {
    if (!strcmp(key, "sd_model_checkpoint")) {
        if (!json_is_string(v)) return fail(msg, cap, "sd_model_checkpoint must be a string");
        // A1111 titles may carry " [hash]" or ".safetensors"; the edge has
        // one model, so only its title (or a prefix of it so decorated) fits.
        const char *t = json_string_value(v);
        size_t n = strlen(s->model_title);
        if (strncmp(t, s->model_title, n) || (t[n] && t[n] != ' ' && t[n] != '.'))
            return fail(msg, cap, "Model not found: '%s' (this edge serves '%s')", t,
                        s->model_title);
        return 0;
    }
    if (!strcmp(key, "sd_vae")) {
        if (!json_is_string(v)) return fail(msg, cap, "sd_vae must be a string");
        return apply_vae(s, json_string_value(v), per_request, msg, cap);
    }
    if (!strcmp(key, "CLIP_stop_at_last_layers")) {
        json_t *o = json_pack("{s:O}", key, v);
        long long c = 1;
        int st = get_int(o, key, 1, (long long)HSD_WIRE_MAX_CLIP_SKIP + 1, &c, msg, cap);
        json_decref(o);
        if (!st) s->clip_skip = (int)c - 1;
        return st;
    }
    if (!strcmp(key, "hsd_split")) return parse_split(v, &s->k_min, &s->k_max, msg, cap);
    return 0;
}

static int apply_settings(struct hsd_a1111_settings *s, json_t *o, const char *what,
                          int per_request, char *msg, size_t cap) {
    if (!o || json_is_null(o)) return 0;
    if (!json_is_object(o)) return fail(msg, cap, "%s must be a JSON object", what);
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        int st = apply_setting(s, k, v, per_request, msg, cap);
        if (st) return st;
    }
    return 0;
}

static json_t *load_object(const char *body, size_t len, char *msg, size_t cap, int *st) {
    json_error_t e;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
    *st = 0;
    if (!o) {
        *st = fail(msg, cap, "malformed JSON at line %d column %d: %s", e.line, e.column, e.text);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        *st = fail(msg, cap, "the body must be a JSON object");
        return NULL;
    }
    return o;
}

int hsd_a1111_parse_options(struct hsd_a1111_settings *s, const char *body, size_t len, char *msg,
                            size_t cap) {
    int st;
    json_t *o = load_object(body, len, msg, cap, &st);
    if (!o) return st;
    struct hsd_a1111_settings copy = *s;
    st = apply_settings(&copy, o, "the options", 0, msg, cap);
    if (!st) *s = copy;
    json_decref(o);
    return st;
}

void hsd_a1111_txt2img_free(struct hsd_a1111_txt2img *t) {
    free((char *)t->r.gen.prompt);
    free((char *)t->r.gen.negative_prompt);
    free(t->prompt_written);
    json_decref(t->parameters);
    memset(t, 0, sizeof *t);
}

static char *dup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

// Fields that would change the image in ways hsd cannot: refused rather
// than silently ignored. Defaults (false, 0, empty) pass.
static int refuse_unsupported(json_t *o, char *msg, size_t cap) {
    static const char *flags[] = {"enable_hr", "restore_faces", "tiling"};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
        int on = 0, st = get_bool(o, flags[i], &on, msg, cap);
        if (st) return st;
        if (on) return fail(msg, cap, "%s is not supported by hsd edge", flags[i]);
    }
    json_t *v = json_object_get(o, "subseed_strength");
    if (v && !json_is_null(v)) {
        if (!json_is_number(v)) return fail(msg, cap, "subseed_strength must be a number");
        if (json_number_value(v) != 0.0)
            return fail(msg, cap, "subseed_strength (variation seeds) is not supported by hsd edge");
    }
    const char *script = NULL;
    int st = get_str(o, "script_name", &script, msg, cap);
    if (st) return st;
    if (script && *script) return fail(msg, cap, "Script '%s' not found", script);
    v = json_object_get(o, "alwayson_scripts");
    if (v && !json_is_null(v) && (!json_is_object(v) || json_object_size(v)))
        return fail(msg, cap, "alwayson_scripts are not supported by hsd edge");
    v = json_object_get(o, "styles");
    if (v && !json_is_null(v) && (!json_is_array(v) || json_array_size(v)))
        return fail(msg, cap, "prompt styles are not supported by hsd edge");
    return 0;
}

int hsd_a1111_parse_txt2img(struct hsd_a1111_txt2img *out, const char *body, size_t len,
                            const struct hsd_a1111_settings *s, char *msg, size_t cap) {
    memset(out, 0, sizeof *out);
    int st;
    json_t *o = load_object(body, len, msg, cap, &st);
    if (!o) return st;
    struct hsd_a1111_settings eff = *s;
    const char *prompt = "", *neg = "", *sampler = NULL, *sched = NULL;
    // A1111's defaults: steps 50, cfg 7, 512x512 (SDXL: 1024x1024, as
    // diffusers' StableDiffusionXLPipeline defaults to its sample_size),
    // seed -1, batch 1x1; sampler "Euler a" as webuiapi's default. An SDXL
    // request's original size is its target size (no micro-conditioning
    // fields in the API), as A1111 sends it.
    const long long side = s->sdxl ? 1024 : 512;
    long long steps = 50, width = side, height = side, seed = -1, batch = 1, iters = 1;
    size_t si = 1;
    if ((st = refuse_unsupported(o, msg, cap)) ||
        (st = apply_settings(&eff, json_object_get(o, "override_settings"), "override_settings",
                             1, msg, cap)) ||
        (st = get_str(o, "prompt", &prompt, msg, cap)) ||
        (st = get_str(o, "negative_prompt", &neg, msg, cap)) ||
        (st = get_int(o, "steps", 1, HSD_WIRE_MAX_STEPS, &steps, msg, cap)) ||
        (st = get_int(o, "width", HSD_WIRE_MIN_SIDE, HSD_WIRE_MAX_SIDE, &width, msg, cap)) ||
        (st = get_int(o, "height", HSD_WIRE_MIN_SIDE, HSD_WIRE_MAX_SIDE, &height, msg, cap)) ||
        // Seeds up to 2^53 (exact in a JSON number everywhere); -1 = random.
        (st = get_int(o, "seed", -1, 9007199254740992LL, &seed, msg, cap)) ||
        (st = get_int(o, "batch_size", 1, HSD_A1111_MAX_IMAGES, &batch, msg, cap)) ||
        (st = get_int(o, "n_iter", 1, HSD_A1111_MAX_IMAGES, &iters, msg, cap)) ||
        (st = get_str(o, "sampler_index", &sampler, msg, cap)) ||
        (st = get_str(o, "sampler_name", &sampler, msg, cap)) ||
        (st = get_str(o, "scheduler", &sched, msg, cap)))
        goto done;
    if (batch * iters > HSD_A1111_MAX_IMAGES) {
        st = fail(msg, cap, "batch_size * n_iter must be at most %d, got %lld",
                  HSD_A1111_MAX_IMAGES, batch * iters);
        goto done;
    }
    if (sampler && *sampler && !find_sampler(sampler, &si)) {
        st = fail(msg, cap, "Sampler not found: '%s' (hsd edge has DPM++ 2M, Euler a, Euler, "
                            "DDIM, PLMS, LCM)", sampler);
        goto done;
    }
    // hsd's timesteps are the model's scheduler config, as diffusers
    // spaces them: A1111's "Automatic"; Karras and other sigma schedules
    // would give other images, so they are refused.
    if (sched && *sched && strcasecmp(sched, "automatic")) {
        st = fail(msg, cap, "scheduler '%s' is not supported: hsd edge uses the model's own "
                            "schedule (\"automatic\")", sched);
        goto done;
    }
    json_t *cfg = json_object_get(o, "cfg_scale");
    double g = 7.0;
    if (cfg && !json_is_null(cfg)) {
        if (!json_is_number(cfg)) {
            st = fail(msg, cap, "cfg_scale must be a number");
            goto done;
        }
        g = json_number_value(cfg);
        if (!(g >= 0 && g <= HSD_WIRE_MAX_CFG)) {
            st = fail(msg, cap, "cfg_scale must be in [0, %g], got %g", (double)HSD_WIRE_MAX_CFG,
                      g);
            goto done;
        }
    }
    if (eff.k_max > steps) {
        st = fail(msg, cap, "hsd_split %d:%d asks the cloud for more U-Net calls than steps (%lld)",
                  eff.k_min, eff.k_max, steps);
        goto done;
    }
    char *p = dup(prompt), *n = dup(neg);
    out->prompt_written = dup(prompt);
    // <lora:NAME:SCALE> tags leave the prompt and choose the LoRA (A1111's
    // extra networks), before the prompt is encoded or sent to the cloud.
    if (p && (st = hsd_a1111_extra_networks(p, &eff, out->lora_scales, msg, cap))) {
        free(p);
        free(n);
        free(out->prompt_written);
        out->prompt_written = NULL;
        goto done;
    }
    int any_lora = 0;
    for (int i = 0; i < eff.n_loras; i++) any_lora |= out->lora_scales[i] != 0.0f;
    out->r.gen = (struct hsd_gen_request){
        .prompt = p, .negative_prompt = n, .guidance_scale = (float)g, .steps = (int)steps,
        .split = -1, .sampler = k_samplers[si].kind, .width = (int)width, .height = (int)height,
        .seed = seed < 0 ? 0 : (uint64_t)seed, .batch_count = 1, .clip_skip = eff.clip_skip,
        .prompt_style = (enum hsd_prompt_style)eff.prompt_style};
    out->r.gen.lora_scales = any_lora ? out->lora_scales : NULL;
    out->r.k_min = eff.k_min;
    out->r.k_max = eff.k_max;
    out->seed_random = seed < 0;
    out->batch_size = (int)batch;
    out->n_iter = (int)iters;
    out->sampler_name = k_samplers[si].name;
    out->parameters = json_incref(o);
    if (!p || !n || !out->prompt_written) {
        hsd_a1111_txt2img_free(out);
        snprintf(msg, cap, "out of memory");
        st = 500;
    }
done:
    json_decref(o);
    return st;
}
