// The index of a sharded safetensors checkpoint, as transformers and
// diffusers write it (`*.safetensors.index.json`, save_pretrained with
// max_shard_size; large SDXL repos ship them): {"metadata": {...},
// "weight_map": {"<tensor name>": "<shard file name>", ...}}.
#ifndef HSD_IO_WEIGHTS_INDEX_H
#define HSD_IO_WEIGHTS_INDEX_H

#include <stddef.h>

#include "core/status.h"

#define HSD_WEIGHTS_MAX_SHARDS 1024

struct hsd_weights_index {
    char **files;        // distinct shard file names, sorted
    size_t n_files;
    char **names;        // tensor names, index order
    size_t *file_of;     // [n] index into files
    size_t n;
};

// Parses index bytes (need not be NUL-terminated). Shard names must be
// plain file names in the index's folder ending in ".safetensors" (no '/',
// no leading '.'): an index must not point outside its folder. `label`
// names the file in messages. On failure *idx is empty.
enum hsd_status hsd_weights_index_parse(struct hsd_weights_index *idx, const char *json,
                                        size_t len, const char *label);
// The same from a file (at most 16 MB).
enum hsd_status hsd_weights_index_load(struct hsd_weights_index *idx, const char *path);
void hsd_weights_index_free(struct hsd_weights_index *idx);

#endif
