// LoRA against diffusers (tests/oracle/make_lora_cases.py, tests/data/lora;
// SDXL: make_lora_sdxl_cases.py, tests/data/lora_sdxl): random LoRAs in the
// kohya and diffusers/PEFT formats on the tiny pipeline's U-Net and text
// encoder(s), hsd's unfused side products against diffusers
// load_lora_weights + set_adapters at the same scales.
// - latents and decoded images: max|err| <= 1e-4 x max|ref|, the bound of
//   test_pipeline (both sides fp32; the LoRA adds two rank-r GEMMs per
//   layer whose rounding is of the same ~1e-6 relative size per call);
// - 8-bit images within 1/255 (a value on a rounding boundary may land on
//   either side).
// Then: a LoRA that does not fit a model (the edge U-Net) fails the load
// naming the layer; the LoRA changes the image (control); and one U-Net
// call whose rows choose different LoRA sets gives each row what it gets
// alone, within test_service's batching bound (1e-5 x max|ref|: OpenBLAS
// picks GEMM kernels by the batch size, so a row's reduction order
// depends on it; a row given another row's LoRA set is off by O(1)).
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "pipeline/pipeline.h"
#include "testutil.h"

#define TOL 1e-4

static char g_large[600], g_edge[600], g_kohya[600], g_peft[600];
static const struct hsd_lora_spec g_specs[2] = {{"kohya", g_kohya}, {"peft", g_peft}};

static struct hsd_pipeline *load(void) {
    struct hsd_pipeline_config c = {.model = g_large, .loras = g_specs, .n_loras = 2,
                                    .threads = 2};
    struct hsd_pipeline *p = NULL;
    CHECK_OK(hsd_pipeline_load(&p, &c));
    return p;
}

static void request(struct hsd_gen_request *r, float *scales, json_t *c) {
    memset(r, 0, sizeof *r);
    r->prompt = json_string_value(json_object_get(c, "prompt"));
    json_t *neg = json_object_get(c, "negative");
    r->negative_prompt = json_is_string(neg) ? json_string_value(neg) : NULL;
    r->guidance_scale = (float)json_number_value(json_object_get(c, "cfg"));
    r->steps = (int)json_integer_value(json_object_get(c, "steps"));
    r->split = -1;
    CHECK_OK(hsd_sampler_parse(json_string_value(json_object_get(c, "sampler")), &r->sampler));
    r->width = r->height = 64;
    r->seed = (uint64_t)json_integer_value(json_object_get(c, "seed"));
    r->batch_count = 1;
    json_t *l = json_object_get(c, "loras");
    scales[0] = (float)json_number_value(json_object_get(l, "kohya"));
    scales[1] = (float)json_number_value(json_object_get(l, "peft"));
    r->lora_scales = scales;
}

static void check_case(struct hsd_pipeline *p, json_t *c, const struct hsd_safetensors *g) {
    const char *name = json_string_value(json_object_get(c, "name"));
    struct hsd_gen_request r;
    float scales[2];
    request(&r, scales, c);
    hsd_test_generate_vs_goldens(p, &r, g, name, TOL);
}

// The checks can fail: the LoRA image differs from the plain one.
static void check_control(const struct hsd_safetensors *g) {
    size_t n1, n2;
    float *a = hsd_test_golden(g, "kohya", "latent", &n1), *b = hsd_test_golden(g, "none", "latent", &n2);
    if (a && b && n1 == n2) {
        struct hsd_cmp d = hsd_compare(a, b, n1);
        printf("control: kohya vs no LoRA latent max|diff| %.3g (of %.3g)\n", d.max_abs_err,
               d.max_abs_ref);
        CHECKF(d.max_abs_err > 100 * TOL * d.max_abs_ref, "the LoRA does not change the image");
    }
    free(a);
    free(b);
}

static void check_edge_refused(void) {
    struct hsd_pipeline_config c = {.model = g_large, .edge_model = g_edge, .loras = g_specs,
                                    .n_loras = 1, .threads = 2};
    struct hsd_pipeline *p = NULL;
    enum hsd_status s = hsd_pipeline_load(&p, &c);
    printf("kohya LoRA on the smaller edge U-Net: %s\n", hsd_last_error());
    CHECKF(s == HSD_ERR_SHAPE && strstr(hsd_last_error(), "edge U-Net"),
           "a LoRA that does not fit the edge U-Net must fail the load");
    hsd_clear_error();
    hsd_pipeline_free(p);
}

// One denoise step over three requests choosing {kohya}, {} and
// {kohya 0.5, peft -1} equals three steps of one request each.
static void check_mixed_batch(struct hsd_pipeline *p) {
    const int h = 8, w = 8, N = 3;
    const size_t lat = 4 * 8 * 8, ctx = 77 * 32;
    static const float scales[3][2] = {{1.0f, 0.0f}, {0.0f, 0.0f}, {0.5f, -1.0f}};
    struct hsd_gen_request r = {.prompt = "a red bicycle", .guidance_scale = 5.0f, .steps = 4,
                                .split = -1, .sampler = HSD_SAMPLER_DPMPP_2M, .width = 64,
                                .height = 64, .batch_count = 1};
    float emb[3][2 * 77 * 32], x[2][3][4 * 8 * 8];
    struct hsd_sampler s[2][3];
    const char *texts[2] = {"", "a red bicycle"};
    for (int i = 0; i < N; i++) {
        CHECK_OK(hsd_pipeline_encode_text_lora(p, emb[i], texts, 2, 0, scales[i]));
        for (int v = 0; v < 2; v++) {
            r.seed = (uint64_t)i;
            CHECK_OK(hsd_pipeline_init_image(p, &r, 0, x[v][i], &s[v][i]));
        }
    }
    struct hsd_denoise_item all[3], one;
    for (int i = 0; i < N; i++)
        all[i] = (struct hsd_denoise_item){x[0][i], &s[0][i], emb[i] + ctx, emb[i], 5.0f,
                                           0, scales[i]};
    for (int k = 0; k < 2; k++) {
        CHECK_OK(hsd_pipeline_denoise_step(p, hsd_pipeline_unet(p, 0), all, N, h, w));
        for (int i = 0; i < N; i++) {
            one = (struct hsd_denoise_item){x[1][i], &s[1][i], emb[i] + ctx, emb[i], 5.0f,
                                            0, scales[i]};
            CHECK_OK(hsd_pipeline_denoise_step(p, hsd_pipeline_unet(p, 0), &one, 1, h, w));
        }
    }
    for (int i = 0; i < N; i++) {
        char what[64];
        snprintf(what, sizeof what, "mixed-LoRA batch row %d vs alone", i);
        CHECK_CLOSE(what, x[0][i], x[1][i], lat, 1e-5);
    }
    // Control: different LoRA sets do give different latents.
    CHECK(hsd_compare(x[0][0], x[0][1], lat).max_abs_err > 0);
    for (int v = 0; v < 2; v++)
        for (int i = 0; i < N; i++) hsd_sampler_free(&s[v][i]);
}

// test_lora [LORA_DIR PIPELINE_DIR]: the SD 1.x goldens (lora, pipeline)
// or SDXL's (lora_sdxl, pipeline_sdxl: tests/oracle/make_lora_sdxl_cases.py,
// kohya's SGM U-Net names and both text encoders).
int main(int argc, char **argv) {
    const char *lora = argc > 2 ? argv[1] : "lora", *pipe = argc > 2 ? argv[2] : "pipeline";
    int sdxl = strstr(pipe, "sdxl") != NULL;
    snprintf(g_large, sizeof g_large, "%s/%s/large", HSD_TEST_DATA, pipe);
    snprintf(g_edge, sizeof g_edge, "%s/%s/edge", HSD_TEST_DATA, pipe);
    snprintf(g_kohya, sizeof g_kohya, "%s/%s/kohya.safetensors", HSD_TEST_DATA, lora);
    snprintf(g_peft, sizeof g_peft, "%s/%s/peft.safetensors", HSD_TEST_DATA, lora);
    char path[700];
    snprintf(path, sizeof path, "%s/%s/cases.json", HSD_TEST_DATA, lora);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    CHECKF(root != NULL, "%s: %s", path, err.text);
    snprintf(path, sizeof path, "%s/%s/goldens.safetensors", HSD_TEST_DATA, lora);
    struct hsd_safetensors *g = NULL;
    CHECK_OK(hsd_safetensors_open(&g, path));
    struct hsd_pipeline *p = root && g ? load() : NULL;
    if (p) {
        json_t *cases = json_object_get(root, "cases"), *c;
        size_t i;
        json_array_foreach(cases, i, c) check_case(p, c, g);
        check_control(g);
        // SD 1.x's context shapes; the per-row mechanism is the same for SDXL.
        if (!sdxl) check_mixed_batch(p);
    }
    check_edge_refused();
    hsd_pipeline_free(p);
    hsd_safetensors_close(g);
    json_decref(root);
    return hsd_test_finish();
}
