// Step-level continuous batching (see batcher.h). One mutex guards the
// request list and counters; U-Net calls and text encoding run without it.
// A request being computed is marked in_flight so no other worker takes it.
#include "batcher.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/assert.h"
#include "core/log.h"
#include "models/unet.h"

#define MAX_DEVICES 32
#define MAX_TENANTS 256  // distinct keys with requests queued or active at once
#define MAX_SHAPES 64    // latent sizes remembered for round-robin

struct hsd_sched_req {
    uint64_t id;
    void *client;
    struct hsd_sched_params prm;
    char *prompt, *negative;        // owned copies (prm.gen points here)
    enum hsd_req_state state;
    int in_flight, cancel_requested;
    int replied;                    // its on_done already ran (cancelled/expired in flight)
    int tenant;                     // index into hsd_sched.tenants
    int dev;                        // the device computing it, while in_flight
    double t_submit, deadline_at;   // ms (monotonic); deadline 0 = none
    double queue_ms, device_ms;
    int h, w, cfg, clip_skip;
    size_t lat;
    float *latent, *emb;            // emb: [cfg ? 2 : 1, pass]: [cond, uncond]
    int n_ctx;                      // context tokens: 77, or 77 x chunks (A1111 prompts)
    size_t pass;                    // floats of one pass: n_ctx x C, and for SDXL the pooled
                                    // embedding and time ids after it (hsd_pipeline_cond_floats)
    struct hsd_sampler sampler;     // the admission state until hand-over (resident steps
                                    // run on the device, docs/denoise_step.md)
    int sampler_ready;
    int slot;                       // resident slot on slot_dev's pipeline, -1: none
    struct device *slot_dev;
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
    atomic_int abort_call;          // set when every request of that call is answered
    uint64_t aborted_calls;         // U-Net calls stopped that way
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
    // Fairness (issue 15, finding 5). Per key: requests queued and active
    // (queue quota) and when it was last admitted (keys take turns). Per latent size: the sequence number
    // of its last U-Net call (the least recently served size goes next).
    struct tenant {
        char id[HSD_SCHED_TENANT_SIZE];
        int queued, active;
        uint64_t last_admit;  // admit_seq of its latest admission (0: none yet)
    } tenants[MAX_TENANTS];
    uint64_t admit_seq;
    struct shape {
        int h, w;
        uint64_t last;
    } shapes[MAX_SHAPES];
    int n_shapes;
    uint64_t call_seq;
    pthread_t reaper;
    int reaper_started;
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

static void drop_slot(struct hsd_sched_req *r);

static void free_req(struct hsd_sched_req *r) {
    drop_slot(r);
    if (r->sampler_ready) hsd_sampler_free(&r->sampler);
    free(r->latent);
    free(r->emb);
    free(r->prompt);
    free(r->negative);
    free(r);
}

// The request's resident slot, if it holds one, released unread.
static void drop_slot(struct hsd_sched_req *r) {
    if (!r->slot_dev) return;
    hsd_pipeline_slot_release(r->slot_dev->p, r->slot);
    r->slot = -1;
    r->slot_dev = NULL;
}

// Calls made: the admission state's plus the resident slot's.
static int req_step(const struct hsd_sched_req *r) {
    return r->sampler.step + (r->slot_dev ? hsd_pipeline_slot_done(r->slot_dev->p, r->slot) : 0);
}

// A lost device's slots (under the lock): its requests restart their
// cloud part from the admission state on another device (deterministic:
// the same result). In-flight requests belong to other devices.
static void drop_device_slots(struct hsd_sched *s, struct device *d) {
    for (struct hsd_sched_req *r = s->head; r; r = r->next)
        if (!r->in_flight && r->slot_dev == d) drop_slot(r);
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

// The end of a request's life in the counters: state, error, statistics.
static void conclude(struct hsd_sched *s, struct hsd_sched_req *r, enum hsd_req_event e,
                     enum hsd_sched_error err, const char *text) {
    struct tenant *tn = &s->tenants[r->tenant];
    if (r->state == HSD_REQ_QUEUED) {
        s->n_queued--;
        tn->queued--;
    } else {
        s->n_active--;
        tn->active--;
    }
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
}

static void finalize(struct hsd_sched *s, struct hsd_sched_req *r, enum hsd_req_event e,
                     enum hsd_sched_error err, const char *text, struct done_list *dl) {
    conclude(s, r, e, err, text);
    drop_slot(r);  // a hand-over released it already; not in flight, so no step uses it
    unlink_req(s, r);
    HSD_ASSERT(dl->n < (int)(sizeof dl->items / sizeof dl->items[0]));
    dl->items[dl->n++] = r;
}

static void report(struct hsd_sched *s, struct done_list *dl) {
    for (int i = 0; i < dl->n; i++) {
        struct hsd_sched_req *r = dl->items[i];
        int C = 0, pooled = 0;
        if (r->emb) C = hsd_pipeline_text_width(s->dev[0].p);
        if (r->emb) pooled = hsd_pipeline_pooled_dim(s->dev[0].p);
        struct hsd_sched_result res = {
            .state = r->state, .error = r->err, .error_text = r->err_text,
            .k_used = r->sampler_ready ? r->sampler.step : 0, .latent = r->latent,
            .c = hsd_pipeline_latent_channels(s->dev[0].p), .h = r->h, .w = r->w,
            .sampler = r->sampler_ready ? &r->sampler : NULL,
            .cond = r->emb, .uncond = r->emb && r->cfg ? r->emb + r->pass : NULL,
            .emb_c = C, .n_ctx = r->n_ctx, .pooled_c = pooled, .device_ms = r->device_ms, .queue_ms = r->queue_ms};
        if (s->o.on_done) s->o.on_done(s->o.user, r->id, r->client, &res);
        free_req(r);
    }
    dl->n = 0;
}

// A request answered while in a call (early_reply) is dropped by the worker
// when the call returns: nothing of it is reported again.
static void retire(struct hsd_sched *s, struct hsd_sched_req *r) {
    unlink_req(s, r);
    free_req(r);
}

// Answers to requests inside a running call, made under the lock and
// delivered outside it. A copy of what on_done needs: the worker frees the
// request itself when its call returns, maybe before delivery.
struct early_list {
    struct early {
        uint64_t id;
        void *client;
        enum hsd_req_state state;
        enum hsd_sched_error err;
        char text[64];
        int k_used;
        double device_ms, queue_ms;
    } items[256];
    int n;
};

static void deliver_early(struct hsd_sched *s, struct early_list *el) {
    for (int i = 0; i < el->n; i++) {
        const struct early *e = &el->items[i];
        struct hsd_sched_result res = {.state = e->state, .error = e->err, .error_text = e->text,
                                       .k_used = e->k_used, .device_ms = e->device_ms,
                                       .queue_ms = e->queue_ms};
        if (s->o.on_done) s->o.on_done(s->o.user, e->id, e->client, &res);
    }
    el->n = 0;
}

// Cancelled or expired requests inside a running call are answered now
// (issue 15, finding 5: a 1 s deadline at 1024 px used to wait for the
// whole call, 16 s on a CPU), and a U-Net call left with no request still
// waiting for it is told to stop (the device's abort flag, read by the
// forward pass before each op).
static void reap_in_flight(struct hsd_sched *s, double t, struct early_list *el) {
    int live[MAX_DEVICES] = {0}, dead[MAX_DEVICES] = {0};
    for (struct hsd_sched_req *r = s->head; r; r = r->next) {
        if (!r->in_flight) continue;
        if (!r->replied && el->n < (int)(sizeof el->items / sizeof el->items[0])) {
            int cancel = r->cancel_requested;
            if (cancel || (r->deadline_at > 0 && t > r->deadline_at)) {
                struct early *e = &el->items[el->n++];
                const char *why = cancel ? "cancelled" : "deadline passed";
                conclude(s, r, cancel ? HSD_REQ_EV_CANCEL : HSD_REQ_EV_DEADLINE,
                         cancel ? HSD_SCHED_E_CANCELLED : HSD_SCHED_E_EXPIRED, why);
                *e = (struct early){.id = r->id, .client = r->client, .state = r->state,
                                    .err = r->err, .device_ms = r->device_ms,
                                    .queue_ms = r->queue_ms,
                                    .k_used = r->sampler_ready ? r->sampler.step : 0};
                snprintf(e->text, sizeof e->text, "%s", why);
                r->replied = 1;
            }
        }
        if (r->dev >= 0 && r->dev < MAX_DEVICES) {
            if (r->replied) dead[r->dev]++;
            else live[r->dev]++;
        }
    }
    for (int i = 0; i < s->n_dev; i++)
        if (s->dev[i].cur_batch > 0 && dead[i] > 0 && live[i] == 0)
            atomic_store(&s->dev[i].abort_call, 1);
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

// Up to admit_batch queued requests with the same clip skip: highest
// priority first; within a priority the tenant admitted least recently, so
// keys take turns (a key with a thousand requests waiting and a key with
// one alternate); FIFO within a tenant.
static int pick_admissions(struct hsd_sched *s, int dev, struct hsd_sched_req **out) {
    int n = 0, room = s->o.max_active - s->n_active;
    if (room > s->o.admit_batch) room = s->o.admit_batch;
    while (n < room) {
        struct hsd_sched_req *best = NULL;
        for (struct hsd_sched_req *r = s->head; r; r = r->next) {
            if (r->state != HSD_REQ_QUEUED || r->in_flight) continue;
            if (n > 0 && r->clip_skip != out[0]->clip_skip) continue;
            if (!best || r->prm.priority > best->prm.priority ||
                (r->prm.priority == best->prm.priority &&
                 s->tenants[r->tenant].last_admit < s->tenants[best->tenant].last_admit))
                best = r;
        }
        if (!best) break;
        best->in_flight = 1;
        best->dev = dev;
        s->tenants[best->tenant].last_admit = ++s->admit_seq;
        out[n++] = best;
    }
    return n;
}

// A tenant's slot: the live one with this name, else a free one (-1: all
// MAX_TENANTS hold requests of other tenants).
static int tenant_slot(struct hsd_sched *s, const char *name) {
    int free_slot = -1;
    for (int i = 0; i < MAX_TENANTS; i++) {
        struct tenant *t = &s->tenants[i];
        int live = t->queued + t->active > 0;
        if (live && !strcmp(t->id, name)) return i;
        if (!live && free_slot < 0) free_slot = i;
    }
    if (free_slot >= 0) {
        snprintf(s->tenants[free_slot].id, sizeof s->tenants[0].id, "%s", name);
        s->tenants[free_slot].last_admit = 0;
    }
    return free_slot;
}

// When latent size h x w last had a U-Net call (0: never, or forgotten).
static uint64_t shape_last(const struct hsd_sched *s, int h, int w) {
    for (int i = 0; i < s->n_shapes; i++)
        if (s->shapes[i].h == h && s->shapes[i].w == w) return s->shapes[i].last;
    return 0;
}

static void shape_served(struct hsd_sched *s, int h, int w) {
    uint64_t seq = ++s->call_seq;
    int slot = -1;
    for (int i = 0; i < s->n_shapes && slot < 0; i++)
        if (s->shapes[i].h == h && s->shapes[i].w == w) slot = i;
    if (slot < 0 && s->n_shapes < MAX_SHAPES) slot = s->n_shapes++;
    if (slot < 0) {  // full: forget the size served longest ago
        slot = 0;
        for (int i = 1; i < MAX_SHAPES; i++)
            if (s->shapes[i].last < s->shapes[slot].last) slot = i;
    }
    s->shapes[slot] = (struct shape){h, w, seq};
}

// Each prompt's 77 ids, made once per request on the worker that admits
// it (issue 10 item 5: the receive thread never tokenizes): a text side is
// tokenized and from then on held as ids (a re-admission after a lost
// device does not tokenize again); every id, tokenized or sent, is checked
// against the text encoder's vocabulary (issue 15, finding 4), so a bad
// request fails alone instead of failing its text-encoder batch.
static enum hsd_status request_ids(const struct hsd_pipeline *p, struct hsd_sched_req *r) {
    enum hsd_status s = HSD_OK;
    // SDXL's two tokenizers read the text (admit_sdxl); the service sends
    // it text only (its handle_generate refuses token ids for SDXL).
    if (hsd_pipeline_is_sdxl(p) && (r->prm.prompt_is_ids || r->prm.neg_is_ids))
        return hsd_fail(HSD_ERR_INVALID_ARG, "SDXL models take text prompts, not token ids");
    if (r->prm.gen.prompt_style == HSD_PROMPT_A1111 || hsd_pipeline_is_sdxl(p)) {
        // Encoded from the text at admission (A1111 chunks have no fixed
        // id list); this checks the weights and the chunk limit first.
        s = hsd_pipeline_check_prompt(p, r->prompt, r->prm.gen.prompt_style, NULL);
        if (s) return hsd_fail_context(s, "prompt: ");
        if (r->cfg)
            s = hsd_pipeline_check_prompt(p, r->negative ? r->negative : "",
                                          r->prm.gen.prompt_style, NULL);
        return s ? hsd_fail_context(s, "negative prompt: ") : HSD_OK;
    }
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

// Keeps a request's own text encoding `enc` (malloc'd, [uncond, cond] as
// encoded, or [cond] without CFG; `per` floats a pass) as q->emb, [cond,
// uncond] for the RESULT. Takes enc (freed).
static enum hsd_status keep_passes(struct hsd_sched_req *q, float *enc, size_t per, int n_ctx) {
    q->emb = malloc((q->cfg ? 2 : 1) * per * sizeof *q->emb);
    if (!q->emb) {
        free(enc);
        return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    }
    memcpy(q->emb, q->cfg ? enc + per : enc, per * sizeof *enc);
    if (q->cfg) memcpy(q->emb + per, enc, per * sizeof *enc);
    q->n_ctx = n_ctx;
    q->pass = per;
    free(enc);
    return HSD_OK;
}

// An A1111-style request's embeddings (its own text-encoder call: its
// chunk count is its own), with its text-encoder LoRAs.
static enum hsd_status admit_a1111(struct hsd_pipeline *p, struct hsd_sched_req *q) {
    const char *texts[2] = {q->negative ? q->negative : "", q->prompt};
    float *emb = NULL;
    int n_ctx = 0;
    enum hsd_status s = hsd_pipeline_encode_prompts_lora(
        p, &emb, &n_ctx, q->cfg ? texts : texts + 1, q->cfg ? 2 : 1, HSD_PROMPT_A1111,
        q->clip_skip, q->prm.gen.lora_scales);
    if (s) return s;
    return keep_passes(q, emb, (size_t)n_ctx * hsd_pipeline_text_width(p), n_ctx);
}

// An SDXL request's conditioning (its own text-encoder calls: two
// encoders, and the time ids are the request's): exactly
// hsd_pipeline_generate's (hsd_pipeline_encode_sdxl), so a RESULT finished
// on an edge gives the pixels of the in-process hybrid.
static enum hsd_status admit_sdxl(struct hsd_pipeline *p, struct hsd_sched_req *q) {
    const size_t per = hsd_pipeline_cond_floats(p);
    float *emb = malloc((q->cfg ? 2 : 1) * per * sizeof *emb);
    enum hsd_status s = emb ? hsd_pipeline_encode_sdxl(p, &q->prm.gen, q->cfg, emb)
                            : hsd_fail(HSD_ERR_NOMEM, "out of memory");
    if (s) {
        free(emb);
        return s;
    }
    return keep_passes(q, emb, per, HSD_TEXT_LEN);
}

// Requests whose text is encoded by a call of their own, not in the
// admission's shared text-encoder batch.
static int own_text_call(const struct hsd_pipeline *p, const struct hsd_sched_req *q) {
    return q->prm.gen.prompt_style == HSD_PROMPT_A1111 || hsd_pipeline_is_sdxl(p);
}

// Encodes the prompts of `reqs` in one text-encoder call and sets up their
// latents and samplers. Runs without the lock.
static enum hsd_status admit_compute(struct device *d, struct hsd_sched_req **reqs, int n) {
    struct hsd_pipeline *p = d->p;
    int C = hsd_pipeline_text_width(p);
    size_t per = (size_t)HSD_TEXT_LEN * C;
    int rows = 0;
    for (int i = 0; i < n; i++)
        if (!own_text_call(p, reqs[i])) rows += reqs[i]->cfg ? 2 : 1;
    float *emb = malloc((size_t)(rows ? rows : 1) * per * sizeof *emb);
    if (!emb) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    enum hsd_status s;
    // Row order per request: [negative, positive] as diffusers encodes them.
    int32_t *ids = malloc((size_t)(rows ? rows : 1) * HSD_TEXT_LEN * sizeof *ids);
    if (!ids) {
        free(emb);
        return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    }
    // Each row's text-encoder LoRAs: its request's (models/lora.h, per row).
    const float **lora = malloc((size_t)(rows ? rows : 1) * sizeof *lora);
    if (!lora) {
        free(emb);
        free(ids);
        return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    }
    for (int i = 0, r = 0; i < n; i++) {
        if (own_text_call(p, reqs[i])) continue;
        if (reqs[i]->cfg) {
            lora[r] = reqs[i]->prm.gen.lora_scales;
            memcpy(ids + (size_t)r++ * HSD_TEXT_LEN, reqs[i]->prm.neg_ids,
                   sizeof reqs[i]->prm.neg_ids);
        }
        lora[r] = reqs[i]->prm.gen.lora_scales;
        memcpy(ids + (size_t)r++ * HSD_TEXT_LEN, reqs[i]->prm.prompt_ids,
               sizeof reqs[i]->prm.prompt_ids);
    }
    s = rows ? hsd_pipeline_encode_ids_lora(p, emb, ids, rows, reqs[0]->clip_skip, lora)
             : HSD_OK;
    free(lora);
    free(ids);
    int r = 0;
    for (int i = 0; i < n && !s; i++) {
        struct hsd_sched_req *q = reqs[i];
        q->latent = malloc(q->lat * sizeof *q->latent);
        if (!q->latent) {
            s = hsd_fail(HSD_ERR_NOMEM, "out of memory");
            break;
        }
        if (own_text_call(p, q)) {
            s = hsd_pipeline_is_sdxl(p) ? admit_sdxl(p, q) : admit_a1111(p, q);
            if (!s) s = hsd_pipeline_init_image(p, &q->prm.gen, 0, q->latent, &q->sampler);
            if (!s) q->sampler_ready = 1;
            continue;
        }
        int k = q->cfg ? 2 : 1;
        q->n_ctx = HSD_TEXT_LEN;
        q->pass = per;
        q->emb = malloc((size_t)k * per * sizeof *q->emb);
        if (!q->emb) {
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

// The latent size served least recently among the runnable requests (sizes
// take turns: a 64 px request waits for at most one call of each other
// size, not for a 512 px request's whole cloud part — issue 15, finding 5),
// its requests filled FIFO up to max_batch_rows. Returns the number taken.
// A request resident on another device stays there.
static int pick_batch(struct hsd_sched *s, struct device *d, struct hsd_sched_req **out,
                      int cap) {
    struct hsd_sched_req *first = NULL;
    uint64_t first_last = 0;
    for (struct hsd_sched_req *r = s->head; r; r = r->next) {
        if ((r->state != HSD_REQ_ADMITTED && r->state != HSD_REQ_RUNNING) || r->in_flight ||
            (r->slot_dev && r->slot_dev != d))
            continue;
        uint64_t last = shape_last(s, r->h, r->w);
        if (!first || last < first_last) {
            first = r;
            first_last = last;
        }
    }
    if (!first) return 0;
    shape_served(s, first->h, first->w);
    int n = 0, rows = 0;
    for (struct hsd_sched_req *r = first; r && n < cap; r = r->next) {
        if ((r->state != HSD_REQ_ADMITTED && r->state != HSD_REQ_RUNNING) || r->in_flight)
            continue;
        if (r->slot_dev && r->slot_dev != d) continue;
        // One U-Net call: one latent size and one context length
        // (and one conditioning layout: SDXL's pooled embeddings and time ids
        // never share a call with SD 1.x/2.x rows).
        if (r->h != first->h || r->w != first->w || r->n_ctx != first->n_ctx ||
            r->pass != first->pass)
            continue;
        int need = r->cfg ? 2 : 1;
        if (n > 0 && rows + need > s->o.max_batch_rows) break;
        r->in_flight = 1;
        r->dev = (int)(d - s->dev);
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
    int step = req_step(r);
    if (step >= hsd_sampler_n_calls(&r->sampler) || step >= r->prm.k_max) return 1;
    return step >= r->prm.k_min && s->n_queued >= s->o.adaptive_threshold;
}

// One step of `batch` on d, resident (docs/denoise_step.md "Resident
// state"): a request new to d gets a slot first (its state uploaded once,
// its steps up to k_max planned); then one resident step. Off the lock; the
// requests are in flight, so only this thread touches their slots.
static enum hsd_status run_batch(struct device *d, struct hsd_sched_req **batch, int n, int h,
                                 int w) {
    int ids[256];
    struct hsd_unet *unet = hsd_pipeline_unet(d->p, 0);
    int per_step = !hsd_pipeline_resident_ok(d->p, unet);
    for (int i = 0; i < n && !per_step; i++)
        per_step = !hsd_pipeline_resident_request_ok(d->p, batch[i]->prm.gen.sampler,
                                                      batch[i]->n_ctx,
                                                      batch[i]->prm.gen.lora_scales);
    if (per_step) {
        // Slots hold 77-token contexts and no LoRA, and plan no LCM noise:
        // a longer (A1111) context, a request with LoRAs or the lcm
        // sampler, or a U-Net that cannot take backend inputs (LCM's
        // guidance embedding) makes the whole batch step its host state
        // with the per-step path (the batch shares one context length).
        // A request resident from an earlier batch brings its state back
        // first (it may take a slot again in a later batch).
        for (int i = 0; i < n; i++) {
            struct hsd_sched_req *r = batch[i];
            if (!r->slot_dev) continue;
            enum hsd_status st =
                hsd_pipeline_slot_handover(r->slot_dev->p, r->slot, r->latent, &r->sampler);
            r->slot = -1;  // released by the hand-over, also on failure
            r->slot_dev = NULL;
            if (st) return st;
        }
        struct hsd_denoise_item items[256];
        for (int i = 0; i < n; i++) {
            struct hsd_sched_req *r = batch[i];
            items[i] = (struct hsd_denoise_item){r->latent,
                                                 &r->sampler,
                                                 r->emb,
                                                 r->cfg ? r->emb + r->pass : NULL,
                                                 r->prm.gen.guidance_scale,
                                                 r->n_ctx,
                                                 r->prm.gen.lora_scales};
        }
        return hsd_pipeline_denoise_step(d->p, unet, items, n, h, w);
    }
    for (int i = 0; i < n; i++) {
        struct hsd_sched_req *r = batch[i];
        if (!r->slot_dev) {
            int end = hsd_sampler_n_calls(&r->sampler);
            if (r->prm.k_max < end) end = r->prm.k_max;
            enum hsd_status st = hsd_pipeline_slot_acquire(
                d->p, &r->slot, r->latent, &r->sampler, r->emb, r->cfg ? r->emb + r->pass : NULL,
                r->prm.gen.guidance_scale, end - r->sampler.step, h, w);
            if (st) return st;
            r->slot_dev = d;
        }
        ids[i] = r->slot;
    }
    return hsd_pipeline_resident_step(d->p, unet, ids, n, h, w);
}

// Hand-over of `n` requests that finished their cloud part on d: latent and
// sampler state downloaded off the lock (they stay in flight meanwhile),
// then the RESULTs. Called and returns with the lock held; 1 when d was
// lost on the way (marked unhealthy: the worker stops, the requests
// restart elsewhere from their admission state).
static int hand_over(struct hsd_sched *s, struct device *d, struct hsd_sched_req **ho, int n,
                     struct done_list *dl) {
    enum hsd_status st[256];
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < n; i++) {
        struct hsd_sched_req *r = ho[i];
        // A request stepped on the host (run_batch's per-step path) holds
        // its state already.
        st[i] = !r->slot_dev ? HSD_OK
                             : classify_failure(d, hsd_pipeline_slot_handover(
                                                       d->p, r->slot, r->latent, &r->sampler));
        if (st[i]) snprintf(r->err_text, sizeof r->err_text, "%s", hsd_last_error());
        r->slot = -1;  // released by the hand-over, also on failure
        r->slot_dev = NULL;
    }
    pthread_mutex_lock(&s->mu);
    int lost = 0;
    for (int i = 0; i < n; i++) {
        struct hsd_sched_req *r = ho[i];
        if (r->replied) {  // cancelled or expired while its state came down
            retire(s, r);
            continue;
        }
        r->in_flight = 0;
        if (!st[i]) {
            finalize(s, r, HSD_REQ_EV_FINISH, HSD_SCHED_OK, NULL, dl);
        } else if (st[i] == HSD_ERR_DEVICE) {
            lost = 1;  // stays RUNNING, restarts from its admission state
        } else {
            char why[sizeof r->err_text];
            memcpy(why, r->err_text, sizeof why);
            finalize(s, r, HSD_REQ_EV_FAIL, HSD_SCHED_E_INTERNAL, why, dl);
        }
    }
    if (lost) {
        drop_device_slots(s, d);
        mark_unhealthy(s, d, "hand-over", hsd_last_error(), n);
    }
    return lost;
}

static void *worker(void *arg) {
    struct device *d = arg;
    struct hsd_sched *s = d->s;
    struct hsd_sched_req *batch[256];
    struct hsd_sched_req *ho[256];  // hand-overs of the last step
    struct done_list dl = {.n = 0};
    const int di = (int)(d - s->dev);
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
        int n = s->stopping ? 0 : pick_admissions(s, di, batch);
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
                if (refused[i]->replied) {
                    retire(s, refused[i]);
                    continue;
                }
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
                    if (batch[i]->replied) {
                        retire(s, batch[i]);
                        continue;
                    }
                    undo_admission(batch[i]);
                    batch[i]->in_flight = 0;
                }
                drop_device_slots(s, d);
                mark_unhealthy(s, d, "text encoding", hsd_last_error(), n);
                break;
            }
            for (int i = 0; i < n; i++) {
                struct hsd_sched_req *r = batch[i];
                if (r->replied) {  // cancelled or expired while its prompt was encoded
                    retire(s, r);
                    continue;
                }
                r->in_flight = 0;
                r->queue_ms = t - r->t_submit;
                r->device_ms += dt / n;
                if (st) {  // still QUEUED: fails from there
                    finalize(s, r, HSD_REQ_EV_FAIL, HSD_SCHED_E_INTERNAL, hsd_last_error(), &dl);
                    continue;
                }
                s->n_queued--;
                s->n_active++;
                s->tenants[r->tenant].queued--;
                s->tenants[r->tenant].active++;
                set_state(r, HSD_REQ_EV_ADMIT);
                if (should_hand_over(s, r))
                    finalize(s, r, HSD_REQ_EV_FINISH, HSD_SCHED_OK, NULL, &dl);
            }
            continue;
        }
        // 2. One U-Net call for a bucket of active requests.
        n = pick_batch(s, d, batch, 256);
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
        for (int i = 0; i < n; i++) rows += batch[i]->cfg ? 2 : 1;
        int h = batch[0]->h, w = batch[0]->w;
        int inject = d->fail_next > 0;
        if (inject) d->fail_next--;
        d->cur_batch = n;
        atomic_store(&d->abort_call, 0);
        pthread_mutex_unlock(&s->mu);
        double t = now_ms();
        enum hsd_status st =
            inject ? hsd_fail(HSD_ERR_DEVICE, "%s: injected device failure", d->name)
                   : classify_failure(d, run_batch(d, batch, n, h, w));
        double dt = now_ms() - t;
        pthread_mutex_lock(&s->mu);
        s->st.busy_ms += dt;
        d->busy_ms += dt;
        d->cur_batch = 0;
        if (st == HSD_ERR_CANCELLED) {
            // Stopped by the reaper: every request of the call was already
            // answered. Nothing moved (a failed step changes no request).
            hsd_clear_error();
            d->aborted_calls++;
            s->st.aborted_calls++;
            for (int i = 0; i < n; i++) {
                if (batch[i]->replied) retire(s, batch[i]);
                else batch[i]->in_flight = 0;
            }
            continue;
        }
        if (st) d->failures++;
        int n_ho = 0;
        if (st == HSD_ERR_DEVICE) {
            // The device is unusable: its batch goes back to the healthy
            // devices, and every request resident on it restarts from its
            // admission state (the host copy never advances before the
            // hand-over); this worker stops.
            for (int i = 0; i < n; i++) {
                if (batch[i]->replied) {
                    retire(s, batch[i]);
                    continue;
                }
                batch[i]->in_flight = 0;
                set_state(batch[i], HSD_REQ_EV_REQUEUE);
            }
            drop_device_slots(s, d);
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
            s->st.image_steps++;
            if (r->replied) {  // answered during the call: its row is dropped
                retire(s, r);
                continue;
            }
            r->in_flight = 0;
            int k = r->cfg ? 2 : 1;
            r->device_ms += dt * k / rows;
            if (st) {
                finalize(s, r, HSD_REQ_EV_FAIL, HSD_SCHED_E_INTERNAL, hsd_last_error(), &dl);
                continue;
            }
            set_state(r, HSD_REQ_EV_STEP);
            if (r->cancel_requested)
                finalize(s, r, HSD_REQ_EV_CANCEL, HSD_SCHED_E_CANCELLED, "cancelled", &dl);
            else if (should_hand_over(s, r))
                (r->in_flight = 1, ho[n_ho++] = r);  // downloaded below, off the lock
        }
        if (n_ho && hand_over(s, d, ho, n_ho, &dl)) break;
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

// Watches deadlines and cancellations every 20 ms, whatever the workers are
// doing: a worker only sweeps between calls, and a call at the largest
// allowed size takes seconds on a CPU.
static void *reaper(void *arg) {
    struct hsd_sched *s = arg;
    struct done_list dl = {.n = 0};
    struct early_list el = {.n = 0};
    pthread_mutex_lock(&s->mu);
    while (!s->quit) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        if (s->quit) break;
        double t = now_ms();
        sweep(s, t, &dl);
        reap_in_flight(s, t, &el);
        if (dl.n || el.n) {
            pthread_mutex_unlock(&s->mu);
            deliver_early(s, &el);
            report(s, &dl);
            pthread_mutex_lock(&s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

enum hsd_status hsd_sched_create(struct hsd_sched **out, const struct hsd_sched_opts *o) {
    *out = NULL;
    if (o->max_batch_rows < 1 || o->queue_limit < 1 || o->max_active < 1 || o->admit_batch < 1 ||
        o->adaptive_threshold < 0 || o->tenant_queue_limit < 0)
        return hsd_fail(HSD_ERR_INVALID_ARG, "scheduler: limits must be positive");
    struct hsd_sched *s = calloc(1, sizeof *s);
    if (!s) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    s->o = *o;
    if (s->o.admit_batch > 64) s->o.admit_batch = 64;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->next_id = 1;
    s->t_start = now_ms();
    if (pthread_create(&s->reaper, NULL, reaper, s)) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        free(s);
        return hsd_fail(HSD_ERR_INTERNAL, "scheduler: cannot start the deadline thread");
    }
    s->reaper_started = 1;
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
    atomic_init(&d->abort_call, 0);
    struct hsd_unet *unet = hsd_pipeline_unet(p, 0);
    if (unet) hsd_unet_set_abort(unet, &d->abort_call);
    if (pthread_create(&d->thread, NULL, worker, d)) {
        if (unet) hsd_unet_set_abort(unet, NULL);
        pthread_mutex_unlock(&s->mu);
        return hsd_fail(HSD_ERR_INTERNAL, "scheduler: cannot start a worker thread");
    }
    d->started = 1;
    s->n_dev++;
    s->n_healthy++;
    pthread_mutex_unlock(&s->mu);
    return HSD_OK;
}

// BUSY's retry hint: about the time to admit the queue ahead at the recent
// pace, within [50 ms, 60 s].
static uint32_t retry_hint_ms(const struct hsd_sched *s) {
    double per = s->st.done ? s->st.busy_ms / (double)s->st.done : 1000.0;
    return (uint32_t)(per < 50 ? 50 : per > 60000 ? 60000 : per);
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
    r->slot = -1;
    r->cfg = hsd_pipeline_cfg(p, g.guidance_scale);  // LCM U-Nets: guidance is an input
    r->clip_skip = g.clip_skip;
    int scale = hsd_pipeline_vae_scale(p);
    r->h = g.height / scale;
    r->w = g.width / scale;
    r->lat = (size_t)hsd_pipeline_latent_channels(p) * r->h * r->w;
    r->state = HSD_REQ_QUEUED;
    r->t_submit = now_ms();
    r->deadline_at = prm->deadline_ms ? r->t_submit + prm->deadline_ms : 0;
    r->dev = -1;
    char tenant_name[HSD_SCHED_TENANT_SIZE];
    snprintf(tenant_name, sizeof tenant_name, "%.*s", (int)sizeof prm->tenant - 1, prm->tenant);
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        free_req(r);
        *busy = 1;
        return hsd_fail(HSD_ERR_UNSUPPORTED, "the service is shutting down");
    }
    if (s->n_queued >= s->o.queue_limit || s->n_healthy == 0) {
        s->st.busy_refusals++;
        *retry_after_ms = retry_hint_ms(s);
        int dead = s->n_healthy == 0, n_dev = s->n_dev;
        pthread_mutex_unlock(&s->mu);
        free_req(r);
        *busy = 1;
        if (dead)
            return hsd_fail(HSD_ERR_UNSUPPORTED,
                            "no healthy device left (all %d failed; see the server log)", n_dev);
        return hsd_fail(HSD_ERR_UNSUPPORTED, "queue full (%d requests waiting)", s->o.queue_limit);
    }
    // Per-tenant quota: one key cannot fill the queue (issue 15, finding 5).
    int tn = tenant_slot(s, tenant_name);
    int lim = s->o.tenant_queue_limit;
    if (tn < 0 || (lim > 0 && s->tenants[tn].queued >= lim)) {
        s->st.busy_refusals++;
        s->st.tenant_refusals++;
        *retry_after_ms = retry_hint_ms(s);
        pthread_mutex_unlock(&s->mu);
        free_req(r);
        *busy = 1;
        if (tn < 0)
            return hsd_fail(HSD_ERR_UNSUPPORTED, "too many keys with requests waiting (%d)",
                            MAX_TENANTS);
        return hsd_fail(HSD_ERR_UNSUPPORTED,
                        "this key's share of the queue is full (%d of its requests waiting)", lim);
    }
    r->tenant = tn;
    s->tenants[tn].queued++;
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
    out->aborted_calls = d->aborted_calls;
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
            struct hsd_unet *unet = hsd_pipeline_unet(s->dev[i].p, 0);
            if (unet) hsd_unet_set_abort(unet, NULL);  // the pipeline may outlive us
        }
    if (s->reaper_started) {
        pthread_join(s->reaper, NULL);
        s->reaper_started = 0;
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
