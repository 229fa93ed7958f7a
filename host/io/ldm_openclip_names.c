// SD 2.x and SDXL single files: OpenCLIP text-tower keys -> transformers
// names (io/ldm_names.h; diffusers single_file_utils.py
// convert_open_clip_checkpoint and DIFFUSERS_TO_LDM_MAPPING["openclip"]).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/ldm_names.h"

#define RESBLOCKS "transformer.resblocks."
#define MAX_BLOCKS 1000

static const struct {
    const char *openclip, *transformers;
} k_top[] = {
    {"token_embedding.weight", "text_model.embeddings.token_embedding.weight"},
    {"positional_embedding", "text_model.embeddings.position_embedding.weight"},
    {"ln_final.weight", "text_model.final_layer_norm.weight"},
    {"ln_final.bias", "text_model.final_layer_norm.bias"},
}, k_block[] = {
    {"ln_1.weight", "layer_norm1.weight"},         {"ln_1.bias", "layer_norm1.bias"},
    {"ln_2.weight", "layer_norm2.weight"},         {"ln_2.bias", "layer_norm2.bias"},
    {"attn.out_proj.weight", "self_attn.out_proj.weight"},
    {"attn.out_proj.bias", "self_attn.out_proj.bias"},
    {"mlp.c_fc.weight", "mlp.fc1.weight"},         {"mlp.c_fc.bias", "mlp.fc1.bias"},
    {"mlp.c_proj.weight", "mlp.fc2.weight"},       {"mlp.c_proj.bias", "mlp.fc2.bias"},
};
static const char *const k_dropped[] = {"text_projection", "logit_scale", "attn_mask"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

// "transformer.resblocks.<N>." at the start of s: N and the rest, or -1.
static int block_index(const char *s, const char **rest) {
    size_t l = strlen(RESBLOCKS);
    if (strncmp(s, RESBLOCKS, l) || s[l] < '0' || s[l] > '9') return -1;
    char *end;
    long n = strtol(s + l, &end, 10);
    if (*end != '.' || n >= MAX_BLOCKS || (s[l] == '0' && end != s + l + 1)) return -1;
    *rest = end + 1;
    return (int)n;
}

static char *fmt(const char *layer_fmt, int n, const char *tail) {
    size_t cap = strlen(layer_fmt) + strlen(tail) + 16;
    char *s = malloc(cap);
    if (s) {
        int k = snprintf(s, cap, layer_fmt, n);
        snprintf(s + k, cap - (size_t)k, "%s", tail);
    }
    return s;
}

int hsd_ldm_openclip_blocks(const char *const *names, size_t n) {
    int blocks = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rest;
        int b = block_index(names[i], &rest);
        if (b + 1 > blocks) blocks = b + 1;
    }
    return blocks;
}

enum hsd_status hsd_ldm_openclip_rename(char *out[3], int *n_out, const char *name,
                                        int n_blocks, int sdxl, const char *label) {
    *n_out = 0;
    out[0] = out[1] = out[2] = NULL;
    // SDXL's text_encoder_2 is a CLIPTextModelWithProjection: the converter
    // keeps text_projection (transposed: io/weights.c) and every block.
    if (sdxl && !strcmp(name, "text_projection")) {
        if (!(out[0] = strdup("text_projection.weight"))) goto nomem;
        *n_out = 1;
        return HSD_OK;
    }
    for (size_t i = 0; i < COUNT(k_dropped); i++)
        if (!strcmp(name, k_dropped[i])) return HSD_OK;
    for (size_t i = 0; i < COUNT(k_top); i++)
        if (!strcmp(name, k_top[i].openclip)) {
            if (!(out[0] = strdup(k_top[i].transformers))) goto nomem;
            *n_out = 1;
            return HSD_OK;
        }
    const char *rest;
    int b = block_index(name, &rest);
    if (b >= 0 && !sdxl && b == n_blocks - 1) return HSD_OK;  // SD 2.x's last block: not run
    if (b >= 0) {
        static const char *const layer = "text_model.encoder.layers.%d.";
        for (size_t i = 0; i < COUNT(k_block); i++)
            if (!strcmp(rest, k_block[i].openclip)) {
                if (!(out[0] = fmt(layer, b, k_block[i].transformers))) goto nomem;
                *n_out = 1;
                return HSD_OK;
            }
        int w = !strcmp(rest, "attn.in_proj_weight"), bias = !strcmp(rest, "attn.in_proj_bias");
        if (w || bias) {
            static const char *const qkv[3] = {"self_attn.q_proj.", "self_attn.k_proj.",
                                               "self_attn.v_proj."};
            for (int k = 0; k < 3; k++) {
                char tail[64];
                snprintf(tail, sizeof tail, "%s%s", qkv[k], w ? "weight" : "bias");
                if (!(out[k] = fmt(layer, b, tail))) goto nomem;
            }
            *n_out = 3;
            return HSD_OK;
        }
    }
    return hsd_fail(HSD_ERR_FORMAT,
                    "%s: tensor '%s%s' is not a key of an OpenCLIP text tower (%s)", label,
                    sdxl ? HSD_LDM_SDXL_OPENCLIP_PREFIX : HSD_LDM_OPENCLIP_PREFIX, name,
                    sdxl ? "SDXL" : "SD 2.x");
nomem:
    for (int k = 0; k < 3; k++) {
        free(out[k]);
        out[k] = NULL;
    }
    *n_out = 0;
    return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", label);
}
