// Issue 15, finding 7: handle_generate (scheduler/service.c) wrote
// pd->sched_id after hsd_sched_submit returned, but the request's on_done
// may already have run on a worker thread and freed pd. This test makes
// that ordering certain: the link wraps hsd_sched_submit (-Wl,--wrap) so it
// returns only after the request's RESULT went out (a k = 0 request ends
// right after its text encoding). The old code then wrote into freed
// memory: AddressSanitizer (the HSD_SANITIZE build that CI runs) reports a
// heap-use-after-free and the test fails; without ASan it would pass
// silently either way, so this test belongs to the sanitizer job.
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/transport.h"
#include "net/wire.h"
#include "service.h"
#include "testutil.h"
#include "wire_roundtrip.h"

static atomic_int g_done;  // RESULT/ERROR replies the service sent (on_done ran)

enum hsd_status __real_hsd_sched_submit(struct hsd_sched *s, const struct hsd_sched_params *prm,
                                        void *client, uint64_t *id, int *busy,
                                        uint32_t *retry_after_ms);
enum hsd_status __wrap_hsd_sched_submit(struct hsd_sched *s, const struct hsd_sched_params *prm,
                                        void *client, uint64_t *id, int *busy,
                                        uint32_t *retry_after_ms);

// The real submit, then wait (up to 5 s) until the batcher has finished the
// request, so on_done has run (and freed the service's record) before this
// returns to handle_generate.
enum hsd_status __wrap_hsd_sched_submit(struct hsd_sched *s, const struct hsd_sched_params *prm,
                                        void *client, uint64_t *id, int *busy,
                                        uint32_t *retry_after_ms) {
    struct hsd_sched_stats st0;
    hsd_sched_get_stats(s, &st0);
    enum hsd_status r = __real_hsd_sched_submit(s, prm, client, id, busy, retry_after_ms);
    if (r != HSD_OK) return r;
    for (int i = 0; i < 500; i++) {
        struct hsd_sched_stats st;
        hsd_sched_get_stats(s, &st);
        if (st.done + st.failed > st0.done + st0.failed) break;
        usleep(10 * 1000);
    }
    usleep(20 * 1000);  // on_done runs after the counters move
    atomic_fetch_add(&g_done, 1);
    return r;
}

static struct hsd_pipeline *g_pipe;
static volatile sig_atomic_t g_stop;
static char g_ep[128];

static void *serve(void *arg) {
    (void)arg;
    const char *eps[1] = {g_ep};
    struct hsd_service_opts o = {.endpoints = eps, .n_endpoints = 1, .allow_no_auth = 1,
                                 .grace_ms = 1000};
    o.sched = (struct hsd_sched_opts){.max_batch_rows = 4, .queue_limit = 8, .max_active = 4,
                                      .admit_batch = 1, .adaptive_threshold = 1000};
    if (hsd_service_run(&g_pipe, 1, &o, &g_stop)) fprintf(stderr, "%s\n", hsd_last_error());
    return NULL;
}

int main(void) {
    char dir[] = "/tmp/hsd_submit_race_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    snprintf(g_ep, sizeof g_ep, "ipc://%s/s.ipc", dir);
    char model[600];
    snprintf(model, sizeof model, "%s/pipeline/large", HSD_TEST_DATA);
    struct hsd_pipeline_config pc = {.model = model, .threads = 1};
    CHECK_OK(hsd_pipeline_load(&g_pipe, &pc));
    if (!g_pipe) return hsd_test_finish();
    pthread_t t;
    pthread_create(&t, NULL, serve, NULL);
    usleep(300 * 1000);
    int results = 0;
    for (int i = 0; i < 3; i++) {
        struct hsd_wire_msg m = {.type = HSD_WIRE_GENERATE, .request_id = 100 + (uint64_t)i};
        struct hsd_wire_generate *g = &m.u.generate;
        g->width = g->height = 64;
        g->steps = 2;
        g->k_min = g->k_max = 0;  // done right after the text encoder
        g->cfg_scale = 1.0f;
        g->prompt.kind = g->negative.kind = HSD_WIRE_PROMPT_TEXT;
        g->prompt.text = (struct hsd_wire_str){"race", 4};
        void *buf = NULL;
        size_t len = 0;
        CHECK_OK(hsd_wire_encode_alloc(&buf, &len, &m));
        uint64_t rid;
        results += hsd_test_roundtrip(g_ep, buf, len, 20000, &rid, NULL) == HSD_WIRE_RESULT &&
                   rid == m.request_id;
        free(buf);
    }
    g_stop = 1;
    pthread_join(t, NULL);
    printf("3 requests whose on_done ran before submit returned: %d RESULT, %d waited for\n",
           results, atomic_load(&g_done));
    CHECK(results == 3 && atomic_load(&g_done) == 3);
    hsd_pipeline_free(g_pipe);
    char sock[160];
    snprintf(sock, sizeof sock, "%s/s.ipc", dir);
    unlink(sock);
    rmdir(dir);
    return hsd_test_finish();
}
