// GET /metrics over HTTP (libmicrohttpd) for `hsd serve --metrics-port`:
// Prometheus text from hsd_service_metrics_text().
//
// Bounded so that the metrics port cannot take the service down (issue 15,
// finding 6): its own small thread pool polling with poll() (never
// select(), whose FD_SETSIZE ceiling fails past fd 1023; metrics_http.c
// says why not epoll),
// at most max_conns connections at once (one descriptor each: the
// denoising service keeps the rest of RLIMIT_NOFILE), and an idle
// connection closed after timeout_s without a byte (a slowloris holding
// connections open without finishing its request).
#ifndef HSD_SCHED_METRICS_HTTP_H
#define HSD_SCHED_METRICS_HTTP_H

#include <pthread.h>
#include <stdint.h>

#include "batcher.h"

// Where the numbers come from; copied, so it must only outlive the server.
struct hsd_metrics_source {
    struct hsd_sched *sched;
    pthread_mutex_t *mu;  // guards errors[]
    const uint64_t *errors;  // ERROR replies by code, n_codes of them
    int n_codes;
};

struct hsd_metrics_http_opts {
    int threads;  // 0: 2
    int max_conns;  // 0: 16
    int timeout_s;  // 0: 10
};

struct hsd_metrics_http;

// Serves on TCP `port` (all interfaces) until stopped. opts may be NULL.
enum hsd_status hsd_metrics_http_start(struct hsd_metrics_http **out, int port,
                                       const struct hsd_metrics_source *src,
                                       const struct hsd_metrics_http_opts *opts);
void hsd_metrics_http_stop(struct hsd_metrics_http *h);  // NULL: no-op

#endif
