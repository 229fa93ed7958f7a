// The routes of `hsd edge --http` (a1111_api.h): A1111's /sdapi/v1/...
// endpoints that its clients call, answered from the daemon's state, and
// the page at /. Only txt2img computes; it is queued for the worker.
#include "edge/a1111_api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/file.h"

void hsd_a1111_json(struct hsd_http_reply *reply, int status, json_t *j) {
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (!s) {
        static const char oom[] =
            "{\"error\":\"HTTPException\",\"detail\":\"out of memory\",\"body\":\"\",\"errors\":"
            "\"out of memory\"}";
        *reply = (struct hsd_http_reply){500, (char *)oom, sizeof oom - 1, 1, "application/json",
                                         0};
        return;
    }
    *reply = (struct hsd_http_reply){status, s, strlen(s), 0, "application/json", 0};
}

void hsd_a1111_error(struct hsd_http_reply *reply, int status, const char *msg) {
    // modules/api/api.py handle_exception: {error, detail, body, errors}.
    hsd_a1111_json(reply, status,
                   json_pack("{s:s, s:s, s:s, s:s}", "error", "HTTPException", "detail", msg,
                             "body", "", "errors", msg));
}

static double mono_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

enum hsd_status hsd_a1111_init(struct hsd_a1111 *a, const struct hsd_edge_http_config *cfg) {
    memset(a, 0, sizeof *a);
    a->cfg = cfg;
    pthread_mutex_init(&a->mu, NULL);
    atomic_init(&a->interrupt, 0);
    struct hsd_a1111_settings *s = &a->settings;
    // The model's title is its folder's name, as A1111 titles checkpoints
    // by file name.
    const char *path = cfg->pc->model, *base = strrchr(path, '/');
    size_t n = strlen(path);
    while (base && base[1] == '\0' && base > path) {  // "dir/" -> "dir"
        n = (size_t)(base - path);
        const char *q = base;
        base = NULL;
        for (const char *x = path; x < q; x++)
            if (*x == '/') base = x;
    }
    const char *start = base ? base + 1 : path;
    snprintf(s->model_title, sizeof s->model_title, "%.*s", (int)(path + n - start), start);
    // The VAEs to choose from: the one hsd started with, then the model's
    // vae/ and vae_tiny/ (pipeline.h's "full" and "tiny").
    const char *start_vae = cfg->pc->vae ? cfg->pc->vae : "full";
    snprintf(s->vaes[s->n_vaes++], sizeof s->vaes[0], "%s", start_vae);
    static const char *const names[2] = {"full", "tiny"}, *const dirs[2] = {"vae", "vae_tiny"};
    for (int i = 0; i < 2; i++) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/%s", path, dirs[i]);
        if (strcmp(start_vae, names[i]) && hsd_is_dir(dir))
            snprintf(s->vaes[s->n_vaes++], sizeof s->vaes[0], "%s", names[i]);
    }
    snprintf(s->vae, sizeof s->vae, "%s", start_vae);
    snprintf(a->loaded_vae, sizeof a->loaded_vae, "%s", start_vae);
    s->clip_skip = cfg->base.gen.clip_skip;
    s->prompt_style = (int)cfg->base.gen.prompt_style;
    s->sdxl = hsd_pipeline_is_sdxl(*cfg->p);
    s->k_min = cfg->base.k_min;
    s->k_max = cfg->base.k_max;
    for (int i = 0; i < cfg->base.n_loras && i < HSD_PIPELINE_MAX_LORAS; i++)
        snprintf(s->loras[s->n_loras++], sizeof s->loras[0], "%s", cfg->base.lora_names[i]);
    enum hsd_status st = hsd_http_queue_start(&a->queue, cfg->queue_limit > 0 ? cfg->queue_limit : 8);
    if (st) pthread_mutex_destroy(&a->mu);
    return st;
}

void hsd_a1111_free(struct hsd_a1111 *a) {
    hsd_http_queue_stop(&a->queue);
    pthread_mutex_destroy(&a->mu);
}

// ---- GET endpoints ----

static struct hsd_a1111_settings settings(struct hsd_a1111 *a) {
    pthread_mutex_lock(&a->mu);
    struct hsd_a1111_settings s = a->settings;
    pthread_mutex_unlock(&a->mu);
    return s;
}

static json_t *options_json(struct hsd_a1111 *a) {
    struct hsd_a1111_settings s = settings(a);
    json_t *split = s.k_min == s.k_max ? json_integer(s.k_max)
                                       : json_sprintf("%d:%d", s.k_min, s.k_max);
    return json_pack("{s:s, s:s, s:i, s:s, s:o}", "sd_model_checkpoint", s.model_title, "sd_vae",
                     s.vae, "CLIP_stop_at_last_layers", s.clip_skip + 1, "samples_format",
                     "png", "hsd_split", split);
}

static json_t *models_json(struct hsd_a1111 *a) {
    struct hsd_a1111_settings s = settings(a);
    return json_pack("[{s:s, s:s, s:n, s:n, s:s, s:n}]", "title", s.model_title, "model_name",
                     s.model_title, "hash", "sha256", "filename", a->cfg->pc->model, "config");
}

static json_t *vaes_json(struct hsd_a1111 *a) {
    struct hsd_a1111_settings s = settings(a);
    json_t *list = json_array();
    for (int i = 0; list && i < s.n_vaes; i++)
        json_array_append_new(list, json_pack("{s:s, s:s}", "model_name", s.vaes[i], "filename",
                                              s.vaes[i]));
    return list;
}

// modules/api/api.py progressapi: 0.01 + finished images / images + the
// current image's share; eta from the elapsed time at that rate.
static json_t *progress_json(struct hsd_a1111 *a) {
    pthread_mutex_lock(&a->mu);
    struct hsd_a1111_progress p = a->progress;
    pthread_mutex_unlock(&a->mu);
    double progress = 0, eta = 0;
    if (p.job_count > 0) {
        progress = 0.01 + (double)p.job_no / p.job_count;
        if (p.sampling_steps > 0)
            progress += 1.0 / p.job_count * p.sampling_step / p.sampling_steps;
        double elapsed = mono_s() - p.time_start;
        eta = elapsed / progress - elapsed;
        progress = fmin(progress, 1.0);
    }
    json_t *state = json_pack("{s:b, s:b, s:s, s:i, s:s, s:i, s:i, s:i, s:i}", "skipped", 0,
                              "interrupted", p.interrupted, "job", p.job_count ? "txt2img" : "",
                              "job_count", p.job_count, "job_timestamp", p.job_timestamp,
                              "job_no", p.job_no, "sampling_step", p.sampling_step,
                              "sampling_steps", p.sampling_steps, "queue",
                              hsd_http_queue_depth(&a->queue));
    return json_pack("{s:f, s:f, s:o, s:n, s:n}", "progress", progress, "eta_relative", eta,
                     "state", state, "current_image", "textinfo");
}

// ---- txt2img: parsed here, run by the worker ----

struct t2i_job {
    struct hsd_http_job base;  // first: the queue sees this
    struct hsd_a1111 *a;
    struct hsd_a1111_txt2img t;
    hsd_http_done_fn done;
    void *user;
};

static void t2i_finish(struct t2i_job *j, struct hsd_http_reply *reply) {
    j->done(j->user, reply);
    hsd_a1111_txt2img_free(&j->t);
    free(j);
}

static void t2i_run(struct hsd_http_job *base) {
    struct t2i_job *j = (struct t2i_job *)base;
    struct hsd_http_reply reply;
    hsd_a1111_txt2img_run(j->a, &j->t, &reply);
    t2i_finish(j, &reply);
}

static void t2i_cancel(struct hsd_http_job *base) {
    struct hsd_http_reply reply;
    hsd_a1111_error(&reply, 503, "hsd edge is shutting down");
    t2i_finish((struct t2i_job *)base, &reply);
}

static int txt2img(struct hsd_a1111 *a, const char *body, size_t len, struct hsd_http_reply *reply,
                   hsd_http_done_fn done, void *user) {
    char msg[512];
    struct t2i_job *j = calloc(1, sizeof *j);
    if (!j) return hsd_a1111_error(reply, 500, "out of memory"), 1;
    struct hsd_a1111_settings s = settings(a);
    int st = hsd_a1111_parse_txt2img(&j->t, body, len, &s, msg, sizeof msg);
    if (st) {
        free(j);
        return hsd_a1111_error(reply, st, msg), 1;
    }
    // The request alone (sizes, texts, ranges); what needs the model is
    // checked by the worker, which owns it.
    const struct hsd_edge_http_config *c = a->cfg;
    j->t.r.deadline_ms = c->base.deadline_ms;
    j->t.r.priority = c->base.priority;
    j->t.r.cloud_model = c->base.cloud_model;
    // The cloud knows the LoRAs by the names the edge registered (the
    // prompt's tags chose their scales, in the same order).
    j->t.r.lora_names = c->base.lora_names;
    j->t.r.n_loras = c->base.n_loras;
    if (hsd_edge_request_validate(&j->t.r, NULL)) {
        hsd_a1111_error(reply, 422, hsd_last_error());
        goto refuse;
    }
    j->base = (struct hsd_http_job){t2i_run, t2i_cancel, NULL};
    j->a = a;
    j->done = done;
    j->user = user;
    if (hsd_http_queue_push(&a->queue, &j->base)) return 0;
    pthread_mutex_lock(&a->mu);
    double per_job = a->last_job_s;
    pthread_mutex_unlock(&a->mu);
    int depth = hsd_http_queue_depth(&a->queue);
    snprintf(msg, sizeof msg, "the queue is full (%d requests); retry later", depth);
    hsd_a1111_error(reply, 503, msg);
    // The time the queue ahead should take, by the last request's length.
    double wait = ceil(per_job * depth);
    reply->retry_after_s = wait < 1 ? 1 : wait > 3600 ? 3600 : (int)wait;
refuse:
    hsd_a1111_txt2img_free(&j->t);
    free(j);
    return 1;
}

// ---- routing ----

int hsd_a1111_route(struct hsd_a1111 *a, const char *method, const char *url, const char *body,
                    size_t len, struct hsd_http_reply *reply, hsd_http_done_fn done, void *user) {
    const int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    const int post = !strcmp(method, "POST");
    static const char api[] = "/sdapi/v1/";
    if (!strcmp(url, "/") || !strcmp(url, "/index.html")) {
        if (!get) goto not_allowed;
        *reply = (struct hsd_http_reply){200, (char *)hsd_edge_web_page, hsd_edge_web_page_len, 1,
                                         "text/html; charset=utf-8", 0};
        return 1;
    }
    if (strncmp(url, api, sizeof api - 1)) goto not_found;
    const char *ep = url + sizeof api - 1;
    if (!strcmp(ep, "txt2img")) {
        if (!post) goto not_allowed;
        return txt2img(a, body, len, reply, done, user);
    }
    if (!strcmp(ep, "options")) {
        if (get) return hsd_a1111_json(reply, 200, options_json(a)), 1;
        if (!post) goto not_allowed;
        char msg[512];
        pthread_mutex_lock(&a->mu);
        int st = hsd_a1111_parse_options(&a->settings, body, len, msg, sizeof msg);
        pthread_mutex_unlock(&a->mu);
        if (st) return hsd_a1111_error(reply, st, msg), 1;
        return hsd_a1111_json(reply, 200, json_null()), 1;
    }
    if (!strcmp(ep, "interrupt")) {
        if (!post) goto not_allowed;
        // Like A1111's state.interrupt(): the running request stops at its
        // next step; one that starts later is not affected.
        atomic_store(&a->interrupt, 1);
        pthread_mutex_lock(&a->mu);
        if (a->progress.job_count) a->progress.interrupted = 1;
        pthread_mutex_unlock(&a->mu);
        return hsd_a1111_json(reply, 200, json_object()), 1;
    }
    json_t *j = NULL;
    if (!strcmp(ep, "progress"))
        j = progress_json(a);
    else if (!strcmp(ep, "samplers"))
        j = hsd_a1111_samplers_json();
    else if (!strcmp(ep, "schedulers"))
        j = json_pack("[{s:s, s:s, s:n, s:i, s:b}]", "name", "automatic", "label", "Automatic",
                      "aliases", "default_rho", -1, "need_inner_model", 0);
    else if (!strcmp(ep, "sd-models"))
        j = models_json(a);
    else if (!strcmp(ep, "sd-vae"))
        j = vaes_json(a);
    else if (!strcmp(ep, "scripts"))
        j = json_pack("{s:[], s:[]}", "txt2img", "img2img");
    else
        goto not_found;
    if (!get) {
        json_decref(j);
        goto not_allowed;
    }
    hsd_a1111_json(reply, 200, j);
    return 1;
not_allowed:
    hsd_a1111_error(reply, 405, "Method Not Allowed");
    return 1;
not_found:
    hsd_a1111_error(reply, 404, "Not Found");
    return 1;
}
