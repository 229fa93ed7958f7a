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
    size_t cap_items, cap_rows, cap_lat, cap_ctx;
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
    struct hsd_unet_source src_more[HSD_PIPELINE_MAX_UNETS - 2];
    struct hsd_unet *more[HSD_PIPELINE_MAX_UNETS - 2];  // U-Nets after the edge one
    int n_more;
    struct hsd_vae *vae;
    int ctx_dim;             // text encoder width = U-Net cross-attention width
    int latent_c;            // U-Net in/out channels = VAE latent channels
    int size_multiple;       // pixels: VAE scale * U-Net 2^(levels-1), both U-Nets
    int buckets[HSD_PIPELINE_MAX_BUCKETS];  // config.row_buckets
    int n_buckets;
    struct hsd_step_scratch step;
    struct hsd_lora_file *loras[HSD_PIPELINE_MAX_LORAS];  // config.loras, opened
    char lora_names[HSD_PIPELINE_MAX_LORAS][64];
    int n_loras;
    float *lora_rows;        // [rows, n_loras] scales of one U-Net / text-encoder call
    size_t lora_rows_cap;
    float *guidance_w;       // [rows] LCM U-Nets' w of one call (pipeline_lcm.c)
    size_t guidance_cap;
};

// More than two U-Nets (pipeline_stages.c): loads config.more_models,
// frees them, checks a request's splits and picks the U-Net of call `step`.
enum hsd_status hsd_pipeline_stages_load(struct hsd_pipeline *p,
                                         const struct hsd_pipeline_config *c, int *mult);
void hsd_pipeline_stages_free(struct hsd_pipeline *p);
enum hsd_status hsd_pipeline_stages_validate(const struct hsd_pipeline *p,
                                             const struct hsd_gen_request *r, int calls);
struct hsd_unet *hsd_pipeline_stage_unet(struct hsd_pipeline *p, const struct hsd_gen_request *r,
                                         int step, int calls, int *stage);

// Loads config.loras onto the loaded models (pipeline_lora.c).
enum hsd_status hsd_pipeline_lora_load(struct hsd_pipeline *p,
                                       const struct hsd_pipeline_config *c);
void hsd_pipeline_lora_free(struct hsd_pipeline *p);
// Selects, for `unet`'s next call of `padded` rows, each item's scales on
// its rows (rows[i].cond_row / uncond_row); padding rows choose none.
enum hsd_status hsd_pipeline_lora_rows(struct hsd_pipeline *p, struct hsd_unet *unet,
                                       const struct hsd_denoise_item *items,
                                       const struct hsd_step_row *rows, int n, int padded);

// The U-Net batch of a call of `rows` rows: the smallest configured bucket
// that holds them, or `rows` above the largest (hsd_pipeline_config.row_buckets).
int hsd_pipeline_bucket_rows(const struct hsd_pipeline *p, int rows);

// LCM U-Nets: each row's w = guidance_scale - 1 for `unet`'s next call
// (pipeline_lcm.c); a no-op for U-Nets without time_cond_proj_dim.
enum hsd_status hsd_pipeline_guidance_rows(struct hsd_pipeline *p, struct hsd_unet *unet,
                                           const struct hsd_denoise_item *items,
                                           const struct hsd_step_row *rows, int n, int padded);

#endif
