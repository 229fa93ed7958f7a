// libFuzzer harness: a cloud's RESULT is untrusted bytes for the edge.
// Decode it, then verify it against a request built from the message's own
// header fields (so verification gets past the cheap field comparisons and
// into the sampler state and the shape checks). Any crash, leak or UB is a
// finding; rejections are the expected outcome for most inputs.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge/edge.h"
#include "net/wire.h"

static void verify(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    verify(data, size);
    // Most mutations break the CRC and stop at the decoder (fuzz_wire covers
    // that); a copy with the checksum recomputed reaches verification.
    if (size >= HSD_WIRE_HEADER_SIZE) {
        uint8_t *copy = malloc(size);
        if (!copy) return 0;
        memcpy(copy, data, size);
        hsd_wire_update_checksum(copy, size);
        verify(copy, size);
        free(copy);
    }
    return 0;
}

static void verify(const uint8_t *data, size_t size) {
    struct hsd_wire_msg m;
    enum hsd_wire_error code;
    if (hsd_wire_decode(&m, &code, data, size) || m.type != HSD_WIRE_RESULT) return;
    const struct hsd_wire_result *r = &m.u.result;
    struct hsd_edge_request req;
    memset(&req, 0, sizeof req);
    req.gen.prompt = "fuzz";
    req.gen.steps = r->steps ? r->steps : 1;
    req.gen.sampler = (enum hsd_sampler_kind)(r->sampler % HSD_SAMPLER_COUNT);
    req.gen.width = r->w * 8;
    req.gen.height = r->h * 8;
    req.gen.guidance_scale = r->n_emb == 2 ? 7.5f : 1.0f;
    req.gen.batch_count = 1;
    req.k_min = 0;
    req.k_max = req.gen.steps;
    struct hsd_noise_schedule sched;
    hsd_noise_schedule_sd15(&sched);
    struct hsd_edge_expect e = {.latent_c = r->c ? r->c : 4, .emb_c = r->emb_c ? r->emb_c : 32,
                                .vae_scale = 8, .sched = &sched, .pooled_c = r->pooled_c};
    struct hsd_edge_handover h;
    if (!hsd_edge_verify_result(&h, &m, m.request_id, &req, &e)) hsd_edge_handover_free(&h);
}
