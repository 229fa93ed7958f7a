// Text -> image (diffusers StableDiffusionPipeline.__call__), and Hybrid
// SD's split in one process: steps 0..k-1 with the large U-Net, k..N-1 with
// the small (edge) one, one sampler state carried across, tokenizer and
// text encoder from the large model as the paper's reference code does.
//
// The stages are separate functions so the cloud service (scheduler/) can
// run the same denoising step over requests batched at different steps.
#ifndef HSD_PIPELINE_H
#define HSD_PIPELINE_H

#include <stdint.h>

#include "backend/backend.h"
#include "models/clip_text.h"
#include "models/unet.h"
#include "models/vae.h"
#include "sampling/sampler.h"
#include "text/clip_tokenizer.h"

#define HSD_TEXT_LEN 77  // CLIP context length of SD 1.x/2.x: one prompt chunk

// How prompts become text embeddings. DIFFUSERS: diffusers' encode_prompt,
// truncated at 77 tokens (the default: parity with diffusers). A1111:
// AUTOMATIC1111's long prompts and emphasis (text/prompt_chunks.h,
// text/prompt_emphasis.h): 77 x chunks context tokens.
enum hsd_prompt_style { HSD_PROMPT_DIFFUSERS, HSD_PROMPT_A1111, HSD_PROMPT_STYLE_COUNT };

// A LoRA to load with the models (--lora): applied per request, unfused
// (models/lora.h). Its U-Net layers go to every U-Net of the pipeline
// (large and edge: each must fit, else the load fails saying which layer
// did not) and its text-encoder layers to the text encoder.
struct hsd_lora_spec {
    const char *name;  // how requests choose it (GENERATE, --lora NAME=FILE)
    const char *path;  // a .safetensors LoRA in kohya or diffusers/PEFT format
};

#define HSD_PIPELINE_MAX_LORAS 32

struct hsd_pipeline_config {
    const char *model;       // large (or only) model: diffusers pipeline root
    const char *edge_model;  // small U-Net for steps k..N-1 (root or unet folder); NULL: none
    const char *vae;         // NULL or "full": <model>/vae; "tiny": a TAESD (see README); or a folder
    int threads;             // CPU threads; <= 0: every core
    // --cpu-precision (docs/cpu-precision.md): HSD_CPU_FP32 (0, default) or
    // HSD_CPU_BF16; BF16 with a GPU backend fails the load.
    enum hsd_cpu_precision cpu_precision;
    struct hsd_backend *backend;  // NULL: a CPU backend with `threads`, owned by the pipeline;
                                  // else borrowed (the caller destroys it after
                                  // hsd_pipeline_free): a GPU (backend/open/backend_open.h)
    // Batch buckets: a U-Net call of r rows runs with the smallest listed
    // size >= r, the extra rows copies of row 0 whose outputs are dropped,
    // so a backend sees only these batch sizes (one plan, arena and graph
    // each). Strictly ascending, 1..HSD_PIPELINE_MAX_ROWS, at most
    // HSD_PIPELINE_MAX_BUCKETS; NULL/0: no padding. Calls of more rows than
    // the largest bucket run unpadded.
    const int *row_buckets;
    int n_row_buckets;
    // The model's prediction type: HSD_PREDICTION_AUTO takes a folder's
    // scheduler_config.json, or for a single file what io/ldm_detect.h
    // hsd_ldm_prediction_v decides; EPSILON/V override both (--prediction).
    enum hsd_prediction_choice { HSD_PREDICTION_AUTO, HSD_PREDICTION_EPSILON,
                                 HSD_PREDICTION_V } prediction;
    const struct hsd_lora_spec *loras;  // [n_loras], loaded in this order
    int n_loras;                        // 0..HSD_PIPELINE_MAX_LORAS
    // More than two U-Nets in one schedule (the paper's code allows a list):
    // U-Nets after edge_model, in the order they take over (root, unet
    // folder or single file each); needs edge_model. Requests then give
    // hsd_gen_request.splits.
    const char *const *more_models;
    int n_more_models;                  // 0..HSD_PIPELINE_MAX_UNETS - 2
};

#define HSD_PIPELINE_MAX_UNETS 8

#define HSD_PIPELINE_MAX_BUCKETS 16
#define HSD_PIPELINE_MAX_ROWS 1024

struct hsd_gen_request {
    const char *prompt;
    const char *negative_prompt;  // NULL = ""
    float guidance_scale;         // CFG; <= 1 disables the unconditional pass (diffusers)
    int steps;                    // N, 1..1000
    int split;                    // k: U-Net calls on the large U-Net; < 0: all (no edge model).
                                  // Calls = steps, except PNDM which makes steps + 1 (as
                                  // diffusers' loop over scheduler.timesteps does).
    enum hsd_sampler_kind sampler;
    int width, height;            // pixels
    uint64_t seed;                // image i uses torch.Generator().manual_seed(seed + i)
    int batch_count;              // images, 1..64
    int clip_skip;                // 0 = last layer
    enum hsd_prompt_style prompt_style;
    // SDXL's micro-conditioning (diffusers _get_add_time_ids); 0 = the
    // default: original size = the target size (height, width), crop
    // top-left (0, 0). Ignored by SD 1.x/2.x models.
    int original_width, original_height;
    int crop_top, crop_left;
    const float *lora_scales;     // [n_loras of the pipeline] (0 = off), or NULL: no LoRA
    // With more_models: where each U-Net after the large one takes over,
    // ascending U-Net call indices, one per U-Net after the large one
    // (splits[0] is the edge model's k); overrides `split`. NULL: `split`.
    const int *splits;
    int n_splits;
};

struct hsd_gen_timing {
    double text_ms;
    double *step_ms;  // [steps + 1] (one per U-Net call), caller-provided or NULL
    double decode_ms;
};

typedef void (*hsd_progress_fn)(void *user, int done, int total);

struct hsd_pipeline;

// Loads every component and checks they fit together (latent channels,
// cross-attention width = text encoder width, VAE latent channels) before
// any compute. Errors name the component and the file.
enum hsd_status hsd_pipeline_load(struct hsd_pipeline **out, const struct hsd_pipeline_config *cfg);
void hsd_pipeline_free(struct hsd_pipeline *p);

// Whether a request with this guidance scale runs classifier-free guidance
// (an unconditional row): diffusers' guidance_scale > 1, except with an
// LCM-distilled large U-Net, which takes the scale as an input instead
// (LatentConsistencyModelPipeline; pipeline_lcm.c).
int hsd_pipeline_cfg(const struct hsd_pipeline *p, float guidance_scale);
int hsd_pipeline_guidance_embedded(const struct hsd_pipeline *p);

// U-Net calls the request's sampler makes for its steps (0 if invalid).
int hsd_pipeline_n_calls(const struct hsd_gen_request *r);

// Checks a request against the loaded models (sizes, steps, split, prompt
// encoding) without computing anything.
enum hsd_status hsd_pipeline_validate(const struct hsd_pipeline *p, const struct hsd_gen_request *r);
// The same without the prompts (neither required nor tokenized): for a
// caller that tokenizes later, off its own thread (the batcher's admission).
enum hsd_status hsd_pipeline_validate_params(const struct hsd_pipeline *p,
                                             const struct hsd_gen_request *r);

// Runs the request. rgb: [batch_count, height, width, 3] bytes, as
// diffusers' postprocess gives them ((x/2+0.5).clamp(0,1)*255, rounded);
// image (may be NULL): [batch_count, 3, height, width] floats before that
// mapping (vae.decode output); latent_out (may be NULL): the final latents
// [batch_count, C, height/8, width/8].
enum hsd_status hsd_pipeline_generate(struct hsd_pipeline *p, const struct hsd_gen_request *r,
                                      uint8_t *rgb, float *image, float *latent_out,
                                      struct hsd_gen_timing *timing, hsd_progress_fn progress,
                                      void *user);

// ---- stages (used by generate and by the service) ----

// cond/uncond [n_prompts, 77, C]: last hidden states of the text encoder.
enum hsd_status hsd_pipeline_encode_text(struct hsd_pipeline *p, float *out,
                                         const char *const *prompts, int n_prompts,
                                         int clip_skip);

// The request's prompts in its style: *out malloc'd [n_prompts, *n_ctx, C]
// (one or two prompts: [negative, positive] or the positive alone), n_ctx =
// 77 (diffusers) or 77 x the most chunks of the prompts (A1111: the shorter
// padded with the empty prompt's chunk, as A1111 pads cond and uncond).
enum hsd_status hsd_pipeline_encode_prompts(struct hsd_pipeline *p, float **out, int *n_ctx,
                                            const char *const *prompts, int n_prompts,
                                            enum hsd_prompt_style style, int clip_skip);
// Checks that `text` tokenizes in `style` (UTF-8, A1111 weights, at most
// HSD_PROMPT_MAX_CHUNKS chunks); *n_chunks (may be NULL) gets its chunks.
enum hsd_status hsd_pipeline_check_prompt(const struct hsd_pipeline *p, const char *text,
                                          enum hsd_prompt_style style, int *n_chunks);
const char *hsd_prompt_style_name(enum hsd_prompt_style s);
enum hsd_status hsd_prompt_style_parse(const char *name, enum hsd_prompt_style *out);

// One request's denoising state.
struct hsd_denoise_item {
    float *latent;            // [C, h, w] in/out
    struct hsd_sampler *sampler;
    const float *cond;        // [n_ctx, C_ctx]
    const float *uncond;      // [n_ctx, C_ctx] or NULL when guidance is off
    float guidance_scale;
    int n_ctx;                // context tokens: 77 x prompt chunks; 0 means 77. Items of
                              // one step share it (one U-Net call).
    const float *lora_scales; // [hsd_pipeline_lora_count] (0 = off), or NULL: no LoRA
};
// For SDXL, cond and uncond each hold hsd_pipeline_cond_floats() floats:
// the [77, C_ctx] context, then the pooled text embedding [pooled_dim] and
// the time ids [HSD_SDXL_N_TIME_IDS] (diffusers' added_cond_kwargs).

// One step for every item (each at its own sampler step), in one U-Net
// call: the batch holds [uncond rows..., cond rows...] like diffusers'
// torch.cat([latents] * 2).
enum hsd_status hsd_pipeline_denoise_step(struct hsd_pipeline *p, struct hsd_unet *unet,
                                          struct hsd_denoise_item *items, int n, int h, int w);

// ---- requests resident on the backend (docs/denoise_step.md "Resident state") ----

// Whether `u` can run resident steps on p's backend (resident_step.c).
int hsd_pipeline_resident_ok(const struct hsd_pipeline *p, const struct hsd_unet *u);
// Whether a request can: a 77-token context (n_ctx 0 or 77), a sampler
// whose randomness the admission plan holds (not lcm, which re-noises
// every step), no LoRA (lora_scales NULL or all 0). Others take
// hsd_pipeline_denoise_step.
int hsd_pipeline_resident_request_ok(const struct hsd_pipeline *p, enum hsd_sampler_kind kind,
                                     int n_ctx, const float *lora_scales);

// Admission (resident_pool.c): a slot in backend memory for one image
// holding its latent, sampler history and text embeddings (uploaded once),
// and its next `calls` steps planned from the sampler's current one
// (timesteps, coefficients, Euler a's noise drawn from its generator).
// latent [C, h, w] and the sampler are read, not changed: they stay the
// admission state a request restarts from when its device fails. cond /
// uncond [77, C_ctx] (uncond NULL: no CFG). The slot belongs to this
// pipeline (device) until handover or release.
enum hsd_status hsd_pipeline_slot_acquire(struct hsd_pipeline *p, int *slot, const float *latent,
                                          const struct hsd_sampler *sampler, const float *cond,
                                          const float *uncond, float guidance_scale, int calls,
                                          int h, int w);
// One step of every slot in one U-Net call (resident_step.c), the batch
// ordered as hsd_pipeline_denoise_step's. No host<->backend transfer but
// the batch's slot refs when its membership changed. A failure leaves the
// slots' state undefined: release them and restart from the admission state.
enum hsd_status hsd_pipeline_resident_step(struct hsd_pipeline *p, struct hsd_unet *unet,
                                           const int *slots, int n, int h, int w);
// Calls a slot has run, and calls it has planned.
int hsd_pipeline_slot_done(const struct hsd_pipeline *p, int slot);
int hsd_pipeline_slot_calls(const struct hsd_pipeline *p, int slot);
// Hand-over: latent [C, h, w] and the sampler (the admission state passed
// to acquire) moved on by the calls the slot ran, its history downloaded;
// the slot is released, also on failure.
enum hsd_status hsd_pipeline_slot_handover(struct hsd_pipeline *p, int slot, float *latent,
                                           struct hsd_sampler *sampler);
// Releases a slot without reading it (cancel, failure). Any thread.
void hsd_pipeline_slot_release(struct hsd_pipeline *p, int slot);

// Warm-up (warmup.c, docs/denoise_step.md "Warm-up"): plans every U-Net
// batch a service sending up to max_rows rows per call will run (each
// bucket, or each row count without buckets) at each image size
// (sizes: n_sizes width, height pairs), and on a graph-recording backend
// (CUDA) runs each until its graph is recorded, so that serving those
// shapes afterwards plans, tunes, captures and allocates nothing.
// report (may be NULL) gets each shape's time.
typedef void (*hsd_warmup_fn)(void *user, int rows, int width, int height, double ms);
enum hsd_status hsd_pipeline_warmup(struct hsd_pipeline *p, int max_rows, const int *sizes,
                                    int n_sizes, hsd_warmup_fn report, void *user);
// The text encoder at every admission batch of 1..max_rows prompts
// (largest first; on the CPU, whose GEMMs need no plans, the largest
// alone), so that admissions allocate (its arena) and, on CUDA, plan
// (cuBLASLt) nothing. *ms (may be NULL) gets the time taken.
enum hsd_status hsd_pipeline_warmup_text(struct hsd_pipeline *p, int max_rows, double *ms);
// The large U-Net's native image size (its sample_size x the VAE scale).
int hsd_pipeline_native_size(const struct hsd_pipeline *p);

struct hsd_unet *hsd_pipeline_unet(struct hsd_pipeline *p, int edge);
struct hsd_backend *hsd_pipeline_backend(struct hsd_pipeline *p);
const struct hsd_noise_schedule *hsd_pipeline_schedule(const struct hsd_pipeline *p);

// Image `index` of request r: its initial latent ([C, h, w] with h, w the
// latent size) and a fresh sampler, exactly as hsd_pipeline_generate makes
// them (torch.Generator().manual_seed(seed + index), init_noise_sigma). The
// cloud service starts requests with this.
enum hsd_status hsd_pipeline_init_image(struct hsd_pipeline *p, const struct hsd_gen_request *r,
                                        int index, float *latent, struct hsd_sampler *sampler);

// Runs the sampler's remaining steps on `unet` (NULL: the edge U-Net if the
// pipeline has one, else the large one) for one image: what an edge worker
// does with a cloud RESULT. cond/uncond [n_ctx, C_ctx] (uncond NULL = no
// CFG; n_ctx 0 = 77).
enum hsd_status hsd_pipeline_finish(struct hsd_pipeline *p, struct hsd_unet *unet, float *latent,
                                    struct hsd_sampler *sampler, const float *cond,
                                    const float *uncond, int n_ctx, float guidance_scale, int h,
                                    int w, hsd_progress_fn progress, void *user);

// Latent size for a request's pixel size, and the model's latent channels.
int hsd_pipeline_vae_scale(const struct hsd_pipeline *p);
int hsd_pipeline_latent_channels(const struct hsd_pipeline *p);
int hsd_pipeline_text_width(const struct hsd_pipeline *p);

// Tokenizes `text` to HSD_TEXT_LEN ids with the model's tokenizer.
enum hsd_status hsd_pipeline_tokenize(const struct hsd_pipeline *p, int32_t *ids, const char *text,
                                      size_t len);
// The tokenizer's padding id (to complete short id lists).
int32_t hsd_pipeline_pad_id(const struct hsd_pipeline *p);
// Checks token ids [n] against the text encoder's vocabulary (0 <= id <
// vocab_size). `what` names the list in the message ("prompt"); the message
// holds only this list's offending id and position.
enum hsd_status hsd_pipeline_check_ids(const struct hsd_pipeline *p, const int32_t *ids, int n,
                                       const char *what);

// ---- LoRA (pipeline_lora.c) ----
// How many LoRAs were loaded, and the index of the one named `name` (-1: none).
int hsd_pipeline_lora_count(const struct hsd_pipeline *p);
int hsd_pipeline_lora_index(const struct hsd_pipeline *p, const char *name);
const char *hsd_pipeline_lora_name(const struct hsd_pipeline *p, int i);
// hsd_pipeline_encode_text with the text-encoder LoRAs of `scales`
// ([hsd_pipeline_lora_count], NULL: none) on every prompt.
enum hsd_status hsd_pipeline_encode_text_lora(struct hsd_pipeline *p, float *out,
                                              const char *const *prompts, int n_prompts,
                                              int clip_skip, const float *scales);
// hsd_pipeline_encode_prompts with the text-encoder LoRAs of `scales`
// ([hsd_pipeline_lora_count], NULL: none) on every prompt and chunk.
enum hsd_status hsd_pipeline_encode_prompts_lora(struct hsd_pipeline *p, float **out, int *n_ctx,
                                                 const char *const *prompts, int n_prompts,
                                                 enum hsd_prompt_style style, int clip_skip,
                                                 const float *scales);
// hsd_pipeline_encode_ids with row r's text-encoder LoRAs from row_scales[r]
// ([hsd_pipeline_lora_count] or NULL; row_scales NULL: no LoRA anywhere).
enum hsd_status hsd_pipeline_encode_ids_lora(struct hsd_pipeline *p, float *out,
                                             const int32_t *ids, int n, int clip_skip,
                                             const float *const *row_scales);
// ---- SDXL (pipeline_sdxl.c; diffusers StableDiffusionXLPipeline) ----

// 1 when the model has SDXL's second text encoder (text_encoder_2/).
int hsd_pipeline_is_sdxl(const struct hsd_pipeline *p);
// Width of the pooled text embedding (text_encoder_2's projection_dim).
int hsd_pipeline_pooled_dim(const struct hsd_pipeline *p);
// Floats of one pass's conditioning (hsd_denoise_item.cond): 77 * C_ctx,
// plus pooled_dim + HSD_SDXL_N_TIME_IDS for SDXL.
size_t hsd_pipeline_cond_floats(const struct hsd_pipeline *p);
// encode_prompt: out [n, 77, C1 + C2] = both encoders' hidden_states[-(clip_skip
// + 2)] side by side, pooled [n, pooled_dim] = text_encoder_2's text_embeds.
enum hsd_status hsd_pipeline_encode_text_sdxl(struct hsd_pipeline *p, float *out, float *pooled,
                                              const char *const *prompts, int n_prompts,
                                              int clip_skip);
// One request's conditioning as hsd_pipeline_generate makes it (its
// prompts, clip skip, micro-conditioning): emb [cfg ? 2 : 1,
// hsd_pipeline_cond_floats()], the negative pass first with CFG; each pass
// is the context [77, C1 + C2], the pooled embedding, the time ids. Both
// encoders run with the request's text-encoder LoRAs (r->lora_scales, as
// diffusers' load_lora_weights patches text_encoder and text_encoder_2).
// The cloud service and the edge's local fallback encode with this.
enum hsd_status hsd_pipeline_encode_sdxl(struct hsd_pipeline *p, const struct hsd_gen_request *r,
                                         int cfg, float *emb);
// add_time_ids of a request: original size, crop top-left, target size,
// each (h, w) / (top, left).
void hsd_pipeline_time_ids(const struct hsd_gen_request *r, float ids[6]);

// Text embeddings from token ids [n, 77] (a GENERATE may carry ids).
enum hsd_status hsd_pipeline_encode_ids(struct hsd_pipeline *p, float *out, const int32_t *ids,
                                        int n, int clip_skip);

// latent [n, C, h, w] (already denoised) -> image [n, 3, 8h, 8w].
enum hsd_status hsd_pipeline_decode(struct hsd_pipeline *p, float *image, const float *latent,
                                    int n, int h, int w);
// diffusers VaeImageProcessor.postprocess to uint8 HWC.
void hsd_pipeline_to_rgb(uint8_t *rgb, const float *image, int n, int H, int W);

#endif
