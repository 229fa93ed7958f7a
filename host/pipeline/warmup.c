// hsd_pipeline_warmup (pipeline.h): every U-Net batch shape a service will
// run, planned (and on a graph-recording backend run until its CUDA graph is
// recorded) before the first request, so that serving them plans, tunes,
// captures and allocates nothing (docs/denoise_step.md "Warm-up"; the
// counters of core/plan_stats.h show it).
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pipeline/pipeline_internal.h"

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

struct shape {
    int rows, width, height;
    double ms;
};

// Larger first: the arena is then allocated once, at its final size, before
// any graph is recorded on it (a graph is keyed by the arena's address).
static int cmp_shape(const void *a, const void *b) {
    const struct shape *x = a, *y = b;
    long long sx = (long long)x->rows * x->width * x->height;
    long long sy = (long long)y->rows * y->width * y->height;
    return (sx < sy) - (sx > sy);
}

// The U-Net alone on zero inputs, twice (its own graph recorded); SDXL's
// with zero pooled embeddings and time ids, as its requests bring them.
static enum hsd_status warm_unet(struct hsd_pipeline *p, int rows, int h, int w) {
    size_t lat = (size_t)rows * p->latent_c * h * w;
    float *x = calloc(lat, sizeof *x), *out = calloc(lat, sizeof *out);
    float *t = calloc((size_t)rows, sizeof *t);
    float *c = calloc((size_t)rows * HSD_TEXT_LEN * p->ctx_dim, sizeof *c);
    float *te = calloc((size_t)rows * (p->pooled_dim + HSD_SDXL_N_TIME_IDS), sizeof *te);
    struct hsd_unet_added_cond add = {te, te ? te + (size_t)rows * p->pooled_dim : NULL,
                                      p->pooled_dim, HSD_SDXL_N_TIME_IDS};
    enum hsd_status s = HSD_OK;
    if (!x || !out || !t || !c || !te) s = hsd_fail(HSD_ERR_NOMEM, "warm-up: out of memory");
    for (int k = 0; k < 2 && !s; k++)
        s = hsd_unet_forward_cond(p->large, out, x, t, c, p->pooled_dim ? &add : NULL, rows, h,
                                  w, HSD_TEXT_LEN);
    free(te);
    free(x);
    free(out);
    free(t);
    free(c);
    return s;
}

// The whole resident step of a `rows`-row bucket, twice: `rows` requests
// without guidance (zero latents and contexts, DDIM for two calls) fill it;
// their slots go back to the pool for real requests.
static enum hsd_status warm_step(struct hsd_pipeline *p, int rows, int h, int w) {
    size_t lat = (size_t)p->latent_c * h * w;
    float *x = calloc(lat, sizeof *x);
    float *c = calloc((size_t)HSD_TEXT_LEN * p->ctx_dim, sizeof *c);
    int *ids = malloc((size_t)rows * sizeof *ids), n = 0;
    struct hsd_sampler smp = {0};
    enum hsd_status s = HSD_OK;
    if (!x || !c || !ids) s = hsd_fail(HSD_ERR_NOMEM, "warm-up: out of memory");
    if (!s) s = hsd_sampler_init(&smp, HSD_SAMPLER_DDIM, &p->sched, 2, lat, NULL);
    for (; n < rows && !s; n++)
        if ((s = hsd_pipeline_slot_acquire(p, &ids[n], x, &smp, c, NULL, 1.0f, 2, h, w))) break;
    for (int k = 0; k < 2 && !s; k++) s = hsd_pipeline_resident_step(p, p->large, ids, n, h, w);
    for (int i = 0; i < n; i++) hsd_pipeline_slot_release(p, ids[i]);
    hsd_sampler_free(&smp);
    free(x);
    free(c);
    free(ids);
    return s;
}

enum hsd_status hsd_pipeline_warmup_text(struct hsd_pipeline *p, int max_rows, double *ms) {
    double t0 = now_ms();
    if (max_rows < 1) max_rows = 1;
    int32_t *ids = malloc((size_t)max_rows * HSD_TEXT_LEN * sizeof *ids);
    float *out = malloc((size_t)max_rows * HSD_TEXT_LEN * p->ctx_dim * sizeof *out);
    enum hsd_status s = HSD_OK;
    if (!ids || !out) s = hsd_fail(HSD_ERR_NOMEM, "text warm-up: out of memory");
    for (int i = 0; !s && i < max_rows * HSD_TEXT_LEN; i++) ids[i] = hsd_pipeline_pad_id(p);
    // Largest first: the arena is allocated once, at its final size. Where
    // GEMMs are planned per shape (cuBLASLt: a graph-recording backend)
    // every batch size runs; elsewhere (CPU) the largest alone sizes the
    // arena, and a smaller batch only re-runs the host-side planning pass.
    const int every = hsd_pipeline_backend(p)->ops->graph_begin != NULL;
    // SDXL admits each request with its own encoder calls of one prompt
    // (the batcher's admit_sdxl): that is the one batch to warm.
    const char *empty = "";
    float *pooled = p->text2 ? malloc((size_t)p->pooled_dim * sizeof *pooled) : NULL;
    if (!s && p->text2)
        s = pooled ? hsd_pipeline_encode_text_sdxl(p, out, pooled, &empty, 1, 0)
                   : hsd_fail(HSD_ERR_NOMEM, "text warm-up: out of memory");
    for (int n = max_rows; !p->text2 && n >= (every ? 1 : max_rows) && !s; n--)
        s = hsd_pipeline_encode_ids(p, out, ids, n, 0);
    free(pooled);
    free(ids);
    free(out);
    if (ms) *ms = now_ms() - t0;
    return s ? hsd_fail_context(s, "text warm-up: ") : HSD_OK;
}

enum hsd_status hsd_pipeline_warmup(struct hsd_pipeline *p, int max_rows, const int *sizes,
                                    int n_sizes, hsd_warmup_fn report, void *user) {
    int scale = hsd_pipeline_vae_scale(p), m = p->size_multiple;
    for (int i = 0; i < n_sizes; i++) {
        int w = sizes[2 * i], h = sizes[2 * i + 1];
        if (w < m || h < m || w % m || h % m || w > 4096 || h > 4096)
            return hsd_fail(HSD_ERR_INVALID_ARG,
                            "warm-up size %dx%d: width and height must be multiples of %d in "
                            "[%d, 4096]",
                            w, h, m, m);
    }
    // A CFG request takes 2 rows even where max_rows is 1 (the batcher
    // never splits a pair).
    int top = max_rows < 2 ? 2 : max_rows;
    int rows[HSD_PIPELINE_MAX_ROWS + 1], n_rows = 0;
    for (int r = 1; r <= top && r <= HSD_PIPELINE_MAX_ROWS; r++) {
        int b = hsd_pipeline_bucket_rows(p, r);
        if (!n_rows || rows[n_rows - 1] != b) rows[n_rows++] = b;
    }
    int n = n_rows * n_sizes;
    if (n > HSD_UNET_MAX_PLANS)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "warm-up: %d row counts x %d sizes = %d shapes, more than the %d a U-Net "
                        "keeps planned (and CUDA keeps recorded): use --buckets or fewer sizes",
                        n_rows, n_sizes, n, HSD_UNET_MAX_PLANS);
    struct shape *sh = calloc((size_t)(n ? n : 1), sizeof *sh);
    if (!sh) return hsd_fail(HSD_ERR_NOMEM, "warm-up: out of memory");
    for (int i = 0; i < n; i++)
        sh[i] = (struct shape){rows[i % n_rows], sizes[2 * (i / n_rows)],
                               sizes[2 * (i / n_rows) + 1], 0};
    qsort(sh, (size_t)n, sizeof *sh, cmp_shape);
    enum hsd_status s = HSD_OK;
    // 1. Plans, largest first.
    for (int i = 0; i < n && !s; i++) {
        double t0 = now_ms();
        s = hsd_unet_plan(p->large, sh[i].rows, sh[i].height / scale, sh[i].width / scale,
                          HSD_TEXT_LEN);
        sh[i].ms += now_ms() - t0;
    }
    // 2. On a backend that records graphs: a first (eager) call makes its
    // GEMM plans and conv choices, the second records the graph: of the
    // whole resident step (resident_step.c), what serving replays, or of
    // the U-Net alone where the step cannot be resident. The CPU backend
    // keeps nothing else per shape.
    const struct hsd_backend *be = hsd_pipeline_backend(p);
    if (!s && be && be->ops->graph_begin && n) {
        int res = hsd_pipeline_resident_ok(p, p->large);
        for (int i = 0; i < n && !s; i++) {
            double t0 = now_ms();
            s = res ? warm_step(p, sh[i].rows, sh[i].height / scale, sh[i].width / scale)
                    : warm_unet(p, sh[i].rows, sh[i].height / scale, sh[i].width / scale);
            sh[i].ms += now_ms() - t0;
        }
    }
    for (int i = 0; i < n && !s && report; i++)
        report(user, sh[i].rows, sh[i].width, sh[i].height, sh[i].ms);
    free(sh);
    return s ? hsd_fail_context(s, "warm-up: ") : HSD_OK;
}

int hsd_pipeline_native_size(const struct hsd_pipeline *p) {
    return hsd_unet_get_config(p->large)->sample_size * hsd_pipeline_vae_scale(p);
}
