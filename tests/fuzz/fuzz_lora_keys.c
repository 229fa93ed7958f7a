// libFuzzer target for the LoRA key-name parser (host/models/lora_keys.c):
// tensor names come from untrusted .safetensors headers. The input, cut at
// its first NUL, is one name. An accepted name must give a non-empty layer
// in the parser's own spelling ([A-Za-z0-9_] only), which is a fixed point
// of hsd_lora_layer_name (what the models' target names go through).
//
// Run: scripts/fuzz.sh [SECONDS]   (seed corpus: tests/fuzz/corpus/lora_keys)
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "models/lora_keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *key = malloc(size + 1);
    if (!key) return 0;
    memcpy(key, data, size);
    key[size] = 0;
    struct hsd_lora_key k;
    if (hsd_lora_key_parse(&k, key) == HSD_OK) {
        size_t n = strnlen(k.layer, sizeof k.layer);
        if (n == 0 || n == sizeof k.layer) abort();
        if (k.part >= HSD_LORA_N_PARTS || k.role > HSD_LORA_ALPHA) abort();
        for (size_t i = 0; i < n; i++) {
            char c = k.layer[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_'))
                abort();
        }
        char again[HSD_LORA_LAYER_MAX];
        if (hsd_lora_layer_name(again, k.layer) || strcmp(again, k.layer)) abort();
    }
    free(key);
    return 0;
}
