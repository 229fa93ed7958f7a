// RESULT verification: a cloud's reply is input from the network, so the
// edge checks that it answers the request it sent and fits the edge model
// before a single float of it is used (docs/protocol.md §5.2).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/edge.h"
#include "text/prompt_chunks.h"

static enum hsd_status bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static enum hsd_status bad(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    hsd_vfail(HSD_ERR_FORMAT, fmt, ap);
    va_end(ap);
    return hsd_fail_context(HSD_ERR_FORMAT, "cloud RESULT rejected: ");
}

void hsd_edge_expect_from(struct hsd_edge_expect *e, const struct hsd_pipeline *p) {
    e->latent_c = hsd_pipeline_latent_channels(p);
    e->emb_c = hsd_pipeline_text_width(p);
    e->vae_scale = hsd_pipeline_vae_scale(p);
    e->sched = hsd_pipeline_schedule(p);
    e->embedded_guidance = hsd_pipeline_guidance_embedded(p);
    e->pooled_c = hsd_pipeline_is_sdxl(p) ? hsd_pipeline_pooled_dim(p) : 0;
}

// SDXL's added conditioning (RESULT version 2): pooled embeddings exactly
// as wide as the edge U-Net takes, and the time ids this request asked for
// (diffusers _get_add_time_ids), in every pass.
static enum hsd_status check_added(const struct hsd_wire_result *res,
                                   const struct hsd_edge_request *r,
                                   const struct hsd_edge_expect *e) {
    if (res->pooled_c != e->pooled_c)
        return e->pooled_c
                   ? bad("pooled_c %u: the edge's SDXL U-Net needs %d-wide pooled text "
                         "embeddings (is the cloud's model SDXL?)",
                         res->pooled_c, e->pooled_c)
                   : bad("pooled_c %u: pooled text embeddings for an edge U-Net that takes none "
                         "(an SDXL cloud and an SD 1.x/2.x edge)",
                         res->pooled_c);
    if (!e->pooled_c) return HSD_OK;
    float want[HSD_SDXL_N_TIME_IDS], got;
    hsd_pipeline_time_ids(&r->gen, want);
    for (unsigned i = 0; i < (unsigned)res->n_emb * HSD_SDXL_N_TIME_IDS; i++) {
        hsd_wire_read_f32(&got, (const uint8_t *)res->time_ids + 4 * i, 1);
        if (got != want[i % HSD_SDXL_N_TIME_IDS])
            return bad("time_ids[%u][%u] = %g, the request's is %g (original size, crop, size)",
                       i / HSD_SDXL_N_TIME_IDS, i % HSD_SDXL_N_TIME_IDS, (double)got,
                       (double)want[i % HSD_SDXL_N_TIME_IDS]);
    }
    return HSD_OK;
}

void hsd_edge_handover_free(struct hsd_edge_handover *h) {
    if (!h) return;
    hsd_sampler_free(&h->sampler);
    free(h->latent);
    free(h->cond);  // uncond lives in the same block
    memset(h, 0, sizeof *h);
}

static const char *pred_name(enum hsd_prediction p) {
    return p == HSD_PRED_V ? "v_prediction" : "epsilon";
}

enum hsd_status hsd_edge_verify_result(struct hsd_edge_handover *out,
                                       const struct hsd_wire_msg *reply, uint64_t request_id,
                                       const struct hsd_edge_request *r,
                                       const struct hsd_edge_expect *e) {
    memset(out, 0, sizeof *out);
    const struct hsd_gen_request *g = &r->gen;
    if (reply->type != HSD_WIRE_RESULT)
        return bad("got a %s message where a RESULT was expected",
                   hsd_wire_type_name(reply->type));
    if (reply->request_id != request_id)
        return bad("request id %016llx answers another request (sent %016llx)",
                   (unsigned long long)reply->request_id, (unsigned long long)request_id);
    const struct hsd_wire_result *res = &reply->u.result;
    if (res->steps != g->steps)
        return bad("steps %u, the request asked for %d", res->steps, g->steps);
    if (res->sampler != (unsigned)g->sampler)
        return bad("sampler %s, the request asked for %s",
                   hsd_sampler_name((enum hsd_sampler_kind)res->sampler),
                   hsd_sampler_name(g->sampler));
    if (res->k_used < r->k_min || res->k_used > r->k_max)
        return bad("k_used %u outside the requested split [%d, %d]", res->k_used, r->k_min,
                   r->k_max);
    int h = g->height / e->vae_scale, w = g->width / e->vae_scale;
    if (res->c != e->latent_c || res->h != h || res->w != w)
        return bad("latent [%u, %u, %u], the edge model needs [%d, %d, %d] for %dx%d pixels",
                   res->c, res->h, res->w, e->latent_c, h, w, g->width, g->height);
    // Embeddings: always asked for; CFG needs the unconditional row too.
    // (LCM U-Nets take the scale as an input: no uncond row; pipeline_lcm.c.)
    int cfg = g->guidance_scale > 1.0f && !e->embedded_guidance;
    if (res->n_emb == 0) return bad("no text embeddings (the request asked for them)");
    if (cfg && res->n_emb != 2)
        return bad("%u text embedding(s); guidance scale %g needs 2 (cond, uncond)", res->n_emb,
                   (double)g->guidance_scale);
    // A1111 prompts are 77 tokens per 75-token chunk (text/prompt_chunks.h).
    if (g->prompt_style == HSD_PROMPT_A1111
            ? res->emb_t % HSD_TEXT_LEN || !res->emb_t ||
                  res->emb_t > HSD_PROMPT_MAX_CHUNKS * HSD_TEXT_LEN
            : res->emb_t != HSD_TEXT_LEN)
        return bad("text embeddings of %u tokens, expected %s", res->emb_t,
                   g->prompt_style == HSD_PROMPT_A1111 ? "77 x 1..8 chunks" : "77");
    if (res->emb_c != e->emb_c)
        return bad("text embeddings %u wide, the edge U-Net attends to %d (the cloud's text "
                   "encoder does not fit this edge model)",
                   res->emb_c, e->emb_c);
    enum hsd_status added = check_added(res, r, e);
    if (added) return added;

    // The sampler state: deserialize validates it on its own terms (tables
    // consistent with its schedule and N, history length, CRC); then it
    // must be the state of this request at step k_used.
    struct hsd_sampler s;
    if (hsd_sampler_deserialize(&s, res->sampler_state.p, res->sampler_state.n))
        return hsd_fail_context(HSD_ERR_FORMAT, "cloud RESULT rejected: ");
    const char *why = NULL;
    char msg[200];
    size_t n_latent = (size_t)res->c * res->h * res->w;
    if (s.kind != g->sampler) {
        snprintf(msg, sizeof msg, "is a %s state, the request asked for %s",
                 hsd_sampler_name(s.kind), hsd_sampler_name(g->sampler));
        why = msg;
    } else if (s.n_steps != g->steps) {
        snprintf(msg, sizeof msg, "is for %d steps, the request asked for %d", s.n_steps, g->steps);
        why = msg;
    } else if (s.step != res->k_used) {
        snprintf(msg, sizeof msg, "is at U-Net call %d, RESULT says k_used = %u", s.step,
                 res->k_used);
        why = msg;
    } else if (s.n_latent != n_latent) {
        snprintf(msg, sizeof msg, "is for latents of %zu elements, RESULT's latent has %zu",
                 s.n_latent, n_latent);
        why = msg;
    } else if (e->sched && (s.sched.prediction_type != e->sched->prediction_type ||
                            s.sched.num_train_timesteps != e->sched->num_train_timesteps)) {
        snprintf(msg, sizeof msg,
                 "schedule (%s, %d training steps) differs from the edge model's (%s, %d)",
                 pred_name(s.sched.prediction_type), s.sched.num_train_timesteps,
                 pred_name(e->sched->prediction_type), e->sched->num_train_timesteps);
        why = msg;
    }
    if (why) {
        hsd_sampler_free(&s);
        return bad("sampler state %s", why);
    }

    // One pass as hsd_denoise_item takes it: context, then (SDXL) the
    // pooled embedding and the time ids.
    size_t ctx = (size_t)res->emb_t * res->emb_c, pc = res->pooled_c;
    size_t nt = pc ? HSD_SDXL_N_TIME_IDS : 0, pass = ctx + pc + nt;
    out->latent = malloc(n_latent * sizeof(float));
    out->cond = malloc((cfg ? 2 : 1) * pass * sizeof(float));
    if (!out->latent || !out->cond) {
        hsd_sampler_free(&s);
        hsd_edge_handover_free(out);
        return hsd_fail(HSD_ERR_NOMEM, "out of memory for the cloud's handover");
    }
    hsd_wire_read_f32(out->latent, res->latent, n_latent);
    // Wire order: [0] cond (the prompt), [1] uncond (the negative prompt).
    for (int i = 0; i < (cfg ? 2 : 1); i++) {
        float *dst = out->cond + i * pass;
        hsd_wire_read_f32(dst, (const uint8_t *)res->emb + i * ctx * sizeof(float), ctx);
        hsd_wire_read_f32(dst + ctx, (const uint8_t *)res->pooled + i * pc * sizeof(float), pc);
        hsd_wire_read_f32(dst + ctx + pc, (const uint8_t *)res->time_ids + i * nt * sizeof(float),
                          nt);
    }
    if (cfg) out->uncond = out->cond + pass;
    out->sampler = s;
    out->n_ctx = res->emb_t;
    out->k_used = res->k_used;
    out->c = res->c;
    out->h = res->h;
    out->w = res->w;
    out->emb_c = res->emb_c;
    out->pooled_c = res->pooled_c;
    out->device_ms = res->device_ms;
    out->queue_ms = res->queue_ms;
    return HSD_OK;
}
