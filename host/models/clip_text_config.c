// text_encoder/config.json -> struct hsd_clip_text_config, with the
// defaults of transformers CLIPTextConfig (configuration_clip.py, 5.x).
// Keys that do not change the outputs (dropouts, initializer ranges, bos
// and pad ids) are ignored; values this
// implementation cannot run fail with HSD_ERR_UNSUPPORTED naming the key.
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/clip_text.h"
#include "io/config_json.h"
#include "io/file.h"
#include "io/weights.h"

// Bounds that keep size arithmetic far from overflow; SD's encoders (49408
// tokens, width 768/1024, 12/23 layers) are far below them.
enum {
    MAX_VOCAB = 1 << 24,
    MAX_WIDTH = 1 << 16,
    MAX_FF = 1 << 18,
    MAX_LAYERS = 256,
    MAX_POSITIONS = 1 << 16
};

static enum hsd_status parse_root(struct hsd_clip_text_config *cfg, json_t *root,
                                  const char *label) {
    enum hsd_status s;
    // transformers CLIPTextConfig defaults.
    cfg->projection_dim = 512;
    cfg->eos_token_id = 49407;
    cfg->vocab_size = 49408;
    cfg->hidden_size = 512;
    cfg->intermediate_size = 2048;
    cfg->num_hidden_layers = 12;
    cfg->num_attention_heads = 8;
    cfg->max_position_embeddings = 77;
    cfg->quick_gelu = 1;
    cfg->layer_norm_eps = 1e-5f;

    // A whole CLIPModel config (text_config + vision_config) or another
    // model's config would parse as defaults here: refuse it by name.
    json_t *mt = json_object_get(root, "model_type");
    if (mt && !json_is_null(mt)) {
        if (!json_is_string(mt)) return hsd_cfg_bad(label, "model_type", "expected a string");
        if (strcmp(json_string_value(mt), "clip_text_model"))
            return hsd_fail(HSD_ERR_UNSUPPORTED,
                            "%s: config key 'model_type': \"%.100s\" is not supported (expected "
                            "\"clip_text_model\", a CLIPTextModel text_encoder folder)",
                            label, json_string_value(mt));
    }
    json_t *arch = json_object_get(root, "architectures");
    if (arch && !json_is_null(arch)) {
        if (!json_is_array(arch)) return hsd_cfg_bad(label, "architectures", "expected a list of names");
        for (size_t i = 0; i < json_array_size(arch); i++) {
            json_t *e = json_array_get(arch, i);
            if (!json_is_string(e)) return hsd_cfg_bad(label, "architectures", "names must be strings");
            const char *a = json_string_value(e);
            // WithProjection (SDXL's text_encoder_2) shares the encoder and
            // adds text_projection (its pooled text_embeds).
            if (!strcmp(a, "CLIPTextModelWithProjection")) cfg->with_projection = 1;
            else if (strcmp(a, "CLIPTextModel"))
                return hsd_fail(HSD_ERR_UNSUPPORTED,
                                "%s: config key 'architectures': \"%.100s\" is not supported "
                                "(CLIPTextModel or CLIPTextModelWithProjection)",
                                label, a);
        }
    }

    if ((s = hsd_cfg_int(root, label, "vocab_size", 1, MAX_VOCAB, &cfg->vocab_size))) return s;
    if ((s = hsd_cfg_int(root, label, "hidden_size", 1, MAX_WIDTH, &cfg->hidden_size))) return s;
    if ((s = hsd_cfg_int(root, label, "intermediate_size", 1, MAX_FF, &cfg->intermediate_size)))
        return s;
    if ((s = hsd_cfg_int(root, label, "num_hidden_layers", 1, MAX_LAYERS, &cfg->num_hidden_layers)))
        return s;
    if ((s = hsd_cfg_int(root, label, "num_attention_heads", 1, MAX_WIDTH,
                     &cfg->num_attention_heads)))
        return s;
    if ((s = hsd_cfg_int(root, label, "max_position_embeddings", 1, MAX_POSITIONS,
                     &cfg->max_position_embeddings)))
        return s;
    if ((s = hsd_cfg_int(root, label, "projection_dim", 1, MAX_WIDTH, &cfg->projection_dim)))
        return s;
    json_t *eos = json_object_get(root, "eos_token_id");
    if (eos && json_is_array(eos))
        return hsd_fail(HSD_ERR_UNSUPPORTED,
                        "%s: config key 'eos_token_id': a list is not supported (one id)", label);
    if ((s = hsd_cfg_int(root, label, "eos_token_id", 0, MAX_VOCAB, &cfg->eos_token_id))) return s;
    // transformers CLIPTextConfig.validate_architecture raises for this too.
    if (cfg->hidden_size % cfg->num_attention_heads)
        return hsd_fail(HSD_ERR_FORMAT,
                        "%s: hidden_size %d is not divisible by num_attention_heads %d", label,
                        cfg->hidden_size, cfg->num_attention_heads);

    json_t *act = json_object_get(root, "hidden_act");
    if (act && !json_is_null(act)) {
        if (!json_is_string(act)) return hsd_cfg_bad(label, "hidden_act", "expected a string");
        const char *a = json_string_value(act);
        if (!strcmp(a, "quick_gelu")) {
            cfg->quick_gelu = 1;
        } else if (!strcmp(a, "gelu")) {
            cfg->quick_gelu = 0;
        } else {
            return hsd_fail(HSD_ERR_UNSUPPORTED,
                            "%s: config key 'hidden_act': \"%.100s\" is not supported "
                            "(\"quick_gelu\" as in SD 1.x or \"gelu\" as in SD 2.x)",
                            label, a);
        }
    }

    json_t *eps = json_object_get(root, "layer_norm_eps");
    if (eps && !json_is_null(eps)) {
        if (!json_is_number(eps)) return hsd_cfg_bad(label, "layer_norm_eps", "expected a number");
        double e = json_number_value(eps);
        if (!isfinite(e) || e <= 0.0 || e > 1.0)
            return hsd_cfg_bad(label, "layer_norm_eps", "must be in (0, 1]");
        cfg->layer_norm_eps = (float)e;
    }
    return HSD_OK;
}

enum hsd_status hsd_clip_text_config_parse(struct hsd_clip_text_config *cfg, const char *json,
                                           size_t len, const char *label) {
    memset(cfg, 0, sizeof *cfg);
    json_t *root;
    enum hsd_status s = hsd_cfg_parse(json, len, label, &root);
    if (s) return s;
    s = parse_root(cfg, root, label);
    json_decref(root);
    return s;
}

static enum hsd_status parse_text(void *cfg, const char *text, size_t len, const char *label) {
    return hsd_clip_text_config_parse(cfg, text, len, label);
}

enum hsd_status hsd_clip_text_config_load(struct hsd_clip_text_config *cfg, const char *path) {
    // Configs are a few hundred bytes; 1 MB is far beyond any real one.
    return hsd_parse_small_file(path, 1u << 20, "config", parse_text, cfg);
}

static const struct hsd_st_tensor *find2(const struct hsd_weights *w, const char *name) {
    const struct hsd_st_tensor *t = hsd_weights_find(w, name);
    return t && t->ndim == 2 ? t : NULL;
}

enum hsd_status hsd_clip_text_config_infer(struct hsd_clip_text_config *cfg,
                                           const struct hsd_weights *w) {
    const char *path = hsd_weights_path(w);
    memset(cfg, 0, sizeof *cfg);
    const struct hsd_st_tensor *tok = find2(w, "text_model.embeddings.token_embedding.weight");
    const struct hsd_st_tensor *pos = find2(w, "text_model.embeddings.position_embedding.weight");
    const struct hsd_st_tensor *fc1 = find2(w, "text_model.encoder.layers.0.mlp.fc1.weight");
    if (!tok || !pos || !fc1)
        return hsd_fail(HSD_ERR_FORMAT,
                        "%s: cannot infer the CLIP text encoder config: token/position "
                        "embedding or layer 0's mlp.fc1 missing or not 2-D",
                        path);
    int layers = 0;
    char pre[96];
    while (layers < MAX_LAYERS) {
        snprintf(pre, sizeof pre, "text_model.encoder.layers.%d.", layers);
        if (!hsd_weights_has_prefix(w, pre)) break;
        layers++;
    }
    int64_t width = tok->shape[1];
    if (tok->shape[0] > MAX_VOCAB || width > MAX_WIDTH || width % 64 ||
        pos->shape[1] != width || pos->shape[0] > MAX_POSITIONS || fc1->shape[1] != width ||
        fc1->shape[0] > MAX_FF)
        return hsd_fail(HSD_ERR_UNSUPPORTED,
                        "%s: CLIP text encoder shapes (vocab %lld, width %lld, positions %lld, "
                        "mlp %lld) do not fit an OpenAI CLIP text tower (width a multiple of "
                        "the 64-wide heads)",
                        path, (long long)tok->shape[0], (long long)width,
                        (long long)pos->shape[0], (long long)fc1->shape[0]);
    cfg->vocab_size = (int)tok->shape[0];
    cfg->hidden_size = (int)width;
    cfg->intermediate_size = (int)fc1->shape[0];
    cfg->num_hidden_layers = layers;
    cfg->num_attention_heads = (int)width / 64;
    cfg->max_position_embeddings = (int)pos->shape[0];
    cfg->quick_gelu = 1;
    cfg->layer_norm_eps = 1e-5f;
    cfg->projection_dim = 768;   // openai/clip-vit-large-patch14's (no projection loaded)
    cfg->eos_token_id = 2;       // its config.json, as SD 1.x ships it
    return HSD_OK;
}
