// Issue 10, item 5: each GENERATE is decoded once and tokenized once, and
// never tokenized on the service's receive thread. The link wraps
// (-Wl,--wrap) the functions that would betray a second pass, counting the
// calls made on the receive thread (the thread in hsd_net_server_recv):
//   hsd_wire_decode        once per message (the one decode)
//   hsd_wire_decode_frame  0: auth re-checking the frame (hsd_auth_check)
//   hsd_wire_peek_generate 0: auth re-reading GENERATE's sizes
//   hsd_clip_tokenize      0 there; one call per text side in all (a CFG
//                          text request: prompt + negative = 2)
// Before, a signed CFG text GENERATE cost 1 + 1 + 1 decodes there and 2
// tokenizer calls there plus 2 more at admission.
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/auth.h"
#include "net/transport.h"
#include "net/wire.h"
#include "service.h"
#include "text/clip_tokenizer.h"
#include "testutil.h"
#include "wire_roundtrip.h"

static pthread_t g_recv_thread;
static atomic_int g_have_recv;
static atomic_int g_decode, g_frame, g_peek_gen, g_tok_recv, g_tok_all;

static int on_recv_thread(void) {
    return atomic_load(&g_have_recv) && pthread_equal(pthread_self(), g_recv_thread);
}

#define WRAP_DECL(ret, name, params) \
    ret __real_##name params;        \
    ret __wrap_##name params;

WRAP_DECL(enum hsd_status, hsd_net_server_recv,
          (struct hsd_net_server * s, struct hsd_net_msg *msg, int timeout_ms,
           enum hsd_net_wait *what))
enum hsd_status __wrap_hsd_net_server_recv(struct hsd_net_server *s, struct hsd_net_msg *msg,
                                           int timeout_ms, enum hsd_net_wait *what) {
    g_recv_thread = pthread_self();
    atomic_store(&g_have_recv, 1);
    return __real_hsd_net_server_recv(s, msg, timeout_ms, what);
}

WRAP_DECL(enum hsd_status, hsd_wire_decode,
          (struct hsd_wire_msg * m, enum hsd_wire_error *code, const void *buf, size_t len))
enum hsd_status __wrap_hsd_wire_decode(struct hsd_wire_msg *m, enum hsd_wire_error *code,
                                       const void *buf, size_t len) {
    if (on_recv_thread()) atomic_fetch_add(&g_decode, 1);
    return __real_hsd_wire_decode(m, code, buf, len);
}

WRAP_DECL(enum hsd_status, hsd_wire_decode_frame,
          (struct hsd_wire_frame * f, enum hsd_wire_error *code, const void *buf, size_t len))
enum hsd_status __wrap_hsd_wire_decode_frame(struct hsd_wire_frame *f, enum hsd_wire_error *code,
                                             const void *buf, size_t len) {
    if (on_recv_thread()) atomic_fetch_add(&g_frame, 1);
    return __real_hsd_wire_decode_frame(f, code, buf, len);
}

WRAP_DECL(enum hsd_status, hsd_wire_peek_generate,
          (const struct hsd_wire_frame *f, uint16_t *width, uint16_t *height, uint16_t *steps))
enum hsd_status __wrap_hsd_wire_peek_generate(const struct hsd_wire_frame *f, uint16_t *width,
                                              uint16_t *height, uint16_t *steps) {
    if (on_recv_thread()) atomic_fetch_add(&g_peek_gen, 1);
    return __real_hsd_wire_peek_generate(f, width, height, steps);
}

WRAP_DECL(enum hsd_status, hsd_clip_tokenize,
          (const struct hsd_clip_tokenizer *t, const char *text, size_t len, int32_t *ids,
           int max_len, int *n_used))
enum hsd_status __wrap_hsd_clip_tokenize(const struct hsd_clip_tokenizer *t, const char *text,
                                         size_t len, int32_t *ids, int max_len, int *n_used) {
    if (on_recv_thread()) atomic_fetch_add(&g_tok_recv, 1);
    atomic_fetch_add(&g_tok_all, 1);
    return __real_hsd_clip_tokenize(t, text, len, ids, max_len, n_used);
}

#define SECRET "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static struct hsd_pipeline *g_pipe;
static volatile sig_atomic_t g_stop;
static char g_ep[128], g_keys[128];

static void *serve(void *arg) {
    (void)arg;
    const char *eps[1] = {g_ep};
    struct hsd_service_opts o = {.endpoints = eps, .n_endpoints = 1, .keys_file = g_keys,
                                 .grace_ms = 1000};
    o.sched = (struct hsd_sched_opts){.max_batch_rows = 4, .queue_limit = 8, .max_active = 4,
                                      .admit_batch = 2, .adaptive_threshold = 1000};
    if (hsd_service_run(&g_pipe, 1, &o, &g_stop)) fprintf(stderr, "%s\n", hsd_last_error());
    return NULL;
}

// One signed GENERATE (CFG on, k = 0: done right after the text encoder);
// ids non-NULL: the prompt as token ids, the negative as text. Returns 1 on
// a RESULT.
static int generate(const struct hsd_auth_key *key, uint64_t rid, const int32_t *ids, int n_ids) {
    struct hsd_wire_msg m = {.type = HSD_WIRE_GENERATE, .flags = HSD_WIRE_FLAG_AUTH,
                             .request_id = rid};
    struct hsd_wire_generate *g = &m.u.generate;
    g->width = g->height = 64;
    g->steps = 2;
    g->cfg_scale = 7.5f;
    g->prompt.kind = ids ? HSD_WIRE_PROMPT_TOKENS : HSD_WIRE_PROMPT_TEXT;
    if (ids) {
        g->prompt.tokens = ids;
        g->prompt.n_tokens = (uint32_t)n_ids;
    } else {
        g->prompt.text = (struct hsd_wire_str){"a red bicycle", 13};
    }
    g->negative.kind = HSD_WIRE_PROMPT_TEXT;
    g->negative.text = (struct hsd_wire_str){"blurry", 6};
    void *buf = NULL;
    size_t len = 0;
    CHECK_OK(hsd_wire_encode_alloc(&buf, &len, &m));
    if (buf) CHECK_OK(hsd_auth_sign(buf, len, key, hsd_auth_now_ms()));
    uint64_t got_rid;
    uint16_t err;
    int type = hsd_test_roundtrip(g_ep, buf, len, 20000, &got_rid, &err);
    if (type == HSD_WIRE_ERROR)
        printf("  request %llu: ERROR %s\n", (unsigned long long)rid, hsd_wire_error_name(err));
    free(buf);
    return type == HSD_WIRE_RESULT && got_rid == rid;
}

int main(void) {
    char dir[] = "/tmp/hsd_parse_once_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    snprintf(g_ep, sizeof g_ep, "ipc://%s/s.ipc", dir);
    snprintf(g_keys, sizeof g_keys, "%s/keys", dir);
    const char *line = "edge " SECRET "\n";
    FILE *kf = fopen(g_keys, "w");
    CHECK(kf != NULL);
    if (!kf) return hsd_test_finish();
    fputs(line, kf);
    fclose(kf);
    chmod(g_keys, 0600);
    struct hsd_auth *cli = NULL;
    CHECK_OK(hsd_auth_parse(&cli, line, strlen(line), "client key", NULL));
    char model[600];
    snprintf(model, sizeof model, "%s/pipeline/large", HSD_TEST_DATA);
    struct hsd_pipeline_config pc = {.model = model, .threads = 1};
    CHECK_OK(hsd_pipeline_load(&g_pipe, &pc));
    if (!g_pipe || !cli) return hsd_test_finish();
    pthread_t t;
    pthread_create(&t, NULL, serve, NULL);
    usleep(300 * 1000);
    enum { N_TEXT = 3 };
    static const int32_t ids[3] = {1, 2, 3};  // inside the tiny model's vocabulary
    int results = 0;
    for (int i = 0; i < N_TEXT; i++) results += generate(hsd_auth_find(cli, "edge"), 10 + i, NULL, 0);
    results += generate(hsd_auth_find(cli, "edge"), 20, ids, 3);
    g_stop = 1;
    pthread_join(t, NULL);
    int n = N_TEXT + 1, want_tok = 2 * N_TEXT + 1;
    printf("%d signed GENERATEs (%d text, 1 ids + text negative), %d RESULT\n", n, N_TEXT,
           results);
    printf("  on the receive thread: %d hsd_wire_decode, %d hsd_wire_decode_frame, "
           "%d hsd_wire_peek_generate, %d hsd_clip_tokenize\n",
           atomic_load(&g_decode), atomic_load(&g_frame), atomic_load(&g_peek_gen),
           atomic_load(&g_tok_recv));
    printf("  hsd_clip_tokenize in all: %d (want %d: one per text side)\n", atomic_load(&g_tok_all),
           want_tok);
    CHECK(results == n);
    CHECK(atomic_load(&g_decode) == n);
    CHECK(atomic_load(&g_frame) == 0 && atomic_load(&g_peek_gen) == 0);
    CHECK(atomic_load(&g_tok_recv) == 0);
    CHECK(atomic_load(&g_tok_all) == want_tok);
    hsd_auth_free(cli);
    hsd_pipeline_free(g_pipe);
    char path[160];
    snprintf(path, sizeof path, "%s/s.ipc", dir);
    unlink(path);
    unlink(g_keys);
    rmdir(dir);
    return hsd_test_finish();
}
