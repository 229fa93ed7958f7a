// hsd_pipeline_resident_step: one denoising step of requests resident on
// the backend (resident_pool.c), every stage a backend op on backend
// memory (docs/denoise_step.md "Resident state"):
//
//   step_gather  slots -> batch latents, history (+ Euler a noise), step
//                table, U-Net timesteps and contexts
//   step_input   batch latents -> U-Net input rows (scale_model_input)
//   U-Net        hsd_unet_forward_dev, output rows stay in its arena
//   cfg_combine  output rows -> guided eps
//   sampler_step latents and history advanced in place
//   step_scatter batch -> slots, each slot's call counter + 1
//
// diffusers StableDiffusionPipeline's loop body, batched as
// hsd_pipeline_denoise_step batches it (unconditional rows first, then
// conditional). The host writes the batch's slot refs only when its
// membership changed; a steady-state step transfers nothing.
//
// The ops run over the bucket's row count of items, the unused ones
// skipped (HSD_STEP_SKIP), so on a graph-recording backend (CUDA) the whole
// sequence is one graph per (U-Net, bucket, latent size): gather to scatter
// recorded once and replayed for any batch in the bucket (issue 10 item 4). The U-Net is planned before the recording
// starts (nothing allocates inside a capture).
#include <stdlib.h>
#include <string.h>

#include "backend/step_ops.h"
#include "core/assert.h"
#include "pipeline/pipeline_internal.h"

void hsd_res_scratch_free(struct hsd_res_scratch *s, struct hsd_backend *be) {
    void *dev[] = {s->x, s->hist, s->eps, s->table, s->refs, s->in, s->t, s->ctx};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i] && be) be->ops->free(be, dev[i]);
    free(s->refs_host);
    free(s->gens);
    free(s->ids);
    memset(s, 0, sizeof *s);
}

// Room for `items` items and `rows` U-Net rows. New buffers start zeroed
// (one upload each, a shape's first step only): a bucket's padding rows,
// which no item writes, then hold finite values.
static enum hsd_status grow(struct hsd_res_scratch *s, struct hsd_backend *be, size_t items,
                            size_t rows, size_t lat, size_t ctx) {
    size_t want[HSD_CAPS] = {items, rows, lat, ctx};
    if (hsd_caps_fit(want, s->cap)) return HSD_OK;
    items = want[0], rows = want[1], lat = want[2], ctx = want[3];
    hsd_res_scratch_free(s, be);
    const struct hsd_backend_ops *o = be->ops;
    const size_t f = sizeof(float), act = be->act_size;
    s->x = o->alloc(be, items * lat * f);
    s->hist = o->alloc(be, items * HSD_STEP_SLOTS * lat * f);
    s->eps = o->alloc(be, items * lat * f);
    s->table = o->alloc(be, items * sizeof(struct hsd_step_row));
    s->refs = o->alloc(be, items * sizeof(struct hsd_step_slot_ref));
    s->in = o->alloc(be, rows * lat * act);
    s->t = o->alloc(be, rows * f);
    s->ctx = o->alloc(be, rows * ctx * act);
    s->refs_host = calloc(items, sizeof *s->refs_host);
    s->gens = calloc(items, sizeof *s->gens);
    s->ids = calloc(items, sizeof *s->ids);
    size_t zn = rows * (lat > ctx ? lat : ctx);
    float *zero = calloc(zn, sizeof *zero);
    enum hsd_status st = HSD_OK;
    if (!s->x || !s->hist || !s->eps || !s->table || !s->refs || !s->in || !s->t || !s->ctx ||
        !s->refs_host || !s->gens || !s->ids || !zero)
        st = hsd_fail(HSD_ERR_NOMEM, "out of memory for a resident step of %zu items, %zu rows",
                      items, rows);
    if (!st) st = o->upload(be, s->in, zero, rows * lat);
    if (!st) st = o->upload_f32(be, s->t, zero, rows);
    if (!st) st = o->upload(be, s->ctx, zero, rows * ctx);
    free(zero);
    if (st) {
        hsd_res_scratch_free(s, be);
        return st;
    }
    memcpy(s->cap, want, sizeof want);
    return HSD_OK;
}

// The batch's refs (unconditional rows 0..n_uncond-1 in item order, then
// the conditional rows; items n..padded-1 unused), uploaded only when they
// differ from the last batch's: the same slots, generations and order in
// the same bucket need no transfer.
static enum hsd_status write_refs(struct hsd_pipeline *p, const int *ids, int n, int padded) {
    struct hsd_res_scratch *s = &p->rstep;
    int same = s->n_refs == n && s->padded_refs == padded;
    for (int i = 0; i < n && same; i++)
        same = s->ids[i] == ids[i] && s->gens[i] == p->res.slots[ids[i]]->gen;
    if (same) return HSD_OK;
    int n_uncond = 0;
    for (int i = 0; i < n; i++) n_uncond += p->res.slots[ids[i]]->cfg;
    int ru = 0, rc = n_uncond;
    memset(s->refs_host, 0, (size_t)padded * sizeof *s->refs_host);
    for (int i = 0; i < n; i++) {
        const struct hsd_res_slot *sl = p->res.slots[ids[i]];
        s->refs_host[i] = (struct hsd_step_slot_ref){
            .x = sl->x, .hist = sl->hist, .plan = sl->plan, .t = sl->t,
            .noise = sl->noise ? sl->noise_buf : NULL, .cond = sl->cond,
            .uncond = sl->cfg ? sl->uncond : NULL, .counter = sl->counter,
            .cond_row = rc++, .uncond_row = sl->cfg ? ru++ : -1, .calls = sl->calls};
        s->ids[i] = ids[i];
        s->gens[i] = sl->gen;
    }
    s->n_refs = 0;  // a failed upload leaves no stale cache
    enum hsd_status st = p->be->ops->upload_f32(
        p->be, s->refs, (const float *)(const void *)s->refs_host, hsd_step_ref_words(padded));
    if (!st) s->n_refs = n, s->padded_refs = padded;
    return st;
}

int hsd_pipeline_resident_ok(const struct hsd_pipeline *p, const struct hsd_unet *u) {
    const struct hsd_backend_ops *o = p->be->ops;
    const struct hsd_unet_config *cfg = hsd_unet_get_config(u);
    // SDXL's added conditioning and LCM U-Nets' guidance embedding have no
    // resident form yet (hsd_unet_forward_dev).
    return o->step_gather && o->step_scatter && !cfg->center_input_sample && !cfg->add_text_time &&
           !hsd_unet_guidance_embedded(u);
}

int hsd_pipeline_resident_request_ok(const struct hsd_pipeline *p, enum hsd_sampler_kind kind,
                                     int n_ctx, const float *lora_scales) {
    // Slots hold 77-token contexts; the plan precomputes Euler a's noise
    // only, not LCM's re-noising; the resident step selects no LoRA.
    if ((n_ctx != 0 && n_ctx != HSD_TEXT_LEN) || kind == HSD_SAMPLER_LCM) return 0;
    for (int i = 0; lora_scales && i < hsd_pipeline_lora_count(p); i++)
        if (lora_scales[i] != 0.0f) return 0;
    return 1;
}

// gather .. scatter over the bucket's `padded` items (unused ones skipped):
// the recorded sequence, the same for every batch of the bucket.
static enum hsd_status ops(struct hsd_pipeline *p, struct hsd_unet *unet, int padded, int h,
                           int w, size_t lat, size_t ctx) {
    struct hsd_backend *be = p->be;
    const struct hsd_backend_ops *o = be->ops;
    struct hsd_res_scratch *s = &p->rstep;
    enum hsd_status st;
    struct hsd_step_gather_params gp = {s->x, s->hist, s->table, s->t, s->ctx, s->refs,
                                        padded, padded, lat, ctx};
    if ((st = o->step_gather(be, &gp))) return st;
    struct hsd_step_input_params ip = {s->in, s->x, s->table, padded, padded, lat};
    if ((st = o->step_input(be, &ip))) return st;
    const void *y = NULL;
    if ((st = hsd_unet_forward_dev(unet, &y, s->in, s->t, s->ctx, padded, h, w, HSD_TEXT_LEN, 0)))
        return st;
    struct hsd_cfg_combine_params cp = {s->eps, y, s->table, padded, padded, lat};
    if ((st = o->cfg_combine(be, &cp))) return st;
    struct hsd_sampler_step_params sp = {s->x, s->hist, s->eps, s->table, padded, lat};
    if ((st = o->sampler_step(be, &sp))) return st;
    struct hsd_step_scatter_params xp = {s->x, s->hist, s->refs, padded, lat};
    return o->step_scatter(be, &xp);
}

enum hsd_status hsd_pipeline_resident_step(struct hsd_pipeline *p, struct hsd_unet *unet,
                                           const int *ids, int n, int h, int w) {
    struct hsd_backend *be = p->be;
    const size_t lat = (size_t)p->latent_c * h * w, ctx = (size_t)HSD_TEXT_LEN * p->ctx_dim;
    if (n < 1) return hsd_fail(HSD_ERR_INVALID_ARG, "resident step: no items");
    int n_uncond = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= p->res.n || !p->res.slots[ids[i]]->used)
            return hsd_fail(HSD_ERR_INVALID_ARG, "resident step: item %d names no held slot", i);
        const struct hsd_res_slot *sl = p->res.slots[ids[i]];
        if (sl->lat != lat)
            return hsd_fail(HSD_ERR_INVALID_ARG,
                            "resident step: item %d's slot holds %zu latent elements, the "
                            "batch's latents have %zu",
                            i, sl->lat, lat);
        if (sl->done >= sl->calls)
            return hsd_fail(HSD_ERR_INVALID_ARG, "resident step: item %d ran all %d planned calls",
                            i, sl->calls);
        for (int j = 0; j < i; j++)
            if (ids[j] == ids[i])
                return hsd_fail(HSD_ERR_INVALID_ARG, "resident step: slot %d twice in a batch",
                                ids[i]);
        n_uncond += sl->cfg;
    }
    // Every item has a row: a bucket of `padded` rows has room for its items.
    const int padded = hsd_pipeline_bucket_rows(p, n + n_uncond);
    enum hsd_status st = grow(&p->rstep, be, (size_t)padded, (size_t)padded, lat, ctx);
    if (!st) st = write_refs(p, ids, n, padded);
    // Planned before any recording: the U-Net's arena has its address.
    if (!st) st = hsd_unet_plan(unet, padded, h, w, HSD_TEXT_LEN);
    // No LoRA on resident rows (hsd_pipeline_resident_request_ok): clear
    // what a per-step call selected.
    if (!st) st = hsd_unet_lora_select(unet, NULL, 0);
    if (st) return st;
    int graphed = be->ops->graph_begin != NULL;
    if (graphed) {
        if ((st = hsd_unet_check_abort(unet))) return st;  // a graph cannot stop midway
        struct hsd_graph_key key = {unet, hsd_unet_arena(unet), padded, h, w, HSD_TEXT_LEN,
                                    p->rstep.in, 1};
        if ((st = be->ops->graph_begin(be, &key))) return st;
    }
    st = ops(p, unet, padded, h, w, lat, ctx);
    if (graphed) {
        enum hsd_status s2 = be->ops->graph_end(be, st == HSD_OK);
        if (s2 == HSD_ERR_UNSUPPORTED) {
            hsd_clear_error();  // recording failed, nothing ran: run the ops for real
            st = ops(p, unet, padded, h, w, lat, ctx);
        } else if (!st) {
            st = s2;
        }
    }
    if (!st) st = be->ops->synchronize(be);
    if (st) return st;
    for (int i = 0; i < n; i++) p->res.slots[ids[i]]->done++;
    return HSD_OK;
}
