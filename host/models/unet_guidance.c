// LCM-distilled U-Nets (time_cond_proj_dim): the guidance scale enters as
// an embedding added to the timestep embedding instead of as classifier-
// free guidance. diffusers pipeline_latent_consistency_text2img.py
// get_guidance_scale_embedding, in its float32 order:
//   w = (guidance_scale - 1) * 1000; half = dim // 2
//   emb = exp(arange(half) * -(log(10000) / (half - 1)))
//   emb = cat([sin(w * emb), cos(w * emb)]), zero-padded to an odd dim.
#include <math.h>
#include <stdlib.h>

#include "models/unet_internal.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

static void embed(float *out, float w, int dim) {
    const int half = dim / 2;
    const float w1000 = w * 1000.0f;
    const float step = logf(10000.0f) / (float)(half - 1);
    for (int j = 0; j < half; j++) {
        const float a = w1000 * expf((float)j * -step);
        out[j] = sinf(a);
        out[half + j] = cosf(a);
    }
    if (dim % 2) out[dim - 1] = 0.0f;
}

int hsd_unet_guidance_embedded(const struct hsd_unet *u) { return u->cfg.time_cond_proj_dim > 0; }

enum hsd_status hsd_unet_set_guidance(struct hsd_unet *u, const float *w, int rows) {
    const int dim = u->cfg.time_cond_proj_dim;
    if (!dim) return HSD_OK;
    if (dim < 4)
        return hsd_fail(HSD_ERR_UNSUPPORTED, "unet: time_cond_proj_dim %d < 4", dim);
    if (rows > u->guidance_cap) {
        float *e = realloc(u->guidance_emb, (size_t)rows * dim * sizeof *e);
        if (!e) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
        u->guidance_emb = e;
        u->guidance_cap = rows;
    }
    for (int b = 0; b < rows; b++) embed(u->guidance_emb + (size_t)b * dim, w ? w[b] : 0.0f, dim);
    u->guidance_rows = w ? rows : 0;
    return HSD_OK;
}

void hsd_unet_guidance_row(const struct hsd_unet *u, float *out, int row) {
    const int dim = u->cfg.time_cond_proj_dim;
    if (row < u->guidance_rows) {
        for (int j = 0; j < dim; j++) out[j] = u->guidance_emb[(size_t)row * dim + j];
    } else {
        embed(out, 0.0f, dim);
    }
}
