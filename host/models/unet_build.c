// Builds the U-Net structure from config + weights: every tensor is looked
// up by its diffusers name, its shape checked against what the config
// implies (widths that pruning may narrow are read from the file instead),
// converted to fp32 and uploaded. Channel flow through the skip connections
// is simulated so a mismatched file fails here, not mid-forward.
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "models/lora.h"
#include "models/unet_internal.h"

#define D HSD_DIMS

// Weight lookup, conversion and upload are models/loader.c's (shared with
// the VAEs); this file adds the U-Net's structure on top.
struct build {
    struct hsd_unet *u;
    struct hsd_loader ld;
};

static enum hsd_status get(struct build *b, void **dst, int ndim, int64_t *dims, int conv,
                           const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static enum hsd_status get(struct build *b, void **dst, int ndim, int64_t *dims, int conv,
                           const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    enum hsd_status s = hsd_loader_vget(&b->ld, dst, ndim, dims, conv, fmt, ap);
    va_end(ap);
    return s;
}

// diffusers ResnetBlock2D with its time embedding projection; pruned files
// narrow the inner width (read from conv1 when there are weights).
static enum hsd_status build_resnet(struct build *b, struct hsd_resnet2d *r, const char *pre,
                                    int cin, int cout) {
    struct hsd_unet *u = b->u;
    enum hsd_status s = hsd_resnet2d_build(&b->ld, r, pre, cin, cout, u->temb_dim,
                                           u->cfg.norm_num_groups, b->ld.w != NULL);
    if (!s && r->cmid != cout) u->summary.n_resnets_pruned++;
    return s;
}

static enum hsd_status build_attention(struct build *b, struct unet_attention *a, const char *pre,
                                       int dim, int ctx_dim, int heads_cfg, int self) {
    enum hsd_status s;
    struct hsd_unet *u = b->u;
    a->dim = dim;
    a->ctx_dim = ctx_dim;
    a->self = self;
    a->head_dim = dim / heads_cfg;
    // Pruned models keep fewer heads of the same width: read the count.
    const struct hsd_st_tensor *tq;
    char name[256];
    snprintf(name, sizeof name, "%s.to_q.weight", pre);
    tq = b->ld.w ? hsd_weights_find(b->ld.w, name) : NULL;
    int64_t inner = tq && tq->ndim == 2 ? tq->shape[0] : dim;
    if (inner <= 0 || inner % a->head_dim || inner > dim)
        return hsd_fail(HSD_ERR_SHAPE,
                        "%s: tensor '%s': %lld query features is not a whole number of heads "
                        "of width %d (at most %d heads)",
                        b->ld.path, name, (long long)inner, a->head_dim, heads_cfg);
    a->heads = (int)(inner / a->head_dim);
    if (a->heads != heads_cfg) u->summary.n_attn_pruned++;
    int64_t kd = self ? dim : ctx_dim;
    // q, k, v are stacked as [q; k; v] (self) or q and [k; v] (cross) so
    // one GEMM makes each group.
    char nk[256], nv[256];
    snprintf(nk, sizeof nk, "%s.to_k.weight", pre);
    snprintf(nv, sizeof nv, "%s.to_v.weight", pre);
    const int64_t rows[3] = {inner, inner, inner};
    a->qkv_w = a->q_w = a->kv_w = NULL;
    if (self) {
        s = hsd_loader_get_stacked(&b->ld, &a->qkv_w, 3, (const char *const[]){name, nk, nv}, rows,
                                   dim);
    } else {
        s = hsd_loader_get_stacked(&b->ld, &a->q_w, 1, (const char *const[]){name}, rows, dim);
        if (!s)
            s = hsd_loader_get_stacked(&b->ld, &a->kv_w, 2, (const char *const[]){nk, nv}, rows,
                                       kd);
    }
    if (s) return s;
    if ((s = get(b, &a->out_w, 2, D(dim, inner), 0, "%s.to_out.0.weight", pre))) return s;
    return get(b, &a->out_b, 1, D(dim), 0, "%s.to_out.0.bias", pre);
}

static enum hsd_status build_transformer(struct build *b, struct unet_transformer *t,
                                         const char *pre, int c, int heads, int n_blocks) {
    enum hsd_status s;
    struct hsd_unet *u = b->u;
    t->c = c;
    t->n_blocks = n_blocks;
    t->blocks = calloc((size_t)n_blocks, sizeof *t->blocks);
    if (!t->blocks) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    int lin = u->cfg.use_linear_projection;
    if ((s = get(b, &t->norm_g, 1, D(c), 0, "%s.norm.weight", pre))) return s;
    if ((s = get(b, &t->norm_b, 1, D(c), 0, "%s.norm.bias", pre))) return s;
    if (lin) {
        if ((s = get(b, &t->proj_in_w, 2, D(c, c), 0, "%s.proj_in.weight", pre))) return s;
        if ((s = get(b, &t->proj_out_w, 2, D(c, c), 0, "%s.proj_out.weight", pre))) return s;
    } else {
        if ((s = get(b, &t->proj_in_w, 4, D(c, c, 1, 1), 1, "%s.proj_in.weight", pre))) return s;
        if ((s = get(b, &t->proj_out_w, 4, D(c, c, 1, 1), 1, "%s.proj_out.weight", pre)))
            return s;
    }
    if ((s = get(b, &t->proj_in_b, 1, D(c), 0, "%s.proj_in.bias", pre))) return s;
    if ((s = get(b, &t->proj_out_b, 1, D(c), 0, "%s.proj_out.bias", pre))) return s;
    for (int j = 0; j < n_blocks; j++) {
        struct unet_tblock *k = &t->blocks[j];
        char p[200];
        snprintf(p, sizeof p, "%s.transformer_blocks.%d", pre, j);
        if ((s = get(b, &k->norm1_g, 1, D(c), 0, "%s.norm1.weight", p))) return s;
        if ((s = get(b, &k->norm1_b, 1, D(c), 0, "%s.norm1.bias", p))) return s;
        if ((s = get(b, &k->norm2_g, 1, D(c), 0, "%s.norm2.weight", p))) return s;
        if ((s = get(b, &k->norm2_b, 1, D(c), 0, "%s.norm2.bias", p))) return s;
        if ((s = get(b, &k->norm3_g, 1, D(c), 0, "%s.norm3.weight", p))) return s;
        if ((s = get(b, &k->norm3_b, 1, D(c), 0, "%s.norm3.bias", p))) return s;
        char ap[220];
        snprintf(ap, sizeof ap, "%s.attn1", p);
        if ((s = build_attention(b, &k->attn1, ap, c, c, heads, 1))) return s;
        snprintf(ap, sizeof ap, "%s.attn2", p);
        if ((s = build_attention(b, &k->attn2, ap, c, u->cfg.cross_attention_dim, heads, 0)))
            return s;
        // diffusers FeedForward(mult=4, activation_fn="geglu"): inner 4*c.
        int64_t ffi[2] = {2 * 4 * c, c};
        if ((s = get(b, &k->ff_in_w, 2, ffi, 0, "%s.ff.net.0.proj.weight", p))) return s;
        k->ff_inner = 4 * c;
        if ((s = get(b, &k->ff_in_b, 1, D(2 * 4 * c), 0, "%s.ff.net.0.proj.bias", p))) return s;
        if ((s = get(b, &k->ff_out_w, 2, D(c, 4 * c), 0, "%s.ff.net.2.weight", p))) return s;
        if ((s = get(b, &k->ff_out_b, 1, D(c), 0, "%s.ff.net.2.bias", p))) return s;
    }
    return HSD_OK;
}

// SDXL's add_embedding = TimestepEmbedding(projection_class_embeddings_
// input_dim, time_embed_dim) (diffusers _set_add_embedding, "text_time");
// add_time_proj has no weights.
static enum hsd_status build_add_embedding(struct build *b) {
    struct hsd_unet *u = b->u;
    int in = u->cfg.projection_class_embeddings_input_dim, t = u->temb_dim;
    enum hsd_status s;
    if ((s = get(b, &u->add_l1_w, 2, D(t, in), 0, "add_embedding.linear_1.weight"))) return s;
    if ((s = get(b, &u->add_l1_b, 1, D(t), 0, "add_embedding.linear_1.bias"))) return s;
    if ((s = get(b, &u->add_l2_w, 2, D(t, t), 0, "add_embedding.linear_2.weight"))) return s;
    return get(b, &u->add_l2_b, 1, D(t), 0, "add_embedding.linear_2.bias");
}

static enum hsd_status build_all(struct build *b) {
    struct hsd_unet *u = b->u;
    const struct hsd_unet_config *cfg = &u->cfg;
    enum hsd_status s;
    int nb = cfg->n_blocks, c0 = cfg->block_out_channels[0];
    char pre[160];
    if (cfg->downsample_padding != 1)
        return hsd_fail(HSD_ERR_UNSUPPORTED, "%s: downsample_padding %d is not supported (SD uses 1)",
                        b->ld.path, cfg->downsample_padding);
    if (cfg->mid_block_scale_factor != 1.0f)
        return hsd_fail(HSD_ERR_UNSUPPORTED,
                        "%s: mid_block_scale_factor %g is not supported (SD uses 1)", b->ld.path,
                        (double)cfg->mid_block_scale_factor);
    u->temb_dim = 4 * c0;  // diffusers: time_embed_dim = block_out_channels[0] * 4
    if ((s = get(b, &u->conv_in_w, 4, D(c0, cfg->in_channels, 3, 3), 1, "conv_in.weight")))
        return s;
    if ((s = get(b, &u->conv_in_b, 1, D(c0), 0, "conv_in.bias"))) return s;
    if ((s = get(b, &u->time_l1_w, 2, D(u->temb_dim, c0), 0, "time_embedding.linear_1.weight")))
        return s;
    if ((s = get(b, &u->time_l1_b, 1, D(u->temb_dim), 0, "time_embedding.linear_1.bias")))
        return s;
    if ((s = get(b, &u->time_l2_w, 2, D(u->temb_dim, u->temb_dim), 0,
                 "time_embedding.linear_2.weight")))
        return s;
    if ((s = get(b, &u->time_l2_b, 1, D(u->temb_dim), 0, "time_embedding.linear_2.bias")))
        return s;
    if (u->cfg.time_cond_proj_dim &&
        (s = get(b, &u->time_cond_w, 2, D(c0, u->cfg.time_cond_proj_dim), 0,
                 "time_embedding.cond_proj.weight")))
        return s;
    if (cfg->add_text_time && (s = build_add_embedding(b))) return s;

    // Skip-connection channel stack, as UNet2DConditionModel.forward pushes it.
    int skips[1 + HSD_UNET_MAX_BLOCKS * 66], n_skips = 0;
    skips[n_skips++] = c0;
    int c = c0;
    for (int i = 0; i < nb; i++) {
        struct unet_level *L = &u->down[i];
        int cout = cfg->block_out_channels[i];
        L->n_layers = cfg->layers_per_block[i];
        L->resnets = calloc((size_t)L->n_layers, sizeof *L->resnets);
        if (!L->resnets) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
        int attn = cfg->down[i] == HSD_UNET_BLOCK_CROSS_ATTN;
        if (attn && !(L->attns = calloc((size_t)L->n_layers, sizeof *L->attns)))
            return hsd_fail(HSD_ERR_NOMEM, "out of memory");
        for (int l = 0; l < L->n_layers; l++) {
            snprintf(pre, sizeof pre, "down_blocks.%d.resnets.%d", i, l);
            if ((s = build_resnet(b, &L->resnets[l], pre, c, cout))) return s;
            c = cout;
            if (attn) {
                snprintf(pre, sizeof pre, "down_blocks.%d.attentions.%d", i, l);
                if ((s = build_transformer(b, &L->attns[l], pre, c, cfg->heads[i],
                                           hsd_unet_depth_down(cfg, i, l))))
                    return s;
            }
            skips[n_skips++] = c;
        }
        if (i < nb - 1) {
            L->c = c;
            if ((s = get(b, &L->sample_w, 4, D(c, c, 3, 3), 1,
                         "down_blocks.%d.downsamplers.0.conv.weight", i)))
                return s;
            if ((s = get(b, &L->sample_b, 1, D(c), 0, "down_blocks.%d.downsamplers.0.conv.bias",
                         i)))
                return s;
            skips[n_skips++] = c;
        }
    }
    u->has_mid = cfg->has_mid_block;
    if (u->has_mid) {
        // UNetMidBlock2DCrossAttn(num_layers=1): resnet, then (attn, resnet).
        u->n_mid_attn = 1;
        u->mid_resnets = calloc(2, sizeof *u->mid_resnets);
        u->mid_attns = calloc(1, sizeof *u->mid_attns);
        if (!u->mid_resnets || !u->mid_attns) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
        if ((s = build_resnet(b, &u->mid_resnets[0], "mid_block.resnets.0", c, c))) return s;
        if ((s = build_transformer(b, &u->mid_attns[0], "mid_block.attentions.0", c,
                                   cfg->heads[nb - 1], hsd_unet_depth_mid(cfg))))
            return s;
        if ((s = build_resnet(b, &u->mid_resnets[1], "mid_block.resnets.1", c, c))) return s;
    }
    for (int i = 0; i < nb; i++) {
        struct unet_level *L = &u->up[i];
        int lvl = nb - 1 - i;  // the down level this up block mirrors
        int cout = cfg->block_out_channels[lvl];
        L->n_layers = cfg->layers_per_block[lvl] + 1;
        L->resnets = calloc((size_t)L->n_layers, sizeof *L->resnets);
        if (!L->resnets) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
        int attn = cfg->up[i] == HSD_UNET_BLOCK_CROSS_ATTN;
        if (attn && !(L->attns = calloc((size_t)L->n_layers, sizeof *L->attns)))
            return hsd_fail(HSD_ERR_NOMEM, "out of memory");
        for (int l = 0; l < L->n_layers; l++) {
            if (n_skips == 0)
                return hsd_fail(HSD_ERR_FORMAT, "%s: config has more up layers than skips",
                                b->ld.path);
            int cin = c + skips[--n_skips];
            snprintf(pre, sizeof pre, "up_blocks.%d.resnets.%d", i, l);
            if ((s = build_resnet(b, &L->resnets[l], pre, cin, cout))) return s;
            c = cout;
            if (attn) {
                snprintf(pre, sizeof pre, "up_blocks.%d.attentions.%d", i, l);
                if ((s = build_transformer(b, &L->attns[l], pre, c, cfg->heads[lvl],
                                           hsd_unet_depth_up(cfg, i, l))))
                    return s;
            }
        }
        if (i < nb - 1) {
            L->c = c;
            if ((s = get(b, &L->sample_w, 4, D(c, c, 3, 3), 1,
                         "up_blocks.%d.upsamplers.0.conv.weight", i)))
                return s;
            if ((s = get(b, &L->sample_b, 1, D(c), 0, "up_blocks.%d.upsamplers.0.conv.bias", i)))
                return s;
        }
    }
    if (n_skips)
        return hsd_fail(HSD_ERR_FORMAT, "%s: %d skip connections left unused by the up blocks",
                        b->ld.path, n_skips);
    if ((s = get(b, &u->norm_out_g, 1, D(c), 0, "conv_norm_out.weight"))) return s;
    if ((s = get(b, &u->norm_out_b, 1, D(c), 0, "conv_norm_out.bias"))) return s;
    if ((s = get(b, &u->conv_out_w, 4, D(cfg->out_channels, c, 3, 3), 1, "conv_out.weight")))
        return s;
    if ((s = get(b, &u->conv_out_b, 1, D(cfg->out_channels), 0, "conv_out.bias"))) return s;

    // A tensor the config does not explain means config and weights
    // disagree (e.g. a mid block in the file but not in config.json).
    return hsd_loader_check_all_used(&b->ld, "the U-Net the config describes");
}

// SDXL-family U-Nets (text_time conditioning). SDXL-base: three levels,
// two layers each, depths 1/2/10 (diffusers' config of
// stabilityai/stable-diffusion-xl-base-1.0). Depths set per layer are
// SSD-1B's form (segmind/SSD-1B); fewer layers or shallower stacks than
// SDXL-base are KOALA's kind of pruning (KOALA, arXiv 2312.04005).
static const char *sdxl_family(const struct hsd_unet_config *c) {
    int base = c->n_blocks == 3 && c->has_mid_block && c->down[0] == HSD_UNET_BLOCK_PLAIN;
    for (int i = 0; base && i < 3; i++)
        base = c->layers_per_block[i] == 2 && c->transformer_layers[i] == (int[]){1, 2, 10}[i];
    for (int i = 0; i < c->n_blocks; i++)
        if (c->tl_down[i][0] || c->tl_up[i][0]) return "SSD-1B-like SDXL";
    if (base) return "SDXL-base";
    if (c->n_blocks == 3 && c->down[0] == HSD_UNET_BLOCK_PLAIN) return "KOALA-like SDXL";
    return "custom SDXL";
}

static void classify(struct hsd_unet *u) {
    const struct hsd_unet_config *c = &u->cfg;
    struct hsd_unet_summary *s = &u->summary;
    s->pruned = s->n_resnets_pruned > 0 || s->n_attn_pruned > 0;
    static const int sd_widths[4] = {320, 640, 1280, 1280};
    int widths_sd = c->n_blocks >= 3 && !memcmp(c->block_out_channels, sd_widths,
                                                (size_t)c->n_blocks * sizeof(int));
    int lpb = c->layers_per_block[0];
    const char *base;
    if (c->add_text_time)
        base = sdxl_family(c);
    else if (c->n_blocks == 4 && c->has_mid_block && lpb == 2)
        base = c->cross_attention_dim == 1024 || c->use_linear_projection ? "SD2.x" : "SD1.x";
    else if (c->n_blocks == 4 && c->has_mid_block && lpb == 1)
        base = "BK-SDM-Base";
    else if (c->n_blocks == 4 && !c->has_mid_block && lpb == 1)
        base = "BK-SDM-Small";
    else if (c->n_blocks == 3 && !c->has_mid_block && lpb == 1)
        base = "BK-SDM-Tiny";
    else
        base = "custom";
    snprintf(s->variant, sizeof s->variant, "%s%s%s%s", s->pruned ? "pruned " : "", base,
             !strcmp(base, "SD2.x") && c->sample_size == 64 ? "-base" : "",
             widths_sd || !strcmp(base, "custom") || c->add_text_time
                 ? ""
                 : "-shaped (narrow widths)");
}

enum hsd_status hsd_unet_create(struct hsd_unet **out, const struct hsd_unet_source *src,
                                struct hsd_backend *be) {
    *out = NULL;
    struct hsd_unet *u = calloc(1, sizeof *u);
    if (!u) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    u->cfg = src->cfg;
    u->be = be;
    struct build b = {.u = u};
    enum hsd_status s = hsd_loader_init(&b.ld, src->weights, be, &u->bufs);
    if (!s) s = build_all(&b);
    u->summary.params = b.ld.params;
    u->summary.dtype = b.ld.dtype;
    u->summary.mixed_dtypes = b.ld.mixed_dtypes;
    hsd_loader_release(&b.ld);
    if (s) {
        hsd_unet_free(u);
        return s;
    }
    classify(u);
    *out = u;
    return HSD_OK;
}

static void free_transformers(struct unet_transformer *t, int n) {
    if (!t) return;
    for (int i = 0; i < n; i++) free(t[i].blocks);
    free(t);
}

void hsd_unet_free(struct hsd_unet *u) {
    if (!u) return;
    hsd_bufs_free(&u->bufs, u->be);
    for (int i = 0; i < HSD_UNET_MAX_BLOCKS; i++) {
        free(u->down[i].resnets);
        free_transformers(u->down[i].attns, u->down[i].n_layers);
        free(u->up[i].resnets);
        free_transformers(u->up[i].attns, u->up[i].n_layers);
    }
    free(u->mid_resnets);
    free_transformers(u->mid_attns, u->n_mid_attn);
    if (u->arena) u->be->ops->free(u->be, u->arena);
    hsd_lora_set_free(u->lora);
    free(u->guidance_emb);
    free(u->host_io);
    free(u);
}

const struct hsd_unet_config *hsd_unet_get_config(const struct hsd_unet *u) { return &u->cfg; }

void hsd_unet_get_summary(const struct hsd_unet *u, struct hsd_unet_summary *s) {
    *s = u->summary;
}

int hsd_unet_size_multiple(const struct hsd_unet *u) { return 1 << (u->cfg.n_blocks - 1); }

void hsd_unet_set_probe(struct hsd_unet *u, hsd_unet_probe_fn fn, void *user) {
    u->probe = fn;
    u->probe_user = user;
}

void hsd_unet_set_abort(struct hsd_unet *u, const atomic_int *flag) { u->abort = flag; }
