// The HTTP side of `hsd edge --http` (edge_http.h) on libmicrohttpd: one
// internal polling thread (epoll where there is one) accepts up to
// max_connections, drops idle ones after timeout_s, collects each body up
// to max_body bytes (a larger one is read to its end, discarded and
// answered 413, so the client sees the answer rather than a reset), and
// hands complete requests to the routes (a1111_api.c). A queued txt2img
// suspends its connection (MHD_suspend_connection) so the polling thread
// keeps serving /progress and /interrupt; the worker resumes it with the
// answer. libmicrohttpd's manual: "Suspending connections".
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "edge/a1111_api.h"

// A body over the cap is read and discarded up to this much more; past
// it the connection is closed (no answer).
#define DRAIN_MAX ((size_t)64 << 20)

struct server {
    struct hsd_a1111 a;
    size_t max_body;
    atomic_int pending;  // queued requests whose connection has not completed
};

struct conn {
    struct server *srv;
    struct MHD_Connection *c;
    char *body;
    size_t len, cap, drained;
    int too_big;
    // Between the HTTP thread and the worker (a queued txt2img).
    pthread_mutex_t mu;
    int queued, finished, suspended;
    struct hsd_http_reply reply;
};

static void conn_free(struct conn *k) {
    if (k->queued) atomic_fetch_sub(&k->srv->pending, 1);
    if (k->finished && !k->reply.is_static) free(k->reply.body);
    pthread_mutex_destroy(&k->mu);
    free(k->body);
    free(k);
}

// From the worker: the queued request's answer.
static void on_done(void *user, struct hsd_http_reply *reply) {
    struct conn *k = user;
    pthread_mutex_lock(&k->mu);
    k->reply = *reply;
    k->finished = 1;
    if (k->suspended) {
        k->suspended = 0;
        MHD_resume_connection(k->c);
    }
    pthread_mutex_unlock(&k->mu);
}

// Queues *reply on c; the body passes to libmicrohttpd.
static enum MHD_Result send_reply(struct MHD_Connection *c, struct hsd_http_reply *reply) {
    struct MHD_Response *r = MHD_create_response_from_buffer(
        reply->len, reply->body, reply->is_static ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_FREE);
    if (!r) return MHD_NO;
    reply->body = NULL;
    reply->is_static = 1;  // no longer ours
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, reply->content_type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (reply->retry_after_s > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", reply->retry_after_s);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)reply->status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result too_large(struct MHD_Connection *c, const struct server *s) {
    char msg[128];
    snprintf(msg, sizeof msg, "request body too large (the limit is %zu bytes)", s->max_body);
    struct hsd_http_reply reply;
    hsd_a1111_error(&reply, 413, msg);
    return send_reply(c, &reply);
}

static int append(struct conn *k, const char *data, size_t n) {
    if (k->len + n + 1 > k->cap) {
        size_t cap = k->cap ? k->cap : 4096;
        while (cap < k->len + n + 1) cap *= 2;
        char *p = realloc(k->body, cap);
        if (!p) return 0;
        k->body = p;
        k->cap = cap;
    }
    memcpy(k->body + k->len, data, n);
    k->len += n;
    k->body[k->len] = '\0';
    return 1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    (void)version;
    struct server *s = cls;
    struct conn *k = *con_cls;
    if (!k) {  // headers only: set up, look at the announced length
        if (!(k = calloc(1, sizeof *k))) return MHD_NO;
        k->srv = s;
        k->c = c;
        pthread_mutex_init(&k->mu, NULL);
        *con_cls = k;
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->max_body) {
            k->too_big = 1;
            // A client that waits for "100 Continue" gets the 413 instead
            // and sends nothing (RFC 9110 10.1.1); others are drained.
            const char *ex = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
            if (ex && !strcasecmp(ex, "100-continue")) return too_large(c, s);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (!k->too_big && k->len + n > s->max_body) {
            k->too_big = 1;
            k->drained = k->len;
        }
        if (k->too_big) {
            k->drained += n;
            return k->drained > s->max_body + DRAIN_MAX ? MHD_NO : MHD_YES;
        }
        return append(k, upload, n) ? MHD_YES : MHD_NO;
    }
    if (k->queued) return send_reply(c, &k->reply);  // resumed with its answer
    if (k->too_big) return too_large(c, s);
    struct hsd_http_reply reply;
    if (hsd_a1111_route(&s->a, method, url, k->body ? k->body : "", k->len, &reply, on_done, k))
        return send_reply(c, &reply);
    atomic_fetch_add(&s->pending, 1);
    pthread_mutex_lock(&k->mu);
    k->queued = 1;
    int now = k->finished;  // the worker may already be done
    if (!now) {
        MHD_suspend_connection(c);
        k->suspended = 1;
    }
    pthread_mutex_unlock(&k->mu);
    return now ? send_reply(c, &k->reply) : MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode why) {
    (void)cls;
    (void)c;
    (void)why;
    if (*con_cls) conn_free(*con_cls);
    *con_cls = NULL;
}

static void sleep_ms(int ms) {
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

enum hsd_status hsd_edge_http_run(const struct hsd_edge_http_config *c,
                                  const volatile sig_atomic_t *stop) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
    const char *addr = c->addr ? c->addr : "127.0.0.1";
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
        return hsd_fail(HSD_ERR_INVALID_ARG, "--http: '%s' is not an IPv4 address", addr);
    struct server *s = calloc(1, sizeof *s);
    if (!s) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    s->max_body = c->max_body ? c->max_body : (size_t)1 << 20;
    atomic_init(&s->pending, 0);
    enum hsd_status st = hsd_a1111_init(&s->a, c);
    if (st) {
        free(s);
        return st;
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
        on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)(c->max_connections > 0 ? c->max_connections : 64),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(c->timeout_s > 0 ? c->timeout_s : 60),
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (!d) {
        hsd_a1111_free(&s->a);
        free(s);
        return hsd_fail(HSD_ERR_IO, "--http: cannot listen on %s:%d (in use, or not an address "
                                    "of this machine)", addr, c->port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("hsd edge: serving http://%s:%u (AUTOMATIC1111 API at /sdapi/v1, page at /)\n", addr,
           info ? info->port : (unsigned)c->port);
    fflush(stdout);
    while (!*stop) sleep_ms(100);
    // Drain: no new connections; waiting requests get 503, the running one
    // ends; then their answers get a few seconds to leave.
    MHD_socket ls = MHD_quiesce_daemon(d);
    hsd_http_queue_stop(&s->a.queue);
    for (int i = 0; i < 50 && atomic_load(&s->pending) > 0; i++) sleep_ms(100);
    MHD_stop_daemon(d);
    if (ls != MHD_INVALID_SOCKET) close(ls);
    hsd_a1111_free(&s->a);
    free(s);
    return HSD_OK;
}
