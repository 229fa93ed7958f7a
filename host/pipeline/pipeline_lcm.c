// LCM-distilled U-Nets in the pipeline (diffusers
// LatentConsistencyModelPipeline): the guidance scale is a U-Net input (w =
// guidance_scale - 1, embedded; models/unet_guidance.c), so such a model
// runs no classifier-free guidance. LCM-LoRA on an ordinary U-Net keeps
// StableDiffusionPipeline's CFG (guidance 1-2 with the lcm sampler).
#include <stdlib.h>

#include "pipeline/pipeline_internal.h"

int hsd_pipeline_guidance_embedded(const struct hsd_pipeline *p) {
    return hsd_unet_guidance_embedded(p->large);
}

int hsd_pipeline_cfg(const struct hsd_pipeline *p, float guidance_scale) {
    return guidance_scale > 1.0f && !hsd_unet_guidance_embedded(p->large);
}

enum hsd_status hsd_pipeline_guidance_rows(struct hsd_pipeline *p, struct hsd_unet *unet,
                                           const struct hsd_denoise_item *items,
                                           const struct hsd_step_row *rows, int n, int padded) {
    if (!hsd_unet_guidance_embedded(unet)) return HSD_OK;
    if ((size_t)padded > p->guidance_cap) {
        float *w = realloc(p->guidance_w, (size_t)padded * sizeof *w);
        if (!w) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
        p->guidance_w = w;
        p->guidance_cap = (size_t)padded;
    }
    // torch.tensor(self.guidance_scale - 1): a Python float difference.
    for (int r = 0; r < padded; r++) p->guidance_w[r] = 0.0f;
    for (int i = 0; i < n; i++) {
        const float w = (float)((double)items[i].guidance_scale - 1.0);
        p->guidance_w[rows[i].cond_row] = w;
        if (rows[i].uncond_row >= 0) p->guidance_w[rows[i].uncond_row] = w;
    }
    // Padding rows copy row 0's input, so they copy its guidance too.
    for (int r = n; r < padded; r++) p->guidance_w[r] = p->guidance_w[0];
    return hsd_unet_set_guidance(unet, p->guidance_w, padded);
}
