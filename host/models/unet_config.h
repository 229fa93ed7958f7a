// UNet2DConditionModel hyper-parameters, as diffusers' config.json spells
// them (diffusers models/unets/unet_2d_condition.py). Per-layer widths of
// pruned models are NOT here: the loader reads them from weight shapes.
#ifndef HSD_MODELS_UNET_CONFIG_H
#define HSD_MODELS_UNET_CONFIG_H

#include <stddef.h>

#include "core/status.h"

#define HSD_UNET_MAX_BLOCKS 8

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
};

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
