// scheduler/request_fit.c: a GENERATE the service's model or the edge's
// U-Net cannot take is refused before compute, with the field named
// (issue 11 item 6: bad SDXL / SD 1.x pairs, protocol version 1 for SDXL);
// a LoRA with SDXL fits (issue 12).
// The SDXL and SD 1.x pipelines are the oracle's small ones (tests/data).
#include <stdio.h>
#include <string.h>

#include "service.h"
#include "testutil.h"

static struct hsd_wire_msg generate(uint16_t version, uint16_t ctx, uint16_t pooled) {
    struct hsd_wire_msg m = {0};
    m.version = version;
    m.type = HSD_WIRE_GENERATE;
    m.u.generate.prompt.kind = HSD_WIRE_PROMPT_TEXT;
    m.u.generate.prompt.text = (struct hsd_wire_str){"a cat", 5};
    m.u.generate.negative.kind = HSD_WIRE_PROMPT_TEXT;
    m.u.generate.edge_ctx_c = ctx;
    m.u.generate.edge_pooled_c = pooled;
    return m;
}

// fits(...) or refused(..., "words the message must hold")
static void expect(const char *what, const struct hsd_pipeline *p, const struct hsd_wire_msg *m,
                   const char *want) {
    hsd_clear_error();
    enum hsd_status s = hsd_service_check_fit(p, m);
    int ok = want ? s == HSD_ERR_INVALID_ARG && strstr(hsd_last_error(), want) : s == HSD_OK;
    printf("  %-40s -> %s\n", what, s ? hsd_last_error() : "fits");
    CHECKF(ok, "%s: expected %s '%s', got %s: %s", what, want ? "a refusal with" : "a fit",
           want ? want : "", hsd_status_str(s), hsd_last_error());
}

int main(void) {
    struct hsd_pipeline *xl = NULL, *sd = NULL;
    struct hsd_pipeline_config c = {.model = HSD_TEST_DATA "/pipeline_sdxl/large", .threads = 1};
    CHECK_OK(hsd_pipeline_load(&xl, &c));
    c.model = HSD_TEST_DATA "/pipeline/large";
    CHECK_OK(hsd_pipeline_load(&sd, &c));
    if (!xl || !sd) return hsd_test_finish();
    const int xc = hsd_pipeline_text_width(xl), xp = hsd_pipeline_pooled_dim(xl);
    const int sc = hsd_pipeline_text_width(sd);
    printf("SDXL: context %d, pooled %d; SD 1.x: context %d\n", xc, xp, sc);

    struct hsd_wire_msg m = generate(2, (uint16_t)xc, (uint16_t)xp);
    expect("SDXL edge, SDXL service", xl, &m, NULL);
    m = generate(2, 0, 0);
    expect("widths not given (not checked)", xl, &m, NULL);
    m = generate(1, 0, 0);
    expect("version 1 GENERATE, SDXL service", xl, &m, "protocol version 1");
    expect("version 1 GENERATE, SD 1.x service", sd, &m, NULL);
    m = generate(2, (uint16_t)xc, 0);  // the right width but no pooled embedding
    expect("SDXL service, edge without pooled", xl, &m, "edge_pooled_c 0");
    m = generate(2, (uint16_t)xc, (uint16_t)(xp + 1));
    expect("pooled widths differ", xl, &m, "edge_pooled_c");
    m = generate(2, (uint16_t)sc, (uint16_t)xp);  // an SDXL-family edge as wide as SD 1.x
    expect("SD 1.x service, edge needs pooled", sd, &m, "edge_pooled_c");
    m = generate(2, (uint16_t)sc, 0);
    expect("SD 1.x edge, SD 1.x service", sd, &m, NULL);
    m = generate(2, (uint16_t)sc, 0);
    expect("SD 1.x edge, SDXL service", xl, &m, "edge_ctx_c");
    m = generate(2, (uint16_t)xc, (uint16_t)xp);
    expect("SDXL edge, SD 1.x service", sd, &m, "edge_ctx_c");
    static const int32_t ids[3] = {49406, 320, 49407};
    m = generate(2, 0, 0);
    m.u.generate.prompt.kind = HSD_WIRE_PROMPT_TOKENS;
    m.u.generate.prompt.tokens = ids;
    m.u.generate.prompt.n_tokens = 3;
    expect("token ids, SDXL service", xl, &m, "prompt kind");
    expect("token ids, SD 1.x service", sd, &m, NULL);
    m = generate(2, 0, 0);
    m.u.generate.flags = HSD_WIRE_GEN_A1111;
    expect("A1111 style, SDXL service", xl, &m, "gen_flags");
    m = generate(2, 0, 0);
    m.u.generate.n_loras = 1;
    // LoRAs fit SDXL too (issue 12): the names are checked against the
    // service's registered LoRAs later (service.c lora_scales).
    expect("LoRA, SDXL service", xl, &m, NULL);
    hsd_pipeline_free(xl);
    hsd_pipeline_free(sd);
    return hsd_test_finish();
}
