// Finishing on the edge: the steps the cloud left (its sampler state
// carried over), VAE decode, 8-bit RGB; or, when no cloud answered, the
// whole request on the edge model. Text encoding, the initial latent,
// each step, decoding and the 8-bit mapping are the very stage functions
// hsd_pipeline_generate calls (pipeline.h), so a handover finished here
// gives the pixels of the in-process hybrid, and the local fallback those
// of `hsd generate --model EDGE`.
//
// The step loop is written out here rather than calling
// hsd_pipeline_finish so that an interrupt (hsd_edge_request.interrupt)
// can stop it between two U-Net calls.
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edge/edge.h"

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int interrupted(const struct hsd_edge_request *r) {
    return r->interrupt && atomic_load(r->interrupt);
}

// The sampler's remaining steps on the edge U-Net (the pipeline's only
// one when it holds no separate edge U-Net), then decode + 8-bit RGB.
// latent [c, h, w]; cond/uncond [n_ctx, emb_c] (uncond NULL: no CFG).
static enum hsd_status steps_and_decode(struct hsd_pipeline *p, float *latent,
                                        struct hsd_sampler *sampler, const float *cond,
                                        const float *uncond, int n_ctx,
                                        const struct hsd_edge_request *r,
                                        int h, int w, uint8_t *rgb, struct hsd_edge_timing *tm,
                                        hsd_progress_fn progress, void *user) {
    const struct hsd_gen_request *g = &r->gen;
    struct hsd_unet *unet = hsd_pipeline_unet(p, 1);
    if (!unet) unet = hsd_pipeline_unet(p, 0);
    struct hsd_denoise_item item = {latent, sampler, cond, uncond, g->guidance_scale, n_ctx,
                                    g->lora_scales};
    int from = sampler->step, total = hsd_sampler_n_calls(sampler);
    enum hsd_status s = HSD_OK;
    double t0 = now_ms();
    while (!hsd_sampler_done(sampler)) {
        // A1111's interrupt: stop stepping, decode the latent as it is.
        if (interrupted(r)) {
            tm->interrupted = 1;
            break;
        }
        if ((s = hsd_pipeline_denoise_step(p, unet, &item, 1, h, w))) break;
        if (progress) progress(user, sampler->step, total);
    }
    tm->calls = sampler->step - from;
    tm->unet_ms = now_ms() - t0;
    if (s) return s;
    float *img = malloc((size_t)3 * g->height * g->width * sizeof *img);
    if (!img) return hsd_fail(HSD_ERR_NOMEM, "out of memory for the decoded image");
    t0 = now_ms();
    s = hsd_pipeline_decode(p, img, latent, 1, h, w);
    tm->decode_ms = now_ms() - t0;
    if (!s) hsd_pipeline_to_rgb(rgb, img, 1, g->height, g->width);
    free(img);
    return s;
}

enum hsd_status hsd_edge_finish(struct hsd_pipeline *p, struct hsd_edge_handover *h,
                                const struct hsd_edge_request *r, uint8_t *rgb,
                                struct hsd_edge_timing *t, hsd_progress_fn progress, void *user) {
    const struct hsd_gen_request *g = &r->gen;
    const int scale = hsd_pipeline_vae_scale(p);
    const int pooled = hsd_pipeline_is_sdxl(p) ? hsd_pipeline_pooled_dim(p) : 0;
    if (h->c != hsd_pipeline_latent_channels(p) || h->emb_c != hsd_pipeline_text_width(p) ||
        h->pooled_c != pooled || h->h * scale != g->height || h->w * scale != g->width)
        return hsd_fail(HSD_ERR_SHAPE, "edge finish: the handover does not fit this edge model "
                                       "(verify it with hsd_edge_verify_result first)");
    struct hsd_edge_timing tm = {0};
    // uncond is NULL exactly when CFG is off (verify kept only cond then),
    // as hsd_pipeline_generate's items.
    enum hsd_status s = steps_and_decode(p, h->latent, &h->sampler, h->cond, h->uncond, h->n_ctx, r, h->h,
                                         h->w, rgb, &tm, progress, user);
    if (t) *t = tm;
    return s;
}

enum hsd_status hsd_edge_generate_local(struct hsd_pipeline *p, const struct hsd_edge_request *r,
                                        uint8_t *rgb, struct hsd_edge_timing *t,
                                        hsd_progress_fn progress, void *user) {
    struct hsd_gen_request g = r->gen;
    g.split = -1;  // every step on the edge model (its only U-Net)
    g.batch_count = 1;
    enum hsd_status s = hsd_pipeline_validate(p, &g);
    if (s) return s;
    const int scale = hsd_pipeline_vae_scale(p), h = g.height / scale, w = g.width / scale;
    const size_t lat = (size_t)hsd_pipeline_latent_channels(p) * h * w;
    const int cfg = hsd_pipeline_cfg(p, g.guidance_scale);  // do_classifier_free_guidance
    float *emb = NULL, *latent = malloc(lat * sizeof *latent);
    struct hsd_sampler sampler = {0};
    struct hsd_edge_timing tm = {0};
    if (!latent) {
        s = hsd_fail(HSD_ERR_NOMEM, "out of memory");
        goto done;
    }
    // Image 0 of hsd_pipeline_generate, stage for stage: one text-encoder
    // batch [negative, prompt] (or the prompt alone), then its initial latent.
    const char *texts[2] = {g.negative_prompt ? g.negative_prompt : "", g.prompt};
    double t0 = now_ms();
    int n_ctx = HSD_TEXT_LEN;
    size_t ctx;  // floats of one pass
    if (hsd_pipeline_is_sdxl(p)) {
        // Both encoders, pooled embedding and time ids, as generate does.
        ctx = hsd_pipeline_cond_floats(p);
        if (!(emb = malloc((cfg ? 2 : 1) * ctx * sizeof *emb))) {
            s = hsd_fail(HSD_ERR_NOMEM, "out of memory");
            goto done;
        }
        if ((s = hsd_pipeline_encode_sdxl(p, &g, cfg, emb))) goto done;
    } else {
        if ((s = hsd_pipeline_encode_prompts_lora(p, &emb, &n_ctx, cfg ? texts : texts + 1,
                                                  cfg ? 2 : 1, g.prompt_style, g.clip_skip,
                                                  g.lora_scales)))
            goto done;
        ctx = (size_t)n_ctx * hsd_pipeline_text_width(p);
    }
    double text_ms = now_ms() - t0;
    if ((s = hsd_pipeline_init_image(p, &g, 0, latent, &sampler))) goto done;
    s = steps_and_decode(p, latent, &sampler, cfg ? emb + ctx : emb, cfg ? emb : NULL, n_ctx, r,
                         h, w, rgb, &tm, progress, user);
    tm.text_ms = text_ms;
    if (!s && t) *t = tm;
done:
    hsd_sampler_free(&sampler);
    free(emb);
    free(latent);
    return s;
}
