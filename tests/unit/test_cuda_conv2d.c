// Every registered conv2d version (cuda/registry.h), and the production
// entry point hsd_cuda_conv2d(), against the CPU backend in fp32 on the
// same fp16-rounded inputs: every distinct convolution of the SD1.5 U-Net
// at a 64x64 latent, batch 2 (conv_in/out, ResNet conv1/conv2 with the
// residual fused into conv2, 1x1 shortcuts and transformer proj_in/out,
// the stride-2 downsamplers, the upsamplers' convs), and odd shapes
// (n = 1, w != h, ci % 8 != 0, odd co, 5x5, stride 2 with odd sizes, the
// VAE's pad (0,1,0,1) downsampler, no bias, residual in place). Skipped (77)
// without a GPU; --reference-only builds the CPU references only.
//
// cuDNN (cuda/conv2d_cudnn.h, when hsd_cuda is built with it: HSD_HAVE_CUDNN):
// the same cases through hsd_cudnn_conv2d(), rows "cudnn_fused" (first call
// for the context's shape) and "cudnn_fused_cached" (a second call, into a
// fresh poisoned output: the cached descriptors; not for the in-place case,
// whose output already holds the result). Same bounds: cuDNN also adds
// fp16-exact products in fp32 and rounds once. Shapes it does not take
// (hsd_cudnn_conv_supports() == 0: ci/co % 8, pad (0,1,0,1); or no
// IMPLICIT_PRECOMP_GEMM within the workspace) are printed as "unsupported by
// cuDNN" and listed at the end; supports() == 0 must come with
// HSD_ERR_UNSUPPORTED. Not in the emulated build (no cuDNN on the CPU).
//
// Inputs uniform in [-1, 1); weights uniform in +-sqrt(3/K) (K = kh*kw*ci,
// so outputs have std ~0.58 whatever the layer); bias in [-0.5, 0.5);
// residual in [-1, 1). Outputs poisoned with NaN (except the in-place
// case, whose output buffer holds the residual).
//
// Bounds (test_cuda_common.h for the rule): both sides add the same
// fp16-exact products in fp32, in different orders: ~sqrt(K) * 6e-8 *
// |terms|, under 1e-5 of the output here. The kernel's single rounding to
// fp16 is at most 2^-11 = 4.9e-4 of |out|. tol = 1e-3 of max|ref| (twice
// that); NMSE 1e-6 (rounding alone gives ~1e-7). A wrong tap, channel,
// stride or padding errs by O(max|ref|).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv2d.cuh"
#include "conv2d_cudnn.h"
#include "memory.h"
#include "registry.h"
#include "test_cuda_common.h"
#include "testutil.h"

#define TOL 1e-3
#define NMSE_TOL 1e-6

enum { RES_NONE, RES_SEPARATE, RES_INPLACE };

#ifdef HSD_HAVE_CUDNN
// The cuDNN context of the run (NULL in --reference-only mode), with the
// backend's workspace size (cuda/backend_cuda.c).
static struct hsd_cudnn_conv *g_cudnn;
static const size_t k_cudnn_workspace = (size_t)64 << 20;
static char g_cudnn_unsupported[4096];  // the case names cuDNN did not take
static int g_cudnn_n_unsupported;
#endif

struct conv_case {
    const char *what;
    int n, h, w, ci, co, k, stride, pad, pad_br;  // pad_br: pad_bottom = pad_right
    int bias, residual;
};

static const struct conv_case k_cases[] = {
    // SD1.5 U-Net at 64x64 latents, batch 2.
    {"conv_in", 2, 64, 64, 4, 320, 3, 1, 1, 0, 1, RES_NONE},
    {"res_conv1_64", 2, 64, 64, 320, 320, 3, 1, 1, 0, 1, RES_NONE},
    {"res_conv2_64", 2, 64, 64, 320, 320, 3, 1, 1, 0, 1, RES_SEPARATE},
    {"down_64", 2, 64, 64, 320, 320, 3, 2, 1, 0, 1, RES_NONE},
    {"res_conv1_32a", 2, 32, 32, 320, 640, 3, 1, 1, 0, 1, RES_NONE},
    {"res_conv2_32", 2, 32, 32, 640, 640, 3, 1, 1, 0, 1, RES_SEPARATE},
    {"shortcut_32a", 2, 32, 32, 320, 640, 1, 1, 0, 0, 1, RES_NONE},
    {"down_32", 2, 32, 32, 640, 640, 3, 2, 1, 0, 1, RES_NONE},
    {"res_conv1_16a", 2, 16, 16, 640, 1280, 3, 1, 1, 0, 1, RES_NONE},
    {"res_conv2_16", 2, 16, 16, 1280, 1280, 3, 1, 1, 0, 1, RES_SEPARATE},
    {"shortcut_16a", 2, 16, 16, 640, 1280, 1, 1, 0, 0, 1, RES_NONE},
    {"down_16", 2, 16, 16, 1280, 1280, 3, 2, 1, 0, 1, RES_NONE},
    {"res_conv2_8", 2, 8, 8, 1280, 1280, 3, 1, 1, 0, 1, RES_SEPARATE},
    {"up0_conv1_8", 2, 8, 8, 2560, 1280, 3, 1, 1, 0, 1, RES_NONE},
    {"up0_shortcut_8", 2, 8, 8, 2560, 1280, 1, 1, 0, 0, 1, RES_NONE},
    {"up1_conv1_16a", 2, 16, 16, 2560, 1280, 3, 1, 1, 0, 1, RES_NONE},
    {"up1_conv1_16b", 2, 16, 16, 1920, 1280, 3, 1, 1, 0, 1, RES_NONE},
    {"up1_shortcut_16a", 2, 16, 16, 2560, 1280, 1, 1, 0, 0, 1, RES_NONE},
    {"up1_shortcut_16b", 2, 16, 16, 1920, 1280, 1, 1, 0, 0, 1, RES_NONE},
    {"upsampler_32", 2, 32, 32, 1280, 1280, 3, 1, 1, 0, 1, RES_NONE},
    {"up2_conv1_32a", 2, 32, 32, 1920, 640, 3, 1, 1, 0, 1, RES_NONE},
    {"up2_conv1_32b", 2, 32, 32, 1280, 640, 3, 1, 1, 0, 1, RES_NONE},
    {"up2_conv1_32c", 2, 32, 32, 960, 640, 3, 1, 1, 0, 1, RES_NONE},
    {"up2_shortcut_32a", 2, 32, 32, 1920, 640, 1, 1, 0, 0, 1, RES_NONE},
    {"up2_shortcut_32b", 2, 32, 32, 1280, 640, 1, 1, 0, 0, 1, RES_NONE},
    {"up2_shortcut_32c", 2, 32, 32, 960, 640, 1, 1, 0, 0, 1, RES_NONE},
    {"upsampler_64", 2, 64, 64, 640, 640, 3, 1, 1, 0, 1, RES_NONE},
    {"up3_conv1_64a", 2, 64, 64, 960, 320, 3, 1, 1, 0, 1, RES_NONE},
    {"up3_conv1_64b", 2, 64, 64, 640, 320, 3, 1, 1, 0, 1, RES_NONE},
    {"up3_shortcut_64a", 2, 64, 64, 960, 320, 1, 1, 0, 0, 1, RES_NONE},
    {"up3_shortcut_64b", 2, 64, 64, 640, 320, 1, 1, 0, 0, 1, RES_NONE},
    {"proj_64", 2, 64, 64, 320, 320, 1, 1, 0, 0, 1, RES_SEPARATE},
    {"proj_32", 2, 32, 32, 640, 640, 1, 1, 0, 0, 1, RES_NONE},
    {"proj_16", 2, 16, 16, 1280, 1280, 1, 1, 0, 0, 1, RES_NONE},
    {"proj_8", 2, 8, 8, 1280, 1280, 1, 1, 0, 0, 1, RES_NONE},
    {"conv_out", 2, 64, 64, 320, 4, 3, 1, 1, 0, 1, RES_NONE},
    // SDXL-base at 128x128 latents, batch 2: the convolutions SD1.5's list
    // lacks (a 128x128 level of 320, 640 at 64x64, no 8x8 level; up
    // blocks concatenate 1280+640 / 640+320 skips at 64 and 128).
    {"sdxl_conv_in", 2, 128, 128, 4, 320, 3, 1, 1, 0, 1, RES_NONE},
    {"sdxl_res_conv2_128", 2, 128, 128, 320, 320, 3, 1, 1, 0, 1, RES_SEPARATE},
    {"sdxl_down_128", 2, 128, 128, 320, 320, 3, 2, 1, 0, 1, RES_NONE},
    {"sdxl_res_conv1_64a", 2, 64, 64, 320, 640, 3, 1, 1, 0, 1, RES_NONE},
    {"sdxl_res_conv2_64", 2, 64, 64, 640, 640, 3, 1, 1, 0, 1, RES_SEPARATE},
    {"sdxl_up1_conv1_64a", 2, 64, 64, 1920, 640, 3, 1, 1, 0, 1, RES_NONE},
    {"sdxl_upsampler_64", 2, 64, 64, 1280, 1280, 3, 1, 1, 0, 1, RES_NONE},
    {"sdxl_upsampler_128", 2, 128, 128, 640, 640, 3, 1, 1, 0, 1, RES_NONE},
    {"sdxl_up2_conv1_128a", 2, 128, 128, 960, 320, 3, 1, 1, 0, 1, RES_NONE},
    {"sdxl_up2_shortcut_128a", 2, 128, 128, 960, 320, 1, 1, 0, 0, 1, RES_NONE},
    {"sdxl_conv_out", 2, 128, 128, 320, 4, 3, 1, 1, 0, 1, RES_NONE},
    // Odd shapes.
    {"odd_ci20", 1, 13, 21, 20, 36, 3, 1, 1, 0, 1, RES_SEPARATE},
    {"odd_s2", 1, 13, 21, 16, 24, 3, 2, 1, 0, 1, RES_NONE},
    {"vae_down", 1, 16, 12, 8, 8, 3, 2, 0, 1, 1, RES_NONE},
    {"nobias_1x1", 2, 5, 7, 24, 40, 1, 1, 0, 0, 0, RES_NONE},
    {"co3", 1, 9, 9, 32, 3, 3, 1, 1, 0, 1, RES_NONE},
    {"k5", 1, 10, 10, 8, 16, 5, 1, 2, 0, 1, RES_NONE},
    {"ci8_tail", 1, 6, 5, 8, 72, 3, 1, 1, 0, 0, RES_SEPARATE},
    {"inplace", 1, 8, 8, 64, 64, 3, 1, 1, 0, 1, RES_INPLACE},
    // Small ones on the 16-byte path: several k tiles, m blocks, n blocks
    // (emulated in CI).
    {"small_3x3", 1, 9, 11, 32, 80, 3, 1, 1, 0, 1, RES_SEPARATE},
    {"small_3x3_s2", 2, 12, 10, 64, 72, 3, 2, 1, 0, 1, RES_NONE},
    {"m_blocks", 2, 16, 16, 16, 64, 3, 1, 1, 0, 1, RES_INPLACE},
    {"small_1x1", 1, 10, 13, 40, 24, 1, 1, 0, 0, 1, RES_SEPARATE},
};

static void run_case(const struct conv_case *c) {
    char name[96];
    snprintf(name, sizeof name, "%s_n%d_%dx%d_%d-%d_k%ds%d", c->what, c->n, c->h, c->w, c->ci,
             c->co, c->k, c->stride);
    struct hsd_conv2d_params p = {0};
    p.n = c->n;
    p.h = c->h;
    p.w = c->w;
    p.ci = c->ci;
    p.co = c->co;
    p.kh = p.kw = c->k;
    p.stride = c->stride;
    p.pad = c->pad;
    p.pad_bottom = p.pad_right = c->pad_br;
    int ho, wo;
    hsd_conv2d_out_size(&p, &ho, &wo);
    const size_t K = (size_t)c->k * c->k * c->ci;
    if (tc_skip_in_emulation("conv2d", name, (double)c->n * ho * wo * c->co * (double)K)) return;
    const size_t nin = (size_t)c->n * c->h * c->w * c->ci, nw = (size_t)c->co * K;
    const size_t nout = (size_t)c->n * ho * wo * c->co;
    const float ws = sqrtf(3.0f / (float)K);
    float *hin = tc_host_uniform(nin, -1.0f, 1.0f);
    float *hw = tc_host_uniform(nw, -ws, ws);
    float *hb = c->bias ? tc_host_uniform((size_t)c->co, -0.5f, 0.5f) : NULL;
    float *hres = c->residual ? tc_host_uniform(nout, -1.0f, 1.0f) : NULL;

    struct hsd_backend *cpu = tc_cpu();
    struct hsd_conv2d_params pc = p;
    pc.in = tc_cpu_buf(hin, nin);
    pc.weight = tc_cpu_buf(hw, nw);
    pc.bias = hb ? tc_cpu_buf(hb, (size_t)c->co) : NULL;
    float *cout = c->residual == RES_INPLACE ? tc_cpu_buf(hres, nout) : tc_cpu_out(nout);
    pc.out = cout;
    pc.residual = c->residual == RES_INPLACE ? cout : hres ? tc_cpu_buf(hres, nout) : NULL;
    const double t0 = tc_seconds();
    CHECK_OK(cpu->ops->conv2d(cpu, &pc));
    const double t_ref = tc_seconds() - t0;
    if (!tc_gpu()) {
        tc_reference_only("conv2d", name, cout, nout, t_ref);
        tc_free_all();
        return;
    }

    p.in = tc_dev_f16(hin, nin);
    p.weight = tc_dev_f16(hw, nw);
    p.bias = hb ? tc_dev_f16(hb, (size_t)c->co) : NULL;
    void *dres = c->residual == RES_SEPARATE ? tc_dev_f16(hres, nout) : NULL;
    float *got = tc_host_alloc(nout);
    int count = 0;
    const struct hsd_cuda_conv2d_entry *table = hsd_cuda_conv2d_table(&count);
    for (int i = 0; i <= count; i++) {
        const char *vname = i < count ? table[i].info.name : "hsd_cuda_conv2d";
        if (i < count && !hsd_cuda_kernel_runs_on(&table[i].info, tc_arch())) continue;
        void *dout = c->residual == RES_INPLACE ? tc_dev_f16(hres, nout) : tc_dev_poisoned_f16(nout);
        p.out = dout;
        p.residual = c->residual == RES_INPLACE ? dout : dres;
        enum hsd_status st = i < count ? table[i].launch(&p, 0) : hsd_cuda_conv2d(&p, 0);
        if (st == HSD_ERR_UNSUPPORTED && i < count && !(table[i].info.flags & HSD_CUDA_REFERENCE)) {
            tc_note_unsupported("conv2d", vname, name);
            continue;
        }
        CHECKF(st == HSD_OK, "conv2d %s %s: %s", vname, name, hsd_last_error());
        CHECK_OK(hsd_cuda_sync());
        tc_download_f16(got, dout, nout);
        tc_check("conv2d", vname, name, got, cout, nout, TOL, NMSE_TOL);
    }
#ifdef HSD_HAVE_CUDNN
    if (g_cudnn) {
        const int reps = c->residual == RES_INPLACE ? 1 : 2;
        for (int rep = 0; rep < reps; rep++) {
            const char *vname = rep == 0 ? "cudnn_fused" : "cudnn_fused_cached";
            void *dout = c->residual == RES_INPLACE ? tc_dev_f16(hres, nout)
                                                    : tc_dev_poisoned_f16(nout);
            p.out = dout;
            p.residual = c->residual == RES_INPLACE ? dout : dres;
            const int supported = hsd_cudnn_conv_supports(&p);
            enum hsd_status st = hsd_cudnn_conv2d(g_cudnn, &p);
            if (!supported)
                CHECKF(st == HSD_ERR_UNSUPPORTED,
                       "conv2d %s %s: supports() is 0 but conv2d gave %s", vname, name,
                       hsd_status_str(st));
            if (st == HSD_ERR_UNSUPPORTED) {
                printf("%-11s %-32s %-28s unsupported by cuDNN (%s): the backend runs ours here\n",
                       "conv2d", vname, name, hsd_last_error());
                if (rep == 0) {
                    const size_t used = strlen(g_cudnn_unsupported);
                    snprintf(g_cudnn_unsupported + used, sizeof g_cudnn_unsupported - used, "%s%s",
                             used ? ", " : "", c->what);
                    g_cudnn_n_unsupported++;
                }
                break;
            }
            CHECKF(st == HSD_OK, "conv2d %s %s: %s", vname, name, hsd_last_error());
            if (st != HSD_OK) break;
            CHECK_OK(hsd_cuda_sync());
            tc_download_f16(got, dout, nout);
            tc_check("conv2d", vname, name, got, cout, nout, TOL, NMSE_TOL);
        }
    }
#endif
    tc_free_all();
}

int main(int argc, char **argv) {
    if (!tc_init("test_cuda_conv2d", argc, argv)) return HSD_TEST_SKIP;
#ifdef HSD_HAVE_CUDNN
    if (tc_gpu()) {
        // Built with cuDNN and a GPU is here: a context that cannot be made
        // (library/driver mismatch) fails the test rather than skipping the
        // cuDNN rows unseen.
        const enum hsd_status st = hsd_cudnn_conv_create(&g_cudnn, 0, k_cudnn_workspace);
        CHECKF(st == HSD_OK && g_cudnn, "hsd_cudnn_conv_create: %s", hsd_last_error());
        printf("cuDNN: %s (workspace %zu MiB)\n",
               g_cudnn ? "cudnn_fused rows follow each case" : "unavailable",
               k_cudnn_workspace >> 20);
    }
#else
    printf("cuDNN: not in this build (HSD_HAVE_CUDNN unset): no cudnn_fused rows\n");
#endif
    for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) run_case(&k_cases[i]);
#ifdef HSD_HAVE_CUDNN
    if (g_cudnn) {
        printf("cuDNN did not take %d of %zu case(s)%s%s\n", g_cudnn_n_unsupported,
               sizeof k_cases / sizeof k_cases[0], g_cudnn_n_unsupported ? ": " : "",
               g_cudnn_unsupported);
    }
#endif
    if (!tc_gpu()) return tc_finish();

    // Invalid params are rejected, not launched: kernel larger than the
    // padded input.
    struct hsd_conv2d_params bad = {0};
    bad.n = 1;
    bad.h = bad.w = 2;
    bad.ci = bad.co = 8;
    bad.kh = bad.kw = 3;
    bad.stride = 1;
    bad.in = bad.weight = bad.out = (void *)16;
    int count = 0;
    const struct hsd_cuda_conv2d_entry *table = hsd_cuda_conv2d_table(&count);
    for (int i = 0; i < count; i++) CHECK(table[i].launch(&bad, 0) == HSD_ERR_INVALID_ARG);
#ifdef HSD_HAVE_CUDNN
    if (g_cudnn) {
        CHECK(!hsd_cudnn_conv_supports(&bad));
        CHECK(hsd_cudnn_conv2d(g_cudnn, &bad) == HSD_ERR_INVALID_ARG);
        hsd_cudnn_conv_destroy(g_cudnn);
        g_cudnn = NULL;
    }
#endif
    return tc_finish();
}
