// libFuzzer target for the UNet config.json parser (host/models/unet_config.c).
// The input is passed with its exact length and no NUL terminator, so ASan
// catches a parser that reads one byte too far. An accepted config must also
// survive hsd_unet_config_to_json -> parse unchanged (`hsd inspect` prints
// that JSON, and users feed it back).
//
// Run: scripts/fuzz.sh [SECONDS]   (seed corpus: tests/fuzz/corpus/unet_config)
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "models/unet_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct hsd_unet_config cfg;
    if (hsd_unet_config_parse(&cfg, (const char *)data, size, "fuzz") != HSD_OK) return 0;
    (void)hsd_unet_config_validate(&cfg, "fuzz");
    char *json = hsd_unet_config_to_json(&cfg);
    if (!json) return 0;  // allocation failure, not a bug
    struct hsd_unet_config again;
    if (hsd_unet_config_parse(&again, json, strlen(json), "fuzz-roundtrip") != HSD_OK) abort();
    char *json2 = hsd_unet_config_to_json(&again);
    if (json2 && strcmp(json, json2) != 0) abort();
    free(json2);
    free(json);
    return 0;
}
