// The handover is exact: an in-process "cloud" (tests/data/pipeline/large,
// k steps via hsd_edge_reference_result = init_image + denoise_step) ->
// RESULT encoded and decoded as on the wire -> edge verify + finish with
// tests/data/pipeline/edge gives the final latent and the 8-bit image of
// hsd_pipeline_generate(large, edge, split k) bit for bit, for every
// sampler, k in {0, 3, N}, with and without CFG, and with the tiny VAE.
// The local fallback equals `hsd generate --model EDGE` likewise.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/edge.h"
#include "testutil.h"

static char g_large[600], g_edge[600];

static struct hsd_pipeline *load(const char *model, const char *edge, const char *vae) {
    struct hsd_pipeline_config c = {.model = model, .edge_model = edge, .vae = vae};
    struct hsd_pipeline *p = NULL;
    CHECK_OK(hsd_pipeline_load(&p, &c));
    return p;
}

struct sides {
    struct hsd_pipeline *hybrid;  // hsd generate --model LARGE --edge-model EDGE
    struct hsd_pipeline *cloud;  // hsd serve --model LARGE
    struct hsd_pipeline *edge;  // hsd edge --model EDGE
};

#define W 64
#define H 64
#define LAT (4 * (H / 8) * (W / 8))

static void check_one(const struct sides *s, struct hsd_edge_request *r, int k, const char *vae) {
    r->k_min = r->k_max = k;
    r->gen.split = k;
    uint8_t want[H * W * 3], got[H * W * 3];
    float want_lat[LAT];
    CHECK_OK(hsd_pipeline_generate(s->hybrid, &r->gen, want, NULL, want_lat, NULL, NULL, NULL));

    uint64_t id = hsd_edge_random_id();
    struct hsd_wire_msg gen, res, back;
    hsd_edge_build_generate(&gen, r, id, 0, 0);
    void *store = NULL, *buf = NULL;
    size_t len = 0;
    CHECK_OK(hsd_edge_reference_result(&res, &store, s->cloud, id, &gen.u.generate));
    CHECK_OK(hsd_wire_encode_alloc(&buf, &len, &res));
    enum hsd_wire_error code;
    CHECK_OK(hsd_wire_decode(&back, &code, buf, len));
    struct hsd_edge_expect e;
    hsd_edge_expect_from(&e, s->edge);
    struct hsd_edge_handover h;
    struct hsd_edge_timing t;
    CHECK_OK(hsd_edge_verify_result(&h, &back, id, r, &e));
    int same = 0;
    if (h.latent) {
        CHECK_OK(hsd_edge_finish(s->edge, &h, r, got, &t, NULL, NULL));
        same = !memcmp(want, got, sizeof want) && !memcmp(want_lat, h.latent, sizeof want_lat);
        int diff = 0;
        for (size_t i = 0; i < sizeof want; i++) diff += want[i] != got[i];
        printf("%-9s cfg %.1f k=%d/%d vae %-4s: cloud %zu B RESULT, edge %d calls; bitwise equal "
               "to generate --split %d: %s (%d bytes differ)\n",
               hsd_sampler_name(r->gen.sampler), (double)r->gen.guidance_scale, k,
               hsd_sampler_n_calls(&h.sampler), vae ? vae : "full", len, t.calls, k,
               same ? "yes" : "NO", diff);
        CHECK(t.calls == hsd_sampler_n_calls(&h.sampler) - k);
    }
    CHECKF(same, "%s k=%d: edge result differs from hsd generate --split",
           hsd_sampler_name(r->gen.sampler), k);
    hsd_edge_handover_free(&h);
    free(buf);
    free(store);
}

static void check_vae(const char *vae) {
    struct sides s = {load(g_large, g_edge, vae), load(g_large, NULL, vae),
                      load(g_edge, NULL, vae)};
    if (!s.hybrid || !s.cloud || !s.edge) goto done;
    struct hsd_edge_request r = {
        .gen = {.prompt = "a lighthouse at dusk", .negative_prompt = "blurry, low quality",
                .guidance_scale = 7.5f, .steps = 5, .width = W, .height = H, .seed = 42,
                .batch_count = 1}};
    static const enum hsd_sampler_kind kinds[] = {HSD_SAMPLER_DPMPP_2M, HSD_SAMPLER_EULER_A,
                                                  HSD_SAMPLER_PNDM, HSD_SAMPLER_DDIM,
                                                  HSD_SAMPLER_EULER};
    int n_kinds = vae ? 1 : (int)(sizeof kinds / sizeof kinds[0]);
    for (int i = 0; i < n_kinds; i++) {
        r.gen.sampler = kinds[i];
        int ks[3] = {0, 3, r.gen.steps};
        for (int j = 0; j < 3; j++) check_one(&s, &r, ks[j], vae);
    }
    if (!vae) {
        // Control: the two U-Nets really differ, so an edge that finished
        // with the wrong one (or the cloud's) could not pass the checks above.
        uint8_t a[H * W * 3], b[H * W * 3];
        struct hsd_gen_request g = r.gen;
        g.split = -1;
        CHECK_OK(hsd_pipeline_generate(s.hybrid, &g, a, NULL, NULL, NULL, NULL, NULL));
        g.split = 0;
        CHECK_OK(hsd_pipeline_generate(s.hybrid, &g, b, NULL, NULL, NULL, NULL, NULL));
        CHECKF(memcmp(a, b, sizeof a) != 0, "large-only and edge-only images are identical");
    }
    if (!vae) {  // CFG off: one embedding, cond only.
        r.gen.guidance_scale = 1.0f;
        r.gen.sampler = HSD_SAMPLER_DPMPP_2M;
        check_one(&s, &r, 2, vae);
        r.gen.guidance_scale = 7.5f;
    }
    // The local fallback is `hsd generate --model EDGE` (k = 0, the edge's
    // own text encoder).
    struct hsd_pipeline *alone = load(g_edge, NULL, vae);
    if (alone) {
        uint8_t a[H * W * 3], b[H * W * 3];
        struct hsd_gen_request g = r.gen;
        g.split = -1;
        struct hsd_edge_timing t;
        CHECK_OK(hsd_pipeline_generate(alone, &g, a, NULL, NULL, NULL, NULL, NULL));
        CHECK_OK(hsd_edge_generate_local(s.edge, &r, b, &t, NULL, NULL));
        int same = !memcmp(a, b, sizeof a);
        printf("local fallback (vae %s): %d calls, equal to generate --model EDGE: %s\n",
               vae ? vae : "full", t.calls, same ? "yes" : "NO");
        CHECK(same && t.calls == hsd_pipeline_n_calls(&g));
        hsd_pipeline_free(alone);
    }
done:
    hsd_pipeline_free(s.hybrid);
    hsd_pipeline_free(s.cloud);
    hsd_pipeline_free(s.edge);
}

int main(void) {
    snprintf(g_large, sizeof g_large, "%s/pipeline/large", HSD_TEST_DATA);
    snprintf(g_edge, sizeof g_edge, "%s/pipeline/edge", HSD_TEST_DATA);
    check_vae(NULL);
    check_vae("tiny");
    return hsd_test_finish();
}
