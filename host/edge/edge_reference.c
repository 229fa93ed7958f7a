// The cloud's part of one GENERATE, in one process, as the contract a
// service must meet for the edge's handover to be exact: image 0 of
// hsd_pipeline_generate up to U-Net call k, stage for stage. Tests build
// RESULTs with it; `hsd serve` running a request alone must produce the
// same latent, sampler state and embeddings, bit for bit.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/edge.h"

// Little-endian f32 bytes, whatever the host's order (the wire's layout).
static void put_f32(uint8_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], 4);
        for (int b = 0; b < 4; b++) dst[4 * i + b] = (uint8_t)(u >> (8 * b));
    }
}

static char *dup_str(struct hsd_wire_str s) {
    char *p = malloc(s.n + 1);
    if (p) {
        if (s.n) memcpy(p, s.p, s.n);
        p[s.n] = '\0';
    }
    return p;
}

enum hsd_status hsd_edge_reference_result(struct hsd_wire_msg *m, void **storage,
                                          struct hsd_pipeline *cloud, uint64_t request_id,
                                          const struct hsd_wire_generate *g) {
    *storage = NULL;
    memset(m, 0, sizeof *m);
    if (g->prompt.kind != HSD_WIRE_PROMPT_TEXT || g->negative.kind != HSD_WIRE_PROMPT_TEXT)
        return hsd_fail(HSD_ERR_UNSUPPORTED, "reference cloud: token-id prompts not supported");
    char *prompt = dup_str(g->prompt.text), *neg = dup_str(g->negative.text);
    struct hsd_gen_request r = {.prompt = prompt, .negative_prompt = neg,
                                .guidance_scale = g->cfg_scale, .steps = g->steps, .split = -1,
                                .sampler = (enum hsd_sampler_kind)g->sampler, .width = g->width,
                                .height = g->height, .seed = g->seed, .batch_count = 1,
                                .clip_skip = g->clip_skip,
                                .prompt_style = g->flags & HSD_WIRE_GEN_A1111
                                                    ? HSD_PROMPT_A1111
                                                    : HSD_PROMPT_DIFFUSERS};
    // The request's LoRAs by name, as hsd serve maps them (service.c).
    float lora[HSD_PIPELINE_MAX_LORAS] = {0};
    for (unsigned i = 0; i < g->n_loras; i++) {
        char name[HSD_WIRE_MAX_LORA_NAME + 1];
        snprintf(name, sizeof name, "%.*s", (int)g->loras[i].name.n, g->loras[i].name.p);
        int li = hsd_pipeline_lora_index(cloud, name);
        if (li < 0) {
            free(prompt);
            free(neg);
            return hsd_fail(HSD_ERR_INVALID_ARG, "reference cloud: unknown LoRA '%s'", name);
        }
        lora[li] = g->loras[i].scale;
        r.lora_scales = lora;
    }
    int scale = hsd_pipeline_vae_scale(cloud), C = hsd_pipeline_latent_channels(cloud);
    int h = g->height / scale, w = g->width / scale, E = hsd_pipeline_text_width(cloud);
    size_t lat = (size_t)C * h * w, ctx = 0;
    int cfg = hsd_pipeline_cfg(cloud, r.guidance_scale);  // do_classifier_free_guidance
    int want_emb = (g->flags & HSD_WIRE_GEN_TEXT_EMB) != 0;
    int k = g->k_max;
    float *emb = NULL, *latent = malloc(lat * sizeof *latent);
    struct hsd_sampler s = {0};
    uint8_t *store = NULL;
    enum hsd_status st = HSD_OK;
    if (!prompt || !neg || !latent) {
        st = hsd_fail(HSD_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = hsd_pipeline_validate(cloud, &r))) goto done;
    // Text: one encoder batch [negative, prompt] (or the prompt alone), as
    // hsd_pipeline_generate encodes it.
    const char *texts[2] = {neg, prompt};
    int n_ctx = 0;
    if ((st = hsd_pipeline_encode_prompts_lora(cloud, &emb, &n_ctx, cfg ? texts : texts + 1,
                                               cfg ? 2 : 1, r.prompt_style, r.clip_skip,
                                               r.lora_scales)))
        goto done;
    ctx = (size_t)n_ctx * E;
    const float *cond = cfg ? emb + ctx : emb, *uncond = cfg ? emb : NULL;
    if ((st = hsd_pipeline_init_image(cloud, &r, 0, latent, &s))) goto done;
    if (k > hsd_sampler_n_calls(&s)) {
        st = hsd_fail(HSD_ERR_INVALID_ARG, "reference cloud: k = %d > %d U-Net calls", k,
                      hsd_sampler_n_calls(&s));
        goto done;
    }
    struct hsd_denoise_item item = {latent, &s, cond, uncond, r.guidance_scale, n_ctx,
                                    r.lora_scales};
    for (int i = 0; i < k && !st; i++)
        st = hsd_pipeline_denoise_step(cloud, hsd_pipeline_unet(cloud, 0), &item, 1, h, w);
    if (st) goto done;

    int n_emb = want_emb ? (cfg ? 2 : 1) : 0;
    size_t state = hsd_sampler_serialized_size(&s);
    size_t bytes = 4 * lat + state + 4 * (size_t)n_emb * ctx;
    store = malloc(bytes);
    if (!store) {
        st = hsd_fail(HSD_ERR_NOMEM, "out of memory");
        goto done;
    }
    uint8_t *q = store;
    put_f32(q, latent, lat);
    if ((st = hsd_sampler_serialize(&s, q + 4 * lat, state))) goto done;
    uint8_t *e = q + 4 * lat + state;
    // Wire order: [0] cond, [1] uncond.
    if (n_emb >= 1) put_f32(e, cond, ctx);
    if (n_emb == 2) put_f32(e + 4 * ctx, uncond, ctx);

    m->type = HSD_WIRE_RESULT;
    m->request_id = request_id;
    struct hsd_wire_result *o = &m->u.result;
    o->steps = g->steps;
    o->k_used = (uint16_t)k;
    o->sampler = g->sampler;
    o->c = (uint16_t)C;
    o->h = (uint16_t)h;
    o->w = (uint16_t)w;
    o->latent = q;
    o->sampler_state = (struct hsd_wire_bytes){q + 4 * lat, state};
    o->n_emb = (uint8_t)n_emb;
    o->emb_t = n_emb ? (uint16_t)n_ctx : 0;
    o->emb_c = n_emb ? (uint16_t)E : 0;
    o->emb = n_emb ? e : NULL;
    *storage = store;
    store = NULL;
done:
    hsd_sampler_free(&s);
    free(store);
    free(emb);
    free(latent);
    free(prompt);
    free(neg);
    return st;
}
