// libFuzzer target for the safetensors reader (docs/conventions.md "Tests": a fuzz
// target for every parser of untrusted bytes). Parses the input as a whole
// file, then touches every tensor the way a loader would: float tensors are
// converted with hsd_safetensors_read_f32, the others are read byte by byte,
// so ASan sees any pointer the parser let escape the input.
//
// Run: scripts/fuzz.sh [SECONDS]   (seed corpus: tests/fuzz/corpus/safetensors)
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// Where the bytes read go, so the reads cannot be optimised away.
static volatile unsigned char g_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct hsd_safetensors *st = NULL;
    if (hsd_safetensors_parse(&st, data, size, "fuzz") != HSD_OK) {
        if (st) abort();  // *out must be NULL on failure
        return 0;
    }
    // A valid file's tensors tile the data, so their bytes add up to at most
    // the input size; a parser bug that breaks this shows up as an abort.
    size_t total = 0;
    for (size_t i = 0; i < hsd_safetensors_count(st); i++) {
        const struct hsd_st_tensor *t = hsd_safetensors_at(st, i);
        if (hsd_safetensors_find(st, t->name) != t) abort();
        total += t->nbytes;
        if (total > size) abort();
        if (t->dtype == HSD_F32 || t->dtype == HSD_F16 || t->dtype == HSD_BF16) {
            float *buf = malloc(t->numel ? (size_t)t->numel * sizeof(float) : 1);
            if (!buf) continue;
            if (hsd_safetensors_read_f32(st, t->name, buf, (size_t)t->numel) != HSD_OK) abort();
            for (int64_t k = 0; k < t->numel; k++) g_sink ^= ((unsigned char *)buf)[k * 4];
            free(buf);
        } else {
            float one;
            if (hsd_safetensors_read_f32(st, t->name, &one, 1) != HSD_ERR_UNSUPPORTED) abort();
            const unsigned char *p = t->data;
            for (size_t k = 0; k < t->nbytes; k++) g_sink ^= p[k];
        }
    }
    (void)hsd_safetensors_metadata(st, "format");
    hsd_safetensors_close(st);
    return 0;
}
