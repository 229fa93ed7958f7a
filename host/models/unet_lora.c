// The layers of a U-Net that LoRA targets (models/lora.h), named as
// diffusers names them, and the U-Net's attach / select entry points.
// Targets are the Linear (and SD 1.x's 1x1-conv proj_in/proj_out) layers
// of every Transformer2DModel, the modules kohya's and PEFT's SD LoRAs
// train (diffusers' default target_modules: to_q, to_k, to_v, to_out.0,
// plus the feed-forward and projections kohya adds), under their diffusers
// names and, for kohya's SDXL files, their SGM/LDM names too.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/lora.h"
#include "models/unet_internal.h"

struct targets {
    struct hsd_lora_target *t;
    int n, cap;
};

static enum hsd_status add(struct targets *ts, const char *pre, const char *mod, const void *w,
                           int col, int n_out, int k) {
    if (ts->n == ts->cap) {
        int cap = ts->cap ? 2 * ts->cap : 256;
        struct hsd_lora_target *t = realloc(ts->t, (size_t)cap * sizeof *t);
        if (!t) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
        ts->t = t;
        ts->cap = cap;
    }
    char path[HSD_LORA_LAYER_MAX + 64];
    snprintf(path, sizeof path, "%s.%s", pre, mod);
    struct hsd_lora_target *t = &ts->t[ts->n];
    if (hsd_lora_layer_name(t->layer, path)) return hsd_fail(HSD_ERR_INTERNAL, "long name");
    t->weight = w;
    t->col = col;
    t->n_out = n_out;
    t->k = k;
    ts->n++;
    return HSD_OK;
}

static enum hsd_status attention(struct targets *ts, const char *pre,
                                 const struct unet_attention *a) {
    const int inner = a->heads * a->head_dim;
    enum hsd_status s;
    if (a->self) {
        if ((s = add(ts, pre, "to_q", a->qkv_w, 0, inner, a->dim))) return s;
        if ((s = add(ts, pre, "to_k", a->qkv_w, inner, inner, a->dim))) return s;
        if ((s = add(ts, pre, "to_v", a->qkv_w, 2 * inner, inner, a->dim))) return s;
    } else {
        if ((s = add(ts, pre, "to_q", a->q_w, 0, inner, a->dim))) return s;
        if ((s = add(ts, pre, "to_k", a->kv_w, 0, inner, a->ctx_dim))) return s;
        if ((s = add(ts, pre, "to_v", a->kv_w, inner, inner, a->ctx_dim))) return s;
    }
    return add(ts, pre, "to_out.0", a->out_w, 0, a->dim, inner);
}

static enum hsd_status transformer(struct targets *ts, const char *pre,
                                   const struct unet_transformer *t) {
    enum hsd_status s;
    if ((s = add(ts, pre, "proj_in", t->proj_in_w, 0, t->c, t->c))) return s;
    if ((s = add(ts, pre, "proj_out", t->proj_out_w, 0, t->c, t->c))) return s;
    for (int j = 0; j < t->n_blocks; j++) {
        const struct unet_tblock *k = &t->blocks[j];
        char p[160], ap[176];
        snprintf(p, sizeof p, "%s.transformer_blocks.%d", pre, j);
        snprintf(ap, sizeof ap, "%s.attn1", p);
        if ((s = attention(ts, ap, &k->attn1))) return s;
        snprintf(ap, sizeof ap, "%s.attn2", p);
        if ((s = attention(ts, ap, &k->attn2))) return s;
        if ((s = add(ts, p, "ff.net.0.proj", k->ff_in_w, 0, 2 * k->ff_inner, t->c))) return s;
        if ((s = add(ts, p, "ff.net.2", k->ff_out_w, 0, t->c, k->ff_inner))) return s;
    }
    return HSD_OK;
}

// Level i's attention layers as diffusers names them ("down_blocks.i.
// attentions.l"), or with sgm as the CompVis/SGM U-Net does (kohya's SDXL
// LoRAs: "input_blocks.<first + l>.1", "output_blocks.<first + l>.1"; the
// inverse of diffusers' lora_conversion_utils _maybe_map_sgm_blocks_to_
// diffusers, io/ldm_names.h for the numbering). first: the level's first
// LDM index.
static enum hsd_status level(struct targets *ts, const char *kind, int i,
                             const struct unet_level *L, const char *sgm, int first) {
    for (int l = 0; L->attns && l < L->n_layers; l++) {
        char pre[64];
        if (sgm) snprintf(pre, sizeof pre, "%s.%d.1", sgm, first + l);
        else snprintf(pre, sizeof pre, "%s.%d.attentions.%d", kind, i, l);
        enum hsd_status s = transformer(ts, pre, &L->attns[l]);
        if (s) return s;
    }
    return HSD_OK;
}

// Every target; sgm: every attention target once more under its SGM name.
static enum hsd_status collect(struct targets *ts, const struct hsd_unet *u, int sgm) {
    enum hsd_status s = HSD_OK;
    for (int pass = 0; pass <= sgm && !s; pass++) {
        // input_blocks.0 is conv_in; each level's layers, then its downsampler.
        int in = 1, out = 0;
        for (int i = 0; i < u->cfg.n_blocks && !s; i++) {
            s = level(ts, "down_blocks", i, &u->down[i], pass ? "input_blocks" : NULL, in);
            in += u->down[i].n_layers + 1;
        }
        for (int i = 0; i < u->cfg.n_blocks && !s; i++) {
            s = level(ts, "up_blocks", i, &u->up[i], pass ? "output_blocks" : NULL, out);
            out += u->up[i].n_layers;
        }
        for (int j = 0; j < u->n_mid_attn && !s; j++) {
            char pre[64];
            if (pass) snprintf(pre, sizeof pre, "middle_block.%d", 2 * j + 1);
            else snprintf(pre, sizeof pre, "mid_block.attentions.%d", j);
            s = transformer(ts, pre, &u->mid_attns[j]);
        }
    }
    return s;
}

enum hsd_status hsd_unet_lora_attach(struct hsd_unet *u, const struct hsd_lora_file *f,
                                     const char *model, int *adapter) {
    if (!u->be) return hsd_fail(HSD_ERR_INVALID_ARG, "unet: opened for inspection only");
    struct targets ts = {0};
    enum hsd_status s = collect(&ts, u, 1);
    if (!s) s = hsd_lora_attach(&u->lora, u->be, ts.t, ts.n, f, HSD_LORA_UNET, model, adapter);
    free(ts.t);
    // The side products take arena scratch: plan every shape again.
    if (!s) u->n_plans = 0;
    return s;
}

enum hsd_status hsd_unet_lora_select(struct hsd_unet *u, const float *scale, int rows) {
    return hsd_lora_select(u->lora, scale, rows);
}

int hsd_unet_lora_adapters(const struct hsd_unet *u) { return hsd_lora_set_adapters(u->lora); }

enum hsd_status hsd_unet_lora_random(struct hsd_lora_file **out, const struct hsd_unet *u,
                                     int rank, uint64_t seed) {
    *out = NULL;
    struct targets ts = {0};
    enum hsd_status s = collect(&ts, u, 0);
    struct hsd_lora_file *f = s ? NULL : calloc(1, sizeof *f);
    if (f) f->layers = calloc((size_t)ts.n + 1, sizeof *f->layers);
    if (!s && (!f || !f->layers)) s = hsd_fail(HSD_ERR_NOMEM, "out of memory");
    // splitmix64: values in [-1, 1) / sqrt(k) for down, / 4 for up.
    for (int i = 0; !s && i < ts.n; i++) {
        const struct hsd_lora_target *t = &ts.t[i];
        struct hsd_lora_layer *ly = &f->layers[f->n_layers++];
        *ly = (struct hsd_lora_layer){.part = HSD_LORA_UNET, .r = rank, .k = t->k,
                                      .n_out = t->n_out, .alpha = (float)rank};
        memcpy(ly->layer, t->layer, sizeof ly->layer);
        ly->down = malloc((size_t)rank * t->k * sizeof(float));
        ly->up = malloc((size_t)t->n_out * rank * sizeof(float));
        if (!ly->down || !ly->up) {
            s = hsd_fail(HSD_ERR_NOMEM, "out of memory");
            break;
        }
        const size_t nd = (size_t)rank * t->k, nu = (size_t)t->n_out * rank;
        for (size_t j = 0; j < nd + nu; j++) {
            uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            float v = (float)((z ^ (z >> 31)) >> 40) / (float)(1 << 23) - 1.0f;
            if (j < nd) ly->down[j] = v / sqrtf((float)t->k);
            else ly->up[j - nd] = v / 4.0f;
        }
        f->n_part[HSD_LORA_UNET]++;
    }
    free(ts.t);
    if (s) {
        hsd_lora_file_free(f);
        return s;
    }
    snprintf(f->path, sizeof f->path, "random rank-%d LoRA", rank);
    *out = f;
    return HSD_OK;
}
