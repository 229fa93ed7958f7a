// The HTTP daemon's job queue: a bounded FIFO drained by one worker thread
// (the edge has one pipeline; generations run one at a time, as A1111's
// queue_lock makes them). A full queue refuses at once (503 upstream).
#ifndef HSD_EDGE_HTTP_QUEUE_H
#define HSD_EDGE_HTTP_QUEUE_H

#include <pthread.h>

#include "core/status.h"

struct hsd_http_job {
    void (*run)(struct hsd_http_job *j);  // on the worker thread
    void (*cancel)(struct hsd_http_job *j);  // instead of run, when the queue stops
    struct hsd_http_job *next;
};

struct hsd_http_queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct hsd_http_job *head, *tail;
    int waiting, running, limit, stopping;
    pthread_t worker;
    int started;
};

enum hsd_status hsd_http_queue_start(struct hsd_http_queue *q, int limit);
// 1: queued; 0: full (or stopping), j untouched.
int hsd_http_queue_push(struct hsd_http_queue *q, struct hsd_http_job *j);
// Requests waiting plus the one running.
int hsd_http_queue_depth(struct hsd_http_queue *q);
// Cancels what waits, lets the running job end, joins the worker.
void hsd_http_queue_stop(struct hsd_http_queue *q);

#endif
