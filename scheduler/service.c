#include "service.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "metrics_http.h"
#include "recv_timing.h"
#include "net/auth.h"
#include "net/transport.h"
#include "net/wire.h"

#define HSD_VERSION_STR "hsd 0.1.0"

// One GENERATE in the batcher. Keyed by (key id, request id): nanomsg REQ
// resends the same request after a reconnect, and a duplicate must not be
// computed twice; its newest route gets the reply.
struct pending {
    char key_id[HSD_WIRE_KEY_ID_SIZE];
    uint64_t request_id;
    uint64_t sched_id;
    struct hsd_net_route route;
    int include_text;
    uint16_t version;  // the GENERATE's: its RESULT or ERROR answers in it
    uint8_t sampler;
    uint16_t steps;
    struct pending *next;
};

struct service {
    struct hsd_net_server *srv;
    struct hsd_sched *sched;
    struct hsd_auth *auth;
    pthread_mutex_t mu;            // pending list and counters
    struct pending *pending;
    uint64_t errors[HSD_WIRE_E_MAX + 1];
    int draining;
    const struct hsd_service_opts *o;
    int max_msg;
    struct hsd_recv_timing recv_t;  // receive thread only
};

static void count_error(struct service *sv, enum hsd_wire_error code) {
    pthread_mutex_lock(&sv->mu);
    if ((unsigned)code <= HSD_WIRE_E_MAX) sv->errors[code]++;
    pthread_mutex_unlock(&sv->mu);
}

// An ERROR in the request's protocol version (docs/protocol.md §6: a v1
// client cannot read a v2 header); one we could not read gets version 1.
static void reply_error(struct service *sv, const struct hsd_net_route *to, uint16_t version,
                        uint64_t id, enum hsd_wire_error code, uint32_t retry_ms,
                        const char *text) {
    char buf[HSD_WIRE_ERROR_MAX_SIZE];
    size_t len;
    count_error(sv, code);
    if (hsd_wire_encode_error(buf, sizeof buf, &len, id, code, retry_ms, "%s", text)) return;
    hsd_wire_set_version(buf, len, version);
    if (hsd_net_server_reply(sv->srv, to, buf, len))
        HSD_WARN("reply to request %llu failed: %s", (unsigned long long)id, hsd_last_error());
}

// Batcher callback (worker thread): the RESULT or ERROR for one request.
static void on_done(void *user, uint64_t sched_id, void *client, const struct hsd_sched_result *r) {
    struct service *sv = user;
    struct pending *pd = client;
    pthread_mutex_lock(&sv->mu);
    for (struct pending **pp = &sv->pending; *pp; pp = &(*pp)->next)
        if (*pp == pd) {
            *pp = pd->next;
            break;
        }
    struct hsd_net_route route = pd->route;  // newest route, under the lock
    pthread_mutex_unlock(&sv->mu);
    (void)sched_id;
    if (r->state != HSD_REQ_DONE) {
        enum hsd_wire_error code = r->error == HSD_SCHED_E_CANCELLED  ? HSD_WIRE_E_CANCELLED
                                   : r->error == HSD_SCHED_E_EXPIRED  ? HSD_WIRE_E_EXPIRED
                                   : r->error == HSD_SCHED_E_SHUTDOWN ? HSD_WIRE_E_SHUTTING_DOWN
                                   : r->error == HSD_SCHED_E_BAD_REQUEST ? HSD_WIRE_E_BAD_REQUEST
                                                                          : HSD_WIRE_E_INTERNAL;
        reply_error(sv, &route, pd->version, pd->request_id, code,
                    code == HSD_WIRE_E_SHUTTING_DOWN ? 1000 : 0, r->error_text);
        free(pd);
        return;
    }
    size_t st_len = hsd_sampler_serialized_size(r->sampler);
    void *st_buf = malloc(st_len ? st_len : 1);
    struct hsd_wire_msg m = {.version = pd->version, .type = HSD_WIRE_RESULT,
                             .request_id = pd->request_id};
    struct hsd_wire_result *res = &m.u.result;
    enum hsd_status s = st_buf ? hsd_sampler_serialize(r->sampler, st_buf, st_len)
                               : hsd_fail(HSD_ERR_NOMEM, "out of memory");
    float *emb = NULL;
    int n_emb = pd->include_text ? (r->uncond ? 2 : 1) : 0;
    // SDXL: each pass is [context, pooled, time ids] (pipeline.h); the
    // RESULT carries the three as arrays of their own (§5.2, version 2).
    const size_t per = (size_t)r->n_ctx * r->emb_c, pc = (size_t)r->pooled_c;
    const size_t nt = pc ? HSD_WIRE_N_TIME_IDS : 0;
    if (!s && n_emb) {
        emb = malloc((size_t)n_emb * (per + pc + nt) * sizeof *emb);
        if (!emb) s = hsd_fail(HSD_ERR_NOMEM, "out of memory");
        for (int i = 0; !s && i < n_emb; i++) {
            const float *src = i ? r->uncond : r->cond;
            memcpy(emb + i * per, src, per * sizeof *emb);
            memcpy(emb + n_emb * per + i * pc, src + per, pc * sizeof *emb);
            memcpy(emb + n_emb * (per + pc) + i * nt, src + per + pc, nt * sizeof *emb);
        }
    }
    void *buf = NULL;
    size_t len = 0;
    if (!s) {
        res->steps = pd->steps;
        res->k_used = (uint16_t)r->k_used;
        res->sampler = pd->sampler;
        res->c = (uint16_t)r->c;
        res->h = (uint16_t)r->h;
        res->w = (uint16_t)r->w;
        res->latent = r->latent;
        res->sampler_state.p = st_buf;
        res->sampler_state.n = st_len;
        res->n_emb = (uint8_t)n_emb;
        res->emb_t = n_emb ? (uint16_t)r->n_ctx : 0;
        res->emb_c = n_emb ? (uint16_t)r->emb_c : 0;
        res->emb = emb;
        if (emb && pc) {
            res->pooled_c = (uint16_t)pc;
            res->n_time_ids = (uint16_t)nt;
            res->pooled = emb + n_emb * per;
            res->time_ids = emb + n_emb * (per + pc);
        }
        res->device_ms = r->device_ms;
        res->queue_ms = r->queue_ms;
        s = hsd_wire_encode_alloc(&buf, &len, &m);
    }
    if (s) {
        reply_error(sv, &route, pd->version, pd->request_id, HSD_WIRE_E_INTERNAL, 0,
                    hsd_last_error());
    } else if (hsd_net_server_reply(sv->srv, &route, buf, len)) {
        HSD_WARN("RESULT for request %llu not sent: %s", (unsigned long long)pd->request_id,
                 hsd_last_error());
    }
    free(buf);
    free(emb);
    free(st_buf);
    free(pd);
}

static struct pending *find_pending(struct service *sv, const char *key, uint64_t rid) {
    for (struct pending *p = sv->pending; p; p = p->next)
        if (p->request_id == rid && !strcmp(p->key_id, key)) return p;
    return NULL;
}

// One side of a GENERATE's prompt as the batcher takes it: a TOKENS prompt
// as 77 ids (padded), a TEXT prompt as a NUL-terminated copy (*text, NULL
// when empty and `optional`). No tokenizing here, on the receive thread
// (issue 10 item 5): the batcher tokenizes at admission.
static enum hsd_status prompt_side(const struct hsd_pipeline *p, const struct hsd_wire_prompt *w,
                                   int optional, int *is_ids, int32_t *ids, char **text) {
    *is_ids = w->kind == HSD_WIRE_PROMPT_TOKENS;
    if (*is_ids) {
        int32_t pad = hsd_pipeline_pad_id(p);
        for (int i = 0; i < HSD_TEXT_LEN; i++) ids[i] = pad;
        hsd_wire_read_tokens(ids, w);
        return HSD_OK;
    }
    if (optional && !w->text.n) return HSD_OK;
    *text = strndup(w->text.p ? w->text.p : "", w->text.n);
    return *text ? HSD_OK : hsd_fail(HSD_ERR_NOMEM, "out of memory");
}

// The request's LoRAs by name -> scales by the pipeline's LoRA index
// (hsd serve --lora NAME=FILE registered them at start).
static enum hsd_status lora_scales(struct hsd_pipeline *p, const struct hsd_wire_generate *g,
                                   struct hsd_sched_params *prm) {
    for (unsigned i = 0; i < g->n_loras; i++) {
        char name[HSD_WIRE_MAX_LORA_NAME + 1];
        snprintf(name, sizeof name, "%.*s", (int)g->loras[i].name.n, g->loras[i].name.p);
        int k = hsd_pipeline_lora_index(p, name);
        if (k < 0)
            return hsd_fail(HSD_ERR_INVALID_ARG,
                            "unknown LoRA '%s': this service has %d (hsd serve --lora NAME=FILE)",
                            name, hsd_pipeline_lora_count(p));
        prm->lora_scales[k] = g->loras[i].scale;
        prm->has_lora = 1;
    }
    return HSD_OK;
}

static void handle_generate(struct service *sv, struct hsd_pipeline *p0,
                            const struct hsd_wire_msg *m, const char *key_id,
                            const struct hsd_net_route *route) {
    const struct hsd_wire_generate *g = &m->u.generate;
    pthread_mutex_lock(&sv->mu);
    struct pending *dup = find_pending(sv, key_id, m->request_id);
    if (dup) {
        // A resend of a request in progress: answer on the newest route.
        dup->route = *route;
        pthread_mutex_unlock(&sv->mu);
        return;
    }
    int draining = sv->draining;
    pthread_mutex_unlock(&sv->mu);
    if (draining) {
        reply_error(sv, route, m->version, m->request_id, HSD_WIRE_E_SHUTTING_DOWN, 1000,
                    "the service is shutting down");
        return;
    }
    if (g->model.n) {
        reply_error(sv, route, m->version, m->request_id, HSD_WIRE_E_BAD_REQUEST, 0,
                    "this service serves one model; leave the model name empty");
        return;
    }
    // A request this model cannot answer, or whose edge cannot finish what
    // it would get, is refused before any compute.
    if (hsd_service_check_fit(p0, m)) {
        reply_error(sv, route, m->version, m->request_id, HSD_WIRE_E_BAD_REQUEST, 0,
                    hsd_last_error());
        return;
    }
    struct hsd_sched_params prm = {0};
    char *prompt = NULL, *neg = NULL;
    prm.gen.guidance_scale = g->cfg_scale;
    prm.gen.steps = g->steps;
    prm.gen.sampler = (enum hsd_sampler_kind)g->sampler;
    prm.gen.width = g->width;
    prm.gen.height = g->height;
    prm.gen.seed = g->seed;
    prm.gen.batch_count = 1;
    prm.gen.clip_skip = g->clip_skip;
    prm.gen.prompt_style = g->flags & HSD_WIRE_GEN_A1111 ? HSD_PROMPT_A1111 : HSD_PROMPT_DIFFUSERS;
    prm.gen.split = -1;
    prm.gen.original_width = g->original_width;  // SDXL micro-conditioning; 0 = default
    prm.gen.original_height = g->original_height;
    prm.gen.crop_top = g->crop_top;
    prm.gen.crop_left = g->crop_left;
    prm.k_min = g->k_min;
    prm.k_max = g->k_max;
    prm.deadline_ms = g->deadline_ms;
    prm.priority = g->priority;
    snprintf(prm.tenant, sizeof prm.tenant, "%s", key_id);  // quotas and turns per key
    enum hsd_status s = lora_scales(p0, g, &prm);
    if (!s) s = prompt_side(p0, &g->prompt, 0, &prm.prompt_is_ids, prm.prompt_ids, &prompt);
    if (!s) s = prompt_side(p0, &g->negative, 1, &prm.neg_is_ids, prm.neg_ids, &neg);
    prm.gen.prompt = prompt;
    prm.gen.negative_prompt = neg;
    struct pending *pd = calloc(1, sizeof *pd);
    if (!pd && !s) s = hsd_fail(HSD_ERR_NOMEM, "out of memory");
    if (s) {
        reply_error(sv, route, m->version, m->request_id, HSD_WIRE_E_BAD_REQUEST, 0,
                    hsd_last_error());
        free(pd);
        free(prompt);
        free(neg);
        return;
    }
    snprintf(pd->key_id, sizeof pd->key_id, "%s", key_id);
    pd->request_id = m->request_id;
    pd->route = *route;
    pd->include_text = (g->flags & HSD_WIRE_GEN_TEXT_EMB) != 0;
    pd->version = m->version;
    pd->sampler = g->sampler;
    pd->steps = g->steps;
    // Listed before submit: on_done may run before submit returns.
    pthread_mutex_lock(&sv->mu);
    pd->next = sv->pending;
    sv->pending = pd;
    pthread_mutex_unlock(&sv->mu);
    int busy;
    uint32_t retry;
    uint64_t sid;
    s = hsd_sched_submit(sv->sched, &prm, pd, &sid, &busy, &retry);
    free(prompt);
    free(neg);
    if (s) {
        pthread_mutex_lock(&sv->mu);
        for (struct pending **pp = &sv->pending; *pp; pp = &(*pp)->next)
            if (*pp == pd) {
                *pp = pd->next;
                break;
            }
        pthread_mutex_unlock(&sv->mu);
        reply_error(sv, route, m->version, m->request_id,
                    busy ? (sv->draining ? HSD_WIRE_E_SHUTTING_DOWN : HSD_WIRE_E_BUSY)
                         : HSD_WIRE_E_BAD_REQUEST,
                    retry, hsd_last_error());
        free(pd);
        return;
    }
    // on_done may already have run (and freed pd) on a worker thread: write
    // the id only while pd is still listed (issue 15, finding 7). Only this
    // thread adds to the list, so a listed pd is this one, not a new
    // allocation at the same address.
    pthread_mutex_lock(&sv->mu);
    for (struct pending *q = sv->pending; q; q = q->next)
        if (q == pd) {
            pd->sched_id = sid;
            break;
        }
    pthread_mutex_unlock(&sv->mu);
}

static void handle_cancel(struct service *sv, const struct hsd_wire_msg *m, const char *key_id,
                          const struct hsd_net_route *route) {
    pthread_mutex_lock(&sv->mu);
    struct pending *pd = find_pending(sv, key_id, m->u.cancel.target);
    uint64_t sid = pd ? pd->sched_id : 0;
    pthread_mutex_unlock(&sv->mu);
    int ok = sid ? hsd_sched_cancel(sv->sched, sid) : 0;
    struct hsd_wire_msg a = {.version = m->version, .type = HSD_WIRE_CANCEL_ACK,
                             .request_id = m->request_id};
    a.u.cancel_ack.target = m->u.cancel.target;
    a.u.cancel_ack.cancelled = (uint8_t)ok;
    char buf[256];
    size_t len;
    if (!hsd_wire_encode(buf, sizeof buf, &len, &a)) hsd_net_server_reply(sv->srv, route, buf, len);
}

static void handle_status(struct service *sv, const struct hsd_wire_msg *m,
                          const struct hsd_net_route *route) {
    struct hsd_sched_stats st;
    hsd_sched_get_stats(sv->sched, &st);
    struct hsd_wire_msg a = {.version = m->version, .type = HSD_WIRE_STATUS,
                             .request_id = m->request_id};
    struct hsd_wire_status *w = &a.u.status;
    w->health = sv->draining ? HSD_WIRE_HEALTH_DRAINING
                : st.healthy_devices < st.devices ? HSD_WIRE_HEALTH_DEGRADED
                                                  : HSD_WIRE_HEALTH_OK;
    w->queue_depth = (uint32_t)st.queued;
    w->queue_limit = (uint32_t)sv->o->sched.queue_limit;
    w->active = (uint32_t)st.active;
    w->max_batch = (uint32_t)sv->o->sched.max_batch_rows;
    w->steps_per_s = st.uptime_ms > 0 ? (float)(st.image_steps / (st.uptime_ms / 1e3)) : 0.0f;
    w->uptime_ms = (uint64_t)st.uptime_ms;
    w->requests_done = st.done;
    w->requests_failed = st.failed + st.cancelled + st.expired;
    w->max_message = (uint32_t)sv->max_msg;
    w->server.p = HSD_VERSION_STR;
    w->server.n = strlen(HSD_VERSION_STR);
    // Each device as it is: its backend's kind and description, and
    // whether a device error took it out of the pool.
    int n_dev = hsd_sched_device_count(sv->sched);
    if (n_dev > (int)HSD_WIRE_MAX_DEVICES) n_dev = (int)HSD_WIRE_MAX_DEVICES;
    char names[HSD_WIRE_MAX_DEVICES][HSD_WIRE_MAX_SHORT_TEXT + 1];
    int n = 0, healthy = 0;
    for (int i = 0; i < n_dev; i++) {
        struct hsd_sched_device_stats ds;
        if (hsd_sched_get_device_stats(sv->sched, i, &ds)) break;
        // The wire allows 64 bytes: cut at a UTF-8 character boundary.
        size_t len = strlen(ds.desc);
        if (len > HSD_WIRE_MAX_SHORT_TEXT) {
            len = HSD_WIRE_MAX_SHORT_TEXT;
            while (len > 0 && ((unsigned char)ds.desc[len] & 0xC0) == 0x80) len--;
        }
        memcpy(names[n], ds.desc, len);
        names[n][len] = '\0';
        struct hsd_wire_device *d = &w->devices[n++];
        d->kind = ds.kind == HSD_BACKEND_CUDA ? HSD_WIRE_DEVICE_CUDA : HSD_WIRE_DEVICE_CPU;
        d->healthy = (uint8_t)(ds.healthy != 0);
        d->batch = (uint16_t)(ds.batch > 65535 ? 65535 : ds.batch);
        d->mem_total_mib = (uint32_t)(ds.mem_total >> 20);
        d->mem_used_mib = (uint32_t)(ds.mem_used >> 20);
        if (d->mem_used_mib > d->mem_total_mib) d->mem_used_mib = d->mem_total_mib;
        d->name.p = names[n - 1];
        d->name.n = len;
        healthy += d->healthy;
    }
    w->n_devices = (uint8_t)n;
    // The flags just listed decide (they may be newer than `st`), so the
    // health and the list agree.
    if (!sv->draining && healthy < n) w->health = HSD_WIRE_HEALTH_DEGRADED;
    char buf[8192];
    size_t len;
    if (!hsd_wire_encode(buf, sizeof buf, &len, &a)) hsd_net_server_reply(sv->srv, route, buf, len);
}

// Everything the receive thread does for one message: precheck, decode,
// auth, then the handler. Returns the message type (0 if unreadable).
static int handle_msg(struct service *sv, struct hsd_pipeline *p0, struct hsd_net_msg *msg) {
    struct hsd_wire_msg m;
    enum hsd_wire_error code;
    // With keys: refuse what cannot authenticate (no auth block, unknown
    // key, over the key's size) before a CRC or a MAC runs over it.
    if (sv->auth && hsd_auth_precheck(sv->auth, msg->data, msg->len, &code)) {
        struct hsd_wire_frame f;
        enum hsd_wire_error ignored;
        hsd_wire_peek_frame(&f, &ignored, msg->data, msg->len);  // request id, if readable
        reply_error(sv, &msg->route, f.version, f.request_id, code, 0, hsd_last_error());
        return 0;
    }
    if (hsd_wire_decode(&m, &code, msg->data, msg->len)) {
        reply_error(sv, &msg->route, m.version, m.request_id, code, 0, hsd_last_error());
        return 0;
    }
    char key_id[HSD_WIRE_KEY_ID_SIZE] = "";
    if (m.type == HSD_WIRE_GENERATE || m.type == HSD_WIRE_CANCEL ||
        m.type == HSD_WIRE_STATUS_REQUEST) {
        // Authentication before any compute or any answer
        // (docs/protocol.md: a service with a keys file requires signed
        // STATUS requests too; health probes use `hsd status` with a key).
        if (sv->auth) {
            const struct hsd_auth_key *key;
            uint32_t retry = 0;
            // On the decode above (issue 10 item 5): auth reads the auth
            // block and GENERATE's sizes from m, not from the bytes again.
            if (hsd_auth_check_msg(sv->auth, &m, msg->data, msg->len, hsd_auth_now_ms(), &key,
                                   &code, &retry)) {
                reply_error(sv, &msg->route, m.version, m.request_id, code, retry,
                            hsd_last_error());
                return 0;
            }
            snprintf(key_id, sizeof key_id, "%s", hsd_auth_key_id(key));
        } else if (m.flags & HSD_WIRE_FLAG_AUTH) {
            snprintf(key_id, sizeof key_id, "%.*s", (int)sizeof m.auth.key_id - 1,
                     m.auth.key_id);
        }
    }
    switch (m.type) {
    case HSD_WIRE_GENERATE: handle_generate(sv, p0, &m, key_id, &msg->route); break;
    case HSD_WIRE_CANCEL: handle_cancel(sv, &m, key_id, &msg->route); break;
    case HSD_WIRE_STATUS_REQUEST: handle_status(sv, &m, &msg->route); break;
    default:
        reply_error(sv, &msg->route, m.version, m.request_id, HSD_WIRE_E_BAD_MESSAGE, 0,
                    "not a request type");
    }
    return m.type;
}

static void warmup_report(void *user, int rows, int width, int height, double ms) {
    fprintf(stderr, "hsd serve: warm-up %s: %d rows at %dx%d: %.3f ms\n", (const char *)user, rows,
            width, height, ms);
}

// Every device plans (and on CUDA records) each (bucket, size) before its
// worker starts and the socket opens (docs/denoise_step.md "Warm-up").
static enum hsd_status warm_up(struct hsd_pipeline *const *devices, int n_devices,
                               const struct hsd_service_opts *o) {
    for (int i = 0; i < n_devices; i++) {
        int native[2];
        native[0] = native[1] = hsd_pipeline_native_size(devices[i]);
        const int *sizes = o->warmup_sizes ? o->warmup_sizes : native;
        int n_sizes = o->warmup_sizes ? o->n_warmup_sizes : 1;
        char name[32];
        snprintf(name, sizeof name, "device %d", i);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        enum hsd_status s = hsd_pipeline_warmup(devices[i], o->sched.max_batch_rows, sizes, n_sizes,
                                                warmup_report, name);
        // An admission encodes up to admit_batch requests' prompts, two each with CFG.
        double text_ms = 0;
        if (!s) s = hsd_pipeline_warmup_text(devices[i], 2 * o->sched.admit_batch, &text_ms);
        if (s) return hsd_fail_context(s, "%s: ", name);
        fprintf(stderr, "hsd serve: warm-up %s: text encoder, 1..%d prompts: %.3f ms\n", name,
                2 * o->sched.admit_batch, text_ms);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        fprintf(stderr, "hsd serve: warm-up %s done in %.1f ms\n", name,
                (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
    }
    return HSD_OK;
}

enum hsd_status hsd_service_run(struct hsd_pipeline *const *devices, int n_devices,
                                const struct hsd_service_opts *o, volatile sig_atomic_t *stop) {
    struct service sv = {.o = o, .max_msg = (int)HSD_WIRE_MAX_REQUEST};
    pthread_mutex_init(&sv.mu, NULL);
    enum hsd_status s = HSD_OK;
    struct hsd_metrics_http *http = NULL;
    if (o->keys_file) {
        if ((s = hsd_auth_load(&sv.auth, o->keys_file, NULL))) return s;
        // Receive no more than the largest request any key may send
        // (issue 15, finding 2): nanomsg reserves the size a peer announces
        // before a byte of it arrives, so this bounds each unauthenticated
        // connection's memory (docs/protocol.md §1).
        uint32_t kmax = hsd_auth_max_bytes(sv.auth);
        if (kmax < (uint32_t)sv.max_msg) sv.max_msg = (int)kmax;
    } else if (!o->allow_no_auth) {
        return hsd_fail(HSD_ERR_INVALID_ARG, "a keys file is required (or explicitly allow "
                                             "unauthenticated clients)");
    }
    if (o->warmup && (s = warm_up(devices, n_devices, o))) goto out;
    struct hsd_sched_opts so = o->sched;
    so.on_done = on_done;
    so.user = &sv;
    if ((s = hsd_sched_create(&sv.sched, &so))) goto out;
    for (int i = 0; i < n_devices && !s; i++) {
        // The pool slot ("gpu:1") names it in logs; the backend's
        // description says what it is.
        const struct hsd_backend *be = hsd_pipeline_backend(devices[i]);
        int gpu = be && be->kind == HSD_BACKEND_CUDA;
        char name[32];
        snprintf(name, sizeof name, "%s:%d", gpu ? "gpu" : "cpu", i);
        s = hsd_sched_add_device(sv.sched, devices[i], name);
        if (!s) HSD_INFO("device %s: %s", name, be ? be->desc : "?");
    }
    if (s) goto out;
    if (o->sched_out) *o->sched_out = sv.sched;
    struct hsd_net_opts no = {.max_msg = sv.max_msg};
    if ((s = hsd_net_server_open(&sv.srv, NULL, o->endpoints, o->n_endpoints, &no))) goto out;
    if (o->metrics_port > 0) {
        struct hsd_metrics_source src = {.sched = sv.sched, .mu = &sv.mu, .errors = sv.errors,
                                         .n_codes = HSD_WIRE_E_MAX + 1};
        if ((s = hsd_metrics_http_start(&http, o->metrics_port, &src, NULL))) goto out;
    }
    HSD_INFO("serving on %s (%d device(s))%s", o->endpoints[0], n_devices,
             sv.auth ? "" : ", WITHOUT authentication");
    fprintf(stderr, "hsd serve: ready on %s\n", o->endpoints[0]);
    while (!*stop) {
        struct hsd_net_msg msg;
        enum hsd_net_wait what;
        if ((s = hsd_net_server_recv(sv.srv, &msg, 100, &what))) break;
        if (what != HSD_NET_GOT) {
            if (what == HSD_NET_STOPPED) break;
            continue;
        }
        double t0 = hsd_recv_timing_now_us();
        int type = handle_msg(&sv, devices[0], &msg);
        if (type == HSD_WIRE_GENERATE) hsd_recv_timing_add(&sv.recv_t, hsd_recv_timing_now_us() - t0);
        hsd_net_msg_release(&msg);
    }
    // Graceful shutdown: refuse new work, let in-flight requests finish
    // within the grace period, fail the rest explicitly (on_done replies).
    fprintf(stderr, "hsd serve: shutting down (grace %d ms)\n", o->grace_ms);
    pthread_mutex_lock(&sv.mu);
    sv.draining = 1;
    pthread_mutex_unlock(&sv.mu);
    hsd_sched_shutdown(sv.sched, o->grace_ms);
    hsd_recv_timing_report(&sv.recv_t, o->recv_us_out);
    {
        // Give the last replies a moment on the wire (nanomsg has no linger).
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
out:
    if (o->sched_out) *o->sched_out = NULL;
    hsd_metrics_http_stop(http);
    hsd_sched_destroy(sv.sched);
    hsd_net_server_close(sv.srv);
    hsd_auth_free(sv.auth);
    while (sv.pending) {
        struct pending *n = sv.pending->next;
        free(sv.pending);
        sv.pending = n;
    }
    pthread_mutex_destroy(&sv.mu);
    return s;
}
