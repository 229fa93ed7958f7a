// The pipeline object, shared by pipeline.c (loading, text, decode,
// generate) and denoise_step.c (the batched denoising step and its
// buffers). Not for use outside host/pipeline.
#ifndef HSD_PIPELINE_INTERNAL_H
#define HSD_PIPELINE_INTERNAL_H

#include "pipeline/pipeline.h"

// The step's buffers, grown on demand and kept (no allocation per step
// once warm). Backend memory (the step ops' operands, backend/step_ops.h)
// and the host side of the U-Net call and of the transfers.
struct hsd_step_scratch {
    // backend memory
    void *x, *slots, *eps;   // fp32 [items, lat], [items, HSD_STEP_SLOTS, lat], [items, lat]
    void *in, *mo;           // act [rows, lat]: U-Net input and output rows
    void *table;             // [items] struct hsd_step_row
    // host memory
    struct hsd_step_row *rows;       // [items]
    struct hsd_torch_rng *rng;       // [items] generators after the step
    float *x_host, *slots_host;      // [items, lat], [items, HSD_STEP_SLOTS, lat]
    float *x_in, *out, *t_in, *ctx_in;  // U-Net call: [rows, lat] x2, [rows], [rows, 77, ctx]
    float *te_in, *ids_in;   // SDXL: [rows, pooled_dim], [rows, 6]
    size_t cap_items, cap_rows, cap_lat, cap_ctx, cap_pooled;
};

void hsd_step_scratch_free(struct hsd_step_scratch *s, struct hsd_backend *be);

struct hsd_pipeline {
    struct hsd_backend *be;
    int be_borrowed;         // config.backend: the caller owns it
    struct hsd_clip_tokenizer *tok;
    struct hsd_clip_text *text;
    struct hsd_noise_schedule sched;
    struct hsd_unet_source src_large, src_edge;
    struct hsd_unet *large, *edge;
    struct hsd_vae *vae;
    // SDXL (pipeline_sdxl.c): tokenizer_2/ and text_encoder_2/, else NULL.
    struct hsd_clip_tokenizer *tok2;
    struct hsd_clip_text *text2;
    int pooled_dim;          // text_encoder_2's projection_dim (0: not SDXL)
    int force_zeros;         // model_index.json force_zeros_for_empty_prompt
    int ctx_dim;             // text encoder width = U-Net cross-attention width
    int latent_c;            // U-Net in/out channels = VAE latent channels
    int size_multiple;       // pixels: VAE scale * U-Net 2^(levels-1), both U-Nets
    int buckets[HSD_PIPELINE_MAX_BUCKETS];  // config.row_buckets
    int n_buckets;
    struct hsd_step_scratch step;
};

// The U-Net batch of a call of `rows` rows: the smallest configured bucket
// that holds them, or `rows` above the largest (hsd_pipeline_config.row_buckets).
int hsd_pipeline_bucket_rows(const struct hsd_pipeline *p, int rows);

// pipeline_sdxl.c: loads tokenizer_2/ and text_encoder_2/ when `root` has
// them (sets tok2, text2, pooled_dim, force_zeros; ctx_dim must already be
// the first encoder's width and becomes the sum).
enum hsd_status hsd_pipeline_sdxl_load(struct hsd_pipeline *p, const char *root);
// A U-Net fits the text encoders' conditioning: SDXL's text_time U-Net
// with an SDXL pipeline (pooled width + 6 time ids = its add_embedding
// input), none with SD 1.x/2.x. Fails naming the config field.
enum hsd_status hsd_pipeline_sdxl_check_unet(const struct hsd_pipeline *p,
                                             const struct hsd_unet *u, const char *which,
                                             const char *path);

#endif
