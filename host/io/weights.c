#include "io/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "io/ldm_names.h"
#include "io/weights_index.h"

struct entry {
    char *name;                      // diffusers name (owned)
    const struct hsd_st_tensor *t;   // inside st
};

struct hsd_weights {
    struct hsd_safetensors *st;
    struct entry *e;
    size_t n;
    struct hsd_st_tensor *views;  // row slices of fused tensors (OpenCLIP in_proj)
    void *transposed;             // SDXL's text_projection, transposed (owned)
    // A sharded checkpoint: every shard file (st is NULL) and the index's
    // path, which messages name.
    struct hsd_safetensors **shards;
    size_t n_shards;
    char *index_path;
    int refs;  // hsd_weights_retain; 0 means one (a fresh object)
};

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

static enum hsd_status finish(struct hsd_weights *w, const char *path) {
    qsort(w->e, w->n, sizeof *w->e, cmp_entry);
    for (size_t i = 1; i < w->n; i++) {
        if (!strcmp(w->e[i - 1].name, w->e[i].name))
            return hsd_fail(HSD_ERR_FORMAT, "%s: two tensors map to the name '%s'", path,
                            w->e[i].name);
    }
    return HSD_OK;
}

enum hsd_status hsd_weights_find_file(char *out, size_t cap, const char *dir, const char *base) {
    static const char *const forms[] = {"%s/%s.safetensors", "%s/%s.fp16.safetensors",
                                        "%s/%s.safetensors.index.json",
                                        "%s/%s.safetensors.index.fp16.json"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        if (hsd_path_too_long(snprintf(out, cap, forms[i], dir, base), cap))
            return hsd_fail(HSD_ERR_INVALID_ARG, "%s: path too long", dir);
        if (hsd_is_file(out)) return HSD_OK;
    }
    return hsd_fail(HSD_ERR_NOT_FOUND,
                    "%s: no %s.safetensors (nor its .fp16 or sharded .index.json forms; only "
                    ".safetensors weights are read, convert .bin files first)",
                    dir, base);
}

static int ends_with(const char *s, const char *suffix);
static enum hsd_status open_sharded(struct hsd_weights **out, const char *index_path);

enum hsd_status hsd_weights_open_diffusers(struct hsd_weights **out, const char *path) {
    *out = NULL;
    if (ends_with(path, ".json")) return open_sharded(out, path);
    struct hsd_weights *w = calloc(1, sizeof *w);
    if (!w) return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", path);
    enum hsd_status s = hsd_safetensors_open(&w->st, path);
    if (s) {
        free(w);
        return s;
    }
    w->n = hsd_safetensors_count(w->st);
    w->e = calloc(w->n ? w->n : 1, sizeof *w->e);
    if (!w->e) {
        hsd_weights_close(w);
        return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", path);
    }
    for (size_t i = 0; i < w->n; i++) {
        w->e[i].t = hsd_safetensors_at(w->st, i);
        w->e[i].name = strdup(w->e[i].t->name);
        if (!w->e[i].name) {
            hsd_weights_close(w);
            return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    if ((s = finish(w, path))) {
        hsd_weights_close(w);
        return s;
    }
    *out = w;
    return HSD_OK;
}

// Identity rename for the text encoder: an SD 1.x file keeps transformers'
// CLIPTextModel names below its prefix (diffusers single_file_utils
// convert_ldm_clip_checkpoint only strips the prefix).
static enum hsd_status copy_names(char **out, const char *const *names, size_t n,
                                  const char *label) {
    for (size_t i = 0; i < n; i++) {
        if (!(out[i] = strdup(names[i]))) {
            for (size_t j = 0; j < i; j++) free(out[j]);
            return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", label);
        }
    }
    return HSD_OK;
}

static const struct {
    const char *prefix, *what;
    enum hsd_status (*rename)(char **, const char *const *, size_t, const char *);
} k_parts[] = {
    [HSD_LDM_UNET] = {HSD_LDM_UNET_PREFIX, "U-Net", hsd_ldm_unet_rename},
    [HSD_LDM_VAE] = {HSD_LDM_VAE_PREFIX, "VAE", hsd_ldm_vae_rename},
    [HSD_LDM_CLIP] = {HSD_LDM_CLIP_PREFIX, "CLIP text encoder", copy_names},
    [HSD_LDM_OPENCLIP] = {HSD_LDM_OPENCLIP_PREFIX, "OpenCLIP text encoder", NULL},
    [HSD_LDM_SDXL_CLIP] = {HSD_LDM_SDXL_CLIP_PREFIX, "CLIP text encoder (SDXL)", copy_names},
    [HSD_LDM_SDXL_OPENCLIP] = {HSD_LDM_SDXL_OPENCLIP_PREFIX, "OpenCLIP text encoder (SDXL)",
                               NULL},
};

// Third k of a fused [3C, ...] tensor along its first dimension: rows
// [k*C, (k+1)*C), contiguous in the file, so a view (no copy). diffusers'
// convert_open_clip_checkpoint: weight[:C], [C:2C], [2C:].
static enum hsd_status third(struct hsd_st_tensor *v, const struct hsd_st_tensor *t, int k,
                             const char *path) {
    if (t->ndim < 1 || t->ndim > 2 || t->shape[0] % 3 ||
        (t->ndim == 2 && t->shape[1] * 3 != t->shape[0]))
        return hsd_fail(HSD_ERR_SHAPE,
                        "%s: tensor '%s': a fused in_proj must be [3C, C] or [3C], got %d-D "
                        "with first dimension %lld",
                        path, t->name, t->ndim, (long long)(t->ndim ? t->shape[0] : 0));
    *v = *t;
    v->shape[0] = t->shape[0] / 3;
    v->numel = t->numel / 3;
    v->nbytes = t->nbytes / 3;
    v->data = (const char *)t->data + (size_t)k * v->nbytes;
    return HSD_OK;
}

// OpenCLIP's text_projection [width, proj] (applied as x @ P) as the
// [proj, width] Linear weight transformers holds: diffusers'
// convert_open_clip_checkpoint stores checkpoint[...].T. The one tensor of
// a single file that is copied, not viewed (width x proj elements).
static enum hsd_status transpose(struct hsd_weights *w, struct hsd_st_tensor *v,
                                 const struct hsd_st_tensor *t, const char *path) {
    if (t->ndim != 2 || w->transposed)
        return hsd_fail(HSD_ERR_SHAPE, "%s: tensor '%s': a text_projection must be 2-D (and "
                        "one per file), got %d-D", path, t->name, t->ndim);
    size_t r = (size_t)t->shape[0], c = (size_t)t->shape[1];
    size_t e = r && c ? t->nbytes / (r * c) : 1;
    char *d = malloc(t->nbytes ? t->nbytes : 1);
    if (!d) return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", path);
    const char *src = t->data;
    for (size_t i = 0; i < r; i++)
        for (size_t j = 0; j < c; j++) memcpy(d + (j * r + i) * e, src + (i * c + j) * e, e);
    w->transposed = d;
    *v = *t;
    v->shape[0] = (int64_t)c;
    v->shape[1] = (int64_t)r;
    v->data = d;
    return HSD_OK;
}

// An OpenCLIP text tower: 1 -> 0, 1 or 3 entries (io/ldm_names.h); sdxl:
// SDXL's bigG (all blocks, text_projection transposed).
static enum hsd_status open_openclip(struct hsd_weights *w, const char *path, const char *prefix,
                                     int sdxl) {
    size_t total = hsd_safetensors_count(w->st), plen = strlen(prefix), n_in = 0;
    const char **names = calloc(total ? total : 1, sizeof *names);
    const struct hsd_st_tensor **src = calloc(total ? total : 1, sizeof *src);
    w->e = calloc(3 * (total ? total : 1), sizeof *w->e);
    w->views = calloc(3 * (total ? total : 1), sizeof *w->views);
    enum hsd_status s = HSD_OK;
    if (!names || !src || !w->e || !w->views) s = hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < total && !s; i++) {
        const struct hsd_st_tensor *t = hsd_safetensors_at(w->st, i);
        if (strncmp(t->name, prefix, plen)) continue;
        names[n_in] = t->name + plen;
        src[n_in++] = t;
    }
    if (!s && n_in == 0)
        s = hsd_fail(HSD_ERR_NOT_FOUND,
                     "%s: no tensor starts with '%s': the file has no OpenCLIP text encoder",
                     path, prefix);
    int blocks = s ? 0 : hsd_ldm_openclip_blocks(names, n_in);
    size_t n_views = 0;
    for (size_t i = 0; i < n_in && !s; i++) {
        char *out[3];
        int k = 0;
        if ((s = hsd_ldm_openclip_rename(out, &k, names[i], blocks, sdxl, path))) break;
        for (int j = 0; j < k; j++) {
            struct entry *e = &w->e[w->n++];
            e->name = out[j];
            e->t = src[i];
            if (k == 3 && !s) {
                s = third(&w->views[n_views], src[i], j, path);
                e->t = &w->views[n_views++];
            } else if (!s && !strcmp(out[j], "text_projection.weight")) {
                s = transpose(w, &w->views[n_views], src[i], path);
                e->t = &w->views[n_views++];
            }
        }
    }
    free(names);
    free(src);
    if (!s) s = finish(w, path);
    return s;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

enum hsd_status hsd_weights_open_ldm(struct hsd_weights **out, const char *path,
                                     enum hsd_ldm_part part) {
    *out = NULL;
    struct hsd_weights *w = calloc(1, sizeof *w);
    if (!w) return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", path);
    enum hsd_status s = hsd_safetensors_open(&w->st, path);
    if (s) {
        free(w);
        return s;
    }
    if (part == HSD_LDM_OPENCLIP || part == HSD_LDM_SDXL_OPENCLIP) {
        if ((s = open_openclip(w, path, k_parts[part].prefix, part == HSD_LDM_SDXL_OPENCLIP))) {
            hsd_weights_close(w);
            return s;
        }
        *out = w;
        return HSD_OK;
    }
    const char *prefix = k_parts[part].prefix;
    size_t total = hsd_safetensors_count(w->st), plen = strlen(prefix);
    const char **names = calloc(total ? total : 1, sizeof *names);
    char **mapped = calloc(total ? total : 1, sizeof *mapped);
    w->e = calloc(total ? total : 1, sizeof *w->e);
    if (!names || !mapped || !w->e) {
        s = hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (size_t i = 0; i < total; i++) {
        const struct hsd_st_tensor *t = hsd_safetensors_at(w->st, i);
        if (strncmp(t->name, prefix, plen)) continue;
        // CLIP's position_ids is an index buffer, not a weight; transformers
        // 4.31+ no longer saves it (diffusers drops it when converting).
        int clip = part == HSD_LDM_CLIP || part == HSD_LDM_SDXL_CLIP;
        if (clip && ends_with(t->name, "position_ids")) continue;
        names[w->n] = t->name + plen;
        w->e[w->n].t = t;
        w->n++;
    }
    if (w->n == 0) {
        s = hsd_fail(HSD_ERR_NOT_FOUND,
                     "%s: no tensor starts with '%s': the file has no %s (not a complete "
                     "CompVis/LDM Stable Diffusion checkpoint)",
                     path, prefix, k_parts[part].what);
        goto fail;
    }
    if ((s = k_parts[part].rename(mapped, names, w->n, path))) goto fail;
    for (size_t i = 0; i < w->n; i++) w->e[i].name = mapped[i];
    free(names);
    free(mapped);
    if ((s = finish(w, path))) {
        hsd_weights_close(w);
        return s;
    }
    *out = w;
    return HSD_OK;
fail:
    free(names);
    free(mapped);
    w->n = 0;
    hsd_weights_close(w);
    return s;
}

enum hsd_status hsd_weights_open_ldm_unet(struct hsd_weights **out, const char *path) {
    return hsd_weights_open_ldm(out, path, HSD_LDM_UNET);
}

struct hsd_weights *hsd_weights_retain(const struct hsd_weights *w) {
    // The count is bookkeeping, not part of the weights a const holder sees.
    struct hsd_weights *m = (struct hsd_weights *)w;
    m->refs++;
    return m;
}

void hsd_weights_close(struct hsd_weights *w) {
    if (!w) return;
    if (w->refs > 0) {
        w->refs--;
        return;
    }
    if (w->e)
        for (size_t i = 0; i < w->n; i++) free(w->e[i].name);
    free(w->e);
    free(w->views);
    free(w->transposed);
    hsd_safetensors_close(w->st);
    for (size_t i = 0; i < w->n_shards; i++) hsd_safetensors_close(w->shards[i]);
    free(w->shards);
    free(w->index_path);
    free(w);
}

void hsd_weights_drop(const struct hsd_weights *w, const struct hsd_st_tensor *t) {
    if (w->st) hsd_safetensors_drop(w->st, t);
    for (size_t f = 0; f < w->n_shards; f++) hsd_safetensors_drop(w->shards[f], t);  // the owner drops
}

const char *hsd_weights_path(const struct hsd_weights *w) {
    return w->index_path ? w->index_path : hsd_safetensors_path(w->st);
}

// Every shard the index names, opened; each shard holds exactly the
// tensors the index gives it (a tensor missing from its shard, or a shard
// tensor the index does not list, fails naming both).
static enum hsd_status load_shards(struct hsd_weights *w, const struct hsd_weights_index *idx,
                                   const char *dir) {
    if (!(w->shards = calloc(idx->n_files, sizeof *w->shards)) ||
        !(w->e = calloc(idx->n, sizeof *w->e)))
        return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", w->index_path);
    size_t total = 0;
    for (size_t f = 0; f < idx->n_files; f++) {
        char path[4400];
        if (hsd_path_too_long(snprintf(path, sizeof path, "%s/%s", dir, idx->files[f]),
                              sizeof path))
            return hsd_fail(HSD_ERR_INVALID_ARG, "%s: path too long", dir);
        enum hsd_status s = hsd_safetensors_open(&w->shards[f], path);
        if (s) return hsd_fail_context(s, "%s: shard: ", w->index_path);
        w->n_shards++;
        total += hsd_safetensors_count(w->shards[f]);
    }
    for (size_t i = 0; i < idx->n; i++) {
        struct hsd_safetensors *st = w->shards[idx->file_of[i]];
        const struct hsd_st_tensor *t = hsd_safetensors_find(st, idx->names[i]);
        if (!t)
            return hsd_fail(HSD_ERR_NOT_FOUND,
                            "%s: tensor '%s' is missing from shard %s, where the index puts it",
                            w->index_path, idx->names[i], hsd_safetensors_path(st));
        if (!(w->e[w->n].name = strdup(idx->names[i])))
            return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", w->index_path);
        w->e[w->n++].t = t;
    }
    if (total != idx->n)
        return hsd_fail(HSD_ERR_FORMAT,
                        "%s: the shards hold %zu tensors, the index lists %zu; index and "
                        "shards disagree",
                        w->index_path, total, idx->n);
    return HSD_OK;
}

static enum hsd_status open_sharded(struct hsd_weights **out, const char *index_path) {
    struct hsd_weights *w = calloc(1, sizeof *w);
    if (!w || !(w->index_path = strdup(index_path))) {
        free(w);
        return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", index_path);
    }
    char dir[4200];
    const char *slash = strrchr(index_path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - index_path) : 1,
             slash ? index_path : ".");
    struct hsd_weights_index idx;
    enum hsd_status s = hsd_weights_index_load(&idx, index_path);
    if (!s) {
        s = load_shards(w, &idx, dir);
        hsd_weights_index_free(&idx);
    }
    if (!s) s = finish(w, index_path);
    if (s) {
        hsd_weights_close(w);
        return s;
    }
    *out = w;
    return HSD_OK;
}
size_t hsd_weights_count(const struct hsd_weights *w) { return w->n; }
const char *hsd_weights_name_at(const struct hsd_weights *w, size_t i) { return w->e[i].name; }
const struct hsd_st_tensor *hsd_weights_at(const struct hsd_weights *w, size_t i) {
    return w->e[i].t;
}

long hsd_weights_find_index(const struct hsd_weights *w, const char *name) {
    struct entry key = {.name = (char *)name};
    const struct entry *e = bsearch(&key, w->e, w->n, sizeof *w->e, cmp_entry);
    return e ? (long)(e - w->e) : -1;
}

const struct hsd_st_tensor *hsd_weights_find(const struct hsd_weights *w, const char *name) {
    long i = hsd_weights_find_index(w, name);
    return i < 0 ? NULL : w->e[i].t;
}

int hsd_weights_has_prefix(const struct hsd_weights *w, const char *prefix) {
    size_t l = strlen(prefix);
    // First entry >= prefix in sorted order.
    size_t lo = 0, hi = w->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(w->e[mid].name, prefix) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < w->n && !strncmp(w->e[lo].name, prefix, l);
}
