// The LoRA key-name parser (models/lora_keys.h). Names are untrusted bytes
// from a file: every path ends in a bounded copy or an error naming the key.
#include "models/lora_keys.h"

#include <stdio.h>
#include <string.h>

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static int ends(const char *s, size_t n, const char *suf) {
    size_t k = strlen(suf);
    return n >= k && memcmp(s + n - k, suf, k) == 0;
}

// Copies module path s[0, n) into out in kohya's spelling; checks the
// character set module paths use. 0 or -1.
static int spell(char *out, const char *s, size_t n) {
    if (n == 0 || n >= HSD_LORA_LAYER_MAX) return -1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.';
        if (!ok) return -1;
        out[i] = c == '.' ? '_' : c;
    }
    out[n] = 0;
    return 0;
}

int hsd_lora_layer_name(char *out, const char *module_path) {
    return spell(out, module_path, strlen(module_path));
}

const char *hsd_lora_part_name(enum hsd_lora_part part) {
    switch (part) {
    case HSD_LORA_UNET: return "U-Net";
    case HSD_LORA_TE1: return "text encoder";
    case HSD_LORA_TE2: return "second text encoder";
    default: return "?";
    }
}

// transformers' CLIPTextModel puts its layers under text_model.; hsd's text
// encoder names them from encoder. on (models/clip_text.c).
static void strip_text_model(struct hsd_lora_key *k) {
    static const char pre[] = "text_model_";
    if (k->part != HSD_LORA_UNET && starts(k->layer, pre))
        memmove(k->layer, k->layer + sizeof pre - 1, strlen(k->layer) - (sizeof pre - 2));
}

static enum hsd_status bad(const char *key, const char *why) {
    return hsd_fail(HSD_ERR_FORMAT, "LoRA key '%.200s': %s", key, why);
}

// kohya: lora_<part>_<layer>.<role>
static enum hsd_status parse_kohya(struct hsd_lora_key *k, const char *key, const char *rest) {
    const char *dot = strchr(rest, '.');
    if (!dot) return bad(key, "no '.' after the layer name");
    const char *role = dot + 1;
    if (!strcmp(role, "lora_down.weight")) k->role = HSD_LORA_DOWN;
    else if (!strcmp(role, "lora_up.weight")) k->role = HSD_LORA_UP;
    else if (!strcmp(role, "alpha")) k->role = HSD_LORA_ALPHA;
    else return bad(key, "not lora_down.weight, lora_up.weight or alpha (LoCon/LoHa/DoRA "
                         "tensors are not supported)");
    if (spell(k->layer, rest, (size_t)(dot - rest))) return bad(key, "bad layer name");
    strip_text_model(k);
    return k->layer[0] ? HSD_OK : bad(key, "empty layer name");
}

// diffusers / PEFT: [<part>.]<module>.<role>
static enum hsd_status parse_diffusers(struct hsd_lora_key *k, const char *key,
                                       const char *rest) {
    static const struct {
        const char *suffix;
        enum hsd_lora_role role;
    } roles[] = {
        {".lora_A.weight", HSD_LORA_DOWN}, {".lora_B.weight", HSD_LORA_UP},
        {".lora.down.weight", HSD_LORA_DOWN}, {".lora.up.weight", HSD_LORA_UP},
        {"_lora.down.weight", HSD_LORA_DOWN}, {"_lora.up.weight", HSD_LORA_UP},
        {".alpha", HSD_LORA_ALPHA},
    };
    size_t n = strlen(rest);
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        if (!ends(rest, n, roles[i].suffix)) continue;
        k->role = roles[i].role;
        size_t m = n - strlen(roles[i].suffix);
        char mod[HSD_LORA_LAYER_MAX + 8];
        if (m == 0 || m >= HSD_LORA_LAYER_MAX) return bad(key, "bad layer name");
        memcpy(mod, rest, m);
        mod[m] = 0;
        if (roles[i].suffix[0] == '_') {
            // Attention-processor format: <attn>.processor.to_q_lora.down.weight
            // (diffusers LoRAAttnProcessor: to_q/k/v_lora, to_out_lora = to_out.0).
            static const char proc[] = ".processor.";
            char *p = strstr(mod, proc);
            if (!p) return bad(key, "'_lora' without an attention processor");
            const char *which = p + sizeof proc - 1;
            const char *tail = !strcmp(which, "to_out") ? ".to_out.0"
                               : (!strcmp(which, "to_q") || !strcmp(which, "to_k") ||
                                  !strcmp(which, "to_v"))
                                   ? NULL
                                   : "";
            if (tail && !*tail) return bad(key, "unknown attention-processor projection");
            char proj[16];
            snprintf(proj, sizeof proj, ".%s", which);
            *p = 0;
            if (strlen(mod) + 16 >= sizeof mod) return bad(key, "bad layer name");
            strcat(mod, tail ? tail : proj);
            m = strlen(mod);
        }
        if (spell(k->layer, mod, m)) return bad(key, "bad layer name");
        strip_text_model(k);
        return k->layer[0] ? HSD_OK : bad(key, "empty layer name");
    }
    return bad(key, "not a LoRA tensor in the kohya or diffusers/PEFT formats (lora_A/lora_B, "
                    "lora.down/lora.up, lora_down/lora_up, alpha)");
}

enum hsd_status hsd_lora_key_parse(struct hsd_lora_key *out, const char *key) {
    memset(out, 0, sizeof *out);
    static const struct {
        const char *prefix;
        enum hsd_lora_part part;
        int kohya;
    } prefixes[] = {
        {"lora_unet_", HSD_LORA_UNET, 1}, {"lora_te1_", HSD_LORA_TE1, 1},
        {"lora_te2_", HSD_LORA_TE2, 1},   {"lora_te_", HSD_LORA_TE1, 1},
        {"unet.", HSD_LORA_UNET, 0},      {"text_encoder_2.", HSD_LORA_TE2, 0},
        {"text_encoder.", HSD_LORA_TE1, 0},
    };
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        if (!starts(key, prefixes[i].prefix)) continue;
        out->part = prefixes[i].part;
        const char *rest = key + strlen(prefixes[i].prefix);
        return prefixes[i].kohya ? parse_kohya(out, key, rest) : parse_diffusers(out, key, rest);
    }
    // Older diffusers U-Net-only files carry no part prefix.
    out->part = HSD_LORA_UNET;
    return parse_diffusers(out, key, key);
}
