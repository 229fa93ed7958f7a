// AutoencoderTiny (TAESD; diffusers models/autoencoders/autoencoder_tiny.py
// with EncoderTiny / DecoderTiny from autoencoders/vae.py and
// AutoencoderTinyBlock from unets/unet_2d_blocks.py): config, weights and
// forward on backend ops, NHWC throughout.
//
// decode (DecoderTiny.forward): tanh(x / 3) * 3, conv + ReLU, then per
// stage: blocks, nearest x2 upsample (not after the last), a 3x3 conv
// (bias only on the last, which gives the 3 output channels); the output
// maps [0, 1] to [-1, 1] (x * 2 - 1, applied while unstaging, vae.c).
// AutoencoderTiny.decode returns that, unclamped.
// encode (EncoderTiny.forward): input maps [-1, 1] to [0, 1] ((x + 1) / 2,
// while staging); per stage a 3x3 conv (stage 0 with bias; later ones
// stride 2 without bias), its blocks; a last conv to latent channels.
// AutoencoderTiny.encode returns those raw latents: scale_latents /
// unscale_latents and the uint8 rounding belong to forward() only.
//
// Weights are the nn.Sequential "layers" of each: parameter-free modules
// (ReLU, Upsample) take an index too, which the name walk below mirrors.
#include <stdio.h>
#include <stdlib.h>

#include "models/vae_internal.h"

enum { MAX_CHANNELS = 1 << 16, MAX_BLOCKS = 64 };

// Every stage of one side must have the same width: a stage's first conv
// (encoder) or its blocks (decoder) take the previous stage's width as
// their own, so diffusers itself cannot run anything else.
static enum hsd_status same_widths(const int *c, int n, const char *label, const char *key,
                                   const char *module) {
    for (int i = 1; i < n; i++)
        if (c[i] != c[0])
            return hsd_fail(HSD_ERR_UNSUPPORTED,
                            "%s: config key '%s': stage %d width %d differs from stage 0's %d "
                            "(diffusers' %s cannot run such a model)",
                            label, key, i, c[i], c[0], module);
    return HSD_OK;
}

enum hsd_status hsd_vae_tiny_config(struct hsd_vae *v, json_t *root, const char *label) {
    struct vae_tiny *t = &v->m.tiny;
    enum hsd_status s;
    // Defaults of AutoencoderTiny.__init__ (diffusers 0.42).
    int enc_c[VAE_MAX_LEVELS] = {64, 64, 64, 64}, dec_c[VAE_MAX_LEVELS] = {64, 64, 64, 64};
    int enc_b[VAE_MAX_LEVELS] = {1, 3, 3, 3}, dec_b[VAE_MAX_LEVELS] = {3, 3, 3, 1};
    int n_ec = 4, n_dc = 4, n_eb = 4, n_db = 4;
    t->latent = 4;
    v->scaling_factor = 1.0f;
    v->shift_factor = 0.0f;
    if ((s = hsd_cfg_int_list(root, label, "encoder_block_out_channels", VAE_MAX_LEVELS, 1,
                                  MAX_CHANNELS, enc_c, &n_ec)))
        return s;
    if ((s = hsd_cfg_int_list(root, label, "decoder_block_out_channels", VAE_MAX_LEVELS, 1,
                                  MAX_CHANNELS, dec_c, &n_dc)))
        return s;
    if ((s = hsd_cfg_int_list(root, label, "num_encoder_blocks", VAE_MAX_LEVELS, 0,
                                  MAX_BLOCKS, enc_b, &n_eb)))
        return s;
    if ((s = hsd_cfg_int_list(root, label, "num_decoder_blocks", VAE_MAX_LEVELS, 0,
                                  MAX_BLOCKS, dec_b, &n_db)))
        return s;
    // diffusers raises for these too.
    if (n_ec != n_eb)
        return hsd_fail(HSD_ERR_FORMAT, "%s: config keys 'encoder_block_out_channels' (%d) and "
                        "'num_encoder_blocks' (%d) differ in length", label, n_ec, n_eb);
    if (n_dc != n_db)
        return hsd_fail(HSD_ERR_FORMAT, "%s: config keys 'decoder_block_out_channels' (%d) and "
                        "'num_decoder_blocks' (%d) differ in length", label, n_dc, n_db);
    if ((s = same_widths(enc_c, n_ec, label, "encoder_block_out_channels", "EncoderTiny")))
        return s;
    if ((s = same_widths(dec_c, n_dc, label, "decoder_block_out_channels", "DecoderTiny")))
        return s;
    if ((s = hsd_cfg_int(root, label, "latent_channels", 1, 1024, &t->latent))) return s;
    int x = 3;
    if ((s = hsd_cfg_int(root, label, "in_channels", 1, 1024, &x))) return s;
    if (x != 3)
        return hsd_fail(HSD_ERR_UNSUPPORTED, "%s: config key 'in_channels': %d image channels "
                        "(only RGB, 3, is supported)", label, x);
    if ((s = hsd_cfg_int(root, label, "out_channels", 1, 1024, &x))) return s;
    if (x != 3)
        return hsd_fail(HSD_ERR_UNSUPPORTED, "%s: config key 'out_channels': %d image channels "
                        "(only RGB, 3, is supported)", label, x);
    x = 2;
    if ((s = hsd_cfg_int(root, label, "upsampling_scaling_factor", 1, 64, &x))) return s;
    if (x != 2)
        return hsd_fail(HSD_ERR_UNSUPPORTED, "%s: config key 'upsampling_scaling_factor': %d "
                        "(only 2 is supported)", label, x);
    if ((s = hsd_vae_cfg_require_str(root, label, "act_fn", "relu"))) return s;
    if ((s = hsd_vae_cfg_require_str(root, label, "upsample_fn", "nearest"))) return s;
    if ((s = hsd_cfg_float(root, label, "scaling_factor", &v->scaling_factor))) return s;
    if ((s = hsd_cfg_float(root, label, "shift_factor", &v->shift_factor))) return s;
    // latent_magnitude / latent_shift only serve forward()'s uint8 round
    // trip; force_upcast does not change fp32 CPU results.
    if (n_ec != n_dc)
        return hsd_fail(HSD_ERR_UNSUPPORTED,
                        "%s: encoder (%d stages, scale %d) and decoder (%d stages, scale %d) "
                        "disagree on the latent scale",
                        label, n_ec, 1 << (n_ec - 1), n_dc, 1 << (n_dc - 1));
    t->n_enc = n_ec;
    t->n_dec = n_dc;
    for (int i = 0; i < n_ec; i++) {
        t->enc[i].c = enc_c[i];
        t->enc[i].n_blocks = enc_b[i];
    }
    for (int i = 0; i < n_dc; i++) {
        t->dec[i].c = dec_c[i];
        t->dec[i].n_blocks = dec_b[i];
    }
    v->latent_channels = t->latent;
    v->scale = 1 << (n_dc - 1);
    // EncoderTiny: x.add(1).div(2); DecoderTiny: x.mul(2).sub(1). In fp32
    // x * 0.5 + 0.5 and x * 2 - 1 round exactly as those do (the power-of-
    // two scaling is exact, one rounding in the add).
    v->enc_in_mul = 0.5f;
    v->enc_in_add = 0.5f;
    v->dec_out_mul = 2.0f;
    v->dec_out_add = -1.0f;
    return HSD_OK;
}

// ---- weights ----------------------------------------------------------------

static enum hsd_status build_blocks(struct hsd_loader *ld, struct tiny_stage *st,
                                    const char *side, int *idx) {
    enum hsd_status s;
    int c = st->c;
    if (!st->n_blocks) return HSD_OK;
    st->blocks = calloc((size_t)st->n_blocks, sizeof *st->blocks);
    if (!st->blocks) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    for (int b = 0; b < st->n_blocks; b++, (*idx)++) {
        struct tiny_block *k = &st->blocks[b];
        for (int j = 0; j < 3; j++) {  // conv.0, conv.2, conv.4 (ReLUs between)
            if ((s = hsd_loader_get(ld, &k->w[j], 4, HSD_DIMS(c, c, 3, 3), 1,
                                    "%s.layers.%d.conv.%d.weight", side, *idx, 2 * j)))
                return s;
            if ((s = hsd_loader_get(ld, &k->b[j], 1, HSD_DIMS(c), 0, "%s.layers.%d.conv.%d.bias",
                                    side, *idx, 2 * j)))
                return s;
        }
    }
    return HSD_OK;
}

enum hsd_status hsd_vae_tiny_build(struct hsd_vae *v, struct hsd_loader *ld) {
    struct vae_tiny *t = &v->m.tiny;
    enum hsd_status s;
    int L = t->latent, idx = 0;

    // EncoderTiny.layers.
    for (int i = 0; i < t->n_enc; i++) {
        struct tiny_stage *st = &t->enc[i];
        int c = st->c;
        if ((s = hsd_loader_get(ld, &st->conv_w, 4, HSD_DIMS(c, i ? c : 3, 3, 3), 1,
                                "encoder.layers.%d.weight", idx)))
            return s;
        st->conv_b = NULL;
        if (i == 0 && (s = hsd_loader_get(ld, &st->conv_b, 1, HSD_DIMS(c), 0,
                                          "encoder.layers.%d.bias", idx)))
            return s;
        idx++;
        if ((s = build_blocks(ld, st, "encoder", &idx))) return s;
    }
    int ce = t->enc[t->n_enc - 1].c;
    if ((s = hsd_loader_get(ld, &t->enc_out_w, 4, HSD_DIMS(L, ce, 3, 3), 1,
                            "encoder.layers.%d.weight", idx)))
        return s;
    if ((s = hsd_loader_get(ld, &t->enc_out_b, 1, HSD_DIMS(L), 0, "encoder.layers.%d.bias", idx)))
        return s;

    // DecoderTiny.layers: conv (0), ReLU (1), then per stage blocks,
    // Upsample (not on the last stage), conv.
    int c0 = t->dec[0].c;
    if ((s = hsd_loader_get(ld, &t->dec_in_w, 4, HSD_DIMS(c0, L, 3, 3), 1,
                            "decoder.layers.0.weight")))
        return s;
    if ((s = hsd_loader_get(ld, &t->dec_in_b, 1, HSD_DIMS(c0), 0, "decoder.layers.0.bias")))
        return s;
    idx = 2;
    for (int i = 0; i < t->n_dec; i++) {
        struct tiny_stage *st = &t->dec[i];
        int c = st->c, last = i == t->n_dec - 1;
        if ((s = build_blocks(ld, st, "decoder", &idx))) return s;
        if (!last) idx++;  // nn.Upsample
        if ((s = hsd_loader_get(ld, &st->conv_w, 4, HSD_DIMS(last ? 3 : c, c, 3, 3), 1,
                                "decoder.layers.%d.weight", idx)))
            return s;
        st->conv_b = NULL;
        if (last && (s = hsd_loader_get(ld, &st->conv_b, 1, HSD_DIMS(3), 0,
                                        "decoder.layers.%d.bias", idx)))
            return s;
        idx++;
    }
    return HSD_OK;
}

void hsd_vae_tiny_free(struct hsd_vae *v) {
    for (int i = 0; i < VAE_MAX_LEVELS; i++) {
        free(v->m.tiny.enc[i].blocks);
        free(v->m.tiny.dec[i].blocks);
    }
}

// ---- forward ----------------------------------------------------------------

static enum hsd_status relu(struct vae_fwd *f, void *x, size_t count) {
    struct hsd_eltwise_params p = {.out = x, .a = x, .count = count};
    HSD_FWD_RUN(&f->a, relu, &p);
    return HSD_OK;
}

// AutoencoderTinyBlock.forward: relu(conv(x) + x) with conv = conv.0,
// ReLU, conv.2, ReLU, conv.4; in place on x (x is only read again as the
// residual of the last conv, which the conv op adds as it writes).
static enum hsd_status block_forward(struct vae_fwd *f, void *x, const struct tiny_block *k,
                                     int n, int h, int w, int c) {
    enum hsd_status s;
    size_t mark = f->a.used, count = (size_t)n * h * w * c;
    void *t1 = hsd_fwd_act(&f->a, count), *t2 = hsd_fwd_act(&f->a, count);
    if ((s = hsd_fwd_conv(&f->a, t1, x, k->w[0], k->b[0], NULL, n, h, w, c, c, 3, 1))) return s;
    if ((s = relu(f, t1, count))) return s;
    if ((s = hsd_fwd_conv(&f->a, t2, t1, k->w[1], k->b[1], NULL, n, h, w, c, c, 3, 1))) return s;
    if ((s = relu(f, t2, count))) return s;
    if ((s = hsd_fwd_conv(&f->a, x, t2, k->w[2], k->b[2], x, n, h, w, c, c, 3, 1))) return s;
    if ((s = relu(f, x, count))) return s;
    f->a.used = mark;
    return HSD_OK;
}

static enum hsd_status stage_blocks(struct vae_fwd *f, void *x, const struct tiny_stage *st,
                                    int n, int h, int w) {
    enum hsd_status s;
    for (int b = 0; b < st->n_blocks; b++)
        if ((s = block_forward(f, x, &st->blocks[b], n, h, w, st->c))) return s;
    return HSD_OK;
}

static void swap(void **a, void **b) {
    void *t = *a;
    *a = *b;
    *b = t;
}

static size_t max3(size_t a, size_t b, size_t c) {
    size_t m = a > b ? a : b;
    return m > c ? m : c;
}

// Memory as in vae_kl.c: two buffers of the largest kept activation (the
// full-resolution one: every stage has the same width), blocks in place,
// resampling convs swapping them, block temporaries above.
enum hsd_status hsd_vae_tiny_decode(struct vae_fwd *f, void **y, const void *x, int n, int h,
                                    int w) {
    const struct vae_tiny *t = &f->v->m.tiny;
    enum hsd_status s;
    int L = t->latent, c = t->dec[0].c, sc = f->v->scale;
    size_t cap = (size_t)n * h * w * sc * sc * max3((size_t)c, (size_t)L, 3);
    void *cur = hsd_fwd_act(&f->a, cap), *other = hsd_fwd_act(&f->a, cap);
    // Clamp: torch.tanh(x / 3) * 3.
    struct hsd_tanh_clamp_params cl = {.out = other, .in = x, .count = (size_t)n * h * w * L,
                                       .limit = 3.0f};
    HSD_FWD_RUN(&f->a, tanh_clamp, &cl);
    hsd_vae_probe(f, "dec.clamp", other, n, h, w, L);
    if ((s = hsd_fwd_conv(&f->a, cur, other, t->dec_in_w, t->dec_in_b, NULL, n, h, w, L, c, 3,
                          1)))
        return s;
    if ((s = relu(f, cur, (size_t)n * h * w * c))) return s;
    for (int i = 0; i < t->n_dec; i++) {
        const struct tiny_stage *st = &t->dec[i];
        if ((s = stage_blocks(f, cur, st, n, h, w))) return s;
        if (i < t->n_dec - 1) {
            // nn.Upsample(scale_factor=2, mode="nearest"), conv without bias.
            struct hsd_upsample_params up = {.out = other, .in = cur, .n = n, .h = h, .w = w,
                                             .c = st->c};
            HSD_FWD_RUN(&f->a, upsample_nearest2x, &up);
            h *= 2;
            w *= 2;
            if ((s = hsd_fwd_conv(&f->a, cur, other, st->conv_w, NULL, NULL, n, h, w, st->c,
                                  st->c, 3, 1)))
                return s;
        } else {
            if ((s = hsd_fwd_conv(&f->a, other, cur, st->conv_w, st->conv_b, NULL, n, h, w,
                                  st->c, 3, 3, 1)))
                return s;
            swap(&cur, &other);
        }
    }
    *y = cur;
    return HSD_OK;
}

enum hsd_status hsd_vae_tiny_encode(struct vae_fwd *f, void **y, const void *x, int n, int h,
                                    int w) {
    const struct vae_tiny *t = &f->v->m.tiny;
    enum hsd_status s;
    int c = t->enc[0].c, L = t->latent;
    size_t cap = (size_t)n * h * w * (size_t)(c > L ? c : L);
    void *cur = hsd_fwd_act(&f->a, cap), *other = hsd_fwd_act(&f->a, cap);
    for (int i = 0; i < t->n_enc; i++) {
        const struct tiny_stage *st = &t->enc[i];
        if (i == 0) {
            if ((s = hsd_fwd_conv(&f->a, cur, x, st->conv_w, st->conv_b, NULL, n, h, w, 3, c, 3,
                                  1)))
                return s;
        } else {
            // 3x3, padding 1, stride 2, no bias.
            if ((s = hsd_fwd_conv(&f->a, other, cur, st->conv_w, NULL, NULL, n, h, w, c, c, 3,
                                  2)))
                return s;
            swap(&cur, &other);
            h = (h - 1) / 2 + 1;
            w = (w - 1) / 2 + 1;
        }
        if ((s = stage_blocks(f, cur, st, n, h, w))) return s;
    }
    if ((s = hsd_fwd_conv(&f->a, other, cur, t->enc_out_w, t->enc_out_b, NULL, n, h, w, c, L, 3,
                          1)))
        return s;
    *y = other;
    return HSD_OK;
}
