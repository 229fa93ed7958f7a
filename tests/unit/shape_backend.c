// TEST DOUBLE recording op shapes (see shape_backend.h).
#include "shape_backend.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct shape_be {
    struct hsd_backend be;  // first: the op table gets this pointer back
    uintptr_t next;         // next fake address
    char model[48];
    struct hsd_shape_call *calls;
    size_t n, cap;
};

static struct shape_be *S(struct hsd_backend *be) { return (struct shape_be *)be; }

// ---- memory: addresses only ---------------------------------------------------------

static void *sh_alloc(struct hsd_backend *be, size_t bytes) {
    struct shape_be *s = S(be);
    void *p = (void *)s->next;
    s->next += ((bytes ? bytes : 1) + 255) & ~(uintptr_t)255;
    return p;
}
static void sh_free(struct hsd_backend *be, void *p) { (void)be, (void)p; }
static enum hsd_status sh_upload(struct hsd_backend *be, void *dst, const float *src, size_t n) {
    (void)be, (void)dst, (void)src, (void)n;
    return HSD_OK;
}
static enum hsd_status sh_download(struct hsd_backend *be, float *dst, const void *src, size_t n) {
    (void)be, (void)src;
    if (n) memset(dst, 0, n * sizeof *dst);
    return HSD_OK;
}
static enum hsd_status sh_sync(struct hsd_backend *be) {
    (void)be;
    return HSD_OK;
}

// ---- recording ----------------------------------------------------------------------

static int al(const void *p) { return (int)((uintptr_t)p % 16); }

// Records a call; `p` points to the op's own params struct of `size` bytes
// (smaller than the union: copied as itself, the rest left zero).
static enum hsd_status record(struct hsd_backend *be, enum hsd_emu_op op, const void *p,
                              size_t size, const char *key, const char *cls) {
    struct shape_be *s = S(be);
    for (size_t i = 0; i < s->n; i++) {
        if (s->calls[i].op == op && !strcmp(s->calls[i].key, key)) {
            s->calls[i].calls++;
            return HSD_OK;
        }
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        struct hsd_shape_call *c = realloc(s->calls, cap * sizeof *c);
        if (!c) return hsd_fail(HSD_ERR_NOMEM, "shape backend: out of memory");
        s->calls = c;
        s->cap = cap;
    }
    struct hsd_shape_call *c = &s->calls[s->n++];
    memset(c, 0, sizeof *c);
    c->op = op;
    memcpy(&c->p, p, size);
    snprintf(c->key, sizeof c->key, "%s", key);
    snprintf(c->cls, sizeof c->cls, "%s", cls);
    snprintf(c->model, sizeof c->model, "%s", s->model);
    c->calls = 1;
    return HSD_OK;
}

// Each op: its class (the key without spatial dims), then the full key =
// the spatial dims + the class.
#define CLASS(...)                            \
    char key[224], cls[224];                  \
    snprintf(cls, sizeof cls, __VA_ARGS__)
#define KEY(...)                                                      \
    do {                                                              \
        char sp_[96];                                                 \
        snprintf(sp_, sizeof sp_, __VA_ARGS__);                       \
        snprintf(key, sizeof key, "%s %s", sp_, cls);                 \
    } while (0)

static enum hsd_status sh_conv2d(struct hsd_backend *be, const struct hsd_conv2d_params *p) {
    const char *res = !p->residual ? "none" : p->residual == p->out ? "in-place" : "separate";
    CLASS("ci%d co%d k%dx%d s%d p%d+%d,%d bias%d res:%s al%d/%d/%d/%d",
             p->ci, p->co, p->kh, p->kw, p->stride, p->pad, p->pad_bottom, p->pad_right,
          p->bias != NULL, res, al(p->out), al(p->in), al(p->weight), al(p->residual));
    KEY("n%d %dx%d", p->n, p->h, p->w);
    return record(be, HSD_EMU_CONV2D, p, sizeof *p, key, cls);
}

static enum hsd_status sh_linear(struct hsd_backend *be, const struct hsd_linear_params *p) {
    const char *res = !p->residual ? "none" : p->residual == p->out ? "in-place" : "separate";
    CLASS("k%d n%d bias%d res:%s", p->k, p->n_out, p->bias != NULL, res);
    KEY("m%d", p->m);
    return record(be, HSD_EMU_LINEAR, p, sizeof *p, key, cls);
}

static enum hsd_status sh_group_norm(struct hsd_backend *be, const struct hsd_group_norm_params *p) {
    CLASS("c%d groups%d eps%g silu%d al%d/%d", p->c, p->groups, p->eps, p->silu, al(p->out),
          al(p->in));
    KEY("n%d hw%d", p->n, p->hw);
    return record(be, HSD_EMU_GROUP_NORM, p, sizeof *p, key, cls);
}

static enum hsd_status sh_layer_norm(struct hsd_backend *be, const struct hsd_layer_norm_params *p) {
    CLASS("c%d eps%g al%d/%d", p->c, p->eps, al(p->out), al(p->in));
    KEY("m%d", p->m);
    return record(be, HSD_EMU_LAYER_NORM, p, sizeof *p, key, cls);
}

static enum hsd_status sh_attention(struct hsd_backend *be, const struct hsd_attention_params *p) {
    char kv[32];
    // Keys: the text context (77) is a width, not a spatial size.
    if (p->causal) snprintf(kv, sizeof kv, "causal");
    else if (p->t_kv == p->t_q) snprintf(kv, sizeof kv, "self");
    else snprintf(kv, sizeof kv, "t_kv%d", p->t_kv);
    CLASS("heads%d d%d %s ld%d/%d/%d/%d al%d/%d/%d/%d", p->heads, p->d, kv, p->ldq, p->ldk,
          p->ldv, p->ldo, al(p->q), al(p->k), al(p->v), al(p->out));
    KEY("n%d t_q%d t_kv%d", p->n, p->t_q, p->t_kv);
    return record(be, HSD_EMU_ATTENTION, p, sizeof *p, key, cls);
}

static enum hsd_status sh_geglu(struct hsd_backend *be, const struct hsd_geglu_params *p) {
    CLASS("f%d al%d/%d", p->f, al(p->out), al(p->in));
    KEY("m%d", p->m);
    return record(be, HSD_EMU_GEGLU, p, sizeof *p, key, cls);
}

static enum hsd_status sh_upsample(struct hsd_backend *be, const struct hsd_upsample_params *p) {
    CLASS("c%d al%d/%d", p->c, al(p->out), al(p->in));
    KEY("n%d %dx%d", p->n, p->h, p->w);
    return record(be, HSD_EMU_UPSAMPLE_NEAREST2X, p, sizeof *p, key, cls);
}

static enum hsd_status sh_concat(struct hsd_backend *be, const struct hsd_concat_params *p) {
    CLASS("ca%d cb%d al%d/%d/%d", p->ca, p->cb, al(p->out), al(p->a), al(p->b));
    KEY("m%d", p->m);
    return record(be, HSD_EMU_CONCAT_CHANNELS, p, sizeof *p, key, cls);
}

static enum hsd_status sh_add_bias(struct hsd_backend *be, const struct hsd_add_bias_params *p) {
    CLASS("c%d al%d/%d", p->c, al(p->x), al(p->v));
    KEY("n%d p%d", p->n, p->p);
    return record(be, HSD_EMU_ADD_BIAS, p, sizeof *p, key, cls);
}

static enum hsd_status eltwise(struct hsd_backend *be, enum hsd_emu_op op,
                               const struct hsd_eltwise_params *p) {
    // Element counts only matter modulo the 8-wide vectors.
    CLASS("count mod 8: %zu al%d/%d/%d in-place%d", p->count % 8, al(p->out), al(p->a),
          al(p->b), p->out == p->a);
    KEY("count%zu", p->count);
    return record(be, op, p, sizeof *p, key, cls);
}
static enum hsd_status sh_add(struct hsd_backend *be, const struct hsd_eltwise_params *p) {
    return eltwise(be, HSD_EMU_ADD, p);
}
static enum hsd_status sh_silu(struct hsd_backend *be, const struct hsd_eltwise_params *p) {
    return eltwise(be, HSD_EMU_SILU, p);
}
static enum hsd_status sh_gelu(struct hsd_backend *be, const struct hsd_eltwise_params *p) {
    return eltwise(be, HSD_EMU_GELU, p);
}
static enum hsd_status sh_quick_gelu(struct hsd_backend *be, const struct hsd_eltwise_params *p) {
    return eltwise(be, HSD_EMU_QUICK_GELU, p);
}
static enum hsd_status sh_relu(struct hsd_backend *be, const struct hsd_eltwise_params *p) {
    return eltwise(be, HSD_EMU_RELU, p);
}

static enum hsd_status sh_tanh_clamp(struct hsd_backend *be, const struct hsd_tanh_clamp_params *p) {
    CLASS("count mod 8: %zu limit%g al%d/%d in-place%d", p->count % 8, p->limit, al(p->out),
          al(p->in), p->out == p->in);
    KEY("count%zu", p->count);
    return record(be, HSD_EMU_TANH_CLAMP, p, sizeof *p, key, cls);
}

static enum hsd_status sh_temb(struct hsd_backend *be, const struct hsd_timestep_embedding_params *p) {
    CLASS("dim%d flip%d shift%g max_period%g", p->dim, p->flip_sin_to_cos, p->shift,
          p->max_period);
    KEY("n%d", p->n);
    return record(be, HSD_EMU_TIMESTEP_EMBEDDING, p, sizeof *p, key, cls);
}

// ---- lifetime -----------------------------------------------------------------------

static void sh_destroy(struct hsd_backend *be) {
    free(S(be)->calls);
    free(be);
}

static const struct hsd_backend_ops k_shape_ops = {
    .name = "shapes",
    .destroy = sh_destroy,
    .alloc = sh_alloc,
    .free = sh_free,
    .upload = sh_upload,
    .download = sh_download,
    .upload_f32 = sh_upload,
    .synchronize = sh_sync,
    .conv2d = sh_conv2d,
    .linear = sh_linear,
    .group_norm = sh_group_norm,
    .layer_norm = sh_layer_norm,
    .attention = sh_attention,
    .geglu = sh_geglu,
    .upsample_nearest2x = sh_upsample,
    .concat_channels = sh_concat,
    .add_bias = sh_add_bias,
    .add = sh_add,
    .silu = sh_silu,
    .gelu = sh_gelu,
    .quick_gelu = sh_quick_gelu,
    .relu = sh_relu,
    .tanh_clamp = sh_tanh_clamp,
    .timestep_embedding = sh_temb,
};

enum hsd_status hsd_backend_shape_create(struct hsd_backend **out) {
    struct shape_be *s = calloc(1, sizeof *s);
    *out = NULL;
    if (!s) return hsd_fail(HSD_ERR_NOMEM, "shape backend: out of memory");
    s->be.ops = &k_shape_ops;
    s->be.act_size = 2;
    s->be.kind = HSD_BACKEND_CUDA;
    s->be.device = -1;
    s->be.weight_mode = HSD_WEIGHTS_RECEIVE;
    snprintf(s->be.desc, sizeof s->be.desc, "shapes (records, computes nothing)");
    s->be.impl = s;
    // Far above anything the process maps (x86-64 user space ends at 2^47;
    // heap and mmap live well below 2^46 here): never dereferenced anyway.
    s->next = (uintptr_t)1 << 44;
    *out = &s->be;
    return HSD_OK;
}

void hsd_backend_shape_set_model(struct hsd_backend *be, const char *model) {
    snprintf(S(be)->model, sizeof S(be)->model, "%s", model);
}

size_t hsd_backend_shape_count(const struct hsd_backend *be) {
    return ((const struct shape_be *)be)->n;
}

const struct hsd_shape_call *hsd_backend_shape_at(const struct hsd_backend *be, size_t i) {
    const struct shape_be *s = (const struct shape_be *)be;
    return i < s->n ? &s->calls[i] : NULL;
}
