// What a single-file CompVis/LDM checkpoint holds, from its key names alone
// (no weights read): which parts (U-Net, VAE, text encoders) and which model
// family, so hsd can load an SD 1.x, 2.x or SDXL file as a whole pipeline
// and `hsd inspect` can report it. The family
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
    long n_sdxl_clip, n_sdxl_openclip;     // SDXL's embedders 0 (CLIP-L) and 1 (bigG)
    int v_pred_key;  // a tensor named "v_pred": the file says it is v-prediction
                     // (the marker kohya's tools and ComfyUI write and read)
};

// Fails for a path that is not a .safetensors file (pickled .ckpt/.pt/.bin
// are refused: unpickling runs code) or not a valid safetensors file.
enum hsd_status hsd_ldm_detect(struct hsd_ldm_info *info, const char *path);
const char *hsd_ldm_family_name(enum hsd_ldm_family f);
// OK for a file with all parts of SD 1.x, SD 2.x or SDXL-base (both text
// encoders); otherwise a message saying what is missing (the prefix). The
// VAE may be missing when need_vae is 0 (another VAE was given).
enum hsd_status hsd_ldm_require_pipeline(const struct hsd_ldm_info *info, const char *path,
                                         int need_vae);

// The prediction type a single file runs with (SD 2.x 768-v files cannot be
// told from 512-base ones by their weights). force: 0 none, 1 epsilon, 2 v
// (--prediction). Otherwise a "v_pred" key means v; otherwise SD 2.x is
// v-prediction, as diffusers' from_single_file assumes (its default config
// for SD 2.x files is stabilityai/stable-diffusion-2-1, v_prediction), and
// SD 1.x epsilon. Returns 1 for v, 0 for epsilon; *why says how it was
// decided ("assumed: ...", "--prediction", "the file's v_pred key").
int hsd_ldm_prediction_v(const struct hsd_ldm_info *info, int force, const char **why);

#endif
