// UNet2DConditionModel.forward on backend ops, NHWC throughout.
//
// Activation memory: planned arena (models/fwd.h, shared with the VAEs):
// the forward runs twice per new (n, h, w, t_ctx) bucket, planning first.
// Skip connections stay below the mark until the up path has consumed them.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/plan_stats.h"
#include "models/lora.h"
#include "models/unet_internal.h"

struct fwd {
    struct hsd_fwd a;  // arena, backend, planning flag, flop count
    struct hsd_unet *u;
    int n;             // batch rows: a linear's m is n * tokens
    const void *wc;    // LCM: guidance-scale embeddings [n, time_cond_proj_dim], or NULL
    // text_time inputs in the arena: pooled text [n, text_dim] (act) and
    // time ids [n, n_ids] (fp32); buffers sized for [n, proj_in] so that
    // planning (sizes unknown) lays out the arena as the real pass does.
    const void *add_te, *add_ti;
    int add_text_dim, add_n_ids;
};

static void *act(struct fwd *f, size_t count) { return hsd_fwd_act(&f->a, count); }

static inline const void *off(const void *p, struct fwd *f, size_t elems) {
    return hsd_fwd_off(&f->a, p, elems);
}

// Each op wrapper runs only outside planning.
#define RUN(f, op, params) HSD_FWD_RUN(&(f)->a, op, params)

static enum hsd_status conv(struct fwd *f, void *out, const void *in, const void *w,
                            const void *bias, const void *res, int n, int h, int wd, int ci,
                            int co, int k, int stride) {
    return hsd_fwd_conv(&f->a, out, in, w, bias, res, n, h, wd, ci, co, k, stride);
}

// Every linear, then the LoRA side products of the rows that chose one
// (models/lora.h; nothing when no adapter targets w).
static enum hsd_status linear(struct fwd *f, void *out, const void *in, const void *w,
                              const void *bias, const void *res, int m, int k, int n_out) {
    enum hsd_status s = hsd_fwd_linear(&f->a, out, in, w, bias, res, m, k, n_out);
    if (s || !f->u->lora) return s;
    return hsd_lora_apply(&f->a, f->u->lora, w, out, n_out, in, f->n, m / f->n);
}

static enum hsd_status gnorm(struct fwd *f, void *out, const void *in, const void *g,
                             const void *b, int n, int hw, int c, float eps, int silu) {
    return hsd_fwd_gnorm(&f->a, out, in, g, b, n, hw, c, f->u->cfg.norm_num_groups, eps, silu);
}

static enum hsd_status lnorm(struct fwd *f, void *out, const void *in, const void *g,
                             const void *b, int m, int c) {
    // diffusers BasicTransformerBlock: nn.LayerNorm(dim, eps=1e-5).
    struct hsd_layer_norm_params p = {out, in, g, b, m, c, 1e-5f};
    RUN(f, layer_norm, &p);
    return HSD_OK;
}

static void probe(struct fwd *f, const char *name, const void *buf, int n, int h, int w, int c) {
    if (!f->a.planning && f->u->probe) {
        f->a.be->ops->synchronize(f->a.be);
        f->u->probe(f->u->probe_user, name, buf, n, h, w, c);
    }
}

// diffusers ResnetBlock2D (models/resnet2d.c) with the config's norm_eps.
static enum hsd_status resnet(struct fwd *f, void *out, const void *x, const void *temb_silu,
                              const struct hsd_resnet2d *r, int n, int h, int w) {
    return hsd_resnet2d_forward(&f->a, out, x, temb_silu, r, n, h, w, f->u->cfg.norm_num_groups,
                                f->u->cfg.norm_eps);
}

// diffusers Attention with AttnProcessor2_0 (no bias on q/k/v, 1/sqrt(d)
// scale, to_out[0] linear with bias; the residual add of
// BasicTransformerBlock is fused into to_out).
static enum hsd_status attention(struct fwd *f, void *out, const void *x, const void *res,
                                 const void *ctx_kv, const struct unet_attention *a, int n,
                                 int t_q, int t_kv) {
    enum hsd_status s;
    int inner = a->heads * a->head_dim;
    size_t mark = f->a.used;
    int m = n * t_q;
    void *o = act(f, (size_t)m * inner);
    struct hsd_attention_params p = {.out = o, .n = n, .heads = a->heads, .d = a->head_dim,
                                     .t_q = t_q, .ldo = inner,
                                     .scale = 1.0f / sqrtf((float)a->head_dim)};
    if (a->self) {
        void *qkv = act(f, (size_t)m * 3 * inner);
        if ((s = linear(f, qkv, x, a->qkv_w, NULL, NULL, m, a->dim, 3 * inner))) return s;
        p.q = qkv;
        p.k = off(qkv, f, (size_t)inner);
        p.v = off(qkv, f, 2 * (size_t)inner);
        p.ldq = p.ldk = p.ldv = 3 * inner;
        p.t_kv = t_q;
    } else {
        void *q = act(f, (size_t)m * inner);
        if ((s = linear(f, q, x, a->q_w, NULL, NULL, m, a->dim, inner))) return s;
        p.q = q;
        p.ldq = inner;
        p.k = ctx_kv;
        p.v = off(ctx_kv, f, (size_t)inner);
        p.ldk = p.ldv = 2 * inner;
        p.t_kv = t_kv;
    }
    f->a.flops += 4.0 * n * a->heads * t_q * (double)p.t_kv * a->head_dim;
    RUN(f, attention, &p);
    if ((s = linear(f, out, o, a->out_w, a->out_b, res, m, inner, a->dim))) return s;
    f->a.used = mark;
    return HSD_OK;
}

// diffusers Transformer2DModel (continuous input) with its
// BasicTransformerBlocks: norm, proj_in, blocks, proj_out, + residual.
static enum hsd_status transformer(struct fwd *f, void *out, const void *x, const void *ctx,
                                   const struct unet_transformer *t, int n, int h, int w,
                                   int t_ctx) {
    enum hsd_status s;
    int hw = h * w, c = t->c, m = n * hw;
    int ctx_dim = f->u->cfg.cross_attention_dim;
    size_t mark = f->a.used;
    void *a = act(f, (size_t)m * c), *b = act(f, (size_t)m * c), *nrm = act(f, (size_t)m * c);
    // Transformer2DModel's GroupNorm uses eps 1e-6 (not the config's).
    if ((s = gnorm(f, nrm, x, t->norm_g, t->norm_b, n, hw, c, 1e-6f, 0))) return s;
    if ((s = linear(f, a, nrm, t->proj_in_w, t->proj_in_b, NULL, m, c, c))) return s;
    for (int j = 0; j < t->n_blocks; j++) {
        const struct unet_tblock *k = &t->blocks[j];
        // hidden = attn1(norm1(hidden)) + hidden        (a -> b)
        if ((s = lnorm(f, nrm, a, k->norm1_g, k->norm1_b, m, c))) return s;
        if ((s = attention(f, b, nrm, a, NULL, &k->attn1, n, hw, hw))) return s;
        // hidden = attn2(norm2(hidden), ctx) + hidden   (b -> a)
        size_t m2 = f->a.used;
        int inner2 = k->attn2.heads * k->attn2.head_dim;
        void *kv = act(f, (size_t)n * t_ctx * 2 * inner2);
        if ((s = linear(f, kv, ctx, k->attn2.kv_w, NULL, NULL, n * t_ctx, ctx_dim, 2 * inner2)))
            return s;
        if ((s = lnorm(f, nrm, b, k->norm2_g, k->norm2_b, m, c))) return s;
        if ((s = attention(f, a, nrm, b, kv, &k->attn2, n, hw, t_ctx))) return s;
        f->a.used = m2;
        // hidden = ff(norm3(hidden)) + hidden           (a -> b -> a)
        if ((s = lnorm(f, nrm, a, k->norm3_g, k->norm3_b, m, c))) return s;
        void *proj = act(f, (size_t)m * 2 * k->ff_inner);
        if ((s = linear(f, proj, nrm, k->ff_in_w, k->ff_in_b, NULL, m, c, 2 * k->ff_inner)))
            return s;
        void *g = act(f, (size_t)m * k->ff_inner);
        struct hsd_geglu_params gp = {g, proj, m, k->ff_inner};
        RUN(f, geglu, &gp);
        if ((s = linear(f, b, g, k->ff_out_w, k->ff_out_b, a, m, k->ff_inner, c))) return s;
        f->a.used = m2;
        void *sw = a;  // result in b; keep "a = current hidden"
        a = b;
        b = sw;
    }
    if ((s = linear(f, out, a, t->proj_out_w, t->proj_out_b, x, m, c, c))) return s;
    f->a.used = mark;
    return HSD_OK;
}

// SDXL's aug_emb (diffusers UNet2DConditionModel.forward, "text_time"):
// add_time_proj(time_ids.flatten()) reshaped to [n, n_ids * dim],
// concatenated after text_embeds, add_embedding (linear_1, SiLU,
// linear_2), added to the time embedding *temb (the add fused into
// linear_2 as its residual). *temb then points at the sum.
static enum hsd_status add_embedding(struct fwd *f, void **temb, int n) {
    struct hsd_unet *u = f->u;
    const struct hsd_unet_config *cfg = &u->cfg;
    enum hsd_status s;
    int pin = cfg->projection_class_embeddings_input_dim, ad = cfg->addition_time_embed_dim;
    void *tp = act(f, (size_t)n * pin), *cat = act(f, (size_t)n * pin);
    void *a1 = act(f, (size_t)n * u->temb_dim), *e = act(f, (size_t)n * u->temb_dim);
    struct hsd_timestep_embedding_params tp_p = {tp, f->add_ti, n * f->add_n_ids, ad,
                                                 cfg->flip_sin_to_cos, cfg->freq_shift, 10000.0f};
    RUN(f, timestep_embedding, &tp_p);
    struct hsd_concat_params cp = {cat, f->add_te, tp, n, f->add_text_dim, f->add_n_ids * ad};
    RUN(f, concat_channels, &cp);
    if ((s = linear(f, a1, cat, u->add_l1_w, u->add_l1_b, NULL, n, pin, u->temb_dim))) return s;
    struct hsd_eltwise_params sp = {a1, a1, NULL, (size_t)n * u->temb_dim};
    RUN(f, silu, &sp);
    if ((s = linear(f, e, a1, u->add_l2_w, u->add_l2_b, *temb, n, u->temb_dim, u->temb_dim)))
        return s;
    probe(f, "emb", e, n, 1, 1, u->temb_dim);
    *temb = e;
    return HSD_OK;
}

// Everything between the uploads and the download: the part a backend may
// record once per bucket and replay (graph_begin/graph_end). *y receives the
// output [n, h, w, out_channels] in the arena.
static enum hsd_status body(struct fwd *f, void **y_out, const void *x, const void *tb,
                            const void *cx, int n, int h, int w, int t_ctx) {
    struct hsd_unet *u = f->u;
    const struct hsd_unet_config *cfg = &u->cfg;
    enum hsd_status s;
    int cin = cfg->in_channels, c0 = cfg->block_out_channels[0];

    // Time embedding: Timesteps(c0, flip_sin_to_cos, freq_shift) then
    // TimestepEmbedding: linear_1, SiLU, linear_2. Each ResNet applies SiLU
    // to it before its own projection, so keep silu(temb) once.
    void *temb_silu = act(f, (size_t)n * u->temb_dim);
    {
        size_t mark = f->a.used;
        void *te = act(f, (size_t)n * c0), *t1 = act(f, (size_t)n * u->temb_dim);
        void *t2 = act(f, (size_t)n * u->temb_dim);
        struct hsd_timestep_embedding_params tp = {te, tb, n, c0, cfg->flip_sin_to_cos,
                                                   cfg->freq_shift, 10000.0f};
        RUN(f, timestep_embedding, &tp);
        if (u->time_cond_w) {
            // TimestepEmbedding: sample = sample + self.cond_proj(condition)
            // (LCM's guidance-scale embedding; no bias).
            void *tc = act(f, (size_t)n * c0);
            if ((s = linear(f, tc, f->wc, u->time_cond_w, NULL, te, n, cfg->time_cond_proj_dim,
                            c0)))
                return s;
            te = tc;
        }
        if ((s = linear(f, t1, te, u->time_l1_w, u->time_l1_b, NULL, n, c0, u->temb_dim)))
            return s;
        struct hsd_eltwise_params sp = {t1, t1, NULL, (size_t)n * u->temb_dim};
        RUN(f, silu, &sp);
        if ((s = linear(f, t2, t1, u->time_l2_w, u->time_l2_b, NULL, n, u->temb_dim,
                        u->temb_dim)))
            return s;
        probe(f, "time_emb", t2, n, 1, 1, u->temb_dim);
        if (u->add_l1_w && (s = add_embedding(f, &t2, n))) return s;
        struct hsd_eltwise_params sp2 = {temb_silu, t2, NULL, (size_t)n * u->temb_dim};
        RUN(f, silu, &sp2);
        f->a.used = mark;
    }

    // Down path; every layer output is a skip connection.
    const void *skips[1 + HSD_UNET_MAX_BLOCKS * 66];
    int skip_c[1 + HSD_UNET_MAX_BLOCKS * 66], n_skips = 0;
    void *hcur = act(f, (size_t)n * h * w * c0);
    if ((s = conv(f, hcur, x, u->conv_in_w, u->conv_in_b, NULL, n, h, w, cin, c0, 3, 1)))
        return s;
    probe(f, "conv_in", hcur, n, h, w, c0);
    skips[n_skips] = hcur;
    skip_c[n_skips++] = c0;
    int c = c0;
    char name[32];
    for (int i = 0; i < cfg->n_blocks; i++) {
        const struct unet_level *L = &u->down[i];
        for (int l = 0; l < L->n_layers; l++) {
            const struct hsd_resnet2d *r = &L->resnets[l];
            void *o = act(f, (size_t)n * h * w * r->cout);
            if ((s = resnet(f, o, hcur, temb_silu, r, n, h, w))) return s;
            hcur = o;
            c = r->cout;
            if (L->attns) {
                void *o2 = act(f, (size_t)n * h * w * c);
                if ((s = transformer(f, o2, hcur, cx, &L->attns[l], n, h, w, t_ctx))) return s;
                hcur = o2;
            }
            skips[n_skips] = hcur;
            skip_c[n_skips++] = c;
        }
        if (L->sample_w) {
            // Downsample2D: 3x3 conv, stride 2, padding 1.
            int h2 = (h + 1) / 2, w2 = (w + 1) / 2;
            void *o = act(f, (size_t)n * h2 * w2 * c);
            if ((s = conv(f, o, hcur, L->sample_w, L->sample_b, NULL, n, h, w, c, c, 3, 2)))
                return s;
            hcur = o;
            h = h2;
            w = w2;
            skips[n_skips] = hcur;
            skip_c[n_skips++] = c;
        }
        snprintf(name, sizeof name, "down.%d", i);
        probe(f, name, hcur, n, h, w, c);
    }

    if (u->has_mid) {
        void *o = act(f, (size_t)n * h * w * c);
        if ((s = resnet(f, o, hcur, temb_silu, &u->mid_resnets[0], n, h, w))) return s;
        hcur = o;
        for (int j = 0; j < u->n_mid_attn; j++) {
            void *o2 = act(f, (size_t)n * h * w * c);
            if ((s = transformer(f, o2, hcur, cx, &u->mid_attns[j], n, h, w, t_ctx))) return s;
            void *o3 = act(f, (size_t)n * h * w * c);
            if ((s = resnet(f, o3, o2, temb_silu, &u->mid_resnets[j + 1], n, h, w))) return s;
            hcur = o3;
        }
        probe(f, "mid", hcur, n, h, w, c);
    }

    // Up path: each layer concatenates [hidden, skip] on channels.
    for (int i = 0; i < cfg->n_blocks; i++) {
        const struct unet_level *L = &u->up[i];
        for (int l = 0; l < L->n_layers; l++) {
            const struct hsd_resnet2d *r = &L->resnets[l];
            HSD_ASSERT(n_skips > 0);
            n_skips--;
            void *o = act(f, (size_t)n * h * w * r->cout);
            size_t mark = f->a.used;
            void *cat = act(f, (size_t)n * h * w * r->cin);
            struct hsd_concat_params cp = {cat, hcur, skips[n_skips], n * h * w, c,
                                           skip_c[n_skips]};
            HSD_ASSERT(c + skip_c[n_skips] == r->cin);
            RUN(f, concat_channels, &cp);
            if ((s = resnet(f, o, cat, temb_silu, r, n, h, w))) return s;
            f->a.used = mark;
            hcur = o;
            c = r->cout;
            if (L->attns) {
                void *o2 = act(f, (size_t)n * h * w * c);
                if ((s = transformer(f, o2, hcur, cx, &L->attns[l], n, h, w, t_ctx))) return s;
                hcur = o2;
            }
        }
        if (L->sample_w) {
            // Upsample2D: nearest x2 then 3x3 conv.
            void *o = act(f, (size_t)n * 4 * h * w * c);
            size_t mark = f->a.used;
            void *up = act(f, (size_t)n * 4 * h * w * c);
            struct hsd_upsample_params upp = {up, hcur, n, h, w, c};
            RUN(f, upsample_nearest2x, &upp);
            h *= 2;
            w *= 2;
            if ((s = conv(f, o, up, L->sample_w, L->sample_b, NULL, n, h, w, c, c, 3, 1)))
                return s;
            f->a.used = mark;
            hcur = o;
        }
        snprintf(name, sizeof name, "up.%d", i);
        probe(f, name, hcur, n, h, w, c);
    }

    void *nrm = act(f, (size_t)n * h * w * c);
    if ((s = gnorm(f, nrm, hcur, u->norm_out_g, u->norm_out_b, n, h * w, c, cfg->norm_eps, 1)))
        return s;
    probe(f, "conv_out_in", nrm, n, h, w, c);
    int cout = cfg->out_channels;
    void *y = act(f, (size_t)n * h * w * cout);
    if ((s = conv(f, y, nrm, u->conv_out_w, u->conv_out_b, NULL, n, h, w, c, cout, 3, 1)))
        return s;
    *y_out = y;
    return HSD_OK;
}

// body() inside graph_begin/graph_end when `graphed`: the ops of one bucket
// are recorded on the first call and replayed after (arena and weights at
// fixed addresses; `io`: the inputs outside the arena, part of the key).
// Not while a probe reads intermediates (it synchronizes between ops).
static enum hsd_status run_body(struct fwd *f, void **y, const void *x, const void *tb,
                                const void *cx, int n, int h, int w, int t_ctx, const void *io,
                                int graphed) {
    struct hsd_backend *be = f->a.be;
    enum hsd_status s;
    if (graphed) {
        // A graph runs whole (replayed in one launch, far shorter than a
        // CPU call): stop before it or not at all. A stop inside a capture
        // would look like an op that cannot be recorded and turn graphs off.
        if (hsd_fwd_aborted(&f->a)) return hsd_fwd_abort_status();
        f->a.abort = NULL;
        struct hsd_graph_key key = {f->u, f->a.base, n, h, w, t_ctx, io, 0};
        if ((s = be->ops->graph_begin(be, &key))) return s;
    }
    s = body(f, y, x, tb, cx, n, h, w, t_ctx);
    if (graphed) {
        enum hsd_status s2 = be->ops->graph_end(be, s == HSD_OK);
        if (s2 == HSD_ERR_UNSUPPORTED) {
            // Recording failed (the backend logged why and records no more):
            // nothing ran, so run the ops again, for real.
            hsd_clear_error();
            s = body(f, y, x, tb, cx, n, h, w, t_ctx);
        } else if (!s) {
            s = s2;
        }
    }
    return s;
}

static enum hsd_status forward(struct fwd *f, float *out, const float *sample, const float *t,
                               const float *ctx, const struct hsd_unet_added_cond *add, int n,
                               int h, int w, int t_ctx) {
    struct hsd_unet *u = f->u;
    struct hsd_backend *be = f->a.be;
    const struct hsd_unet_config *cfg = &u->cfg;
    enum hsd_status s;
    int cin = cfg->in_channels;

    // Inputs: NCHW host -> NHWC backend.
    void *x = act(f, (size_t)n * h * w * cin);
    // Timesteps stay fp32 on every backend (timestep_embedding's contract).
    void *tb = act(f, ((size_t)n * sizeof(float) + be->act_size - 1) / be->act_size);
    void *cx = act(f, (size_t)n * t_ctx * cfg->cross_attention_dim);
    const int tcd = cfg->time_cond_proj_dim;
    void *wc = tcd ? act(f, (size_t)n * tcd) : NULL;
    f->wc = wc;
    if (!f->a.planning && wc) {
        // Rows without a selected guidance (hsd_unet_set_guidance) get w = 0.
        float *emb = u->host_io;
        for (int b = 0; b < n; b++) hsd_unet_guidance_row(u, emb + (size_t)b * tcd, b);
        if ((s = be->ops->upload(be, wc, emb, (size_t)n * tcd))) return s;
    }
    void *te = NULL, *ti = NULL;
    if (cfg->add_text_time) {
        size_t pin = (size_t)n * cfg->projection_class_embeddings_input_dim;
        te = act(f, pin);
        ti = act(f, (pin * sizeof(float) + be->act_size - 1) / be->act_size);
        f->add_te = te;
        f->add_ti = ti;
        f->add_text_dim = add ? add->text_embeds_dim : 0;
        f->add_n_ids = add ? add->n_time_ids : 0;
    }
    if (!f->a.planning) {
        size_t hw = (size_t)h * w;
        float *tmp = u->host_io;
        for (int b = 0; b < n; b++)
            for (int c = 0; c < cin; c++)
                for (size_t p = 0; p < hw; p++) {
                    float v = sample[((size_t)b * cin + c) * hw + p];
                    // diffusers: center_input_sample -> 2 * sample - 1.0
                    tmp[((size_t)b * hw + p) * cin + c] = cfg->center_input_sample ? 2 * v - 1 : v;
                }
        s = be->ops->upload(be, x, tmp, (size_t)n * hw * cin);
        if (!s) s = be->ops->upload_f32(be, tb, t, (size_t)n);
        if (!s) s = be->ops->upload(be, cx, ctx, (size_t)n * t_ctx * cfg->cross_attention_dim);
        if (!s && te) s = be->ops->upload(be, te, add->text_embeds, (size_t)n * f->add_text_dim);
        if (!s && ti) s = be->ops->upload_f32(be, ti, add->time_ids, (size_t)n * f->add_n_ids);
        if (s) return s;
    }

    void *y = NULL;
    // A call with LoRA scales runs unrecorded: the lora op's per-row
    // scales are launch arguments a graph would replay unchanged.
    s = run_body(f, &y, x, tb, cx, n, h, w, t_ctx, NULL,
                 !f->a.planning && be->ops->graph_begin && !u->probe &&
                     !hsd_lora_active(u->lora));
    if (s) return s;
    int cout = cfg->out_channels;
    if (f->a.planning) return HSD_OK;
    size_t hw = (size_t)h * w;
    float *tmp = u->host_io;
    s = be->ops->download(be, tmp, y, (size_t)n * hw * cout);
    if (!s) {
        for (int b = 0; b < n; b++)
            for (size_t p = 0; p < hw; p++)
                for (int k = 0; k < cout; k++)
                    out[((size_t)b * cout + k) * hw + p] = tmp[((size_t)b * hw + p) * cout + k];
    }
    return s;
}

// The added conditioning fits the config (hsd_unet_added_cond), and keeps
// the split between text and time ids of the first call (a recorded graph
// holds it).
static enum hsd_status check_added(struct hsd_unet *u, const struct hsd_unet_added_cond *add) {
    const struct hsd_unet_config *cfg = &u->cfg;
    if (!cfg->add_text_time) {
        if (!add) return HSD_OK;
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "unet: text_embeds/time_ids given, but the config has no "
                        "addition_embed_type");
    }
    if (!add || !add->text_embeds || !add->time_ids)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "unet: config addition_embed_type \"text_time\" (SDXL) needs text_embeds "
                        "and time_ids");
    int ad = cfg->addition_time_embed_dim, pin = cfg->projection_class_embeddings_input_dim;
    if (add->text_embeds_dim < 1 || add->n_time_ids < 1 || add->n_time_ids > pin / ad ||
        add->text_embeds_dim + add->n_time_ids * ad != pin)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "unet: text_embeds width %d + %d time ids x addition_time_embed_dim %d "
                        "!= projection_class_embeddings_input_dim %d",
                        add->text_embeds_dim, add->n_time_ids, ad, pin);
    if (u->add_text_dim && u->add_text_dim != add->text_embeds_dim)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "unet: text_embeds width %d differs from the %d of earlier calls",
                        add->text_embeds_dim, u->add_text_dim);
    u->add_text_dim = add->text_embeds_dim;
    return HSD_OK;
}

static enum hsd_status check_dims(const struct hsd_unet *u, int n, int h, int w, int t_ctx) {
    if (!u->be)
        return hsd_fail(HSD_ERR_INVALID_ARG, "unet: model was opened for inspection only");
    int mult = hsd_unet_size_multiple(u);
    if (n < 1 || h < 1 || w < 1 || t_ctx < 1)
        return hsd_fail(HSD_ERR_INVALID_ARG, "unet: bad input dims n=%d h=%d w=%d t_ctx=%d", n,
                        h, w, t_ctx);
    if (h % mult || w % mult)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "unet: latent %dx%d is not a multiple of %d (2^(levels-1)) in both "
                        "dimensions",
                        h, w, mult);
    if ((int64_t)n * h * w > (int64_t)1 << 26 || t_ctx > 4096)
        return hsd_fail(HSD_ERR_INVALID_ARG, "unet: input too large (n=%d %dx%d, t_ctx=%d)", n,
                        h, w, t_ctx);
    return HSD_OK;
}

enum hsd_status hsd_unet_forward(struct hsd_unet *u, float *out, const float *sample,
                                 const float *t, const float *ctx, int n, int h, int w,
                                 int t_ctx) {
    return hsd_unet_forward_cond(u, out, sample, t, ctx, NULL, n, h, w, t_ctx);
}

enum hsd_status hsd_unet_forward_cond(struct hsd_unet *u, float *out, const float *sample,
                                      const float *t, const float *ctx,
                                      const struct hsd_unet_added_cond *add, int n, int h, int w,
                                      int t_ctx) {
    enum hsd_status s = check_dims(u, n, h, w, t_ctx);
    if (!s) s = check_added(u, add);
    if (!s) s = hsd_unet_plan(u, n, h, w, t_ctx);
    if (s) return s;
    struct fwd f = {.a = {.be = u->be, .base = u->arena, .cap = u->arena_cap, .abort = u->abort},
                    .u = u,
                    .n = n};
    s = forward(&f, out, sample, t, ctx, add, n, h, w, t_ctx);
    // The output is on the host now: the arena's pages need not stay
    // resident while the VAE or another model runs (a CPU refills 377 MB,
    // SD1.5 batch 2, in well under 1% of a step).
    hsd_unet_discard_arena(u);
    return s;
}

enum hsd_status hsd_unet_forward_dev(struct hsd_unet *u, const void **y, const void *x,
                                     const void *t, const void *ctx, int n, int h, int w,
                                     int t_ctx, int record) {
    enum hsd_status s = check_dims(u, n, h, w, t_ctx);
    if (s) return s;
    if (!x || !t || !ctx || !y)
        return hsd_fail(HSD_ERR_INVALID_ARG, "unet: forward_dev needs x, t, ctx and y");
    // diffusers' center_input_sample (2 * sample - 1) is a host step of
    // hsd_unet_forward; no SD model sets it, so the device path does not
    // carry it (callers use hsd_unet_forward for such a U-Net).
    if (u->cfg.center_input_sample)
        return hsd_fail(HSD_ERR_UNSUPPORTED, "unet: forward_dev: center_input_sample is not "
                                             "supported on backend inputs");
    // SDXL's added conditioning (text_embeds, time_ids) has no backend-input
    // form yet: such U-Nets take hsd_unet_forward_cond.
    if (u->cfg.add_text_time)
        return hsd_fail(HSD_ERR_UNSUPPORTED, "unet: forward_dev: addition_embed_type "
                                             "\"text_time\" (SDXL) is not supported on backend "
                                             "inputs");
    // Nor has an LCM U-Net's guidance embedding (hsd_unet_set_guidance):
    // such U-Nets take hsd_unet_forward.
    if (u->cfg.time_cond_proj_dim)
        return hsd_fail(HSD_ERR_UNSUPPORTED, "unet: forward_dev: time_cond_proj_dim (LCM "
                                             "guidance embedding) is not supported on backend "
                                             "inputs");
    if ((s = hsd_unet_plan(u, n, h, w, t_ctx))) return s;
    // Inside a caller's whole-step recording (backends with graphs) a stop
    // between ops would break the capture: that caller checks
    // hsd_unet_check_abort before it begins.
    struct fwd f = {.a = {.be = u->be, .base = u->arena, .cap = u->arena_cap,
                          .abort = u->be->ops->graph_begin ? NULL : u->abort},
                    .u = u,
                    .n = n};
    // The planned layout reserves the host path's input buffers first; keep
    // them (unused) so body() lands where the plan measured it.
    struct hsd_backend *be = u->be;
    (void)act(&f, (size_t)n * h * w * u->cfg.in_channels);
    (void)act(&f, ((size_t)n * sizeof(float) + be->act_size - 1) / be->act_size);
    (void)act(&f, (size_t)n * t_ctx * u->cfg.cross_attention_dim);
    void *out = NULL;
    s = run_body(&f, &out, x, t, ctx, n, h, w, t_ctx, x,
                 record && be->ops->graph_begin && !u->probe && !hsd_lora_active(u->lora));
    if (!s) *y = out;
    return s;}

static struct unet_plan *find_plan(struct hsd_unet *u, int n, int h, int w, int t_ctx) {
    for (int i = 0; i < u->n_plans; i++) {
        struct unet_plan *p = &u->plans[i];
        if (p->n == n && p->h == h && p->w == w && p->t == t_ctx) return p;
    }
    return NULL;
}

enum hsd_status hsd_unet_plan(struct hsd_unet *u, int n, int h, int w, int t_ctx) {
    if (!u->be)
        return hsd_fail(HSD_ERR_INVALID_ARG, "unet: model was opened for inspection only");
    struct unet_plan *pl = find_plan(u, n, h, w, t_ctx);
    if (!pl) {
        // A planning pass runs no op and reads no host data (forward's
        // uploads and downloads are skipped while planning).
        struct fwd f = {.a = {.be = u->be, .planning = 1}, .u = u, .n = n};
        enum hsd_status s = forward(&f, NULL, NULL, NULL, NULL, NULL, n, h, w, t_ctx);        if (s) return s;
        hsd_plan_stats_add(HSD_PLAN_UNET);
        if (u->n_plans < HSD_UNET_MAX_PLANS) {
            pl = &u->plans[u->n_plans++];
        } else {
            pl = &u->plans[u->next_evict];
            u->next_evict = (u->next_evict + 1) % HSD_UNET_MAX_PLANS;
        }
        *pl = (struct unet_plan){n, h, w, t_ctx, f.a.peak, f.a.flops};
    }
    if (!u->arena || pl->peak > u->arena_cap) {
        enum hsd_status s = hsd_fwd_reserve(u->be, &u->arena, &u->arena_cap, pl->peak, "unet");
        if (s) return s;
        hsd_plan_stats_add(HSD_PLAN_ARENA_GROWTH);
    }
    size_t io = (size_t)n * h * w *
                (u->cfg.in_channels > u->cfg.out_channels ? u->cfg.in_channels
                                                          : u->cfg.out_channels);
    if ((size_t)n * u->cfg.time_cond_proj_dim > io) io = (size_t)n * u->cfg.time_cond_proj_dim;
    if (io > u->host_io_cap) {
        free(u->host_io);
        u->host_io = malloc(io * sizeof(float));
        u->host_io_cap = u->host_io ? io : 0;
        if (!u->host_io) return hsd_fail(HSD_ERR_NOMEM, "unet: out of memory");
    }
    u->plan_flops = pl->flops;
    return HSD_OK;
}

double hsd_unet_flops(const struct hsd_unet *u) { return u->plan_flops; }

const void *hsd_unet_arena(const struct hsd_unet *u) { return u->arena; }

enum hsd_status hsd_unet_check_abort(const struct hsd_unet *u) {
    struct hsd_fwd f = {.abort = u->abort};
    return hsd_fwd_aborted(&f) ? hsd_fwd_abort_status() : HSD_OK;
}

void hsd_unet_discard_arena(struct hsd_unet *u) { hsd_fwd_discard(u->be, u->arena, u->arena_cap); }
