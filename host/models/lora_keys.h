// LoRA tensor names -> (model part, layer, role): the one parser of the
// key names LoRA files carry, shared by every loader and fuzzed
// (tests/fuzz/fuzz_lora_keys.c). Formats, as diffusers'
// lora_conversion_utils.py and PEFT write and read them:
//   kohya / A1111:  lora_unet_<layer>.lora_down.weight | .lora_up.weight | .alpha
//                   lora_te_<layer>..., lora_te1_<layer>..., lora_te2_<layer>...
//                   (<layer>: the diffusers module path with '.' -> '_')
//   diffusers/PEFT: unet.<layer>.lora_A.weight | .lora_B.weight  (also .alpha)
//                   text_encoder.<layer>..., text_encoder_2.<layer>...
//   older diffusers: <part>.<layer>.lora.down.weight | .lora.up.weight, and
//                   <part>.<attn>.processor.to_q_lora.down.weight (to_out_lora
//                   is to_out.0), the attention-processor format.
// The layer comes back in kohya's spelling ('.' -> '_', text-encoder
// layers without their "text_model_" prefix) so both formats meet on one name.
#ifndef HSD_MODELS_LORA_KEYS_H
#define HSD_MODELS_LORA_KEYS_H

#include "core/status.h"

enum hsd_lora_part { HSD_LORA_UNET, HSD_LORA_TE1, HSD_LORA_TE2, HSD_LORA_N_PARTS };
enum hsd_lora_role { HSD_LORA_DOWN, HSD_LORA_UP, HSD_LORA_ALPHA };

#define HSD_LORA_LAYER_MAX 200

struct hsd_lora_key {
    enum hsd_lora_part part;
    enum hsd_lora_role role;
    char layer[HSD_LORA_LAYER_MAX];  // "down_blocks_0_attentions_0_..._attn1_to_q"
};

// Parses one tensor name. HSD_ERR_FORMAT (with a message naming the key)
// for a name in none of the formats above, or a layer name too long.
enum hsd_status hsd_lora_key_parse(struct hsd_lora_key *out, const char *key);

// A diffusers module path ("down_blocks.0.attentions.0.proj_in") in the
// parser's spelling; out holds HSD_LORA_LAYER_MAX bytes. 0, or -1 if too long.
int hsd_lora_layer_name(char *out, const char *module_path);

const char *hsd_lora_part_name(enum hsd_lora_part part);

#endif
