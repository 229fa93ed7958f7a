// The whole models on the CUDA kernels, without a GPU (label unit): every
// model of the test data run on the emulated CUDA backend
// (emu_backend.h: the registry's production kernels compiled as host C++
// over cuda/emulate.cuh, linear as cuBLASLt computes it, fp16 storage)
// against the same model on the CPU backend (the fp32 reference truth), on
// the same inputs. What test_backend_cuda.c checks on a GPU, minus the
// hardware: the composition of the kernels -- layouts, strides, head
// splits, fp16 storage between ops, the op sequence of each model -- on
// every CI run. The per-kernel tests (test_cuda_*_emulated) check each
// kernel alone; this one checks the models built from them.
//
// Tolerance: max|err| <= 3e-2 * max|ref|, the bound of test_backend_cuda.c
// and for the same reason: weights and activations in fp16 (unit roundoff
// 2^-11 = 4.9e-4) with fp32 accumulation; each of the ~40-150 ops of these
// models rounds its output once and random-weight networks do not damp the
// error, so relative errors of 1e-3..1e-2 are what fp16 gives; 3e-2 still
// fails a wrong layout, a missing residual or a wrong head split (errors of
// order 1). The observed relative error is printed per model.
//
// Cases (together they run every op the models use: checked at the end
// from the backend's per-op counts): every U-Net, text and VAE case of
// test_backend_cuda.c. The U-Nets on their oracle inputs (sd15_narrow:
// conv, GEGLU, self/cross-attention, time embedding, concat, upsample;
// sd2_style: linear projections, per-block head counts; bksdm_tiny: no mid
// block; pruned: pruned widths; nonsquare_b3: batch 3, 16x24); the CLIP
// text encoders on random ids (quick_gelu, gelu, causal attention); the KL
// and tiny VAEs on a random latent (decode, then encode of the CPU image).
// The emulated kernels are the slow part, so three VAEs run at a 4x8
// latent instead of 8x16. About 31 s Release, 175 s Debug + ASan/UBSan,
// on 2 cores.
// Run one case: test_models_cuda_emulated <substring of its name>.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "emu_backend.h"
#include "model_cases.h"
#include "testutil.h"

#define TOL 3e-2

static struct hsd_backend *g_cpu, *g_emu;
static const char *g_only;  // argv[1]: run the cases whose name contains it

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int selected(const char *kind, const char *name) {
    char what[128];
    snprintf(what, sizeof what, "%s %s", kind, name);
    return !g_only || strstr(what, g_only);
}

static void unet_case(const char *name) {
    if (!selected("unet", name)) return;
    float *out = NULL;
    size_t count = 0;
    if (hsd_mc_unet(g_cpu, g_emu, name, TOL, 1, &out, &count)) free(out);
}

int main(int argc, char **argv) {
    g_only = argc > 1 ? argv[1] : NULL;
    double t_start = now();
    CHECK_OK(hsd_backend_cpu_create(&g_cpu, 0));
    CHECK_OK(hsd_backend_emu_create(&g_emu));
    if (!g_cpu || !g_emu) return hsd_test_finish();
    printf("%s vs %s: the registry's production kernels (cuda/emulate.cuh), tolerance %.0e * "
           "max|ref|\n", g_emu->desc, g_cpu->desc, TOL);
    static const char *unets[] = {"sd15_narrow", "sd2_style", "bksdm_tiny", "pruned", "nonsquare_b3"};
    for (size_t i = 0; i < sizeof unets / sizeof *unets; i++) unet_case(unets[i]);
    // The lora op (cuda/lora.cu) inside a whole U-Net: a rank-8 LoRA on
    // every attention/feed-forward/proj linear, one row of two choosing it.
    if (selected("unet", "lora")) hsd_mc_unet_lora(g_cpu, g_emu, "sd15_narrow", TOL);
    static const char *texts[] = {"quick_gelu", "gelu_eps", "fp16", "prefixed"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        if (selected("text", texts[i])) hsd_mc_text(g_cpu, g_emu, texts[i], TOL);
    // kl at the GPU test's 8x16 latent (mid-block attention over 128 tokens:
    // two key tiles of the flash kernel); the others at 4x8.
    if (selected("vae", "kl")) hsd_mc_vae(g_cpu, g_emu, "kl", 8, 16, TOL);
    static const char *vaes[] = {"kl_fp16", "kl_noattn_bf16", "tiny"};
    for (size_t i = 0; i < sizeof vaes / sizeof *vaes; i++)
        if (selected("vae", vaes[i])) hsd_mc_vae(g_cpu, g_emu, vaes[i], 4, 8, TOL);

    // Every op of the table the models use ran on the kernels (or, for
    // linear, the cuBLASLt model) at least once. `add` is in the table but
    // no model calls it (residuals are fused into conv2d/linear): it is
    // checked alone by test_cuda_eltwise_emulated. The step ops
    // (step_input, cfg_combine, sampler_step, step_gather, step_scatter)
    // are no model's: they are test_cuda_step_emulated's,
    // test_denoise_cuda_emulated's and test_resident_step_emulated's.
    printf("op calls on the emulated backend (fallbacks = production refused the shape, the "
           "registry ran a fallback or the reference version):\n");
    for (int op = 0; op < HSD_EMU_OP_COUNT; op++) {
        long calls = hsd_backend_emu_calls(g_emu, op), fb = hsd_backend_emu_fallbacks(g_emu, op);
        printf("  %-20s %6ld calls, %ld fallbacks\n", hsd_backend_emu_op_name(op), calls, fb);
        const int model_op = op != HSD_EMU_ADD && op != HSD_EMU_STEP_INPUT &&
                             op != HSD_EMU_CFG_COMBINE && op != HSD_EMU_SAMPLER_STEP &&
                             op != HSD_EMU_STEP_GATHER && op != HSD_EMU_STEP_SCATTER;
        if (!g_only && model_op) CHECKF(calls > 0, "op %s never ran: a case that runs it is missing",
                            hsd_backend_emu_op_name(op));
    }
    printf("total %.1f s\n", now() - t_start);
    hsd_backend_destroy(g_emu);
    hsd_backend_destroy(g_cpu);
    return hsd_test_finish();
}
