// Finishing on the edge: the steps the cloud left (its sampler state
// carried over), VAE decode, 8-bit RGB; or, when no cloud answered, the
// whole request on the edge model. Decoding and the 8-bit mapping are the
// very functions hsd_pipeline_generate calls, so a handover finished here
// gives the pixels the in-process hybrid gives.
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edge/edge.h"

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

enum hsd_status hsd_edge_finish(struct hsd_pipeline *p, struct hsd_edge_handover *h,
                                const struct hsd_edge_request *r, uint8_t *rgb,
                                struct hsd_edge_timing *t, hsd_progress_fn progress, void *user) {
    const struct hsd_gen_request *g = &r->gen;
    const int scale = hsd_pipeline_vae_scale(p);
    if (h->c != hsd_pipeline_latent_channels(p) || h->emb_c != hsd_pipeline_text_width(p) ||
        h->h * scale != g->height || h->w * scale != g->width)
        return hsd_fail(HSD_ERR_SHAPE, "edge finish: the handover does not fit this edge model "
                                       "(verify it with hsd_edge_verify_result first)");
    struct hsd_edge_timing tm = {0};
    int from = h->sampler.step;
    double t0 = now_ms();
    // uncond is NULL exactly when CFG is off (verify kept only cond then),
    // as hsd_pipeline_generate's items.
    enum hsd_status s = hsd_pipeline_finish(p, NULL, h->latent, &h->sampler, h->cond, h->uncond,
                                            g->guidance_scale, h->h, h->w, progress, user);
    tm.calls = h->sampler.step - from;
    tm.unet_ms = now_ms() - t0;
    if (s) return s;
    float *img = malloc((size_t)3 * g->height * g->width * sizeof *img);
    if (!img) return hsd_fail(HSD_ERR_NOMEM, "out of memory for the decoded image");
    t0 = now_ms();
    s = hsd_pipeline_decode(p, img, h->latent, 1, h->h, h->w);
    tm.decode_ms = now_ms() - t0;
    if (!s) hsd_pipeline_to_rgb(rgb, img, 1, g->height, g->width);
    free(img);
    if (t) *t = tm;
    return s;
}

struct count {
    hsd_progress_fn fn;
    void *user;
    int calls;
};

static void count_calls(void *user, int done, int total) {
    struct count *c = user;
    c->calls = done;
    if (c->fn) c->fn(c->user, done, total);
}

enum hsd_status hsd_edge_generate_local(struct hsd_pipeline *p, const struct hsd_edge_request *r,
                                        uint8_t *rgb, struct hsd_edge_timing *t,
                                        hsd_progress_fn progress, void *user) {
    struct hsd_gen_request g = r->gen;
    g.split = -1;  // every step on the edge model (its only U-Net)
    g.batch_count = 1;
    // One slot per U-Net call, whatever the model's schedule makes of N
    // (PNDM and "trailing" spacing add calls): the table's bound.
    enum { SLOTS = HSD_SAMPLER_MAX_STEPS + 2 };
    double *step_ms = calloc(SLOTS, sizeof *step_ms);
    if (!step_ms) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    struct hsd_gen_timing gt = {.step_ms = step_ms};
    struct count c = {progress, user, 0};
    enum hsd_status s = hsd_pipeline_generate(p, &g, rgb, NULL, NULL, &gt, count_calls, &c);
    if (!s && t) {
        memset(t, 0, sizeof *t);
        t->calls = c.calls;
        for (int i = 0; i < SLOTS; i++) t->unet_ms += step_ms[i];
        t->text_ms = gt.text_ms;
        t->decode_ms = gt.decode_ms;
    }
    free(step_ms);
    return s;
}
