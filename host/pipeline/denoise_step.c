// hsd_pipeline_denoise_step: one batched U-Net call and, around it, the
// step ops of backend/step_ops.h (scale_model_input, CFG combine, the
// sampler step) on the pipeline's backend, so the CPU backend and a GPU
// run the same code path (issue 10). diffusers StableDiffusionPipeline's
// loop body: latent_model_input = cat([latents] * 2) scaled, noise_pred =
// unet(...), CFG, latents = scheduler.step(...).
//
// Transfers per step (the resident path, resident_step.c, makes none):
// each item's latent and sampler slots (history; Euler a's noise, drawn on
// the host from the request's torch generator) up, the U-Net input rows
// down and its output rows up (hsd_unet_forward takes host floats),
// latents and slots down. On the CPU backend these are copies of host
// memory. Kept for U-Nets the resident path cannot take and as the
// reference test_resident_step compares it with.
//
// Failure leaves every item as it was: the samplers are planned without
// changing state (hsd_sampler_plan_step), results land in host scratch
// first, and only after every op and transfer succeeded are the latents,
// histories and generators written back and the samplers committed, so the
// service can hand a failed batch to another device.
#include <stdlib.h>
#include <string.h>

#include "backend/step_ops.h"
#include "pipeline/pipeline_internal.h"

void hsd_step_scratch_free(struct hsd_step_scratch *s, struct hsd_backend *be) {
    void *dev[] = {s->x, s->slots, s->eps, s->in, s->mo, s->table};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i] && be) be->ops->free(be, dev[i]);
    free(s->rows);
    free(s->rng);
    free(s->x_host);
    free(s->slots_host);
    free(s->x_in);
    free(s->out);
    free(s->t_in);
    free(s->ctx_in);
    free(s->te_in);
    free(s->ids_in);
    memset(s, 0, sizeof *s);
}

// Room for `items` items with `rows` U-Net rows of `lat` elements and
// `ctx` context floats per row (`pooled` more for SDXL's added conditioning:
// the pooled embedding, then the time ids, in te_in / ids_in).
static enum hsd_status grow(struct hsd_step_scratch *s, struct hsd_backend *be, size_t items,
                            size_t rows, size_t lat, size_t ctx, size_t pooled) {
    size_t want[HSD_CAPS] = {items, rows, lat, ctx, pooled};
    if (hsd_caps_fit(want, s->cap)) return HSD_OK;
    items = want[0], rows = want[1], lat = want[2], ctx = want[3], pooled = want[4];
    hsd_step_scratch_free(s, be);
    const size_t f = sizeof(float), act = be->act_size;
    s->x = be->ops->alloc(be, items * lat * f);
    s->slots = be->ops->alloc(be, items * HSD_STEP_SLOTS * lat * f);
    s->eps = be->ops->alloc(be, items * lat * f);
    s->in = be->ops->alloc(be, rows * lat * act);
    s->mo = be->ops->alloc(be, rows * lat * act);
    s->table = be->ops->alloc(be, items * sizeof(struct hsd_step_row));
    s->rows = malloc(items * sizeof *s->rows);
    s->rng = malloc(items * sizeof *s->rng);
    s->x_host = malloc(items * lat * f);
    s->slots_host = malloc(items * HSD_STEP_SLOTS * lat * f);
    s->x_in = malloc(rows * lat * f);
    s->out = malloc(rows * lat * f);
    s->t_in = malloc(rows * f);
    s->ctx_in = malloc(rows * ctx * f);
    s->te_in = malloc(rows * (pooled ? pooled : 1) * f);
    s->ids_in = malloc(rows * HSD_SDXL_N_TIME_IDS * f);
    if (!s->x || !s->slots || !s->eps || !s->in || !s->mo || !s->table || !s->rows || !s->rng ||
        !s->x_host || !s->slots_host || !s->x_in || !s->out || !s->t_in || !s->ctx_in ||
        !s->te_in || !s->ids_in) {
        hsd_step_scratch_free(s, be);
        return hsd_fail(HSD_ERR_NOMEM, "out of memory for a step of %zu items, %zu rows", items,
                        rows);
    }
    memcpy(s->cap, want, sizeof want);
    return HSD_OK;
}

// Plans every item's step into s->rows (U-Net rows: unconditional passes
// first, then conditional, as diffusers' torch.cat([latents] * 2) with
// prompt_embeds = cat([negative, positive])) and fills the U-Net's
// timesteps and contexts (and SDXL's pooled embeddings and time ids).
static enum hsd_status plan(struct hsd_step_scratch *s, struct hsd_denoise_item *items, int n,
                            int n_uncond, size_t ctx, size_t pooled) {
    int ru = 0, rc = n_uncond;
    for (int i = 0; i < n; i++) {
        struct hsd_step_row *row = &s->rows[i];
        enum hsd_status st = hsd_sampler_plan_step(items[i].sampler, row, &s->rng[i]);
        if (st) return st;
        row->cond_row = rc++;
        row->uncond_row = items[i].uncond ? ru++ : -1;
        row->guidance = items[i].guidance_scale;
        const float t = hsd_sampler_timestep(items[i].sampler);
        s->t_in[row->cond_row] = t;
        memcpy(s->ctx_in + (size_t)row->cond_row * ctx, items[i].cond, ctx * sizeof(float));
        if (row->uncond_row >= 0) {
            s->t_in[row->uncond_row] = t;
            memcpy(s->ctx_in + (size_t)row->uncond_row * ctx, items[i].uncond,
                   ctx * sizeof(float));
        }
        if (!pooled) continue;
        // SDXL: after each pass's context, its pooled embedding and time ids.
        const int r2[2] = {row->cond_row, row->uncond_row};
        const float *pe[2] = {items[i].cond + ctx, items[i].uncond ? items[i].uncond + ctx : NULL};
        for (int j = 0; j < 2 && r2[j] >= 0; j++) {
            memcpy(s->te_in + (size_t)r2[j] * pooled, pe[j], pooled * sizeof(float));
            memcpy(s->ids_in + (size_t)r2[j] * HSD_SDXL_N_TIME_IDS, pe[j] + pooled,
                   HSD_SDXL_N_TIME_IDS * sizeof(float));
        }
    }
    return HSD_OK;
}

// Latents and sampler slots of every item into backend memory.
static enum hsd_status upload_state(struct hsd_step_scratch *s, struct hsd_backend *be,
                                    struct hsd_denoise_item *items, int n, size_t lat) {
    const struct hsd_backend_ops *o = be->ops;
    enum hsd_status st = o->upload_f32(be, s->table, (const float *)(const void *)s->rows,
                                       hsd_step_table_words(n));
    for (int i = 0; i < n && !st; i++) {
        st = o->upload_f32(be, (float *)s->x + (size_t)i * lat, items[i].latent, lat);
        size_t k = hsd_sampler_slot_floats(items[i].sampler);
        if (!st && k)
            st = o->upload_f32(be, (float *)s->slots + (size_t)i * HSD_STEP_SLOTS * lat,
                               items[i].sampler->buf, k);
    }
    return st;
}

int hsd_pipeline_bucket_rows(const struct hsd_pipeline *p, int rows) {
    for (int i = 0; i < p->n_buckets; i++)
        if (p->buckets[i] >= rows) return p->buckets[i];
    return rows;
}

// Padding rows rows..padded-1: copies of row 0 (input, timestep, context),
// real values a U-Net handles like any request; their outputs are never
// read. Every op of the U-Net is row-independent (per-sample norms,
// attention within a sample, GEMMs whose rows do not mix), so the real
// rows' results do not depend on what the padding holds.
static void pad_rows(struct hsd_step_scratch *s, int rows, int padded, size_t lat, size_t ctx,
                     size_t pooled) {
    for (int r = rows; r < padded; r++) {
        memcpy(s->x_in + (size_t)r * lat, s->x_in, lat * sizeof(float));
        memcpy(s->ctx_in + (size_t)r * ctx, s->ctx_in, ctx * sizeof(float));
        s->t_in[r] = s->t_in[0];
        if (!pooled) continue;
        memcpy(s->te_in + (size_t)r * pooled, s->te_in, pooled * sizeof(float));
        memcpy(s->ids_in + (size_t)r * HSD_SDXL_N_TIME_IDS, s->ids_in,
               HSD_SDXL_N_TIME_IDS * sizeof(float));
    }
}

enum hsd_status hsd_pipeline_denoise_step(struct hsd_pipeline *p, struct hsd_unet *unet,
                                          struct hsd_denoise_item *items, int n, int h, int w) {
    struct hsd_backend *be = p->be;
    const struct hsd_backend_ops *o = be->ops;
    struct hsd_step_scratch *s = &p->step;
    // Context tokens (77 x prompt chunks): one U-Net call has one length.
    const int n_ctx = n > 0 && items[0].n_ctx ? items[0].n_ctx : HSD_TEXT_LEN;
    const size_t lat = (size_t)p->latent_c * h * w, ctx = (size_t)n_ctx * p->ctx_dim;
    const size_t pooled = (size_t)p->pooled_dim;
    int n_uncond = 0;
    for (int i = 0; i < n; i++) {
        if ((items[i].n_ctx ? items[i].n_ctx : HSD_TEXT_LEN) != n_ctx)
            return hsd_fail(HSD_ERR_INVALID_ARG,
                            "denoise step: item %d has %d context tokens, item 0 has %d; one "
                            "U-Net call takes one context length",
                            i, items[i].n_ctx, n_ctx);
        n_uncond += items[i].uncond != NULL;
        if (items[i].sampler->n_latent != lat)
            return hsd_fail(HSD_ERR_INVALID_ARG,
                            "denoise step: item %d's sampler is for %zu latent elements, the "
                            "batch's latents have %zu",
                            i, items[i].sampler->n_latent, lat);
    }
    const int rows = n + n_uncond, padded = hsd_pipeline_bucket_rows(p, rows);
    enum hsd_status st = grow(s, be, (size_t)n, (size_t)padded, lat, ctx, pooled);
    if (!st) st = plan(s, items, n, n_uncond, ctx, pooled);
    if (!st) st = upload_state(s, be, items, n, lat);
    if (st) return st;
    struct hsd_step_input_params ip = {s->in, s->x, s->table, n, rows, lat};
    if ((st = o->step_input(be, &ip))) return st;
    if ((st = o->download(be, s->x_in, s->in, (size_t)rows * lat))) return st;
    pad_rows(s, rows, padded, lat, ctx, pooled);
    if ((st = hsd_pipeline_lora_rows(p, unet, items, s->rows, n, padded))) return st;
    if ((st = hsd_pipeline_guidance_rows(p, unet, items, s->rows, n, padded))) return st;
    struct hsd_unet_added_cond add = {s->te_in, s->ids_in, (int)pooled, HSD_SDXL_N_TIME_IDS};
    st = hsd_unet_forward_cond(unet, s->out, s->x_in, s->t_in, s->ctx_in, pooled ? &add : NULL,
                               padded, h, w, n_ctx);
    if (st) return st;
    if ((st = o->upload(be, s->mo, s->out, (size_t)rows * lat))) return st;
    struct hsd_cfg_combine_params cp = {s->eps, s->mo, s->table, n, rows, lat};
    if ((st = o->cfg_combine(be, &cp))) return st;
    struct hsd_sampler_step_params sp = {s->x, s->slots, s->eps, s->table, n, lat};
    if ((st = o->sampler_step(be, &sp))) return st;
    if ((st = o->download_f32(be, s->x_host, s->x, (size_t)n * lat))) return st;
    if ((st = o->download_f32(be, s->slots_host, s->slots, (size_t)n * HSD_STEP_SLOTS * lat)))
        return st;
    // Everything ran: write back and move every sampler on.
    for (int i = 0; i < n; i++) {
        struct hsd_sampler *smp = items[i].sampler;
        memcpy(items[i].latent, s->x_host + (size_t)i * lat, lat * sizeof(float));
        size_t k = hsd_sampler_slot_floats(smp);
        if (k) memcpy(smp->buf, s->slots_host + (size_t)i * HSD_STEP_SLOTS * lat, k * sizeof(float));
        hsd_sampler_commit_step(smp, &s->rng[i]);
    }
    return HSD_OK;
}
