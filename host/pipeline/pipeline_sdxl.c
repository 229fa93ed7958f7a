// SDXL's text side of the pipeline (diffusers pipelines/stable_diffusion_xl/
// pipeline_stable_diffusion_xl.py, StableDiffusionXLPipeline): the second
// tokenizer and text encoder, encode_prompt's concatenated penultimate
// hidden states and pooled embedding, and _get_add_time_ids.
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/config_json.h"
#include "io/file.h"
#include "pipeline/pipeline_internal.h"

// model_index.json's force_zeros_for_empty_prompt (StableDiffusionXLPipeline
// registers it; its __init__ default is True). A folder without the file
// or the key takes the default.
static enum hsd_status read_force_zeros(int *out, const char *root) {
    *out = 1;
    char path[4200];
    if (hsd_path_too_long(snprintf(path, sizeof path, "%s/model_index.json", root), sizeof path))
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: path too long", root);
    if (!hsd_is_file(path)) return HSD_OK;
    json_t *j = NULL;
    enum hsd_status s = hsd_cfg_load_file(path, &j);
    if (!s) s = hsd_cfg_bool(j, path, "force_zeros_for_empty_prompt", out);
    json_decref(j);
    return s;
}

enum hsd_status hsd_pipeline_sdxl_load(struct hsd_pipeline *p, const char *root) {
    char dir[4200];
    if (hsd_path_too_long(snprintf(dir, sizeof dir, "%s/text_encoder_2", root), sizeof dir))
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: path too long", root);
    if (!hsd_is_dir(dir)) return HSD_OK;  // SD 1.x/2.x
    enum hsd_status s = hsd_clip_text_load(&p->text2, dir, p->be);
    if (s) return s;
    const struct hsd_clip_text_config *c2 = hsd_clip_text_get_config(p->text2);
    // diffusers takes the pooled embedding from the first encoder whose
    // output[0] is 2-D, i.e. a CLIPTextModelWithProjection's text_embeds.
    if (!c2->with_projection)
        return hsd_fail(HSD_ERR_UNSUPPORTED,
                        "%s/config.json: architectures: text_encoder_2 must be a "
                        "CLIPTextModelWithProjection (SDXL's pooled text embedding)",
                        dir);
    snprintf(dir, sizeof dir, "%s/tokenizer_2", root);
    if (!hsd_is_dir(dir))
        return hsd_fail(HSD_ERR_NOT_FOUND, "%s: text_encoder_2/ without tokenizer_2/", root);
    if ((s = hsd_clip_tokenizer_load(&p->tok2, dir))) return s;
    if ((s = read_force_zeros(&p->force_zeros, root))) return s;
    p->pooled_dim = hsd_clip_text_pooled_dim(p->text2);
    p->ctx_dim += c2->hidden_size;
    return HSD_OK;
}

enum hsd_status hsd_pipeline_sdxl_load_ldm(struct hsd_pipeline *p, const char *path) {
    if (!p->tok2) return HSD_OK;  // not an SDXL file (pipeline.c load_single_file_parts)
    enum hsd_status s = hsd_clip_text_load_ldm_bigg(&p->text2, path, p->be);
    if (s) return s;
    // from_single_file takes the rest from stabilityai/stable-diffusion-xl-
    // base-1.0, whose model_index.json sets force_zeros_for_empty_prompt.
    p->force_zeros = 1;
    p->pooled_dim = hsd_clip_text_pooled_dim(p->text2);
    p->ctx_dim += hsd_clip_text_get_config(p->text2)->hidden_size;
    return HSD_OK;
}

enum hsd_status hsd_pipeline_sdxl_check_unet(const struct hsd_pipeline *p,
                                             const struct hsd_unet *u, const char *which,
                                             const char *path) {
    const struct hsd_unet_config *c = hsd_unet_get_config(u);
    if (!p->text2 && c->add_text_time)
        return hsd_fail(HSD_ERR_SHAPE,
                        "%s U-Net %s: addition_embed_type \"text_time\" (SDXL) needs SDXL's "
                        "pooled text embedding, but the large model has no text_encoder_2; "
                        "these models cannot work together",
                        which, path);
    if (p->text2 && !c->add_text_time)
        return hsd_fail(HSD_ERR_SHAPE,
                        "%s U-Net %s: no addition_embed_type \"text_time\", but the large model "
                        "is SDXL (text_encoder_2); these models cannot work together",
                        which, path);
    // diffusers _get_add_time_ids: addition_time_embed_dim * len(time ids)
    // + text_encoder_2's projection_dim must be add_embedding's input.
    if (p->text2 && c->projection_class_embeddings_input_dim !=
                        p->pooled_dim + HSD_SDXL_N_TIME_IDS * c->addition_time_embed_dim)
        return hsd_fail(HSD_ERR_SHAPE,
                        "%s U-Net %s: projection_class_embeddings_input_dim %d != pooled width "
                        "%d + %d time ids x addition_time_embed_dim %d; these models cannot "
                        "work together",
                        which, path, c->projection_class_embeddings_input_dim, p->pooled_dim,
                        HSD_SDXL_N_TIME_IDS, c->addition_time_embed_dim);
    return HSD_OK;
}

int hsd_pipeline_is_sdxl(const struct hsd_pipeline *p) { return p->text2 != NULL; }
int hsd_pipeline_pooled_dim(const struct hsd_pipeline *p) { return p->pooled_dim; }

size_t hsd_pipeline_cond_floats(const struct hsd_pipeline *p) {
    return (size_t)HSD_TEXT_LEN * p->ctx_dim +
           (p->text2 ? (size_t)p->pooled_dim + HSD_SDXL_N_TIME_IDS : 0);
}

// One encoder's ids for every prompt.
static enum hsd_status tokenize_all(const struct hsd_clip_tokenizer *t, int32_t *ids,
                                    const char *const *prompts, int n) {
    for (int i = 0; i < n; i++) {
        int used;
        enum hsd_status s = hsd_clip_tokenize(t, prompts[i], strlen(prompts[i]),
                                              ids + (size_t)i * HSD_TEXT_LEN, HSD_TEXT_LEN, &used);
        if (s) return s;
    }
    return HSD_OK;
}

enum hsd_status hsd_pipeline_encode_text_sdxl(struct hsd_pipeline *p, float *out, float *pooled,
                                              const char *const *prompts, int n_prompts,
                                              int clip_skip) {
    if (!p->text2) return hsd_fail(HSD_ERR_INVALID_ARG, "encode_text_sdxl: not an SDXL model");
    const int c1 = hsd_clip_text_get_config(p->text)->hidden_size;
    const int c2 = hsd_clip_text_get_config(p->text2)->hidden_size;
    const size_t rows = (size_t)n_prompts * HSD_TEXT_LEN;
    int32_t *ids = malloc(rows * sizeof *ids);
    float *h1 = malloc(rows * c1 * sizeof *h1), *h2 = malloc(rows * c2 * sizeof *h2);
    enum hsd_status s = ids && h1 && h2 ? HSD_OK : hsd_fail(HSD_ERR_NOMEM, "out of memory");
    // prompt_2 = prompt: each tokenizer reads the same text.
    if (!s) s = tokenize_all(p->tok, ids, prompts, n_prompts);
    if (!s) s = hsd_clip_text_forward_sdxl(p->text, h1, NULL, ids, n_prompts, HSD_TEXT_LEN,
                                           clip_skip);
    if (!s) s = tokenize_all(p->tok2, ids, prompts, n_prompts);
    if (!s) s = hsd_clip_text_forward_sdxl(p->text2, h2, pooled, ids, n_prompts, HSD_TEXT_LEN,
                                           clip_skip);
    // torch.concat(prompt_embeds_list, dim=-1)
    for (size_t r = 0; !s && r < rows; r++) {
        memcpy(out + r * (c1 + c2), h1 + r * c1, (size_t)c1 * sizeof *out);
        memcpy(out + r * (c1 + c2) + c1, h2 + r * c2, (size_t)c2 * sizeof *out);
    }
    free(ids);
    free(h1);
    free(h2);
    return s;
}

void hsd_pipeline_time_ids(const struct hsd_gen_request *r, float ids[6]) {
    // list(original_size + crops_coords_top_left + target_size), sizes as
    // (height, width); original_size defaults to (height, width).
    ids[0] = (float)(r->original_height ? r->original_height : r->height);
    ids[1] = (float)(r->original_width ? r->original_width : r->width);
    ids[2] = (float)r->crop_top;
    ids[3] = (float)r->crop_left;
    ids[4] = (float)r->height;
    ids[5] = (float)r->width;
}
