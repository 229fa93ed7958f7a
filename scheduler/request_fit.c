// Whether a GENERATE fits the service's model and the edge that sent it,
// decided on the receive thread before any compute (docs/protocol.md §5.1
// "Version 2 fields"): an SDXL model answers only version 2 (only it
// carries SDXL's pooled embeddings and time ids), takes text prompts
// (two tokenizers) in diffusers' style (as hsd generate; LoRAs as for
// SD 1.x: both text encoders and the U-Net take the request's scales);
// and the edge's U-Net, as GENERATE describes it, must take this model's
// text embeddings: the same cross-attention width, and a pooled
// embedding of the same width exactly when it is SDXL-family.
#include "service.h"

#include "net/wire.h"

enum hsd_status hsd_service_check_fit(const struct hsd_pipeline *p, const struct hsd_wire_msg *m) {
    const struct hsd_wire_generate *g = &m->u.generate;
    const int sdxl = hsd_pipeline_is_sdxl(p);
    const int ctx = hsd_pipeline_text_width(p), pooled = sdxl ? hsd_pipeline_pooled_dim(p) : 0;
    if (sdxl && m->version < 2)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "protocol version %u: this service's model is SDXL, whose RESULT "
                        "(pooled text embeddings, time ids) needs protocol version 2",
                        m->version);
    if (g->edge_ctx_c && g->edge_ctx_c != ctx)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "edge_ctx_c %u: the edge's U-Net attends to %u-wide text embeddings, "
                        "this service's model (%s) makes %d-wide ones; these models cannot "
                        "work together",
                        g->edge_ctx_c, g->edge_ctx_c, sdxl ? "SDXL" : "SD 1.x/2.x", ctx);
    if (g->edge_ctx_c && g->edge_pooled_c && pooled && g->edge_pooled_c != pooled)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "edge_pooled_c %u: the edge's U-Net takes %u-wide pooled text "
                        "embeddings, this service's SDXL model makes %d-wide ones; these models "
                        "cannot work together",
                        g->edge_pooled_c, g->edge_pooled_c, pooled);
    if (g->edge_ctx_c && g->edge_pooled_c != pooled)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "edge_pooled_c %u: the edge's U-Net %s, this service's model %s; these "
                        "models cannot work together",
                        g->edge_pooled_c,
                        g->edge_pooled_c ? "needs SDXL's pooled text embedding"
                                         : "takes no pooled text embedding (not SDXL)",
                        sdxl ? "is SDXL" : "has no pooled text embedding (not SDXL)");
    if (!sdxl) return HSD_OK;
    if (g->prompt.kind != HSD_WIRE_PROMPT_TEXT || g->negative.kind != HSD_WIRE_PROMPT_TEXT)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "prompt kind: SDXL models take text prompts (their two tokenizers "
                        "differ), not token ids");
    if (g->flags & HSD_WIRE_GEN_A1111)
        return hsd_fail(HSD_ERR_INVALID_ARG, "gen_flags: the A1111 prompt style is not "
                                             "supported for SDXL models yet");
    return HSD_OK;
}
