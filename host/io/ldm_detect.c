#include "io/ldm_detect.h"

#include <string.h>

#include "io/ldm_names.h"
#include "io/safetensors.h"

#define SD2_TEXT_PREFIX HSD_LDM_OPENCLIP_PREFIX
#define SDXL_TEXT_PREFIX HSD_LDM_SDXL_PREFIX

static int has_prefix(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

enum hsd_status hsd_ldm_detect(struct hsd_ldm_info *info, const char *path) {
    memset(info, 0, sizeof *info);
    if (!ends_with(path, ".safetensors"))
        return hsd_fail(HSD_ERR_UNSUPPORTED,
                        "%s: single-file checkpoints must be .safetensors (pickled .ckpt files "
                        "are not read: they can run code)",
                        path);
    struct hsd_safetensors *st;
    enum hsd_status s = hsd_safetensors_open(&st, path);
    if (s) return s;
    long sd1 = 0, sd2 = 0, sdxl = 0;
    for (size_t i = 0; i < hsd_safetensors_count(st); i++) {
        const char *n = hsd_safetensors_at(st, i)->name;
        if (has_prefix(n, HSD_LDM_UNET_PREFIX)) info->n_unet++;
        else if (has_prefix(n, HSD_LDM_VAE_PREFIX)) info->n_vae++;
        else if (has_prefix(n, HSD_LDM_CLIP_PREFIX)) sd1++;
        else if (has_prefix(n, SD2_TEXT_PREFIX)) sd2++;
        else if (has_prefix(n, SDXL_TEXT_PREFIX)) {
            sdxl++;
            if (has_prefix(n, HSD_LDM_SDXL_CLIP_PREFIX)) info->n_sdxl_clip++;
            else if (has_prefix(n, HSD_LDM_SDXL_OPENCLIP_PREFIX)) info->n_sdxl_openclip++;
        }
        else info->n_other++;
        if (!strcmp(n, "v_pred")) info->v_pred_key = 1;
    }
    hsd_safetensors_close(st);
    // SDXL's embedders are the decisive marker (its U-Net sits under the
    // same prefix); then OpenCLIP (SD 2.x), then CLIP-L (SD 1.x).
    info->family = sdxl ? HSD_LDM_FAMILY_SDXL
                   : sd2 ? HSD_LDM_FAMILY_SD2
                   : sd1 ? HSD_LDM_FAMILY_SD1
                         : HSD_LDM_FAMILY_NONE;
    info->n_text = sd1 + sd2 + sdxl;
    return HSD_OK;
}

const char *hsd_ldm_family_name(enum hsd_ldm_family f) {
    switch (f) {
    case HSD_LDM_FAMILY_SD1: return "SD 1.x";
    case HSD_LDM_FAMILY_SD2: return "SD 2.x";
    case HSD_LDM_FAMILY_SDXL: return "SDXL";
    case HSD_LDM_FAMILY_NONE: break;
    }
    return "none (no text encoder)";
}

// SDXL-base files: CLIP-L as embedder 0, OpenCLIP bigG as embedder 1
// (diffusers single_file_utils CHECKPOINT_KEY_NAMES clip_sdxl /
// open_clip_sdxl). The refiner's lone OpenCLIP sits at embedder 0.
static enum hsd_status require_sdxl(const struct hsd_ldm_info *info, const char *path,
                                    int need_vae) {
    const char *missing =
        !info->n_unet ? HSD_LDM_UNET_PREFIX " (the U-Net)"
        : !info->n_sdxl_clip ? HSD_LDM_SDXL_CLIP_PREFIX " (the CLIP-L text encoder; an SDXL "
                               "refiner file, which has none, is not supported)"
        : !info->n_sdxl_openclip ? HSD_LDM_SDXL_OPENCLIP_PREFIX " (the OpenCLIP bigG text encoder)"
        : !info->n_vae && need_vae ? HSD_LDM_VAE_PREFIX " (the VAE; or pass --vae DIR)"
                                   : NULL;
    if (missing)
        return hsd_fail(HSD_ERR_NOT_FOUND, "%s: not a complete SDXL checkpoint: no tensor under %s",
                        path, missing);
    return HSD_OK;
}

enum hsd_status hsd_ldm_require_pipeline(const struct hsd_ldm_info *info, const char *path,
                                         int need_vae) {
    if (info->family == HSD_LDM_FAMILY_SDXL) return require_sdxl(info, path, need_vae);
    const char *text = info->family == HSD_LDM_FAMILY_SD2
                           ? SD2_TEXT_PREFIX " (the OpenCLIP text encoder)"
                           : HSD_LDM_CLIP_PREFIX " (the CLIP text encoder)";
    const char *missing = !info->n_unet   ? HSD_LDM_UNET_PREFIX " (the U-Net)"
                          : !info->n_text ? text
                          : !info->n_vae && need_vae ? HSD_LDM_VAE_PREFIX " (the VAE; or pass --vae DIR)"
                                          : NULL;
    if (missing)
        return hsd_fail(HSD_ERR_NOT_FOUND,
                        "%s: not a complete %s checkpoint: no tensor under %s", path,
                        info->family == HSD_LDM_FAMILY_SD2 ? "SD 2.x" : "SD 1.x", missing);
    return HSD_OK;
}

int hsd_ldm_prediction_v(const struct hsd_ldm_info *info, int force, const char **why) {
    if (force) {
        *why = "as --prediction says";
        return force == 2;
    }
    if (info->v_pred_key) {
        *why = "the file has a 'v_pred' key";
        return 1;
    }
    if (info->family == HSD_LDM_FAMILY_SD2) {
        *why = "assumed: SD 2.1 768-v, diffusers' default for SD 2.x files; not visible in the "
               "weights: pass --prediction epsilon for a 2.x-base file";
        return 1;
    }
    *why = info->family == HSD_LDM_FAMILY_SDXL
               ? "assumed: SDXL-base (stabilityai/stable-diffusion-xl-base-1.0's scheduler "
                 "config); not visible in the weights"
               : "assumed: SD 1.x; not visible in the weights";
    return 0;
}
