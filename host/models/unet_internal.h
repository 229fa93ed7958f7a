// Private structure of the U-Net shared by unet_build.c (weights, shapes)
// and unet_forward.c (compute). Field names follow the diffusers modules.
#ifndef HSD_MODELS_UNET_INTERNAL_H
#define HSD_MODELS_UNET_INTERNAL_H

#include "models/loader.h"
#include "models/resnet2d.h"
#include "models/unet.h"

// ResnetBlock2D is models/resnet2d.h (shared with the VAE); weights load
// through models/loader.h and activations plan through models/fwd.h.

// diffusers attention_processor.py Attention; q/k/v packed at load so one
// GEMM makes them and the attention op reads heads with strides.
struct unet_attention {
    int dim, ctx_dim;             // query width, key/value source width
    int heads, head_dim;          // heads kept (pruned models keep fewer)
    int self;                     // 1: attn1 (k, v from hidden states)
    void *qkv_w;                  // self: [3*inner, dim]
    void *q_w, *kv_w;             // cross: [inner, dim], [2*inner, ctx_dim]
    void *out_w, *out_b;          // [dim, inner], [dim]
};

// diffusers attention.py BasicTransformerBlock (norm_type "layer_norm").
struct unet_tblock {
    void *norm1_g, *norm1_b, *norm2_g, *norm2_b, *norm3_g, *norm3_b;  // [dim]
    struct unet_attention attn1, attn2;
    int ff_inner;
    void *ff_in_w, *ff_in_b;      // [2*ff_inner, dim] GEGLU projection
    void *ff_out_w, *ff_out_b;    // [dim, ff_inner]
};

// diffusers transformer_2d.py Transformer2DModel (continuous input).
struct unet_transformer {
    int c, n_blocks;
    void *norm_g, *norm_b;        // [c], GroupNorm eps 1e-6
    void *proj_in_w, *proj_in_b;  // [c, c] (1x1 conv or linear: same math in NHWC)
    void *proj_out_w, *proj_out_b;
    struct unet_tblock *blocks;
};

struct unet_level {
    int n_layers;
    struct hsd_resnet2d *resnets;
    struct unet_transformer *attns;  // NULL for plain blocks
    void *sample_w, *sample_b;       // down/upsampler conv [c, 3, 3, c], or NULL
    int c;                           // sampler channels
};

struct hsd_unet {
    struct hsd_unet_config cfg;
    struct hsd_backend *be;          // NULL: structure only (inspect)
    int temb_dim;
    void *conv_in_w, *conv_in_b;
    void *time_l1_w, *time_l1_b, *time_l2_w, *time_l2_b;
    void *time_cond_w;               // [c0, time_cond_proj_dim] (LCM) or NULL
    void *add_l1_w, *add_l1_b, *add_l2_w, *add_l2_b;  // SDXL add_embedding, or NULL
    struct unet_level down[HSD_UNET_MAX_BLOCKS], up[HSD_UNET_MAX_BLOCKS];
    int has_mid;
    struct hsd_resnet2d *mid_resnets;         // n_mid_attn + 1
    struct unet_transformer *mid_attns;
    int n_mid_attn;
    void *norm_out_g, *norm_out_b, *conv_out_w, *conv_out_b;

    struct hsd_unet_summary summary;

    // Every backend buffer holding a weight, freed with the model.
    struct hsd_bufs bufs;

    // Activation arena, sized to the largest (n, h, w, t_ctx) planned; each
    // shape's planning pass is kept (peak bytes, flops), so a shape seen
    // before runs without planning again (warm-up: docs/denoise_step.md).
    void *arena;
    size_t arena_cap;
    struct unet_plan {
        int n, h, w, t;
        size_t peak;
        double flops;
    } plans[HSD_UNET_MAX_PLANS];
    int n_plans, next_evict;
    double plan_flops;               // of the latest forward
    float *host_io;                  // NCHW<->NHWC staging, sized with the arena
    size_t host_io_cap;

    int add_text_dim;                // text_embeds width of the first text_time call

    hsd_unet_probe_fn probe;
    void *probe_user;

    struct hsd_lora_set *lora;       // attached LoRA adapters (models/lora.h), or NULL
    // LCM: the guidance-scale embeddings of the next forwards' rows
    // (hsd_unet_set_guidance), host [rows, time_cond_proj_dim].
    float *guidance_emb;
    int guidance_rows, guidance_cap;
    const atomic_int *abort;  // hsd_unet_set_abort; NULL: never
};

// Row `row`'s guidance embedding [time_cond_proj_dim] (w = 0 past the
// selected rows). unet_guidance.c.
void hsd_unet_guidance_row(const struct hsd_unet *u, float *out, int row);

#endif
