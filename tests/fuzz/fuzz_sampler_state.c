// libFuzzer target for the sampler state a network peer sends
// (hsd_sampler_deserialize, host/sampling/sampler.c). The input is passed
// with its exact length, so ASan catches a read one byte too far. An
// accepted state must serialize back to the same bytes, and one step on it
// must be safe.
//
// The first input byte picks the mode: even = the bytes as they are (the
// CRC and length checks), odd = the rest with its CRC-32 recomputed, so
// the fuzzer reaches the semantic checks behind the CRC.
//
// Run: scripts/fuzz.sh [SECONDS]   (seed corpus: tests/fuzz/corpus/sampler_state,
// "<mode byte> + hsd_sampler_serialize()" of PNDM/DPM++/Euler a states)
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "sampling/sampler.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int fix_crc = data[0] & 1;
    const size_t len = size - 1;
    uint8_t *b = malloc(len ? len : 1);
    if (!b) return 0;
    memcpy(b, data + 1, len);
    if (fix_crc && len >= 4) {
        uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, (uInt)(len - 4));
        for (int i = 0; i < 4; i++) b[len - 4 + i] = (uint8_t)(crc >> (8 * i));
    }
    struct hsd_sampler s;
    if (hsd_sampler_deserialize(&s, b, len) == HSD_OK) {
        const size_t n = hsd_sampler_serialized_size(&s);
        if (n != len) abort();
        uint8_t *out = malloc(n);
        if (out) {
            if (hsd_sampler_serialize(&s, out, n) != HSD_OK) abort();
            if (memcmp(out, b, n) != 0) abort();
            free(out);
        }
        if (!hsd_sampler_done(&s) && s.n_latent <= 4096) {
            float *x = calloc(s.n_latent, sizeof *x), *mo = calloc(s.n_latent, sizeof *mo);
            if (x && mo) {
                (void)hsd_sampler_timestep(&s);
                hsd_sampler_scale_model_input(&s, mo, x);
                if (hsd_sampler_step(&s, x, mo) != HSD_OK) abort();
            }
            free(x);
            free(mo);
        }
        hsd_sampler_free(&s);
    }
    free(b);
    return 0;
}
