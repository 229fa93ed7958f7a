// libFuzzer harness: the body of POST /sdapi/v1/txt2img and of POST
// /sdapi/v1/options is untrusted bytes for `hsd edge --http` (anything that
// reaches its port). Parse both; a request that parses is also checked by
// the edge's own validation (without a model), as the daemon does before
// queueing it. Any crash, leak or UB is a finding; a 4xx is the expected
// outcome for most inputs. The prompt's A1111 extra-network tags
// (<lora:NAME:SCALE>, a1111_extra_networks.c) are parsed on the way.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "edge/a1111_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    // Two LoRAs registered, so <lora:NAME:SCALE> tags reach the scales;
    // an SD or an SDXL daemon (its 1024 default size) by the input's length.
    struct hsd_a1111_settings s = {.model_title = "edge", .vae = "full",
                                   .vaes = {"full", "tiny"}, .n_vaes = 2, .k_min = 2, .k_max = 2,
                                   .loras = {"style", "detail"}, .n_loras = 2,
                                   .sdxl = (int)(size & 1)};
    char msg[512];
    struct hsd_a1111_txt2img t;
    int st = hsd_a1111_parse_txt2img(&t, (const char *)data, size, &s, msg, sizeof msg);
    if (st == 0) {
        hsd_edge_request_validate(&t.r, NULL);
        hsd_a1111_txt2img_free(&t);
    } else if (!memchr(msg, '\0', sizeof msg) || !msg[0]) {
        __builtin_trap();  // every refusal carries a message
    }
    st = hsd_a1111_parse_options(&s, (const char *)data, size, msg, sizeof msg);
    if (st && !msg[0]) __builtin_trap();
    return 0;
}
