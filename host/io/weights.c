#include "io/weights.h"

#include <stdlib.h>
#include <string.h>

#include "io/ldm_names.h"

struct entry {
    char *name;                      // diffusers name (owned)
    const struct hsd_st_tensor *t;   // inside st
};

struct hsd_weights {
    struct hsd_safetensors *st;
    struct entry *e;
    size_t n;
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

enum hsd_status hsd_weights_open_diffusers(struct hsd_weights **out, const char *path) {
    *out = NULL;
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
};

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
        if (part == HSD_LDM_CLIP && ends_with(t->name, "position_ids")) continue;
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
    hsd_safetensors_close(w->st);
    free(w);
}

void hsd_weights_drop(const struct hsd_weights *w, const struct hsd_st_tensor *t) {
    hsd_safetensors_drop(w->st, t);
}

const char *hsd_weights_path(const struct hsd_weights *w) { return hsd_safetensors_path(w->st); }
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
