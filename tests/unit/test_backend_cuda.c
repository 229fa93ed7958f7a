// The CUDA backend end to end (label gpu; exits 77 without a GPU): every
// model of the test data on cuda:0 against the same model on the CPU
// backend (the reference truth, DESIGN.md §4), CUDA graph replays against
// the eager run, and, with two or more GPUs, the NCCL weight broadcast.
//
// Tolerance (model outputs): max|err| <= 3e-2 * max|ref|. The GPU keeps
// weights and activations in fp16 (unit roundoff 2^-11 = 4.9e-4) with fp32
// accumulation; each of the ~40-150 ops in these models rounds its output
// once, and random-weight networks do not damp the error, so relative
// errors of 1e-3..1e-2 are what fp16 gives. 3e-2 still fails a wrong
// layout, a missing residual or a wrong head split (errors of order 1).
// The issue's own criterion (error vs fp32 <= 2x torch fp16's error vs
// fp32, on an SD1.5-config U-Net) is measured by bench/gpu_parity.py on the
// device, where torch is available.
// Graph replays use the same kernels on the same buffers: bitwise equal.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/open/backend_open.h"
#include "backend_cuda.h"
#include "device.h"
#include "io/safetensors.h"
#include "models/clip_text.h"
#include "models/unet.h"
#include "models/vae.h"
#include "pipeline/pipeline.h"
#include "testutil.h"

#define TOL 3e-2

static struct hsd_backend *g_cpu, *g_gpu;


static void unet_case(const char *name) {
    char dir[512], io_path[600];
    snprintf(dir, sizeof dir, "%s/unet/%s", HSD_TEST_DATA, name);
    snprintf(io_path, sizeof io_path, "%s/io.safetensors", dir);
    struct hsd_safetensors *io = NULL;
    struct hsd_unet_source src;
    CHECK_OK(hsd_safetensors_open(&io, io_path));
    CHECK_OK(hsd_unet_source_open(&src, dir, NULL));
    struct hsd_unet *uc = NULL, *ug = NULL;
    CHECK_OK(hsd_unet_create(&uc, &src, g_cpu));
    CHECK_OK(hsd_unet_create(&ug, &src, g_gpu));
    const struct hsd_st_tensor *ts, *tt, *tc;
    float *x = hsd_test_read_input(io, "sample", &ts), *t = hsd_test_read_input(io, "timestep", &tt);
    float *ctx = hsd_test_read_input(io, "encoder_hidden_states", &tc);
    int n = (int)ts->shape[0], h = (int)ts->shape[2], w = (int)ts->shape[3];
    int L = (int)tc->shape[1];
    size_t count = (size_t)n * src.cfg.out_channels * h * w;
    float *ref = malloc(count * sizeof *ref), *got[3];
    CHECK_OK(hsd_unet_forward(uc, ref, x, t, ctx, n, h, w, L));
    int rec0 = 0, rec1 = 0;
    long rep0 = 0, rep1 = 0;
    hsd_backend_cuda_graph_stats(g_gpu, &rec0, &rep0);
    // Three calls: eager, graph capture + launch, graph replay.
    for (int i = 0; i < 3; i++) {
        got[i] = malloc(count * sizeof *got[i]);
        CHECK_OK(hsd_unet_forward(ug, got[i], x, t, ctx, n, h, w, L));
    }
    hsd_backend_cuda_graph_stats(g_gpu, &rec1, &rep1);
    char what[128];
    snprintf(what, sizeof what, "unet %s cuda vs cpu", name);
    CHECK_CLOSE(what, got[0], ref, count, TOL);
    CHECKF(!memcmp(got[0], got[1], count * sizeof(float)),
           "unet %s: graph-captured run differs from the eager run", name);
    CHECKF(!memcmp(got[0], got[2], count * sizeof(float)),
           "unet %s: graph replay differs from the eager run", name);
    if (getenv("HSD_CUDA_GRAPHS") && !strcmp(getenv("HSD_CUDA_GRAPHS"), "0")) {
        printf("unet %s: graphs disabled by HSD_CUDA_GRAPHS=0\n", name);
    } else {
        CHECKF(rec1 == rec0 + 1 && rep1 == rep0 + 1,
               "unet %s: expected 1 graph recorded and 1 replay, got %d and %ld", name,
               rec1 - rec0, rep1 - rep0);
    }
    printf("unet %-14s eager == captured == replayed: %s\n", name,
           !memcmp(got[0], got[1], count * sizeof(float)) &&
                   !memcmp(got[0], got[2], count * sizeof(float))
               ? "yes"
               : "NO");
    for (int i = 0; i < 3; i++) free(got[i]);
    free(ref);
    free(x);
    free(t);
    free(ctx);
    hsd_unet_free(uc);
    hsd_unet_free(ug);
    hsd_unet_source_close(&src);
    hsd_safetensors_close(io);
}

static void text_case(const char *name) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/text/%s", HSD_TEST_DATA, name);
    struct hsd_clip_text *mc = NULL, *mg = NULL;
    CHECK_OK(hsd_clip_text_load(&mc, dir, g_cpu));
    CHECK_OK(hsd_clip_text_load(&mg, dir, g_gpu));
    if (!mc || !mg) {
        hsd_clip_text_free(mc);
        hsd_clip_text_free(mg);
        return;
    }
    const struct hsd_clip_text_config *cfg = hsd_clip_text_get_config(mc);
    int n = 2, L = cfg->max_position_embeddings < 77 ? cfg->max_position_embeddings : 77;
    int32_t *ids = malloc((size_t)n * L * sizeof *ids);
    uint32_t r = 12345;
    for (int i = 0; i < n * L; i++) {
        r = r * 1664525u + 1013904223u;
        ids[i] = (int32_t)((r >> 8) % (uint32_t)cfg->vocab_size);
    }
    size_t count = (size_t)n * L * cfg->hidden_size;
    float *ref = malloc(count * sizeof *ref), *got = malloc(count * sizeof *got);
    CHECK_OK(hsd_clip_text_forward(mc, ref, ids, n, L, 0));
    CHECK_OK(hsd_clip_text_forward(mg, got, ids, n, L, 0));
    char what[128];
    snprintf(what, sizeof what, "text %s cuda vs cpu", name);
    CHECK_CLOSE(what, got, ref, count, TOL);
    free(ids);
    free(ref);
    free(got);
    hsd_clip_text_free(mc);
    hsd_clip_text_free(mg);
}

static void vae_case(const char *name) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/vae/%s", HSD_TEST_DATA, name);
    struct hsd_vae *vc = NULL, *vg = NULL;
    CHECK_OK(hsd_vae_load(&vc, dir, g_cpu));
    CHECK_OK(hsd_vae_load(&vg, dir, g_gpu));
    if (!vc || !vg) {
        hsd_vae_free(vc);
        hsd_vae_free(vg);
        return;
    }
    int n = 1, h = 8, w = 16, c = hsd_vae_latent_channels(vc), s = hsd_vae_scale(vc);
    size_t nl = (size_t)n * c * h * w, ni = (size_t)n * 3 * h * s * w * s;
    float *z = malloc(nl * sizeof *z), *ref = malloc(ni * sizeof *ref);
    float *got = malloc(ni * sizeof *got);
    hsd_test_fill_uniform(z, nl, 7, 2.0f);
    CHECK_OK(hsd_vae_decode(vc, ref, z, n, h, w));
    CHECK_OK(hsd_vae_decode(vg, got, z, n, h, w));
    char what[128];
    snprintf(what, sizeof what, "vae %s decode cuda vs cpu", name);
    CHECK_CLOSE(what, got, ref, ni, TOL);
    // Encode back (KL: posterior mean; Tiny: latents).
    float *zc = malloc(nl * sizeof *zc), *zg = malloc(nl * sizeof *zg);
    CHECK_OK(hsd_vae_encode(vc, zc, ref, n, h * s, w * s));
    CHECK_OK(hsd_vae_encode(vg, zg, ref, n, h * s, w * s));
    snprintf(what, sizeof what, "vae %s encode cuda vs cpu", name);
    CHECK_CLOSE(what, zg, zc, nl, TOL);
    free(z);
    free(ref);
    free(got);
    free(zc);
    free(zg);
    hsd_vae_free(vc);
    hsd_vae_free(vg);
}

// A whole hybrid generation on the GPU against the CPU: 8-bit images.
static void pipeline_case(void) {
    char large[512], edge[512];
    snprintf(large, sizeof large, "%s/pipeline/large", HSD_TEST_DATA);
    snprintf(edge, sizeof edge, "%s/pipeline/edge", HSD_TEST_DATA);
    struct hsd_pipeline_config pc = {.model = large, .edge_model = edge};
    struct hsd_pipeline *pcpu = NULL, *pgpu = NULL;
    CHECK_OK(hsd_pipeline_load(&pcpu, &pc));
    pc.backend = g_gpu;
    CHECK_OK(hsd_pipeline_load(&pgpu, &pc));
    if (!pcpu || !pgpu) goto done;
    struct hsd_gen_request r = {.prompt = "a red cube on a table", .guidance_scale = 7.5f,
                                .steps = 8, .split = 3, .sampler = HSD_SAMPLER_DPMPP_2M,
                                .width = 64, .height = 64, .seed = 42, .batch_count = 1};
    size_t px = (size_t)r.width * r.height * 3;
    uint8_t *a = malloc(px), *b = malloc(px);
    CHECK_OK(hsd_pipeline_generate(pcpu, &r, a, NULL, NULL, NULL, NULL, NULL));
    CHECK_OK(hsd_pipeline_generate(pgpu, &r, b, NULL, NULL, NULL, NULL, NULL));
    double sum = 0;
    int worst = 0;
    for (size_t i = 0; i < px; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        sum += d;
        if (d > worst) worst = d;
    }
    // Mean |diff| in 8-bit levels: fp16 noise through 8 sampler steps moves
    // a few levels on average; a broken op moves tens.
    printf("pipeline hybrid k=3/8 cuda vs cpu: mean |diff| %.3f levels, worst %d\n", sum / px,
           worst);
    CHECKF(sum / px <= 4.0, "pipeline: mean |diff| %.3f > 4 levels", sum / px);
    free(a);
    free(b);
done:
    hsd_pipeline_free(pcpu);
    hsd_pipeline_free(pgpu);
}

// Two or more GPUs: the broadcast set gives every GPU the same weights, so
// the same U-Net call gives the same bits on each (identical cards).
static void broadcast_case(int n_gpus) {
    if (n_gpus < 2) {
        printf("one GPU: the NCCL weight broadcast is not checked here\n");
        return;
    }
    char large[512];
    snprintf(large, sizeof large, "%s/pipeline/large", HSD_TEST_DATA);
    struct hsd_pipeline_config pc = {.model = large};
    struct hsd_backend_spec spec;
    CHECK_OK(hsd_backend_spec_parse("cuda:0,1", &spec));
    struct hsd_pipeline_set set;
    CHECK_OK(hsd_pipeline_set_load(&set, &pc, &spec, 1));
    if (set.n != 2) return;
    CHECKF(set.broadcast == hsd_backend_cuda_have_nccl(), "broadcast used: %d", set.broadcast);
    struct hsd_unet *u0 = hsd_pipeline_unet(set.pipes[0], 0), *u1 = hsd_pipeline_unet(set.pipes[1], 0);
    const struct hsd_unet_config *cfg = hsd_unet_get_config(u0);
    int n = 2, h = 8, w = 8, L = 77;
    size_t nx = (size_t)n * cfg->in_channels * h * w, nc = (size_t)n * L * cfg->cross_attention_dim;
    float *x = malloc(nx * sizeof *x), *ctx = malloc(nc * sizeof *ctx), t[2] = {999, 500};
    float *y0 = malloc(nx * sizeof *y0), *y1 = malloc(nx * sizeof *y1);
    hsd_test_fill_uniform(x, nx, 1, 1.0f);
    hsd_test_fill_uniform(ctx, nc, 2, 1.0f);
    CHECK_OK(hsd_unet_forward(u0, y0, x, t, ctx, n, h, w, L));
    CHECK_OK(hsd_unet_forward(u1, y1, x, t, ctx, n, h, w, L));
    CHECKF(!memcmp(y0, y1, nx * sizeof *y0), "GPU 1 (weights by broadcast) differs from GPU 0");
    printf("broadcast: cuda:1 output equals cuda:0's: %s\n",
           !memcmp(y0, y1, nx * sizeof *y0) ? "yes" : "NO");
    free(x);
    free(ctx);
    free(y0);
    free(y1);
    hsd_pipeline_set_free(&set);
}

int main(void) {
    int n_gpus = 0;
    if (hsd_cuda_device_count(&n_gpus) || n_gpus == 0) {
        printf("no GPU: skipped\n");
        return HSD_TEST_SKIP;
    }
    CHECK_OK(hsd_backend_cpu_create(&g_cpu, 0));
    CHECK_OK(hsd_backend_cuda_create(&g_gpu, 0));
    if (!g_cpu || !g_gpu) return hsd_test_finish();
    printf("%s\n", g_gpu->desc);
    static const char *unets[] = {"sd15_narrow", "sd2_style", "bksdm_tiny", "pruned", "nonsquare_b3"};
    for (size_t i = 0; i < sizeof unets / sizeof *unets; i++) unet_case(unets[i]);
    static const char *texts[] = {"quick_gelu", "gelu_eps", "fp16", "prefixed"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) text_case(texts[i]);
    static const char *vaes[] = {"kl", "kl_fp16", "kl_noattn_bf16", "tiny"};
    for (size_t i = 0; i < sizeof vaes / sizeof *vaes; i++) vae_case(vaes[i]);
    pipeline_case();
    broadcast_case(n_gpus);
    printf("device memory at most: %.1f MB\n", hsd_backend_cuda_peak_bytes(g_gpu) / 1048576.0);
    hsd_backend_destroy(g_gpu);
    hsd_backend_destroy(g_cpu);
    return hsd_test_finish();
}
