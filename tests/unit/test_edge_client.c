// hsd_edge_ask_cloud against a scripted fake service on ipc:// (loopback
// only): the service checks every request with hsd_auth_check (as a real
// one does) and answers each GENERATE with the next scripted action. The
// client must retry BUSY / REPLAYED / SHUTTING_DOWN / timeouts with a fresh
// request id, nonce and socket, honour retry hints, fail at once on
// BAD_REQUEST and UNAUTHENTICATED with the service's text, refuse a bad
// RESULT, CANCEL what it stopped waiting for, fail over between endpoints,
// and report LOCAL when the deadline or the retries run out or the service
// says EXPIRED. Every wait is bounded (whole test < 20 s).
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "edge/edge.h"
#include "testutil.h"

static const char k_keys[] =
    "edge-1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
static const char k_wrong_keys[] =  // same id, another secret
    "edge-1 ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";

enum action { A_RESULT, A_ERROR, A_SWALLOW, A_BAD_RESULT };
struct step {
    enum action a;
    uint16_t code;
    uint32_t retry_after_ms;
    const char *text;
};

#define MAX_SEEN 16
struct fake {
    struct hsd_net_server *srv;
    struct hsd_auth *auth;
    struct hsd_pipeline *cloud;
    const struct step *script;
    int n_script;
    atomic_int stop;
    // What it saw (GENERATEs that passed auth, in order).
    int n_gen, n_cancel, n_refused;
    uint64_t ids[MAX_SEEN], cancelled[MAX_SEEN];
    uint8_t nonces[MAX_SEEN][HSD_WIRE_NONCE_SIZE];
    uint32_t deadlines[MAX_SEEN];
    double at_ms[MAX_SEEN];
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void reply(struct fake *f, const struct hsd_net_route *to, const struct hsd_wire_msg *m) {
    void *buf = NULL;
    size_t len;
    CHECK_OK(hsd_wire_encode_alloc(&buf, &len, m));
    if (buf) CHECK_OK(hsd_net_server_reply(f->srv, to, buf, len));
    free(buf);
}

static void reply_error(struct fake *f, const struct hsd_net_route *to, uint64_t id,
                        uint16_t code, uint32_t retry, const char *text) {
    uint8_t buf[HSD_WIRE_ERROR_MAX_SIZE];
    size_t len;
    CHECK_OK(hsd_wire_encode_error(buf, sizeof buf, &len, id, (enum hsd_wire_error)code, retry,
                                   "%s", text ? text : ""));
    CHECK_OK(hsd_net_server_reply(f->srv, to, buf, len));
}

static void handle(struct fake *f, struct hsd_net_msg *in) {
    const struct hsd_auth_key *key;
    enum hsd_wire_error code;
    uint32_t retry = 0;
    struct hsd_wire_frame fr;
    uint64_t rid = 0;
    if (hsd_wire_decode_frame(&fr, &code, in->data, in->len) == HSD_OK) rid = fr.request_id;
    if (hsd_auth_check(f->auth, in->data, in->len, hsd_auth_now_ms(), &key, &code, &retry)) {
        f->n_refused++;
        reply_error(f, &in->route, rid, code, retry, hsd_last_error());
        return;
    }
    struct hsd_wire_msg m;
    if (hsd_wire_decode(&m, &code, in->data, in->len)) {
        reply_error(f, &in->route, rid, code, 0, hsd_last_error());
        return;
    }
    if (m.type == HSD_WIRE_CANCEL) {
        if (f->n_cancel < MAX_SEEN) f->cancelled[f->n_cancel++] = m.u.cancel.target;
        struct hsd_wire_msg ack = {.type = HSD_WIRE_CANCEL_ACK, .request_id = m.request_id};
        ack.u.cancel_ack.target = m.u.cancel.target;
        reply(f, &in->route, &ack);
        return;
    }
    CHECK(m.type == HSD_WIRE_GENERATE);
    int i = f->n_gen++;
    if (i < MAX_SEEN) {
        f->ids[i] = m.request_id;
        memcpy(f->nonces[i], m.auth.nonce, HSD_WIRE_NONCE_SIZE);
        f->deadlines[i] = m.u.generate.deadline_ms;
        f->at_ms[i] = now_ms();
    }
    const struct step *s = &f->script[i < f->n_script ? i : f->n_script - 1];
    if (s->a == A_SWALLOW) return;
    if (s->a == A_ERROR) {
        reply_error(f, &in->route, m.request_id, s->code, s->retry_after_ms, s->text);
        return;
    }
    struct hsd_wire_msg res;
    void *store = NULL;
    CHECK_OK(hsd_edge_reference_result(&res, &store, f->cloud, m.request_id, &m.u.generate));
    if (!store) return;
    if (s->a == A_BAD_RESULT) res.u.result.k_used = (uint16_t)(res.u.result.k_used + 1);
    res.u.result.device_ms = 12.5;
    reply(f, &in->route, &res);
    free(store);
}

static void *serve(void *p) {
    struct fake *f = p;
    while (!atomic_load(&f->stop)) {
        struct hsd_net_msg in;
        enum hsd_net_wait w;
        if (hsd_net_server_recv(f->srv, &in, 50, &w) != HSD_OK || w != HSD_NET_GOT) continue;
        handle(f, &in);
        hsd_net_msg_release(&in);
    }
    return NULL;
}

static char g_dir[64], g_ep[128], g_dead[128];
static struct hsd_pipeline *g_cloud, *g_edge;
static struct hsd_auth *g_server_keys, *g_client_keys, *g_wrong_keys;

struct run {
    enum hsd_status st;
    struct hsd_edge_cloud_info info;
    double ms;
    char err[512];
};

// One hsd_edge_ask_cloud against a fresh fake service with `script`.
static struct run run_case(struct fake *f, const struct step *script, int n,
                           const struct hsd_edge_client_opts *o, struct hsd_edge_request *r) {
    memset(f, 0, sizeof *f);
    f->auth = g_server_keys;
    f->cloud = g_cloud;
    f->script = script;
    f->n_script = n;
    const char *eps[1] = {g_ep};
    struct run out = {0};
    pthread_t th;
    int served = script != NULL;
    if (served) {
        CHECK_OK(hsd_net_server_open(&f->srv, NULL, eps, 1, NULL));
        if (!f->srv) return out;
        pthread_create(&th, NULL, serve, f);
    }
    struct hsd_edge_expect e;
    hsd_edge_expect_from(&e, g_edge);
    struct hsd_edge_handover h;
    double t0 = now_ms();
    out.st = hsd_edge_ask_cloud(&h, &out.info, r, o, &e);
    out.ms = now_ms() - t0;
    snprintf(out.err, sizeof out.err, "%s", out.st ? hsd_last_error() : "");
    if (out.st == HSD_OK && out.info.outcome == HSD_EDGE_CLOUD) {
        CHECK(h.latent && h.k_used == r->k_max && h.device_ms == 12.5);
        CHECK(f->n_gen > 0 && f->ids[f->n_gen - 1] == out.info.request_id);
    } else {
        CHECK(h.latent == NULL);
    }
    hsd_edge_handover_free(&h);
    if (served) {
        atomic_store(&f->stop, 1);
        pthread_join(th, NULL);
        usleep(20000);  // let the last reply leave before closing
        hsd_net_server_close(f->srv);
    }
    printf("  -> %s, outcome %s, %d attempt(s), %.0f ms%s%s%s%s\n", hsd_status_str(out.st),
           out.info.outcome == HSD_EDGE_CLOUD ? "CLOUD" : "LOCAL", out.info.attempts, out.ms,
           out.err[0] ? "; error: " : "", out.err, out.info.reason[0] ? "; reason: " : "",
           out.info.reason);
    return out;
}

static int distinct_attempts(const struct fake *f) {
    for (int i = 0; i < f->n_gen && i < MAX_SEEN; i++)
        for (int j = 0; j < i; j++)
            if (f->ids[i] == f->ids[j] || !memcmp(f->nonces[i], f->nonces[j], HSD_WIRE_NONCE_SIZE))
                return 0;
    return 1;
}

int main(void) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/pipeline/large", HSD_TEST_DATA);
    struct hsd_pipeline_config pc = {.model = dir, .threads = 1};
    CHECK_OK(hsd_pipeline_load(&g_cloud, &pc));
    snprintf(dir, sizeof dir, "%s/pipeline/edge", HSD_TEST_DATA);
    pc.model = dir;
    CHECK_OK(hsd_pipeline_load(&g_edge, &pc));
    CHECK_OK(hsd_auth_parse(&g_server_keys, k_keys, strlen(k_keys), "server keys", NULL));
    CHECK_OK(hsd_auth_parse(&g_client_keys, k_keys, strlen(k_keys), "client keys", NULL));
    CHECK_OK(hsd_auth_parse(&g_wrong_keys, k_wrong_keys, strlen(k_wrong_keys), "wrong keys", NULL));
    snprintf(g_dir, sizeof g_dir, "/tmp/hsd_edge_client_XXXXXX");
    CHECK(mkdtemp(g_dir) != NULL);
    snprintf(g_ep, sizeof g_ep, "ipc://%s/cloud.ipc", g_dir);
    snprintf(g_dead, sizeof g_dead, "ipc://%s/nobody.ipc", g_dir);
    if (!g_cloud || !g_edge || !g_server_keys || !g_client_keys || !g_wrong_keys)
        return hsd_test_finish();

    struct hsd_edge_request r = {
        .gen = {.prompt = "a red cube", .negative_prompt = "blurry", .guidance_scale = 7.5f,
                .steps = 4, .split = -1, .sampler = HSD_SAMPLER_DPMPP_2M, .width = 64,
                .height = 64, .seed = 9, .batch_count = 1},
        .k_min = 2, .k_max = 2, .deadline_ms = 8000};
    const char *eps[2] = {g_ep, NULL};
    struct hsd_edge_client_opts o = {.endpoints = eps, .n_endpoints = 1,
                                     .key = hsd_auth_find(g_client_keys, "edge-1"),
                                     .timeout_ms = 2000, .retries = 4, .backoff_ms = 20,
                                     .backoff_max_ms = 100};
    struct fake f;
    struct run x;

    printf("BUSY (hint 150 ms), REPLAYED, then RESULT:\n");
    static const struct step busy[] = {{A_ERROR, HSD_WIRE_E_BUSY, 150, "queue full"},
                                       {A_ERROR, HSD_WIRE_E_REPLAYED, 0, "nonce seen"},
                                       {A_RESULT, 0, 0, NULL}};
    x = run_case(&f, busy, 3, &o, &r);
    CHECK(x.st == HSD_OK && x.info.outcome == HSD_EDGE_CLOUD && x.info.attempts == 3);
    CHECK(f.n_gen == 3 && f.n_refused == 0 && distinct_attempts(&f));
    CHECKF(f.at_ms[1] - f.at_ms[0] >= 150, "retry hint not honoured: %.0f ms",
           f.at_ms[1] - f.at_ms[0]);
    CHECK(f.deadlines[0] > 0 && f.deadlines[0] <= 8000 && f.deadlines[2] < f.deadlines[0]);

    printf("BAD_REQUEST: fails at once with the service's text:\n");
    static const struct step badreq[] = {
        {A_ERROR, HSD_WIRE_E_BAD_REQUEST, 0, "width 4096 over max_pixels"}};
    x = run_case(&f, badreq, 1, &o, &r);
    CHECK(x.st == HSD_ERR_INVALID_ARG && x.info.attempts == 1 && f.n_gen == 1);
    CHECK(strstr(x.err, "BAD_REQUEST") && strstr(x.err, "width 4096 over max_pixels"));

    printf("wrong secret: UNAUTHENTICATED, no retry:\n");
    struct hsd_edge_client_opts wrong = o;
    wrong.key = hsd_auth_find(g_wrong_keys, "edge-1");
    static const struct step ok[] = {{A_RESULT, 0, 0, NULL}};
    x = run_case(&f, ok, 1, &wrong, &r);
    CHECK(x.st == HSD_ERR_INVALID_ARG && x.info.attempts == 1 && f.n_refused == 1 && f.n_gen == 0);
    CHECK(strstr(x.err, "UNAUTHENTICATED") != NULL);

    printf("unsigned request to a service with keys: UNAUTHENTICATED:\n");
    struct hsd_edge_client_opts unsig = o;
    unsig.key = NULL;
    x = run_case(&f, ok, 1, &unsig, &r);
    CHECK(x.st == HSD_ERR_INVALID_ARG && strstr(x.err, "UNAUTHENTICATED") && f.n_gen == 0);

    printf("a RESULT that does not match the request:\n");
    static const struct step badres[] = {{A_BAD_RESULT, 0, 0, NULL}};
    x = run_case(&f, badres, 1, &o, &r);
    CHECK(x.st == HSD_ERR_FORMAT && strstr(x.err, "k_used 3 outside") && x.info.attempts == 1);

    printf("no reply twice (timeout 200 ms, 1 retry): CANCELs, then LOCAL:\n");
    struct hsd_edge_client_opts quick = o;
    quick.timeout_ms = 200;
    quick.retries = 1;
    static const struct step swallow[] = {{A_SWALLOW, 0, 0, NULL}};
    x = run_case(&f, swallow, 1, &quick, &r);
    CHECK(x.st == HSD_OK && x.info.outcome == HSD_EDGE_LOCAL && x.info.attempts == 2);
    CHECK(f.n_gen == 2 && distinct_attempts(&f) && strstr(x.info.reason, "no reply within 200 ms"));
    CHECKF(f.n_cancel == 2 && f.cancelled[0] == f.ids[0] && f.cancelled[1] == f.ids[1],
           "cancels: %d", f.n_cancel);

    printf("SHUTTING_DOWN until the retries run out:\n");
    struct hsd_edge_client_opts two = o;
    two.retries = 2;
    static const struct step down[] = {{A_ERROR, HSD_WIRE_E_SHUTTING_DOWN, 0, "draining"}};
    x = run_case(&f, down, 1, &two, &r);
    CHECK(x.st == HSD_OK && x.info.outcome == HSD_EDGE_LOCAL && x.info.attempts == 3);
    CHECK(strstr(x.info.reason, "3 attempt(s) failed") && strstr(x.info.reason, "draining"));

    printf("EXPIRED: LOCAL at once:\n");
    static const struct step expired[] = {{A_ERROR, HSD_WIRE_E_EXPIRED, 0, "deadline passed"}};
    x = run_case(&f, expired, 1, &o, &r);
    CHECK(x.st == HSD_OK && x.info.outcome == HSD_EDGE_LOCAL && x.info.attempts == 1);

    printf("a hint past the deadline: LOCAL without sleeping it out:\n");
    struct hsd_edge_request soon = r;
    soon.deadline_ms = 600;
    static const struct step longbusy[] = {{A_ERROR, HSD_WIRE_E_RATE_LIMITED, 5000, "slow down"}};
    x = run_case(&f, longbusy, 1, &o, &soon);
    CHECK(x.st == HSD_OK && x.info.outcome == HSD_EDGE_LOCAL && x.ms < 600);
    CHECK(strstr(x.info.reason, "deadline") && strstr(x.info.reason, "RATE_LIMITED"));

    printf("no service at all (deadline 600 ms): LOCAL at the deadline:\n");
    struct hsd_edge_client_opts many = quick;
    many.retries = 50;
    x = run_case(&f, NULL, 0, &many, &soon);
    CHECK(x.st == HSD_OK && x.info.outcome == HSD_EDGE_LOCAL && x.ms >= 500 && x.ms < 1500);
    CHECK(strstr(x.info.reason, "deadline") != NULL);

    printf("two endpoints, the first dead: the live one answers:\n");
    const char *two_eps[2] = {g_dead, g_ep};
    struct hsd_edge_client_opts fo = o;
    fo.endpoints = two_eps;
    fo.n_endpoints = 2;
    for (int i = 0; i < 3; i++) {
        x = run_case(&f, ok, 1, &fo, &r);
        CHECK(x.st == HSD_OK && x.info.outcome == HSD_EDGE_CLOUD);
    }

    printf("a malformed endpoint is an error, not a fallback:\n");
    const char *bad_eps[1] = {"bogus://x"};
    struct hsd_edge_client_opts be = o;
    be.endpoints = bad_eps;
    x = run_case(&f, NULL, 0, &be, &r);
    CHECK(x.st != HSD_OK && x.info.attempts == 1);

    hsd_auth_free(g_server_keys);
    hsd_auth_free(g_client_keys);
    hsd_auth_free(g_wrong_keys);
    hsd_pipeline_free(g_cloud);
    hsd_pipeline_free(g_edge);
    rmdir(g_dir);
    return hsd_test_finish();
}
