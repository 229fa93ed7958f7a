// libFuzzer target for the sharded-checkpoint index parser
// (host/io/weights_index.c): *.safetensors.index.json comes with downloaded
// weights. The input is passed with its exact length, no NUL. An accepted
// index must be self-consistent: every tensor's shard index in range, every
// shard name a plain .safetensors file name (no path out of the folder).
//
// Run: scripts/fuzz.sh [SECONDS]   (seed corpus: tests/fuzz/corpus/weights_index)
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/weights_index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct hsd_weights_index idx;
    if (hsd_weights_index_parse(&idx, (const char *)data, size, "fuzz") != HSD_OK) return 0;
    if (!idx.n || !idx.n_files || idx.n_files > HSD_WEIGHTS_MAX_SHARDS) abort();
    for (size_t i = 0; i < idx.n; i++)
        if (idx.file_of[i] >= idx.n_files || !idx.names[i]) abort();
    for (size_t f = 0; f < idx.n_files; f++)
        if (strchr(idx.files[f], '/') || idx.files[f][0] == '.') abort();
    hsd_weights_index_free(&idx);
    return 0;
}
