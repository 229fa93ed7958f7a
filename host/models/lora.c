// LoRA files and a model's attached adapters (models/lora.h).
#include "models/lora.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "io/safetensors.h"
#include "models/loader.h"

// ---- the file ----------------------------------------------------------

void hsd_lora_file_free(struct hsd_lora_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n_layers; i++) {
        free(f->layers[i].down);
        free(f->layers[i].up);
    }
    free(f->layers);
    free(f);
}

static struct hsd_lora_layer *layer_for(struct hsd_lora_file *f, const struct hsd_lora_key *k) {
    for (int i = 0; i < f->n_layers; i++)
        if (f->layers[i].part == k->part && !strcmp(f->layers[i].layer, k->layer))
            return &f->layers[i];
    struct hsd_lora_layer *ly = &f->layers[f->n_layers++];
    memset(ly, 0, sizeof *ly);
    ly->part = k->part;
    ly->alpha = -1;
    memcpy(ly->layer, k->layer, sizeof ly->layer);
    return ly;
}

// A down/up matrix: [a, b] or a 1x1 conv's [a, b, 1, 1] (kohya writes SD
// 1.x's proj_in/proj_out LoRAs as convolutions).
static int matrix_dims(const struct hsd_st_tensor *t, int *a, int *b) {
    if (t->ndim != 2 && !(t->ndim == 4 && t->shape[2] == 1 && t->shape[3] == 1)) return -1;
    if (t->shape[0] < 1 || t->shape[1] < 1 || t->shape[0] > (1 << 16) || t->shape[1] > (1 << 16))
        return -1;
    *a = (int)t->shape[0];
    *b = (int)t->shape[1];
    return 0;
}

static enum hsd_status read_tensor(struct hsd_lora_file *f, struct hsd_safetensors *st,
                                   const struct hsd_st_tensor *t, const struct hsd_lora_key *k) {
    struct hsd_lora_layer *ly = layer_for(f, k);
    if (k->role == HSD_LORA_ALPHA) {
        if (t->numel != 1)
            return hsd_fail(HSD_ERR_SHAPE, "%s: '%s' is an alpha but holds %lld values", f->path,
                            t->name, (long long)t->numel);
        float a;
        enum hsd_status s = hsd_safetensors_read_f32(st, t->name, &a, 1);
        if (s) return s;
        if (!(a > 0) || a > 1e6f)
            return hsd_fail(HSD_ERR_FORMAT, "%s: '%s' = %g is not a positive alpha", f->path,
                            t->name, (double)a);
        ly->alpha = a;
        return HSD_OK;
    }
    int a, b;
    if (matrix_dims(t, &a, &b))
        return hsd_fail(HSD_ERR_SHAPE, "%s: '%s' is not a matrix or 1x1 convolution weight",
                        f->path, t->name);
    float **dst = k->role == HSD_LORA_DOWN ? &ly->down : &ly->up;
    if (*dst) return hsd_fail(HSD_ERR_FORMAT, "%s: '%s' repeats a layer's %s", f->path, t->name,
                              k->role == HSD_LORA_DOWN ? "down (A)" : "up (B)");
    if (k->role == HSD_LORA_DOWN) {
        if (ly->up && ly->r != a) goto rank;
        ly->r = a;
        ly->k = b;
    } else {
        if (ly->down && ly->r != b) goto rank;
        ly->n_out = a;
        ly->r = b;
    }
    *dst = malloc((size_t)a * (size_t)b * sizeof(float));
    if (!*dst) return hsd_fail(HSD_ERR_NOMEM, "out of memory reading %s", f->path);
    return hsd_safetensors_read_f32(st, t->name, *dst, (size_t)a * (size_t)b);
rank:
    return hsd_fail(HSD_ERR_SHAPE, "%s: '%s': the layer's down and up ranks differ", f->path,
                    t->name);
}

enum hsd_status hsd_lora_file_open(struct hsd_lora_file **out, const char *path) {
    *out = NULL;
    struct hsd_safetensors *st;
    enum hsd_status s = hsd_safetensors_open(&st, path);
    if (s) return s;
    size_t n = hsd_safetensors_count(st);
    struct hsd_lora_file *f = calloc(1, sizeof *f);
    if (f) f->layers = calloc(n ? n : 1, sizeof *f->layers);
    if (!f || !f->layers) {
        hsd_safetensors_close(st);
        hsd_lora_file_free(f);
        return hsd_fail(HSD_ERR_NOMEM, "out of memory reading %s", path);
    }
    snprintf(f->path, sizeof f->path, "%s", path);
    for (size_t i = 0; i < n && !s; i++) {
        const struct hsd_st_tensor *t = hsd_safetensors_at(st, i);
        struct hsd_lora_key k;
        if ((s = hsd_lora_key_parse(&k, t->name))) {
            char why[512];
            snprintf(why, sizeof why, "%s", hsd_last_error());
            s = hsd_fail(s, "%s: %s", path, why);
            break;
        }
        s = read_tensor(f, st, t, &k);
    }
    hsd_safetensors_close(st);
    for (int i = 0; i < f->n_layers && !s; i++) {
        struct hsd_lora_layer *ly = &f->layers[i];
        if (!ly->down || !ly->up)
            s = hsd_fail(HSD_ERR_FORMAT, "%s: layer '%s' (%s) has no %s matrix", path, ly->layer,
                         hsd_lora_part_name(ly->part), ly->down ? "up (B)" : "down (A)");
        if (ly->alpha < 0) ly->alpha = (float)ly->r;
        f->n_part[ly->part]++;
    }
    if (!s && f->n_layers == 0) s = hsd_fail(HSD_ERR_FORMAT, "%s: no LoRA tensors", path);
    if (s) {
        hsd_lora_file_free(f);
        return s;
    }
    *out = f;
    return HSD_OK;
}

// ---- a model's adapters ----------------------------------------------------

struct piece {
    int adapter, col, r, k, n_out;
    float mult;        // alpha / r
    void *down, *up;   // backend buffers
};

struct hook {
    const void *weight;
    struct piece *pieces;
    int n;
};

struct hsd_lora_set {
    struct hsd_backend *be;
    struct hook *hooks;
    int n_hooks;
    int n_adapters;
    struct hsd_bufs bufs;
    float *scale;      // [rows, n_adapters]
    int rows, cap;
};

int hsd_lora_set_adapters(const struct hsd_lora_set *set) { return set ? set->n_adapters : 0; }

void hsd_lora_set_free(struct hsd_lora_set *set) {
    if (!set) return;
    for (int i = 0; i < set->n_hooks; i++) free(set->hooks[i].pieces);
    free(set->hooks);
    hsd_bufs_free(&set->bufs, set->be);
    free(set->scale);
    free(set);
}

static struct hook *find_hook(const struct hsd_lora_set *set, const void *weight) {
    for (int i = 0; set && i < set->n_hooks; i++)
        if (set->hooks[i].weight == weight) return &set->hooks[i];
    return NULL;
}

static enum hsd_status upload(struct hsd_lora_set *set, void **dst, const float *src, size_t n) {
    struct hsd_backend *be = set->be;
    *dst = be->ops->alloc(be, n * be->act_size);
    if (!*dst) return HSD_ERR_NOMEM;
    enum hsd_status s = hsd_bufs_add(&set->bufs, *dst);
    if (s) {
        be->ops->free(be, *dst);
        return s;
    }
    return be->ops->upload(be, *dst, src, n);
}

static const struct hsd_lora_target *find_target(const struct hsd_lora_target *t, int n,
                                                 const char *layer) {
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].layer, layer)) return &t[i];
    return NULL;
}

static enum hsd_status add_piece(struct hsd_lora_set *set, const struct hsd_lora_target *t,
                                 const struct hsd_lora_layer *ly, int adapter) {
    struct hook *h = find_hook(set, t->weight);
    if (!h) {
        struct hook *hs = realloc(set->hooks, (size_t)(set->n_hooks + 1) * sizeof *hs);
        if (!hs) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
        set->hooks = hs;
        h = &hs[set->n_hooks++];
        *h = (struct hook){.weight = t->weight};
    }
    struct piece *ps = realloc(h->pieces, (size_t)(h->n + 1) * sizeof *ps);
    if (!ps) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    h->pieces = ps;
    struct piece *p = &ps[h->n];
    *p = (struct piece){adapter, t->col, ly->r, ly->k, ly->n_out, ly->alpha / (float)ly->r, NULL,
                        NULL};
    enum hsd_status s = upload(set, &p->down, ly->down, (size_t)ly->r * ly->k);
    if (!s) s = upload(set, &p->up, ly->up, (size_t)ly->n_out * ly->r);
    if (s) return hsd_fail(s, "out of memory uploading a LoRA");
    h->n++;
    return HSD_OK;
}

enum hsd_status hsd_lora_attach(struct hsd_lora_set **setp, struct hsd_backend *be,
                                const struct hsd_lora_target *targets, int n_targets,
                                const struct hsd_lora_file *f, enum hsd_lora_part part,
                                const char *model, int *adapter) {
    if (!be->ops->lora)
        return hsd_fail(HSD_ERR_UNSUPPORTED, "%s: the %s backend does not apply LoRAs", f->path,
                        be->ops->name);
    // Every layer must fit before anything is attached.
    for (int i = 0; i < f->n_layers; i++) {
        const struct hsd_lora_layer *ly = &f->layers[i];
        if (ly->part != part) continue;
        const struct hsd_lora_target *t = find_target(targets, n_targets, ly->layer);
        if (!t)
            return hsd_fail(HSD_ERR_SHAPE,
                            "%s: layer '%s' is not a layer of the %s that LoRA can target "
                            "(attention q/k/v/out, feed-forward and proj_in/proj_out linears; "
                            "text encoder q/k/v/out_proj and fc1/fc2); this LoRA does not fit "
                            "this model",
                            f->path, ly->layer, model);
        if (t->k != ly->k || t->n_out != ly->n_out)
            return hsd_fail(HSD_ERR_SHAPE,
                            "%s: layer '%s' maps %d -> %d features, the %s's maps %d -> %d; "
                            "this LoRA does not fit this model",
                            f->path, ly->layer, ly->k, ly->n_out, model, t->k, t->n_out);
    }
    if (!*setp) {
        if (!(*setp = calloc(1, sizeof **setp))) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
        (*setp)->be = be;
    }
    struct hsd_lora_set *set = *setp;
    HSD_ASSERT(set->be == be);
    int a = set->n_adapters;
    for (int i = 0; i < f->n_layers; i++) {
        const struct hsd_lora_layer *ly = &f->layers[i];
        if (ly->part != part) continue;
        enum hsd_status s =
            add_piece(set, find_target(targets, n_targets, ly->layer), ly, a);
        if (s) return s;
    }
    set->n_adapters++;
    // Rows selected before keep their meaning; the new adapter is off.
    set->rows = 0;
    *adapter = a;
    return HSD_OK;
}

enum hsd_status hsd_lora_select(struct hsd_lora_set *set, const float *scale, int rows) {
    if (!set) return HSD_OK;
    if (!scale || rows <= 0) {
        set->rows = 0;
        return HSD_OK;
    }
    size_t need = (size_t)rows * (size_t)set->n_adapters;
    if ((size_t)set->cap < need) {
        float *s = realloc(set->scale, need * sizeof *s);
        if (!s) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
        set->scale = s;
        set->cap = (int)need;
    }
    memcpy(set->scale, scale, need * sizeof *scale);
    set->rows = rows;
    return HSD_OK;
}

int hsd_lora_active(const struct hsd_lora_set *set) {
    for (size_t i = 0; set && i < (size_t)set->rows * (size_t)set->n_adapters; i++)
        if (set->scale[i] != 0.0f) return 1;
    return 0;
}

enum hsd_status hsd_lora_apply(struct hsd_fwd *f, const struct hsd_lora_set *set,
                               const void *weight, void *out, int ldo, const void *in, int n,
                               int tokens) {
    const struct hook *h = find_hook(set, weight);
    if (!h) return HSD_OK;
    int r_max = 0;
    for (int i = 0; i < h->n; i++) r_max = h->pieces[i].r > r_max ? h->pieces[i].r : r_max;
    size_t mark = f->used;
    void *tmp = hsd_fwd_act(f, (size_t)n * tokens * r_max);
    for (int i = 0; i < h->n; i++) {
        const struct piece *p = &h->pieces[i];
        f->flops += 2.0 * n * tokens * (double)p->r * (p->k + p->n_out);
        // Rows past the selection choose nothing (warm-up, unselected calls).
        int rows = n < set->rows ? n : set->rows;
        if (f->planning || rows == 0) continue;
        struct hsd_lora_params lp = {
            .out = (char *)out + (size_t)p->col * f->be->act_size, .in = in, .down = p->down,
            .up = p->up, .tmp = tmp, .scale = set->scale + p->adapter, .n = rows,
            .tokens = tokens, .k = p->k, .r = p->r, .n_out = p->n_out, .ldo = ldo,
            .scale_ld = set->n_adapters, .mult = p->mult};
        enum hsd_status s = f->be->ops->lora(f->be, &lp);
        if (s) return s;
    }
    f->used = mark;
    return HSD_OK;
}
