// The slot pool of requests resident on the pipeline's backend
// (pipeline.h hsd_pipeline_slot_*, docs/denoise_step.md "Resident state"):
// admission uploads a request's state once, hand-over downloads it once;
// the steps in between (resident_step.c) cross PCIe zero times.
//
// Layout: latents and history are kept NHWC on the backend (the U-Net's
// layout), converted on the host at admission and hand-over. The step ops
// are element-wise per item, so the layout changes no bit of any result.
//
// Every step is planned here, at admission, on a host copy of the sampler
// (hsd_sampler_plan_step / commit_step: diffusers' coefficients in float32,
// Euler a's noise from the request's torch generator), so the device needs
// no host input per step. Hand-over moves the real sampler on by the calls
// the slot ran, with the same plan/commit, and takes the history from the
// device: the same state the per-step path (denoise_step.c) leaves.
#include <stdlib.h>
#include <string.h>

#include "backend/step_ops.h"
#include "core/assert.h"
#include "pipeline/pipeline_internal.h"

// [c, hw] <-> [hw, c]
static void to_nhwc(float *dst, const float *src, int c, size_t hw) {
    for (int k = 0; k < c; k++)
        for (size_t p = 0; p < hw; p++) dst[p * c + k] = src[(size_t)k * hw + p];
}

static void to_nchw(float *dst, const float *src, int c, size_t hw) {
    for (int k = 0; k < c; k++)
        for (size_t p = 0; p < hw; p++) dst[(size_t)k * hw + p] = src[p * c + k];
}

static void slot_free(struct hsd_res_slot *sl, struct hsd_backend *be) {
    void *b[] = {sl->x, sl->hist, sl->plan, sl->t, sl->noise_buf, sl->cond, sl->uncond,
                 sl->counter};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        if (b[i]) be->ops->free(be, b[i]);
    free(sl);
}

void hsd_res_pool_free(struct hsd_res_pool *pool, struct hsd_backend *be) {
    for (int i = 0; i < pool->n; i++) slot_free(pool->slots[i], be);
    free(pool->slots);
    pool->slots = NULL;
    pool->n = pool->cap = 0;
}

static struct hsd_res_slot *slot_get(const struct hsd_pipeline *p, int id) {
    HSD_ASSERT(id >= 0 && id < p->res.n);
    return p->res.slots[id];
}

int hsd_pipeline_slot_done(const struct hsd_pipeline *p, int slot) { return slot_get(p, slot)->done; }
int hsd_pipeline_slot_calls(const struct hsd_pipeline *p, int slot) {
    return slot_get(p, slot)->calls;
}

void hsd_pipeline_slot_release(struct hsd_pipeline *p, int slot) {
    pthread_mutex_lock(&p->res.mu);
    struct hsd_res_slot *sl = slot_get(p, slot);
    HSD_ASSERT(sl->used);
    sl->used = 0;
    pthread_mutex_unlock(&p->res.mu);
}

// (Re)allocates what a request of lat/ctx elements and `calls` calls needs
// on a slot that holds less; a slot that fits keeps its buffers.
static enum hsd_status slot_fit(struct hsd_res_slot *sl, struct hsd_backend *be, size_t lat,
                                size_t ctx, int calls, int noise) {
    const struct hsd_backend_ops *o = be->ops;
    const size_t f = sizeof(float), act = be->act_size;
    if (sl->lat != lat || sl->ctx != ctx || sl->calls_cap < calls) {
        void *b[] = {sl->x, sl->hist, sl->plan, sl->t, sl->noise_buf, sl->cond, sl->uncond,
                     sl->counter};
        for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
            if (b[i]) o->free(be, b[i]);
        *sl = (struct hsd_res_slot){.used = sl->used, .gen = sl->gen};
        sl->x = o->alloc(be, lat * f);
        sl->hist = o->alloc(be, HSD_STEP_SLOTS * lat * f);
        sl->plan = o->alloc(be, (size_t)calls * sizeof(struct hsd_step_row));
        sl->t = o->alloc(be, (size_t)calls * f);
        sl->cond = o->alloc(be, ctx * act);
        sl->uncond = o->alloc(be, ctx * act);
        sl->counter = o->alloc(be, sizeof(int32_t));
        if (!sl->x || !sl->hist || !sl->plan || !sl->t || !sl->cond || !sl->uncond ||
            !sl->counter)
            return HSD_ERR_NOMEM;  // hsd_fail set by alloc; the caller frees the slot
        sl->lat = lat;
        sl->ctx = ctx;
        sl->calls_cap = calls;
    }
    if (noise && sl->noise_cap < calls) {
        if (sl->noise_buf) o->free(be, sl->noise_buf);
        sl->noise_cap = 0;
        if (!(sl->noise_buf = o->alloc(be, (size_t)calls * lat * f))) return HSD_ERR_NOMEM;
        sl->noise_cap = calls;
    }
    return HSD_OK;
}

// A free slot that fits, else one that can be refitted, else a new one.
// Marked used under the lock.
static enum hsd_status slot_take(struct hsd_pipeline *p, int *id, size_t lat, size_t ctx,
                                 int calls, int noise) {
    struct hsd_res_pool *pool = &p->res;
    pthread_mutex_lock(&pool->mu);
    int best = -1;
    for (int i = 0; i < pool->n; i++) {
        const struct hsd_res_slot *sl = pool->slots[i];
        if (sl->used) continue;
        int fits = sl->lat == lat && sl->ctx == ctx && sl->calls_cap >= calls &&
                   (!noise || sl->noise_cap >= calls);
        if (fits || best < 0) best = i;
        if (fits) break;
    }
    enum hsd_status s = HSD_OK;
    if (best < 0) {
        if (pool->n == pool->cap) {
            int cap = pool->cap ? 2 * pool->cap : 16;
            struct hsd_res_slot **ns = realloc(pool->slots, (size_t)cap * sizeof *ns);
            if (!ns) s = hsd_fail(HSD_ERR_NOMEM, "resident slots: out of memory");
            else pool->slots = ns, pool->cap = cap;
        }
        struct hsd_res_slot *sl = s ? NULL : calloc(1, sizeof *sl);
        if (!s && !sl) s = hsd_fail(HSD_ERR_NOMEM, "resident slots: out of memory");
        if (!s) {
            best = pool->n;
            pool->slots[pool->n++] = sl;
        }
    }
    if (!s) pool->slots[best]->used = 1;
    pthread_mutex_unlock(&pool->mu);
    if (s) return s;
    // Only this thread touches a used slot's buffers.
    struct hsd_res_slot *sl = pool->slots[best];
    unsigned gen = sl->gen;
    if ((s = slot_fit(sl, p->be, lat, ctx, calls, noise))) {
        hsd_pipeline_slot_release(p, best);
        return hsd_fail_context(s, "resident slot for %zu latent elements, %d calls: ", lat,
                                calls);
    }
    sl->gen = gen + 1;
    *id = best;
    return HSD_OK;
}

// Plans `calls` steps of a copy of `smp` into rows/t (and noise, NHWC).
static enum hsd_status plan_calls(const struct hsd_sampler *smp, int calls, float guidance,
                                  struct hsd_step_row *rows, float *t, float *noise, int c,
                                  size_t hw) {
    struct hsd_sampler tmp;
    enum hsd_status s = hsd_sampler_copy(&tmp, smp);
    if (s) return s;
    for (int j = 0; j < calls && !s; j++) {
        struct hsd_torch_rng rng;
        t[j] = hsd_sampler_timestep(&tmp);
        if ((s = hsd_sampler_plan_step(&tmp, &rows[j], &rng))) break;
        rows[j].guidance = guidance;
        rows[j].cond_row = 0;  // the gather fills the batch's rows
        rows[j].uncond_row = -1;
        if (noise) to_nhwc(noise + (size_t)j * c * hw, tmp.buf, c, hw);
        hsd_sampler_commit_step(&tmp, &rng);
    }
    hsd_sampler_free(&tmp);
    return s;
}

// What admission uploads (docs/denoise_step.md "Transfers"): latent,
// history (when the sampler keeps any), plan, timesteps, counter, cond
// context, and the uncond context (CFG) and the noise table (Euler a).
static enum hsd_status upload_slot(struct hsd_backend *be, struct hsd_res_slot *sl,
                                   const float *latent, const struct hsd_sampler *smp,
                                   const float *cond, const float *uncond,
                                   const struct hsd_step_row *rows, const float *t,
                                   const float *noise, float *tmp, int c, size_t hw) {
    const struct hsd_backend_ops *o = be->ops;
    const size_t lat = sl->lat;
    to_nhwc(tmp, latent, c, hw);
    enum hsd_status s = o->upload_f32(be, sl->x, tmp, lat);
    size_t k = hsd_sampler_slot_floats(smp);
    if (!s && k) {
        for (size_t b = 0; b * lat < k; b++) to_nhwc(tmp + b * lat, smp->buf + b * lat, c, hw);
        s = o->upload_f32(be, sl->hist, tmp, k);
    }
    if (!s)
        s = o->upload_f32(be, sl->plan, (const float *)(const void *)rows,
                          hsd_step_table_words(sl->calls));
    if (!s) s = o->upload_f32(be, sl->t, t, (size_t)sl->calls);
    const int32_t zero = 0;
    if (!s) s = o->upload_f32(be, sl->counter, (const float *)(const void *)&zero, 1);
    if (!s) s = o->upload(be, sl->cond, cond, sl->ctx);
    if (!s && uncond) s = o->upload(be, sl->uncond, uncond, sl->ctx);
    if (!s && noise) s = o->upload_f32(be, sl->noise_buf, noise, (size_t)sl->calls * lat);
    return s;
}

enum hsd_status hsd_pipeline_slot_acquire(struct hsd_pipeline *p, int *slot, const float *latent,
                                          const struct hsd_sampler *sampler, const float *cond,
                                          const float *uncond, float guidance_scale, int calls,
                                          int h, int w) {
    const int c = p->latent_c;
    const size_t hw = (size_t)h * w, lat = (size_t)c * hw, ctx = (size_t)HSD_TEXT_LEN * p->ctx_dim;
    if (sampler->n_latent != lat)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "resident slot: the sampler is for %zu latent elements, %dx%dx%d has %zu",
                        sampler->n_latent, c, h, w, lat);
    if (calls < 1 || calls > hsd_sampler_n_calls(sampler) - sampler->step)
        return hsd_fail(HSD_ERR_INVALID_ARG, "resident slot: %d calls asked, the sampler has %d left",
                        calls, hsd_sampler_n_calls(sampler) - sampler->step);
    size_t k = hsd_sampler_slot_floats(sampler);
    HSD_ASSERT(k % lat == 0 && k <= HSD_STEP_SLOTS * lat);
    const int noise = sampler->kind == HSD_SAMPLER_EULER_A;
    // Host staging, admission only: rows, timesteps, noise, one latent block.
    struct hsd_step_row *rows = malloc((size_t)calls * sizeof *rows);
    float *t = malloc((size_t)calls * sizeof *t);
    float *nz = noise ? malloc((size_t)calls * lat * sizeof *nz) : NULL;
    float *tmp = malloc(HSD_STEP_SLOTS * lat * sizeof *tmp);
    enum hsd_status s = HSD_OK;
    if (!rows || !t || !tmp || (noise && !nz))
        s = hsd_fail(HSD_ERR_NOMEM, "resident slot: out of memory");
    if (!s) s = plan_calls(sampler, calls, guidance_scale, rows, t, nz, c, hw);
    int id = -1;
    if (!s) s = slot_take(p, &id, lat, ctx, calls, noise);
    if (!s) {
        struct hsd_res_slot *sl = slot_get(p, id);
        sl->calls = calls;
        sl->done = 0;
        sl->cfg = uncond != NULL;
        sl->noise = noise;
        s = upload_slot(p->be, sl, latent, sampler, cond, uncond, rows, t, nz, tmp, c, hw);
        if (s) hsd_pipeline_slot_release(p, id);
        else *slot = id;
    }
    free(rows);
    free(t);
    free(nz);
    free(tmp);
    return s;
}

enum hsd_status hsd_pipeline_slot_handover(struct hsd_pipeline *p, int slot, float *latent,
                                           struct hsd_sampler *sampler) {
    struct hsd_res_slot *sl = slot_get(p, slot);
    struct hsd_backend *be = p->be;
    const int c = p->latent_c;
    const size_t lat = sl->lat, hw = lat / (size_t)c;
    enum hsd_status s = HSD_OK;
    if (sampler->n_latent != lat)
        s = hsd_fail(HSD_ERR_INVALID_ARG, "resident hand-over: sampler for %zu elements, slot %zu",
                     sampler->n_latent, lat);
    // Both downloads first: a failure leaves latent and sampler as they were
    // (the admission state a request restarts from).
    const size_t k = hsd_sampler_slot_floats(sampler);
    float *tmp = s ? NULL : malloc((lat + k) * sizeof *tmp);
    if (!s && !tmp) s = hsd_fail(HSD_ERR_NOMEM, "resident hand-over: out of memory");
    if (!s) s = be->ops->download_f32(be, tmp, sl->x, lat);
    if (!s && k) s = be->ops->download_f32(be, tmp + lat, sl->hist, k);
    // The sampler moves on exactly as the per-step path commits it.
    for (int j = 0; j < sl->done && !s; j++) {
        struct hsd_step_row row;
        struct hsd_torch_rng rng;
        if (!(s = hsd_sampler_plan_step(sampler, &row, &rng))) hsd_sampler_commit_step(sampler, &rng);
    }
    if (!s) {
        to_nchw(latent, tmp, c, hw);
        for (size_t b = 0; b * lat < k; b++)
            to_nchw(sampler->buf + b * lat, tmp + lat + b * lat, c, hw);
    }
    free(tmp);
    hsd_pipeline_slot_release(p, slot);
    return s;
}
