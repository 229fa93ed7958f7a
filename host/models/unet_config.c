// config.json -> struct hsd_unet_config, following the defaults and the
// argument handling of diffusers UNet2DConditionModel.__init__.
#include "models/unet_config.h"
#include "models/unet.h"
#include "io/file.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "io/config_json.h"

// Upper bounds that keep arithmetic on widths far from overflow; real SD
// models are orders of magnitude below them.
enum { MAX_CHANNELS = 1 << 16, MAX_LAYERS = HSD_UNET_MAX_LAYERS, MAX_HEADS = 4096 };

static enum hsd_status unsupported(const char *label, const char *key, const char *what) {
    return hsd_fail(HSD_ERR_UNSUPPORTED, "%s: config key '%s': %s is not supported", label, key,
                    what);
}

// An int-or-list argument (diffusers accepts both for layers_per_block,
// attention_head_dim, transformer_layers_per_block): fills n entries.
static enum hsd_status get_int_or_list(json_t *root, const char *label, const char *key, int n,
                                       int lo, int hi, int *out) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return HSD_OK;
    if (json_is_integer(v)) {
        int x = out[0];
        enum hsd_status s = hsd_cfg_int(root, label, key, lo, hi, &x);
        if (s) return s;
        for (int i = 0; i < n; i++) out[i] = x;
        return HSD_OK;
    }
    if (!json_is_array(v)) return hsd_cfg_bad(label, key, "expected an integer or a list of integers");
    if ((int)json_array_size(v) != n) {
        return hsd_fail(HSD_ERR_FORMAT,
                        "%s: config key '%s': list has %zu entries, expected one per block (%d)",
                        label, key, json_array_size(v), n);
    }
    for (int i = 0; i < n; i++) {
        json_t *e = json_array_get(v, (size_t)i);
        if (!json_is_integer(e)) return hsd_cfg_bad(label, key, "list entries must be integers");
        json_int_t x = json_integer_value(e);
        if (x < lo || x > hi) {
            return hsd_fail(HSD_ERR_FORMAT, "%s: config key '%s'[%d]: %lld is outside [%d, %d]",
                            label, key, i, (long long)x, lo, hi);
        }
        out[i] = (int)x;
    }
    return HSD_OK;
}

// A key that must be absent, null, or equal to its default `ok` string.
static enum hsd_status require_str(json_t *root, const char *label, const char *key,
                                   const char *ok) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return HSD_OK;
    if (!json_is_string(v)) return hsd_cfg_bad(label, key, "expected a string");
    if (ok && !strcmp(json_string_value(v), ok)) return HSD_OK;
    char what[160];
    snprintf(what, sizeof what, "value \"%.100s\"", json_string_value(v));
    return unsupported(label, key, what);
}

// A key that must be absent, null or false.
static enum hsd_status require_false(json_t *root, const char *label, const char *key) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v) || json_is_false(v)) return HSD_OK;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if (!json_is_false(json_array_get(v, i))) return unsupported(label, key, "true");
        return HSD_OK;
    }
    return unsupported(label, key, "a value other than false/null");
}

// One depth value: an integer in [1, MAX_LAYERS].
static enum hsd_status depth_value(json_t *e, const char *label, const char *key, int i, int j,
                                   int *out) {
    json_int_t x = json_is_integer(e) ? json_integer_value(e) : 0;
    if (!json_is_integer(e) || x < 1 || x > MAX_LAYERS)
        return hsd_fail(HSD_ERR_FORMAT,
                        "%s: config key '%s'[%d]%s: expected an integer in [1, %d]", label, key,
                        i, j >= 0 ? "[...]" : "", MAX_LAYERS);
    *out = (int)x;
    return HSD_OK;
}

// Entry i of transformer_layers_per_block (down, layers = its
// layers_per_block) or reverse_transformer_layers_per_block (up, layers =
// layers_per_block + 1): an int for the whole block, or diffusers'
// asymmetrical form, a list with one depth per layer (the blocks index it
// by layer: CrossAttnDownBlock2D/CrossAttnUpBlock2D in unet_2d_blocks.py).
static enum hsd_status depth_entry(json_t *e, const char *label, const char *key, int i,
                                   int layers, int *block, int *per_layer) {
    if (!json_is_array(e)) return depth_value(e, label, key, i, -1, block);
    if ((int)json_array_size(e) != layers)
        return hsd_fail(HSD_ERR_FORMAT,
                        "%s: config key '%s'[%d]: list has %zu depths, expected one per layer "
                        "of the block (%d)",
                        label, key, i, json_array_size(e), layers);
    for (int j = 0; j < layers; j++) {
        enum hsd_status s = depth_value(json_array_get(e, (size_t)j), label, key, i, j,
                                        &per_layer[j]);
        if (s) return s;
    }
    *block = per_layer[0];
    return HSD_OK;
}

// transformer_layers_per_block and reverse_transformer_layers_per_block as
// UNet2DConditionModel.__init__ reads them (an int, a list per block, or
// lists per layer; the reverse list is then required, as diffusers'
// _check_config demands).
static enum hsd_status parse_depths(json_t *root, const char *label, struct hsd_unet_config *cfg) {
    int n = cfg->n_blocks, nested = 0;
    json_t *v = json_object_get(root, "transformer_layers_per_block");
    if (v && !json_is_null(v) && !json_is_array(v))
        return get_int_or_list(root, label, "transformer_layers_per_block", n, 1, MAX_LAYERS,
                               cfg->transformer_layers);
    if (v && json_is_array(v)) {
        if ((int)json_array_size(v) != n)
            return hsd_fail(HSD_ERR_FORMAT,
                            "%s: config key 'transformer_layers_per_block': list has %zu "
                            "entries, expected one per block (%d)",
                            label, json_array_size(v), n);
        for (int i = 0; i < n; i++) {
            json_t *e = json_array_get(v, (size_t)i);
            nested |= json_is_array(e);
            enum hsd_status s = depth_entry(e, label, "transformer_layers_per_block", i,
                                            cfg->layers_per_block[i], &cfg->transformer_layers[i],
                                            cfg->tl_down[i]);
            if (s) return s;
        }
        // UNetMidBlock2DCrossAttn(num_layers=1) takes entry [-1]; a list there
        // is indexed by its one layer.
        cfg->tl_mid = cfg->tl_down[n - 1][0];
    }
    json_t *r = json_object_get(root, "reverse_transformer_layers_per_block");
    if (!r || json_is_null(r)) {
        if (nested)
            return hsd_cfg_bad(label, "reverse_transformer_layers_per_block",
                               "required when transformer_layers_per_block holds lists "
                               "(diffusers: asymmetrical UNet)");
        return HSD_OK;
    }
    if (!json_is_array(r) || (int)json_array_size(r) != n)
        return hsd_cfg_bad(label, "reverse_transformer_layers_per_block",
                           "expected a list with one entry per block");
    for (int i = 0; i < n; i++) {
        int block = 0;
        enum hsd_status s = depth_entry(json_array_get(r, (size_t)i), label,
                                        "reverse_transformer_layers_per_block", i,
                                        cfg->layers_per_block[n - 1 - i] + 1, &block, cfg->tl_up[i]);
        if (s) return s;
        if (!cfg->tl_up[i][0])
            for (int j = 0; j <= cfg->layers_per_block[n - 1 - i]; j++) cfg->tl_up[i][j] = block;
    }
    return HSD_OK;
}

int hsd_unet_depth_down(const struct hsd_unet_config *cfg, int i, int l) {
    return cfg->tl_down[i][l] ? cfg->tl_down[i][l] : cfg->transformer_layers[i];
}

int hsd_unet_depth_up(const struct hsd_unet_config *cfg, int i, int l) {
    return cfg->tl_up[i][l] ? cfg->tl_up[i][l] : cfg->transformer_layers[cfg->n_blocks - 1 - i];
}

int hsd_unet_depth_mid(const struct hsd_unet_config *cfg) {
    return cfg->tl_mid ? cfg->tl_mid : cfg->transformer_layers[cfg->n_blocks - 1];
}

// addition_embed_type: none, or SDXL's "text_time" with its two sizes.
static enum hsd_status parse_addition(json_t *root, const char *label,
                                      struct hsd_unet_config *cfg) {
    json_t *v = json_object_get(root, "addition_embed_type");
    // Without one, diffusers builds nothing from the two size keys.
    if (!v || json_is_null(v)) return HSD_OK;
    if (!json_is_string(v) || strcmp(json_string_value(v), "text_time")) {
        char what[160];
        snprintf(what, sizeof what, "value %s%.100s%s (supported: \"text_time\", null)",
                 json_is_string(v) ? "\"" : "", json_is_string(v) ? json_string_value(v) : "?",
                 json_is_string(v) ? "\"" : "");
        return unsupported(label, "addition_embed_type", what);
    }
    cfg->add_text_time = 1;
    enum hsd_status s;
    static const char *const keys[2] = {"addition_time_embed_dim",
                                        "projection_class_embeddings_input_dim"};
    int *dst[2] = {&cfg->addition_time_embed_dim, &cfg->projection_class_embeddings_input_dim};
    for (int i = 0; i < 2; i++) {
        json_t *k = json_object_get(root, keys[i]);
        if (!k || json_is_null(k))
            return hsd_cfg_bad(label, keys[i], "required with addition_embed_type \"text_time\"");
        if ((s = hsd_cfg_int(root, label, keys[i], 1, MAX_CHANNELS, dst[i]))) return s;
    }
    return HSD_OK;
}

int hsd_unet_text_embeds_dim(const struct hsd_unet_config *cfg) {
    if (!cfg->add_text_time) return 0;
    int d = cfg->projection_class_embeddings_input_dim -
            HSD_SDXL_N_TIME_IDS * cfg->addition_time_embed_dim;
    return d > 0 ? d : 0;
}

static enum hsd_status parse_blocks(json_t *root, const char *label, const char *key, int up,
                                    struct hsd_unet_config *cfg) {
    json_t *v = json_object_get(root, key);
    if (!v || !json_is_array(v)) return hsd_cfg_bad(label, key, "missing or not a list of block names");
    if ((int)json_array_size(v) != cfg->n_blocks) {
        return hsd_fail(HSD_ERR_FORMAT,
                        "%s: config key '%s' has %zu blocks but block_out_channels has %d", label,
                        key, json_array_size(v), cfg->n_blocks);
    }
    for (int i = 0; i < cfg->n_blocks; i++) {
        json_t *e = json_array_get(v, (size_t)i);
        if (!json_is_string(e)) return hsd_cfg_bad(label, key, "block names must be strings");
        const char *name = json_string_value(e);
        const char *plain = up ? "UpBlock2D" : "DownBlock2D";
        const char *cross = up ? "CrossAttnUpBlock2D" : "CrossAttnDownBlock2D";
        enum hsd_unet_block_kind kind;
        if (!strcmp(name, plain)) {
            kind = HSD_UNET_BLOCK_PLAIN;
        } else if (!strcmp(name, cross)) {
            kind = HSD_UNET_BLOCK_CROSS_ATTN;
        } else {
            return hsd_fail(HSD_ERR_UNSUPPORTED,
                            "%s: config key '%s'[%d]: block type \"%.100s\" is not supported "
                            "(supported: %s, %s)",
                            label, key, i, name, plain, cross);
        }
        if (up) cfg->up[i] = kind;
        else cfg->down[i] = kind;
    }
    return HSD_OK;
}

static enum hsd_status parse_root(struct hsd_unet_config *cfg, json_t *root, const char *label) {
    enum hsd_status s;
    // Defaults of UNet2DConditionModel.__init__ (diffusers 0.42).
    memset(cfg, 0, sizeof *cfg);
    cfg->in_channels = 4;
    cfg->out_channels = 4;
    cfg->sample_size = 64;
    cfg->cross_attention_dim = 1280;
    cfg->norm_num_groups = 32;
    cfg->norm_eps = 1e-5f;
    cfg->flip_sin_to_cos = 1;
    cfg->freq_shift = 0.0f;
    cfg->mid_block_scale_factor = 1.0f;
    cfg->downsample_padding = 1;
    cfg->has_mid_block = 1;

    json_t *boc = json_object_get(root, "block_out_channels");
    if (!boc) {
        static const int def[4] = {320, 640, 1280, 1280};
        cfg->n_blocks = 4;
        memcpy(cfg->block_out_channels, def, sizeof def);
    } else {
        if (!json_is_array(boc) || json_array_size(boc) == 0 ||
            json_array_size(boc) > HSD_UNET_MAX_BLOCKS) {
            return hsd_cfg_bad(label, "block_out_channels", "expected a list of 1 to 8 integers");
        }
        cfg->n_blocks = (int)json_array_size(boc);
        s = get_int_or_list(root, label, "block_out_channels", cfg->n_blocks, 1, MAX_CHANNELS,
                            cfg->block_out_channels);
        if (s) return s;
    }
    int n = cfg->n_blocks;
    for (int i = 0; i < n; i++) {
        cfg->layers_per_block[i] = 2;
        cfg->transformer_layers[i] = 1;
        cfg->heads[i] = 8;
    }
    if ((s = parse_blocks(root, label, "down_block_types", 0, cfg))) return s;
    if ((s = parse_blocks(root, label, "up_block_types", 1, cfg))) return s;
    if ((s = hsd_cfg_int(root, label, "in_channels", 1, MAX_CHANNELS, &cfg->in_channels))) return s;
    if ((s = hsd_cfg_int(root, label, "out_channels", 1, MAX_CHANNELS, &cfg->out_channels))) return s;
    if ((s = hsd_cfg_int(root, label, "sample_size", 1, 1 << 14, &cfg->sample_size))) return s;
    if ((s = get_int_or_list(root, label, "layers_per_block", n, 1, MAX_LAYERS,
                             cfg->layers_per_block)))
        return s;
    if ((s = parse_depths(root, label, cfg))) return s;
    if ((s = get_int_or_list(root, label, "attention_head_dim", n, 1, MAX_HEADS, cfg->heads)))
        return s;
    json_t *nah = json_object_get(root, "num_attention_heads");
    if (nah && !json_is_null(nah)) {
        // diffusers itself raises for this key on UNet2DConditionModel.
        return unsupported(label, "num_attention_heads", "a non-null value");
    }
    if ((s = hsd_cfg_int(root, label, "cross_attention_dim", 1, MAX_CHANNELS,
                     &cfg->cross_attention_dim)))
        return s;
    if ((s = hsd_cfg_int(root, label, "norm_num_groups", 1, MAX_CHANNELS, &cfg->norm_num_groups)))
        return s;
    if ((s = hsd_cfg_float(root, label, "norm_eps", &cfg->norm_eps))) return s;
    if ((s = hsd_cfg_bool(root, label, "use_linear_projection", &cfg->use_linear_projection)))
        return s;
    if ((s = hsd_cfg_bool(root, label, "flip_sin_to_cos", &cfg->flip_sin_to_cos))) return s;
    if ((s = hsd_cfg_float(root, label, "freq_shift", &cfg->freq_shift))) return s;
    if ((s = hsd_cfg_bool(root, label, "center_input_sample", &cfg->center_input_sample))) return s;
    if ((s = hsd_cfg_float(root, label, "mid_block_scale_factor", &cfg->mid_block_scale_factor)))
        return s;
    if ((s = hsd_cfg_int(root, label, "downsample_padding", 0, 8, &cfg->downsample_padding)))
        return s;

    json_t *mid = json_object_get(root, "mid_block_type");
    if (mid && json_is_null(mid)) {
        cfg->has_mid_block = 0;
    } else if (mid) {
        if ((s = require_str(root, label, "mid_block_type", "UNetMidBlock2DCrossAttn"))) return s;
    }

    // Features of the class that SD 1.x/2.x and their distillations do not
    // use; refusing them beats silently computing something else.
    if ((s = require_str(root, label, "act_fn", "silu"))) return s;
    if ((s = require_str(root, label, "resnet_time_scale_shift", "default"))) return s;
    if ((s = require_str(root, label, "time_embedding_type", "positional"))) return s;
    if ((s = require_str(root, label, "class_embed_type", NULL))) return s;
    if ((s = parse_addition(root, label, cfg))) return s;
    if ((s = require_str(root, label, "encoder_hid_dim_type", NULL))) return s;
    if ((s = require_str(root, label, "time_embedding_act_fn", NULL))) return s;
    if ((s = require_str(root, label, "timestep_post_act", NULL))) return s;
    if ((s = require_str(root, label, "attention_type", "default"))) return s;
    if ((s = require_false(root, label, "only_cross_attention"))) return s;
    if ((s = require_false(root, label, "dual_cross_attention"))) return s;
    if ((s = require_false(root, label, "resnet_skip_time_act"))) return s;
    if ((s = require_false(root, label, "class_embeddings_concat"))) return s;
    if ((s = require_false(root, label, "cross_attention_norm"))) return s;
    static const char *const must_be_null[] = {
        "num_class_embeds", "encoder_hid_dim", "time_embedding_dim",
        "resnet_out_scale_factor",
    };
    for (size_t i = 0; i < HSD_ARRAY_LEN(must_be_null); i++) {
        json_t *v = json_object_get(root, must_be_null[i]);
        if (v && !json_is_null(v)) {
            if (!strcmp(must_be_null[i], "resnet_out_scale_factor") && json_is_number(v) &&
                json_number_value(v) == 1.0)
                continue;
            return unsupported(label, must_be_null[i], "a non-null value");
        }
    }
    // LCM U-Nets (diffusers TimestepEmbedding cond_proj): null = none.
    cfg->time_cond_proj_dim = 0;
    if ((s = hsd_cfg_int(root, label, "time_cond_proj_dim", 1, 4096, &cfg->time_cond_proj_dim)))
        return s;
    int k = 3;
    if ((s = hsd_cfg_int(root, label, "conv_in_kernel", 1, 15, &k))) return s;
    if (k != 3) return unsupported(label, "conv_in_kernel", "a kernel other than 3");
    k = 3;
    if ((s = hsd_cfg_int(root, label, "conv_out_kernel", 1, 15, &k))) return s;
    if (k != 3) return unsupported(label, "conv_out_kernel", "a kernel other than 3");
    return hsd_unet_config_validate(cfg, label);
}

enum hsd_status hsd_unet_config_validate(const struct hsd_unet_config *cfg, const char *label) {
    if (cfg->n_blocks < 1 || cfg->n_blocks > HSD_UNET_MAX_BLOCKS)
        return hsd_fail(HSD_ERR_FORMAT, "%s: %d blocks (expected 1..8)", label, cfg->n_blocks);
    for (int i = 0; i < cfg->n_blocks; i++) {
        int c = cfg->block_out_channels[i];
        if (c % cfg->norm_num_groups) {
            return hsd_fail(HSD_ERR_FORMAT,
                            "%s: block_out_channels[%d] = %d is not divisible by "
                            "norm_num_groups = %d",
                            label, i, c, cfg->norm_num_groups);
        }
        int has_attn = cfg->down[i] == HSD_UNET_BLOCK_CROSS_ATTN ||
                       cfg->up[cfg->n_blocks - 1 - i] == HSD_UNET_BLOCK_CROSS_ATTN ||
                       (i == cfg->n_blocks - 1 && cfg->has_mid_block);
        if (has_attn && c % cfg->heads[i]) {
            return hsd_fail(HSD_ERR_FORMAT,
                            "%s: block_out_channels[%d] = %d is not divisible by its %d "
                            "attention heads (attention_head_dim)",
                            label, i, c, cfg->heads[i]);
        }
    }
    return HSD_OK;
}

enum hsd_status hsd_unet_config_parse(struct hsd_unet_config *cfg, const char *json, size_t len,
                                      const char *label) {
    json_t *root;
    enum hsd_status s = hsd_cfg_parse(json, len, label, &root);
    if (s) return s;
    s = parse_root(cfg, root, label);
    json_decref(root);
    return s;
}

static enum hsd_status parse_text(void *cfg, const char *text, size_t len, const char *label) {
    return hsd_unet_config_parse(cfg, text, len, label);
}

enum hsd_status hsd_unet_config_load(struct hsd_unet_config *cfg, const char *path) {
    // Configs are a few KB; 16 MB is far beyond any real one.
    return hsd_parse_small_file(path, 16u << 20, "config", parse_text, cfg);
}

static json_t *int_list(const int *v, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_integer(v[i]));
    return a;
}

static int has_layer_depths(const struct hsd_unet_config *cfg) {
    for (int i = 0; i < cfg->n_blocks; i++)
        if (cfg->tl_down[i][0] || cfg->tl_up[i][0]) return 1;
    return 0;
}

// transformer_layers_per_block (up = 0) or its reverse (up = 1) as lists
// per layer, the asymmetrical form diffusers reads.
static json_t *depth_lists(const struct hsd_unet_config *cfg, int up) {
    json_t *a = json_array();
    for (int i = 0; i < cfg->n_blocks; i++) {
        json_t *b = json_array();
        int layers = up ? cfg->layers_per_block[cfg->n_blocks - 1 - i] + 1
                        : cfg->layers_per_block[i];
        for (int l = 0; l < layers; l++)
            json_array_append_new(b, json_integer(up ? hsd_unet_depth_up(cfg, i, l)
                                                     : hsd_unet_depth_down(cfg, i, l)));
        json_array_append_new(a, b);
    }
    return a;
}

char *hsd_unet_config_to_json(const struct hsd_unet_config *cfg) {
    json_t *o = json_object();
    int n = cfg->n_blocks;
    json_t *down = json_array(), *up = json_array();
    for (int i = 0; i < n; i++) {
        json_array_append_new(down, json_string(cfg->down[i] == HSD_UNET_BLOCK_CROSS_ATTN
                                                    ? "CrossAttnDownBlock2D"
                                                    : "DownBlock2D"));
        json_array_append_new(up, json_string(cfg->up[i] == HSD_UNET_BLOCK_CROSS_ATTN
                                                  ? "CrossAttnUpBlock2D"
                                                  : "UpBlock2D"));
    }
    json_object_set_new(o, "_class_name", json_string("UNet2DConditionModel"));
    json_object_set_new(o, "in_channels", json_integer(cfg->in_channels));
    json_object_set_new(o, "out_channels", json_integer(cfg->out_channels));
    json_object_set_new(o, "sample_size", json_integer(cfg->sample_size));
    json_object_set_new(o, "down_block_types", down);
    json_object_set_new(o, "mid_block_type",
                        cfg->has_mid_block ? json_string("UNetMidBlock2DCrossAttn") : json_null());
    json_object_set_new(o, "up_block_types", up);
    json_object_set_new(o, "block_out_channels", int_list(cfg->block_out_channels, n));
    json_object_set_new(o, "layers_per_block", int_list(cfg->layers_per_block, n));
    json_object_set_new(o, "transformer_layers_per_block", int_list(cfg->transformer_layers, n));
    json_object_set_new(o, "attention_head_dim", int_list(cfg->heads, n));
    json_object_set_new(o, "cross_attention_dim", json_integer(cfg->cross_attention_dim));
    json_object_set_new(o, "norm_num_groups", json_integer(cfg->norm_num_groups));
    json_object_set_new(o, "norm_eps", json_real(cfg->norm_eps));
    json_object_set_new(o, "use_linear_projection", json_boolean(cfg->use_linear_projection));
    json_object_set_new(o, "flip_sin_to_cos", json_boolean(cfg->flip_sin_to_cos));
    json_object_set_new(o, "freq_shift", json_real(cfg->freq_shift));
    json_object_set_new(o, "center_input_sample", json_boolean(cfg->center_input_sample));
    json_object_set_new(o, "mid_block_scale_factor", json_real(cfg->mid_block_scale_factor));
    json_object_set_new(o, "downsample_padding", json_integer(cfg->downsample_padding));
    json_object_set_new(o, "time_cond_proj_dim", cfg->time_cond_proj_dim
                                                     ? json_integer(cfg->time_cond_proj_dim)
                                                     : json_null());
    if (cfg->add_text_time) {
        json_object_set_new(o, "addition_embed_type", json_string("text_time"));
        json_object_set_new(o, "addition_time_embed_dim",
                            json_integer(cfg->addition_time_embed_dim));
        json_object_set_new(o, "projection_class_embeddings_input_dim",
                            json_integer(cfg->projection_class_embeddings_input_dim));
    }
    if (has_layer_depths(cfg)) {
        json_object_set_new(o, "transformer_layers_per_block", depth_lists(cfg, 0));
        json_object_set_new(o, "reverse_transformer_layers_per_block", depth_lists(cfg, 1));
    }
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(7));
    json_decref(o);
    return s;
}
