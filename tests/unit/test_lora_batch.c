// LoRA chosen per request in the service's batcher (scheduler/batcher.c):
// three requests -- kohya at 1, no LoRA, kohya 0.5 + PEFT -1 -- submitted
// together share U-Net calls (fewer batches than steps x requests) and
// each ends with the latent it gets when submitted alone. Bucket 8 pads
// every call to 8 rows, so alone and batched run the same GEMM shapes; the
// remaining difference is the LoRA op's runs of rows (a request's rows sit
// next to other requests' in a batch), bounded like test_service's
// batching (1e-5 x max|ref|; a request given another's LoRA set is off by
// O(1), see test_lora's control). Then a request without LoRA that holds a
// resident slot is joined by the LoRA requests: the shared calls take the
// per-step path (docs/denoise_step.md) and it still ends as alone. Also
// GENERATE's LoRA list on the wire:
// encode -> decode keeps it, an old client's GENERATE (no list) decodes
// with none, and bad lists are refused with BAD_REQUEST.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batcher.h"
#include "net/wire.h"
#include "testutil.h"

enum { N = 3, STEPS = 4 };
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_done[N];
static float g_lat[N][4 * 8 * 8];
static const float g_scales[N][2] = {{1.0f, 0.0f}, {0.0f, 0.0f}, {0.5f, -1.0f}};

static void on_done(void *user, uint64_t id, void *client, const struct hsd_sched_result *r) {
    (void)user, (void)id;
    int i = (int)(intptr_t)client;
    pthread_mutex_lock(&g_mu);
    g_done[i] = r->state == HSD_REQ_DONE ? 1 : -1;
    if (r->state == HSD_REQ_DONE) memcpy(g_lat[i], r->latent, sizeof g_lat[i]);
    pthread_mutex_unlock(&g_mu);
}

// Runs requests [from, to) together; returns the U-Net batches it took.
// steps1: request 1's steps; stagger: request 1 goes first, the others
// once it has stepped (so it holds a resident slot when a LoRA request
// joins its batch, which then steps on the per-step path).
static uint64_t run_ex(struct hsd_pipeline *p, int from, int to, int steps1, int stagger) {
    struct hsd_sched_opts o = {.max_batch_rows = 8, .queue_limit = 8, .max_active = 8,
                               .admit_batch = 8, .adaptive_threshold = 1000, .on_done = on_done};
    struct hsd_sched *s = NULL;
    CHECK_OK(hsd_sched_create(&s, &o));
    if (!s) return 0;
    CHECK_OK(hsd_sched_add_device(s, p, "cpu:0"));
    for (int k = from; k < to; k++) {
        int i = !stagger ? k : k == from ? 1 : k - from <= 1 ? from : k;
        int steps = i == 1 ? steps1 : STEPS;
        struct hsd_sched_params prm = {
            .gen = {.prompt = "a red bicycle", .guidance_scale = 5.0f, .steps = steps,
                    .sampler = HSD_SAMPLER_DPMPP_2M, .width = 64, .height = 64,
                    .seed = (uint64_t)i, .batch_count = 1, .split = -1},
            .k_min = steps, .k_max = steps, .has_lora = 1};
        memcpy(prm.lora_scales, g_scales[i], sizeof g_scales[i]);
        uint64_t id;
        int busy;
        uint32_t retry;
        g_done[i] = 0;
        CHECK_OK(hsd_sched_submit(s, &prm, (void *)(intptr_t)i, &id, &busy, &retry));
        for (int t = 0; stagger && k == from && t < 20000; t++) {
            struct hsd_sched_stats st;
            hsd_sched_get_stats(s, &st);
            if (st.batches >= 1) break;
            usleep(500);
        }
    }
    for (int t = 0; t < 1200; t++) {
        int done = 0;
        pthread_mutex_lock(&g_mu);
        for (int i = from; i < to; i++) done += g_done[i] != 0;
        pthread_mutex_unlock(&g_mu);
        if (done == to - from) break;
        usleep(25 * 1000);
    }
    struct hsd_sched_stats st;
    hsd_sched_get_stats(s, &st);
    hsd_sched_destroy(s);
    for (int i = from; i < to; i++) CHECKF(g_done[i] == 1, "request %d did not finish", i);
    return st.batches;
}

static uint64_t run(struct hsd_pipeline *p, int from, int to) {
    return run_ex(p, from, to, STEPS, 0);
}

static void check_batcher(struct hsd_pipeline *p) {
    static float alone[N][4 * 8 * 8];
    for (int i = 0; i < N; i++) {
        uint64_t b = run(p, i, i + 1);
        CHECKF(b == STEPS, "request %d alone took %llu batches", i, (unsigned long long)b);
        memcpy(alone[i], g_lat[i], sizeof alone[i]);
    }
    uint64_t b = run(p, 0, N);
    printf("three requests with different LoRA sets: %llu U-Net batches for %d steps\n",
           (unsigned long long)b, STEPS);
    // Submitted within microseconds, admitted (text encoding) together:
    // fewer batches than steps x requests means calls were shared.
    CHECKF(b < N * STEPS, "the requests did not share their U-Net calls (%llu batches)",
           (unsigned long long)b);
    for (int i = 0; i < N; i++) {
        char what[64];
        snprintf(what, sizeof what, "request %d batched vs alone", i);
        CHECK_CLOSE(what, g_lat[i], alone[i], 256, 1e-5);
    }
    CHECK(hsd_compare(alone[0], alone[1], 256).max_abs_err > 1e-2);

    // Request 1 (no LoRA: resident slots where the backend has them) runs
    // 24 steps and is stepping when 0 and 2 (LoRAs) join: the shared
    // batches take the per-step path, request 1's state comes back from its
    // slot first. Every request still ends as alone.
    enum { LONG = 24 };
    uint64_t b1 = run_ex(p, 1, 2, LONG, 0);
    CHECKF(b1 == LONG, "request 1 alone took %llu batches", (unsigned long long)b1);
    static float long1[4 * 8 * 8];
    memcpy(long1, g_lat[1], sizeof long1);
    b = run_ex(p, 0, N, LONG, 1);
    printf("request 1 resident, then LoRA requests joining: %llu U-Net batches for %d calls\n",
           (unsigned long long)b, LONG + 2 * STEPS);
    CHECKF(b < LONG + 2 * STEPS, "the late requests did not share calls (%llu batches)",
           (unsigned long long)b);
    CHECK_CLOSE("request 1 joined by LoRA requests vs alone", g_lat[1], long1, 256, 1e-5);
    CHECK_CLOSE("request 0 joining a resident request vs alone", g_lat[0], alone[0], 256, 1e-5);
    CHECK_CLOSE("request 2 joining a resident request vs alone", g_lat[2], alone[2], 256, 1e-5);
}

static enum hsd_status roundtrip(struct hsd_wire_msg *out, const struct hsd_wire_msg *m,
                                 void **buf) {
    size_t len;
    enum hsd_status s = hsd_wire_encode_alloc(buf, &len, m);
    if (s) return s;
    enum hsd_wire_error code;
    return hsd_wire_decode(out, &code, *buf, len);
}

static void check_wire(void) {
    struct hsd_wire_msg m = {.type = HSD_WIRE_GENERATE, .request_id = 7};
    struct hsd_wire_generate *g = &m.u.generate;
    *g = (struct hsd_wire_generate){.seed = 1, .width = 64, .height = 64, .steps = 4,
                                    .k_min = 2, .k_max = 2, .cfg_scale = 5.0f};
    g->prompt.text = (struct hsd_wire_str){"a", 1};
    struct hsd_wire_msg d;
    void *buf = NULL;
    CHECK_OK(roundtrip(&d, &m, &buf));
    CHECK(d.u.generate.n_loras == 0);  // an old client's GENERATE: no list
    free(buf);
    g->flags = HSD_WIRE_GEN_LORAS;
    g->n_loras = 2;
    g->loras[0] = (struct hsd_wire_lora){{"kohya", 5}, 0.8f};
    g->loras[1] = (struct hsd_wire_lora){{"peft", 4}, -1.5f};
    buf = NULL;
    CHECK_OK(roundtrip(&d, &m, &buf));
    CHECK(d.u.generate.n_loras == 2 && d.u.generate.loras[1].scale == -1.5f &&
          d.u.generate.loras[0].name.n == 5 && !memcmp(d.u.generate.loras[0].name.p, "kohya", 5));
    free(buf);
    // Refused: the same name twice, a scale out of range, an empty name,
    // a list without the flag.
    const struct hsd_wire_lora bad[3][2] = {{{{"a", 1}, 1.0f}, {{"a", 1}, 0.5f}},
                                            {{{"a", 1}, 17.0f}, {{"b", 1}, 1.0f}},
                                            {{{"", 0}, 1.0f}, {{"b", 1}, 1.0f}}};
    for (int i = 0; i < 4; i++) {
        if (i < 3) memcpy(g->loras, bad[i], sizeof bad[i]);
        else g->flags = 0;
        size_t len;
        buf = NULL;
        enum hsd_status s = hsd_wire_encode_alloc(&buf, &len, &m);
        CHECKF(s != HSD_OK, "bad LoRA list %d encoded", i);
        hsd_clear_error();
        free(buf);
    }
}

int main(void) {
    char model[600], kohya[600], peft[600];
    snprintf(model, sizeof model, "%s/pipeline/large", HSD_TEST_DATA);
    snprintf(kohya, sizeof kohya, "%s/lora/kohya.safetensors", HSD_TEST_DATA);
    snprintf(peft, sizeof peft, "%s/lora/peft.safetensors", HSD_TEST_DATA);
    const struct hsd_lora_spec loras[2] = {{"kohya", kohya}, {"peft", peft}};
    static const int buckets[1] = {8};
    struct hsd_pipeline_config pc = {.model = model, .threads = 1, .row_buckets = buckets,
                                     .n_row_buckets = 1, .loras = loras, .n_loras = 2};
    struct hsd_pipeline *p = NULL;
    CHECK_OK(hsd_pipeline_load(&p, &pc));
    if (p) check_batcher(p);
    check_wire();
    hsd_pipeline_free(p);
    return hsd_test_finish();
}
