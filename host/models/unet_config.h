// UNet2DConditionModel hyper-parameters, as diffusers' config.json spells
// them (diffusers models/unets/unet_2d_condition.py). Per-layer widths of
// pruned models are NOT here: the loader reads them from weight shapes.
#ifndef HSD_MODELS_UNET_CONFIG_H
#define HSD_MODELS_UNET_CONFIG_H

#include <stddef.h>

#include "core/status.h"

#define HSD_UNET_MAX_BLOCKS 8
#define HSD_UNET_MAX_LAYERS 64  // layers_per_block bound

enum hsd_unet_block_kind {
    HSD_UNET_BLOCK_PLAIN,       // DownBlock2D / UpBlock2D
    HSD_UNET_BLOCK_CROSS_ATTN,  // CrossAttnDownBlock2D / CrossAttnUpBlock2D
};

struct hsd_unet_config {
    int in_channels, out_channels, sample_size;
    int n_blocks;                                     // len(block_out_channels)
    enum hsd_unet_block_kind down[HSD_UNET_MAX_BLOCKS];
    enum hsd_unet_block_kind up[HSD_UNET_MAX_BLOCKS]; // in up order (deepest first)
    int block_out_channels[HSD_UNET_MAX_BLOCKS];
    int layers_per_block[HSD_UNET_MAX_BLOCKS];        // per down block
    int transformer_layers[HSD_UNET_MAX_BLOCKS];      // per down block
    int heads[HSD_UNET_MAX_BLOCKS];                   // per down block (see below)
    int has_mid_block;                                // UNetMidBlock2DCrossAttn or none
    int cross_attention_dim;
    int norm_num_groups;
    float norm_eps;
    int use_linear_projection;
    int flip_sin_to_cos;
    float freq_shift;
    int center_input_sample;
    float mid_block_scale_factor;
    int downsample_padding;
    // LCM-distilled U-Nets: width of the guidance-scale embedding added to
    // the timestep embedding (TimestepEmbedding.cond_proj); 0: none.
    int time_cond_proj_dim;

    // SDXL's added conditioning (addition_embed_type "text_time", diffusers
    // UNet2DConditionModel._set_add_embedding): time ids embedded by
    // Timesteps(addition_time_embed_dim), concatenated after the pooled text
    // embedding, through TimestepEmbedding(projection_class_embeddings_
    // input_dim, time_embed_dim), added to the time embedding.
    int add_text_time;
    int addition_time_embed_dim;
    int projection_class_embeddings_input_dim;

    // Per-layer transformer depths where transformer_layers_per_block (or
    // reverse_transformer_layers_per_block) gives lists of lists (SSD-1B,
    // diffusers' "asymmetrical UNet"); 0 means "the block's
    // transformer_layers[]" (down i and mid: [i] / [n-1]; up i: [n-1-i]).
    int tl_down[HSD_UNET_MAX_BLOCKS][HSD_UNET_MAX_LAYERS];
    int tl_up[HSD_UNET_MAX_BLOCKS][HSD_UNET_MAX_LAYERS + 1];
    int tl_mid;
};

// Transformer blocks of down block i's layer l, up block i's (up order)
// layer l, and the mid block, following diffusers' defaults above.
int hsd_unet_depth_down(const struct hsd_unet_config *cfg, int i, int l);
int hsd_unet_depth_up(const struct hsd_unet_config *cfg, int i, int l);
int hsd_unet_depth_mid(const struct hsd_unet_config *cfg);

// Parses config.json bytes (need not be NUL-terminated). Unknown keys are
// ignored (pruned models add their own); known keys with values this
// implementation cannot run (class embeddings, other block types, ...) fail
// with HSD_ERR_UNSUPPORTED naming the key. `label` names the file in messages.
//
// Note on heads: diffusers' `attention_head_dim` for these U-Nets is really
// the number of heads (a documented naming quirk kept for compatibility), so
// heads[i] = attention_head_dim[i] and head dim = block_out_channels[i]/heads.
enum hsd_status hsd_unet_config_parse(struct hsd_unet_config *cfg, const char *json, size_t len,
                                      const char *label);
enum hsd_status hsd_unet_config_load(struct hsd_unet_config *cfg, const char *path);

// Checks internal consistency (positive sizes, groups dividing widths, ...).
enum hsd_status hsd_unet_config_validate(const struct hsd_unet_config *cfg, const char *label);

// Writes the config as diffusers would (for `hsd inspect`), to a malloc'd
// string the caller frees; NULL on allocation failure.
char *hsd_unet_config_to_json(const struct hsd_unet_config *cfg);

#endif
