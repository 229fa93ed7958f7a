// CompVis/LDM VAE key names (under "first_stage_model.") -> diffusers
// AutoencoderKL names, the mapping diffusers' single_file_utils
// convert_ldm_vae_checkpoint applies:
//   {encoder,decoder}.conv_in / conv_out       unchanged
//   {encoder,decoder}.norm_out                 conv_norm_out
//   encoder.down.i.block.j                     encoder.down_blocks.i.resnets.j
//   encoder.down.i.downsample.conv             encoder.down_blocks.i.downsamplers.0.conv
//   decoder.up.i.block.j                       decoder.up_blocks.(L-1-i).resnets.j
//   decoder.up.i.upsample.conv                 decoder.up_blocks.(L-1-i).upsamplers.0.conv
//   *.mid.block_1 / block_2                    *.mid_block.resnets.0 / 1
//   *.mid.attn_1.norm / q / k / v / proj_out   *.mid_block.attentions.0.group_norm /
//                                              to_q / to_k / to_v / to_out.0
//   nin_shortcut (inside a resnet)             conv_shortcut
//   quant_conv / post_quant_conv               unchanged
// LDM numbers the decoder's levels from the lowest resolution up
// (decoder.up.0 runs last), diffusers in execution order, hence L-1-i with
// L the number of decoder levels in the file. The attention's q/k/v/proj_out
// stay [c, c, 1, 1]: the VAE loader reads that shape as the [c, c] linear
// weight diffusers reshapes it to (models/vae_kl.c fetch_linear).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/ldm_names.h"

// Reads "<int>." at *s; advances past it. -1 when absent.
static int take_index(const char **s) {
    char *end;
    if (**s < '0' || **s > '9') return -1;
    long x = strtol(*s, &end, 10);
    if (*end != '.' || x > 10000) return -1;
    *s = end + 1;
    return (int)x;
}

static int starts(const char **s, const char *word) {
    size_t l = strlen(word);
    if (strncmp(*s, word, l)) return 0;
    *s += l;
    return 1;
}

// Writes the diffusers name of the mid block member `t` (after "mid.").
static int mid_name(char *out, size_t cap, const char *side, const char *t) {
    static const struct {
        const char *ldm, *diffusers;
    } attn[] = {{"norm.", "group_norm."}, {"q.", "to_q."}, {"k.", "to_k."}, {"v.", "to_v."},
                {"proj_out.", "to_out.0."}};
    if (!strncmp(t, "block_1.", 8) || !strncmp(t, "block_2.", 8)) {
        const char *r = t + 8;
        int sc = !strncmp(r, "nin_shortcut.", 13);
        return snprintf(out, cap, "%s.mid_block.resnets.%c.%s%s", side, t[6] == '1' ? '0' : '1',
                        sc ? "conv_shortcut." : "", sc ? r + 13 : r);
    }
    if (!strncmp(t, "attn_1.", 7))
        for (size_t i = 0; i < sizeof attn / sizeof attn[0]; i++) {
            size_t l = strlen(attn[i].ldm);
            if (!strncmp(t + 7, attn[i].ldm, l))
                return snprintf(out, cap, "%s.mid_block.attentions.0.%s%s", side,
                                attn[i].diffusers, t + 7 + l);
        }
    return -1;
}

// One name; levels = decoder levels in the file. Returns -1 for a name
// outside the layout.
static int rename_one(char *out, size_t cap, const char *name, int levels) {
    const char *t = name;
    if (!strncmp(t, "quant_conv.", 11) || !strncmp(t, "post_quant_conv.", 16))
        return snprintf(out, cap, "%s", t);
    const char *side = NULL;
    if (starts(&t, "encoder.")) side = "encoder";
    else if (starts(&t, "decoder.")) side = "decoder";
    else return -1;
    if (!strncmp(t, "conv_in.", 8) || !strncmp(t, "conv_out.", 9))
        return snprintf(out, cap, "%s.%s", side, t);
    if (starts(&t, "norm_out.")) return snprintf(out, cap, "%s.conv_norm_out.%s", side, t);
    if (starts(&t, "mid.")) return mid_name(out, cap, side, t);
    int enc = side[0] == 'e';
    if (!starts(&t, enc ? "down." : "up.")) return -1;
    int i = take_index(&t);
    if (i < 0 || (!enc && i >= levels)) return -1;
    int level = enc ? i : levels - 1 - i;
    const char *blocks = enc ? "down_blocks" : "up_blocks";
    if (starts(&t, "block.")) {
        int j = take_index(&t);
        if (j < 0) return -1;
        int sc = !strncmp(t, "nin_shortcut.", 13);
        return snprintf(out, cap, "%s.%s.%d.resnets.%d.%s%s", side, blocks, level, j,
                        sc ? "conv_shortcut." : "", sc ? t + 13 : t);
    }
    if (starts(&t, enc ? "downsample.conv." : "upsample.conv."))
        return snprintf(out, cap, "%s.%s.%d.%s.0.conv.%s", side, blocks, level,
                        enc ? "downsamplers" : "upsamplers", t);
    return -1;
}

enum hsd_status hsd_ldm_vae_rename(char **out, const char *const *names, size_t n,
                                   const char *label) {
    // Decoder levels: the largest "decoder.up.<i>." index + 1.
    int levels = 0;
    for (size_t k = 0; k < n; k++) {
        const char *t = names[k];
        if (!starts(&t, "decoder.up.")) continue;
        int i = take_index(&t);
        if (i >= levels) levels = i + 1;
    }
    for (size_t k = 0; k < n; k++) out[k] = NULL;
    for (size_t k = 0; k < n; k++) {
        char buf[512];
        int len = rename_one(buf, sizeof buf, names[k], levels);
        if (len < 0 || (size_t)len >= sizeof buf) {
            for (size_t j = 0; j < k; j++) free(out[j]);
            return hsd_fail(HSD_ERR_FORMAT,
                            "%s: tensor '%s%.200s' is not part of an LDM AutoencoderKL "
                            "(convert_ldm_vae_checkpoint layout)",
                            label, HSD_LDM_VAE_PREFIX, names[k]);
        }
        if (!(out[k] = strdup(buf))) {
            for (size_t j = 0; j < k; j++) free(out[j]);
            return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", label);
        }
    }
    return HSD_OK;
}
