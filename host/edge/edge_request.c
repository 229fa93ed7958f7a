// The edge's GENERATE: validation against the wire's ranges and the edge
// model, building, encoding and signing (docs/protocol.md §4, §5.1).
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "edge/edge.h"

static enum hsd_status check_text(const char *what, const char *s, size_t max) {
    size_t n = strlen(s), bad;
    if (n > max)
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s is %zu bytes, the protocol allows %zu", what, n,
                        max);
    if (!hsd_wire_utf8_ok(s, n, &bad))
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: invalid UTF-8 at byte %zu", what, bad);
    return HSD_OK;
}

enum hsd_status hsd_edge_request_validate(const struct hsd_edge_request *r,
                                          const struct hsd_pipeline *p) {
    const struct hsd_gen_request *g = &r->gen;
    enum hsd_status s;
    if (!g->prompt) return hsd_fail(HSD_ERR_INVALID_ARG, "no prompt given");
    if ((s = check_text("prompt", g->prompt, HSD_WIRE_MAX_PROMPT_BYTES))) return s;
    if (g->negative_prompt &&
        (s = check_text("negative prompt", g->negative_prompt, HSD_WIRE_MAX_PROMPT_BYTES)))
        return s;
    if (r->cloud_model && (s = check_text("cloud model name", r->cloud_model, HSD_WIRE_MAX_NAME)))
        return s;
    if (g->batch_count != 1)
        return hsd_fail(HSD_ERR_INVALID_ARG, "an edge request makes one image (batch count %d)",
                        g->batch_count);
    if (g->steps < 1 || g->steps > (int)HSD_WIRE_MAX_STEPS)
        return hsd_fail(HSD_ERR_INVALID_ARG, "steps must be in [1, %u], got %d",
                        HSD_WIRE_MAX_STEPS, g->steps);
    if ((unsigned)g->sampler >= HSD_WIRE_SAMPLER_COUNT)
        return hsd_fail(HSD_ERR_INVALID_ARG, "unknown sampler");
    if (g->width < (int)HSD_WIRE_MIN_SIDE || g->width > (int)HSD_WIRE_MAX_SIDE || g->width % 8 ||
        g->height < (int)HSD_WIRE_MIN_SIDE || g->height > (int)HSD_WIRE_MAX_SIDE || g->height % 8)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "width and height must be multiples of 8 in [%u, %u], got %dx%d",
                        HSD_WIRE_MIN_SIDE, HSD_WIRE_MAX_SIDE, g->width, g->height);
    if (!(isfinite(g->guidance_scale) && g->guidance_scale >= 0.0f &&
          g->guidance_scale <= HSD_WIRE_MAX_CFG))
        return hsd_fail(HSD_ERR_INVALID_ARG, "guidance scale must be in [0, %g]",
                        (double)HSD_WIRE_MAX_CFG);
    if (g->clip_skip < 0 || g->clip_skip > (int)HSD_WIRE_MAX_CLIP_SKIP)
        return hsd_fail(HSD_ERR_INVALID_ARG, "clip skip must be in [0, %u], got %d",
                        HSD_WIRE_MAX_CLIP_SKIP, g->clip_skip);
    if (r->k_min < 0 || r->k_min > r->k_max || r->k_max > g->steps)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "cloud split must satisfy 0 <= k_min <= k_max <= steps (%d), got [%d, %d]",
                        g->steps, r->k_min, r->k_max);
    if (r->deadline_ms > HSD_WIRE_MAX_DEADLINE_MS)
        return hsd_fail(HSD_ERR_INVALID_ARG, "deadline %u ms is over the protocol's %u ms",
                        r->deadline_ms, HSD_WIRE_MAX_DEADLINE_MS);
    if (r->priority > HSD_WIRE_MAX_PRIORITY)
        return hsd_fail(HSD_ERR_INVALID_ARG, "priority must be in [0, %u]", HSD_WIRE_MAX_PRIORITY);
    const int micro[4] = {g->original_width, g->original_height, g->crop_top, g->crop_left};
    for (int i = 0; i < 4; i++)
        if (micro[i] < 0 || micro[i] > (int)HSD_WIRE_MAX_MICRO)
            return hsd_fail(HSD_ERR_INVALID_ARG,
                            "original size and crop must be in [0, %u] pixels, got %d",
                            HSD_WIRE_MAX_MICRO, micro[i]);
    if (!p) return HSD_OK;
    if (hsd_pipeline_is_sdxl(p) && g->prompt_style == HSD_PROMPT_A1111)
        return hsd_fail(HSD_ERR_UNSUPPORTED, "--prompt-style a1111: not supported for SDXL "
                                             "models yet");
    // The edge model must be able to run every step itself (the fallback)
    // and the remaining ones of any k in the range.
    struct hsd_gen_request local = *g;
    local.split = -1;
    return hsd_pipeline_validate(p, &local);
}

void hsd_edge_build_generate(struct hsd_wire_msg *m, const struct hsd_edge_request *r,
                             uint64_t request_id, uint32_t deadline_ms, int with_auth) {
    const struct hsd_gen_request *g = &r->gen;
    memset(m, 0, sizeof *m);
    m->type = HSD_WIRE_GENERATE;
    m->flags = with_auth ? HSD_WIRE_FLAG_AUTH : 0;
    m->request_id = request_id;
    struct hsd_wire_generate *w = &m->u.generate;
    w->seed = g->seed;
    w->width = (uint16_t)g->width;
    w->height = (uint16_t)g->height;
    w->steps = (uint16_t)g->steps;
    w->k_min = (uint16_t)r->k_min;
    w->k_max = (uint16_t)r->k_max;
    w->sampler = (uint8_t)g->sampler;
    // The edge finishes with the cloud's embeddings, as the in-process
    // hybrid finishes with the large model's.
    w->flags = HSD_WIRE_GEN_TEXT_EMB;
    if (r->gen.prompt_style == HSD_PROMPT_A1111) w->flags |= HSD_WIRE_GEN_A1111;
    w->cfg_scale = g->guidance_scale;
    w->deadline_ms = deadline_ms;
    w->clip_skip = (uint8_t)g->clip_skip;
    w->priority = r->priority;
    // SDXL's micro-conditioning (ignored by SD 1.x/2.x models); 0 = default.
    w->original_width = (uint16_t)g->original_width;
    w->original_height = (uint16_t)g->original_height;
    w->crop_top = (uint16_t)g->crop_top;
    w->crop_left = (uint16_t)g->crop_left;
    const char *model = r->cloud_model ? r->cloud_model : "";
    w->model = (struct hsd_wire_str){model, strlen(model)};
    w->prompt.kind = HSD_WIRE_PROMPT_TEXT;
    w->prompt.text = (struct hsd_wire_str){g->prompt, strlen(g->prompt)};
    const char *neg = g->negative_prompt ? g->negative_prompt : "";
    w->negative.kind = HSD_WIRE_PROMPT_TEXT;
    w->negative.text = (struct hsd_wire_str){neg, strlen(neg)};
    for (int i = 0; g->lora_scales && r->lora_names && i < r->n_loras; i++) {
        if (g->lora_scales[i] == 0.0f || w->n_loras == HSD_WIRE_MAX_LORAS) continue;
        const char *name = r->lora_names[i];
        w->loras[w->n_loras++] = (struct hsd_wire_lora){{name, strlen(name)}, g->lora_scales[i]};
        w->flags |= HSD_WIRE_GEN_LORAS;
    }
}

enum hsd_status hsd_edge_encode(void **buf, size_t *len, const struct hsd_wire_msg *m,
                                const struct hsd_auth_key *key, uint64_t now_ms) {
    *buf = NULL;
    enum hsd_status s = hsd_wire_encode_alloc(buf, len, m);
    if (s) return hsd_fail_context(s, "encoding the request: ");
    if (key && (s = hsd_auth_sign(*buf, *len, key, now_ms))) {
        free(*buf);
        *buf = NULL;
        return s;
    }
    return HSD_OK;
}

uint64_t hsd_edge_random_id(void) {
    if (sodium_init() < 0) HSD_ASSERT(!"libsodium failed to initialise");
    uint64_t id = 0;
    while (id == 0) randombytes_buf(&id, sizeof id);
    return id;
}
