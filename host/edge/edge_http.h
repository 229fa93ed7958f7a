// `hsd edge --http`: the edge as an AUTOMATIC1111-compatible HTTP daemon
// (docs/edge-http.md). Every image goes through hsd_edge_run, the path of
// `hsd edge`: the cloud's first k steps, the edge's rest, or the edge
// alone when no cloud answers.
//
//   http_server.c   libmicrohttpd: connections, body cap, suspend/resume
//   a1111_api.c     routes /sdapi/v1/... and / to their answers
//   a1111_request.c JSON bodies -> requests and settings (fuzzed)
//   a1111_extra_networks.c  the prompt's <lora:NAME:SCALE> tags (fuzzed)
//   a1111_txt2img.c one queued txt2img: images, PNG, base64, info; progress
//   http_queue.c    the bounded job queue and its one worker thread
//   web_page.c      the page at / (web_page.html, embedded at build time)
#ifndef HSD_EDGE_EDGE_HTTP_H
#define HSD_EDGE_EDGE_HTTP_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "edge/edge.h"

struct hsd_edge_http_config {
    const char *addr;  // IPv4 address to bind (default 127.0.0.1)
    int port;  // 0: any free port (printed when ready)
    // The edge pipeline, used by the worker only. Choosing another VAE
    // (POST /sdapi/v1/options sd_vae) reloads it from *pc with that VAE and
    // frees the old one: *p may change; the caller frees the last *p.
    struct hsd_pipeline **p;
    const struct hsd_pipeline_config *pc;  // how *p was loaded (model, vae, threads, backend)
    const struct hsd_edge_client_opts *client;
    struct hsd_edge_request base;  // k range, deadline, priority, cloud model; the
                                   // rest of each request comes from its body
    int no_fallback;
    int queue_limit;  // requests waiting or running; a full queue answers 503 (<= 0: 8)
    size_t max_body;  // bytes of a request body; more answers 413 (0: 1 MiB)
    int max_connections;  // (<= 0: 64)
    int timeout_s;  // idle connection timeout (<= 0: 60)
};

// Serves until *stop becomes non-zero (a signal handler sets it), then
// refuses new work, lets the running request finish, and returns. Prints
// "hsd edge: serving http://ADDR:PORT" on stdout once listening.
enum hsd_status hsd_edge_http_run(const struct hsd_edge_http_config *c,
                                  const volatile sig_atomic_t *stop);

#endif
