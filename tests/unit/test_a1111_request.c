// The A1111 request parser of `hsd edge --http` (edge/a1111_request.h):
// A1111's field names, defaults (modules/api/models.py,
// StableDiffusionProcessingTxt2Img: steps 50, cfg 7, 512x512, seed -1),
// sampler names (modules/sd_samplers_kdiffusion.py) mapped to ours, the
// settings hsd honours, and refusals with a message. The end-to-end images
// are tests/cli/edge_http.sh's job.
#include <stdio.h>
#include <string.h>

#include "edge/a1111_request.h"
#include "testutil.h"

static const struct hsd_a1111_settings k_base = {
    .model_title = "edge", .vae = "full", .vaes = {"full", "tiny"}, .n_vaes = 2, .clip_skip = 0,
    .k_min = 2, .k_max = 2};

static int parse(struct hsd_a1111_txt2img *t, const char *body, char *msg, size_t cap) {
    return hsd_a1111_parse_txt2img(t, body, strlen(body), &k_base, msg, cap);
}

// Expects a refusal with `status` whose message contains `want`.
static void refused(const char *body, int status, const char *want) {
    char msg[512] = "";
    struct hsd_a1111_txt2img t;
    int st = parse(&t, body, msg, sizeof msg);
    CHECKF(st == status && strstr(msg, want), "%s: got %d '%s', want %d '...%s...'", body, st,
           msg, status, want);
    if (!st) hsd_a1111_txt2img_free(&t);
}

static void defaults(void) {
    char msg[512];
    struct hsd_a1111_txt2img t;
    CHECK(parse(&t, "{}", msg, sizeof msg) == 0);
    const struct hsd_gen_request *g = &t.r.gen;
    CHECKF(g->steps == 50 && g->width == 512 && g->height == 512 &&
               g->guidance_scale == 7.0f && t.seed_random && t.batch_size == 1 &&
               t.n_iter == 1 && !strcmp(g->prompt, "") && !strcmp(g->negative_prompt, "") &&
               g->sampler == HSD_SAMPLER_EULER_A && !strcmp(t.sampler_name, "Euler a") &&
               t.r.k_min == 2 && t.r.k_max == 2 && g->batch_count == 1,
           "A1111's defaults: steps %d, %dx%d, cfg %g, sampler %s", g->steps, g->width,
           g->height, (double)g->guidance_scale, t.sampler_name);
    hsd_a1111_txt2img_free(&t);
    // An SDXL daemon: 1024x1024 unless the request says otherwise.
    struct hsd_a1111_settings xl = k_base;
    xl.sdxl = 1;
    CHECK(hsd_a1111_parse_txt2img(&t, "{}", 2, &xl, msg, sizeof msg) == 0);
    CHECKF(t.r.gen.width == 1024 && t.r.gen.height == 1024 && !t.r.gen.original_width &&
               !t.r.gen.original_height,
           "SDXL default size %dx%d, original %dx%d", t.r.gen.width, t.r.gen.height,
           t.r.gen.original_width, t.r.gen.original_height);
    hsd_a1111_txt2img_free(&t);
    static const char body[] = "{\"width\": 64, \"height\": 128}";
    CHECK(hsd_a1111_parse_txt2img(&t, body, strlen(body), &xl, msg, sizeof msg) == 0);
    CHECKF(t.r.gen.width == 64 && t.r.gen.height == 128, "SDXL given size %dx%d", t.r.gen.width,
           t.r.gen.height);
    hsd_a1111_txt2img_free(&t);
}

static void samplers(void) {
    // A1111 name or alias -> ours (docs/edge-http.md's table).
    static const struct {
        const char *a1111;
        const char *ours;
    } map[] = {{"DPM++ 2M", "dpmpp-2m"}, {"k_dpmpp_2m", "dpmpp-2m"}, {"Euler a", "euler-a"},
               {"k_euler_a", "euler-a"},  {"Euler", "euler"},        {"k_euler", "euler"},
               {"DDIM", "ddim"},          {"PLMS", "pndm"},          {"euler-a", "euler-a"},
               {"LCM", "lcm"},            {"lcm", "lcm"}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        char body[128], msg[512];
        snprintf(body, sizeof body, "{\"sampler_index\": \"%s\"}", map[i].a1111);
        struct hsd_a1111_txt2img t;
        int st = parse(&t, body, msg, sizeof msg);
        CHECKF(st == 0 && !strcmp(hsd_sampler_name(t.r.gen.sampler), map[i].ours),
               "%s -> %s (got %d, %s)", map[i].a1111, map[i].ours, st,
               st ? msg : hsd_sampler_name(t.r.gen.sampler));
        if (!st) hsd_a1111_txt2img_free(&t);
    }
    json_t *list = hsd_a1111_samplers_json();
    CHECKF(json_array_size(list) == 6, "6 samplers listed");
    json_decref(list);
    refused("{\"sampler_name\": \"LMS\"}", 422, "Sampler not found");
    refused("{\"sampler_name\": \"DPM++ 2M Karras\"}", 422, "Sampler not found");
    refused("{\"sampler_name\": \"Euler\", \"scheduler\": \"Karras\"}", 422, "scheduler");
    // sampler_name wins over the deprecated sampler_index (A1111 api.py).
    char msg[512];
    struct hsd_a1111_txt2img t;
    CHECK(parse(&t, "{\"sampler_index\": \"DDIM\", \"sampler_name\": \"Euler\", \"scheduler\": "
                    "\"Automatic\"}", msg, sizeof msg) == 0 &&
          t.r.gen.sampler == HSD_SAMPLER_EULER);
    hsd_a1111_txt2img_free(&t);
}

static void fields(void) {
    char msg[512];
    struct hsd_a1111_txt2img t;
    const char *body =
        "{\"prompt\": \"a cat\", \"negative_prompt\": null, \"steps\": 8.0, \"cfg_scale\": 4,"
        " \"width\": 64, \"height\": 128, \"seed\": 42, \"batch_size\": 2, \"n_iter\": 3,"
        " \"override_settings\": {\"CLIP_stop_at_last_layers\": 2, \"hsd_split\": \"1:4\","
        " \"sd_model_checkpoint\": \"edge [0123abcd]\", \"sd_vae\": \"Automatic\","
        " \"eta_noise_seed_delta\": 0}, \"eta\": 1.0, \"styles\": []}";
    CHECKF(parse(&t, body, msg, sizeof msg) == 0, "%s", msg);
    const struct hsd_gen_request *g = &t.r.gen;
    CHECKF(!strcmp(g->prompt, "a cat") && g->steps == 8 && g->guidance_scale == 4.0f &&
               g->width == 64 && g->height == 128 && g->seed == 42 && !t.seed_random &&
               t.batch_size == 2 && t.n_iter == 3 && g->clip_skip == 1 && t.r.k_min == 1 &&
               t.r.k_max == 4,
           "fields: steps %d seed %llu clip skip %d split %d:%d", g->steps,
           (unsigned long long)g->seed, g->clip_skip, t.r.k_min, t.r.k_max);
    CHECK(json_is_object(t.parameters) &&
          json_integer_value(json_object_get(t.parameters, "n_iter")) == 3);
    hsd_a1111_txt2img_free(&t);
}

static void refusals(void) {
    refused("{\"prompt\": \"x\",", 422, "malformed JSON");
    refused("[1]", 422, "JSON object");
    refused("{\"steps\": 0}", 422, "steps must be in [1, 1000]");
    refused("{\"steps\": \"many\"}", 422, "steps must be an integer");
    refused("{\"steps\": 2.5}", 422, "steps must be an integer");
    refused("{\"seed\": -2}", 422, "seed");
    refused("{\"cfg_scale\": -1}", 422, "cfg_scale");
    refused("{\"batch_size\": 8, \"n_iter\": 9}", 422, "at most 64");
    refused("{\"enable_hr\": true}", 422, "enable_hr");
    refused("{\"restore_faces\": true}", 422, "restore_faces");
    refused("{\"subseed_strength\": 0.5}", 422, "subseed_strength");
    refused("{\"script_name\": \"x/y/z plot\"}", 422, "not found");
    refused("{\"alwayson_scripts\": {\"ADetailer\": {\"args\": [true]}}}", 422, "alwayson");
    refused("{\"styles\": [\"cinematic\"]}", 422, "styles");
    refused("{\"override_settings\": {\"sd_model_checkpoint\": \"sdxl\"}}", 422,
            "Model not found");
    refused("{\"override_settings\": {\"sd_vae\": \"kl-f8.safetensors\"}}", 422, "not found");
    // Switching the decoder reloads the model: an option, not per request.
    refused("{\"override_settings\": {\"sd_vae\": \"tiny\"}}", 422, "POST /sdapi/v1/options");
    refused("{\"override_settings\": {\"hsd_split\": \"4:1\"}}", 422, "hsd_split");
    refused("{\"steps\": 3, \"override_settings\": {\"hsd_split\": 5}}", 422, "more U-Net calls");
    refused("{\"prompt\": \"x\", \"prompt\": \"y\"}", 422, "malformed JSON");  // duplicate key
}

static void options(void) {
    struct hsd_a1111_settings s = k_base;
    char msg[512];
    const char *ok = "{\"CLIP_stop_at_last_layers\": 3, \"hsd_split\": \"0:5\", \"show_progressbar\": true}";
    CHECK(hsd_a1111_parse_options(&s, ok, strlen(ok), msg, sizeof msg) == 0 && s.clip_skip == 2 &&
          s.k_min == 0 && s.k_max == 5);
    // One bad key: nothing of the body applies.
    const char *bad = "{\"hsd_split\": 7, \"sd_model_checkpoint\": \"other\"}";
    CHECK(hsd_a1111_parse_options(&s, bad, strlen(bad), msg, sizeof msg) == 422 &&
          s.k_max == 5 && strstr(msg, "Model not found"));
    // sd_vae: a listed VAE, or "Automatic" = the one hsd started with.
    const char *tiny = "{\"sd_vae\": \"tiny\"}", *automatic = "{\"sd_vae\": \"Automatic\"}";
    CHECK(hsd_a1111_parse_options(&s, tiny, strlen(tiny), msg, sizeof msg) == 0 &&
          !strcmp(s.vae, "tiny"));
    CHECK(hsd_a1111_parse_options(&s, automatic, strlen(automatic), msg, sizeof msg) == 0 &&
          !strcmp(s.vae, "full"));
}

// The daemon's --prompt-style reaches every request (A1111 clients write
// A1111 emphasis); the default stays diffusers'.
static void prompt_style(void) {
    char msg[512];
    struct hsd_a1111_txt2img t;
    CHECK(parse(&t, "{\"prompt\": \"(a:1.2)\"}", msg, sizeof msg) == 0);
    CHECK(t.r.gen.prompt_style == HSD_PROMPT_DIFFUSERS);
    hsd_a1111_txt2img_free(&t);
    struct hsd_a1111_settings s = k_base;
    s.prompt_style = HSD_PROMPT_A1111;
    const char *body = "{\"prompt\": \"(a:1.2)\"}";
    CHECK(hsd_a1111_parse_txt2img(&t, body, strlen(body), &s, msg, sizeof msg) == 0);
    CHECK(t.r.gen.prompt_style == HSD_PROMPT_A1111);
    hsd_a1111_txt2img_free(&t);
}

// A1111's extra networks (modules/extra_networks.py re_extra_net, the
// multipliers of extra_networks_lora.py) against the LoRAs of --lora.
static const struct hsd_a1111_settings *lora_settings(void) {
    static struct hsd_a1111_settings s;
    s = k_base;
    snprintf(s.loras[0], sizeof s.loras[0], "style");
    snprintf(s.loras[1], sizeof s.loras[1], "detail_v2");
    s.n_loras = 2;
    return &s;
}

// body's prompt -> the prompt sent on, and both scales.
static void lora_case(const char *prompt, const char *want, float s0, float s1) {
    char body[512], msg[512];
    json_t *j = json_pack("{s:s}", "prompt", prompt);
    char *txt = json_dumps(j, 0);
    snprintf(body, sizeof body, "%s", txt);
    free(txt);
    json_decref(j);
    struct hsd_a1111_txt2img t;
    int st = hsd_a1111_parse_txt2img(&t, body, strlen(body), lora_settings(), msg, sizeof msg);
    CHECKF(st == 0, "%s: %s", prompt, msg);
    if (st) return;
    const float *sc = t.r.gen.lora_scales;
    int none = s0 == 0.0f && s1 == 0.0f;
    CHECKF(!strcmp(t.r.gen.prompt, want) && !strcmp(t.prompt_written, prompt) &&
               (none ? sc == NULL : sc && sc[0] == s0 && sc[1] == s1),
           "'%s' -> '%s' %g %g; got '%s' %g %g", prompt, want, (double)s0, (double)s1,
           t.r.gen.prompt, sc ? (double)sc[0] : 0.0, sc ? (double)sc[1] : 0.0);
    hsd_a1111_txt2img_free(&t);
}

static void lora_refused(const char *prompt, const char *want) {
    char body[512], msg[512] = "";
    snprintf(body, sizeof body, "{\"prompt\": \"%s\"}", prompt);
    struct hsd_a1111_txt2img t;
    int st = hsd_a1111_parse_txt2img(&t, body, strlen(body), lora_settings(), msg, sizeof msg);
    CHECKF(st == 422 && strstr(msg, want), "%s: got %d '%s', want 422 '...%s...'", prompt, st,
           msg, want);
    if (!st) hsd_a1111_txt2img_free(&t);
}

static void loras(void) {
    lora_case("a cat <lora:style:0.8>", "a cat ", 0.8f, 0.0f);
    lora_case("<lora:style>a cat", "a cat", 1.0f, 0.0f);  // multiplier default 1
    lora_case("a <lora:detail_v2:-0.5>cat<lora:style: 1.5 >", "a cat", 1.5f, -0.5f);
    lora_case("x <lora:style:0.5:0.5> y", "x  y", 0.5f, 0.0f);  // TE == U-Net multiplier
    lora_case("<lora:style:0.25><lora:style:0.5>", "", 0.75f, 0.0f);  // named twice: added
    lora_case("<lora:style:1><lora:style:-1>", "", 0.0f, 0.0f);     // ... to nothing
    // Not A1111 tags: they stay text.
    lora_case("a <cat> <lora:> <:x> <lora:style", "a <cat> <lora:> <:x> <lora:style", 0, 0);
    lora_case("no tags at all", "no tags at all", 0.0f, 0.0f);
    lora_refused("<lora:nope:1>", "LoRA 'nope' not found (this edge has 'style', 'detail_v2')");
    lora_refused("<lora:Style:1>", "not found");
    lora_refused("<lora:style:lots>", "'lots' is not a number");
    lora_refused("<lora:style:nan>", "is not a number");
    lora_refused("<lora:style:17>", "outside [-16, 16]");
    lora_refused("<lora:style:9><lora:style:9>", "outside [-16, 16]");
    lora_refused("<lora:style:0.5:1>", "one multiplier");
    lora_refused("<lora:style:1:1:1>", "too many arguments");
    lora_refused("<lora:style:te=0.5>", "named arguments");
    lora_refused("<hypernet:anime:1>", "extra network 'hypernet' is not supported");
    // No LoRAs registered: the message says how to register one.
    refused("{\"prompt\": \"<lora:style:1>\"}", 422, "start it with --lora NAME=FILE");
}

int main(void) {
    defaults();
    loras();
    prompt_style();
    samplers();
    fields();
    refusals();
    options();
    return hsd_test_finish();
}
