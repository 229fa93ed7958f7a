// --lora arguments of hsd generate (FILE[:SCALE]), hsd serve (NAME=FILE)
// and hsd edge (NAME=FILE[:SCALE]), parsed into the pipeline's LoRA list.
#ifndef HSD_CLI_LORA_H
#define HSD_CLI_LORA_H

#include "pipeline/pipeline.h"

struct hsd_cli_loras {
    struct hsd_lora_spec spec[HSD_PIPELINE_MAX_LORAS];
    float scale[HSD_PIPELINE_MAX_LORAS];
    char names[HSD_PIPELINE_MAX_LORAS][16];
    int n;
};

// FILE[:SCALE] (scale default 1; a path may hold ':' when what follows the
// last one is not a number). 0, or -1 after printing a usage error.
int hsd_cli_lora_file(const char *cmd, struct hsd_cli_loras *l, char *arg);
// NAME=FILE, or NAME=FILE[:SCALE] with_scale. 0, or -1 after printing a
// usage error.
int hsd_cli_lora_named(const char *cmd, struct hsd_cli_loras *l, char *arg, int with_scale);

#endif
