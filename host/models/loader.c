// Weights by name into backend buffers (loader.h). Moved out of
// unet_build.c unchanged in behaviour so the VAEs load the same way.
#include "models/loader.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hsd_bufs_free(struct hsd_bufs *b, struct hsd_backend *be) {
    for (size_t i = 0; i < b->n; i++) be->ops->free(be, b->p[i]);
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
    for (size_t i = 0; i < b->n_files; i++) hsd_weights_close(b->files[i]);
    free(b->files);
    b->files = NULL;
    b->n_files = 0;
}

// Keeps the weights file `w` open while b's buffers live (once per file).
static enum hsd_status bufs_keep_file(struct hsd_bufs *b, const struct hsd_weights *w) {
    for (size_t i = 0; i < b->n_files; i++)
        if (b->files[i] == w) return HSD_OK;
    struct hsd_weights **nf = realloc(b->files, (b->n_files + 1) * sizeof *nf);
    if (!nf) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    b->files = nf;
    b->files[b->n_files++] = hsd_weights_retain(w);
    return HSD_OK;
}

enum hsd_status hsd_bufs_add(struct hsd_bufs *b, void *p) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 256;
        void **nb = realloc(b->p, cap * sizeof *nb);
        if (!nb) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
        b->p = nb;
        b->cap = cap;
    }
    b->p[b->n++] = p;
    return HSD_OK;
}

enum hsd_status hsd_loader_init(struct hsd_loader *ld, const struct hsd_weights *w,
                                struct hsd_backend *be, struct hsd_bufs *bufs) {
    *ld = (struct hsd_loader){.be = be, .w = w, .bufs = bufs,
                              .path = w ? hsd_weights_path(w) : "(random weights)",
                              .rng = 0x5eed};
    ld->used = calloc((w ? hsd_weights_count(w) : 0) + 1, 1);
    if (!ld->used) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    return HSD_OK;
}

void hsd_loader_release(struct hsd_loader *ld) {
    free(ld->used);
    free(ld->tmp);
    free(ld->tmp2);
    ld->used = NULL;
    ld->tmp = ld->tmp2 = NULL;
    ld->tmp_cap = 0;
}

// Random-weights mode: PyTorch's default init scale, U(-1/sqrt(fan_in),
// 1/sqrt(fan_in)), so activations keep a realistic range for benchmarks;
// norm scales are 1 and norm shifts 0 as in a fresh torch module.
static void fill_random(struct hsd_loader *ld, float *x, int ndim, const int64_t *dims,
                        const char *name) {
    size_t count = 1, fan_in = 1;
    for (int i = 0; i < ndim; i++) count *= (size_t)dims[i];
    for (int i = 1; i < ndim; i++) fan_in *= (size_t)dims[i];
    const char *dot = strrchr(name, '.');
    int is_norm = strstr(name, "norm") != NULL && ndim == 1;
    if (is_norm) {
        float v = dot && !strcmp(dot, ".weight") ? 1.0f : 0.0f;
        for (size_t i = 0; i < count; i++) x[i] = v;
        return;
    }
    float scale = ndim > 1 ? 1.0f / sqrtf((float)fan_in) : 0.02f;
    for (size_t i = 0; i < count; i++) {
        uint64_t z = (ld->rng += 0x9e3779b97f4a7c15ull);  // splitmix64
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        x[i] = scale * (2.0f * (float)(z >> 40) / 16777216.0f - 1.0f);
    }
}

static enum hsd_status grow_tmp(struct hsd_loader *ld, size_t count, const char *name) {
    if (count <= ld->tmp_cap) return HSD_OK;
    free(ld->tmp);
    free(ld->tmp2);
    ld->tmp = malloc(count * sizeof(float));
    ld->tmp2 = malloc(count * sizeof(float));
    if (!ld->tmp || !ld->tmp2) {
        ld->tmp_cap = 0;
        return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory converting '%s'", ld->path, name);
    }
    ld->tmp_cap = count;
    return HSD_OK;
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *dims) {
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && o < cap; i++) {
        const char *sep = i ? ", " : "";
        if (dims[i] == HSD_ANY) o += (size_t)snprintf(buf + o, cap - o, "%s*", sep);
        else o += (size_t)snprintf(buf + o, cap - o, "%s%lld", sep, (long long)dims[i]);
    }
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

enum hsd_status hsd_loader_upload(struct hsd_loader *ld, void **dst, const float *src,
                                  size_t count) {
    struct hsd_backend *be = ld->be;
    void *p = be->ops->alloc(be, count * be->act_size);
    if (!p) return hsd_fail_context(HSD_ERR_NOMEM, "allocating %zu weights: ", count);
    enum hsd_status s = hsd_bufs_add(ld->bufs, p);
    if (s) {
        be->ops->free(be, p);
        return s;
    }
    *dst = p;
    return be->ops->upload(be, p, src, count);
}

int hsd_loader_has(const struct hsd_loader *ld, const char *name) {
    return ld->w && hsd_weights_find(ld->w, name) != NULL;
}

// hsd_loader_fetch; with `view` (and file weights on a backend), the
// tensor is checked and marked used but not converted: *view is set instead.
static enum hsd_status fetch(struct hsd_loader *ld, const char *name, int ndim, int64_t *dims,
                             int conv, const float **host, const struct hsd_st_tensor **view) {
    *host = NULL;
    if (!ld->w) {
        // Random weights with exactly the shapes the config implies.
        size_t count = 1;
        for (int i = 0; i < ndim; i++) count *= (size_t)dims[i];
        ld->dtype = HSD_F32;
        ld->params += (int64_t)count;
        if (!ld->be) return HSD_OK;
        enum hsd_status s = grow_tmp(ld, count, name);
        if (s) return s;
        if (ld->be->weight_mode != HSD_WEIGHTS_RECEIVE) fill_random(ld, ld->tmp, ndim, dims, name);
        *host = ld->tmp;
        return HSD_OK;
    }
    long idx = hsd_weights_find_index(ld->w, name);
    if (idx < 0)
        return hsd_fail(HSD_ERR_NOT_FOUND, "%s: missing tensor '%s' (required by the config)",
                        ld->path, name);
    const struct hsd_st_tensor *t = hsd_weights_at(ld->w, (size_t)idx);
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = dims[i] == HSD_ANY || dims[i] == t->shape[i];
    if (!ok) {
        char want[128], got[128];
        shape_str(want, sizeof want, ndim, dims);
        shape_str(got, sizeof got, t->ndim, t->shape);
        return hsd_fail(HSD_ERR_SHAPE,
                        "%s: tensor '%s': shape %s contradicts the config (expected %s)",
                        ld->path, name, got, want);
    }
    for (int i = 0; i < ndim; i++) dims[i] = t->shape[i];
    if (t->dtype != HSD_F32 && t->dtype != HSD_F16 && t->dtype != HSD_BF16)
        return hsd_fail(HSD_ERR_UNSUPPORTED,
                        "%s: tensor '%s': unsupported dtype %s (expected F32, F16 or BF16)",
                        ld->path, name, hsd_dtype_name(t->dtype));
    if (ld->used[idx])
        return hsd_fail(HSD_ERR_INTERNAL, "%s: tensor '%s' used twice", ld->path, name);
    ld->used[idx] = 1;
    if (ld->params == 0) ld->dtype = t->dtype;
    else if (t->dtype != ld->dtype) ld->mixed_dtypes = 1;
    ld->params += t->numel;
    if (!ld->be) return HSD_OK;
    if (view) {
        *view = t;
        return HSD_OK;
    }
    size_t count = (size_t)t->numel;
    enum hsd_status s = grow_tmp(ld, count, name);
    if (s) return s;
    *host = ld->tmp;
    // The weights arrive by broadcast from a device that read them
    // (backend.h, HSD_WEIGHTS_RECEIVE): the file's bytes are not touched.
    if (ld->be->weight_mode == HSD_WEIGHTS_RECEIVE) return HSD_OK;
    hsd_convert_to_f32(ld->tmp, t->data, t->dtype, count);
    hsd_weights_drop(ld->w, t);  // converted: the file's copy need not stay resident
    *host = ld->tmp;
    if (conv && ndim == 4 && (t->shape[2] != 1 || t->shape[3] != 1)) {
        int64_t co = t->shape[0], ci = t->shape[1], kk = t->shape[2] * t->shape[3];
        for (int64_t o = 0; o < co; o++)
            for (int64_t c = 0; c < ci; c++)
                for (int64_t k = 0; k < kk; k++)
                    ld->tmp2[(o * kk + k) * ci + c] = ld->tmp[(o * ci + c) * kk + k];
        *host = ld->tmp2;
    }
    return HSD_OK;
}

enum hsd_status hsd_loader_fetch(struct hsd_loader *ld, const char *name, int ndim,
                                 int64_t *dims, int conv, const float **host) {
    return fetch(ld, name, ndim, dims, conv, host, NULL);
}

// A GEMM weight as the file holds it, through the backend's weight_view.
static enum hsd_status view_weight(struct hsd_loader *ld, void **dst,
                                   const struct hsd_st_tensor *t, const char *name) {
    struct hsd_backend *be = ld->be;
    int64_t k = 1;
    for (int i = 1; i < t->ndim; i++) k *= t->shape[i];
    const int taps = t->ndim == 4 ? (int)(t->shape[2] * t->shape[3]) : 1;
    if (t->shape[0] > INT32_MAX || k > INT32_MAX)
        return hsd_fail(HSD_ERR_UNSUPPORTED, "%s: tensor '%s': too large for one GEMM", ld->path,
                        name);
    enum hsd_status s = bufs_keep_file(ld->bufs, ld->w);
    if (s) return s;
    struct hsd_weight_view_params vp = {.data = t->data, .dtype = t->dtype,
                                        .rows = (int)t->shape[0], .k = (int)k, .taps = taps};
    void *p = be->ops->weight_view(be, &vp);
    if (!p) return hsd_fail_context(HSD_ERR_NOMEM, "%s: tensor '%s': ", ld->path, name);
    if ((s = hsd_bufs_add(ld->bufs, p))) {
        be->ops->free(be, p);
        return s;
    }
    *dst = p;
    return HSD_OK;
}

// Which backend path a stack of tensors takes: 1 when they can stay in
// their (common) file dtype.
static int stack_viewable(const struct hsd_loader *ld, int n, const char *const *names) {
    if (!ld->w || !ld->be || !ld->be->ops->weight_view ||
        ld->be->weight_mode != HSD_WEIGHTS_NORMAL)
        return 0;
    const struct hsd_st_tensor *t0 = hsd_weights_find(ld->w, names[0]);
    for (int i = 1; i < n && t0; i++) {
        const struct hsd_st_tensor *t = hsd_weights_find(ld->w, names[i]);
        if (!t || t->dtype != t0->dtype) return 0;
    }
    return t0 != NULL;
}

enum hsd_status hsd_loader_get_stacked(struct hsd_loader *ld, void **dst, int n,
                                       const char *const *names, const int64_t *rows,
                                       int64_t k) {
    *dst = NULL;
    const int view = stack_viewable(ld, n, names);
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += rows[i];
    if (total > INT32_MAX || k > INT32_MAX)
        return hsd_fail(HSD_ERR_UNSUPPORTED, "%s: '%s' and the rest: too large for one GEMM",
                        ld->path, names[0]);
    unsigned char *pack = NULL, *at = NULL;
    size_t es = sizeof(float);
    enum hsd_status s = HSD_OK;
    enum hsd_dtype dtype = HSD_F32;
    for (int i = 0; i < n && !s; i++) {
        const struct hsd_st_tensor *ft = ld->w ? hsd_weights_find(ld->w, names[i]) : NULL;
        const int ndim = ft && ft->ndim == 4 ? 4 : 2;
        int64_t dims[4] = {rows[i], k, 1, 1};
        const float *host = NULL;
        const struct hsd_st_tensor *t = NULL;
        if ((s = fetch(ld, names[i], ndim, dims, 0, &host, view ? &t : NULL))) break;
        if (!host && !t) continue;  // no backend: shapes only
        if (!pack) {
            dtype = t ? t->dtype : HSD_F32;
            es = hsd_dtype_size(dtype);
            if (!(pack = at = malloc((size_t)total * (size_t)k * es))) {
                s = hsd_fail(HSD_ERR_NOMEM, "%s: out of memory packing '%s'", ld->path,
                             names[i]);
                break;
            }
        }
        const size_t bytes = (size_t)rows[i] * (size_t)k * es;
        memcpy(at, t ? t->data : (const void *)host, bytes);
        if (t) hsd_weights_drop(ld->w, t);  // copied: see fetch
        at += bytes;
    }
    if (!s && pack && view) {
        struct hsd_weight_view_params vp = {.data = pack, .dtype = dtype, .rows = (int)total,
                                            .k = (int)k, .taps = 1, .copy = 1};
        struct hsd_backend *be = ld->be;
        void *p = be->ops->weight_view(be, &vp);
        if (!p) s = hsd_fail_context(HSD_ERR_NOMEM, "%s: '%s' and the rest: ", ld->path, names[0]);
        else if ((s = hsd_bufs_add(ld->bufs, p))) be->ops->free(be, p);
        else *dst = p;
    } else if (!s && pack) {
        s = hsd_loader_upload(ld, dst, (const float *)pack, (size_t)total * (size_t)k);
    }
    free(pack);
    return s;
}

enum hsd_status hsd_loader_vget(struct hsd_loader *ld, void **dst, int ndim, int64_t *dims,
                                int conv, const char *fmt, va_list ap) {
    char name[256];
    vsnprintf(name, sizeof name, fmt, ap);
    const float *host;
    const struct hsd_st_tensor *t = NULL;
    // GEMM weights from a file stay in its precision where the backend can
    // read them so (loader.h).
    const int viewable = ld->w && ld->be && ld->be->ops->weight_view &&
                         ld->be->weight_mode == HSD_WEIGHTS_NORMAL && (ndim == 2 || ndim == 4);
    enum hsd_status s = fetch(ld, name, ndim, dims, conv, &host, viewable ? &t : NULL);
    *dst = NULL;
    if (!s && t) return view_weight(ld, dst, t, name);
    if (s || !host) return s;
    size_t count = 1;
    for (int i = 0; i < ndim; i++) count *= (size_t)dims[i];
    s = hsd_loader_upload(ld, dst, host, count);
    if (s) return hsd_fail_context(s, "%s: tensor '%s': ", ld->path, name);
    return HSD_OK;
}

enum hsd_status hsd_loader_get(struct hsd_loader *ld, void **dst, int ndim, int64_t *dims,
                               int conv, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    enum hsd_status s = hsd_loader_vget(ld, dst, ndim, dims, conv, fmt, ap);
    va_end(ap);
    return s;
}

enum hsd_status hsd_loader_check_all_used(const struct hsd_loader *ld, const char *model) {
    size_t n = ld->w ? hsd_weights_count(ld->w) : 0, unused = 0;
    const char *first = NULL;
    for (size_t i = 0; i < n; i++)
        if (!ld->used[i] && !unused++) first = hsd_weights_name_at(ld->w, i);
    if (unused)
        return hsd_fail(HSD_ERR_FORMAT,
                        "%s: %zu tensor(s) not used by %s (first: '%s'); config and weights "
                        "disagree",
                        ld->path, unused, model, first);
    return HSD_OK;
}
