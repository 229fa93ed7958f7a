// More than two U-Nets in one schedule (issue 12 item 6): the paper's
// reference code takes a list of models and the step at which each takes
// over, with one scheduler object throughout; hsd_gen_request.splits is
// that list (call indices), hsd_pipeline_config.more_models the U-Nets
// after the edge one. Two U-Nets stay the common case (`split`).
#include <stdio.h>

#include "pipeline/pipeline_internal.h"

enum hsd_status hsd_pipeline_stages_load(struct hsd_pipeline *p,
                                         const struct hsd_pipeline_config *c, int *mult) {
    if (c->n_more_models < 0 || c->n_more_models > HSD_PIPELINE_MAX_UNETS - 2)
        return hsd_fail(HSD_ERR_INVALID_ARG, "at most %d U-Nets in one schedule",
                        HSD_PIPELINE_MAX_UNETS);
    if (c->n_more_models && !p->edge)
        return hsd_fail(HSD_ERR_INVALID_ARG, "more U-Nets need an edge model first");
    for (int i = 0; i < c->n_more_models; i++) {
        const char *path = c->more_models[i];
        enum hsd_status s = hsd_unet_source_open(&p->src_more[i], path, NULL);
        if (!s) s = hsd_unet_create(&p->more[i], &p->src_more[i], p->be);
        if (!s) {
            p->n_more = i + 1;
        } else {
            hsd_unet_source_close(&p->src_more[i]);
            return s;
        }
        const struct hsd_unet_config *uc = hsd_unet_get_config(p->more[i]);
        if (uc->cross_attention_dim != p->ctx_dim || uc->in_channels != p->latent_c ||
            uc->out_channels != p->latent_c)
            return hsd_fail(HSD_ERR_SHAPE,
                            "U-Net %d (%s): context width %d / %d latent channels do not match "
                            "the large model's %d / %d",
                            i + 3, path, uc->cross_attention_dim, uc->in_channels, p->ctx_dim,
                            p->latent_c);
        int m = hsd_unet_size_multiple(p->more[i]);
        if (m > *mult) *mult = m;
    }
    return HSD_OK;
}

void hsd_pipeline_stages_free(struct hsd_pipeline *p) {
    for (int i = 0; i < p->n_more; i++) {
        hsd_unet_free(p->more[i]);
        hsd_unet_source_close(&p->src_more[i]);
    }
    p->n_more = 0;
}

enum hsd_status hsd_pipeline_stages_validate(const struct hsd_pipeline *p,
                                             const struct hsd_gen_request *r, int calls) {
    if (!r->splits) {
        if (p->n_more && r->split >= 0)
            return hsd_fail(HSD_ERR_INVALID_ARG,
                            "%d U-Nets: give %d split points (the call each takes over at)",
                            p->n_more + 2, p->n_more + 1);
        return HSD_OK;
    }
    if (r->n_splits != p->n_more + 1)
        return hsd_fail(HSD_ERR_INVALID_ARG, "%d split points for %d U-Nets (need %d)",
                        r->n_splits, p->n_more + 2, p->n_more + 1);
    for (int i = 0; i < r->n_splits; i++) {
        int prev = i ? r->splits[i - 1] : 0;
        if (r->splits[i] < prev || r->splits[i] > calls)
            return hsd_fail(HSD_ERR_INVALID_ARG,
                            "split points must ascend within [0, %d] (U-Net calls of %d %s "
                            "steps); point %d is %d",
                            calls, r->steps, hsd_sampler_name(r->sampler), i + 1, r->splits[i]);
    }
    return HSD_OK;
}

struct hsd_unet *hsd_pipeline_stage_unet(struct hsd_pipeline *p, const struct hsd_gen_request *r,
                                         int step, int calls, int *stage) {
    if (!r->splits) {
        int split = r->split < 0 || !p->edge ? calls : r->split;
        *stage = step < split ? 0 : 1;
        return *stage ? p->edge : p->large;
    }
    int k = 0;
    while (k < r->n_splits && step >= r->splits[k]) k++;
    *stage = k;
    return k == 0 ? p->large : k == 1 ? p->edge : p->more[k - 2];
}
