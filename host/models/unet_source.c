// Finding a U-Net on disk: a diffusers pipeline folder (root/unet/...), a
// unet folder itself, or a single-file CompVis/LDM checkpoint whose config
// is inferred from the tensor shapes the way diffusers' single-file loader
// infers it for SD checkpoints.
#include <stdio.h>
#include <string.h>

#include "models/unet.h"
#include "io/file.h"
#include "io/ldm_detect.h"

// Config from the shapes; sd2: the file is SD 2.x's (64-wide heads).
static enum hsd_status infer(struct hsd_unet_config *cfg, const struct hsd_weights *w,
                             int sd2);

// Picks the weights file of a unet folder (io/weights.h: fp32, fp16
// variant, sharded).
static enum hsd_status find_unet_files(struct hsd_unet_source *src, const char *dir) {
    if (hsd_path_too_long(snprintf(src->config_path, sizeof src->config_path, "%s/config.json", dir),
                 sizeof src->config_path))
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: path too long", dir);
    if (!hsd_is_file(src->config_path))
        return hsd_fail(HSD_ERR_NOT_FOUND, "%s: no config.json in the unet folder", dir);
    return hsd_weights_find_file(src->weights_path, sizeof src->weights_path, dir,
                                 "diffusion_pytorch_model");
}

enum hsd_status hsd_unet_source_open(struct hsd_unet_source *src, const char *path,
                                     const char *config_override) {
    memset(src, 0, sizeof *src);
    enum hsd_status s;
    if (hsd_is_dir(path)) {
        char unet_dir[4000];
        if (hsd_path_too_long(snprintf(unet_dir, sizeof unet_dir, "%s/unet", path), sizeof unet_dir))
            return hsd_fail(HSD_ERR_INVALID_ARG, "%s: path too long", path);
        if (hsd_is_dir(unet_dir)) s = find_unet_files(src, unet_dir);
        else s = find_unet_files(src, path);
        if (s) return s;
        if (config_override &&
            hsd_path_too_long(snprintf(src->config_path, sizeof src->config_path, "%s", config_override),
                     sizeof src->config_path))
            return hsd_fail(HSD_ERR_INVALID_ARG, "%s: path too long", config_override);
        if ((s = hsd_unet_config_load(&src->cfg, src->config_path))) return s;
        return hsd_weights_open_diffusers(&src->weights, src->weights_path);
    }
    if (!hsd_is_file(path))
        return hsd_fail(HSD_ERR_NOT_FOUND, "%s: no such model folder or checkpoint file", path);
    size_t l = strlen(path);
    if (l < 12 || strcmp(path + l - 12, ".safetensors"))
        return hsd_fail(HSD_ERR_UNSUPPORTED,
                        "%s: single-file checkpoints must be .safetensors (pickled .ckpt files "
                        "are not read: they can run code)",
                        path);
    src->single_file = 1;
    if (hsd_path_too_long(snprintf(src->weights_path, sizeof src->weights_path, "%s", path),
                 sizeof src->weights_path) ||
        (config_override && strlen(config_override) >= sizeof src->config_path))
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: path too long", path);
    if ((s = hsd_weights_open_ldm_unet(&src->weights, path))) return s;
    if (config_override) {
        memcpy(src->config_path, config_override, strlen(config_override) + 1);
        s = hsd_unet_config_load(&src->cfg, config_override);
    } else {
        struct hsd_ldm_info info;
        s = hsd_ldm_detect(&info, path);
        if (!s) s = infer(&src->cfg, src->weights, info.family == HSD_LDM_FAMILY_SD2);
    }
    if (s) {
        hsd_weights_close(src->weights);
        src->weights = NULL;
    }
    return s;
}

void hsd_unet_source_close(struct hsd_unet_source *src) {
    hsd_weights_close(src->weights);
    src->weights = NULL;
}


// Number of consecutive indices i = 0, 1, ... for which some tensor name
// starts with `pre` + i + ".".
static int count_indexed(const struct hsd_weights *w, const char *pre) {
    int n = 0;
    char prefix[240];
    for (;;) {
        snprintf(prefix, sizeof prefix, "%s%d.", pre, n);
        if (!hsd_weights_has_prefix(w, prefix)) return n;
        n++;
    }
}

static enum hsd_status infer(struct hsd_unet_config *cfg, const struct hsd_weights *w,
                             int sd2) {
    const char *path = hsd_weights_path(w);
    memset(cfg, 0, sizeof *cfg);
    const struct hsd_st_tensor *t = hsd_weights_find(w, "conv_in.weight");
    const struct hsd_st_tensor *o = hsd_weights_find(w, "conv_out.weight");
    if (!t || t->ndim != 4 || !o || o->ndim != 4)
        return hsd_fail(HSD_ERR_NOT_FOUND, "%s: cannot infer the U-Net config: conv_in/conv_out "
                        "missing or not 4-D", path);
    cfg->in_channels = (int)t->shape[1];
    cfg->out_channels = (int)o->shape[0];
    cfg->sample_size = 64;
    cfg->norm_num_groups = 32;
    cfg->norm_eps = 1e-5f;
    cfg->flip_sin_to_cos = 1;
    cfg->mid_block_scale_factor = 1.0f;
    cfg->downsample_padding = 1;
    int nb = 0;
    char pre[160];
    for (;;) {
        snprintf(pre, sizeof pre, "down_blocks.%d.resnets.", nb);
        if (nb == HSD_UNET_MAX_BLOCKS || !count_indexed(w, pre)) break;
        nb++;
    }
    if (nb == 0)
        return hsd_fail(HSD_ERR_FORMAT, "%s: cannot infer the U-Net config: no down blocks",
                        path);
    cfg->n_blocks = nb;
    int ctx_dim = 0, linear = 0;
    for (int i = 0; i < nb; i++) {
        char c2name[160];
        snprintf(c2name, sizeof c2name, "down_blocks.%d.resnets.0.conv2.weight", i);
        const struct hsd_st_tensor *c2 = hsd_weights_find(w, c2name);
        if (!c2 || c2->ndim != 4)
            return hsd_fail(HSD_ERR_FORMAT, "%s: cannot infer block %d width", path, i);
        cfg->block_out_channels[i] = (int)c2->shape[0];
        snprintf(pre, sizeof pre, "down_blocks.%d.resnets.", i);
        cfg->layers_per_block[i] = count_indexed(w, pre);
        snprintf(pre, sizeof pre, "down_blocks.%d.attentions.", i);
        int attn = count_indexed(w, pre) > 0;
        cfg->down[i] = attn ? HSD_UNET_BLOCK_CROSS_ATTN : HSD_UNET_BLOCK_PLAIN;
        int up = nb - 1 - i;
        snprintf(pre, sizeof pre, "up_blocks.%d.attentions.", up);
        cfg->up[up] = count_indexed(w, pre) > 0 ? HSD_UNET_BLOCK_CROSS_ATTN
                                                : HSD_UNET_BLOCK_PLAIN;
        cfg->transformer_layers[i] = 1;
        if (attn || cfg->up[up] == HSD_UNET_BLOCK_CROSS_ATTN) {
            // The first attention of the level (down side, else up side).
            if (attn) snprintf(pre, sizeof pre, "down_blocks.%d.attentions.0.", i);
            else snprintf(pre, sizeof pre, "up_blocks.%d.attentions.0.", up);
            char tb[200];
            snprintf(tb, sizeof tb, "%stransformer_blocks.", pre);
            cfg->transformer_layers[i] = count_indexed(w, tb);
            char name[240];
            snprintf(name, sizeof name, "%stransformer_blocks.0.attn2.to_k.weight", pre);
            const struct hsd_st_tensor *k = hsd_weights_find(w, name);
            if (k && k->ndim == 2) ctx_dim = (int)k->shape[1];
            snprintf(name, sizeof name, "%sproj_in.weight", pre);
            const struct hsd_st_tensor *p = hsd_weights_find(w, name);
            if (p) linear = p->ndim == 2;
        }
    }
    cfg->has_mid_block = hsd_weights_has_prefix(w, "mid_block.");
    // LCM-distilled U-Nets carry the guidance embedding's projection
    // ([c0, time_cond_proj_dim], diffusers TimestepEmbedding.cond_proj).
    const struct hsd_st_tensor *cp = hsd_weights_find(w, "time_embedding.cond_proj.weight");
    if (cp && cp->ndim == 2 && cp->shape[1] >= 1 && cp->shape[1] <= 4096)
        cfg->time_cond_proj_dim = (int)cp->shape[1];
    if (ctx_dim == 0)
        return hsd_fail(HSD_ERR_FORMAT, "%s: cannot infer cross_attention_dim: no attention "
                        "layers", path);
    cfg->cross_attention_dim = ctx_dim;
    cfg->use_linear_projection = linear;
    // Head counts are not visible in shapes. The original LDM configs fix
    // them: SD 1.x (context 768) has num_heads = 8 per block; SD 2.x
    // (context 1024, or a file with SD 2.x's text tower) has
    // num_head_channels = 64.
    if (ctx_dim == 1024) sd2 = 1;
    for (int i = 0; i < nb; i++) {
        if (sd2 && cfg->block_out_channels[i] % 64 == 0)
            cfg->heads[i] = cfg->block_out_channels[i] / 64;
        else
            cfg->heads[i] = 8;
    }
    if (ctx_dim != 768 && !sd2)
        return hsd_fail(HSD_ERR_UNSUPPORTED,
                        "%s: cannot infer attention heads for cross_attention_dim %d (only SD "
                        "1.x = 768 and SD 2.x = 1024 are known); pass a config.json with --config",
                        path, ctx_dim);
    return hsd_unet_config_validate(cfg, path);
}

enum hsd_status hsd_unet_config_infer(struct hsd_unet_config *cfg, const struct hsd_weights *w) {
    return infer(cfg, w, 0);
}
