// The A1111 side of `hsd edge --http` (edge_http.h): the daemon's state
// shared by the HTTP threads and the generation worker, the routes, and
// one queued txt2img. Answers follow A1111's modules/api/api.py: errors
// are {"error", "detail", "body", "errors"} with the message in "detail";
// /progress computes progress and eta_relative as its progressapi does.
#ifndef HSD_EDGE_A1111_API_H
#define HSD_EDGE_A1111_API_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "edge/a1111_request.h"
#include "edge/edge_http.h"
#include "edge/http_queue.h"

// A1111's shared.state, as much of it as /progress shows.
struct hsd_a1111_progress {
    int job_count;  // images of the running request; 0 = idle
    int job_no;  // images finished
    int sampling_step, sampling_steps;  // U-Net calls of the current image (cloud's included)
    double time_start;  // monotonic seconds
    int interrupted;
    char job_timestamp[16];  // %Y%m%d%H%M%S (UTC)
};

struct hsd_a1111 {
    const struct hsd_edge_http_config *cfg;
    pthread_mutex_t mu;  // settings, progress, last_job_s
    struct hsd_a1111_settings settings;
    struct hsd_a1111_progress progress;
    double last_job_s;  // duration of the last request (Retry-After estimate)
    char loaded_vae[HSD_A1111_TITLE_MAX];  // the VAE *cfg->p decodes with (worker only)
    atomic_int interrupt;  // POST /interrupt; cleared when a request starts
    struct hsd_http_queue queue;
};

struct hsd_http_reply {
    int status;
    char *body;  // malloc'd, or static when is_static
    size_t len;
    int is_static;
    const char *content_type;
    int retry_after_s;  // > 0: a Retry-After header
};

// Called from the worker when a queued request has its answer; takes
// ownership of reply->body.
typedef void (*hsd_http_done_fn)(void *user, struct hsd_http_reply *reply);

enum hsd_status hsd_a1111_init(struct hsd_a1111 *a, const struct hsd_edge_http_config *cfg);
// Stops the queue (waiting requests get 503) and frees.
void hsd_a1111_free(struct hsd_a1111 *a);

// Answers one complete request. Returns 1 with *reply set; or 0 when it was
// queued (txt2img): done(user, reply) follows from the worker thread.
int hsd_a1111_route(struct hsd_a1111 *a, const char *method, const char *url, const char *body,
                    size_t len, struct hsd_http_reply *reply, hsd_http_done_fn done, void *user);

// A1111's error body for status with message msg.
void hsd_a1111_error(struct hsd_http_reply *reply, int status, const char *msg);
// A JSON reply (steals j; 500 if it cannot be serialised).
void hsd_a1111_json(struct hsd_http_reply *reply, int status, json_t *j);

// Runs a parsed txt2img on the calling (worker) thread and sets *reply.
void hsd_a1111_txt2img_run(struct hsd_a1111 *a, struct hsd_a1111_txt2img *t,
                           struct hsd_http_reply *reply);

// The page at / (web_page.c).
extern const unsigned char hsd_edge_web_page[];
extern const size_t hsd_edge_web_page_len;

#endif
