// AutoencoderKL (diffusers models/autoencoders/autoencoder_kl.py, Encoder
// and Decoder in autoencoders/vae.py): config, weights and forward on
// backend ops, NHWC throughout. SD's VAE: ResnetBlock2D (models/resnet2d.h,
// shared with the U-Net, here without time embedding, eps 1e-6), a mid
// block with one single-head attention, Downsample2D(padding=0) in the
// encoder and Upsample2D in the decoder.
//
// encode: conv_in, down blocks, mid, GroupNorm+SiLU, conv_out (2*latent:
// [mean | logvar]), quant_conv; latent_dist.mode() is the mean, so only the
// mean rows of the last 1x1 conv (quant_conv, or conv_out without it) are
// uploaded and computed.
// decode: post_quant_conv, conv_in, mid, up blocks, GroupNorm+SiLU,
// conv_out -> 3 channels, not clamped.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/vae_internal.h"

// diffusers Encoder/Decoder pass resnet_eps=1e-6 to every block and use it
// for conv_norm_out and the attention's GroupNorm too.
static const float k_eps = 1e-6f;

enum { MAX_CHANNELS = 1 << 16, MAX_LAYERS = 64 };

// A list-of-strings key whose every entry must be `want`, with n entries.
static enum hsd_status require_blocks(json_t *root, const char *label, const char *key,
                                      const char *want, int n) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        // diffusers' default is a single block of that type.
        if (n == 1) return HSD_OK;
        return hsd_fail(HSD_ERR_FORMAT, "%s: config key '%s' missing (block_out_channels has %d "
                        "entries)", label, key, n);
    }
    if (!json_is_array(v) || (int)json_array_size(v) != n)
        return hsd_fail(HSD_ERR_FORMAT,
                        "%s: config key '%s': expected a list of %d block names (one per "
                        "block_out_channels entry)",
                        label, key, n);
    for (int i = 0; i < n; i++) {
        json_t *e = json_array_get(v, (size_t)i);
        if (!json_is_string(e) || strcmp(json_string_value(e), want))
            return hsd_fail(HSD_ERR_UNSUPPORTED,
                            "%s: config key '%s'[%d]: block type \"%.100s\" is not supported "
                            "(supported: %s)",
                            label, key, i, json_is_string(e) ? json_string_value(e) : "?", want);
    }
    return HSD_OK;
}

enum hsd_status hsd_vae_kl_config(struct hsd_vae *v, json_t *root, const char *label) {
    struct vae_kl *k = &v->m.kl;
    enum hsd_status s;
    // Defaults of AutoencoderKL.__init__ (diffusers 0.42).
    k->n_levels = 1;
    k->boc[0] = 64;
    k->layers_per_block = 1;
    k->groups = 32;
    k->latent = 4;
    k->use_quant_conv = k->use_post_quant_conv = k->mid_attn = 1;
    v->scaling_factor = 0.18215f;
    v->shift_factor = 0.0f;  // None: the pipelines skip the shift
    if ((s = hsd_cfg_int_list(root, label, "block_out_channels", VAE_MAX_LEVELS, 1,
                                  MAX_CHANNELS, k->boc, &k->n_levels)))
        return s;
    if ((s = require_blocks(root, label, "down_block_types", "DownEncoderBlock2D", k->n_levels)))
        return s;
    if ((s = require_blocks(root, label, "up_block_types", "UpDecoderBlock2D", k->n_levels)))
        return s;
    if ((s = hsd_cfg_int(root, label, "layers_per_block", 1, MAX_LAYERS,
                             &k->layers_per_block)))
        return s;
    if ((s = hsd_cfg_int(root, label, "norm_num_groups", 1, MAX_CHANNELS, &k->groups)))
        return s;
    if ((s = hsd_cfg_int(root, label, "latent_channels", 1, 1024, &k->latent))) return s;
    int c3 = 3;
    if ((s = hsd_cfg_int(root, label, "in_channels", 1, 1024, &c3))) return s;
    if (c3 != 3)
        return hsd_fail(HSD_ERR_UNSUPPORTED, "%s: config key 'in_channels': %d image channels "
                        "(only RGB, 3, is supported)", label, c3);
    if ((s = hsd_cfg_int(root, label, "out_channels", 1, 1024, &c3))) return s;
    if (c3 != 3)
        return hsd_fail(HSD_ERR_UNSUPPORTED, "%s: config key 'out_channels': %d image channels "
                        "(only RGB, 3, is supported)", label, c3);
    if ((s = hsd_vae_cfg_require_str(root, label, "act_fn", "silu"))) return s;
    if ((s = hsd_cfg_float(root, label, "scaling_factor", &v->scaling_factor))) return s;
    if ((s = hsd_cfg_float(root, label, "shift_factor", &v->shift_factor))) return s;
    if ((s = hsd_cfg_bool(root, label, "use_quant_conv", &k->use_quant_conv))) return s;
    if ((s = hsd_cfg_bool(root, label, "use_post_quant_conv", &k->use_post_quant_conv)))
        return s;
    if ((s = hsd_cfg_bool(root, label, "mid_block_add_attention", &k->mid_attn))) return s;
    // Per-channel latent statistics (SDXL-class configs) are applied by the
    // pipeline, which this API does not expose: refuse rather than let a
    // caller decode with the wrong normalisation. force_upcast and
    // sample_size (tiling) do not change vae.decode/encode on fp32 CPU.
    static const char *const must_be_null[] = {"latents_mean", "latents_std"};
    for (size_t i = 0; i < sizeof must_be_null / sizeof must_be_null[0]; i++) {
        json_t *x = json_object_get(root, must_be_null[i]);
        if (x && !json_is_null(x))
            return hsd_fail(HSD_ERR_UNSUPPORTED,
                            "%s: config key '%s': per-channel latent statistics are not "
                            "supported (only scaling_factor/shift_factor)",
                            label, must_be_null[i]);
    }
    for (int i = 0; i < k->n_levels; i++)
        if (k->boc[i] % k->groups)
            return hsd_fail(HSD_ERR_FORMAT,
                            "%s: block_out_channels[%d] = %d is not divisible by "
                            "norm_num_groups = %d",
                            label, i, k->boc[i], k->groups);
    v->latent_channels = k->latent;
    v->scale = 1 << (k->n_levels - 1);
    return HSD_OK;
}

// ---- weights ----------------------------------------------------------------

// fetch + upload of the first `rows` rows (output channels) only.
static enum hsd_status get_rows(struct hsd_loader *ld, void **dst, int ndim, int64_t *dims,
                                int conv, int64_t rows, const char *name) {
    const float *host;
    enum hsd_status s = hsd_loader_fetch(ld, name, ndim, dims, conv, &host);
    *dst = NULL;
    if (s || !host) return s;
    size_t count = (size_t)rows;
    for (int i = 1; i < ndim; i++) count *= (size_t)dims[i];
    return hsd_loader_upload(ld, dst, host, count);
}

// Attention weights: diffusers names (to_q, ...) or the pre-0.14 names that
// diffusers still converts on load (query, key, value, proj_attn;
// modeling_utils _fix_state_dict_keys_on_load). 1x1-conv shaped [c, c, 1,
// 1] copies (from LDM conversions) hold the same numbers as [c, c].
static const char *attn_name(const struct hsd_loader *ld, char *buf, size_t cap, const char *pre,
                             const char *part, const char *leaf) {
    static const char *const parts[4][2] = {
        {"to_q", "query"}, {"to_k", "key"}, {"to_v", "value"}, {"to_out.0", "proj_attn"}};
    snprintf(buf, cap, "%s.%s.%s", pre, part, leaf);
    if (hsd_loader_has(ld, buf)) return buf;
    for (int i = 0; i < 4; i++)
        if (!strcmp(part, parts[i][0])) {
            char old[300];
            snprintf(old, sizeof old, "%s.%s.%s", pre, parts[i][1], leaf);
            if (hsd_loader_has(ld, old)) snprintf(buf, cap, "%s", old);
        }
    return buf;
}

static enum hsd_status build_attn(struct hsd_loader *ld, struct vae_attn *a, const char *pre,
                                  int c) {
    enum hsd_status s;
    char name[300];
    a->c = c;
    if ((s = hsd_loader_get(ld, &a->norm_g, 1, HSD_DIMS(c), 0, "%s.group_norm.weight", pre)))
        return s;
    if ((s = hsd_loader_get(ld, &a->norm_b, 1, HSD_DIMS(c), 0, "%s.group_norm.bias", pre)))
        return s;
    // q, k, v stacked as [q; k; v] rows (weights) and [q | k | v] (biases).
    static const char *const parts[3] = {"to_q", "to_k", "to_v"};
    char wn[3][300];
    for (int i = 0; i < 3; i++) attn_name(ld, wn[i], sizeof wn[i], pre, parts[i], "weight");
    a->qkv_w = a->qkv_b = NULL;
    if ((s = hsd_loader_get_stacked(ld, &a->qkv_w, 3, (const char *const[]){wn[0], wn[1], wn[2]},
                                    (const int64_t[]){c, c, c}, c)))
        return s;
    float *b = ld->be ? malloc(3 * (size_t)c * sizeof *b) : NULL;
    if (ld->be && !b) return hsd_fail(HSD_ERR_NOMEM, "out of memory packing %s", pre);
    for (int i = 0; i < 3 && !s; i++) {
        const float *host;
        s = hsd_loader_fetch(ld, attn_name(ld, name, sizeof name, pre, parts[i], "bias"), 1,
                             HSD_DIMS(c), 0, &host);
        if (!s && host) memcpy(b + (size_t)i * c, host, (size_t)c * sizeof *b);
    }
    if (!s && b) s = hsd_loader_upload(ld, &a->qkv_b, b, 3 * (size_t)c);
    free(b);
    if (s) return s;
    a->out_w = NULL;
    attn_name(ld, name, sizeof name, pre, "to_out.0", "weight");
    if ((s = hsd_loader_get_stacked(ld, &a->out_w, 1, (const char *const[]){name},
                                    (const int64_t[]){c}, c)))
        return s;
    return hsd_loader_get(ld, &a->out_b, 1, HSD_DIMS(c), 0, "%s",
                          attn_name(ld, name, sizeof name, pre, "to_out.0", "bias"));
}

static enum hsd_status build_mid(struct hsd_loader *ld, struct vae_mid *m, const char *pre,
                                 int c, int groups, int attn) {
    enum hsd_status s;
    char p[200];
    snprintf(p, sizeof p, "%s.resnets.0", pre);
    if ((s = hsd_resnet2d_build(ld, &m->res[0], p, c, c, 0, groups, 0))) return s;
    m->has_attn = attn;
    if (attn) {
        snprintf(p, sizeof p, "%s.attentions.0", pre);
        if ((s = build_attn(ld, &m->attn, p, c))) return s;
    }
    snprintf(p, sizeof p, "%s.resnets.1", pre);
    return hsd_resnet2d_build(ld, &m->res[1], p, c, c, 0, groups, 0);
}

static enum hsd_status build_level(struct hsd_loader *ld, struct vae_level *L, const char *pre,
                                   int n_res, int cin, int cout, int groups, const char *sampler) {
    enum hsd_status s;
    char p[200];
    L->n_res = n_res;
    L->res = calloc((size_t)n_res, sizeof *L->res);
    if (!L->res) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    for (int l = 0; l < n_res; l++) {
        snprintf(p, sizeof p, "%s.resnets.%d", pre, l);
        if ((s = hsd_resnet2d_build(ld, &L->res[l], p, l ? cout : cin, cout, 0, groups, 0)))
            return s;
    }
    L->c = cout;
    if (!sampler) return HSD_OK;
    if ((s = hsd_loader_get(ld, &L->sample_w, 4, HSD_DIMS(cout, cout, 3, 3), 1,
                            "%s.%s.0.conv.weight", pre, sampler)))
        return s;
    return hsd_loader_get(ld, &L->sample_b, 1, HSD_DIMS(cout), 0, "%s.%s.0.conv.bias", pre,
                          sampler);
}

enum hsd_status hsd_vae_kl_build(struct hsd_vae *v, struct hsd_loader *ld) {
    struct vae_kl *k = &v->m.kl;
    enum hsd_status s;
    int nb = k->n_levels, g = k->groups, L = k->latent, c0 = k->boc[0], cl = k->boc[nb - 1];
    char pre[160];

    // Encoder (vae.py Encoder, double_z=True).
    if ((s = hsd_loader_get(ld, &k->enc_conv_in_w, 4, HSD_DIMS(c0, 3, 3, 3), 1,
                            "encoder.conv_in.weight")))
        return s;
    if ((s = hsd_loader_get(ld, &k->enc_conv_in_b, 1, HSD_DIMS(c0), 0, "encoder.conv_in.bias")))
        return s;
    int c = c0;
    for (int i = 0; i < nb; i++) {
        snprintf(pre, sizeof pre, "encoder.down_blocks.%d", i);
        if ((s = build_level(ld, &k->down[i], pre, k->layers_per_block, c, k->boc[i], g,
                             i < nb - 1 ? "downsamplers" : NULL)))
            return s;
        c = k->boc[i];
    }
    if ((s = build_mid(ld, &k->enc_mid, "encoder.mid_block", cl, g, k->mid_attn))) return s;
    if ((s = hsd_loader_get(ld, &k->enc_norm_g, 1, HSD_DIMS(cl), 0,
                            "encoder.conv_norm_out.weight")))
        return s;
    if ((s = hsd_loader_get(ld, &k->enc_norm_b, 1, HSD_DIMS(cl), 0,
                            "encoder.conv_norm_out.bias")))
        return s;
    // Without quant_conv the mean is conv_out's first `latent` channels.
    k->enc_conv_out_co = k->use_quant_conv ? 2 * L : L;
    if ((s = get_rows(ld, &k->enc_conv_out_w, 4, HSD_DIMS(2 * L, cl, 3, 3), 1,
                      k->enc_conv_out_co, "encoder.conv_out.weight")))
        return s;
    if ((s = get_rows(ld, &k->enc_conv_out_b, 1, HSD_DIMS(2 * L), 0, k->enc_conv_out_co,
                      "encoder.conv_out.bias")))
        return s;
    if (k->use_quant_conv) {
        if ((s = get_rows(ld, &k->quant_w, 4, HSD_DIMS(2 * L, 2 * L, 1, 1), 1, L,
                          "quant_conv.weight")))
            return s;
        if ((s = get_rows(ld, &k->quant_b, 1, HSD_DIMS(2 * L), 0, L, "quant_conv.bias")))
            return s;
    }

    // Decoder (vae.py Decoder, norm_type "group").
    if (k->use_post_quant_conv) {
        if ((s = hsd_loader_get(ld, &k->post_quant_w, 4, HSD_DIMS(L, L, 1, 1), 1,
                                "post_quant_conv.weight")))
            return s;
        if ((s = hsd_loader_get(ld, &k->post_quant_b, 1, HSD_DIMS(L), 0, "post_quant_conv.bias")))
            return s;
    }
    if ((s = hsd_loader_get(ld, &k->dec_conv_in_w, 4, HSD_DIMS(cl, L, 3, 3), 1,
                            "decoder.conv_in.weight")))
        return s;
    if ((s = hsd_loader_get(ld, &k->dec_conv_in_b, 1, HSD_DIMS(cl), 0, "decoder.conv_in.bias")))
        return s;
    if ((s = build_mid(ld, &k->dec_mid, "decoder.mid_block", cl, g, k->mid_attn))) return s;
    c = cl;
    for (int i = 0; i < nb; i++) {
        int cout = k->boc[nb - 1 - i];  // reversed block_out_channels
        snprintf(pre, sizeof pre, "decoder.up_blocks.%d", i);
        if ((s = build_level(ld, &k->up[i], pre, k->layers_per_block + 1, c, cout, g,
                             i < nb - 1 ? "upsamplers" : NULL)))
            return s;
        c = cout;
    }
    if ((s = hsd_loader_get(ld, &k->dec_norm_g, 1, HSD_DIMS(c0), 0,
                            "decoder.conv_norm_out.weight")))
        return s;
    if ((s = hsd_loader_get(ld, &k->dec_norm_b, 1, HSD_DIMS(c0), 0,
                            "decoder.conv_norm_out.bias")))
        return s;
    if ((s = hsd_loader_get(ld, &k->dec_conv_out_w, 4, HSD_DIMS(3, c0, 3, 3), 1,
                            "decoder.conv_out.weight")))
        return s;
    return hsd_loader_get(ld, &k->dec_conv_out_b, 1, HSD_DIMS(3), 0, "decoder.conv_out.bias");
}

void hsd_vae_kl_free(struct hsd_vae *v) {
    for (int i = 0; i < VAE_MAX_LEVELS; i++) {
        free(v->m.kl.down[i].res);
        free(v->m.kl.up[i].res);
    }
}

// ---- forward ----------------------------------------------------------------

// UNetMidBlock2D attention (AttnProcessor2_0 on a 4-D input): tokens are
// the NHWC pixels; q, k, v from one GEMM with biases; one head, scale
// 1/sqrt(c); to_out with its bias and the residual fused.
static enum hsd_status attn_forward(struct vae_fwd *f, void *out, const void *x,
                                    const struct vae_attn *a, int n, int hw, int groups) {
    enum hsd_status s;
    int c = a->c, m = n * hw;
    size_t mark = f->a.used;
    void *nrm = hsd_fwd_act(&f->a, (size_t)m * c);
    if ((s = hsd_fwd_gnorm(&f->a, nrm, x, a->norm_g, a->norm_b, n, hw, c, groups, k_eps, 0)))
        return s;
    void *qkv = hsd_fwd_act(&f->a, (size_t)m * 3 * c);
    if ((s = hsd_fwd_linear(&f->a, qkv, nrm, a->qkv_w, a->qkv_b, NULL, m, c, 3 * c))) return s;
    void *o = nrm;  // the normed input is dead once q, k, v exist
    struct hsd_attention_params p = {
        .out = o, .q = qkv, .k = hsd_fwd_off(&f->a, qkv, (size_t)c),
        .v = hsd_fwd_off(&f->a, qkv, 2 * (size_t)c), .n = n, .heads = 1, .d = c, .t_q = hw,
        .t_kv = hw, .ldq = 3 * c, .ldk = 3 * c, .ldv = 3 * c, .ldo = c,
        .scale = 1.0f / sqrtf((float)c)};
    f->a.flops += 4.0 * n * (double)hw * hw * c;
    HSD_FWD_RUN(&f->a, attention, &p);
    if ((s = hsd_fwd_linear(&f->a, out, o, a->out_w, a->out_b, x, m, c, c))) return s;
    f->a.used = mark;
    return HSD_OK;
}

// UNetMidBlock2D.forward: resnet, attention, resnet; in place on x.
static enum hsd_status mid_forward(struct vae_fwd *f, void *x, const struct vae_mid *m, int n,
                                   int h, int w, int groups) {
    enum hsd_status s;
    if ((s = hsd_resnet2d_forward(&f->a, x, x, NULL, &m->res[0], n, h, w, groups, k_eps)))
        return s;
    if (m->has_attn && (s = attn_forward(f, x, x, &m->attn, n, h * w, groups))) return s;
    return hsd_resnet2d_forward(&f->a, x, x, NULL, &m->res[1], n, h, w, groups, k_eps);
}

// Memory: no skip connections, so a pass lives in two buffers of the
// largest activation it keeps between blocks, `cur` and `other`: ResNets
// and the mid block run in place on `cur` (their input is consumed before
// their last conv writes), down/upsamplers and the output head write
// `other` and the two swap. Block temporaries go above both and are
// released per block. SD's VAE at 512^2 (decoder: 256 channels at 512^2)
// then needs 2 x 268 MB plus one ResNet's temporaries per image.

// Largest kept activation of a pass, in elements.
static size_t max_act(const struct vae_kl *k, int encode, int n, int h, int w) {
    int nb = k->n_levels;
    size_t hw = (size_t)h * w, m = 0;
#define KEEP(c) m = (size_t)(c) * hw > m ? (size_t)(c) * hw : m
    if (encode) {
        int c = k->boc[0];
        KEEP(c);
        for (int i = 0; i < nb; i++) {
            KEEP(k->boc[i] > c ? k->boc[i] : c);
            c = k->boc[i];
            if (i < nb - 1) {
                h = (h + 1 - 3) / 2 + 1;
                w = (w + 1 - 3) / 2 + 1;
                hw = (size_t)h * w;
            }
        }
        KEEP(2 * k->latent);
    } else {
        int c = k->boc[nb - 1];
        KEEP(k->latent);
        KEEP(c);
        for (int i = 0; i < nb; i++) {
            int cout = k->boc[nb - 1 - i];
            KEEP(cout > c ? cout : c);
            c = cout;
            if (i < nb - 1) {
                hw *= 4;
                KEEP(c);
            }
        }
        KEEP(3);
    }
#undef KEEP
    return m * (size_t)n;
}

static void swap(void **a, void **b) {
    void *t = *a;
    *a = *b;
    *b = t;
}

enum hsd_status hsd_vae_kl_encode(struct vae_fwd *f, void **y, const void *x, int n, int h,
                                  int w) {
    const struct vae_kl *k = &f->v->m.kl;
    enum hsd_status s;
    int g = k->groups, c = k->boc[0];
    size_t cap = max_act(k, 1, n, h, w);
    void *cur = hsd_fwd_act(&f->a, cap), *other = hsd_fwd_act(&f->a, cap);
    if ((s = hsd_fwd_conv(&f->a, cur, x, k->enc_conv_in_w, k->enc_conv_in_b, NULL, n, h, w, 3, c,
                          3, 1)))
        return s;
    for (int i = 0; i < k->n_levels; i++) {
        const struct vae_level *L = &k->down[i];
        for (int l = 0; l < L->n_res; l++)
            if ((s = hsd_resnet2d_forward(&f->a, cur, cur, NULL, &L->res[l], n, h, w, g, k_eps)))
                return s;
        c = L->c;
        if (L->sample_w) {
            // Downsample2D(padding=0): F.pad(x, (0, 1, 0, 1)) then a 3x3
            // stride-2 conv without padding.
            struct hsd_conv2d_params p = {.out = other, .in = cur, .weight = L->sample_w,
                                          .bias = L->sample_b, .n = n, .h = h, .w = w, .ci = c,
                                          .co = c, .kh = 3, .kw = 3, .stride = 2, .pad = 0,
                                          .pad_bottom = 1, .pad_right = 1};
            if ((s = hsd_fwd_conv2d(&f->a, &p))) return s;
            swap(&cur, &other);
            h = (h + 1 - 3) / 2 + 1;
            w = (w + 1 - 3) / 2 + 1;
        }
    }
    if ((s = mid_forward(f, cur, &k->enc_mid, n, h, w, g))) return s;
    hsd_vae_probe(f, "enc.mid", cur, n, h, w, c);
    if ((s = hsd_fwd_gnorm(&f->a, other, cur, k->enc_norm_g, k->enc_norm_b, n, h * w, c, g, k_eps,
                           1)))
        return s;
    int co = k->enc_conv_out_co;
    if ((s = hsd_fwd_conv(&f->a, cur, other, k->enc_conv_out_w, k->enc_conv_out_b, NULL, n, h, w,
                          c, co, 3, 1)))
        return s;
    if (k->use_quant_conv) {
        if ((s = hsd_fwd_linear(&f->a, other, cur, k->quant_w, k->quant_b, NULL, n * h * w, co,
                                k->latent)))
            return s;
        swap(&cur, &other);
    }
    *y = cur;  // the mean: quant_conv's (or conv_out's) first latent channels
    return HSD_OK;
}

// Memory: one buffer of the largest kept activation (cur) for the whole
// decode; the resampling input and the final norm's output are taken
// above it only while they live, so the ResNets' temporaries reuse that
// space. Two cap-sized ping-pong buffers (the encoder's way) held the idle
// one through every ResNet: at 1024^2 the 256-channel map upsampled to
// 1024^2 is 1 GiB, and the planned arena was 3584 MB; this way 2560 MB
// (896 -> 640 MB at 512^2; bench/RESULTS.md "VAE decode at 1024^2"). Exact:
// the same ops on the same values, only other addresses.
enum hsd_status hsd_vae_kl_decode(struct vae_fwd *f, void **y, const void *x, int n, int h,
                                  int w) {
    const struct vae_kl *k = &f->v->m.kl;
    enum hsd_status s;
    int g = k->groups, nb = k->n_levels, L = k->latent, c = k->boc[nb - 1];
    void *cur = hsd_fwd_act(&f->a, max_act(k, 0, n, h, w));
    size_t mark = f->a.used;
    const void *z = x;
    if (k->post_quant_w) {
        void *t = hsd_fwd_act(&f->a, (size_t)n * h * w * L);
        if ((s = hsd_fwd_linear(&f->a, t, x, k->post_quant_w, k->post_quant_b, NULL,
                                n * h * w, L, L)))
            return s;
        z = t;
    }
    if ((s = hsd_fwd_conv(&f->a, cur, z, k->dec_conv_in_w, k->dec_conv_in_b, NULL, n, h, w, L, c,
                          3, 1)))
        return s;
    f->a.used = mark;
    hsd_vae_probe(f, "dec.conv_in", cur, n, h, w, c);
    if ((s = mid_forward(f, cur, &k->dec_mid, n, h, w, g))) return s;
    hsd_vae_probe(f, "dec.mid", cur, n, h, w, c);
    for (int i = 0; i < nb; i++) {
        const struct vae_level *Lv = &k->up[i];
        for (int l = 0; l < Lv->n_res; l++)
            if ((s = hsd_resnet2d_forward(&f->a, cur, cur, NULL, &Lv->res[l], n, h, w, g,
                                          k_eps)))
                return s;
        c = Lv->c;
        if (Lv->sample_w) {
            // Upsample2D: nearest x2 (F.interpolate) then a 3x3 conv.
            void *up_out = hsd_fwd_act(&f->a, (size_t)n * 4 * h * w * c);
            struct hsd_upsample_params up = {.out = up_out, .in = cur, .n = n, .h = h, .w = w,
                                             .c = c};
            HSD_FWD_RUN(&f->a, upsample_nearest2x, &up);
            h *= 2;
            w *= 2;
            if ((s = hsd_fwd_conv(&f->a, cur, up_out, Lv->sample_w, Lv->sample_b, NULL, n, h, w,
                                  c, c, 3, 1)))
                return s;
            f->a.used = mark;
        }
    }
    void *normed = hsd_fwd_act(&f->a, (size_t)n * h * w * c);
    if ((s = hsd_fwd_gnorm(&f->a, normed, cur, k->dec_norm_g, k->dec_norm_b, n, h * w, c, g,
                           k_eps, 1)))
        return s;
    if ((s = hsd_fwd_conv(&f->a, cur, normed, k->dec_conv_out_w, k->dec_conv_out_b, NULL, n, h,
                          w, c, 3, 3, 1)))
        return s;
    f->a.used = mark;
    *y = cur;
    return HSD_OK;
}
