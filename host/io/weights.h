// A model's weights as a name -> tensor map over one safetensors file, in
// diffusers state-dict names. A diffusers folder's file is used as it is;
// a single-file CompVis/LDM checkpoint is renamed on open
// (io/ldm_names.h), so model code looks weights up by one name scheme only
// (docs/conventions.md "Code shape": loading a weight is a name lookup).
#ifndef HSD_IO_WEIGHTS_H
#define HSD_IO_WEIGHTS_H

#include "core/status.h"
#include "io/safetensors.h"

struct hsd_weights;

// Every tensor of a diffusers safetensors file, names unchanged; `path`
// ending in ".json" is a sharded checkpoint's index (io/weights_index.h):
// every shard it names, as one map.
enum hsd_status hsd_weights_open_diffusers(struct hsd_weights **out, const char *path);
// The weights of a diffusers component folder, as from_pretrained looks for
// them: <base>.safetensors, the fp16 variant <base>.fp16.safetensors, then
// the sharded forms <base>.safetensors.index.json and
// <base>.safetensors.index.fp16.json (base: "diffusion_pytorch_model" or
// "model"). Writes the path to out; HSD_ERR_NOT_FOUND names the folder.
enum hsd_status hsd_weights_find_file(char *out, size_t cap, const char *dir, const char *base);
// The U-Net of a CompVis/LDM single-file checkpoint: tensors under
// "model.diffusion_model." renamed to diffusers names; other keys (VAE,
// text encoder, EMA copies) are ignored.
enum hsd_status hsd_weights_open_ldm_unet(struct hsd_weights **out, const char *path);
// One part of an SD 1.x/2.x single file, renamed to diffusers names: the
// U-Net (model.diffusion_model.*), the VAE (first_stage_model.*), the CLIP
// text encoder (cond_stage_model.transformer.*, transformers' names kept)
// or SD 2.x's OpenCLIP text tower (cond_stage_model.model.*, renamed to
// transformers' CLIPTextModel names, its fused attn.in_proj split into
// q/k/v views and its last block left out: io/ldm_names.h), or one of
// SDXL's two text encoders: CLIP-L (conditioner.embedders.0.transformer.*,
// names kept) and OpenCLIP bigG (conditioner.embedders.1.model.*, renamed
// and split as SD 2.x's, every block kept, text_projection transposed into
// text_projection.weight). Fails naming the prefix when the file has no
// tensor under it.
enum hsd_ldm_part {
    HSD_LDM_UNET,
    HSD_LDM_VAE,
    HSD_LDM_CLIP,
    HSD_LDM_OPENCLIP,
    HSD_LDM_SDXL_CLIP,
    HSD_LDM_SDXL_OPENCLIP
};
enum hsd_status hsd_weights_open_ldm(struct hsd_weights **out, const char *path,
                                     enum hsd_ldm_part part);
// Drops one reference; the file is unmapped with the last one.
void hsd_weights_close(struct hsd_weights *w);
// Takes another reference (a model whose backend reads weights in place
// from the mapping keeps the file open, models/loader.h). Not thread-safe:
// open, retain and close a weights object on one thread at a time.
struct hsd_weights *hsd_weights_retain(const struct hsd_weights *w);

const char *hsd_weights_path(const struct hsd_weights *w);
size_t hsd_weights_count(const struct hsd_weights *w);
// i-th entry in name order: its diffusers name and tensor.
const char *hsd_weights_name_at(const struct hsd_weights *w, size_t i);
const struct hsd_st_tensor *hsd_weights_at(const struct hsd_weights *w, size_t i);
// NULL when absent.
const struct hsd_st_tensor *hsd_weights_find(const struct hsd_weights *w, const char *name);
// Index for hsd_weights_at, or -1 when absent.
long hsd_weights_find_index(const struct hsd_weights *w, const char *name);
// hsd_safetensors_drop on the file behind w: t's bytes were converted or
// copied and need not stay resident.
void hsd_weights_drop(const struct hsd_weights *w, const struct hsd_st_tensor *t);
// Whether any name starts with `prefix`.
int hsd_weights_has_prefix(const struct hsd_weights *w, const char *prefix);

#endif
