// One queued POST /sdapi/v1/txt2img on the worker thread: batch_size *
// n_iter images, image i with seed + i (A1111's all_seeds; hsd generate's
// batch seeds), each through hsd_edge_run; PNGs in memory with A1111's
// "parameters" text, base64 (libsodium), and A1111's {images, parameters,
// info} with info a JSON string (processed.js()) that adds what the hybrid
// did per image: cloud k, fallback and why, timings, interruption.
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edge/a1111_api.h"
#include "io/png.h"

static double mono_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void on_progress(void *user, int done, int total) {
    struct hsd_a1111 *a = user;
    pthread_mutex_lock(&a->mu);
    a->progress.sampling_step = done;
    a->progress.sampling_steps = total;
    pthread_mutex_unlock(&a->mu);
}

// A1111's infotext (modules/processing.py create_infotext), which A1111
// stores as the PNG's "parameters" text and clients parse back.
static char *infotext(const struct hsd_a1111_txt2img *t, const struct hsd_a1111_settings *s,
                      uint64_t seed, const struct hsd_edge_run_info *ri) {
    const struct hsd_gen_request *g = &t->r.gen;
    char hybrid[96];
    if (ri->cloud.outcome == HSD_EDGE_LOCAL)
        snprintf(hybrid, sizeof hybrid, "local fallback");
    else
        snprintf(hybrid, sizeof hybrid, "cloud k=%d", ri->k_used);
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    if (!f) return NULL;
    fprintf(f, "%s", t->prompt_written);  // A1111 keeps the <lora:...> tags in it
    if (*g->negative_prompt) fprintf(f, "\nNegative prompt: %s", g->negative_prompt);
    fprintf(f, "\nSteps: %d, Sampler: %s, Schedule type: Automatic, CFG scale: %g, Seed: %llu, "
               "Size: %dx%d, Model: %s",
            g->steps, t->sampler_name, (double)g->guidance_scale, (unsigned long long)seed,
            g->width, g->height, s->model_title);
    if (g->clip_skip) fprintf(f, ", Clip skip: %d", g->clip_skip + 1);
    fprintf(f, ", Hybrid: %s%s, Version: hybridsd", hybrid,
            ri->edge.interrupted ? " (interrupted)" : "");
    fclose(f);
    return out;
}

static json_t *image_info(uint64_t seed, const struct hsd_edge_run_info *ri) {
    int local = ri->cloud.outcome == HSD_EDGE_LOCAL;
    json_t *j = json_pack("{s:I, s:i, s:i, s:f, s:i, s:f, s:f, s:b}", "seed", (json_int_t)seed,
                          "cloud_k", ri->k_used, "cloud_attempts", ri->cloud.attempts,
                          "cloud_wait_ms", ri->cloud.wait_ms, "edge_calls", ri->edge.calls,
                          "edge_unet_ms", ri->edge.unet_ms, "decode_ms", ri->edge.decode_ms,
                          "interrupted", ri->edge.interrupted);
    if (!j) return NULL;
    json_object_set_new(j, "fallback", local ? json_string("local") : json_null());
    if (local)
        json_object_set_new(j, "fallback_reason", json_string(ri->cloud.reason));
    else
        json_object_set_new(j, "cloud_device_ms", json_real(ri->device_ms));
    return j;
}

// The decoder asked for (settings.vae) if the pipeline has another: the
// edge model reloaded with it (pipeline.h's --vae), the old one freed.
static enum hsd_status use_vae(struct hsd_a1111 *a, const char *vae) {
    if (!strcmp(vae, a->loaded_vae)) return HSD_OK;
    struct hsd_pipeline_config pc = *a->cfg->pc;
    pc.vae = vae;
    struct hsd_pipeline *np = NULL;
    enum hsd_status s = hsd_pipeline_load(&np, &pc);
    if (s) {
        // Keep the VAE that works as the setting, so later requests run.
        pthread_mutex_lock(&a->mu);
        if (!strcmp(a->settings.vae, vae))
            snprintf(a->settings.vae, sizeof a->settings.vae, "%s", a->loaded_vae);
        pthread_mutex_unlock(&a->mu);
        return hsd_fail_context(s, "loading the edge model with VAE '%s': ", vae);
    }
    hsd_pipeline_free(*a->cfg->p);
    *a->cfg->p = np;
    snprintf(a->loaded_vae, sizeof a->loaded_vae, "%s", vae);
    return HSD_OK;
}

// A failed generation: the cloud refused or answered wrongly (502), no
// cloud and --no-fallback (503), a request the edge model cannot run (422),
// anything else (500).
static int status_of(enum hsd_status s, int validating) {
    if (validating) return s == HSD_ERR_NOMEM ? 500 : 422;
    switch (s) {
    case HSD_ERR_INVALID_ARG:
    case HSD_ERR_FORMAT: return 502;
    case HSD_ERR_IO: return 503;
    default: return 500;
    }
}

void hsd_a1111_txt2img_run(struct hsd_a1111 *a, struct hsd_a1111_txt2img *t,
                           struct hsd_http_reply *reply) {
    const struct hsd_edge_http_config *c = a->cfg;
    struct hsd_a1111_settings s;
    double t0 = mono_s();
    const int n = t->batch_size * t->n_iter;
    if (sodium_init() < 0) {
        hsd_a1111_error(reply, 500, "libsodium failed to initialise");
        return;
    }
    // A1111: a random seed is random.randrange(4294967294).
    const uint64_t seed = t->seed_random ? randombytes_uniform(4294967294u) : t->r.gen.seed;
    pthread_mutex_lock(&a->mu);
    s = a->settings;  // for info; the request's own settings were applied when it was parsed
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    a->progress = (struct hsd_a1111_progress){.job_count = n, .time_start = t0};
    strftime(a->progress.job_timestamp, sizeof a->progress.job_timestamp, "%Y%m%d%H%M%S", &tm);
    atomic_store(&a->interrupt, 0);
    pthread_mutex_unlock(&a->mu);

    struct hsd_edge_request r = t->r;
    r.interrupt = &a->interrupt;
    enum hsd_status st = use_vae(a, s.vae);
    struct hsd_pipeline *p = *c->p;
    json_t *images = json_array(), *seeds = json_array(), *prompts = json_array(),
           *negs = json_array(), *infotexts = json_array(), *hybrid = json_array();
    uint8_t *rgb = malloc((size_t)r.gen.width * r.gen.height * 3);
    int interrupted = 0;
    if (st) {
        hsd_a1111_error(reply, 500, hsd_last_error());
        goto done;
    }
    if ((st = hsd_edge_request_validate(&r, p))) {
        hsd_a1111_error(reply, status_of(st, 1), hsd_last_error());
        goto done;
    }
    if (!rgb || !images || !seeds || !prompts || !negs || !infotexts || !hybrid) {
        hsd_a1111_error(reply, 500, "out of memory");
        goto done;
    }
    for (int i = 0; i < n && !interrupted; i++) {
        struct hsd_edge_run_info ri;
        r.gen.seed = seed + (uint64_t)i;
        pthread_mutex_lock(&a->mu);
        a->progress.sampling_step = 0;
        a->progress.sampling_steps = hsd_pipeline_n_calls(&r.gen);
        pthread_mutex_unlock(&a->mu);
        if ((st = hsd_edge_run(p, &r, c->client, c->no_fallback, rgb, &ri, on_progress, a))) {
            hsd_a1111_error(reply, status_of(st, 0), hsd_last_error());
            goto done;
        }
        interrupted = ri.edge.interrupted || atomic_load(&a->interrupt);
        char *info = infotext(t, &s, r.gen.seed, &ri);
        struct hsd_png_text text[2] = {{"parameters", info ? info : ""}, {"Software", "hybridsd"}};
        uint8_t *png = NULL;
        size_t png_len = 0;
        st = hsd_png_encode(&png, &png_len, rgb, r.gen.width, r.gen.height, text, 2);
        char *b64 = NULL;
        if (!st) {
            size_t b64_len = sodium_base64_encoded_len(png_len, sodium_base64_VARIANT_ORIGINAL);
            if ((b64 = malloc(b64_len)))
                sodium_bin2base64(b64, b64_len, png, png_len, sodium_base64_VARIANT_ORIGINAL);
        }
        free(png);
        if (st || !b64 || !info) {
            free(b64);
            free(info);
            hsd_a1111_error(reply, 500, st ? hsd_last_error() : "out of memory");
            goto done;
        }
        json_array_append_new(images, json_string(b64));
        json_array_append_new(seeds, json_integer((json_int_t)r.gen.seed));
        json_array_append_new(prompts, json_string(t->prompt_written));
        json_array_append_new(negs, json_string(r.gen.negative_prompt));
        json_array_append_new(infotexts, json_string(info));
        json_array_append_new(hybrid, image_info(r.gen.seed, &ri));
        free(b64);
        free(info);
        pthread_mutex_lock(&a->mu);
        a->progress.job_no = i + 1;
        a->progress.interrupted = interrupted;
        pthread_mutex_unlock(&a->mu);
    }
    {
        const struct hsd_gen_request *g = &r.gen;
        json_t *info = json_pack(
            "{s:s, s:O, s:s, s:O, s:I, s:O, s:i, s:i, s:s, s:s, s:f, s:i, s:i, s:i, s:s, s:s, "
            "s:O, s:s, s:s, s:i, s:b, s:O}",
            "prompt", t->prompt_written, "all_prompts", prompts, "negative_prompt", g->negative_prompt,
            "all_negative_prompts", negs, "seed", (json_int_t)seed, "all_seeds", seeds, "width",
            g->width, "height", g->height, "sampler_name", t->sampler_name, "scheduler",
            "Automatic", "cfg_scale", (double)g->guidance_scale, "steps", g->steps, "batch_size",
            t->batch_size, "clip_skip", g->clip_skip + 1, "sd_model_name", s.model_title,
            "sd_vae_name", s.vae, "infotexts", infotexts, "job_timestamp",
            a->progress.job_timestamp, "version", "hybridsd", "index_of_first_image", 0,
            "interrupted", interrupted, "hybrid", hybrid);
        char *info_s = info ? json_dumps(info, JSON_COMPACT) : NULL;
        json_decref(info);
        json_t *resp = info_s ? json_pack("{s:O, s:O, s:s}", "images", images, "parameters",
                                          t->parameters, "info", info_s)
                              : NULL;
        free(info_s);
        if (resp)
            hsd_a1111_json(reply, 200, resp);
        else
            hsd_a1111_error(reply, 500, "out of memory");
    }
done:
    pthread_mutex_lock(&a->mu);
    a->progress.job_count = 0;  // A1111's state.end(): idle again
    a->progress.job_no = a->progress.sampling_step = a->progress.sampling_steps = 0;
    a->last_job_s = mono_s() - t0;
    pthread_mutex_unlock(&a->mu);
    free(rgb);
    json_decref(images);
    json_decref(seeds);
    json_decref(prompts);
    json_decref(negs);
    json_decref(infotexts);
    json_decref(hybrid);
}
