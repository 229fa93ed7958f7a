// UNet2DConditionModel (diffusers models/unets/unet_2d_condition.py) on any
// backend: config from config.json (or inferred from a single-file
// checkpoint), per-layer widths from the weight shapes, so SD 1.x, SD 2.x,
// BK-SDM base/small/tiny and structurally pruned U-Nets (Hybrid-SD 224M:
// narrower ResNet inner widths, fewer attention heads) all load.
#ifndef HSD_MODELS_UNET_H
#define HSD_MODELS_UNET_H

#include <stdatomic.h>
#include <stdint.h>

#include "backend/backend.h"
#include "core/dtype.h"
#include "io/weights.h"
#include "models/unet_config.h"

// Where a model came from: a diffusers folder (root with unet/ or the unet
// folder itself) or a single-file CompVis/LDM checkpoint.
struct hsd_unet_source {
    struct hsd_unet_config cfg;
    struct hsd_weights *weights;
    int single_file;          // 1: LDM checkpoint, config inferred
    char config_path[4096];   // "" when inferred
    char weights_path[4096];
};

// Resolves `path` and opens config + weights. `config_override` (may be
// NULL) replaces config.json or the inferred config.
enum hsd_status hsd_unet_source_open(struct hsd_unet_source *src, const char *path,
                                     const char *config_override);
void hsd_unet_source_close(struct hsd_unet_source *src);

// A source with no file: a named configuration ("sd15", "sd2-base",
// "bksdm-base", "bksdm-small", "bksdm-tiny") and random weights
// (hsd_unet_create fills them with PyTorch-default-scale values). For
// benchmarks without multi-GB downloads.
enum hsd_status hsd_unet_source_preset(struct hsd_unet_source *src, const char *name);
// Comma-separated list of preset names, for help texts.
const char *hsd_unet_preset_names(void);

// Infers a config from diffusers-named U-Net weights (single-file loading).
enum hsd_status hsd_unet_config_infer(struct hsd_unet_config *cfg, const struct hsd_weights *w);

struct hsd_unet_summary {
    int64_t params;
    enum hsd_dtype dtype;        // of the weights on disk (first tensor's)
    int mixed_dtypes;            // 1 if tensors differ in dtype
    int pruned;                  // narrower ResNets or fewer heads than config
    int n_resnets_pruned, n_attn_pruned;
    char variant[128];           // "SD1.x", "BK-SDM-Tiny", ...
};

struct hsd_unet;

// Builds the model from `src` (random weights when src->weights is NULL)
// and uploads weights to `be`. With be == NULL
// only checks every tensor against the config (for `hsd inspect`).
enum hsd_status hsd_unet_create(struct hsd_unet **out, const struct hsd_unet_source *src,
                                struct hsd_backend *be);
void hsd_unet_free(struct hsd_unet *u);
const struct hsd_unet_config *hsd_unet_get_config(const struct hsd_unet *u);
void hsd_unet_get_summary(const struct hsd_unet *u, struct hsd_unet_summary *s);
// Latent height/width must be multiples of this (2^(levels-1)).
int hsd_unet_size_multiple(const struct hsd_unet *u);

// One forward pass on host fp32 tensors in diffusers' layouts:
//   out     [n, out_channels, h, w]   (NCHW)
//   sample  [n, in_channels, h, w]    (NCHW)
//   t       [n]                       per-sample timesteps
//   ctx     [n, t_ctx, cross_attention_dim]  per-sample text embeddings
// Activation memory is planned once per (n, h, w, t_ctx) and reused.
enum hsd_status hsd_unet_forward(struct hsd_unet *u, float *out, const float *sample,
                                 const float *t, const float *ctx, int n, int h, int w,
                                 int t_ctx);

// The same forward on inputs already in backend memory, NHWC, as the
// device-resident step gathers them (host/pipeline/resident_step.c):
//   x    act  [n, h, w, in_channels]
//   t    fp32 [n]
//   ctx  act  [n, t_ctx, cross_attention_dim]
// *y receives the output act [n, h, w, out_channels] in the U-Net's arena,
// valid until its next forward. No transfer. record = 1: the call records
// and replays its own graph (keyed by the shape and x); 0: it does not (the
// caller records a larger graph around it, or runs eagerly).
// HSD_ERR_UNSUPPORTED for a U-Net with center_input_sample (use
// hsd_unet_forward).
enum hsd_status hsd_unet_forward_dev(struct hsd_unet *u, const void **y, const void *x,
                                     const void *t, const void *ctx, int n, int h, int w,
                                     int t_ctx, int record);

// Gives the activation arena's pages back to the backend (backend.h
// discard, a CPU's madvise) once its outputs are read: the resident path
// calls it before the VAE decodes, hsd_unet_forward after every call.
void hsd_unet_discard_arena(struct hsd_unet *u);

// The activation arena's address (part of a graph key: graphs recorded on
// it replay only while it stays).
const void *hsd_unet_arena(const struct hsd_unet *u);

// SDXL's added conditioning (diffusers added_cond_kwargs), for U-Nets with
// addition_embed_type "text_time": per sample the pooled text embedding
// and the micro-conditioning time ids (original size, crop top-left,
// target size: 6 for SDXL-base). text_embeds_dim + n_time_ids *
// addition_time_embed_dim must equal projection_class_embeddings_input_dim.
struct hsd_unet_added_cond {
    const float *text_embeds;  // [n, text_embeds_dim]
    const float *time_ids;     // [n, n_time_ids]
    int text_embeds_dim, n_time_ids;
};

// SDXL-base's time ids: original (h, w), crop top-left (top, left),
// target (h, w) (diffusers StableDiffusionXLPipeline._get_add_time_ids).
#define HSD_SDXL_N_TIME_IDS 6

// The pooled text width a text_time U-Net takes with HSD_SDXL_N_TIME_IDS
// time ids (projection_class_embeddings_input_dim - 6 *
// addition_time_embed_dim: 1280 for SDXL); 0 without addition embedding
// or when the config leaves no room for the pooled embedding.
int hsd_unet_text_embeds_dim(const struct hsd_unet_config *cfg);

// hsd_unet_forward with the added conditioning: required (non-NULL) for a
// text_time U-Net, NULL for every other one.
enum hsd_status hsd_unet_forward_cond(struct hsd_unet *u, float *out, const float *sample,
                                      const float *t, const float *ctx,
                                      const struct hsd_unet_added_cond *add, int n, int h, int w,
                                      int t_ctx);

#define HSD_UNET_MAX_PLANS 64  // shapes whose plans a U-Net keeps (as many as CUDA graphs)

// Plans (n, h, w, t_ctx) without running it: the planning pass (once per
// shape, remembered), the arena grown to it, the host staging sized. A
// forward of a planned shape then allocates nothing (warm-up).
enum hsd_status hsd_unet_plan(struct hsd_unet *u, int n, int h, int w, int t_ctx);

// FLOPs of one forward at the last (n, h, w, t_ctx) run (multiply-add = 2).
double hsd_unet_flops(const struct hsd_unet *u);

// Debug/test hook: called after named stages ("time_emb", "conv_in",
// "down.<i>", "mid", "up.<i>", "conv_out_in") with the backend buffer of
// an NHWC map [n, h, w, c] (time_emb: h = w = 1).
typedef void (*hsd_unet_probe_fn)(void *user, const char *name, const void *buf, int n, int h,
                                  int w, int c);
void hsd_unet_set_probe(struct hsd_unet *u, hsd_unet_probe_fn fn, void *user);

// LoRA (models/lora.h): attaches f's U-Net layers (every one must fit
// this U-Net, else nothing is attached and the error says which did not);
// *adapter gets its index. Attached adapters stay off until selected:
// scale[b * adapters + a] for the next forwards' rows b < rows (0 = off).
struct hsd_lora_file;
enum hsd_status hsd_unet_lora_attach(struct hsd_unet *u, const struct hsd_lora_file *f,
                                     const char *model, int *adapter);
enum hsd_status hsd_unet_lora_select(struct hsd_unet *u, const float *scale, int rows);
int hsd_unet_lora_adapters(const struct hsd_unet *u);
// A LoRA of rank `rank` with random weights on every layer of u that LoRA
// targets (benchmarks: hsd bench unet --loras).
enum hsd_status hsd_unet_lora_random(struct hsd_lora_file **out, const struct hsd_unet *u,
                                     int rank, uint64_t seed);

// LCM-distilled U-Nets (config time_cond_proj_dim): guidance is an input,
// not classifier-free guidance. hsd_unet_guidance_embedded says whether
// this U-Net takes it; set_guidance gives the next forwards' rows their w
// = guidance_scale - 1 (diffusers LatentConsistencyModelPipeline); rows
// past `rows` (or w NULL) get w = 0. A no-op for other U-Nets.
int hsd_unet_guidance_embedded(const struct hsd_unet *u);
enum hsd_status hsd_unet_set_guidance(struct hsd_unet *u, const float *w, int rows);
// Forward passes stop before their next op (HSD_ERR_CANCELLED) while *flag
// is non-zero; another thread sets it (the scheduler, when every request of
// the call is cancelled or past its deadline). NULL: never stop.
void hsd_unet_set_abort(struct hsd_unet *u, const atomic_int *flag);
// HSD_ERR_CANCELLED while that flag is set, else HSD_OK: for callers that
// record a whole step in one graph and can only stop before it.
enum hsd_status hsd_unet_check_abort(const struct hsd_unet *u);

#endif
