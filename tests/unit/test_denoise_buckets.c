// Batch buckets (hsd_pipeline_config.row_buckets): padding a U-Net call up
// to its bucket never changes a real row's result.
// - What the padding rows hold cannot reach a real row: one U-Net call of
//   5 rows with the pipeline's padding (copies of row 0) and with other
//   inputs, timesteps and contexts in rows 2-4: rows 0-1 bit-identical.
// - Padded vs unpadded generations (buckets 1, 5, 8 force padding): one
//   request with CFG (2 rows -> 5) for four DPM-Solver++ steps (history
//   carried); three with CFG (Euler a, DDIM, PNDM: 6 rows -> 8); two of
//   those (4 -> 5). Not bit-identical: the batch size itself changes the
//   GEMM kernels a backend picks (TOL_PAD below says by how much), which is
//   why the service pads to fixed buckets in the first place: one batch
//   size, one set of kernels, one plan and graph per bucket.
//
// Built twice: test_denoise_buckets on the CPU backend (label unit), and
// test_denoise_buckets_emulated (HSD_TEST_EMU) on the emulated CUDA
// backend (tests/unit/emu_backend.h), there with the first generation
// case for two steps only (the emulated U-Net is slow: ~25 s of CPU time).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/pipeline.h"
#include "testutil.h"
#ifdef HSD_TEST_EMU
#include "emu_backend.h"
// fp16 activations: a different batch size makes OpenBLAS (and cuBLASLt on
// a GPU) pick another GEMM kernel, whose fp32 sums round to fp16
// differently on ~0.1% of the activations; random-weight U-Nets do not damp
// that and the sampler amplifies eps by up to sigma/alpha. The bound of
// test_denoise_cuda_emulated (2e-2) covers it; observed 2.1e-3 (4 steps).
#define TOL_PAD 2e-2
#else
// fp32: OpenBLAS picks GEMM kernels by matrix size, so a row's reduction
// order depends on the batch size (test_service's batching bound, 1e-5);
// observed 1.5e-6 over four steps.
#define TOL_PAD 1e-5
#endif

struct req {
    enum hsd_sampler_kind sampler;
    int steps;
    float cfg;
};

static struct hsd_backend *g_be;  // NULL: each pipeline makes its CPU backend

static struct hsd_pipeline *load(const int *buckets, int n_buckets) {
    char large[600];
    snprintf(large, sizeof large, "%s/pipeline/large", HSD_TEST_DATA);
    struct hsd_pipeline_config pc = {.model = large, .threads = 2, .backend = g_be,
                                     .row_buckets = buckets, .n_row_buckets = n_buckets};
    struct hsd_pipeline *p = NULL;
    CHECK_OK(hsd_pipeline_load(&p, &pc));
    return p;
}

// `n` requests batched for `calls` steps; latents [n, lat] out.
static void run(struct hsd_pipeline *p, const struct req *reqs, int n, int calls, const float *emb,
                size_t ctx, float *latents, size_t lat) {
    struct hsd_sampler s[4];
    struct hsd_denoise_item items[4];
    for (int i = 0; i < n; i++) {
        struct hsd_gen_request r = {.prompt = "x", .steps = reqs[i].steps,
                                    .sampler = reqs[i].sampler, .width = 64, .height = 64,
                                    .seed = 7 + (uint64_t)i, .batch_count = 1};
        CHECK_OK(hsd_pipeline_init_image(p, &r, 0, latents + (size_t)i * lat, &s[i]));
        const float *e = emb + (size_t)i * 2 * ctx;  // [uncond, cond]
        items[i] = (struct hsd_denoise_item){latents + (size_t)i * lat, &s[i], e + ctx,
                                             reqs[i].cfg > 1.0f ? e : NULL, reqs[i].cfg, 0, NULL};
    }
    for (int k = 0; k < calls; k++)
        CHECK_OK(hsd_pipeline_denoise_step(p, hsd_pipeline_unet(p, 0), items, n, 8, 8));
    for (int i = 0; i < n; i++) hsd_sampler_free(&s[i]);
}

static void compare(const char *what, struct hsd_pipeline *plain, struct hsd_pipeline *padded,
                    const struct req *reqs, int n, int calls, const float *emb, size_t ctx,
                    size_t lat) {
    float *a = malloc((size_t)n * lat * sizeof *a), *b = malloc((size_t)n * lat * sizeof *b);
    run(plain, reqs, n, calls, emb, ctx, a, lat);
    run(padded, reqs, n, calls, emb, ctx, b, lat);
    CHECK_CLOSE(what, b, a, (size_t)n * lat, TOL_PAD);
    free(a);
    free(b);
}

// What the padding rows hold cannot reach a real row: one U-Net call of 5
// rows, rows 0-1 the same, rows 2-4 copies of row 0 (what the pipeline
// pads with) or other inputs, timesteps and contexts; rows 0-1 of the
// output must be bit-identical (same batch size, so the same kernels).
static void check_no_leak(struct hsd_pipeline *p, const float *emb, size_t ctx, size_t lat) {
    enum { ROWS = 5 };
    float *x = malloc(ROWS * lat * sizeof *x), *c = malloc(ROWS * ctx * sizeof *c);
    float *o1 = malloc(ROWS * lat * sizeof *o1), *o2 = malloc(ROWS * lat * sizeof *o2);
    float t[ROWS] = {801, 801, 801, 801, 801};
    hsd_test_fill_uniform(x, ROWS * lat, 5, 2.0f);
    for (int r = 0; r < ROWS; r++) memcpy(c + r * ctx, emb + (size_t)(r % 2) * ctx, ctx * 4);
    for (int r = 2; r < ROWS; r++) memcpy(x + r * lat, x, lat * sizeof *x);
    struct hsd_unet *u = hsd_pipeline_unet(p, 0);
    CHECK_OK(hsd_unet_forward(u, o1, x, t, c, ROWS, 8, 8, HSD_TEXT_LEN));
    hsd_test_fill_uniform(x + 2 * lat, 3 * lat, 6, 30.0f);
    for (int r = 2; r < ROWS; r++) {
        t[r] = 13.0f * r;
        memcpy(c + r * ctx, emb + 5 * ctx, ctx * 4);
    }
    CHECK_OK(hsd_unet_forward(u, o2, x, t, c, ROWS, 8, 8, HSD_TEXT_LEN));
    size_t diff = 0;
    for (size_t e = 0; e < 2 * lat; e++) diff += memcmp(&o1[e], &o2[e], sizeof *o1) != 0;
    printf("padding content vs real rows: %zu of %zu real outputs differ (want 0)\n", diff,
           2 * lat);
    CHECKF(diff == 0, "the padding rows' content changed %zu real outputs", diff);
    free(x);
    free(c);
    free(o1);
    free(o2);
}

int main(void) {
#ifdef HSD_TEST_EMU
    CHECK_OK(hsd_backend_emu_create(&g_be));
    if (!g_be) return hsd_test_finish();
#endif
    static const int buckets[] = {1, 5, 8};
    struct hsd_pipeline *plain = load(NULL, 0), *padded = load(buckets, 3);
    if (!plain || !padded) return hsd_test_finish();
    const size_t lat = (size_t)hsd_pipeline_latent_channels(plain) * 8 * 8;
    const size_t ctx = (size_t)HSD_TEXT_LEN * hsd_pipeline_text_width(plain);
    float *emb = malloc(3 * 2 * ctx * sizeof *emb);
    const char *texts[6] = {"", "a red fox", "blurry", "a lighthouse", "", "snow"};
    CHECK_OK(hsd_pipeline_encode_text(plain, emb, texts, 6, 0));

    const struct req one[1] = {{HSD_SAMPLER_DPMPP_2M, 4, 7.5f}};
    check_no_leak(padded, emb, ctx, lat);
#ifdef HSD_TEST_EMU
    compare("one request, CFG: 2 rows padded to 5", plain, padded, one, 1, 2, emb, ctx, lat);
#else
    compare("one request, CFG: 2 rows padded to 5", plain, padded, one, 1, 4, emb, ctx, lat);
    const struct req three[3] = {{HSD_SAMPLER_EULER_A, 3, 5.0f},
                                 {HSD_SAMPLER_DDIM, 3, 2.0f},
                                 {HSD_SAMPLER_PNDM, 3, 3.0f}};
    compare("three requests with CFG: 6 rows padded to 8", plain, padded, three, 3, 3, emb, ctx,
            lat);
    compare("two requests with CFG: 4 rows padded to 5", plain, padded, three + 1, 2, 3,
            emb + 2 * ctx, ctx, lat);
#endif

    free(emb);
    hsd_pipeline_free(plain);
    hsd_pipeline_free(padded);
    hsd_backend_destroy(g_be);

    // Bad bucket lists fail the load with a message.
    static const int descending[] = {4, 2}, zero[] = {0, 2};
    struct hsd_pipeline *p = NULL;
    char large[600];
    snprintf(large, sizeof large, "%s/pipeline/large", HSD_TEST_DATA);
    struct hsd_pipeline_config pc = {.model = large, .threads = 1, .row_buckets = descending,
                                     .n_row_buckets = 2};
    CHECK(hsd_pipeline_load(&p, &pc) == HSD_ERR_INVALID_ARG && !p);
    pc.row_buckets = zero;
    CHECK(hsd_pipeline_load(&p, &pc) == HSD_ERR_INVALID_ARG && !p);
    pc.row_buckets = NULL;
    CHECK(hsd_pipeline_load(&p, &pc) == HSD_ERR_INVALID_ARG && !p);
    return hsd_test_finish();
}
