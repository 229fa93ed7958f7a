// Step-level continuous batching (see batcher.h). One mutex guards the
// request list and counters; U-Net calls and text encoding run without it.
// A request being computed is marked in_flight so no other worker takes it.
#include "batcher.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/assert.h"
#include "core/log.h"

#define MAX_DEVICES 32

struct hsd_sched_req {
    uint64_t id;
    void *client;
    struct hsd_sched_params prm;
    char *prompt, *negative;        // owned copies (prm.gen points here)
    enum hsd_req_state state;
    int in_flight, cancel_requested;
    double t_submit, deadline_at;   // ms (monotonic); deadline 0 = none
    double queue_ms, device_ms;
    int h, w, cfg, clip_skip;
    size_t lat;
    float *latent, *emb;            // emb: [cfg ? 2 : 1, 77, C]: [cond, uncond]
    struct hsd_sampler sampler;
    int sampler_ready;
    enum hsd_sched_error err;
    char err_text[256];
    struct hsd_sched_req *prev, *next;
};

struct device {
    struct hsd_sched *s;
    struct hsd_pipeline *p;
    char name[64];
    char desc[128];                 // the backend's, for logs, STATUS and metrics
    enum hsd_backend_kind kind;
    pthread_t thread;
    int started, healthy, fail_next;
    int cur_batch;                  // requests in the call being computed
    uint64_t batches, image_steps, failures;
    double busy_ms;
    char error[256];                // why it was marked unhealthy
};

struct hsd_sched {
    struct hsd_sched_opts o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct hsd_sched_req *head, *tail;  // arrival order
    int n_queued, n_active;
    uint64_t next_id;
    struct device dev[MAX_DEVICES];
    int n_dev, n_healthy;
    int stopping, aborting, quit;
    struct hsd_sched_stats st;
    double t_start;
};

const double hsd_sched_result_le_s[HSD_SCHED_RESULT_BUCKETS - 1] = {
    0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 300};

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void set_state(struct hsd_sched_req *r, enum hsd_req_event e) {
    enum hsd_req_state was = r->state;
    r->state = hsd_req_transition(r->state, e);
    HSD_DEBUG("request %llu: %s -> %s", (unsigned long long)r->id, hsd_req_state_name(was),
              hsd_req_state_name(r->state));
}

static void unlink_req(struct hsd_sched *s, struct hsd_sched_req *r) {
    if (r->prev) r->prev->next = r->next;
    else s->head = r->next;
    if (r->next) r->next->prev = r->prev;
    else s->tail = r->prev;
    r->prev = r->next = NULL;
}

static void free_req(struct hsd_sched_req *r) {
    if (r->sampler_ready) hsd_sampler_free(&r->sampler);
    free(r->latent);
    free(r->emb);
    free(r->prompt);
    free(r->negative);
    free(r);
}

// Back to QUEUED-with-nothing: an admission whose text encoding failed on
// a lost device is redone from scratch by another one.
static void undo_admission(struct hsd_sched_req *r) {
    if (r->sampler_ready) hsd_sampler_free(&r->sampler);
    r->sampler_ready = 0;
    free(r->latent);
    free(r->emb);
    r->latent = r->emb = NULL;
}

// Takes a device out of the pool for good (under the lock). Its worker
// stops after re-queueing the `n` requests it was computing.
static void mark_unhealthy(struct hsd_sched *s, struct device *d, const char *what,
                           const char *error, int n) {
    d->healthy = 0;
    s->n_healthy--;
    snprintf(d->error, sizeof d->error, "%s", error);
    HSD_WARN("device %s (%s) marked unhealthy: its %s failed: %s; %d request(s) go back to the "
             "queue, %d healthy device(s) left",
             d->name, d->desc, what, d->error, n, s->n_healthy);
}

// A finished request leaves the list under the lock and is reported later,
// outside it, by report().
struct done_list {
    struct hsd_sched_req *items[256];
    int n;
};

static void finalize(struct hsd_sched *s, struct hsd_sched_req *r, enum hsd_req_event e,
                     enum hsd_sched_error err, const char *text, struct done_list *dl) {
    if (r->state == HSD_REQ_QUEUED) s->n_queued--;
    else s->n_active--;
    set_state(r, e);
    r->err = err;
    snprintf(r->err_text, sizeof r->err_text, "%s", text ? text : "");
    switch (r->state) {
    case HSD_REQ_DONE: {
        s->st.done++;
        s->st.device_ms_done += r->device_ms;
        double secs = (now_ms() - r->t_submit) / 1e3;
        int b = 0;
        while (b < HSD_SCHED_RESULT_BUCKETS - 1 && secs > hsd_sched_result_le_s[b]) b++;
        s->st.result_hist[b]++;
        s->st.result_s_sum += secs;
        break;
    }
    case HSD_REQ_CANCELLED: s->st.cancelled++; break;
    case HSD_REQ_EXPIRED: s->st.expired++; break;
    default: s->st.failed++; break;
    }
    unlink_req(s, r);
    HSD_ASSERT(dl->n < (int)(sizeof dl->items / sizeof dl->items[0]));
    dl->items[dl->n++] = r;
}

static void report(struct hsd_sched *s, struct done_list *dl) {
    for (int i = 0; i < dl->n; i++) {
        struct hsd_sched_req *r = dl->items[i];
        int C = 0;
        if (r->emb) C = hsd_pipeline_text_width(s->dev[0].p);
        struct hsd_sched_result res = {
            .state = r->state, .error = r->err, .error_text = r->err_text,
            .k_used = r->sampler_ready ? r->sampler.step : 0, .latent = r->latent,
            .c = hsd_pipeline_latent_channels(s->dev[0].p), .h = r->h, .w = r->w,
            .sampler = r->sampler_ready ? &r->sampler : NULL,
            .cond = r->emb, .uncond = r->emb && r->cfg ? r->emb + (size_t)HSD_TEXT_LEN * C : NULL,
            .emb_c = C, .device_ms = r->device_ms, .queue_ms = r->queue_ms};
        if (s->o.on_done) s->o.on_done(s->o.user, r->id, r->client, &res);
        free_req(r);
    }
    dl->n = 0;
}

// Cancellations and deadlines, for requests no worker is computing.
static void sweep(struct hsd_sched *s, double t, struct done_list *dl) {
    for (struct hsd_sched_req *r = s->head, *nx; r && dl->n < 200; r = nx) {
        nx = r->next;
        if (r->in_flight) continue;
        if (r->cancel_requested)
            finalize(s, r, HSD_REQ_EV_CANCEL, HSD_SCHED_E_CANCELLED, "cancelled", dl);
        else if (r->deadline_at > 0 && t > r->deadline_at)
            finalize(s, r, HSD_REQ_EV_DEADLINE, HSD_SCHED_E_EXPIRED, "deadline passed", dl);
        else if (s->aborting || (s->stopping && r->state == HSD_REQ_QUEUED))
            finalize(s, r, HSD_REQ_EV_FAIL, HSD_SCHED_E_SHUTDOWN,
                     "the service is shutting down", dl);
        else if (s->n_healthy == 0)
            finalize(s, r, HSD_REQ_EV_FAIL, HSD_SCHED_E_INTERNAL, "no healthy device left", dl);
    }
}

// Up to admit_batch queued requests with the same clip skip,
// highest priority first, FIFO within a priority.
static int pick_admissions(struct hsd_sched *s, struct hsd_sched_req **out) {
    int n = 0, room = s->o.max_active - s->n_active;
    if (room > s->o.admit_batch) room = s->o.admit_batch;
    while (n < room) {
        struct hsd_sched_req *best = NULL;
        for (struct hsd_sched_req *r = s->head; r; r = r->next) {
            if (r->state != HSD_REQ_QUEUED || r->in_flight) continue;
            if (n > 0 && r->clip_skip != out[0]->clip_skip) continue;
            if (!best || r->prm.priority > best->prm.priority) best = r;
        }
        if (!best) break;
        best->in_flight = 1;
        out[n++] = best;
    }
    return n;
}

// Each prompt's 77 ids, made once per request on the worker that admits
// it (issue 10 item 5: the receive thread never tokenizes): a text side is
// tokenized and from then on held as ids (a re-admission after a lost
// device does not tokenize again); every id, tokenized or sent, is checked
// against the text encoder's vocabulary (issue 15, finding 4), so a bad
// request fails alone instead of failing its text-encoder batch.
static enum hsd_status request_ids(const struct hsd_pipeline *p, struct hsd_sched_req *r) {
    enum hsd_status s = HSD_OK;
    if (!r->prm.prompt_is_ids) {
        s = hsd_pipeline_tokenize(p, r->prm.prompt_ids, r->prompt, strlen(r->prompt));
        if (s) return hsd_fail_context(s, "prompt: ");
        r->prm.prompt_is_ids = 1;
    }
    if (r->cfg && !r->prm.neg_is_ids) {
        const char *neg = r->negative ? r->negative : "";
        s = hsd_pipeline_tokenize(p, r->prm.neg_ids, neg, strlen(neg));
        if (s) return hsd_fail_context(s, "negative prompt: ");
        r->prm.neg_is_ids = 1;
    }
    s = hsd_pipeline_check_ids(p, r->prm.prompt_ids, HSD_TEXT_LEN, "prompt");
    if (!s && r->cfg) s = hsd_pipeline_check_ids(p, r->prm.neg_ids, HSD_TEXT_LEN, "negative prompt");
    return s;
}

// A failed call's status, with a lost device told apart from a bad request:
// on a device with a sticky error even an allocation fails, and its caller
// reports that as out of memory, which would fail the requests and keep
// the dead device in the pool (seen with the fake GPU of test_sched_faulty
// when its first text encoding planned a fresh arena). The backend's
// synchronize answers HSD_ERR_DEVICE once the device is lost.
static enum hsd_status classify_failure(struct device *d, enum hsd_status st) {
    if (st == HSD_OK || st == HSD_ERR_DEVICE) return st;
    struct hsd_backend *be = hsd_pipeline_backend(d->p);
    if (be && be->ops->synchronize(be) == HSD_ERR_DEVICE) return HSD_ERR_DEVICE;
    return st;
}

// Encodes the prompts of `reqs` in one text-encoder call and sets up their
// latents and samplers. Runs without the lock.
static enum hsd_status admit_compute(struct device *d, struct hsd_sched_req **reqs, int n) {
    struct hsd_pipeline *p = d->p;
    int C = hsd_pipeline_text_width(p);
    size_t per = (size_t)HSD_TEXT_LEN * C;
    int rows = 0;
    for (int i = 0; i < n; i++) rows += reqs[i]->cfg ? 2 : 1;
    float *emb = malloc((size_t)rows * per * sizeof *emb);
    if (!emb) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    enum hsd_status s;
    // Row order per request: [negative, positive] as diffusers encodes them.
    int32_t *ids = malloc((size_t)rows * HSD_TEXT_LEN * sizeof *ids);
    if (!ids) {
        free(emb);
        return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    }
    // Each row's text-encoder LoRAs: its request's (models/lora.h, per row).
    const float **lora = malloc((size_t)rows * sizeof *lora);
    if (!lora) {
        free(emb);
        free(ids);
        return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    }
    for (int i = 0, r = 0; i < n; i++) {
        if (reqs[i]->cfg) {
            lora[r] = reqs[i]->prm.gen.lora_scales;
            memcpy(ids + (size_t)r++ * HSD_TEXT_LEN, reqs[i]->prm.neg_ids,
                   sizeof reqs[i]->prm.neg_ids);
        }
        lora[r] = reqs[i]->prm.gen.lora_scales;
        memcpy(ids + (size_t)r++ * HSD_TEXT_LEN, reqs[i]->prm.prompt_ids,
               sizeof reqs[i]->prm.prompt_ids);
    }
    s = hsd_pipeline_encode_ids_lora(p, emb, ids, rows, reqs[0]->clip_skip, lora);
    free(lora);
    free(ids);
    int r = 0;
    for (int i = 0; i < n && !s; i++) {
        struct hsd_sched_req *q = reqs[i];
        int k = q->cfg ? 2 : 1;
        q->emb = malloc((size_t)k * per * sizeof *q->emb);
        q->latent = malloc(q->lat * sizeof *q->latent);
        if (!q->emb || !q->latent) {
            s = hsd_fail(HSD_ERR_NOMEM, "out of memory");
            break;
        }
        // Stored [cond, uncond] for the RESULT; encoded [uncond, cond].
        if (q->cfg) {
            memcpy(q->emb, emb + (size_t)(r + 1) * per, per * sizeof *emb);
            memcpy(q->emb + per, emb + (size_t)r * per, per * sizeof *emb);
        } else {
            memcpy(q->emb, emb + (size_t)r * per, per * sizeof *emb);
        }
        r += k;
        s = hsd_pipeline_init_image(p, &q->prm.gen, 0, q->latent, &q->sampler);
        if (!s) q->sampler_ready = 1;
    }
    free(emb);
    return s;
}

// The bucket of the longest-waiting runnable request, filled FIFO up to
// max_batch_rows. Returns the number of requests taken.
static int pick_batch(struct hsd_sched *s, struct hsd_sched_req **out, int cap) {
    struct hsd_sched_req *first = NULL;
    for (struct hsd_sched_req *r = s->head; r && !first; r = r->next)
        if ((r->state == HSD_REQ_ADMITTED || r->state == HSD_REQ_RUNNING) && !r->in_flight)
            first = r;
    if (!first) return 0;
    int n = 0, rows = 0;
    for (struct hsd_sched_req *r = first; r && n < cap; r = r->next) {
        if ((r->state != HSD_REQ_ADMITTED && r->state != HSD_REQ_RUNNING) || r->in_flight)
            continue;
        if (r->h != first->h || r->w != first->w) continue;
        int need = r->cfg ? 2 : 1;
        if (n > 0 && rows + need > s->o.max_batch_rows) break;
        r->in_flight = 1;
        out[n++] = r;
        rows += need;
    }
    return n;
}

static int batch_bucket(int rows) {
    int b = 0;
    for (int lim = 1; b < 7 && rows > lim; b++) lim = lim < 2 ? 2 : lim * 2;
    return b;
}

// Leaves at k_max, or at k_min or later while the queue is long
// (load-adaptive split); always when the sampler has no calls left.
static int should_hand_over(const struct hsd_sched *s, const struct hsd_sched_req *r) {
    int step = r->sampler.step;
    if (hsd_sampler_done(&r->sampler) || step >= r->prm.k_max) return 1;
    return step >= r->prm.k_min && s->n_queued >= s->o.adaptive_threshold;
}

static void *worker(void *arg) {
    struct device *d = arg;
    struct hsd_sched *s = d->s;
    struct hsd_sched_req *batch[256];
    struct hsd_denoise_item items[256];
    struct done_list dl = {.n = 0};
    pthread_mutex_lock(&s->mu);
    while (!s->quit && d->healthy) {
        sweep(s, now_ms(), &dl);
        if (dl.n) {
            pthread_mutex_unlock(&s->mu);
            report(s, &dl);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        // 1. Admission: new requests join between steps.
        int n = s->stopping ? 0 : pick_admissions(s, batch);
        if (n > 0) {
            double t = now_ms();
            pthread_mutex_unlock(&s->mu);
            // A request whose prompt does not tokenize or holds an id out of
            // the vocabulary fails alone (its reason kept in err_text).
            struct hsd_sched_req *refused[256];
            int n_ref = 0, m = 0;
            for (int i = 0; i < n; i++) {
                if (request_ids(d->p, batch[i])) {
                    snprintf(batch[i]->err_text, sizeof batch[i]->err_text, "%s",
                             hsd_last_error());
                    refused[n_ref++] = batch[i];
                } else {
                    batch[m++] = batch[i];
                }
            }
            n = m;
            enum hsd_status st = n ? classify_failure(d, admit_compute(d, batch, n)) : HSD_OK;
            double dt = now_ms() - t;
            pthread_mutex_lock(&s->mu);
            for (int i = 0; i < n_ref; i++) {
                char why[sizeof refused[i]->err_text];
                memcpy(why, refused[i]->err_text, sizeof why);
                refused[i]->in_flight = 0;
                finalize(s, refused[i], HSD_REQ_EV_FAIL, HSD_SCHED_E_BAD_REQUEST, why, &dl);
            }
            s->st.busy_ms += dt;
            d->busy_ms += dt;
            if (st) d->failures++;
            if (st == HSD_ERR_DEVICE) {
                // Lost device: the prompts are encoded again elsewhere.
                for (int i = 0; i < n; i++) {
                    undo_admission(batch[i]);
                    batch[i]->in_flight = 0;
                }
                mark_unhealthy(s, d, "text encoding", hsd_last_error(), n);
                break;
            }
            for (int i = 0; i < n; i++) {
                struct hsd_sched_req *r = batch[i];
                r->in_flight = 0;
                r->queue_ms = t - r->t_submit;
                r->device_ms += dt / n;
                if (st) {  // still QUEUED: fails from there
                    finalize(s, r, HSD_REQ_EV_FAIL, HSD_SCHED_E_INTERNAL, hsd_last_error(), &dl);
                    continue;
                }
                s->n_queued--;
                s->n_active++;
                set_state(r, HSD_REQ_EV_ADMIT);
                if (should_hand_over(s, r))
                    finalize(s, r, HSD_REQ_EV_FINISH, HSD_SCHED_OK, NULL, &dl);
            }
            continue;
        }
        // 2. One U-Net call for a bucket of active requests.
        n = pick_batch(s, batch, 256);
        if (n == 0) {
            if (s->stopping && s->n_active == 0 && s->n_queued == 0) break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50 * 1000000L;  // wake for deadlines even when idle
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
            continue;
        }
        int rows = 0;
        for (int i = 0; i < n; i++) {
            struct hsd_sched_req *r = batch[i];
            const float *cond = r->emb;
            const float *uncond = r->cfg ? r->emb + (size_t)HSD_TEXT_LEN * hsd_pipeline_text_width(d->p) : NULL;
            items[i] = (struct hsd_denoise_item){r->latent, &r->sampler, cond, uncond,
                                                 r->prm.gen.guidance_scale,
                                                 r->prm.gen.lora_scales};
            rows += r->cfg ? 2 : 1;
        }
        int h = batch[0]->h, w = batch[0]->w;
        int inject = d->fail_next > 0;
        if (inject) d->fail_next--;
        d->cur_batch = n;
        pthread_mutex_unlock(&s->mu);
        double t = now_ms();
        enum hsd_status st =
            inject ? hsd_fail(HSD_ERR_DEVICE, "%s: injected device failure", d->name)
                   : classify_failure(d, hsd_pipeline_denoise_step(d->p, hsd_pipeline_unet(d->p, 0),
                                                                   items, n, h, w));
        double dt = now_ms() - t;
        pthread_mutex_lock(&s->mu);
        s->st.busy_ms += dt;
        d->busy_ms += dt;
        d->cur_batch = 0;
        if (st) d->failures++;
        if (st == HSD_ERR_DEVICE) {
            // The device is unusable: its batch goes back, unchanged (the
            // samplers only advance after a successful U-Net call,
            // hsd_pipeline_denoise_step), to the healthy devices; this
            // worker stops.
            for (int i = 0; i < n; i++) {
                batch[i]->in_flight = 0;
                set_state(batch[i], HSD_REQ_EV_REQUEUE);
            }
            mark_unhealthy(s, d, "U-Net call", hsd_last_error(), n);
            break;
        }
        if (!st) {
            d->batches++;
            d->image_steps += (uint64_t)n;
        }
        s->st.batches++;
        s->st.batch_hist[batch_bucket(rows)]++;
        s->st.device_ms_total += dt;
        for (int i = 0; i < n; i++) {
            struct hsd_sched_req *r = batch[i];
            r->in_flight = 0;
            int k = r->cfg ? 2 : 1;
            r->device_ms += dt * k / rows;
            s->st.image_steps++;
            if (st) {
                finalize(s, r, HSD_REQ_EV_FAIL, HSD_SCHED_E_INTERNAL, hsd_last_error(), &dl);
                continue;
            }
            set_state(r, HSD_REQ_EV_STEP);
            if (r->cancel_requested)
                finalize(s, r, HSD_REQ_EV_CANCEL, HSD_SCHED_E_CANCELLED, "cancelled", &dl);
            else if (should_hand_over(s, r))
                finalize(s, r, HSD_REQ_EV_FINISH, HSD_SCHED_OK, NULL, &dl);
        }
        if (dl.n) {
            pthread_mutex_unlock(&s->mu);
            report(s, &dl);
            pthread_mutex_lock(&s->mu);
        }
    }
    // A failed device's requests were re-queued; make sure someone sees them.
    pthread_cond_broadcast(&s->cv);
    if (!d->healthy && s->n_healthy == 0) {
        // The last device is gone and no worker is left to run (or sweep)
        // what waits: fail it all now rather than at shutdown. Nothing is
        // in flight: only healthy workers take requests.
        int left = s->n_queued + s->n_active;
        if (left)
            HSD_ERROR("no healthy device left: failing the %d request(s) still queued or active",
                      left);
        for (;;) {
            sweep(s, now_ms(), &dl);
            if (!dl.n) break;
            pthread_mutex_unlock(&s->mu);
            report(s, &dl);
            pthread_mutex_lock(&s->mu);
        }
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    report(s, &dl);
    return NULL;
}

enum hsd_status hsd_sched_create(struct hsd_sched **out, const struct hsd_sched_opts *o) {
    *out = NULL;
    if (o->max_batch_rows < 1 || o->queue_limit < 1 || o->max_active < 1 || o->admit_batch < 1 ||
        o->adaptive_threshold < 0)
        return hsd_fail(HSD_ERR_INVALID_ARG, "scheduler: limits must be positive");
    struct hsd_sched *s = calloc(1, sizeof *s);
    if (!s) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    s->o = *o;
    if (s->o.admit_batch > 64) s->o.admit_batch = 64;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->next_id = 1;
    s->t_start = now_ms();
    *out = s;
    return HSD_OK;
}

enum hsd_status hsd_sched_add_device(struct hsd_sched *s, struct hsd_pipeline *p,
                                     const char *name) {
    pthread_mutex_lock(&s->mu);
    if (s->n_dev == MAX_DEVICES) {
        pthread_mutex_unlock(&s->mu);
        return hsd_fail(HSD_ERR_INVALID_ARG, "scheduler: at most %d devices", MAX_DEVICES);
    }
    struct device *d = &s->dev[s->n_dev];
    memset(d, 0, sizeof *d);
    d->s = s;
    d->p = p;
    d->healthy = 1;
    snprintf(d->name, sizeof d->name, "%s", name);
    const struct hsd_backend *be = hsd_pipeline_backend(p);
    d->kind = be ? be->kind : HSD_BACKEND_CPU;
    snprintf(d->desc, sizeof d->desc, "%s", be ? be->desc : "");
    if (pthread_create(&d->thread, NULL, worker, d)) {
        pthread_mutex_unlock(&s->mu);
        return hsd_fail(HSD_ERR_INTERNAL, "scheduler: cannot start a worker thread");
    }
    d->started = 1;
    s->n_dev++;
    s->n_healthy++;
    pthread_mutex_unlock(&s->mu);
    return HSD_OK;
}

enum hsd_status hsd_sched_submit(struct hsd_sched *s, const struct hsd_sched_params *prm,
                                 void *client, uint64_t *id, int *busy,
                                 uint32_t *retry_after_ms) {
    *busy = 0;
    *retry_after_ms = 0;
    if (s->n_dev == 0) return hsd_fail(HSD_ERR_NO_DEVICE, "no device in the pool");
    struct hsd_pipeline *p = s->dev[0].p;
    struct hsd_gen_request g = prm->gen;
    g.batch_count = 1;
    g.split = -1;
    if (prm->prompt_is_ids) g.prompt = NULL;
    if (prm->neg_is_ids) g.negative_prompt = NULL;
    g.lora_scales = prm->has_lora ? prm->lora_scales : NULL;
    if (!prm->prompt_is_ids && !g.prompt) return hsd_fail(HSD_ERR_INVALID_ARG, "no prompt given");
    // Validation against the models (sizes, steps, sampler) before anything
    // is queued: a bad request fails alone, at once. The prompts are
    // tokenized and their ids checked at admission (request_ids), off the
    // caller's thread, which is the service's receive thread.
    enum hsd_status st = hsd_pipeline_validate_params(p, &g);
    if (st) return st;
    int calls = hsd_pipeline_n_calls(&g);
    if (prm->k_min < 0 || prm->k_min > prm->k_max || prm->k_max > calls)
        return hsd_fail(HSD_ERR_INVALID_ARG, "split range [%d, %d] must lie in [0, %d]",
                        prm->k_min, prm->k_max, calls);
    struct hsd_sched_req *r = calloc(1, sizeof *r);
    if (!r) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    r->prm = *prm;
    r->prompt = g.prompt ? strdup(g.prompt) : NULL;
    r->negative = g.negative_prompt ? strdup(g.negative_prompt) : NULL;
    if ((g.prompt && !r->prompt) || (g.negative_prompt && !r->negative)) {
        free_req(r);
        return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    }
    r->prm.gen = g;
    r->prm.gen.prompt = r->prompt;
    r->prm.gen.negative_prompt = r->negative;
    r->prm.gen.lora_scales = prm->has_lora ? r->prm.lora_scales : NULL;
    r->client = client;
    r->cfg = hsd_pipeline_cfg(p, g.guidance_scale);  // LCM U-Nets: guidance is an input
    r->clip_skip = g.clip_skip;
    int scale = hsd_pipeline_vae_scale(p);
    r->h = g.height / scale;
    r->w = g.width / scale;
    r->lat = (size_t)hsd_pipeline_latent_channels(p) * r->h * r->w;
    r->state = HSD_REQ_QUEUED;
    r->t_submit = now_ms();
    r->deadline_at = prm->deadline_ms ? r->t_submit + prm->deadline_ms : 0;
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        free_req(r);
        *busy = 1;
        return hsd_fail(HSD_ERR_UNSUPPORTED, "the service is shutting down");
    }
    if (s->n_queued >= s->o.queue_limit || s->n_healthy == 0) {
        s->st.busy_refusals++;
        // Hint: about the time to admit the queue ahead at the recent pace.
        double per = s->st.done ? s->st.busy_ms / (double)s->st.done : 1000.0;
        *retry_after_ms = (uint32_t)(per < 50 ? 50 : per > 60000 ? 60000 : per);
        int dead = s->n_healthy == 0, n_dev = s->n_dev;
        pthread_mutex_unlock(&s->mu);
        free_req(r);
        *busy = 1;
        if (dead)
            return hsd_fail(HSD_ERR_UNSUPPORTED,
                            "no healthy device left (all %d failed; see the server log)", n_dev);
        return hsd_fail(HSD_ERR_UNSUPPORTED, "queue full (%d requests waiting)", s->o.queue_limit);
    }
    r->id = s->next_id++;
    r->prev = s->tail;
    if (s->tail) s->tail->next = r;
    else s->head = r;
    s->tail = r;
    s->n_queued++;
    s->st.submitted++;
    *id = r->id;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return HSD_OK;
}

int hsd_sched_cancel(struct hsd_sched *s, uint64_t id) {
    int found = 0;
    pthread_mutex_lock(&s->mu);
    for (struct hsd_sched_req *r = s->head; r; r = r->next)
        if (r->id == id) {
            r->cancel_requested = 1;
            found = 1;
            break;
        }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return found;
}

void hsd_sched_get_stats(struct hsd_sched *s, struct hsd_sched_stats *st) {
    pthread_mutex_lock(&s->mu);
    *st = s->st;
    st->queued = s->n_queued;
    st->active = s->n_active;
    st->devices = s->n_dev;
    st->healthy_devices = s->n_healthy;
    st->uptime_ms = now_ms() - s->t_start;
    pthread_mutex_unlock(&s->mu);
}

int hsd_sched_device_count(struct hsd_sched *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->n_dev;
    pthread_mutex_unlock(&s->mu);
    return n;
}

enum hsd_status hsd_sched_get_device_stats(struct hsd_sched *s, int i,
                                           struct hsd_sched_device_stats *out) {
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->mu);
    if (i < 0 || i >= s->n_dev) {
        int n = s->n_dev;
        pthread_mutex_unlock(&s->mu);
        return hsd_fail(HSD_ERR_INVALID_ARG, "scheduler: device %d out of range [0, %d)", i, n);
    }
    const struct device *d = &s->dev[i];
    snprintf(out->name, sizeof out->name, "%s", d->name);
    snprintf(out->desc, sizeof out->desc, "%s", d->desc);
    snprintf(out->error, sizeof out->error, "%s", d->error);
    out->kind = d->kind;
    out->healthy = d->healthy;
    out->batch = d->cur_batch;
    out->batches = d->batches;
    out->image_steps = d->image_steps;
    out->failures = d->failures;
    out->busy_ms = d->busy_ms;
    const struct hsd_backend *be = hsd_pipeline_backend(d->p);
    if (be && be->ops->memory) be->ops->memory(be, &out->mem_used, &out->mem_total);
    pthread_mutex_unlock(&s->mu);
    return HSD_OK;
}

void hsd_sched_inject_device_failure(struct hsd_sched *s, int device, int n) {
    pthread_mutex_lock(&s->mu);
    if (device >= 0 && device < s->n_dev) s->dev[device].fail_next = n;
    pthread_mutex_unlock(&s->mu);
}

void hsd_sched_shutdown(struct hsd_sched *s, int grace_ms) {
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->cv);
    double until = now_ms() + grace_ms;
    while (s->n_active + s->n_queued > 0 && now_ms() < until && s->n_healthy > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    // Whatever is left is failed explicitly by the workers' next sweep.
    s->aborting = 1;
    pthread_cond_broadcast(&s->cv);
    while (s->n_active + s->n_queued > 0 && s->n_healthy > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    s->quit = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->n_dev; i++)
        if (s->dev[i].started) {
            pthread_join(s->dev[i].thread, NULL);
            s->dev[i].started = 0;
        }
    // No worker left (all devices failed): fail the rest here.
    struct done_list dl = {.n = 0};
    pthread_mutex_lock(&s->mu);
    while (s->head) {
        s->aborting = 1;
        s->n_healthy = 0;
        sweep(s, now_ms(), &dl);
        pthread_mutex_unlock(&s->mu);
        report(s, &dl);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
}

void hsd_sched_destroy(struct hsd_sched *s) {
    if (!s) return;
    hsd_sched_shutdown(s, 0);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
