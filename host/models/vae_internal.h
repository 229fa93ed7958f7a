// Private structure of the VAEs shared by vae.c (loading, staging, arena
// planning), vae_kl.c (AutoencoderKL) and vae_tiny.c (AutoencoderTiny).
// Field names follow the diffusers modules.
#ifndef HSD_MODELS_VAE_INTERNAL_H
#define HSD_MODELS_VAE_INTERNAL_H

#include <jansson.h>

#include "io/config_json.h"

#include "models/fwd.h"
#include "models/loader.h"
#include "models/resnet2d.h"
#include "models/vae.h"

#define VAE_MAX_LEVELS 8

// diffusers attention_processor.py Attention as UNetMidBlock2D builds it
// for the VAE (_from_deprecated_attn_block): GroupNorm, one head of width
// c over the h*w tokens, q/k/v/out with biases, residual added,
// rescale_output_factor 1. q/k/v packed at load so one GEMM makes them.
struct vae_attn {
    int c;
    void *norm_g, *norm_b;        // [c], eps 1e-6, norm_num_groups groups
    void *qkv_w, *qkv_b;          // [3c, c], [3c]
    void *out_w, *out_b;          // [c, c], [c]
};

// diffusers unet_2d_blocks.py UNetMidBlock2D(num_layers=1): resnet,
// (attention), resnet.
struct vae_mid {
    struct hsd_resnet2d res[2];
    int has_attn;
    struct vae_attn attn;
};

// DownEncoderBlock2D / UpDecoderBlock2D: resnets, then an optional
// Downsample2D(padding=0) / Upsample2D(use_conv) conv [c, 3, 3, c].
struct vae_level {
    int n_res;
    struct hsd_resnet2d *res;
    void *sample_w, *sample_b;    // NULL on the last level
    int c;
};

// AutoencoderKL (diffusers autoencoder_kl.py) with its Encoder and
// Decoder (autoencoders/vae.py).
struct vae_kl {
    int n_levels, layers_per_block, groups, latent;
    int boc[VAE_MAX_LEVELS];      // block_out_channels
    int use_quant_conv, use_post_quant_conv, mid_attn;
    // Encoder.
    void *enc_conv_in_w, *enc_conv_in_b;
    struct vae_level down[VAE_MAX_LEVELS];
    struct vae_mid enc_mid;
    void *enc_norm_g, *enc_norm_b;
    // conv_out [co, 3, 3, c]: co = 2*latent, or latent (only the mean half
    // is ever used) without quant_conv.
    void *enc_conv_out_w, *enc_conv_out_b;
    int enc_conv_out_co;
    void *quant_w, *quant_b;      // mean rows of quant_conv: [latent, 2*latent], [latent]
    // Decoder.
    void *post_quant_w, *post_quant_b;  // [latent, latent], [latent] or NULL
    void *dec_conv_in_w, *dec_conv_in_b;
    struct vae_mid dec_mid;
    struct vae_level up[VAE_MAX_LEVELS];
    void *dec_norm_g, *dec_norm_b, *dec_conv_out_w, *dec_conv_out_b;
};

// diffusers unet_2d_blocks.py AutoencoderTinyBlock with in == out
// channels (always so in EncoderTiny/DecoderTiny): three 3x3 convs with
// ReLU between, identity skip, ReLU after the sum.
struct tiny_block {
    void *w[3], *b[3];            // conv.0, conv.2, conv.4: [c, 3, 3, c], [c]
};

// One stage of EncoderTiny / DecoderTiny: its conv (encoder: before the
// blocks, stride 2 without bias after stage 0; decoder: after the blocks
// and the upsample, without bias except the last) and its blocks.
struct tiny_stage {
    int c, n_blocks;
    struct tiny_block *blocks;
    void *conv_w, *conv_b;        // conv_b NULL where diffusers has bias=False
};

// AutoencoderTiny (diffusers autoencoder_tiny.py, vae.py EncoderTiny /
// DecoderTiny).
struct vae_tiny {
    int n_enc, n_dec, latent;
    struct tiny_stage enc[VAE_MAX_LEVELS], dec[VAE_MAX_LEVELS];
    void *enc_out_w, *enc_out_b;  // last encoder conv: [latent, 3, 3, c], [latent]
    void *dec_in_w, *dec_in_b;    // first decoder conv: [c, 3, 3, latent], [c]
};

struct hsd_vae;

struct vae_fwd {
    struct hsd_fwd a;
    struct hsd_vae *v;
};

struct hsd_vae {
    enum hsd_vae_kind kind;
    struct hsd_backend *be;
    char path[4200];              // weights file, for messages
    int latent_channels, scale;
    float scaling_factor, shift_factor;
    // Host-side affine maps around the network (TAESD's [-1, 1] <-> [0, 1]
    // conversions): x' = x * mul + add while staging NCHW <-> NHWC.
    float enc_in_mul, enc_in_add, dec_out_mul, dec_out_add;
    union {
        struct vae_kl kl;
        struct vae_tiny tiny;
    } m;
    struct hsd_bufs bufs;

    // Activation arena, sized for every shape planned so far; the last
    // planned (n, h, w) per direction (0 decode, 1 encode).
    void *arena;
    size_t arena_cap;
    int plan_n[2], plan_h[2], plan_w[2];
    float *host_io;               // NCHW <-> NHWC staging
    size_t host_io_cap;

    hsd_vae_probe_fn probe;
    void *probe_user;
};

// Per kind: config.json (already parsed) -> fields of v; weights -> buffers.
enum hsd_status hsd_vae_kl_config(struct hsd_vae *v, json_t *root, const char *label);
// From the shapes of an SD single file's VAE (vae_kl_infer.c).
enum hsd_status hsd_vae_kl_config_infer(struct hsd_vae *v, const struct hsd_weights *w);
enum hsd_status hsd_vae_kl_build(struct hsd_vae *v, struct hsd_loader *ld);
void hsd_vae_kl_free(struct hsd_vae *v);
// x [n, h, w, c_in] -> *y (arena) [n, h', w', c_out] (NHWC).
enum hsd_status hsd_vae_kl_decode(struct vae_fwd *f, void **y, const void *x, int n, int h,
                                  int w);
enum hsd_status hsd_vae_kl_encode(struct vae_fwd *f, void **y, const void *x, int n, int h,
                                  int w);

enum hsd_status hsd_vae_tiny_config(struct hsd_vae *v, json_t *root, const char *label);
enum hsd_status hsd_vae_tiny_build(struct hsd_vae *v, struct hsd_loader *ld);
void hsd_vae_tiny_free(struct hsd_vae *v);
enum hsd_status hsd_vae_tiny_decode(struct vae_fwd *f, void **y, const void *x, int n, int h,
                                    int w);
enum hsd_status hsd_vae_tiny_encode(struct vae_fwd *f, void **y, const void *x, int n, int h,
                                    int w);

// config.json helpers: io/config_json.h (diffusers ConfigMixin semantics:
// absent or null keeps the __init__ default), and:
// A string key that must be absent, null or `ok`.
enum hsd_status hsd_vae_cfg_require_str(json_t *root, const char *label, const char *key,
                                        const char *ok);

// Calls the probe (outside planning) with an NHWC backend map.
void hsd_vae_probe(struct vae_fwd *f, const char *name, const void *buf, int n, int h, int w,
                   int c);

#endif
