// The CUDA backend end to end (label gpu; exits 77 without a GPU): every
// model of the test data on cuda:0 against the same model on the CPU
// backend (the reference truth, docs/architecture.md §4), CUDA graph replays against
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
#include "model_cases.h"
#include "models/unet.h"
#include "pipeline/pipeline.h"
#include "testutil.h"

#define TOL 3e-2

static struct hsd_backend *g_cpu, *g_gpu;


// Three runs on the GPU: eager, graph capture + launch, graph replay.
static void unet_case(const char *name) {
    int rec0 = 0, rec1 = 0;
    long rep0 = 0, rep1 = 0;
    float *got[3] = {0};
    size_t count = 0;
    hsd_backend_cuda_graph_stats(g_gpu, &rec0, &rep0);
    if (!hsd_mc_unet(g_cpu, g_gpu, name, TOL, 3, got, &count)) goto done;
    hsd_backend_cuda_graph_stats(g_gpu, &rec1, &rep1);
    int same1 = !memcmp(got[0], got[1], count * sizeof(float));
    int same2 = !memcmp(got[0], got[2], count * sizeof(float));
    CHECKF(same1, "unet %s: graph-captured run differs from the eager run", name);
    CHECKF(same2, "unet %s: graph replay differs from the eager run", name);
    if (getenv("HSD_CUDA_GRAPHS") && !strcmp(getenv("HSD_CUDA_GRAPHS"), "0"))
        printf("unet %s: graphs disabled by HSD_CUDA_GRAPHS=0\n", name);
    else
        CHECKF(rec1 == rec0 + 1 && rep1 == rep0 + 1,
               "unet %s: expected 1 graph recorded and 1 replay, got %d and %ld", name,
               rec1 - rec0, rep1 - rep0);
    printf("unet %-14s eager == captured == replayed: %s\n", name, same1 && same2 ? "yes" : "NO");
done:
    for (int i = 0; i < 3; i++) free(got[i]);
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
    hsd_mc_unet_lora(g_cpu, g_gpu, "sd15_narrow", TOL);
    static const char *texts[] = {"quick_gelu", "gelu_eps", "fp16", "prefixed"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) hsd_mc_text(g_cpu, g_gpu, texts[i], TOL);
    static const char *vaes[] = {"kl", "kl_fp16", "kl_noattn_bf16", "tiny"};
    for (size_t i = 0; i < sizeof vaes / sizeof *vaes; i++) hsd_mc_vae(g_cpu, g_gpu, vaes[i], 8, 16, TOL);
    pipeline_case();
    broadcast_case(n_gpus);
    printf("device memory at most: %.1f MB\n", hsd_backend_cuda_peak_bytes(g_gpu) / 1048576.0);
    hsd_backend_destroy(g_gpu);
    hsd_backend_destroy(g_cpu);
    return hsd_test_finish();
}
