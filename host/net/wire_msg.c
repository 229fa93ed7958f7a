// Payload codecs of the hsd wire protocol, one block per message type, in
// the order of docs/protocol.md §5. Each type has four pieces that must
// agree with the tables there: parse (structure: lengths, BAD_MESSAGE),
// check (field ranges: BAD_REQUEST; also run by the encoder), size, write.
#include <math.h>
#include <string.h>

#include "core/assert.h"
#include "net/wire_internal.h"

// ---------------------------------------------------------------------------
// Shared field helpers

#define NEED(r, k, c, field)                                                                   \
    do {                                                                                       \
        if (!rd_has((r), (k)))                                                                 \
            return wire_bad((c), HSD_WIRE_E_BAD_MESSAGE,                                       \
                            "truncated at %s (payload offset %zu, need %llu bytes, %zu left)", \
                            (field), (r)->off, (unsigned long long)(k), (r)->n - (r)->off);    \
    } while (0)

// IEEE-754 binary32 with an all-ones exponent is Inf or NaN.
static int f32_bits_finite(const uint8_t *b) {
    uint32_t u;
    memcpy(&u, b, 4);
    return ((u >> 23) & 0xffu) != 0xffu;
}

// Index of the first non-finite float in a view of n floats, or n.
static size_t first_nonfinite(const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (!f32_bits_finite(b + 4 * i)) return i;
    return n;
}

static enum hsd_status check_text(struct wire_ctx *c, const char *field, struct hsd_wire_str s,
                                  size_t max) {
    if (s.n > max)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "%s is %zu bytes, at most %zu allowed", field,
                        s.n, max);
    if (s.n && !s.p)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "%s: NULL with length %zu", field, s.n);
    size_t bad;
    if (!hsd_wire_utf8_ok(s.p, s.n, &bad))
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST,
                        "%s is not valid UTF-8 (or contains NUL) at byte %zu", field, bad);
    return HSD_OK;
}

static enum hsd_status check_floats(struct wire_ctx *c, const char *field, const void *p,
                                    uint64_t n) {
    if (n && !p) return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "%s: NULL data", field);
    size_t i = first_nonfinite(p, (size_t)n);
    if (i != n)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "%s[%zu] is not finite (NaN or Inf)", field, i);
    return HSD_OK;
}

static enum hsd_status parse_str8(struct hsd_wire_str *s, struct wire_ctx *c, struct wire_rd *r,
                                  const char *field) {
    NEED(r, 1, c, field);
    s->n = rd_u8(r);
    NEED(r, s->n, c, field);
    s->p = (const char *)rd_take(r, s->n);
    return HSD_OK;
}

static enum hsd_status parse_str16(struct hsd_wire_str *s, struct wire_ctx *c, struct wire_rd *r,
                                   const char *field) {
    NEED(r, 2, c, field);
    s->n = rd_u16(r);
    NEED(r, s->n, c, field);
    s->p = (const char *)rd_take(r, s->n);
    return HSD_OK;
}

// ---------------------------------------------------------------------------
// GENERATE (§5.1)

#define GEN_FIXED 32
// HSD_WIRE_MAX_REQUEST (wire.h) spells out size_generate's largest value.
#define GEN_LORA_MAX (1 + HSD_WIRE_MAX_LORA_NAME + 4)  // name str8 + scale f32
_Static_assert(HSD_WIRE_MAX_REQUEST == HSD_WIRE_HEADER_SIZE + GEN_FIXED + HSD_WIRE_GEN_V2_EXTRA +
                                           2 + HSD_WIRE_MAX_NAME +
                                           2 * (5 + HSD_WIRE_MAX_PROMPT_BYTES) + 1 +
                                           HSD_WIRE_MAX_LORAS * GEN_LORA_MAX + HSD_WIRE_AUTH_SIZE,
               "HSD_WIRE_MAX_REQUEST does not match the GENERATE layout");
_Static_assert(4 * HSD_WIRE_MAX_TOKENS <= HSD_WIRE_MAX_PROMPT_BYTES,
               "a token prompt may be longer than a text prompt");

static enum hsd_status parse_prompt(struct hsd_wire_prompt *p, struct wire_ctx *c,
                                    struct wire_rd *r, const char *field) {
    NEED(r, 5, c, field);
    uint8_t kind = rd_u8(r);
    uint32_t n = rd_u32(r);
    if (kind == HSD_WIRE_PROMPT_TEXT) {
        p->kind = HSD_WIRE_PROMPT_TEXT;
        NEED(r, n, c, field);
        p->text.n = n;
        p->text.p = (const char *)rd_take(r, n);
    } else if (kind == HSD_WIRE_PROMPT_TOKENS) {
        p->kind = HSD_WIRE_PROMPT_TOKENS;
        NEED(r, 4ull * n, c, field);
        p->n_tokens = n;
        p->tokens = rd_take(r, 4ull * n);
    } else {
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "%s kind %u unknown (0 text, 1 token ids)",
                        field, kind);
    }
    return HSD_OK;
}

// Version 2 layouts (docs/protocol.md §5.1, §5.2); 0 is "this build's".
static int is_v2(uint16_t version) { return version == 0 || version >= 2; }

static enum hsd_status parse_generate(struct hsd_wire_generate *g, struct wire_ctx *c,
                                      struct wire_rd *r, int v2) {
    NEED(r, GEN_FIXED, c, "fixed fields");
    g->seed = rd_u64(r);
    g->width = rd_u16(r);
    g->height = rd_u16(r);
    g->steps = rd_u16(r);
    g->k_min = rd_u16(r);
    g->k_max = rd_u16(r);
    g->sampler = rd_u8(r);
    g->flags = rd_u8(r);
    g->cfg_scale = rd_f32(r);
    g->deadline_ms = rd_u32(r);
    g->clip_skip = rd_u8(r);
    g->priority = rd_u8(r);
    if (rd_u16(r) != 0) return wire_bad(c, HSD_WIRE_E_BAD_MESSAGE, "reserved field must be zero");
    if (v2) {
        NEED(r, HSD_WIRE_GEN_V2_EXTRA, c, "version 2 fields");
        g->original_width = rd_u16(r);
        g->original_height = rd_u16(r);
        g->crop_top = rd_u16(r);
        g->crop_left = rd_u16(r);
        g->edge_ctx_c = rd_u16(r);
        g->edge_pooled_c = rd_u16(r);
    }
    enum hsd_status s;
    if ((s = parse_str16(&g->model, c, r, "model name")) != HSD_OK) return s;
    if ((s = parse_prompt(&g->prompt, c, r, "prompt")) != HSD_OK) return s;
    if ((s = parse_prompt(&g->negative, c, r, "negative prompt")) != HSD_OK) return s;
    g->n_loras = 0;
    if (!(g->flags & HSD_WIRE_GEN_LORAS)) return HSD_OK;
    // Optional LoRA list (gen_flags bit 2): older clients never send it.
    NEED(r, 1, c, "LoRA count");
    uint8_t n = rd_u8(r);
    if (n < 1 || n > HSD_WIRE_MAX_LORAS)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "%u LoRAs: 1..%u allowed", n,
                        HSD_WIRE_MAX_LORAS);
    for (uint8_t i = 0; i < n; i++) {
        if ((s = parse_str8(&g->loras[i].name, c, r, "LoRA name")) != HSD_OK) return s;
        NEED(r, 4, c, "LoRA scale");
        g->loras[i].scale = rd_f32(r);
    }
    g->n_loras = n;
    return HSD_OK;
}

static enum hsd_status check_loras(const struct hsd_wire_generate *g, struct wire_ctx *c) {
    int listed = (g->flags & HSD_WIRE_GEN_LORAS) != 0;
    if (!listed && g->n_loras)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "LoRAs given without the LoRA flag");
    if (listed && (g->n_loras < 1 || g->n_loras > HSD_WIRE_MAX_LORAS))
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "%u LoRAs: 1..%u allowed", g->n_loras,
                        HSD_WIRE_MAX_LORAS);
    for (unsigned i = 0; listed && i < g->n_loras; i++) {
        const struct hsd_wire_lora *l = &g->loras[i];
        enum hsd_status s = check_text(c, "LoRA name", l->name, HSD_WIRE_MAX_LORA_NAME);
        if (s != HSD_OK) return s;
        if (!l->name.n) return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "empty LoRA name");
        if (!isfinite(l->scale) || fabsf(l->scale) > HSD_WIRE_MAX_LORA_SCALE)
            return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "LoRA scale %g outside -%g..%g",
                            (double)l->scale, (double)HSD_WIRE_MAX_LORA_SCALE,
                            (double)HSD_WIRE_MAX_LORA_SCALE);
        for (unsigned j = 0; j < i; j++)
            if (g->loras[j].name.n == l->name.n &&
                !memcmp(g->loras[j].name.p, l->name.p, l->name.n))
                return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "LoRA '%.*s' listed twice",
                                (int)l->name.n, l->name.p);
    }
    return HSD_OK;
}

static enum hsd_status check_prompt(struct wire_ctx *c, const char *field,
                                    const struct hsd_wire_prompt *p) {
    if (p->kind == HSD_WIRE_PROMPT_TEXT)
        return check_text(c, field, p->text, HSD_WIRE_MAX_PROMPT_BYTES);
    if (p->kind != HSD_WIRE_PROMPT_TOKENS)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "%s kind %d unknown", field, (int)p->kind);
    if (p->n_tokens < 1 || p->n_tokens > HSD_WIRE_MAX_TOKENS)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "%s has %u token ids, 1..%u allowed", field,
                        p->n_tokens, HSD_WIRE_MAX_TOKENS);
    if (!p->tokens) return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "%s: NULL token ids", field);
    const uint8_t *b = p->tokens;
    for (uint32_t i = 0; i < p->n_tokens; i++) {
        uint32_t id;
        memcpy(&id, b + 4 * i, 4);
        if (id > HSD_WIRE_MAX_TOKEN_ID)
            return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "%s token %u has id %u > %u", field, i, id,
                            HSD_WIRE_MAX_TOKEN_ID);
    }
    return HSD_OK;
}

static enum hsd_status check_side(struct wire_ctx *c, const char *field, unsigned v) {
    if (v < HSD_WIRE_MIN_SIDE || v > HSD_WIRE_MAX_SIDE || v % 8 != 0)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST,
                        "%s %u: must be a multiple of 8 in %u..%u pixels", field, v,
                        HSD_WIRE_MIN_SIDE, HSD_WIRE_MAX_SIDE);
    return HSD_OK;
}

// Version 2's fields: zero in version 1 (which cannot carry them); the
// edge's widths within what a RESULT can carry.
static enum hsd_status check_generate_v2(const struct hsd_wire_generate *g, struct wire_ctx *c,
                                         int v2) {
    if (!v2 && (g->original_width || g->original_height || g->crop_top || g->crop_left ||
                g->edge_ctx_c || g->edge_pooled_c))
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST,
                        "original size, crop and edge widths need protocol version 2");
    if (g->edge_ctx_c > HSD_WIRE_MAX_EMB_C || g->edge_pooled_c > HSD_WIRE_MAX_POOLED_C)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST,
                        "edge_ctx_c %u / edge_pooled_c %u: at most %u / %u", g->edge_ctx_c,
                        g->edge_pooled_c, HSD_WIRE_MAX_EMB_C, HSD_WIRE_MAX_POOLED_C);
    if (!g->edge_ctx_c && g->edge_pooled_c)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST,
                        "edge_pooled_c %u without edge_ctx_c (give both or neither)",
                        g->edge_pooled_c);
    return HSD_OK;
}

static enum hsd_status check_generate(const struct hsd_wire_generate *g, struct wire_ctx *c,
                                      int v2) {
    enum hsd_status s = check_generate_v2(g, c, v2);
    if (s) return s;
    if ((s = check_side(c, "width", g->width)) != HSD_OK) return s;
    if ((s = check_side(c, "height", g->height)) != HSD_OK) return s;
    if (g->steps < 1 || g->steps > HSD_WIRE_MAX_STEPS)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "steps %u outside 1..%u", g->steps,
                        HSD_WIRE_MAX_STEPS);
    if (g->k_min > g->k_max)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "split range k_min %u > k_max %u", g->k_min,
                        g->k_max);
    if (g->k_max > g->steps)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "split k_max %u > steps %u", g->k_max, g->steps);
    if (g->sampler >= HSD_WIRE_SAMPLER_COUNT)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "sampler id %u unknown (0..%u)", g->sampler,
                        HSD_WIRE_SAMPLER_COUNT - 1);
    if (g->flags & ~HSD_WIRE_GEN_FLAGS)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "unknown GENERATE flags 0x%02x",
                        g->flags & ~HSD_WIRE_GEN_FLAGS);
    // Emphasis and chunking work on text; token ids are one diffusers chunk.
    if ((g->flags & HSD_WIRE_GEN_A1111) && (g->prompt.kind == HSD_WIRE_PROMPT_TOKENS ||
                                            g->negative.kind == HSD_WIRE_PROMPT_TOKENS))
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST,
                        "A1111 prompt style needs text prompts, not token ids");
    if (!isfinite(g->cfg_scale) || g->cfg_scale < 0.0f || g->cfg_scale > HSD_WIRE_MAX_CFG)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "cfg scale %g outside 0..%g",
                        (double)g->cfg_scale, (double)HSD_WIRE_MAX_CFG);
    if (g->deadline_ms > HSD_WIRE_MAX_DEADLINE_MS)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "deadline %u ms > %u ms", g->deadline_ms,
                        HSD_WIRE_MAX_DEADLINE_MS);
    if (g->clip_skip > HSD_WIRE_MAX_CLIP_SKIP)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "clip skip %u > %u", g->clip_skip,
                        HSD_WIRE_MAX_CLIP_SKIP);
    if (g->priority > HSD_WIRE_MAX_PRIORITY)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "priority %u > %u", g->priority,
                        HSD_WIRE_MAX_PRIORITY);
    if ((s = check_text(c, "model name", g->model, HSD_WIRE_MAX_NAME)) != HSD_OK) return s;
    if ((s = check_prompt(c, "prompt", &g->prompt)) != HSD_OK) return s;
    if ((s = check_prompt(c, "negative prompt", &g->negative)) != HSD_OK) return s;
    return check_loras(g, c);
}

static uint64_t prompt_size(const struct hsd_wire_prompt *p) {
    return 5 + (p->kind == HSD_WIRE_PROMPT_TOKENS ? 4ull * p->n_tokens : (uint64_t)p->text.n);
}

static uint64_t size_generate(const struct hsd_wire_generate *g, int v2) {
    uint64_t n = GEN_FIXED + (v2 ? HSD_WIRE_GEN_V2_EXTRA : 0) + 2 + (uint64_t)g->model.n +
                 prompt_size(&g->prompt) +
                 prompt_size(&g->negative);
    if (g->flags & HSD_WIRE_GEN_LORAS) {
        n += 1;
        for (unsigned i = 0; i < g->n_loras && i < HSD_WIRE_MAX_LORAS; i++)
            n += 1 + (uint64_t)g->loras[i].name.n + 4;
    }
    return n;
}

static void write_prompt(struct wire_wr *w, const struct hsd_wire_prompt *p) {
    wr_u8(w, (uint8_t)p->kind);
    if (p->kind == HSD_WIRE_PROMPT_TOKENS) {
        wr_u32(w, p->n_tokens);
        wr_bytes(w, p->tokens, 4ull * p->n_tokens);  // int32_t on a little-endian host
    } else {
        wr_u32(w, (uint32_t)p->text.n);
        wr_bytes(w, p->text.p, p->text.n);
    }
}

static void write_generate(struct wire_wr *w, const struct hsd_wire_generate *g, int v2) {
    wr_u64(w, g->seed);
    wr_u16(w, g->width);
    wr_u16(w, g->height);
    wr_u16(w, g->steps);
    wr_u16(w, g->k_min);
    wr_u16(w, g->k_max);
    wr_u8(w, g->sampler);
    wr_u8(w, g->flags);
    wr_f32(w, g->cfg_scale);
    wr_u32(w, g->deadline_ms);
    wr_u8(w, g->clip_skip);
    wr_u8(w, g->priority);
    wr_u16(w, 0);
    if (v2) {
        wr_u16(w, g->original_width);
        wr_u16(w, g->original_height);
        wr_u16(w, g->crop_top);
        wr_u16(w, g->crop_left);
        wr_u16(w, g->edge_ctx_c);
        wr_u16(w, g->edge_pooled_c);
    }
    wr_u16(w, (uint16_t)g->model.n);
    wr_bytes(w, g->model.p, g->model.n);
    write_prompt(w, &g->prompt);
    write_prompt(w, &g->negative);
    if (!(g->flags & HSD_WIRE_GEN_LORAS)) return;
    wr_u8(w, g->n_loras);
    for (unsigned i = 0; i < g->n_loras; i++) {
        wr_u8(w, (uint8_t)g->loras[i].name.n);
        wr_bytes(w, g->loras[i].name.p, g->loras[i].name.n);
        wr_f32(w, g->loras[i].scale);
    }
}

// ---------------------------------------------------------------------------
// RESULT (§5.2)

#define RES_FIXED 32

#define RES_V2_EXTRA 4  // pooled_c, n_time_ids

static enum hsd_status parse_result(struct hsd_wire_result *o, struct wire_ctx *c,
                                    struct wire_rd *r, int v2) {
    NEED(r, RES_FIXED + (v2 ? RES_V2_EXTRA : 0), c, "fixed fields");
    o->steps = rd_u16(r);
    o->k_used = rd_u16(r);
    o->sampler = rd_u8(r);
    o->n_emb = rd_u8(r);
    o->c = rd_u16(r);
    o->h = rd_u16(r);
    o->w = rd_u16(r);
    o->emb_t = rd_u16(r);
    o->emb_c = rd_u16(r);
    o->device_ms = rd_f64(r);
    o->queue_ms = rd_f64(r);
    if (v2) {
        o->pooled_c = rd_u16(r);
        o->n_time_ids = rd_u16(r);
    }
    // u16 dims: the products below fit easily in 64 bits.
    uint64_t lat = 4ull * o->c * o->h * o->w;
    if (!rd_has(r, lat))
        return wire_bad(c, HSD_WIRE_E_BAD_MESSAGE,
                        "latent [%u, %u, %u] needs %llu bytes, %zu left in the payload", o->c, o->h,
                        o->w, (unsigned long long)lat, r->n - r->off);
    o->latent = rd_take(r, lat);
    NEED(r, 4, c, "sampler state length");
    uint32_t sn = rd_u32(r);
    NEED(r, sn, c, "sampler state");
    o->sampler_state.n = sn;
    o->sampler_state.p = rd_take(r, sn);
    uint64_t emb = 4ull * o->n_emb * o->emb_t * o->emb_c;
    if (!rd_has(r, emb))
        return wire_bad(c, HSD_WIRE_E_BAD_MESSAGE,
                        "text embeddings [%u, %u, %u] need %llu bytes, %zu left in the payload",
                        o->n_emb, o->emb_t, o->emb_c, (unsigned long long)emb, r->n - r->off);
    o->emb = rd_take(r, emb);
    uint64_t added = 4ull * o->n_emb * ((uint64_t)o->pooled_c + o->n_time_ids);
    if (!rd_has(r, added))
        return wire_bad(c, HSD_WIRE_E_BAD_MESSAGE,
                        "pooled embeddings and time ids [%u, %u + %u] need %llu bytes, %zu left",
                        o->n_emb, o->pooled_c, o->n_time_ids, (unsigned long long)added,
                        r->n - r->off);
    o->pooled = rd_take(r, 4ull * o->n_emb * o->pooled_c);
    o->time_ids = rd_take(r, 4ull * o->n_emb * o->n_time_ids);
    return HSD_OK;
}

// SDXL's added conditioning (version 2): pooled embeddings and time ids
// come together, with text embeddings; time ids are pixel sizes.
static enum hsd_status check_result_added(const struct hsd_wire_result *o, struct wire_ctx *c,
                                          int v2) {
    if (!o->pooled_c && !o->n_time_ids) return HSD_OK;
    if (!v2)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST,
                        "pooled embeddings and time ids need protocol version 2");
    if (o->pooled_c > HSD_WIRE_MAX_POOLED_C || !o->pooled_c ||
        o->n_time_ids != HSD_WIRE_N_TIME_IDS || !o->n_emb)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST,
                        "pooled_c %u / n_time_ids %u / n_emb %u: need 1..%u / %u / 1..2 together",
                        o->pooled_c, o->n_time_ids, o->n_emb, HSD_WIRE_MAX_POOLED_C,
                        HSD_WIRE_N_TIME_IDS);
    size_t n_ids = (size_t)o->n_emb * o->n_time_ids;
    enum hsd_status s = check_floats(c, "pooled embeddings", o->pooled,
                                     (uint64_t)o->n_emb * o->pooled_c);
    if (s || (s = check_floats(c, "time ids", o->time_ids, n_ids))) return s;
    const uint8_t *b = o->time_ids;
    for (size_t i = 0; i < n_ids; i++) {
        uint32_t u;
        float f;
        memcpy(&u, b + 4 * i, 4);
        memcpy(&f, &u, 4);
        if (!(f >= 0.0f && f <= (float)HSD_WIRE_MAX_MICRO))
            return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "time ids[%zu] = %g outside 0..%u", i,
                            (double)f, HSD_WIRE_MAX_MICRO);
    }
    return HSD_OK;
}

static enum hsd_status check_result(const struct hsd_wire_result *o, struct wire_ctx *c,
                                    int v2) {
    if (o->steps < 1 || o->steps > HSD_WIRE_MAX_STEPS)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "steps %u outside 1..%u", o->steps,
                        HSD_WIRE_MAX_STEPS);
    if (o->k_used > o->steps)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "k_used %u > steps %u", o->k_used, o->steps);
    if (o->sampler >= HSD_WIRE_SAMPLER_COUNT)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "sampler id %u unknown", o->sampler);
    if (o->c < 1 || o->c > HSD_WIRE_MAX_LATENT_C || o->h < 1 || o->h > HSD_WIRE_MAX_LATENT_SIDE ||
        o->w < 1 || o->w > HSD_WIRE_MAX_LATENT_SIDE)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST,
                        "latent shape [%u, %u, %u] outside [1..%u, 1..%u, 1..%u]", o->c, o->h, o->w,
                        HSD_WIRE_MAX_LATENT_C, HSD_WIRE_MAX_LATENT_SIDE, HSD_WIRE_MAX_LATENT_SIDE);
    if (o->n_emb > 2)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "%u text embeddings, 0..2 allowed", o->n_emb);
    if (o->n_emb == 0 && (o->emb_t != 0 || o->emb_c != 0))
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "no text embeddings but their shape is %ux%u",
                        o->emb_t, o->emb_c);
    if (o->n_emb > 0 &&
        (!o->emb_t || o->emb_t % HSD_WIRE_TEXT_LEN ||
         o->emb_t > HSD_WIRE_MAX_TEXT_CHUNKS * HSD_WIRE_TEXT_LEN || o->emb_c < 1 ||
         o->emb_c > HSD_WIRE_MAX_EMB_C))
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST,
                        "text embeddings [%u, %u, %u]: need [n, %u x 1..%u, 1..%u]", o->n_emb,
                        o->emb_t, o->emb_c, HSD_WIRE_TEXT_LEN, HSD_WIRE_MAX_TEXT_CHUNKS,
                        HSD_WIRE_MAX_EMB_C);
    if (!isfinite(o->device_ms) || o->device_ms < 0 || !isfinite(o->queue_ms) || o->queue_ms < 0)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST,
                        "device_ms %g / queue_ms %g must be finite and >= 0", o->device_ms,
                        o->queue_ms);
    if (o->sampler_state.n > HSD_WIRE_MAX_MESSAGE || (o->sampler_state.n && !o->sampler_state.p))
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "sampler state of %zu bytes is invalid",
                        o->sampler_state.n);
    enum hsd_status s;
    if ((s = check_floats(c, "latent", o->latent, (uint64_t)o->c * o->h * o->w)) != HSD_OK)
        return s;
    s = check_floats(c, "text embeddings", o->emb, (uint64_t)o->n_emb * o->emb_t * o->emb_c);
    return s ? s : check_result_added(o, c, v2);
}

static uint64_t size_result(const struct hsd_wire_result *o, int v2) {
    if (o->sampler_state.n > HSD_WIRE_MAX_MESSAGE) return 0;
    return RES_FIXED + (v2 ? RES_V2_EXTRA : 0) + 4ull * o->c * o->h * o->w + 4 +
           o->sampler_state.n + 4ull * o->n_emb * o->emb_t * o->emb_c +
           4ull * o->n_emb * ((uint64_t)o->pooled_c + o->n_time_ids);
}

static void write_result(struct wire_wr *w, const struct hsd_wire_result *o, int v2) {
    wr_u16(w, o->steps);
    wr_u16(w, o->k_used);
    wr_u8(w, o->sampler);
    wr_u8(w, o->n_emb);
    wr_u16(w, o->c);
    wr_u16(w, o->h);
    wr_u16(w, o->w);
    wr_u16(w, o->emb_t);
    wr_u16(w, o->emb_c);
    wr_f64(w, o->device_ms);
    wr_f64(w, o->queue_ms);
    if (v2) {
        wr_u16(w, o->pooled_c);
        wr_u16(w, o->n_time_ids);
    }
    wr_bytes(w, o->latent, 4ull * o->c * o->h * o->w);
    wr_u32(w, (uint32_t)o->sampler_state.n);
    wr_bytes(w, o->sampler_state.p, o->sampler_state.n);
    wr_bytes(w, o->emb, 4ull * o->n_emb * o->emb_t * o->emb_c);
    wr_bytes(w, o->pooled, 4ull * o->n_emb * o->pooled_c);
    wr_bytes(w, o->time_ids, 4ull * o->n_emb * o->n_time_ids);
}

// ---------------------------------------------------------------------------
// ERROR (§5.3)

static enum hsd_status parse_error(struct hsd_wire_error_msg *e, struct wire_ctx *c,
                                   struct wire_rd *r) {
    NEED(r, 8, c, "fixed fields");
    e->code = rd_u16(r);
    if (rd_u16(r) != 0) return wire_bad(c, HSD_WIRE_E_BAD_MESSAGE, "reserved field must be zero");
    e->retry_after_ms = rd_u32(r);
    return parse_str16(&e->text, c, r, "text");
}

static enum hsd_status check_error(const struct hsd_wire_error_msg *e, struct wire_ctx *c) {
    // Unknown non-zero codes are accepted: a newer peer may send them
    // (docs/protocol.md §6); the client treats them as INTERNAL.
    if (e->code == HSD_WIRE_E_NONE)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "error code 0 (NONE) is not an error");
    if (e->retry_after_ms > HSD_WIRE_MAX_RETRY_MS)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "retry hint %u ms > %u ms", e->retry_after_ms,
                        HSD_WIRE_MAX_RETRY_MS);
    return check_text(c, "text", e->text, HSD_WIRE_MAX_ERROR_TEXT);
}

static void write_error(struct wire_wr *w, const struct hsd_wire_error_msg *e) {
    wr_u16(w, e->code);
    wr_u16(w, 0);
    wr_u32(w, e->retry_after_ms);
    wr_u16(w, (uint16_t)e->text.n);
    wr_bytes(w, e->text.p, e->text.n);
}

// ---------------------------------------------------------------------------
// STATUS (§5.5)

#define STATUS_FIXED 52
#define DEVICE_FIXED 12

static enum hsd_status parse_status(struct hsd_wire_status *st, struct wire_ctx *c,
                                    struct wire_rd *r) {
    NEED(r, STATUS_FIXED, c, "fixed fields");
    st->health = rd_u8(r);
    st->n_devices = rd_u8(r);
    if (rd_u16(r) != 0) return wire_bad(c, HSD_WIRE_E_BAD_MESSAGE, "reserved field must be zero");
    st->queue_depth = rd_u32(r);
    st->queue_limit = rd_u32(r);
    st->active = rd_u32(r);
    st->max_batch = rd_u32(r);
    st->steps_per_s = rd_f32(r);
    st->uptime_ms = rd_u64(r);
    st->requests_done = rd_u64(r);
    st->requests_failed = rd_u64(r);
    st->max_message = rd_u32(r);
    enum hsd_status s;
    if ((s = parse_str8(&st->server, c, r, "server name")) != HSD_OK) return s;
    // The count bounds a fixed array: check it before reading entries.
    if (st->n_devices > HSD_WIRE_MAX_DEVICES)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "%u devices, at most %u", st->n_devices,
                        HSD_WIRE_MAX_DEVICES);
    for (unsigned i = 0; i < st->n_devices; i++) {
        struct hsd_wire_device *d = &st->devices[i];
        NEED(r, DEVICE_FIXED, c, "device entry");
        d->kind = rd_u8(r);
        d->healthy = rd_u8(r);
        d->batch = rd_u16(r);
        d->mem_total_mib = rd_u32(r);
        d->mem_used_mib = rd_u32(r);
        if ((s = parse_str8(&d->name, c, r, "device name")) != HSD_OK) return s;
    }
    return HSD_OK;
}

static enum hsd_status check_status(const struct hsd_wire_status *st, struct wire_ctx *c) {
    if (st->health > HSD_WIRE_HEALTH_DRAINING)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "health %u unknown", st->health);
    if (!isfinite(st->steps_per_s) || st->steps_per_s < 0)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "steps/s %g must be finite and >= 0",
                        (double)st->steps_per_s);
    if (st->n_devices > HSD_WIRE_MAX_DEVICES)
        return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "%u devices, at most %u", st->n_devices,
                        HSD_WIRE_MAX_DEVICES);
    enum hsd_status s;
    if ((s = check_text(c, "server name", st->server, HSD_WIRE_MAX_SHORT_TEXT)) != HSD_OK) return s;
    for (unsigned i = 0; i < st->n_devices; i++) {
        const struct hsd_wire_device *d = &st->devices[i];
        if (d->kind > HSD_WIRE_DEVICE_CUDA || d->healthy > 1)
            return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "device %u: kind %u / healthy %u unknown", i,
                            d->kind, d->healthy);
        if (d->mem_used_mib > d->mem_total_mib)
            return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "device %u: %u MiB used of %u", i,
                            d->mem_used_mib, d->mem_total_mib);
        if ((s = check_text(c, "device name", d->name, HSD_WIRE_MAX_SHORT_TEXT)) != HSD_OK)
            return s;
    }
    return HSD_OK;
}

static uint64_t size_status(const struct hsd_wire_status *st) {
    if (st->n_devices > HSD_WIRE_MAX_DEVICES || st->server.n > 255) return 0;
    uint64_t n = STATUS_FIXED + 1 + st->server.n;
    for (unsigned i = 0; i < st->n_devices; i++) {
        if (st->devices[i].name.n > 255) return 0;
        n += DEVICE_FIXED + 1 + st->devices[i].name.n;
    }
    return n;
}

static void write_status(struct wire_wr *w, const struct hsd_wire_status *st) {
    wr_u8(w, st->health);
    wr_u8(w, st->n_devices);
    wr_u16(w, 0);
    wr_u32(w, st->queue_depth);
    wr_u32(w, st->queue_limit);
    wr_u32(w, st->active);
    wr_u32(w, st->max_batch);
    wr_f32(w, st->steps_per_s);
    wr_u64(w, st->uptime_ms);
    wr_u64(w, st->requests_done);
    wr_u64(w, st->requests_failed);
    wr_u32(w, st->max_message);
    wr_u8(w, (uint8_t)st->server.n);
    wr_bytes(w, st->server.p, st->server.n);
    for (unsigned i = 0; i < st->n_devices; i++) {
        const struct hsd_wire_device *d = &st->devices[i];
        wr_u8(w, d->kind);
        wr_u8(w, d->healthy);
        wr_u16(w, d->batch);
        wr_u32(w, d->mem_total_mib);
        wr_u32(w, d->mem_used_mib);
        wr_u8(w, (uint8_t)d->name.n);
        wr_bytes(w, d->name.p, d->name.n);
    }
}

// ---------------------------------------------------------------------------
// Dispatch

enum hsd_status wire_parse_payload(struct hsd_wire_msg *m, struct wire_ctx *c, struct wire_rd *r) {
    switch ((enum hsd_wire_type)m->type) {
    case HSD_WIRE_GENERATE: return parse_generate(&m->u.generate, c, r, is_v2(m->version));
    case HSD_WIRE_RESULT: return parse_result(&m->u.result, c, r, is_v2(m->version));
    case HSD_WIRE_ERROR: return parse_error(&m->u.error, c, r);
    case HSD_WIRE_STATUS_REQUEST: return HSD_OK;  // empty; trailing bytes caught by the caller
    case HSD_WIRE_STATUS: return parse_status(&m->u.status, c, r);
    case HSD_WIRE_CANCEL:
        NEED(r, 8, c, "target request id");
        m->u.cancel.target = rd_u64(r);
        return HSD_OK;
    case HSD_WIRE_CANCEL_ACK:
        NEED(r, 9, c, "fixed fields");
        m->u.cancel_ack.target = rd_u64(r);
        m->u.cancel_ack.cancelled = rd_u8(r);
        return HSD_OK;
    }
    HSD_ASSERT(0 && "type checked by hsd_wire_decode_frame");
    return HSD_ERR_INTERNAL;
}

enum hsd_status wire_check_payload(const struct hsd_wire_msg *m, struct wire_ctx *c) {
    switch ((enum hsd_wire_type)m->type) {
    case HSD_WIRE_GENERATE: return check_generate(&m->u.generate, c, is_v2(m->version));
    case HSD_WIRE_RESULT: return check_result(&m->u.result, c, is_v2(m->version));
    case HSD_WIRE_ERROR: return check_error(&m->u.error, c);
    case HSD_WIRE_STATUS: return check_status(&m->u.status, c);
    case HSD_WIRE_STATUS_REQUEST:
    case HSD_WIRE_CANCEL: return HSD_OK;
    case HSD_WIRE_CANCEL_ACK:
        if (m->u.cancel_ack.cancelled > 1)
            return wire_bad(c, HSD_WIRE_E_BAD_REQUEST, "cancelled flag %u is not 0 or 1",
                            m->u.cancel_ack.cancelled);
        return HSD_OK;
    }
    return wire_bad(c, HSD_WIRE_E_BAD_MESSAGE, "unknown message type %u", m->type);
}

uint64_t wire_payload_size(const struct hsd_wire_msg *m) {
    switch ((enum hsd_wire_type)m->type) {
    case HSD_WIRE_GENERATE: {
        const struct hsd_wire_generate *g = &m->u.generate;
        if (g->model.n > 0xffff || g->prompt.text.n > HSD_WIRE_MAX_MESSAGE ||
            g->negative.text.n > HSD_WIRE_MAX_MESSAGE || g->n_loras > HSD_WIRE_MAX_LORAS)
            return 0;
        for (unsigned i = 0; i < g->n_loras; i++)
            if (g->loras[i].name.n > 0xff) return 0;
        return size_generate(g, is_v2(m->version));
    }
    case HSD_WIRE_RESULT: return size_result(&m->u.result, is_v2(m->version));
    case HSD_WIRE_ERROR: return m->u.error.text.n > 0xffff ? 0 : 10 + (uint64_t)m->u.error.text.n;
    case HSD_WIRE_STATUS_REQUEST: return 0;
    case HSD_WIRE_STATUS: return size_status(&m->u.status);
    case HSD_WIRE_CANCEL: return 8;
    case HSD_WIRE_CANCEL_ACK: return 9;
    }
    return 0;
}

void wire_write_payload(struct wire_wr *w, const struct hsd_wire_msg *m) {
    switch ((enum hsd_wire_type)m->type) {
    case HSD_WIRE_GENERATE: write_generate(w, &m->u.generate, is_v2(m->version)); return;
    case HSD_WIRE_RESULT: write_result(w, &m->u.result, is_v2(m->version)); return;
    case HSD_WIRE_ERROR: write_error(w, &m->u.error); return;
    case HSD_WIRE_STATUS_REQUEST: return;
    case HSD_WIRE_STATUS: write_status(w, &m->u.status); return;
    case HSD_WIRE_CANCEL: wr_u64(w, m->u.cancel.target); return;
    case HSD_WIRE_CANCEL_ACK:
        wr_u64(w, m->u.cancel_ack.target);
        wr_u8(w, m->u.cancel_ack.cancelled);
        return;
    }
    HSD_ASSERT(0 && "type checked before writing");
}
