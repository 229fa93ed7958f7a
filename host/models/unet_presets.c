// Named U-Net configurations for file-free benchmarks. The JSON texts are
// the published diffusers unet/config.json files of each model (only keys
// that differ from UNet2DConditionModel's defaults), parsed by the same
// parser real files go through.
#include <string.h>

#include "models/unet.h"

#define SD1_BLOCKS                                                                          \
    "\"down_block_types\": [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", "          \
    "\"CrossAttnDownBlock2D\", \"DownBlock2D\"],"                                          \
    "\"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\", " \
    "\"CrossAttnUpBlock2D\"],"                                                             \
    "\"block_out_channels\": [320, 640, 1280, 1280],"

// SDXL's three levels (the first without attention), 64-wide heads,
// linear projections, 2048-wide context and the text_time embedding.
#define SDXL_COMMON                                                                          \
    "\"down_block_types\": [\"DownBlock2D\", \"CrossAttnDownBlock2D\", "                    \
    "\"CrossAttnDownBlock2D\"], \"up_block_types\": [\"CrossAttnUpBlock2D\", "              \
    "\"CrossAttnUpBlock2D\", \"UpBlock2D\"], \"block_out_channels\": [320, 640, 1280],"      \
    "\"attention_head_dim\": [5, 10, 20], \"cross_attention_dim\": 2048,"                   \
    "\"use_linear_projection\": true, \"addition_embed_type\": \"text_time\","              \
    "\"addition_time_embed_dim\": 256, \"projection_class_embeddings_input_dim\": 2816,"     \
    "\"sample_size\": 128,"

static const struct {
    const char *name, *json;
} k_presets[] = {
    // runwayml/stable-diffusion-v1-5 (also SD 1.4).
    {"sd15", "{" SD1_BLOCKS "\"layers_per_block\": 2, \"attention_head_dim\": 8,"
             "\"cross_attention_dim\": 768, \"sample_size\": 64}"},
    // stabilityai/stable-diffusion-2-base: 64-wide heads, linear projections.
    {"sd2-base", "{" SD1_BLOCKS "\"layers_per_block\": 2, \"attention_head_dim\": [5, 10, 20, 20],"
                 "\"cross_attention_dim\": 1024, \"use_linear_projection\": true,"
                 "\"sample_size\": 64}"},
    // nota-ai/bk-sdm-base: SD 1.x with one ResNet/attention pair per level.
    {"bksdm-base", "{" SD1_BLOCKS "\"layers_per_block\": 1, \"attention_head_dim\": 8,"
                   "\"cross_attention_dim\": 768, \"sample_size\": 64}"},
    // nota-ai/bk-sdm-small: bk-sdm-base without the mid block.
    {"bksdm-small", "{" SD1_BLOCKS "\"layers_per_block\": 1, \"attention_head_dim\": 8,"
                    "\"cross_attention_dim\": 768, \"mid_block_type\": null,"
                    "\"sample_size\": 64}"},
    // nota-ai/bk-sdm-tiny: three levels, all with attention, no mid block
    // (323,384,964 parameters).
    {"bksdm-tiny",
     "{\"down_block_types\": [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", "
     "\"CrossAttnDownBlock2D\"], \"up_block_types\": [\"CrossAttnUpBlock2D\", "
     "\"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\"], \"block_out_channels\": [320, 640, 1280],"
     "\"layers_per_block\": 1, \"attention_head_dim\": 8, \"cross_attention_dim\": 768,"
     "\"mid_block_type\": null, \"sample_size\": 64}"},
    // stabilityai/stable-diffusion-xl-base-1.0 (2,567,463,684 parameters).
    {"sdxl-base", "{" SDXL_COMMON "\"layers_per_block\": 2,"
                  "\"transformer_layers_per_block\": [1, 2, 10]}"},
    // KOALA-1B (arXiv 2312.04005, etri-vilab/koala-1b): one layer per
    // block, the deepest stacks cut from 10 to 6 transformer blocks.
    {"koala-1b", "{" SDXL_COMMON "\"layers_per_block\": 1,"
                 "\"transformer_layers_per_block\": [1, 2, 6]}"},
    // KOALA-700M (the Hybrid SD paper's SDXL edge model): as koala-1b with
    // depth 5 and no mid block (782,822,724 parameters).
    {"koala-700m", "{" SDXL_COMMON "\"layers_per_block\": 1,"
                   "\"transformer_layers_per_block\": [1, 2, 5], \"mid_block_type\": null}"},
};

const char *hsd_unet_preset_names(void) {
    return "sd15, sd2-base, bksdm-base, bksdm-small, bksdm-tiny, sdxl-base, koala-1b, koala-700m";
}

enum hsd_status hsd_unet_source_preset(struct hsd_unet_source *src, const char *name) {
    memset(src, 0, sizeof *src);
    for (size_t i = 0; i < sizeof k_presets / sizeof k_presets[0]; i++) {
        if (strcmp(name, k_presets[i].name)) continue;
        return hsd_unet_config_parse(&src->cfg, k_presets[i].json, strlen(k_presets[i].json),
                                     k_presets[i].name);
    }
    return hsd_fail(HSD_ERR_NOT_FOUND, "unknown U-Net preset '%s' (known: %s)", name,
                    hsd_unet_preset_names());
}
