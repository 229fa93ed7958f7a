// The metrics HTTP server (metrics_http.h): libmicrohttpd with an internal
// thread pool, poll(), a connection cap and an idle timeout.
#include "metrics_http.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "service.h"

struct hsd_metrics_http {
    struct MHD_Daemon *d;
    struct hsd_metrics_source src;
};

static enum MHD_Result on_http(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_len, void **ctx) {
    const struct hsd_metrics_source *src = cls;
    (void)version, (void)upload, (void)upload_len, (void)ctx;
    struct MHD_Response *r;
    enum MHD_Result ret;
    if (strcmp(method, "GET") || strcmp(url, "/metrics")) {
        static const char nf[] = "not found: GET /metrics\n";
        r = MHD_create_response_from_buffer(sizeof nf - 1, (void *)nf, MHD_RESPMEM_PERSISTENT);
        ret = MHD_queue_response(c, MHD_HTTP_NOT_FOUND, r);
        MHD_destroy_response(r);
        return ret;
    }
    struct hsd_sched_stats st;
    hsd_sched_get_stats(src->sched, &st);
    uint64_t errors[64] = {0};
    int n_codes = src->n_codes < 64 ? src->n_codes : 64;
    pthread_mutex_lock(src->mu);
    memcpy(errors, src->errors, (size_t)n_codes * sizeof *errors);
    pthread_mutex_unlock(src->mu);
    struct hsd_sched_device_stats devs[32];
    int n_devs = hsd_sched_device_count(src->sched);
    if (n_devs > 32) n_devs = 32;
    for (int i = 0; i < n_devs; i++)
        if (hsd_sched_get_device_stats(src->sched, i, &devs[i])) n_devs = i;
    char *text = hsd_service_metrics_text(&st, devs, n_devs, errors, n_codes);
    if (!text) return MHD_NO;
    r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4");
    ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}


enum hsd_status hsd_metrics_http_start(struct hsd_metrics_http **out, int port,
                                       const struct hsd_metrics_source *src,
                                       const struct hsd_metrics_http_opts *opts) {
    *out = NULL;
    int threads = opts && opts->threads > 0 ? opts->threads : 2;
    int conns = opts && opts->max_conns > 0 ? opts->max_conns : 16;
    int timeout = opts && opts->timeout_s > 0 ? opts->timeout_s : 10;
    if (port <= 0 || port > 65535)
        return hsd_fail(HSD_ERR_INVALID_ARG, "metrics port %d is not in 1..65535", port);
    // A pool thread's share of the cap must be at least one connection.
    if (conns < threads) conns = threads;
    struct hsd_metrics_http *h = calloc(1, sizeof *h);
    if (!h) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    h->src = *src;
    // poll(), not epoll: with MHD_USE_EPOLL (edge-triggered) libmicrohttpd
    // 0.9.75 left connections whose bytes and FIN came before the accept
    // unread until the idle timeout, so a backlog of dead slowloris
    // connections drained 16 per 10 s (tests/cli/serve_slowloris.sh);
    // poll() drains it at once. Both are free of select()'s FD_SETSIZE
    // ceiling, and poll() over a capped handful of sockets costs nothing.
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    h->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_http, &h->src,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)conns,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)timeout,
                            // A GET needs a few hundred bytes of buffer, not MHD's 32 KiB.
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)8192,
                            MHD_OPTION_END);
    if (!h->d) {
        free(h);
        return hsd_fail(HSD_ERR_IO, "cannot serve metrics on port %d (in use?)", port);
    }
    *out = h;
    return HSD_OK;
}

void hsd_metrics_http_stop(struct hsd_metrics_http *h) {
    if (!h) return;
    MHD_stop_daemon(h->d);
    free(h);
}
