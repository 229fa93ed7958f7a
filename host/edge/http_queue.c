// The bounded job queue of `hsd edge --http` (http_queue.h).
#include "edge/http_queue.h"

#include <string.h>

static void *worker(void *arg) {
    struct hsd_http_queue *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->head && !q->stopping) pthread_cond_wait(&q->cv, &q->mu);
        if (!q->head) break;  // stopping and drained
        struct hsd_http_job *j = q->head;
        q->head = j->next;
        if (!q->head) q->tail = NULL;
        q->waiting--;
        int stopping = q->stopping;
        q->running = !stopping;
        pthread_mutex_unlock(&q->mu);
        if (stopping)
            j->cancel(j);
        else
            j->run(j);
        pthread_mutex_lock(&q->mu);
        q->running = 0;
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

enum hsd_status hsd_http_queue_start(struct hsd_http_queue *q, int limit) {
    memset(q, 0, sizeof *q);
    q->limit = limit;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    if (pthread_create(&q->worker, NULL, worker, q) != 0) {
        pthread_cond_destroy(&q->cv);
        pthread_mutex_destroy(&q->mu);
        return hsd_fail(HSD_ERR_INTERNAL, "cannot start the generation thread");
    }
    q->started = 1;
    return HSD_OK;
}

int hsd_http_queue_push(struct hsd_http_queue *q, struct hsd_http_job *j) {
    pthread_mutex_lock(&q->mu);
    int ok = !q->stopping && q->waiting + q->running < q->limit;
    if (ok) {
        j->next = NULL;
        if (q->tail)
            q->tail->next = j;
        else
            q->head = j;
        q->tail = j;
        q->waiting++;
        pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    return ok;
}

int hsd_http_queue_depth(struct hsd_http_queue *q) {
    pthread_mutex_lock(&q->mu);
    int n = q->waiting + q->running;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void hsd_http_queue_stop(struct hsd_http_queue *q) {
    if (!q->started) return;
    pthread_mutex_lock(&q->mu);
    q->stopping = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->worker, NULL);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    q->started = 0;
}
