// libFuzzer target for the single-file name mappings (docs/conventions.md
// "Tests": a fuzz target for every parser of untrusted bytes): a
// checkpoint's key names come from the file, and io/ldm_names.c /
// io/ldm_vae_names.c parse indices and members out of them, and
// io/ldm_openclip_names.c (SD 2.x's and SDXL's text towers) maps each to 0, 1 or 3
// names. The input is a list of names, one per line; the U-Net and VAE
// mappings must either fail cleanly or return one malloc'd name per input
// name; the OpenCLIP one 0, 1 or 3 non-NULL names or a clean failure.
//
// Run: scripts/fuzz.sh [SECONDS]   (seed corpus: tests/fuzz/corpus/ldm_names)
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/ldm_names.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_NAMES = 256 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    const char *names[MAX_NAMES];
    char *out[MAX_NAMES];
    size_t n = 0;
    for (char *p = buf; n < MAX_NAMES;) {
        names[n++] = p;
        char *nl = strchr(p, '\n');
        if (!nl) break;
        *nl = '\0';
        p = nl + 1;
    }
    enum hsd_status (*const maps[2])(char **, const char *const *, size_t, const char *) = {
        hsd_ldm_unet_rename, hsd_ldm_vae_rename};
    for (int m = 0; m < 2; m++) {
        if (maps[m](out, names, n, "fuzz") != HSD_OK) continue;
        for (size_t i = 0; i < n; i++) {
            if (!out[i]) abort();  // success means every name was mapped
            free(out[i]);
        }
    }
    int blocks = hsd_ldm_openclip_blocks(names, n);
    for (size_t i = 0; i < 2 * n; i++) {  // SD 2.x's mapping, then SDXL's
        char *o[3];
        int k = -1;
        if (hsd_ldm_openclip_rename(o, &k, names[i % n], blocks, i >= n, "fuzz") != HSD_OK) {
            if (k != 0 || o[0] || o[1] || o[2]) abort();
            continue;
        }
        if (k != 0 && k != 1 && k != 3) abort();
        for (int j = 0; j < 3; j++) {
            if ((j < k) != (o[j] != NULL)) abort();
            free(o[j]);
        }
    }
    free(buf);
    return 0;
}
