// VAEs (vae.h): finding the files, config.json dispatch on "_class_name",
// and what decode/encode share across kinds: input checks, NCHW <-> NHWC
// staging (with TAESD's [-1, 1] <-> [0, 1] maps folded in), and the
// planned activation arena (models/fwd.h: a planning pass per new shape).
// The networks are in vae_kl.c (AutoencoderKL) and vae_tiny.c
// (AutoencoderTiny).
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/vae_internal.h"
#include "io/file.h"
#include "io/weights.h"

// ---- config.json helpers --------------------------------------------------

static enum hsd_status bad(const char *label, const char *key, const char *why) {
    return hsd_cfg_bad(label, key, why);
}

enum hsd_status hsd_vae_cfg_require_str(json_t *root, const char *label, const char *key,
                                        const char *ok) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return HSD_OK;
    if (!json_is_string(v)) return bad(label, key, "expected a string");
    if (!strcmp(json_string_value(v), ok)) return HSD_OK;
    return hsd_fail(HSD_ERR_UNSUPPORTED, "%s: config key '%s': value \"%.100s\" is not supported "
                    "(supported: \"%s\")", label, key, json_string_value(v), ok);
}

// ---- loading ----------------------------------------------------------------

// The vae folder of a pipeline root, or the folder itself.
static enum hsd_status find_files(const char *path, char *cfg, size_t cfg_cap, char *weights,
                                  size_t weights_cap) {
    char dir[4100];
    if (!hsd_is_dir(path))
        return hsd_fail(HSD_ERR_NOT_FOUND, "%s: no such model folder (expected a pipeline root "
                        "with vae/ or a vae folder)", path);
    if (hsd_path_too_long(snprintf(dir, sizeof dir, "%s/vae", path), sizeof dir))
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: path too long", path);
    if (!hsd_is_dir(dir)) snprintf(dir, sizeof dir, "%s", path);
    if (hsd_path_too_long(snprintf(cfg, cfg_cap, "%s/config.json", dir), cfg_cap))
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: path too long", dir);
    if (!hsd_is_file(cfg))
        return hsd_fail(HSD_ERR_NOT_FOUND, "%s: no config.json in the vae folder", dir);
    return hsd_weights_find_file(weights, weights_cap, dir, "diffusion_pytorch_model");
}

// config.json from a file (len == 0: `src` is its path) or from memory,
// in Python's JSON dialect like every config (io/config_json.h).
static enum hsd_status parse_config(struct hsd_vae *v, const char *src, size_t len,
                                    const char *cfg_path) {
    json_t *root;
    enum hsd_status s = len ? hsd_cfg_parse(src, len, cfg_path, &root)
                            : hsd_cfg_load_file(src, &root);
    if (s) return s;
    json_t *cls = json_object_get(root, "_class_name");
    if (!json_is_string(cls)) {
        s = hsd_fail(HSD_ERR_FORMAT, "%s: config key '_class_name' missing or not a string "
                     "(expected \"AutoencoderKL\" or \"AutoencoderTiny\")", cfg_path);
    } else if (!strcmp(json_string_value(cls), "AutoencoderKL")) {
        v->kind = HSD_VAE_KL;
        s = hsd_vae_kl_config(v, root, cfg_path);
    } else if (!strcmp(json_string_value(cls), "AutoencoderTiny")) {
        v->kind = HSD_VAE_TINY;
        s = hsd_vae_tiny_config(v, root, cfg_path);
    } else {
        s = hsd_fail(HSD_ERR_UNSUPPORTED, "%s: config key '_class_name': \"%.100s\" is not a "
                     "supported VAE (AutoencoderKL, AutoencoderTiny)", cfg_path,
                     json_string_value(cls));
    }
    json_decref(root);
    return s;
}

// The network of v's config with the weights of `w` (NULL: random, as the
// U-Net presets), uploaded to v->be.
static enum hsd_status build(struct hsd_vae *v, const struct hsd_weights *w) {
    struct hsd_loader ld;
    enum hsd_status s = hsd_loader_init(&ld, w, v->be, &v->bufs);
    if (!s) s = v->kind == HSD_VAE_KL ? hsd_vae_kl_build(v, &ld) : hsd_vae_tiny_build(v, &ld);
    // Every tensor of the file must be one the config explains.
    if (!s)
        s = hsd_loader_check_all_used(&ld, v->kind == HSD_VAE_KL
                                               ? "the AutoencoderKL the config describes"
                                               : "the AutoencoderTiny the config describes");
    hsd_loader_release(&ld);
    return s;
}

static struct hsd_vae *vae_new(struct hsd_backend *be) {
    struct hsd_vae *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->be = be;
    v->dec_out_mul = v->enc_in_mul = 1.0f;
    return v;
}

// A diffusers vae folder (config.json + weights) or, with ldm set, the
// first_stage_model.* of a single file with its config inferred.
static enum hsd_status load(struct hsd_vae **out, const char *path, struct hsd_backend *be,
                            int ldm) {
    *out = NULL;
    if (!be) return hsd_fail(HSD_ERR_INVALID_ARG, "vae: a backend is required");
    struct hsd_vae *v = vae_new(be);
    if (!v) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    char cfg[4200];
    struct hsd_weights *w = NULL;
    enum hsd_status s;
    if (!ldm) {
        s = find_files(path, cfg, sizeof cfg, v->path, sizeof v->path);
        if (!s) s = parse_config(v, cfg, 0, cfg);
        if (!s) s = hsd_weights_open_diffusers(&w, v->path);
    } else {
        s = hsd_path_too_long(snprintf(v->path, sizeof v->path, "%s", path), sizeof v->path)
                ? hsd_fail(HSD_ERR_INVALID_ARG, "%s: path too long", path)
                : hsd_weights_open_ldm(&w, path, HSD_LDM_VAE);
        if (!s) s = hsd_vae_kl_config_infer(v, w);
    }
    if (!s) s = build(v, w);
    hsd_weights_close(w);
    if (s) {
        hsd_vae_free(v);
        return s;
    }
    *out = v;
    return HSD_OK;
}

enum hsd_status hsd_vae_create(struct hsd_vae **out, const char *config_json, size_t len,
                               const char *label, struct hsd_backend *be) {
    *out = NULL;
    if (!be || !config_json || !len || !label)
        return hsd_fail(HSD_ERR_INVALID_ARG, "vae create: NULL or empty argument");
    struct hsd_vae *v = vae_new(be);
    if (!v) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    snprintf(v->path, sizeof v->path, "%s (random weights)", label);
    enum hsd_status s = parse_config(v, config_json, len, label);
    if (!s) s = build(v, NULL);
    if (s) {
        hsd_vae_free(v);
        return s;
    }
    *out = v;
    return HSD_OK;
}

enum hsd_status hsd_vae_load(struct hsd_vae **out, const char *path, struct hsd_backend *be) {
    return load(out, path, be, 0);
}

enum hsd_status hsd_vae_load_ldm(struct hsd_vae **out, const char *path, struct hsd_backend *be) {
    return load(out, path, be, 1);
}

void hsd_vae_free(struct hsd_vae *v) {
    if (!v) return;
    hsd_bufs_free(&v->bufs, v->be);
    if (v->kind == HSD_VAE_KL) hsd_vae_kl_free(v);
    else hsd_vae_tiny_free(v);
    if (v->arena) v->be->ops->free(v->be, v->arena);
    free(v->host_io);
    free(v);
}

enum hsd_vae_kind hsd_vae_get_kind(const struct hsd_vae *v) { return v->kind; }
int hsd_vae_latent_channels(const struct hsd_vae *v) { return v->latent_channels; }
float hsd_vae_scaling_factor(const struct hsd_vae *v) { return v->scaling_factor; }
void hsd_vae_set_scaling_factor(struct hsd_vae *v, float f) { v->scaling_factor = f; }
float hsd_vae_shift_factor(const struct hsd_vae *v) { return v->shift_factor; }
int hsd_vae_scale(const struct hsd_vae *v) { return v->scale; }

void hsd_vae_set_probe(struct hsd_vae *v, hsd_vae_probe_fn fn, void *user) {
    v->probe = fn;
    v->probe_user = user;
}

void hsd_vae_probe(struct vae_fwd *f, const char *name, const void *buf, int n, int h, int w,
                   int c) {
    if (!f->a.planning && f->v->probe) {
        f->a.be->ops->synchronize(f->a.be);
        f->v->probe(f->v->probe_user, name, buf, n, h, w, c);
    }
}

// ---- decode / encode ------------------------------------------------------

// One network pass: stage `in` [n, ci, h, w] NCHW into the arena as NHWC
// (x * in_mul + in_add), run, and write the NHWC result [n, ho, wo, co]
// back as NCHW (y * out_mul + out_add).
static enum hsd_status pass(struct vae_fwd *f, int encode, float *out, const float *in, int n,
                            int h, int w) {
    struct hsd_vae *v = f->v;
    struct hsd_backend *be = v->be;
    int sc = v->scale;
    int ci = encode ? 3 : v->latent_channels, co = encode ? v->latent_channels : 3;
    int ho = encode ? h / sc : h * sc, wo = encode ? w / sc : w * sc;
    float in_mul = encode ? v->enc_in_mul : 1.0f, in_add = encode ? v->enc_in_add : 0.0f;
    float out_mul = encode ? 1.0f : v->dec_out_mul, out_add = encode ? 0.0f : v->dec_out_add;
    size_t hw = (size_t)h * w, hwo = (size_t)ho * wo;
    enum hsd_status s;

    void *x = hsd_fwd_act(&f->a, (size_t)n * hw * ci);
    if (!f->a.planning) {
        float *tmp = v->host_io;
        for (int b = 0; b < n; b++)
            for (int c = 0; c < ci; c++)
                for (size_t p = 0; p < hw; p++)
                    tmp[((size_t)b * hw + p) * ci + c] =
                        in[((size_t)b * ci + c) * hw + p] * in_mul + in_add;
        if ((s = be->ops->upload(be, x, tmp, (size_t)n * hw * ci))) return s;
    }
    void *y = NULL;
    if (v->kind == HSD_VAE_KL)
        s = encode ? hsd_vae_kl_encode(f, &y, x, n, h, w) : hsd_vae_kl_decode(f, &y, x, n, h, w);
    else
        s = encode ? hsd_vae_tiny_encode(f, &y, x, n, h, w)
                   : hsd_vae_tiny_decode(f, &y, x, n, h, w);
    if (s || f->a.planning) return s;
    float *tmp = v->host_io;
    if ((s = be->ops->download(be, tmp, y, (size_t)n * hwo * co))) return s;
    for (int b = 0; b < n; b++)
        for (size_t p = 0; p < hwo; p++)
            for (int c = 0; c < co; c++)
                out[((size_t)b * co + c) * hwo + p] =
                    tmp[((size_t)b * hwo + p) * co + c] * out_mul + out_add;
    return HSD_OK;
}

static enum hsd_status run(struct hsd_vae *v, int encode, float *out, const float *in, int n,
                           int h, int w) {
    const char *what = encode ? "vae encode" : "vae decode";
    if (!out || !in) return hsd_fail(HSD_ERR_INVALID_ARG, "%s: NULL buffer", what);
    if (n < 1 || h < 1 || w < 1)
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: bad input dims n=%d h=%d w=%d", what, n, h, w);
    if (encode && (h % v->scale || w % v->scale))
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "%s: image %dx%d is not a multiple of %d (the VAE's scale) in both "
                        "dimensions",
                        what, h, w, v->scale);
    // Pixels (the larger side of the pass) capped far above any real use so
    // size arithmetic cannot overflow.
    int64_t pixels = (int64_t)n * h * w * (encode ? 1 : (int64_t)v->scale * v->scale);
    if (pixels > (int64_t)1 << 28)
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: input too large (n=%d %dx%d)", what, n, h, w);
    int d = encode ? 1 : 0;
    struct vae_fwd f = {.a = {.be = v->be}, .v = v};
    if (!v->arena || v->plan_n[d] != n || v->plan_h[d] != h || v->plan_w[d] != w) {
        f.a.planning = 1;
        enum hsd_status s = pass(&f, encode, out, in, n, h, w);
        if (s) return s;
        s = hsd_fwd_reserve(v->be, &v->arena, &v->arena_cap, f.a.peak, "vae");
        if (s) return s;
        // Staging holds the 3-channel image side (the larger one).
        size_t io = (size_t)pixels * (v->latent_channels > 3 ? (size_t)v->latent_channels : 3);
        if (io > v->host_io_cap) {
            free(v->host_io);
            v->host_io = malloc(io * sizeof(float));
            v->host_io_cap = v->host_io ? io : 0;
            if (!v->host_io) return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", what);
        }
        v->plan_n[d] = n;
        v->plan_h[d] = h;
        v->plan_w[d] = w;
        f = (struct vae_fwd){.a = {.be = v->be}, .v = v};
    }
    f.a.base = v->arena;
    f.a.cap = v->arena_cap;
    enum hsd_status s = pass(&f, encode, out, in, n, h, w);
    // The result is on the host: give the arena's pages back (fwd.h).
    hsd_fwd_discard(v->be, v->arena, v->arena_cap);
    return s;
}

enum hsd_status hsd_vae_decode(struct hsd_vae *v, float *image, const float *latent, int n,
                               int h, int w) {
    return run(v, 0, image, latent, n, h, w);
}

enum hsd_status hsd_vae_encode(struct hsd_vae *v, float *latent, const float *image, int n,
                               int H, int W) {
    return run(v, 1, latent, image, n, H, W);
}
