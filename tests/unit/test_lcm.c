// LCM against diffusers (tests/oracle/make_lcm_cases.py, tests/data/lcm):
// an LCM-shaped random U-Net (time_cond_proj_dim: the guidance-scale
// embedding, no CFG) with LCMScheduler's published config, 4 and 8 steps;
// the Hybrid SD LCM split 4 + 4 onto an LCM-shaped edge U-Net (one sampler
// state across the switch, torch-identical re-noising noise); LCM-LoRA (the
// tiny SD pipeline + the kohya test LoRA + --sampler lcm, CFG 1.5).
// Bounds as test_pipeline: latents and images max|err| <= 1e-4 x max|ref|
// (fp32 both sides; the re-noising noise is bit-identical, so only the
// U-Net's ~1e-6 per-call rounding remains), 8-bit images within 1/255.
// Also: the hybrid run with the large U-Net on both sides equals the
// unsplit run bit for bit, and the guidance scale reaches the U-Net.
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "pipeline/pipeline.h"
#include "testutil.h"

#define TOL 1e-4

static char g_lcm[600], g_edge[600], g_sd[600], g_kohya[600];

static struct hsd_pipeline *load(json_t *c, float *lora_scale) {
    const struct hsd_lora_spec lora = {"kohya", g_kohya};
    json_t *ls = json_object_get(c, "lora");
    struct hsd_pipeline_config pc = {.model = ls ? g_sd : g_lcm, .threads = 2};
    if (json_object_get(c, "split")) pc.edge_model = g_edge;
    if (ls) {
        pc.loras = &lora;
        pc.n_loras = 1;
        *lora_scale = (float)json_number_value(ls);
    }
    struct hsd_pipeline *p = NULL;
    CHECK_OK(hsd_pipeline_load(&p, &pc));
    return p;
}

static void check_case(json_t *c, const struct hsd_safetensors *g) {
    const char *name = json_string_value(json_object_get(c, "name"));
    float lora_scale = 0;
    struct hsd_pipeline *p = load(c, &lora_scale);
    if (!p) return;
    json_t *k = json_object_get(c, "split");
    struct hsd_gen_request r = {
        .prompt = json_string_value(json_object_get(c, "prompt")),
        .guidance_scale = (float)json_number_value(json_object_get(c, "cfg")),
        .steps = (int)json_integer_value(json_object_get(c, "steps")),
        .split = k ? (int)json_integer_value(k) : -1, .sampler = HSD_SAMPLER_LCM, .width = 64,
        .height = 64, .seed = (uint64_t)json_integer_value(json_object_get(c, "seed")),
        .batch_count = 1, .lora_scales = lora_scale ? &lora_scale : NULL};
    hsd_test_generate_vs_goldens(p, &r, g, name, TOL);
    hsd_pipeline_free(p);
}

// The split with the large U-Net on both sides is the unsplit run, bit for
// bit (the sampler state, its noise generator included, carries over).
static void check_same_unet_split(void) {
    struct hsd_pipeline_config pc = {.model = g_lcm, .edge_model = g_lcm, .threads = 2};
    struct hsd_pipeline *p = NULL;
    CHECK_OK(hsd_pipeline_load(&p, &pc));
    if (!p) return;
    struct hsd_gen_request r = {.prompt = "a cat", .guidance_scale = 8.0f, .steps = 8,
                                .split = -1, .sampler = HSD_SAMPLER_LCM, .width = 64,
                                .height = 64, .seed = 4, .batch_count = 1};
    float a[256], b[256];
    CHECK_OK(hsd_pipeline_generate(p, &r, NULL, NULL, a, NULL, NULL, NULL));
    r.split = 4;
    CHECK_OK(hsd_pipeline_generate(p, &r, NULL, NULL, b, NULL, NULL, NULL));
    CHECKF(!memcmp(a, b, sizeof a), "LCM split 4 + 4 with one U-Net differs from unsplit");
    // Control: another guidance scale gives another image (w reaches the U-Net).
    r.guidance_scale = 2.0f;
    CHECK_OK(hsd_pipeline_generate(p, &r, NULL, NULL, b, NULL, NULL, NULL));
    CHECK(hsd_compare(a, b, 256).max_abs_err > 1e-3);
    hsd_pipeline_free(p);
}

int main(void) {
    snprintf(g_lcm, sizeof g_lcm, "%s/lcm/large", HSD_TEST_DATA);
    snprintf(g_edge, sizeof g_edge, "%s/lcm/edge", HSD_TEST_DATA);
    snprintf(g_sd, sizeof g_sd, "%s/pipeline/large", HSD_TEST_DATA);
    snprintf(g_kohya, sizeof g_kohya, "%s/lora/kohya.safetensors", HSD_TEST_DATA);
    char path[700];
    snprintf(path, sizeof path, "%s/lcm/cases.json", HSD_TEST_DATA);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    CHECKF(root != NULL, "%s: %s", path, err.text);
    snprintf(path, sizeof path, "%s/lcm/goldens.safetensors", HSD_TEST_DATA);
    struct hsd_safetensors *g = NULL;
    CHECK_OK(hsd_safetensors_open(&g, path));
    if (root && g) {
        json_t *cases = json_object_get(root, "cases"), *c;
        size_t i;
        json_array_foreach(cases, i, c) check_case(c, g);
    }
    check_same_unet_split();
    hsd_safetensors_close(g);
    json_decref(root);
    return hsd_test_finish();
}
