// CLIPTextModel (transformers models/clip/modeling_clip.py) on any backend:
// token + position embeddings, pre-LN transformer layers with a causal mask,
// quick_gelu or gelu MLP, final layer norm. Config from config.json.
#ifndef HSD_MODELS_CLIP_TEXT_H
#define HSD_MODELS_CLIP_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "models/lora_keys.h"
#include "core/status.h"

struct hsd_clip_text_config {
    int vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads;
    int max_position_embeddings;
    int quick_gelu;        // hidden_act "quick_gelu" (SD 1.x) vs "gelu" (SD 2.x)
    float layer_norm_eps;
    // CLIPTextModelWithProjection (SDXL's text_encoder_2): text_projection
    // [projection_dim, hidden] maps the pooled output to text_embeds.
    int with_projection, projection_dim;
    // Where the pooled output is read: eos_token_id 2 (configs older than
    // transformers PR #24773, every SD/SDXL one) means the argmax of the ids,
    // else the first position of eos_token_id (modeling_clip.py).
    int eos_token_id;
};

struct hsd_clip_text;

// `path`: a diffusers pipeline root (reads text_encoder/) or a text_encoder
// folder with config.json + model.safetensors. Strict like the U-Net loader:
// missing tensors, wrong shapes, unsupported config values are errors
// naming the file and tensor.
enum hsd_status hsd_clip_text_load(struct hsd_clip_text **out, const char *path,
                                   struct hsd_backend *be);
// The text encoder of a single-file checkpoint (io/weights.h), config
// inferred from the shapes (hsd_clip_text_config_infer): SD 1.x's
// (cond_stage_model.transformer.*), SD 2.x's OpenCLIP (cond_stage_model.
// model.*) or SDXL's first, CLIP-L (conditioner.embedders.0.transformer.*).
// hsd_clip_text_load_ldm_bigg: SDXL's second, OpenCLIP bigG
// (conditioner.embedders.1.model.*) as the CLIPTextModelWithProjection
// diffusers converts it to (gelu, text_projection).
enum hsd_status hsd_clip_text_load_ldm_bigg(struct hsd_clip_text **out, const char *path,
                                            struct hsd_backend *be);
enum hsd_status hsd_clip_text_load_ldm(struct hsd_clip_text **out, const char *path,
                                       struct hsd_backend *be);
void hsd_clip_text_free(struct hsd_clip_text *m);
const struct hsd_clip_text_config *hsd_clip_text_get_config(const struct hsd_clip_text *m);

// out [n, L, hidden] = last_hidden_state for ids [n, L] (L <= max positions).
// clip_skip = 0: the last layer (what SD pipelines use); clip_skip = k > 0:
// the output of layer (num_layers - k), then the final layer norm, as
// diffusers' StableDiffusionPipeline does with clip_skip = k (0 <= k <=
// num_layers; layer 0 is the embeddings). Ids outside [0, vocab_size), or
// n, L, clip_skip out of range, fail with HSD_ERR_INVALID_ARG before any
// work. Activation memory is planned once per (n, L) and reused.
enum hsd_status hsd_clip_text_forward(struct hsd_clip_text *m, float *out, const int32_t *ids,
                                      int n, int L, int clip_skip);

// What SDXL takes from each encoder (diffusers StableDiffusionXLPipeline.
// encode_prompt): hidden [n, L, hidden] = hidden_states[-(clip_skip + 2)]
// (no final layer norm; clip_skip 0 = the penultimate layer), and pooled
// (may be NULL) [n, projection_dim] = text_embeds of a WithProjection model
// (text_projection of the final-normed eos row), or [n, hidden] =
// pooler_output of a plain one. Needs clip_skip + 1 < num_layers.
enum hsd_status hsd_clip_text_forward_sdxl(struct hsd_clip_text *m, float *hidden,
                                           float *pooled, const int32_t *ids, int n, int L,
                                           int clip_skip);
// Width of the pooled output above (projection_dim or hidden_size).
int hsd_clip_text_pooled_dim(const struct hsd_clip_text *m);

// Parses text_encoder/config.json bytes (need not be NUL-terminated) with
// transformers CLIPTextConfig's defaults; `label` names the file in
// messages. hidden_act other than "quick_gelu"/"gelu", model_type other than
// "clip_text_model" or architectures other than CLIPTextModel[WithProjection]
// fail with HSD_ERR_UNSUPPORTED naming the key.
enum hsd_status hsd_clip_text_config_parse(struct hsd_clip_text_config *cfg, const char *json,
                                           size_t len, const char *label);
enum hsd_status hsd_clip_text_config_load(struct hsd_clip_text_config *cfg, const char *path);
// Config from the weight shapes (transformers names): vocab and width from
// the token embedding, positions, layers, intermediate width; heads =
// width / 64 and quick_gelu, as OpenAI's CLIP ViT-L/14 text tower that SD
// 1.x uses (diffusers single_file_utils takes openai/clip-vit-large-patch14's
// config for it).
struct hsd_weights;
enum hsd_status hsd_clip_text_config_infer(struct hsd_clip_text_config *cfg,
                                           const struct hsd_weights *w);

// Debug/test hook: called during a forward with the backend buffer [n, L, c]
// of "hidden.<i>": i = 0 the embeddings, i = 1..num_layers - clip_skip the
// output of encoder layer i (transformers' output_hidden_states[i]).
typedef void (*hsd_clip_text_probe_fn)(void *user, const char *name, const void *buf, int n,
                                       int L, int c);
void hsd_clip_text_set_probe(struct hsd_clip_text *m, hsd_clip_text_probe_fn fn, void *user);

// LoRA (models/lora.h): attaches f's layers of `part` (HSD_LORA_TE1 or
// TE2); every one must fit, else nothing is attached. Adapters stay off
// until selected: scale[b * adapters + a] for rows (sequences) b < rows.
struct hsd_lora_file;
enum hsd_status hsd_clip_text_lora_attach(struct hsd_clip_text *m, const struct hsd_lora_file *f,
                                          enum hsd_lora_part part, int *adapter);
enum hsd_status hsd_clip_text_lora_select(struct hsd_clip_text *m, const float *scale, int rows);

#endif
