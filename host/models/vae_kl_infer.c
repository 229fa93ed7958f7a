// AutoencoderKL config from the weight shapes of an SD single-file
// checkpoint's VAE (already renamed to diffusers names, io/ldm_vae_names.c),
// as diffusers' single_file_utils create_vae_diffusers_config fills it for
// SD: block widths from each encoder level's resnets, layers per block from
// their count, the latent channels from post_quant_conv/decoder.conv_in;
// what shapes cannot show takes SD's values (32 norm groups, scaling factor
// 0.18215, SiLU).
#include <stdio.h>
#include <string.h>

#include "models/vae_internal.h"

static int count_prefixed(const struct hsd_weights *w, const char *fmt, int a) {
    int n = 0;
    char pre[128];
    for (; n < 1000; n++) {
        snprintf(pre, sizeof pre, fmt, a, n);
        if (!hsd_weights_has_prefix(w, pre)) break;
    }
    return n;
}

enum hsd_status hsd_vae_kl_config_infer(struct hsd_vae *v, const struct hsd_weights *w) {
    const char *path = hsd_weights_path(w);
    struct vae_kl *k = &v->m.kl;
    v->kind = HSD_VAE_KL;
    v->scaling_factor = 0.18215f;
    v->shift_factor = 0.0f;
    k->groups = 32;
    k->n_levels = 0;
    char name[128];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "encoder.down_blocks.%d.resnets.0.conv2.weight", i);
        const struct hsd_st_tensor *t = hsd_weights_find(w, name);
        if (!t) break;
        if (i == VAE_MAX_LEVELS || t->ndim != 4 || t->shape[0] < 1 || t->shape[0] > 1 << 16)
            return hsd_fail(HSD_ERR_UNSUPPORTED, "%s: VAE tensor '%s': more than %d levels or "
                            "not a 4-D conv weight", path, name, VAE_MAX_LEVELS);
        k->boc[i] = (int)t->shape[0];
        k->n_levels = i + 1;
    }
    k->layers_per_block = count_prefixed(w, "encoder.down_blocks.%d.resnets.%d.", 0);
    const struct hsd_st_tensor *ci = hsd_weights_find(w, "decoder.conv_in.weight");
    if (!k->n_levels || !k->layers_per_block || !ci || ci->ndim != 4 || ci->shape[1] < 1 ||
        ci->shape[1] > 1024)
        return hsd_fail(HSD_ERR_FORMAT,
                        "%s: cannot infer the VAE config: encoder levels or decoder.conv_in "
                        "missing (the file's first_stage_model.* is not an AutoencoderKL)",
                        path);
    // The bound vae_kl.c's config reader puts on layers_per_block.
    if (k->layers_per_block > 64)
        return hsd_fail(HSD_ERR_UNSUPPORTED, "%s: VAE with %d resnets per level (at most 64)",
                        path, k->layers_per_block);
    k->latent = (int)ci->shape[1];
    k->use_quant_conv = hsd_weights_find(w, "quant_conv.weight") != NULL;
    k->use_post_quant_conv = hsd_weights_find(w, "post_quant_conv.weight") != NULL;
    k->mid_attn = hsd_weights_has_prefix(w, "encoder.mid_block.attentions.0.");
    for (int i = 0; i < k->n_levels; i++)
        if (k->boc[i] % k->groups)
            return hsd_fail(HSD_ERR_UNSUPPORTED,
                            "%s: VAE level %d is %d channels wide, not a multiple of SD's 32 "
                            "norm groups; use --vae DIR with a config.json",
                            path, i, k->boc[i]);
    v->latent_channels = k->latent;
    v->scale = 1 << (k->n_levels - 1);
    return HSD_OK;
}
