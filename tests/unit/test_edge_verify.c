// RESULT verification on the edge: a reply built from a real in-process
// cloud state (tests/data/pipeline/large, k steps) passes; each kind of
// mismatch with the request or the edge model is refused with a message
// that names it, and nothing is handed over.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/edge.h"
#include "testutil.h"

static struct hsd_pipeline *g_cloud, *g_edge;

static struct hsd_pipeline *load(const char *name) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/pipeline/%s", HSD_TEST_DATA, name);
    struct hsd_pipeline_config c = {.model = dir, .threads = 1};
    struct hsd_pipeline *p = NULL;
    CHECK_OK(hsd_pipeline_load(&p, &c));
    return p;
}

// Encodes m, decodes it again (as the edge receives it) and verifies.
static enum hsd_status roundtrip(struct hsd_edge_handover *h, const struct hsd_wire_msg *m,
                                 uint64_t id, const struct hsd_edge_request *r,
                                 const struct hsd_edge_expect *e) {
    void *buf = NULL;
    size_t len;
    enum hsd_status s = hsd_wire_encode_alloc(&buf, &len, m);
    CHECKF(s == HSD_OK, "encode: %s", hsd_last_error());
    if (s) return s;
    struct hsd_wire_msg d;
    enum hsd_wire_error code;
    s = hsd_wire_decode(&d, &code, buf, len);
    CHECKF(s == HSD_OK, "decode: %s", hsd_last_error());
    if (!s) s = hsd_edge_verify_result(h, &d, id, r, e);
    free(buf);
    return s;
}

static void expect_reject(const char *what, const char *want, const struct hsd_wire_msg *m,
                          uint64_t id, const struct hsd_edge_request *r,
                          const struct hsd_edge_expect *e) {
    struct hsd_edge_handover h;
    enum hsd_status s = roundtrip(&h, m, id, r, e);
    const char *msg = hsd_last_error();
    int ok = s == HSD_ERR_FORMAT && strstr(msg, want) && strstr(msg, "cloud RESULT rejected") &&
             !h.latent && !h.cond && !h.sampler.buf;
    printf("%-4s %-34s -> %s\n", ok ? "ok" : "FAIL", what, msg);
    CHECKF(ok, "%s: expected a rejection mentioning '%s', got %s: %s", what, want,
           hsd_status_str(s), msg);
    if (s == HSD_OK) hsd_edge_handover_free(&h);
}

// A sampler state that deserializes on its own but belongs elsewhere.
static void *foreign_state(size_t *n, enum hsd_sampler_kind kind, int steps, size_t n_latent) {
    struct hsd_sampler s;
    struct hsd_torch_rng rng;
    hsd_torch_rng_seed(&rng, 1);
    CHECK_OK(hsd_sampler_init(&s, kind, hsd_pipeline_schedule(g_cloud), steps, n_latent, &rng));
    *n = hsd_sampler_serialized_size(&s);
    void *b = malloc(*n);
    CHECK_OK(hsd_sampler_serialize(&s, b, *n));
    hsd_sampler_free(&s);
    return b;
}

// SDXL's added conditioning (RESULT version 2): an SDXL edge (pooled_c
// 16 here) takes pooled embeddings of its width and the request's time ids,
// packed after each pass's context as hsd_denoise_item wants; anything
// else is refused naming the field. m0: a genuine SD 1.x RESULT.
static void check_sdxl_added(const struct hsd_wire_msg *m0, uint64_t id,
                             const struct hsd_edge_request *r, const struct hsd_edge_expect *e) {
    enum { PC = 16 };
    struct hsd_edge_expect ex = *e;
    ex.pooled_c = PC;
    float pooled[2 * PC], ids[2 * 6];
    hsd_test_fill_uniform(pooled, 2 * PC, 9, 1.0f);
    hsd_pipeline_time_ids(&r->gen, ids);
    memcpy(ids + 6, ids, 6 * sizeof *ids);
    expect_reject("SDXL edge, no pooled embeddings", "pooled_c 0", m0, id, r, &ex);
    struct hsd_wire_msg m = *m0;
    m.u.result.pooled_c = PC;
    m.u.result.n_time_ids = 6;
    m.u.result.pooled = pooled;
    m.u.result.time_ids = ids;
    struct hsd_edge_handover h;
    CHECK_OK(roundtrip(&h, &m, id, r, &ex));
    if (h.cond) {
        const size_t ctx = (size_t)m0->u.result.emb_t * m0->u.result.emb_c;
        CHECK(h.pooled_c == PC && !memcmp(h.cond + ctx, pooled, PC * 4) &&
              !memcmp(h.cond + ctx + PC, ids, 6 * 4));
        CHECK(!h.uncond || (!memcmp(h.uncond, (const float *)m0->u.result.emb + ctx, ctx * 4) &&
                            !memcmp(h.uncond + ctx, pooled + PC, PC * 4) &&
                            !memcmp(h.uncond + ctx + PC, ids + 6, 6 * 4)));
        hsd_edge_handover_free(&h);
    }
    expect_reject("pooled embeddings for an SD 1.x edge", "pooled_c 16", &m, id, r, e);
    ids[m.u.result.n_emb * 6 - 4] += 8;  // the last pass's crop top
    expect_reject("time ids not the request's", "time_ids[", &m, id, r, &ex);
}

static void check_cfg_case(float cfg) {
    struct hsd_edge_request r = {
        .gen = {.prompt = "a red cube", .negative_prompt = "blurry", .guidance_scale = cfg,
                .steps = 6, .split = -1, .sampler = HSD_SAMPLER_DPMPP_2M, .width = 64,
                .height = 64, .seed = 5, .batch_count = 1},
        .k_min = 3, .k_max = 3};
    CHECK_OK(hsd_edge_request_validate(&r, g_edge));
    const uint64_t id = 0x1234abcd5678ef01ull;
    struct hsd_wire_msg gen, m0;
    hsd_edge_build_generate(&gen, &r, id, 0, 0);
    CHECK(gen.u.generate.flags & HSD_WIRE_GEN_TEXT_EMB);
    void *store = NULL;
    CHECK_OK(hsd_edge_reference_result(&m0, &store, g_cloud, id, &gen.u.generate));
    if (!store) return;
    struct hsd_edge_expect e;
    hsd_edge_expect_from(&e, g_edge);
    const int cfg_on = cfg > 1.0f;
    printf("-- guidance %.1f: %u embeddings, state %zu bytes, k_used %u\n", (double)cfg,
           m0.u.result.n_emb, m0.u.result.sampler_state.n, m0.u.result.k_used);

    // The genuine reply passes, and its contents arrive intact and in order.
    struct hsd_edge_handover h;
    CHECK_OK(roundtrip(&h, &m0, id, &r, &e));
    if (h.latent) {
        size_t lat = (size_t)h.c * h.h * h.w, ctx = (size_t)HSD_TEXT_LEN * h.emb_c;
        CHECK(h.k_used == 3 && h.sampler.step == 3 && h.c == 4 && h.h == 8 && h.w == 8);
        CHECK(!memcmp(h.latent, m0.u.result.latent, lat * 4));
        CHECK(!memcmp(h.cond, m0.u.result.emb, ctx * 4));
        CHECK(cfg_on ? h.uncond && !memcmp(h.uncond, (const float *)m0.u.result.emb + ctx, ctx * 4)
                     : h.uncond == NULL);
        hsd_edge_handover_free(&h);
    }

    struct hsd_wire_msg m;
    m = m0, m.u.result.steps = 7;
    expect_reject("steps differ", "steps 7", &m, id, &r, &e);
    expect_reject("request id differs", "request id", &m0, id + 1, &r, &e);
    m = m0, m.u.result.sampler = HSD_SAMPLER_DDIM;
    expect_reject("sampler differs", "sampler ddim", &m, id, &r, &e);
    m = m0, m.u.result.k_used = 4;
    expect_reject("k_used above k_max", "k_used 4 outside", &m, id, &r, &e);
    m = m0, m.u.result.k_used = 2;
    expect_reject("k_used below k_min", "k_used 2 outside", &m, id, &r, &e);
    {  // In range, but the state says otherwise.
        struct hsd_edge_request wide = r;
        wide.k_min = 0, wide.k_max = 6;
        m = m0, m.u.result.k_used = 2;
        expect_reject("state step != k_used", "U-Net call 3", &m, id, &wide, &e);
    }
    m = m0, m.u.result.h = 4, m.u.result.w = 16;  // same bytes, other shape
    expect_reject("latent shape", "latent [4, 4, 16]", &m, id, &r, &e);
    m = m0, m.u.result.c = 1, m.u.result.h = 16, m.u.result.w = 16;
    expect_reject("latent channels", "latent [1, 16, 16]", &m, id, &r, &e);
    m = m0, m.u.result.n_emb = 0, m.u.result.emb_t = 0, m.u.result.emb_c = 0;
    expect_reject("no embeddings", "no text embeddings", &m, id, &r, &e);
    if (cfg_on) {
        m = m0, m.u.result.n_emb = 1;
        expect_reject("CFG without uncond", "needs 2", &m, id, &r, &e);
    } else {
        struct hsd_edge_request on = r;  // the same reply for a CFG request
        on.gen.guidance_scale = 7.5f;
        expect_reject("CFG without uncond", "needs 2", &m0, id, &on, &e);
    }
    m = m0, m.u.result.emb_c = 16;  // a narrower text encoder
    expect_reject("embedding width", "16 wide", &m, id, &r, &e);

    // Sampler state: corrupted, truncated, or another request's.
    const struct hsd_wire_bytes st = m0.u.result.sampler_state;
    uint8_t *bad = malloc(st.n);
    memcpy(bad, st.p, st.n);
    bad[st.n / 2] ^= 0x40;
    m = m0, m.u.result.sampler_state = (struct hsd_wire_bytes){bad, st.n};
    expect_reject("state corrupted", "sampler state", &m, id, &r, &e);
    m = m0, m.u.result.sampler_state = (struct hsd_wire_bytes){st.p, st.n - 1};
    expect_reject("state truncated", "sampler state", &m, id, &r, &e);
    m = m0, m.u.result.sampler_state = (struct hsd_wire_bytes){st.p, 0};
    expect_reject("state empty", "sampler state", &m, id, &r, &e);
    free(bad);
    struct hsd_edge_request from0 = r;  // k_used 0: a fresh state is legitimate
    from0.k_min = 0;
    size_t n;
    void *f = foreign_state(&n, HSD_SAMPLER_EULER, 6, 4 * 8 * 8);
    m = m0, m.u.result.k_used = 0, m.u.result.sampler_state = (struct hsd_wire_bytes){f, n};
    expect_reject("state of another sampler", "is a euler state", &m, id, &from0, &e);
    free(f);
    f = foreign_state(&n, HSD_SAMPLER_DPMPP_2M, 9, 4 * 8 * 8);
    m = m0, m.u.result.k_used = 0, m.u.result.sampler_state = (struct hsd_wire_bytes){f, n};
    expect_reject("state for other N", "is for 9 steps", &m, id, &from0, &e);
    free(f);
    f = foreign_state(&n, HSD_SAMPLER_DPMPP_2M, 6, 100);
    m = m0, m.u.result.k_used = 0, m.u.result.sampler_state = (struct hsd_wire_bytes){f, n};
    expect_reject("state for other latent", "100 elements", &m, id, &from0, &e);
    free(f);
    // The fresh state itself passes (k_used 0 is a valid handover).
    f = foreign_state(&n, HSD_SAMPLER_DPMPP_2M, 6, 4 * 8 * 8);
    m = m0, m.u.result.k_used = 0, m.u.result.sampler_state = (struct hsd_wire_bytes){f, n};
    CHECK_OK(roundtrip(&h, &m, id, &from0, &e));
    hsd_edge_handover_free(&h);
    free(f);
    // An edge model trained for another parameterisation.
    struct hsd_noise_schedule v = *e.sched;
    v.prediction_type = HSD_PRED_V;
    struct hsd_edge_expect ev = e;
    ev.sched = &v;
    expect_reject("schedule differs", "v_prediction", &m0, id, &r, &ev);
    // Not a RESULT at all.
    struct hsd_wire_msg err = {.type = HSD_WIRE_ERROR, .request_id = id};
    err.u.error.code = HSD_WIRE_E_BUSY;
    expect_reject("an ERROR instead", "ERROR message", &err, id, &r, &e);
    check_sdxl_added(&m0, id, &r, &e);
    free(store);
}

// Requests the wire cannot carry fail before anything is sent.
static void check_request_validation(void) {
    struct hsd_edge_request ok = {
        .gen = {.prompt = "x", .guidance_scale = 7.5f, .steps = 4, .split = -1,
                .sampler = HSD_SAMPLER_PNDM, .width = 64, .height = 64, .batch_count = 1},
        .k_min = 4, .k_max = 4};
    CHECK_OK(hsd_edge_request_validate(&ok, g_edge));
    struct hsd_edge_request r = ok;
    r.k_max = 5, r.k_min = 5;  // PNDM makes 5 calls, but the wire bounds k by N
    CHECK(hsd_edge_request_validate(&r, NULL) == HSD_ERR_INVALID_ARG);
    r = ok, r.k_min = 3, r.k_max = 2;
    CHECK(hsd_edge_request_validate(&r, NULL) == HSD_ERR_INVALID_ARG);
    r = ok, r.gen.prompt = "bad \xff";
    CHECK(hsd_edge_request_validate(&r, NULL) == HSD_ERR_INVALID_ARG);
    r = ok, r.gen.width = 60;
    CHECK(hsd_edge_request_validate(&r, NULL) == HSD_ERR_INVALID_ARG);
    r = ok, r.gen.width = 72;  // fine for the wire, not for the edge U-Net's depth
    CHECK_OK(hsd_edge_request_validate(&r, NULL));
    CHECK(hsd_edge_request_validate(&r, g_edge) == HSD_ERR_INVALID_ARG);
    r = ok, r.gen.batch_count = 2;
    CHECK(hsd_edge_request_validate(&r, NULL) == HSD_ERR_INVALID_ARG);
    r = ok, r.deadline_ms = HSD_WIRE_MAX_DEADLINE_MS + 1;
    CHECK(hsd_edge_request_validate(&r, NULL) == HSD_ERR_INVALID_ARG);
    r = ok, r.gen.clip_skip = 24;
    CHECK(hsd_edge_request_validate(&r, NULL) == HSD_ERR_INVALID_ARG);
    r = ok, r.gen.clip_skip = 5;  // fine for the wire; the tiny encoder has fewer layers
    CHECK(hsd_edge_request_validate(&r, g_edge) == HSD_ERR_INVALID_ARG);
    // Request ids are random and never 0.
    uint64_t a = hsd_edge_random_id(), b = hsd_edge_random_id();
    CHECK(a != 0 && b != 0 && a != b);
}

int main(void) {
    g_cloud = load("large");
    g_edge = load("edge");
    if (!g_cloud || !g_edge) return hsd_test_finish();
    check_cfg_case(7.5f);
    check_cfg_case(1.0f);
    check_request_validation();
    hsd_pipeline_free(g_cloud);
    hsd_pipeline_free(g_edge);
    return hsd_test_finish();
}
