// CLIPTextModel (transformers models/clip/modeling_clip.py) on backend ops:
// CLIPTextEmbeddings, then CLIPEncoderLayer x N (pre-LN, causal self
// attention, fc1 -> quick_gelu/gelu -> fc2), then final_layer_norm.
//
// Weights: text_encoder/model.safetensors under transformers' names. Files
// saved by transformers 4.x (every SD text_encoder on the Hub) prefix them
// with "text_model." and carry the int64 buffer embeddings.position_ids;
// transformers 5.x saves them without the prefix. Both are read; a file
// mixing the two, or holding a tensor the config does not explain, fails.
//
// Embeddings are gathered on the host: the token table is the largest
// tensor (49408 x 768 in SD 1.x) yet a forward reads only n*L of its rows,
// so it stays in the file mapping (never uploaded nor converted whole) and
// the rows in use are converted, added to the position rows (host fp32,
// as transformers adds them in fp32) and uploaded as [n*L, C]. On a GPU
// that is one small upload instead of a table in device memory.
//
// Activation memory follows unet_forward.c: a planning pass per new (n, L)
// sizes a bump arena, so a planned forward does not allocate.
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/plan_stats.h"
#include "io/ldm_detect.h"
#include "io/ldm_names.h"
#include "io/weights.h"
#include "models/clip_text.h"
#include "models/fwd.h"
#include "models/lora.h"
#include "models/loader.h"
#include "io/file.h"

// transformers CLIPEncoderLayer; q/k/v packed as [q; k; v] at load so one
// GEMM makes them and the attention op reads the heads with strides.
struct clip_layer {
    void *ln1_g, *ln1_b, *ln2_g, *ln2_b;  // [C]
    void *qkv_w, *qkv_b;                  // [3C, C], [3C]
    void *out_w, *out_b;                  // [C, C], [C]
    void *fc1_w, *fc1_b;                  // [I, C], [I]
    void *fc2_w, *fc2_b;                  // [C, I], [C]
};

struct hsd_clip_text {
    struct hsd_clip_text_config cfg;
    struct hsd_backend *be;
    struct hsd_weights *w;                // kept open: token rows are read from it
    const struct hsd_st_tensor *tok;      // [V, C], the file's dtype
    float *pos;                           // [P, C] host fp32
    struct clip_layer *layers;
    void *fln_g, *fln_b;                  // [C]
    void *proj_w;                         // [projection_dim, C] (WithProjection) or NULL

    struct hsd_bufs bufs;                 // every weight buffer, freed with the model
    struct hsd_lora_set *lora;            // attached LoRA adapters (models/lora.h) or NULL

    void *arena;                          // activations for one (n, L)
    size_t arena_cap;
    int plan_n, plan_L;
    float *host_emb;                      // [n*L, C] gather staging
    size_t host_emb_cap;
    float *host_pool;                     // [n, C] eos rows

    hsd_clip_text_probe_fn probe;
    void *probe_user;
};

// ---- loading ---------------------------------------------------------------

struct build {
    struct hsd_clip_text *m;
    const char *path;                     // weights file, for messages
    const char *prefix;                   // "text_model." or ""
    unsigned char *used;                  // per weights entry
    float *tmp;                           // conversion scratch
    size_t tmp_cap;
};

static enum hsd_status upload(struct hsd_clip_text *m, void **dst, const float *src,
                              size_t count) {
    struct hsd_backend *be = m->be;
    void *p = be->ops->alloc(be, count * be->act_size);
    if (!p) return hsd_fail_context(HSD_ERR_NOMEM, "allocating %zu weights: ", count);
    enum hsd_status s = hsd_bufs_add(&m->bufs, p);
    if (s) {
        be->ops->free(be, p);
        return s;
    }
    *dst = p;
    return be->ops->upload(be, p, src, count);
}

// Looks up prefix + `name`, checks rank, shape and dtype, marks it used and
// returns its entry; with `host`, also converts it to fp32 in b->tmp.
static enum hsd_status fetch(struct build *b, const char *name, int ndim, const int64_t *dims,
                             const struct hsd_st_tensor **out_t, const float **host) {
    char full[256];
    if (hsd_path_too_long(snprintf(full, sizeof full, "%s%s", b->prefix, name), sizeof full))
        return hsd_fail(HSD_ERR_INTERNAL, "tensor name too long: %s", name);
    long idx = hsd_weights_find_index(b->m->w, full);
    if (idx < 0)
        return hsd_fail(HSD_ERR_NOT_FOUND, "%s: missing tensor '%s' (required by the config)",
                        b->path, full);
    const struct hsd_st_tensor *t = hsd_weights_at(b->m->w, (size_t)idx);
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == dims[i];
    if (!ok) {
        char want[96], got[96];
        size_t o = 0;
        for (int i = 0; i < ndim && o < sizeof want; i++)
            o += (size_t)snprintf(want + o, sizeof want - o, "%s%lld", i ? ", " : "",
                                  (long long)dims[i]);
        if (!ndim) want[0] = '\0';
        o = 0;
        for (int i = 0; i < t->ndim && o < sizeof got; i++)
            o += (size_t)snprintf(got + o, sizeof got - o, "%s%lld", i ? ", " : "",
                                  (long long)t->shape[i]);
        if (!t->ndim) got[0] = '\0';
        return hsd_fail(HSD_ERR_SHAPE,
                        "%s: tensor '%s': shape [%s] contradicts the config (expected [%s])",
                        b->path, full, got, want);
    }
    if (t->dtype != HSD_F32 && t->dtype != HSD_F16 && t->dtype != HSD_BF16)
        return hsd_fail(HSD_ERR_UNSUPPORTED,
                        "%s: tensor '%s': unsupported dtype %s (expected F32, F16 or BF16)",
                        b->path, full, hsd_dtype_name(t->dtype));
    if (b->used[idx])
        return hsd_fail(HSD_ERR_INTERNAL, "%s: tensor '%s' used twice", b->path, full);
    b->used[idx] = 1;
    if (out_t) *out_t = t;
    if (!host) return HSD_OK;
    size_t count = (size_t)t->numel;
    if (count > b->tmp_cap) {
        free(b->tmp);
        b->tmp = malloc(count * sizeof(float));
        b->tmp_cap = b->tmp ? count : 0;
        if (!b->tmp)
            return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory converting '%s'", b->path, full);
    }
    hsd_convert_to_f32(b->tmp, t->data, t->dtype, count);
    hsd_weights_drop(b->m->w, t);  // converted: the file's copy need not stay resident
    *host = b->tmp;
    return HSD_OK;
}

// fetch() + upload into *dst.
static enum hsd_status get(struct build *b, void **dst, int ndim, const int64_t *dims,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static enum hsd_status get(struct build *b, void **dst, int ndim, const int64_t *dims,
                           const char *fmt, ...) {
    char name[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const struct hsd_st_tensor *t;
    const float *host;
    struct hsd_backend *be = b->m->be;
    if (ndim == 2 && be->ops->weight_view) {
        // A linear weight stays in the file's precision, read in place (the
        // model keeps its file mapped for the token embedding anyway).
        enum hsd_status s = fetch(b, name, ndim, dims, &t, NULL);
        if (s) return s;
        struct hsd_weight_view_params vp = {.data = t->data, .dtype = t->dtype,
                                            .rows = (int)dims[0], .k = (int)dims[1], .taps = 1};
        void *p = be->ops->weight_view(be, &vp);
        if (!p) return hsd_fail_context(HSD_ERR_NOMEM, "%s: tensor '%s%s': ", b->path, b->prefix,
                                        name);
        if ((s = hsd_bufs_add(&b->m->bufs, p))) {
            be->ops->free(be, p);
            return s;
        }
        *dst = p;
        return HSD_OK;
    }
    enum hsd_status s = fetch(b, name, ndim, dims, &t, &host);
    if (s) return s;
    s = upload(b->m, dst, host, (size_t)t->numel);
    if (s) return hsd_fail_context(s, "%s: tensor '%s%s': ", b->path, b->prefix, name);
    return HSD_OK;
}

#define D(...) ((const int64_t[]){__VA_ARGS__})

// transformers CLIPAttention: q_proj, k_proj, v_proj (with biases) packed
// into one [3C, C] weight and [3C] bias.
// [q; k; v] weights stacked in their file dtype, kept so by the backend
// (weight_view, a copy): *ok = 0 where it cannot (no weight_view, or the
// three differ in dtype), and nothing was fetched.
static enum hsd_status stack_qkv_view(struct build *b, struct clip_layer *ly, const char *pre,
                                      int *ok) {
    struct hsd_backend *be = b->m->be;
    const int64_t C = b->m->cfg.hidden_size;
    static const char *const parts[3] = {"q_proj", "k_proj", "v_proj"};
    char names[3][200], full[640];
    const struct hsd_st_tensor *t[3];
    *ok = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(names[i], sizeof names[i], "%s.self_attn.%s.weight", pre, parts[i]);
        snprintf(full, sizeof full, "%s%s", b->prefix, names[i]);
        t[i] = hsd_weights_find(b->m->w, full);
        if (!be->ops->weight_view || !t[i] || t[i]->dtype != t[0]->dtype) return HSD_OK;
    }
    const size_t bytes = (size_t)C * (size_t)C * hsd_dtype_size(t[0]->dtype);
    unsigned char *pack = malloc(3 * bytes);
    if (!pack) return hsd_fail(HSD_ERR_NOMEM, "out of memory packing %s", pre);
    enum hsd_status s = HSD_OK;
    for (int i = 0; i < 3 && !s; i++) {
        const struct hsd_st_tensor *ti;
        if ((s = fetch(b, names[i], 2, D(C, C), &ti, NULL))) break;
        memcpy(pack + (size_t)i * bytes, ti->data, bytes);
        hsd_weights_drop(b->m->w, ti);
    }
    if (!s) {
        struct hsd_weight_view_params vp = {.data = pack, .dtype = t[0]->dtype,
                                            .rows = (int)(3 * C), .k = (int)C, .taps = 1,
                                            .copy = 1};
        void *p = be->ops->weight_view(be, &vp);
        if (!p) s = hsd_fail_context(HSD_ERR_NOMEM, "%s: %s q/k/v: ", b->path, pre);
        else if ((s = hsd_bufs_add(&b->m->bufs, p))) be->ops->free(be, p);
        else ly->qkv_w = p;
    }
    free(pack);
    *ok = !s;
    return s;
}

static enum hsd_status build_qkv(struct build *b, struct clip_layer *ly, const char *pre) {
    const int64_t C = b->m->cfg.hidden_size;
    int viewed;
    enum hsd_status sv = stack_qkv_view(b, ly, pre, &viewed);
    if (sv) return sv;
    size_t nw = (size_t)C * (size_t)C;
    float *pack = malloc((3 * nw + 3 * (size_t)C) * sizeof(float));
    if (!pack) return hsd_fail(HSD_ERR_NOMEM, "out of memory packing %s", pre);
    float *bias = pack + 3 * nw;
    static const char *const parts[3] = {"q_proj", "k_proj", "v_proj"};
    enum hsd_status s = HSD_OK;
    for (int i = 0; i < 3 && !s; i++) {
        char name[200];
        const float *host;
        snprintf(name, sizeof name, "%s.self_attn.%s.weight", pre, parts[i]);
        if (!viewed) {
            if ((s = fetch(b, name, 2, D(C, C), NULL, &host))) break;
            memcpy(pack + (size_t)i * nw, host, nw * sizeof(float));
        }
        snprintf(name, sizeof name, "%s.self_attn.%s.bias", pre, parts[i]);
        if ((s = fetch(b, name, 1, D(C), NULL, &host))) break;
        memcpy(bias + (size_t)i * C, host, (size_t)C * sizeof(float));
    }
    if (!s && !viewed) s = upload(b->m, &ly->qkv_w, pack, 3 * nw);
    if (!s) s = upload(b->m, &ly->qkv_b, bias, 3 * (size_t)C);
    free(pack);
    return s;
}

static enum hsd_status build_all(struct build *b) {
    struct hsd_clip_text *m = b->m;
    const struct hsd_clip_text_config *cfg = &m->cfg;
    const int64_t C = cfg->hidden_size, I = cfg->intermediate_size;
    const int64_t V = cfg->vocab_size, P = cfg->max_position_embeddings;
    enum hsd_status s;
    // transformers CLIPTextEmbeddings: token_embedding [V, C] stays in the
    // mapping (see the file comment); position_embedding [P, C] on the host.
    if ((s = fetch(b, "embeddings.token_embedding.weight", 2, D(V, C), &m->tok, NULL))) return s;
    const float *host;
    if ((s = fetch(b, "embeddings.position_embedding.weight", 2, D(P, C), NULL, &host))) return s;
    m->pos = malloc((size_t)P * (size_t)C * sizeof(float));
    if (!m->pos) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    memcpy(m->pos, host, (size_t)P * (size_t)C * sizeof(float));

    m->layers = calloc((size_t)cfg->num_hidden_layers, sizeof *m->layers);
    if (!m->layers) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    for (int l = 0; l < cfg->num_hidden_layers; l++) {
        struct clip_layer *ly = &m->layers[l];
        char pre[64];
        snprintf(pre, sizeof pre, "encoder.layers.%d", l);
        if ((s = get(b, &ly->ln1_g, 1, D(C), "%s.layer_norm1.weight", pre))) return s;
        if ((s = get(b, &ly->ln1_b, 1, D(C), "%s.layer_norm1.bias", pre))) return s;
        if ((s = build_qkv(b, ly, pre))) return s;
        if ((s = get(b, &ly->out_w, 2, D(C, C), "%s.self_attn.out_proj.weight", pre))) return s;
        if ((s = get(b, &ly->out_b, 1, D(C), "%s.self_attn.out_proj.bias", pre))) return s;
        if ((s = get(b, &ly->ln2_g, 1, D(C), "%s.layer_norm2.weight", pre))) return s;
        if ((s = get(b, &ly->ln2_b, 1, D(C), "%s.layer_norm2.bias", pre))) return s;
        if ((s = get(b, &ly->fc1_w, 2, D(I, C), "%s.mlp.fc1.weight", pre))) return s;
        if ((s = get(b, &ly->fc1_b, 1, D(I), "%s.mlp.fc1.bias", pre))) return s;
        if ((s = get(b, &ly->fc2_w, 2, D(C, I), "%s.mlp.fc2.weight", pre))) return s;
        if ((s = get(b, &ly->fc2_b, 1, D(C), "%s.mlp.fc2.bias", pre))) return s;
    }
    if ((s = get(b, &m->fln_g, 1, D(C), "final_layer_norm.weight"))) return s;
    if ((s = get(b, &m->fln_b, 1, D(C), "final_layer_norm.bias"))) return s;
    if (cfg->with_projection) {
        // CLIPTextModelWithProjection.text_projection (no bias) sits beside
        // text_model, not under its prefix.
        const char *pre = b->prefix;
        b->prefix = "";
        s = get(b, &m->proj_w, 2, D(cfg->projection_dim, C), "text_projection.weight");
        b->prefix = pre;
        if (s) return s;
    }

    // Tensors CLIPTextModel does not compute with but checkpoints carry:
    // the position_ids buffer (transformers 4.x) and CLIPTextModelWith-
    // Projection's text_projection. Anything else unexplained means config
    // and weights disagree (e.g. more layers in the file than in config.json).
    size_t n = hsd_weights_count(m->w), unused = 0;
    const char *first = NULL;
    char ids_name[64];
    snprintf(ids_name, sizeof ids_name, "%sembeddings.position_ids", b->prefix);
    for (size_t i = 0; i < n; i++) {
        const char *nm = hsd_weights_name_at(m->w, i);
        if (b->used[i] || !strcmp(nm, ids_name) || !strcmp(nm, "text_projection.weight")) continue;
        if (!unused++) first = nm;
    }
    if (unused)
        return hsd_fail(HSD_ERR_FORMAT,
                        "%s: %zu tensor(s) not used by the CLIPTextModel the config describes "
                        "(first: '%s'); config and weights disagree",
                        b->path, unused, first);
    return HSD_OK;
}

static enum hsd_status build_model(struct hsd_clip_text **out, const struct hsd_clip_text_config *cfg,
                                   struct hsd_weights *w, struct hsd_backend *be);

enum hsd_status hsd_clip_text_load(struct hsd_clip_text **out, const char *path,
                                   struct hsd_backend *be) {
    if (!out || !path || !be)
        return hsd_fail(HSD_ERR_INVALID_ARG, "clip_text_load: NULL argument");
    *out = NULL;
    if (!hsd_is_dir(path))
        return hsd_fail(HSD_ERR_NOT_FOUND,
                        "%s: no such folder (expected a pipeline root with text_encoder/ or a "
                        "text_encoder folder)",
                        path);
    // A pipeline root holds text_encoder/; otherwise `path` is the folder.
    char dir[4000], cfg_path[4100], w_path[4100];
    if (hsd_path_too_long(snprintf(dir, sizeof dir, "%s/text_encoder", path), sizeof dir))
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: path too long", path);
    if (!hsd_is_dir(dir) && hsd_path_too_long(snprintf(dir, sizeof dir, "%s", path), sizeof dir))
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: path too long", path);
    if (hsd_path_too_long(snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir), sizeof cfg_path))
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: path too long", dir);
    if (!hsd_is_file(cfg_path))
        return hsd_fail(HSD_ERR_NOT_FOUND, "%s: no config.json in the text_encoder folder", dir);
    enum hsd_status s = hsd_weights_find_file(w_path, sizeof w_path, dir, "model");
    if (s) return s;

    struct hsd_clip_text_config cfg;
    struct hsd_weights *w = NULL;
    if (!(s = hsd_clip_text_config_load(&cfg, cfg_path)) &&
        !(s = hsd_weights_open_diffusers(&w, w_path)))
        return build_model(out, &cfg, w, be);
    return s;
}

// Takes ownership of w (closed with the model, or here on failure).
static enum hsd_status build_model(struct hsd_clip_text **out, const struct hsd_clip_text_config *cfg,
                                   struct hsd_weights *w, struct hsd_backend *be) {
    struct hsd_clip_text *m = calloc(1, sizeof *m);
    if (!m) {
        hsd_weights_close(w);
        return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    }
    m->be = be;
    m->cfg = *cfg;
    m->w = w;
    struct build b = {.m = m, .path = hsd_weights_path(w)};
    b.prefix = hsd_weights_find(m->w, "text_model.embeddings.token_embedding.weight")
                   ? "text_model."
                   : "";
    b.used = calloc(hsd_weights_count(m->w) + 1, 1);
    enum hsd_status s = b.used ? build_all(&b) : hsd_fail(HSD_ERR_NOMEM, "out of memory");
    free(b.used);
    free(b.tmp);
    if (s) {
        hsd_clip_text_free(m);
        return s;
    }
    *out = m;
    return HSD_OK;
}

// One text encoder of a single file, config from the shapes plus what
// they cannot show: OpenCLIP towers use GELU (diffusers' SD 2.x and SDXL
// text_encoder(_2)/config.json: hidden_act "gelu"); SDXL's bigG is
// stabilityai/stable-diffusion-xl-base-1.0's CLIPTextModelWithProjection,
// projection_dim from its (transposed) text_projection.
static enum hsd_status load_ldm_part(struct hsd_clip_text **out, const char *path,
                                     enum hsd_ldm_part part, struct hsd_backend *be) {
    struct hsd_weights *w;
    struct hsd_clip_text_config cfg;
    enum hsd_status s = hsd_weights_open_ldm(&w, path, part);
    if (s) return s;
    if ((s = hsd_clip_text_config_infer(&cfg, w))) {
        hsd_weights_close(w);
        return s;
    }
    if (part == HSD_LDM_OPENCLIP || part == HSD_LDM_SDXL_OPENCLIP) cfg.quick_gelu = 0;
    if (part == HSD_LDM_SDXL_OPENCLIP) {
        const struct hsd_st_tensor *p = hsd_weights_find(w, "text_projection.weight");
        if (!p || p->ndim != 2 || p->shape[1] != cfg.hidden_size || p->shape[0] < 1 ||
            p->shape[0] > 1 << 16) {
            hsd_weights_close(w);
            return hsd_fail(HSD_ERR_FORMAT,
                            "%s: tensor '%stext_projection' missing or not [width %d, proj]: "
                            "SDXL's pooled text embedding needs it",
                            path, HSD_LDM_SDXL_OPENCLIP_PREFIX, cfg.hidden_size);
        }
        cfg.with_projection = 1;
        cfg.projection_dim = (int)p->shape[0];
    }
    return build_model(out, &cfg, w, be);
}

enum hsd_status hsd_clip_text_load_ldm(struct hsd_clip_text **out, const char *path,
                                       struct hsd_backend *be) {
    if (!out || !path || !be)
        return hsd_fail(HSD_ERR_INVALID_ARG, "clip_text_load_ldm: NULL argument");
    *out = NULL;
    struct hsd_ldm_info info;
    enum hsd_status s = hsd_ldm_detect(&info, path);
    if (s) return s;
    // SD 2.x: OpenCLIP-H's text tower, renamed and split by io/weights.c;
    // SDXL: its first encoder, CLIP-L under conditioner.embedders.0.
    return load_ldm_part(out, path,
                         info.family == HSD_LDM_FAMILY_SD2    ? HSD_LDM_OPENCLIP
                         : info.family == HSD_LDM_FAMILY_SDXL ? HSD_LDM_SDXL_CLIP
                                                              : HSD_LDM_CLIP,
                         be);
}

enum hsd_status hsd_clip_text_load_ldm_bigg(struct hsd_clip_text **out, const char *path,
                                            struct hsd_backend *be) {
    if (!out || !path || !be)
        return hsd_fail(HSD_ERR_INVALID_ARG, "clip_text_load_ldm_bigg: NULL argument");
    *out = NULL;
    return load_ldm_part(out, path, HSD_LDM_SDXL_OPENCLIP, be);
}

void hsd_clip_text_free(struct hsd_clip_text *m) {
    if (!m) return;
    hsd_lora_set_free(m->lora);
    hsd_bufs_free(&m->bufs, m->be);
    if (m->arena) m->be->ops->free(m->be, m->arena);
    free(m->host_emb);
    free(m->host_pool);
    free(m->layers);
    free(m->pos);
    hsd_weights_close(m->w);
    free(m);
}

const struct hsd_clip_text_config *hsd_clip_text_get_config(const struct hsd_clip_text *m) {
    return &m->cfg;
}

void hsd_clip_text_set_probe(struct hsd_clip_text *m, hsd_clip_text_probe_fn fn, void *user) {
    m->probe = fn;
    m->probe_user = user;
}

// ---- forward ---------------------------------------------------------------

// The planned arena of models/fwd.h (a forward runs once planning per new
// (n, L), then for real).
struct fwd {
    struct hsd_fwd a;
    struct hsd_clip_text *m;
    int n;  // sequences: a linear's m is n * L
};

static void *act(struct fwd *f, size_t count) { return hsd_fwd_act(&f->a, count); }

#define RUN(f, op, params) HSD_FWD_RUN(&(f)->a, op, params)

static enum hsd_status linear(struct fwd *f, void *out, const void *in, const void *w,
                              const void *bias, const void *res, int m, int k, int n_out) {
    struct hsd_linear_params p = {out, in, w, bias, res, m, k, n_out};
    RUN(f, linear, &p);
    // The LoRA side products of the sequences that chose one (models/lora.h).
    if (!f->m->lora) return HSD_OK;
    return hsd_lora_apply(&f->a, f->m->lora, w, out, n_out, in, f->n, m / f->n);
}

static enum hsd_status lnorm(struct fwd *f, void *out, const void *in, const void *g,
                             const void *b, int m) {
    // nn.LayerNorm(hidden_size, eps=config.layer_norm_eps) everywhere in CLIP.
    struct hsd_layer_norm_params p = {out, in, g, b, m, f->m->cfg.hidden_size,
                                      f->m->cfg.layer_norm_eps};
    RUN(f, layer_norm, &p);
    return HSD_OK;
}

static void probe(struct fwd *f, int i, const void *buf, int n, int L) {
    if (f->a.planning || !f->m->probe) return;
    char name[32];
    snprintf(name, sizeof name, "hidden.%d", i);
    f->a.be->ops->synchronize(f->a.be);
    f->m->probe(f->m->probe_user, name, buf, n, L, f->m->cfg.hidden_size);
}

// What one forward produces (each NULL when not wanted): SD 1.x/2.x's
// final-normed hidden_states[n_run], SDXL's raw hidden_states[hidden_at]
// and pooled output; n_run layers run.
struct clip_outputs {
    float *last;      // [n, L, C]
    float *hidden;    // [n, L, C]
    int hidden_at;    // 0 = embeddings
    float *pooled;    // [n, projection_dim or C]; needs n_run = num layers
    int n_run;
};

// Downloads [n, L, C] of `buf` to `out` (outside planning).
static enum hsd_status take(struct fwd *f, float *out, const void *buf, size_t count) {
    if (f->a.planning || !out) return HSD_OK;
    return f->a.be->ops->download(f->a.be, out, buf, count);
}

// transformers CLIPTextTransformer's pooler_output: the final-normed row at
// the eos position (argmax of the ids for eos_token_id 2, else the first
// eos_token_id), then CLIPTextModelWithProjection's text_projection.
static enum hsd_status pool(struct fwd *f, float *pooled, const void *normed, const int32_t *ids,
                            int n, int L) {
    struct hsd_clip_text *m = f->m;
    struct hsd_backend *be = f->a.be;
    const int C = m->cfg.hidden_size, P = hsd_clip_text_pooled_dim(m);
    void *rows = act(f, (size_t)n * C), *proj = act(f, (size_t)n * P);
    if (f->a.planning) return HSD_OK;
    enum hsd_status s = be->ops->download(be, m->host_emb, normed, (size_t)n * L * C);
    if (s) return s;
    float *sel = m->host_pool;
    for (int b = 0; b < n; b++) {
        const int32_t *r = ids + (size_t)b * L;
        int at = 0;
        for (int t = 1; t < L; t++) {
            if (m->cfg.eos_token_id == 2 ? r[t] > r[at] : r[at] != m->cfg.eos_token_id &&
                                                              r[t] == m->cfg.eos_token_id)
                at = t;
        }
        memcpy(sel + (size_t)b * C, m->host_emb + ((size_t)b * L + at) * C, C * sizeof(float));
    }
    if (!m->proj_w) {
        memcpy(pooled, sel, (size_t)n * C * sizeof(float));
        return HSD_OK;
    }
    if ((s = be->ops->upload(be, rows, sel, (size_t)n * C))) return s;
    if ((s = linear(f, proj, rows, m->proj_w, NULL, NULL, n, C, P))) return s;
    return be->ops->download(be, pooled, proj, (size_t)n * P);
}

static enum hsd_status forward(struct fwd *f, const struct clip_outputs *o, const int32_t *ids,
                               int n, int L) {
    struct hsd_clip_text *m = f->m;
    struct hsd_backend *be = f->a.be;
    const struct hsd_clip_text_config *cfg = &m->cfg;
    const int C = cfg->hidden_size, I = cfg->intermediate_size, rows = n * L;
    const int heads = cfg->num_attention_heads, d = C / heads;
    enum hsd_status s;
    // Residual stream ping-pongs between x and y so no op writes its input.
    void *x = act(f, (size_t)rows * C), *y = act(f, (size_t)rows * C);
    void *nrm = act(f, (size_t)rows * C), *qkv = act(f, (size_t)rows * 3 * C);
    void *att = act(f, (size_t)rows * C), *ff = act(f, (size_t)rows * I);

    // CLIPTextEmbeddings: token_embedding(ids) + position_embedding(arange(L)).
    if (!f->a.planning) {
        const size_t esz = hsd_dtype_size(m->tok->dtype);
        const unsigned char *table = m->tok->data;
        for (int r = 0; r < rows; r++) {
            float *e = m->host_emb + (size_t)r * C;
            const float *pe = m->pos + (size_t)(r % L) * C;
            hsd_convert_to_f32(e, table + (size_t)ids[r] * C * esz, m->tok->dtype, (size_t)C);
            for (int c = 0; c < C; c++) e[c] += pe[c];
        }
        if ((s = be->ops->upload(be, x, m->host_emb, (size_t)rows * C))) return s;
    }
    probe(f, 0, x, n, L);
    if (o->hidden && o->hidden_at == 0 && (s = take(f, o->hidden, x, (size_t)rows * C))) return s;

    // diffusers encode_prompt(clip_skip = k) reads hidden_states[-(k + 1)]:
    // the later layers never influence it, so they are not run.
    const int n_run = o->n_run;
    for (int l = 0; l < n_run; l++) {
        const struct clip_layer *ly = &m->layers[l];
        // CLIPEncoderLayer: x = x + out_proj(attn(layer_norm1(x)))
        if ((s = lnorm(f, nrm, x, ly->ln1_g, ly->ln1_b, rows))) return s;
        if ((s = linear(f, qkv, nrm, ly->qkv_w, ly->qkv_b, NULL, rows, C, 3 * C))) return s;
        // CLIPAttention: scale head_dim^-0.5, causal mask from
        // create_causal_mask (no padding mask: SD pipelines pass none).
        struct hsd_attention_params ap = {
            .out = att, .q = qkv, .n = n, .heads = heads, .d = d, .t_q = L, .t_kv = L,
            .ldq = 3 * C, .ldk = 3 * C, .ldv = 3 * C, .ldo = C,
            .scale = 1.0f / sqrtf((float)d), .causal = 1};
        ap.k = (const char *)qkv + (size_t)C * be->act_size;
        ap.v = (const char *)qkv + 2 * (size_t)C * be->act_size;
        RUN(f, attention, &ap);
        if ((s = linear(f, y, att, ly->out_w, ly->out_b, x, rows, C, C))) return s;
        // x = x + fc2(act(fc1(layer_norm2(x))))   (CLIPMLP)
        if ((s = lnorm(f, nrm, y, ly->ln2_g, ly->ln2_b, rows))) return s;
        if ((s = linear(f, ff, nrm, ly->fc1_w, ly->fc1_b, NULL, rows, C, I))) return s;
        struct hsd_eltwise_params ep = {.out = ff, .a = ff, .count = (size_t)rows * I};
        if (cfg->quick_gelu) RUN(f, quick_gelu, &ep);
        else RUN(f, gelu, &ep);
        if ((s = linear(f, x, ff, ly->fc2_w, ly->fc2_b, y, rows, I, C))) return s;
        probe(f, l + 1, x, n, L);
        if (o->hidden && o->hidden_at == l + 1 && (s = take(f, o->hidden, x, (size_t)rows * C)))
            return s;
    }
    // final_layer_norm (also on a clip_skip output, as diffusers applies it).
    if ((s = lnorm(f, nrm, x, m->fln_g, m->fln_b, rows))) return s;
    if ((s = take(f, o->last, nrm, (size_t)rows * C))) return s;
    return o->pooled || f->a.planning ? pool(f, o->pooled, nrm, ids, n, L) : HSD_OK;
}

int hsd_clip_text_pooled_dim(const struct hsd_clip_text *m) {
    return m->proj_w ? m->cfg.projection_dim : m->cfg.hidden_size;
}

static enum hsd_status run(struct hsd_clip_text *m, const struct clip_outputs *o,
                           const int32_t *ids, int n, int L, int clip_skip);

enum hsd_status hsd_clip_text_forward(struct hsd_clip_text *m, float *out, const int32_t *ids,
                                      int n, int L, int clip_skip) {
    if (!m || !out || !ids) return hsd_fail(HSD_ERR_INVALID_ARG, "clip_text: NULL argument");
    struct clip_outputs o = {.last = out, .n_run = m->cfg.num_hidden_layers - clip_skip};
    return run(m, &o, ids, n, L, clip_skip);
}

enum hsd_status hsd_clip_text_forward_sdxl(struct hsd_clip_text *m, float *hidden,
                                           float *pooled, const int32_t *ids, int n, int L,
                                           int clip_skip) {
    if (!m || !hidden || !ids) return hsd_fail(HSD_ERR_INVALID_ARG, "clip_text: NULL argument");
    // hidden_states has num_layers + 1 entries; [-(k + 2)] is index N - 1 - k.
    int at = m->cfg.num_hidden_layers - 1 - clip_skip;
    if (clip_skip < 0 || at < 0)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "clip_text: clip_skip %d leaves no layer before the penultimate of %d",
                        clip_skip, m->cfg.num_hidden_layers);
    struct clip_outputs o = {.hidden = hidden, .hidden_at = at, .pooled = pooled,
                             .n_run = pooled ? m->cfg.num_hidden_layers : at};
    return run(m, &o, ids, n, L, 0);
}

static enum hsd_status run(struct hsd_clip_text *m, const struct clip_outputs *o,
                           const int32_t *ids, int n, int L, int clip_skip) {
    const struct hsd_clip_text_config *cfg = &m->cfg;
    if (n < 1 || n > 4096 || L < 1 || L > cfg->max_position_embeddings)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "clip_text: bad input dims n=%d L=%d (1 <= n <= 4096, 1 <= L <= "
                        "max_position_embeddings %d)",
                        n, L, cfg->max_position_embeddings);
    if (clip_skip < 0 || clip_skip > cfg->num_hidden_layers)
        return hsd_fail(HSD_ERR_INVALID_ARG, "clip_text: clip_skip %d outside [0, %d] (layers)",
                        clip_skip, cfg->num_hidden_layers);
    // Every id is checked before any work: an id indexes the token table.
    for (int b = 0; b < n; b++)
        for (int t = 0; t < L; t++) {
            int32_t id = ids[(size_t)b * L + t];
            if (id < 0 || id >= cfg->vocab_size)
                return hsd_fail(HSD_ERR_INVALID_ARG,
                                "clip_text: token id %d at [%d, %d] is outside the vocabulary "
                                "[0, %d)",
                                (int)id, b, t, cfg->vocab_size);
        }
    struct fwd f = {.a = {.be = m->be}, .m = m, .n = n};
    if (!m->arena || m->plan_n != n || m->plan_L != L) {
        // Plans every layer and the pooling, so that each output fits.
        f.a.planning = 1;
        struct clip_outputs all = {.n_run = cfg->num_hidden_layers};
        enum hsd_status s = forward(&f, &all, ids, n, L);
        if (s) return s;
        const size_t was = m->arena ? m->arena_cap : 0;  // grown: a new capacity
        if ((s = hsd_fwd_reserve(m->be, &m->arena, &m->arena_cap, f.a.peak, "clip_text")))
            return s;
        if (m->arena_cap != was) hsd_plan_stats_add(HSD_PLAN_TEXT_ARENA);
        size_t emb = (size_t)n * L * cfg->hidden_size;
        if (emb > m->host_emb_cap) {
            free(m->host_emb);
            m->host_emb = malloc(emb * sizeof(float));
            m->host_emb_cap = m->host_emb ? emb : 0;
            if (!m->host_emb) return hsd_fail(HSD_ERR_NOMEM, "clip_text: out of memory");
        }
        free(m->host_pool);
        m->host_pool = malloc((size_t)n * cfg->hidden_size * sizeof(float));
        if (!m->host_pool) return hsd_fail(HSD_ERR_NOMEM, "clip_text: out of memory");
        m->plan_n = n;
        m->plan_L = L;
        f = (struct fwd){.a = {.be = m->be}, .m = m, .n = n};
    }
    f.a.base = m->arena;
    f.a.cap = m->arena_cap;
    (void)clip_skip;  // checked above; o->n_run / hidden_at carry it
    return forward(&f, o, ids, n, L);
}

// ---- LoRA ------------------------------------------------------------------

// The layers LoRA targets in a CLIP text encoder, named as transformers
// names them below text_model. (models/lora_keys.h strips that prefix):
// q/k/v (packed into one GEMM at load), out_proj, fc1, fc2 of every layer.
enum hsd_status hsd_clip_text_lora_attach(struct hsd_clip_text *m, const struct hsd_lora_file *f,
                                          enum hsd_lora_part part, int *adapter) {
    const int C = m->cfg.hidden_size, I = m->cfg.intermediate_size;
    const int nl = m->cfg.num_hidden_layers;
    struct hsd_lora_target *t = calloc((size_t)nl * 6, sizeof *t);
    if (!t) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    static const char *const names[6] = {"self_attn.q_proj", "self_attn.k_proj",
                                         "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1",
                                         "mlp.fc2"};
    for (int l = 0; l < nl; l++) {
        const struct clip_layer *ly = &m->layers[l];
        const void *w[6] = {ly->qkv_w, ly->qkv_w, ly->qkv_w, ly->out_w, ly->fc1_w, ly->fc2_w};
        const int col[6] = {0, C, 2 * C, 0, 0, 0}, n_out[6] = {C, C, C, C, I, C};
        const int k[6] = {C, C, C, C, C, I};
        for (int j = 0; j < 6; j++) {
            struct hsd_lora_target *x = &t[l * 6 + j];
            char path[96];
            snprintf(path, sizeof path, "encoder.layers.%d.%s", l, names[j]);
            *x = (struct hsd_lora_target){.weight = w[j], .col = col[j], .n_out = n_out[j],
                                          .k = k[j]};
            hsd_lora_layer_name(x->layer, path);
        }
    }
    enum hsd_status s = hsd_lora_attach(&m->lora, m->be, t, nl * 6, f, part,
                                        part == HSD_LORA_TE2 ? "second text encoder"
                                                             : "text encoder",
                                        adapter);
    free(t);
    if (!s) m->plan_n = 0;  // plan again: the side products take arena scratch
    return s;
}

enum hsd_status hsd_clip_text_lora_select(struct hsd_clip_text *m, const float *scale, int rows) {
    return hsd_lora_select(m->lora, scale, rows);
}
