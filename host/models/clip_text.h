// CLIPTextModel (transformers models/clip/modeling_clip.py) on any backend:
// token + position embeddings, pre-LN transformer layers with a causal mask,
// quick_gelu or gelu MLP, final layer norm. Config from config.json.
#ifndef HSD_MODELS_CLIP_TEXT_H
#define HSD_MODELS_CLIP_TEXT_H

#include <stdint.h>

#include "backend/backend.h"
#include "core/status.h"

struct hsd_clip_text_config {
    int vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads;
    int max_position_embeddings;
    int quick_gelu;        // hidden_act "quick_gelu" (SD 1.x) vs "gelu" (SD 2.x)
    float layer_norm_eps;
};

struct hsd_clip_text;

// `path`: a diffusers pipeline root (reads text_encoder/) or a text_encoder
// folder with config.json + model.safetensors. Strict like the U-Net loader:
// missing tensors, wrong shapes, unsupported config values are errors
// naming the file and tensor.
enum hsd_status hsd_clip_text_load(struct hsd_clip_text **out, const char *path,
                                   struct hsd_backend *be);
void hsd_clip_text_free(struct hsd_clip_text *m);
const struct hsd_clip_text_config *hsd_clip_text_get_config(const struct hsd_clip_text *m);

// out [n, L, hidden] = last_hidden_state for ids [n, L] (L <= max positions).
// clip_skip = 0: the last layer (what SD pipelines use); clip_skip = k > 0:
// the output of layer (num_layers - k), then the final layer norm, as
// diffusers' StableDiffusionPipeline does with clip_skip = k.
enum hsd_status hsd_clip_text_forward(struct hsd_clip_text *m, float *out, const int32_t *ids,
                                      int n, int L, int clip_skip);

#endif
