// One image through the whole edge flow: the cloud's first k steps, then
// the edge's; or the edge alone when no cloud answers. `hsd edge` and the
// HTTP daemon (`hsd edge --http`) both call this, so an image from the
// A1111 API is made exactly as the CLI makes it.
#include <string.h>

#include "edge/edge.h"

enum hsd_status hsd_edge_run(struct hsd_pipeline *p, const struct hsd_edge_request *r,
                             const struct hsd_edge_client_opts *o, int no_fallback, uint8_t *rgb,
                             struct hsd_edge_run_info *info, hsd_progress_fn progress,
                             void *user) {
    memset(info, 0, sizeof *info);
    struct hsd_edge_expect e;
    hsd_edge_expect_from(&e, p);
    struct hsd_edge_handover h = {0};
    enum hsd_status s = hsd_edge_ask_cloud(&h, &info->cloud, r, o, &e);
    if (s) return s;
    if (info->cloud.outcome == HSD_EDGE_LOCAL) {
        if (no_fallback)
            return hsd_fail(HSD_ERR_IO, "no cloud answered: %s; --no-fallback was given",
                            info->cloud.reason);
        return hsd_edge_generate_local(p, r, rgb, &info->edge, progress, user);
    }
    info->k_used = h.k_used;
    info->device_ms = h.device_ms;
    // The cloud's calls count as done: the bar jumps to k at the handover.
    if (progress) progress(user, h.k_used, hsd_sampler_n_calls(&h.sampler));
    s = hsd_edge_finish(p, &h, r, rgb, &info->edge, progress, user);
    hsd_edge_handover_free(&h);
    return s;
}
