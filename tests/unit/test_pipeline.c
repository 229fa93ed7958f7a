// Full text-to-image parity with diffusers' StableDiffusionPipeline on the
// tiny random-weight pipelines of tests/oracle/make_pipeline_cases.py, and
// Hybrid SD's split in one process:
// - initial noise: bitwise equal to torch.randn with the same seed;
// - final latents and decoded image: max|err| <= 1e-4 x max|ref|. Both
//   sides are fp32; per U-Net call the difference is ~1e-6 relative
//   (test_unet_oracle), CFG at scale <= 7.5 amplifies it by at most ~15x
//   per step and the samplers are contractive, so 1e-4 leaves margin while
//   any semantic slip (wrong timestep, order of CFG rows, sigma) is >1e-2;
// - 8-bit image: every channel within 1/255 of diffusers' (a value that
//   sits on a rounding boundary may land on either side);
// - split k with the same U-Net on both sides equals the unsplit run bit
//   for bit (the handover carries the whole sampler state).
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "pipeline/pipeline.h"
#include "testutil.h"

#define TOL 1e-4

static char g_large[600], g_edge[600];

static struct hsd_pipeline *load(const char *edge, const char *vae) {
    struct hsd_pipeline_config c = {.model = g_large, .edge_model = edge, .vae = vae};
    struct hsd_pipeline *p = NULL;
    CHECK_OK(hsd_pipeline_load(&p, &c));
    return p;
}

static void request_from_json(struct hsd_gen_request *r, json_t *c) {
    memset(r, 0, sizeof *r);
    r->prompt = json_string_value(json_object_get(c, "prompt"));
    json_t *neg = json_object_get(c, "negative");
    r->negative_prompt = json_is_string(neg) ? json_string_value(neg) : NULL;
    r->guidance_scale = (float)json_number_value(json_object_get(c, "cfg"));
    r->steps = (int)json_integer_value(json_object_get(c, "steps"));
    json_t *k = json_object_get(c, "split");
    r->split = k ? (int)json_integer_value(k) : -1;
    CHECK_OK(hsd_sampler_parse(json_string_value(json_object_get(c, "sampler")), &r->sampler));
    r->width = (int)json_integer_value(json_object_get(c, "width"));
    r->height = (int)json_integer_value(json_object_get(c, "height"));
    r->seed = (uint64_t)json_integer_value(json_object_get(c, "seed"));
    r->batch_count = (int)json_integer_value(json_object_get(c, "batch"));
    // SDXL micro-conditioning: (height, width) and (top, left), as diffusers.
    json_t *os = json_object_get(c, "original_size"), *crop = json_object_get(c, "crop");
    r->original_height = (int)json_integer_value(json_array_get(os, 0));
    r->original_width = (int)json_integer_value(json_array_get(os, 1));
    r->crop_top = (int)json_integer_value(json_array_get(crop, 0));
    r->crop_left = (int)json_integer_value(json_array_get(crop, 1));
}

static float *golden(const struct hsd_safetensors *g, const char *name, const char *part,
                     size_t *count) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", name, part);
    const struct hsd_st_tensor *t = hsd_safetensors_find(g, key);
    CHECKF(t != NULL, "golden %s missing", key);
    if (!t) return NULL;
    *count = (size_t)t->numel;
    float *x = malloc(*count * sizeof *x);
    if (t->dtype == HSD_U8) {
        for (size_t i = 0; i < *count; i++) x[i] = ((const uint8_t *)t->data)[i];
    } else {
        CHECK_OK(hsd_safetensors_read_f32(g, key, x, *count));
    }
    return x;
}

static void check_case(json_t *c, const struct hsd_safetensors *g) {
    const char *name = json_string_value(json_object_get(c, "name"));
    struct hsd_gen_request r;
    request_from_json(&r, c);
    json_t *vae = json_object_get(c, "vae");
    int hybrid = json_object_get(c, "split") != NULL;
    struct hsd_pipeline *p = load(hybrid ? g_edge : NULL, json_is_string(vae) ? "tiny" : NULL);
    if (!p) return;
    int B = r.batch_count, h = r.height / 8, w = r.width / 8;
    size_t lat = (size_t)4 * h * w, img = (size_t)3 * r.height * r.width;
    // Initial noise: per image, torch.randn(generator=manual_seed(seed + i)).
    size_t n;
    float *ref = golden(g, name, "noise", &n);
    float *noise = malloc((size_t)B * lat * sizeof *noise);
    for (int i = 0; i < B; i++) {
        struct hsd_torch_rng rng;
        hsd_torch_rng_seed(&rng, r.seed + (uint64_t)i);
        hsd_torch_randn(&rng, noise + i * lat, lat);
    }
    CHECKF(ref && n == B * lat && !memcmp(noise, ref, n * sizeof *ref),
           "%s: initial noise differs from torch.randn", name);
    printf("%-24s initial noise identical to torch: %s\n", name,
           ref && !memcmp(noise, ref, n * sizeof *ref) ? "yes" : "NO");
    free(ref);
    free(noise);

    float *latent = malloc((size_t)B * lat * sizeof *latent);
    float *image = malloc((size_t)B * img * sizeof *image);
    uint8_t *rgb = malloc((size_t)B * img);
    CHECK_OK(hsd_pipeline_generate(p, &r, rgb, image, latent, NULL, NULL, NULL));
    char what[96];
    if ((ref = golden(g, name, "latent", &n))) {
        snprintf(what, sizeof what, "%s latent", name);
        CHECKF(n == B * lat, "%s: latent size", name);
        if (n == B * lat) CHECK_CLOSE(what, latent, ref, n, TOL);
        free(ref);
    }
    if ((ref = golden(g, name, "image", &n))) {
        snprintf(what, sizeof what, "%s image", name);
        CHECKF(n == B * img, "%s: image size", name);
        if (n == B * img) CHECK_CLOSE(what, image, ref, n, TOL);
        free(ref);
    }
    if ((ref = golden(g, name, "rgb", &n)) && n == B * img) {
        int worst = 0;
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
            int d = abs((int)rgb[i] - (int)ref[i]);
            if (d > worst) worst = d, off = i;
            off += 0;
        }
        printf("%-24s 8-bit image max |diff| = %d/255 (at %zu)\n", name, worst, off);
        CHECKF(worst <= 1, "%s: 8-bit image differs by %d/255", name, worst);
    }
    free(ref);
    free(latent);
    free(image);
    free(rgb);
    hsd_pipeline_free(p);
}

// Same U-Net on both sides: split k must equal the unsplit run bitwise.
static void check_same_unet_split(void) {
    struct hsd_pipeline *p = load(g_large, NULL);
    if (!p) return;
    struct hsd_gen_request r = {.prompt = "a lighthouse", .guidance_scale = 7.5f, .steps = 6,
                                .sampler = HSD_SAMPLER_DPMPP_2M, .width = 64, .height = 64,
                                .seed = 3, .batch_count = 1};
    static const enum hsd_sampler_kind kinds[] = {HSD_SAMPLER_DPMPP_2M, HSD_SAMPLER_PNDM,
                                                  HSD_SAMPLER_EULER_A};
    uint8_t a[64 * 64 * 3], b[64 * 64 * 3];
    float la[4 * 8 * 8], lb[4 * 8 * 8];
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        r.sampler = kinds[i];
        r.split = -1;
        CHECK_OK(hsd_pipeline_generate(p, &r, a, NULL, la, NULL, NULL, NULL));
        for (int k = 0; k <= hsd_pipeline_n_calls(&r); k += 3) {
            r.split = k;
            CHECK_OK(hsd_pipeline_generate(p, &r, b, NULL, lb, NULL, NULL, NULL));
            int same = !memcmp(a, b, sizeof a) && !memcmp(la, lb, sizeof la);
            printf("same U-Net both sides, %s k=%d: bitwise equal to unsplit: %s\n",
                   hsd_sampler_name(kinds[i]), k, same ? "yes" : "NO");
            CHECKF(same, "%s split %d differs from the unsplit run", hsd_sampler_name(kinds[i]), k);
        }
    }
    hsd_pipeline_free(p);
}

// Bad requests fail in validation, before compute.
static void check_validation(void) {
    struct hsd_pipeline *p = load(g_edge, NULL);
    if (!p) return;
    struct hsd_gen_request ok = {.prompt = "x", .guidance_scale = 7.5f, .steps = 4, .split = 2,
                                 .sampler = HSD_SAMPLER_DDIM, .width = 64, .height = 64,
                                 .batch_count = 1};
    CHECK_OK(hsd_pipeline_validate(p, &ok));
    struct hsd_gen_request r = ok;
    r.prompt = "bad \xff utf-8";
    CHECK(hsd_pipeline_validate(p, &r) == HSD_ERR_INVALID_ARG);
    r = ok, r.width = 60;
    CHECK(hsd_pipeline_validate(p, &r) == HSD_ERR_INVALID_ARG);
    r = ok, r.steps = 0;
    CHECK(hsd_pipeline_validate(p, &r) == HSD_ERR_INVALID_ARG);
    r = ok, r.steps = 1001;
    CHECK(hsd_pipeline_validate(p, &r) == HSD_ERR_INVALID_ARG);
    r = ok, r.split = 5;
    CHECK(hsd_pipeline_validate(p, &r) == HSD_ERR_INVALID_ARG);
    hsd_pipeline_free(p);
    // Model pairs that cannot work together fail at load, naming the field:
    // SD 1.x: the edge U-Net's cross attention width (40) differs from the
    // text encoder's (32). SDXL: an SD 1.x edge U-Net (no text_time
    // conditioning) with the SDXL pipeline, and an SDXL edge U-Net with the
    // SD 1.x one.
    static const struct {
        const char *large, *edge, *field;
    } bad[] = {{"pipeline/large", "unet/bksdm_tiny", "cross_attention_dim"},
               {"pipeline_sdxl/large", "pipeline/edge", "addition_embed_type"},
               {"pipeline/large", "pipeline_sdxl/edge/unet", "addition_embed_type"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char l[600], e[600];
        snprintf(l, sizeof l, "%s/%s", HSD_TEST_DATA, bad[i].large);
        snprintf(e, sizeof e, "%s/%s", HSD_TEST_DATA, bad[i].edge);
        struct hsd_pipeline_config c = {.model = l, .edge_model = e};
        struct hsd_pipeline *q = NULL;
        enum hsd_status s = hsd_pipeline_load(&q, &c);
        printf("mismatched pair %s + %s -> %s: %s\n", bad[i].large, bad[i].edge,
               hsd_status_str(s), hsd_last_error());
        CHECKF(s == HSD_ERR_SHAPE && strstr(hsd_last_error(), bad[i].field),
               "mismatched pair: %s", hsd_last_error());
        hsd_pipeline_free(q);
    }
}

// argv[1]: the golden folder under tests/data, "pipeline" (SD 1.x, made by
// make_pipeline_cases.py; the default) or "pipeline_sdxl" (SDXL, made by
// make_sdxl_pipeline_cases.py, edge U-Net under edge/unet).
int main(int argc, char **argv) {
    const char *set = argc > 1 ? argv[1] : "pipeline";
    int sdxl = !strcmp(set, "pipeline_sdxl");
    snprintf(g_large, sizeof g_large, "%s/%s/large", HSD_TEST_DATA, set);
    snprintf(g_edge, sizeof g_edge, "%s/%s/edge%s", HSD_TEST_DATA, set, sdxl ? "/unet" : "");
    char path[700];
    snprintf(path, sizeof path, "%s/%s/cases.json", HSD_TEST_DATA, set);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    CHECKF(root != NULL, "cannot read %s", path);
    snprintf(path, sizeof path, "%s/%s/goldens.safetensors", HSD_TEST_DATA, set);
    struct hsd_safetensors *g = NULL;
    CHECK_OK(hsd_safetensors_open(&g, path));
    json_t *cases = json_object_get(root, "cases");
    CHECK(json_array_size(cases) >= (sdxl ? 7u : 9u));
    for (size_t i = 0; g && i < json_array_size(cases); i++) check_case(json_array_get(cases, i), g);
    if (sdxl) {
        // The edge U-Net as diffusers shards it (variant fp16, an index
        // and three shards): the hybrid cases again, same goldens.
        snprintf(g_edge, sizeof g_edge, "%s/%s/edge_sharded/unet", HSD_TEST_DATA, set);
        for (size_t i = 0; g && i < json_array_size(cases); i++)
            if (json_object_get(json_array_get(cases, i), "split"))
                check_case(json_array_get(cases, i), g);
    }
    check_same_unet_split();
    check_validation();
    hsd_safetensors_close(g);
    json_decref(root);
    return hsd_test_finish();
}
