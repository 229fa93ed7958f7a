// What a single-file CompVis/LDM checkpoint holds, from its key names alone
// (no weights read): which parts (U-Net, VAE, text encoders) and which model
// family, so hsd can load an SD 1.x file as a whole pipeline, refuse SD 2.x
// and SDXL files by name, and `hsd inspect` can report it. The family
// markers are the text encoders' prefixes, as diffusers'
// single_file_utils infer_diffusers_model_type tells them apart:
//   SD 1.x  cond_stage_model.transformer.*   (transformers CLIPTextModel, CLIP-L)
//   SD 2.x  cond_stage_model.model.*         (OpenCLIP ViT-H)
//   SDXL    conditioner.embedders.*          (CLIP-L + OpenCLIP bigG)
#ifndef HSD_IO_LDM_DETECT_H
#define HSD_IO_LDM_DETECT_H

#include "core/status.h"

enum hsd_ldm_family {
    HSD_LDM_FAMILY_NONE,  // no text encoder: a U-Net (and maybe VAE) only
    HSD_LDM_FAMILY_SD1,
    HSD_LDM_FAMILY_SD2,
    HSD_LDM_FAMILY_SDXL,
};

struct hsd_ldm_info {
    enum hsd_ldm_family family;
    long n_unet, n_vae, n_text, n_other;  // tensors per part
};

// Fails for a path that is not a .safetensors file (pickled .ckpt/.pt/.bin
// are refused: unpickling runs code) or not a valid safetensors file.
enum hsd_status hsd_ldm_detect(struct hsd_ldm_info *info, const char *path);
const char *hsd_ldm_family_name(enum hsd_ldm_family f);
// OK for a file with all three SD 1.x parts; otherwise a message saying what
// is missing (the prefix) or that the family is not supported yet. The VAE
// may be missing when need_vae is 0 (another VAE was given).
enum hsd_status hsd_ldm_require_sd1(const struct hsd_ldm_info *info, const char *path,
                                    int need_vae);

#endif
