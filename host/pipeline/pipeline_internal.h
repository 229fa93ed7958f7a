// The pipeline object, shared by pipeline.c (loading, text, decode,
// generate) and denoise_step.c (the batched denoising step and its
// buffers). Not for use outside host/pipeline.
#ifndef HSD_PIPELINE_INTERNAL_H
#define HSD_PIPELINE_INTERNAL_H

#include <pthread.h>

#include "backend/resident_ops.h"
#include "pipeline/pipeline.h"

// Grow-only capacities of a step's buffers: items, U-Net rows, latent and
// context elements, SDXL's pooled width (0 where a scratch has none). 1 when `want` fits `cap`; else 0, and each `want` is
// raised to `cap` where that is larger (a regrowth never shrinks).
enum { HSD_CAPS = 5 };
static inline int hsd_caps_fit(size_t want[HSD_CAPS], const size_t cap[HSD_CAPS]) {
    int fit = 1;
    for (int i = 0; i < HSD_CAPS; i++) fit &= want[i] <= cap[i];
    for (int i = 0; i < HSD_CAPS && !fit; i++)
        if (want[i] < cap[i]) want[i] = cap[i];
    return fit;
}

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
    size_t cap[HSD_CAPS];    // items, rows, lat, ctx, pooled
};

void hsd_step_scratch_free(struct hsd_step_scratch *s, struct hsd_backend *be);

// One request's resident state (resident_pool.c; backend/resident_ops.h
// lists the buffers). Kept after release and reused by a later request of
// the same latent and context size and at most calls_cap calls, so a
// warmed service allocates nothing at admission.
struct hsd_res_slot {
    int used;                // held by a request
    unsigned gen;            // bumped at each acquire (the step's refs cache)
    size_t lat, ctx;         // latent and context elements it holds
    int calls_cap, noise_cap;  // capacity of plan/t, of noise (calls)
    int calls, done;         // calls planned, calls run
    int cfg, noise;          // has an uncond context; uses the noise table
    void *x, *hist, *plan, *t, *noise_buf, *cond, *uncond, *counter;  // backend memory
};

struct hsd_res_pool {
    pthread_mutex_t mu;      // acquire/release may come from any thread (the scheduler's sweep)
    struct hsd_res_slot **slots;
    int n, cap;
};

// The resident step's batch buffers (resident_step.c), grown on demand.
struct hsd_res_scratch {
    void *x, *hist, *eps, *table, *refs;  // fp32 [items, lat], [items, SLOTS, lat], [items, lat],
                                          // [items] rows, [items] struct hsd_step_slot_ref
    void *in, *t, *ctx;      // U-Net inputs: act [rows, lat], fp32 [rows], act [rows, ctx]
    struct hsd_step_slot_ref *refs_host;  // [items] the refs last uploaded
    unsigned *gens;          // [items] their slots' generations
    int *ids;                // [items] their slot ids
    int n_refs, padded_refs; // items and bucket of the refs last uploaded (0: none)
    size_t cap[HSD_CAPS];    // items, rows, lat, ctx
};

void hsd_res_pool_free(struct hsd_res_pool *pool, struct hsd_backend *be);
void hsd_res_scratch_free(struct hsd_res_scratch *s, struct hsd_backend *be);

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
    struct hsd_lora_file *loras[HSD_PIPELINE_MAX_LORAS];  // config.loras, opened
    char lora_names[HSD_PIPELINE_MAX_LORAS][64];
    int n_loras;
    float *lora_rows;        // [rows, n_loras] scales of one U-Net / text-encoder call
    size_t lora_rows_cap;
    float *guidance_w;       // [rows] LCM U-Nets' w of one call (pipeline_lcm.c)
    size_t guidance_cap;
    struct hsd_res_pool res;       // resident requests (resident_pool.c)
    struct hsd_res_scratch rstep;  // the resident step's buffers (resident_step.c)
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
// Every text encoder (SDXL: both) runs its next calls' rows < `rows` with
// the LoRA scales `scales` (one per loaded LoRA); NULL: none again.
enum hsd_status hsd_pipeline_text_lora_select(struct hsd_pipeline *p, const float *scales,
                                               int rows);
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
// pipeline_sdxl.c: loads tokenizer_2/ and text_encoder_2/ when `root` has
// them (sets tok2, text2, pooled_dim, force_zeros; ctx_dim must already be
// the first encoder's width and becomes the sum).
enum hsd_status hsd_pipeline_sdxl_load(struct hsd_pipeline *p, const char *root);
// The same for an SDXL single file whose tokenizer_2 load_single_file_parts
// set: OpenCLIP bigG from conditioner.embedders.1.model.*, SDXL-base's
// force_zeros_for_empty_prompt. No-op for SD 1.x/2.x files.
enum hsd_status hsd_pipeline_sdxl_load_ldm(struct hsd_pipeline *p, const char *path);
// A U-Net fits the text encoders' conditioning: SDXL's text_time U-Net
// with an SDXL pipeline (pooled width + 6 time ids = its add_embedding
// input), none with SD 1.x/2.x. Fails naming the config field.
enum hsd_status hsd_pipeline_sdxl_check_unet(const struct hsd_pipeline *p,
                                             const struct hsd_unet *u, const char *which,
                                             const char *path);

#endif
