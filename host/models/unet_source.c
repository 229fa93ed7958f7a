// Finding a U-Net on disk: a diffusers pipeline folder (root/unet/...), a
// unet folder itself, or a single-file CompVis/LDM checkpoint whose config
// is inferred from the tensor shapes the way diffusers' single-file loader
// infers it for SD checkpoints.
#include <stdio.h>
#include <string.h>

#include "models/unet.h"
#include "io/file.h"
#include "io/ldm_detect.h"

// Config from the shapes; heads64: the file is SD 2.x's or SDXL's (64-wide
// heads).
static enum hsd_status infer(struct hsd_unet_config *cfg, const struct hsd_weights *w,
                             int heads64);

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
        if (!s)
            s = infer(&src->cfg, src->weights,
                      info.family == HSD_LDM_FAMILY_SD2 || info.family == HSD_LDM_FAMILY_SDXL);
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

// Transformer depth of one attention layer ("<pre>.attentions.<l>.").
static int depth_of(const struct hsd_weights *w, const char *block, int l) {
    char tb[200];
    if (strlen(block) > 120) return 0;
    snprintf(tb, sizeof tb, "%s.attentions.%d.transformer_blocks.", block, l);
    return count_indexed(w, tb);
}

// Per-layer transformer depths where they differ within a block (SSD-1B's
// kind, diffusers' transformer_layers_per_block lists of lists), the mid
// block's where it differs from the last level's: unet_config.h tl_*.
// Uniform blocks (SDXL-base 1/2/10, KOALA) keep the per-block form.
static void infer_depths(struct hsd_unet_config *cfg, const struct hsd_weights *w) {
    char pre[160];
    const int nb = cfg->n_blocks;
    for (int i = 0; i < nb; i++) {
        int lpb = cfg->layers_per_block[i], up = nb - 1 - i, same = 1;
        snprintf(pre, sizeof pre, "down_blocks.%d", i);
        for (int l = 0; cfg->down[i] == HSD_UNET_BLOCK_CROSS_ATTN && l < lpb; l++)
            same &= depth_of(w, pre, l) == cfg->transformer_layers[i];
        for (int l = 0; !same && l < lpb && l < HSD_UNET_MAX_LAYERS; l++)
            cfg->tl_down[i][l] = depth_of(w, pre, l);
        same = 1;
        snprintf(pre, sizeof pre, "up_blocks.%d", up);
        for (int l = 0; cfg->up[up] == HSD_UNET_BLOCK_CROSS_ATTN && l <= lpb; l++)
            same &= depth_of(w, pre, l) == cfg->transformer_layers[i];
        for (int l = 0; !same && l <= lpb && l <= HSD_UNET_MAX_LAYERS; l++)
            cfg->tl_up[up][l] = depth_of(w, pre, l);
    }
    int mid = depth_of(w, "mid_block", 0);
    if (cfg->has_mid_block && mid != cfg->transformer_layers[nb - 1]) cfg->tl_mid = mid;
}

static enum hsd_status infer(struct hsd_unet_config *cfg, const struct hsd_weights *w,
                             int heads64) {
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
    // SDXL's added conditioning (label_emb in the file): text_time, with
    // addition_time_embed_dim 256 as diffusers' create_unet_diffusers_config
    // sets for every SDXL file (the Fourier width is not in the shapes).
    const struct hsd_st_tensor *ae = hsd_weights_find(w, "add_embedding.linear_1.weight");
    if (ae && ae->ndim == 2 && ae->shape[1] > 0 && ae->shape[1] <= 1 << 16) {
        cfg->add_text_time = 1;
        cfg->addition_time_embed_dim = 256;
        cfg->sample_size = 128;  // 1024 px: diffusers' image_size for SDXL files
        cfg->projection_class_embeddings_input_dim = (int)ae->shape[1];
        heads64 = 1;  // SDXL's heads are 64 wide too (num_head_channels 64)
    }
    infer_depths(cfg, w);
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
    // (context 1024, or a file with SD 2.x's text tower) and SDXL have
    // num_head_channels = 64.
    if (ctx_dim == 1024) heads64 = 1;
    for (int i = 0; i < nb; i++) {
        if (heads64 && cfg->block_out_channels[i] % 64 == 0)
            cfg->heads[i] = cfg->block_out_channels[i] / 64;
        else
            cfg->heads[i] = 8;
    }
    if (ctx_dim != 768 && !heads64)
        return hsd_fail(HSD_ERR_UNSUPPORTED,
                        "%s: cannot infer attention heads for cross_attention_dim %d (only SD "
                        "1.x = 768, SD 2.x = 1024 and SDXL's text_time U-Nets are known); pass "
                        "a config.json with --config",
                        path, ctx_dim);
    return hsd_unet_config_validate(cfg, path);
}

enum hsd_status hsd_unet_config_infer(struct hsd_unet_config *cfg, const struct hsd_weights *w) {
    return infer(cfg, w, 0);
}
