// host/net/transport over nanomsg, loopback only (ipc:// in a temp dir and
// tcp://127.0.0.1 on a random high port): a raw REP server takes several
// requests from several REQ clients before replying, replies out of order
// and from another thread, and each client gets its own reply; a message
// over NN_RCVMAXSIZE is refused without hurting the server; timeouts and
// stop fire; a reply to a client that left is dropped quietly; and a wire
// message makes the trip both ways. Every wait is bounded (test < 10 s).
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "net/transport.h"
#include "net/wire.h"
#include "testutil.h"

#define N_CLIENTS 5

static char g_dir[64];
static char g_ipc[128], g_tcp[64];

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

// Binds ipc + tcp on a random high port (retrying if the port is taken).
static struct hsd_net_server *open_server(const struct hsd_net_opts *o) {
    struct hsd_net_server *s = NULL;
    for (int attempt = 0; attempt < 20; attempt++) {
        int port = 20000 + (int)(((unsigned)getpid() * 7919u + (unsigned)attempt * 104729u +
                                  (unsigned)time(NULL)) %
                                 40000u);
        snprintf(g_tcp, sizeof g_tcp, "tcp://127.0.0.1:%d", port);
        const char *eps[2] = {g_ipc, g_tcp};
        if (hsd_net_server_open(&s, NULL, eps, 2, o) == HSD_OK) return s;
        printf("  bind attempt %d: %s\n", attempt, hsd_last_error());
    }
    CHECKF(0, "could not bind a server: %s", hsd_last_error());
    return NULL;
}

static struct hsd_net_client *open_client(const char *ep1, const char *ep2) {
    const char *eps[2] = {ep1, ep2};
    struct hsd_net_client *c = NULL;
    // send waits this long for the (background) connection.
    struct hsd_net_opts o = {.resend_ivl_ms = 5000, .send_timeout_ms = 1000};
    enum hsd_status s = hsd_net_client_open(&c, NULL, eps, ep2 ? 2 : 1, &o);
    CHECKF(s == HSD_OK, "client open: %s", hsd_last_error());
    return c;
}

// ---------------------------------------------------------------------------
// Several in flight, replies out of order from another thread

struct collect {
    struct hsd_net_server *srv;
    int want, got;
    struct hsd_net_route routes[N_CLIENTS];
    char bodies[N_CLIENTS][32];
};

static void *collector(void *p) {
    struct collect *c = p;
    double end = now_ms() + 5000;
    while (c->got < c->want && now_ms() < end) {
        struct hsd_net_msg m;
        enum hsd_net_wait w;
        if (hsd_net_server_recv(c->srv, &m, 500, &w) != HSD_OK) break;
        if (w != HSD_NET_GOT) continue;
        c->routes[c->got] = m.route;  // a plain value: outlives the message
        snprintf(c->bodies[c->got], sizeof c->bodies[0], "%.*s", (int)m.len, (char *)m.data);
        c->got++;
        hsd_net_msg_release(&m);
    }
    return NULL;
}

static void test_out_of_order(struct hsd_net_server *srv) {
    printf("out-of-order replies to %d clients (ipc, tcp, both)\n", N_CLIENTS);
    struct hsd_net_client *cl[N_CLIENTS];
    cl[0] = open_client(g_ipc, NULL);
    cl[1] = open_client(g_ipc, NULL);
    cl[2] = open_client(g_tcp, NULL);
    cl[3] = open_client(g_tcp, NULL);
    cl[4] = open_client(g_ipc, g_tcp);  // load-balanced over both
    for (int i = 0; i < N_CLIENTS; i++)
        if (!cl[i]) return;

    struct collect c = {.srv = srv, .want = N_CLIENTS};
    pthread_t th;
    pthread_create(&th, NULL, collector, &c);
    for (int i = 0; i < N_CLIENTS; i++) {
        char req[16];
        int n = snprintf(req, sizeof req, "req-%d", i);
        CHECK_OK(hsd_net_client_send(cl[i], req, (size_t)n));
    }
    pthread_join(th, NULL);
    CHECKF(c.got == N_CLIENTS, "server received %d of %d requests before replying", c.got,
           N_CLIENTS);

    // Reply from this thread, last received first.
    for (int k = c.got - 1; k >= 0; k--) {
        char rep[48];
        int n = snprintf(rep, sizeof rep, "rep-%s", c.bodies[k]);
        CHECK_OK(hsd_net_server_reply(srv, &c.routes[k], rep, (size_t)n));
    }
    int right = 0;
    for (int i = 0; i < N_CLIENTS; i++) {
        struct hsd_net_msg m;
        enum hsd_net_wait w;
        CHECK_OK(hsd_net_client_recv(cl[i], &m, 3000, &w));
        char want[32];
        snprintf(want, sizeof want, "rep-req-%d", i);
        int ok = w == HSD_NET_GOT && m.len == strlen(want) && memcmp(m.data, want, m.len) == 0;
        CHECKF(ok, "client %d: got %s '%.*s', want '%s'", i,
               w == HSD_NET_GOT ? "reply" : "no reply", w == HSD_NET_GOT ? (int)m.len : 0,
               w == HSD_NET_GOT ? (char *)m.data : "", want);
        right += ok;
        hsd_net_msg_release(&m);
    }
    printf("  %d/%d clients got their own reply\n", right, N_CLIENTS);
    for (int i = 0; i < N_CLIENTS; i++) hsd_net_client_close(cl[i]);
}

// ---------------------------------------------------------------------------
// Oversized message, timeouts, gone clients, stop

static int serve_one(struct hsd_net_server *srv, int timeout_ms, const char *reply) {
    struct hsd_net_msg m;
    enum hsd_net_wait w;
    if (hsd_net_server_recv(srv, &m, timeout_ms, &w) != HSD_OK || w != HSD_NET_GOT) return 0;
    int ok = hsd_net_server_reply(srv, &m.route, reply, strlen(reply)) == HSD_OK;
    hsd_net_msg_release(&m);
    return ok;
}

static void test_oversized(struct hsd_net_server *srv, int max_msg) {
    printf("oversized message (server NN_RCVMAXSIZE %d)\n", max_msg);
    const char *eps[2] = {g_ipc, g_tcp};
    for (int e = 0; e < 2; e++) {
        struct hsd_net_client *big = open_client(eps[e], NULL);
        struct hsd_net_client *small = open_client(eps[e], NULL);
        if (!big || !small) return;
        size_t n = (size_t)max_msg * 2;
        char *buf = calloc(1, n);
        CHECK_OK(hsd_net_client_send(big, buf, n));
        free(buf);
        // The server never sees it; nanomsg drops that connection.
        struct hsd_net_msg m;
        enum hsd_net_wait w;
        double t0 = now_ms();
        CHECK_OK(hsd_net_server_recv(srv, &m, 300, &w));
        CHECKF(w == HSD_NET_TIMEOUT, "%s: oversized message reached the server", eps[e]);
        if (w == HSD_NET_GOT) hsd_net_msg_release(&m);
        CHECK_OK(hsd_net_client_recv(big, &m, 200, &w));
        CHECK(w == HSD_NET_TIMEOUT);
        // ... and keeps serving everyone else.
        CHECK_OK(hsd_net_client_send(small, "ping", 4));
        CHECKF(serve_one(srv, 2000, "pong"),
               "%s: server stopped serving after an oversized message", eps[e]);
        CHECK_OK(hsd_net_client_recv(small, &m, 2000, &w));
        CHECK(w == HSD_NET_GOT && m.len == 4 && memcmp(m.data, "pong", 4) == 0);
        hsd_net_msg_release(&m);
        printf("  %s: refused %zu bytes, then served a small request (%.0f ms)\n", eps[e], n,
               now_ms() - t0);
        hsd_net_client_close(big);
        hsd_net_client_close(small);
    }
}

static void test_timeouts(struct hsd_net_server *srv) {
    printf("timeouts\n");
    struct hsd_net_msg m;
    enum hsd_net_wait w;
    double t0 = now_ms();
    CHECK_OK(hsd_net_server_recv(srv, &m, 250, &w));
    double dt = now_ms() - t0;
    CHECKF(w == HSD_NET_TIMEOUT && dt >= 240 && dt < 1500, "server recv 250 ms: %s after %.0f ms",
           w == HSD_NET_TIMEOUT ? "timeout" : "no timeout", dt);
    printf("  server recv(250 ms) timed out after %.0f ms\n", dt);
    t0 = now_ms();
    CHECK_OK(hsd_net_server_recv(srv, &m, 0, &w));
    CHECK(w == HSD_NET_TIMEOUT && now_ms() - t0 < 100);

    // A client whose request nobody answers.
    struct hsd_net_client *c = open_client(g_tcp, NULL);
    if (!c) return;
    CHECK_OK(hsd_net_client_send(c, "unanswered", 10));
    CHECK_OK(hsd_net_server_recv(srv, &m, 2000, &w));  // take it, never reply
    CHECK(w == HSD_NET_GOT);
    hsd_net_msg_release(&m);
    t0 = now_ms();
    CHECK_OK(hsd_net_client_recv(c, &m, 300, &w));
    dt = now_ms() - t0;
    CHECKF(w == HSD_NET_TIMEOUT && dt >= 290 && dt < 2000, "client recv 300 ms: after %.0f ms", dt);
    printf("  client recv(300 ms) timed out after %.0f ms\n", dt);
    hsd_net_client_close(c);

    // No server at all: connect succeeds (background), recv times out.
    char nowhere[160];
    snprintf(nowhere, sizeof nowhere, "ipc://%s/nobody.ipc", g_dir);
    c = open_client(nowhere, NULL);
    if (!c) return;
    CHECK_OK(hsd_net_client_send(c, "hello?", 6));
    CHECK_OK(hsd_net_client_recv(c, &m, 200, &w));
    CHECK(w == HSD_NET_TIMEOUT);
    hsd_net_client_close(c);
}

static void test_gone_client(struct hsd_net_server *srv) {
    printf("reply to a client that left\n");
    struct hsd_net_client *c = open_client(g_ipc, NULL);
    if (!c) return;
    CHECK_OK(hsd_net_client_send(c, "bye", 3));
    struct hsd_net_msg m;
    enum hsd_net_wait w;
    CHECK_OK(hsd_net_server_recv(srv, &m, 2000, &w));
    CHECK(w == HSD_NET_GOT);
    struct hsd_net_route r = m.route;
    hsd_net_msg_release(&m);
    hsd_net_client_close(c);
    usleep(50 * 1000);
    CHECK_OK(hsd_net_server_reply(srv, &r, "late", 4));  // dropped by nanomsg, no error
    struct hsd_net_route junk = {.len = 3};
    CHECK(hsd_net_server_reply(srv, &junk, "x", 1) == HSD_ERR_INVALID_ARG);
    // Still serving.
    c = open_client(g_ipc, NULL);
    CHECK_OK(hsd_net_client_send(c, "again", 5));
    CHECK(serve_one(srv, 2000, "ok"));
    CHECK_OK(hsd_net_client_recv(c, &m, 2000, &w));
    CHECK(w == HSD_NET_GOT && m.len == 2);
    hsd_net_msg_release(&m);
    hsd_net_client_close(c);
}

// A GENERATE encoded, sent over tcp, decoded by the server, answered with an
// ERROR that the client decodes: the wire and transport layers together.
static void test_wire_trip(struct hsd_net_server *srv) {
    printf("wire message round trip\n");
    struct hsd_net_client *c = open_client(g_tcp, NULL);
    if (!c) return;
    struct hsd_wire_msg g = {0};
    g.type = HSD_WIRE_GENERATE;
    g.request_id = 0xfeedull;
    g.u.generate.width = g.u.generate.height = 512;
    g.u.generate.steps = 25;
    g.u.generate.k_min = g.u.generate.k_max = 10;
    g.u.generate.cfg_scale = 7.5f;
    g.u.generate.prompt.text = (struct hsd_wire_str){"a lighthouse", 12};
    void *req;
    size_t n;
    CHECK_OK(hsd_wire_encode_alloc(&req, &n, &g));
    CHECK_OK(hsd_net_client_send(c, req, n));
    free(req);

    struct hsd_net_msg m;
    enum hsd_net_wait w;
    CHECK_OK(hsd_net_server_recv(srv, &m, 2000, &w));
    CHECK(w == HSD_NET_GOT);
    if (w != HSD_NET_GOT) return;
    struct hsd_wire_msg d;
    enum hsd_wire_error code;
    CHECK_OK(hsd_wire_decode(&d, &code, m.data, m.len));
    CHECK(d.type == HSD_WIRE_GENERATE && d.u.generate.steps == 25);
    uint8_t eb[HSD_WIRE_ERROR_MAX_SIZE];
    size_t en;
    CHECK_OK(hsd_wire_encode_error(eb, sizeof eb, &en, d.request_id, HSD_WIRE_E_BUSY, 250,
                                   "queue full (%d waiting)", 64));
    CHECK_OK(hsd_net_server_reply(srv, &m.route, eb, en));
    hsd_net_msg_release(&m);

    CHECK_OK(hsd_net_client_recv(c, &m, 2000, &w));
    CHECK(w == HSD_NET_GOT);
    if (w == HSD_NET_GOT) {
        CHECK_OK(hsd_wire_decode(&d, &code, m.data, m.len));
        CHECK(d.type == HSD_WIRE_ERROR && d.request_id == 0xfeedull &&
              d.u.error.code == HSD_WIRE_E_BUSY);
        CHECK(d.u.error.retry_after_ms == 250);
        printf("  GENERATE -> ERROR %s \"%.*s\"\n", hsd_wire_error_name(d.u.error.code),
               (int)d.u.error.text.n, d.u.error.text.p);
    }
    hsd_net_msg_release(&m);
    hsd_net_client_close(c);
}

// Issue 15, finding 1: a reply to an abandoned request reaches the client
// after it sent a new one. nanomsg 1.1.5's REQ socket dropped such a reply
// but kept a reference to its freed chunk, and the next receive aborted
// (chunk.c:231) or close freed it twice. The client must drop it, take the
// current request's reply, and close cleanly, many times over.
static void test_stale_reply(struct hsd_net_server *srv) {
    printf("stale replies after abandoned requests\n");
    int rounds = 50, good = 0;
    for (int i = 0; i < rounds; i++) {
        struct hsd_net_client *c = open_client(i % 2 ? g_tcp : g_ipc, NULL);
        if (!c) return;
        struct hsd_net_msg a, b, m;
        enum hsd_net_wait wa, wb, w;
        CHECK_OK(hsd_net_client_send(c, "old", 3));
        CHECK_OK(hsd_net_server_recv(srv, &a, 2000, &wa));
        CHECK_OK(hsd_net_client_send(c, "new", 3));  // abandons "old"
        CHECK_OK(hsd_net_server_recv(srv, &b, 2000, &wb));
        if (wa != HSD_NET_GOT || wb != HSD_NET_GOT) {
            CHECKF(0, "round %d: server did not get both requests", i);
            hsd_net_client_close(c);
            return;
        }
        // The stale reply first, then the current one, then the stale one again.
        CHECK_OK(hsd_net_server_reply(srv, &a.route, "stale", 5));
        CHECK_OK(hsd_net_server_reply(srv, &b.route, "fresh", 5));
        CHECK_OK(hsd_net_server_reply(srv, &a.route, "stale", 5));
        hsd_net_msg_release(&a);
        hsd_net_msg_release(&b);
        CHECK_OK(hsd_net_client_recv(c, &m, 2000, &w));
        int ok = w == HSD_NET_GOT && m.len == 5 && memcmp(m.data, "fresh", 5) == 0;
        CHECKF(ok, "round %d: got %.*s", i, (int)m.len, m.data ? (const char *)m.data : "");
        good += ok;
        hsd_net_msg_release(&m);
        if (i % 3 == 0) {
            // A third request on the same socket: the late stale copy is dropped too.
            CHECK_OK(hsd_net_client_send(c, "third", 5));
            CHECK(serve_one(srv, 2000, "3rd"));
            CHECK_OK(hsd_net_client_recv(c, &m, 2000, &w));
            CHECK(w == HSD_NET_GOT && m.len == 3 && memcmp(m.data, "3rd", 3) == 0);
            hsd_net_msg_release(&m);
        } else if (i % 3 == 1) {
            usleep(2000);  // let the stale copy arrive before close
        }
        hsd_net_client_close(c);
    }
    printf("  %d/%d clients took the current reply and closed cleanly\n", good, rounds);
}

struct stopper {
    struct hsd_net_server *srv;
    enum hsd_net_wait what;
    double waited_ms;
};

static void *blocked_receiver(void *p) {
    struct stopper *s = p;
    struct hsd_net_msg m;
    double t0 = now_ms();
    hsd_net_server_recv(s->srv, &m, -1, &s->what);  // forever, until stopped
    s->waited_ms = now_ms() - t0;
    return NULL;
}

static void test_stop(struct hsd_net_server *srv) {
    printf("stop wakes a receiver blocked forever\n");
    struct stopper s = {.srv = srv, .what = HSD_NET_GOT};
    pthread_t th;
    pthread_create(&th, NULL, blocked_receiver, &s);
    usleep(150 * 1000);
    double t0 = now_ms();
    hsd_net_server_stop(srv);
    pthread_join(th, NULL);
    double dt = now_ms() - t0;
    CHECKF(s.what == HSD_NET_STOPPED && dt < 1000, "stop: what %d after %.0f ms", (int)s.what, dt);
    printf("  receiver returned STOPPED %.0f ms after stop\n", dt);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/hsd-net-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(g_ipc, sizeof g_ipc, "ipc://%s/hsd.ipc", g_dir);
    const int max_msg = 64 * 1024;
    struct hsd_net_opts o = {.max_msg = max_msg, .send_timeout_ms = 1000};
    struct hsd_net_server *srv = open_server(&o);
    if (srv) {
        printf("server on %s and %s\n", g_ipc, g_tcp);
        test_out_of_order(srv);
        test_oversized(srv, max_msg);
        test_timeouts(srv);
        test_gone_client(srv);
        test_wire_trip(srv);
        test_stale_reply(srv);
        test_stop(srv);
        hsd_net_server_close(srv);
    }
    // A second server on the same tcp port fails with a clear message.
    struct hsd_net_server *a = open_server(NULL);
    if (a) {
        const char *eps[1] = {g_tcp};
        struct hsd_net_server *b = NULL;
        enum hsd_status s = hsd_net_server_open(&b, NULL, eps, 1, NULL);
        printf("second bind of %s: %s\n", g_tcp, hsd_last_error());
        CHECK(s == HSD_ERR_IO && b == NULL && strstr(hsd_last_error(), g_tcp));
        hsd_net_server_close(b);
        hsd_net_server_close(a);
    }
    char sock[160];
    snprintf(sock, sizeof sock, "%s/hsd.ipc", g_dir);
    unlink(sock);
    rmdir(g_dir);
    return hsd_test_finish();
}
