#include "io/ldm_names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Parses "<word>.<int>.<int>." at the start of s; returns chars consumed
// (0 if no match) and the two indices.
static size_t parse_two(const char *s, const char *word, int *a, int *b) {
    size_t wl = strlen(word);
    if (strncmp(s, word, wl) || s[wl] != '.') return 0;
    char *end;
    long x = strtol(s + wl + 1, &end, 10);
    if (end == s + wl + 1 || *end != '.' || x < 0 || x > 100000) return 0;
    const char *p = end + 1;
    long y = strtol(p, &end, 10);
    if (end == p || *end != '.' || y < 0 || y > 100000) return 0;
    *a = (int)x;
    *b = (int)y;
    return (size_t)(end + 1 - s);
}

static const struct {
    const char *ldm, *diffusers;
} k_resnet_parts[] = {
    {"in_layers.0.", "norm1."},       {"in_layers.2.", "conv1."},
    {"emb_layers.1.", "time_emb_proj."}, {"out_layers.0.", "norm2."},
    {"out_layers.3.", "conv2."},      {"skip_connection.", "conv_shortcut."},
};

// "<prefix>" + renamed resnet tail, or NULL if the tail is not a resnet key.
static char *resnet_name(const char *prefix, const char *tail) {
    for (size_t i = 0; i < sizeof k_resnet_parts / sizeof k_resnet_parts[0]; i++) {
        size_t l = strlen(k_resnet_parts[i].ldm);
        if (!strncmp(tail, k_resnet_parts[i].ldm, l)) {
            size_t n = strlen(prefix) + strlen(k_resnet_parts[i].diffusers) + strlen(tail + l) + 1;
            char *s = malloc(n);
            if (s) snprintf(s, n, "%s%s%s", prefix, k_resnet_parts[i].diffusers, tail + l);
            return s;
        }
    }
    return NULL;
}

static char *join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%s", a, b);
    return s;
}

struct layout {
    int n_input, n_output;   // max index + 1
    int n_down;              // downsamplers seen
    int levels, lpb;
    unsigned char *is_down;  // per input block: holds ".0.op."
};

enum hsd_status hsd_ldm_unet_rename(char **out, const char *const *names, size_t n,
                                    const char *label) {
    struct layout L = {0};
    int a, b;
    for (size_t i = 0; i < n; i++) {
        if (parse_two(names[i], "input_blocks", &a, &b) && a + 1 > L.n_input) L.n_input = a + 1;
        if (parse_two(names[i], "output_blocks", &a, &b) && a + 1 > L.n_output) L.n_output = a + 1;
    }
    if (L.n_input < 2)
        return hsd_fail(HSD_ERR_FORMAT, "%s: no LDM U-Net found (no input_blocks under '%s')",
                        label, HSD_LDM_UNET_PREFIX);
    L.is_down = calloc((size_t)L.n_input, 1);
    if (!L.is_down) return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", label);
    for (size_t i = 0; i < n; i++) {
        size_t c = parse_two(names[i], "input_blocks", &a, &b);
        if (c && b == 0 && !strncmp(names[i] + c, "op.", 3) && !L.is_down[a]) {
            L.is_down[a] = 1;
            L.n_down++;
        }
    }
    // Encoder: 1 + levels*lpb + (levels-1) entries; decoder: levels*(lpb+1).
    L.levels = L.n_down + 1;
    int body = L.n_input - 1 - L.n_down;
    enum hsd_status st = HSD_OK;
    if (body <= 0 || body % L.levels) {
        st = hsd_fail(HSD_ERR_FORMAT,
                      "%s: LDM input_blocks has %d entries with %d downsamplers, which is no "
                      "U-Net layout (expected 1 + levels*layers + levels-1)",
                      label, L.n_input, L.n_down);
        goto done;
    }
    L.lpb = body / L.levels;
    if (L.n_output != L.levels * (L.lpb + 1)) {
        st = hsd_fail(HSD_ERR_FORMAT,
                      "%s: LDM output_blocks has %d entries, expected %d for %d levels of %d "
                      "layers",
                      label, L.n_output, L.levels * (L.lpb + 1), L.levels, L.lpb);
        goto done;
    }
    for (size_t i = 0; i < n; i++) out[i] = NULL;
    for (size_t i = 0; i < n && st == HSD_OK; i++) {
        const char *s = names[i];
        char pre[96];
        char *r = NULL;
        size_t c;
        if (!strncmp(s, "time_embed.0.", 13)) {
            r = join("time_embedding.linear_1.", s + 13);
        } else if (!strncmp(s, "time_embed.2.", 13)) {
            r = join("time_embedding.linear_2.", s + 13);
        } else if (!strncmp(s, "label_emb.0.0.", 14)) {
            // SDXL's added conditioning (diffusers single_file_utils
            // DIFFUSERS_TO_LDM_MAPPING["unet"]: add_embedding.linear_1/2).
            r = join("add_embedding.linear_1.", s + 14);
        } else if (!strncmp(s, "label_emb.0.2.", 14)) {
            r = join("add_embedding.linear_2.", s + 14);
        } else if (!strncmp(s, "out.0.", 6)) {
            r = join("conv_norm_out.", s + 6);
        } else if (!strncmp(s, "out.2.", 6)) {
            r = join("conv_out.", s + 6);
        } else if ((c = parse_two(s, "input_blocks", &a, &b))) {
            const char *t = s + c;
            if (a == 0 && b == 0) {
                r = join("conv_in.", t);
            } else if (a > 0) {
                int lvl = (a - 1) / (L.lpb + 1), l = (a - 1) % (L.lpb + 1);
                if (l == L.lpb && b == 0 && !strncmp(t, "op.", 3)) {
                    snprintf(pre, sizeof pre, "down_blocks.%d.downsamplers.0.conv.", lvl);
                    r = join(pre, t + 3);
                } else if (l < L.lpb && b == 0) {
                    snprintf(pre, sizeof pre, "down_blocks.%d.resnets.%d.", lvl, l);
                    r = resnet_name(pre, t);
                } else if (l < L.lpb && b == 1) {
                    snprintf(pre, sizeof pre, "down_blocks.%d.attentions.%d.", lvl, l);
                    r = join(pre, t);
                }
            }
        } else if ((c = parse_two(s, "output_blocks", &a, &b))) {
            const char *t = s + c;
            int lvl = a / (L.lpb + 1), l = a % (L.lpb + 1);
            int is_up = l == L.lpb && b >= 1 && !strncmp(t, "conv.", 5);
            if (is_up) {
                snprintf(pre, sizeof pre, "up_blocks.%d.upsamplers.0.conv.", lvl);
                r = join(pre, t + 5);
            } else if (b == 0) {
                snprintf(pre, sizeof pre, "up_blocks.%d.resnets.%d.", lvl, l);
                r = resnet_name(pre, t);
            } else if (b == 1) {
                snprintf(pre, sizeof pre, "up_blocks.%d.attentions.%d.", lvl, l);
                r = join(pre, t);
            }
        } else if (!strncmp(s, "middle_block.", 13)) {
            char *end;
            long m = strtol(s + 13, &end, 10);
            if (end != s + 13 && *end == '.' && m >= 0 && m <= 1000) {
                const char *t = end + 1;
                if (m % 2 == 0) {
                    snprintf(pre, sizeof pre, "mid_block.resnets.%ld.", m / 2);
                    r = resnet_name(pre, t);
                } else {
                    snprintf(pre, sizeof pre, "mid_block.attentions.%ld.", m / 2);
                    r = join(pre, t);
                }
            }
        }
        if (!r) {
            st = hsd_fail(HSD_ERR_FORMAT,
                          "%s: tensor '%s%s': not a key of an LDM U-Net (%d levels, %d layers "
                          "per block)",
                          label, HSD_LDM_UNET_PREFIX, s, L.levels, L.lpb);
        }
        out[i] = r;
    }
    if (st != HSD_OK) {
        for (size_t i = 0; i < n; i++) {
            free(out[i]);
            out[i] = NULL;
        }
    }
done:
    free(L.is_down);
    return st;
}
