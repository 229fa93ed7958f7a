// Every registered version of the CUDA lora op (cuda/lora.cu, registry
// table lora) and its production entry point against the CPU backend's
// lora op (host/backend/cpu/cpu_lora.c) in fp32 on the same fp16-rounded
// inputs: the LoRA targets of SD 1.x/2.x and SDXL U-Nets and of the CLIP
// text encoder at their real token counts (t = 4096/1024/256/77) and
// widths (320..1280, the 2048-wide SDXL context, fc1's 3072), ranks 4..128,
// and odd shapes (n = 1, k/r/n_out not multiples of anything, a column
// offset into a wider output as models/lora.c's `col`, interleaved
// adapters (scale_ld 2), runs longer than one launch's 64 samples).
// Scales per sample mix values, negatives and 0: rows whose scale is 0
// and columns outside [col, col + n_out) must come back bit for bit as
// they went in. Skipped (77) without a GPU; the emulated build runs the
// small cases; --reference-only builds the CPU references only.
//
// Inputs: out uniform [-1, 1); in [-1, 1); down [-a, a) with a = sqrt(3/k)
// and up [-b, b) with b = sqrt(3/r), so x A^T and the side product are
// O(1) like out: the LoRA's part is as large as the base's and a kernel
// that dropped or misplaced it fails by far (checked on every case of 1000
// or more outputs: the side product's max change is over 50x the tolerance).
//
// Bounds (test_cuda_common.h's rule): the kernel rounds s x A^T once to
// fp16 (tmp) and the sum once to fp16 (out), accumulating in fp32 as the
// CPU does. The output rounding is <= 2^-11 = 4.9e-4 of |ref| (rms 2.8e-4,
// NMSE ~8e-8); tmp's rounding adds errors of the same relative size on
// the side product, summed over r terms with random signs. tol 2e-3 of
// max|ref| is four output half-ulps at the maximum; NMSE 1e-6 is ~6x the
// sum of both roundings' expected NMSE (ggml's test-backend-ops uses 5e-4).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memory.h"
#include "registry.h"
#include "test_cuda_common.h"
#include "testutil.h"

#define TOL 2e-3
#define NMSE_TOL 1e-6

struct lora_case {
    const char *what;
    int n, tokens, k, r, n_out;
    int col, ldo;      // ldo 0: n_out + col
    int scale_ld;      // 1, or 2: two adapters' scales interleaved (this one first)
    float scale[4];    // per sample, cycled; then * mult
    float mult;        // alpha / r
};

static int ceil_to(int v, int m) { return (v + m - 1) / m * m; }

static void run_case(const struct lora_case *c) {
    char name[96];
    const int ldo = c->ldo ? c->ldo : c->n_out + c->col;
    snprintf(name, sizeof name, "%s_n%d_t%d_k%d_r%d_o%d", c->what, c->n, c->tokens, c->k, c->r,
             c->n_out);
    const size_t rows = (size_t)c->n * c->tokens;
    const size_t nout = rows * ldo, nin = rows * c->k;
    const size_t ndown = (size_t)c->r * c->k, nup = (size_t)c->n_out * c->r;
    // Multiply-adds the kernel's tiles do, padding included (64-wide tiles).
    const double work = (double)rows * ((double)ceil_to(c->r, 64) * ceil_to(c->k, 16) +
                                        (double)ceil_to(c->n_out, 64) * ceil_to(c->r, 16));
    if (tc_skip_in_emulation("lora", name, work)) return;
    float *hout = tc_host_uniform(nout, -1.0f, 1.0f);
    float *hin = tc_host_uniform(nin, -1.0f, 1.0f);
    const float a = sqrtf(3.0f / (float)c->k), b = sqrtf(3.0f / (float)c->r);
    float *hdown = tc_host_uniform(ndown, -a, a);
    float *hup = tc_host_uniform(nup, -b, b);
    float *scale = calloc((size_t)c->n * c->scale_ld, sizeof *scale);
    CHECK(scale != NULL);
    for (int i = 0; i < c->n; i++) {
        scale[(size_t)i * c->scale_ld] = c->scale[i % 4];
        if (c->scale_ld > 1) scale[(size_t)i * c->scale_ld + 1] = 99.0f;  // never read as ours
    }

    struct hsd_backend *cpu = tc_cpu();
    struct hsd_lora_params pc = {.n = c->n, .tokens = c->tokens, .k = c->k, .r = c->r,
                                 .n_out = c->n_out, .ldo = ldo, .scale_ld = c->scale_ld,
                                 .mult = c->mult, .scale = scale};
    float *ref = tc_cpu_buf(hout, nout);
    pc.out = ref + c->col;
    pc.in = tc_cpu_buf(hin, nin);
    pc.down = tc_cpu_buf(hdown, ndown);
    pc.up = tc_cpu_buf(hup, nup);
    pc.tmp = tc_cpu_out(rows * c->r);
    const double t0 = tc_seconds();
    CHECK_OK(cpu->ops->lora(cpu, &pc));
    // The side product must matter at this tolerance, or a kernel that
    // skips it would pass.
    double moved = 0, max_ref = 0;
    for (size_t i = 0; i < nout; i++) {
        moved = fmax(moved, fabs((double)ref[i] - hout[i]));
        max_ref = fmax(max_ref, fabs((double)ref[i]));
    }
    // (Cases of a few elements may draw a small product by chance.)
    CHECKF(rows * (size_t)c->n_out < 1000 || moved > 50 * TOL * max_ref, "lora %s: the side product moves out by only %.3g", name,
           moved);
    if (!tc_gpu()) {
        tc_reference_only("lora", name, ref, nout, tc_seconds() - t0);
        tc_free_all();
        free(scale);
        return;
    }

    struct hsd_lora_params p = pc;
    p.in = tc_dev_f16(hin, nin);
    p.down = tc_dev_f16(hdown, ndown);
    p.up = tc_dev_f16(hup, nup);
    float *got = tc_host_alloc(nout);
    int count = 0;
    const struct hsd_cuda_lora_entry *table = hsd_cuda_lora_table(&count);
    for (int v = 0; v <= count; v++) {
        const char *vname = v < count ? table[v].info.name : "hsd_cuda_lora";
        if (v < count && !hsd_cuda_kernel_runs_on(&table[v].info, tc_arch())) continue;
        void *dout = tc_dev_f16(hout, nout);
        p.out = (char *)dout + (size_t)c->col * 2;
        p.tmp = tc_dev_poisoned_f16(rows * c->r);
        enum hsd_status st = v < count ? table[v].launch(&p, 0) : hsd_cuda_lora(&p, 0);
        CHECKF(st == HSD_OK, "lora %s %s: %s", vname, name, hsd_last_error());
        CHECK_OK(hsd_cuda_sync());
        tc_download_f16(got, dout, nout);
        tc_check("lora", vname, name, got, ref, nout, TOL, NMSE_TOL);
        // Untouched: rows of samples with scale 0, columns outside the
        // target's. Exact (fp16 values went in, the same must come out).
        size_t changed = 0, first = 0;
        for (size_t i = 0; i < nout; i++) {
            const size_t row = i / (size_t)ldo, j = i % (size_t)ldo;
            const int sample = (int)(row / (size_t)c->tokens);
            const int ours = j >= (size_t)c->col && j < (size_t)(c->col + c->n_out) &&
                             scale[(size_t)sample * c->scale_ld] * c->mult != 0.0f;
            if (!ours && memcmp(&got[i], &hout[i], sizeof got[i]) != 0 && changed++ == 0)
                first = i;
        }
        CHECKF(changed == 0, "lora %s %s: %zu elements outside the LoRA's rows/columns changed, "
               "e.g. [%zu] %g -> %g", vname, name, changed, first, hout[first], got[first]);
    }
    tc_free_all();
    free(scale);
}

// Launchers refuse what the CPU backend refuses (cpu_lora.c).
static void check_validation(void) {
    if (!tc_gpu()) return;
    float s = 1.0f;
    void *buf = tc_dev_poisoned_f16(64);
    struct hsd_lora_params ok = {.out = buf, .in = buf, .down = buf, .up = buf, .tmp = buf,
                                 .scale = &s, .n = 1, .tokens = 2, .k = 2, .r = 2, .n_out = 2,
                                 .ldo = 2, .scale_ld = 1, .mult = 1.0f};
    int count = 0;
    const struct hsd_cuda_lora_entry *table = hsd_cuda_lora_table(&count);
    for (int v = 0; v < count; v++) {
        struct hsd_lora_params q = ok;
        q.ldo = 1;
        CHECKF(table[v].launch(&q, 0) == HSD_ERR_INVALID_ARG, "%s: ldo < n_out accepted",
               table[v].info.name);
        q = ok;
        q.scale = NULL;
        CHECKF(table[v].launch(&q, 0) == HSD_ERR_INVALID_ARG, "%s: NULL scale accepted",
               table[v].info.name);
        q = ok;
        q.r = 0;
        CHECKF(table[v].launch(&q, 0) == HSD_ERR_INVALID_ARG, "%s: r = 0 accepted",
               table[v].info.name);
    }
    tc_free_all();
    printf("validation: lora launchers reject bad params: done\n");
}

// SD shapes: batch 2 (one CFG pair, or two requests); scales {0.8, -1.25}
// unless a case tests a zero row. mult = alpha / r as kohya files give it.
static const struct lora_case k_cases[] = {
    // SD 1.x attention to_q/to_k/to_v/to_out.0 of every level (self: t = hw).
    {"attn_l0", 2, 4096, 320, 4, 320, 0, 0, 1, {0.8f, -1.25f}, 1.0f},
    {"attn_l0", 2, 4096, 320, 16, 320, 0, 0, 1, {0.8f, 0.0f}, 0.5f},
    {"attn_l0", 2, 4096, 320, 64, 320, 0, 0, 1, {0.8f, -1.25f}, 1.0f},
    {"attn_l0", 2, 4096, 320, 128, 320, 0, 0, 1, {0.0f, 1.0f}, 0.0625f},
    {"attn_l1", 2, 1024, 640, 32, 640, 0, 0, 1, {0.8f, -1.25f}, 1.0f},
    {"attn_l2", 2, 256, 1280, 128, 1280, 0, 0, 1, {0.8f, -1.25f}, 1.0f},
    {"attn_l3", 2, 64, 1280, 8, 1280, 0, 0, 1, {0.8f, -1.25f}, 1.0f},
    // Feed-forward: ff.net.0.proj (k -> 8k, GEGLU's two halves) and ff.net.2.
    {"ff0_l0", 2, 4096, 320, 16, 2560, 0, 0, 1, {0.8f, -1.25f}, 1.0f},
    {"ff2_l1", 2, 1024, 2560, 8, 640, 0, 0, 1, {0.8f, -1.25f}, 1.0f},
    // Cross-attention to_k/to_v over the text context (77 tokens): SD 1.x
    // (768), SD 2.x (1024), SDXL (2048 -> 640 and 1280).
    {"xattn_sd15", 2, 77, 768, 64, 320, 0, 0, 1, {0.8f, -1.25f}, 1.0f},
    {"xattn_sd2", 2, 77, 1024, 16, 1280, 0, 0, 1, {0.8f, -1.25f}, 1.0f},
    {"xattn_sdxl", 2, 77, 2048, 32, 640, 0, 0, 1, {0.8f, -1.25f}, 1.0f},
    {"xattn_sdxl", 2, 77, 2048, 128, 1280, 0, 0, 1, {0.8f, -1.25f}, 1.0f},
    // SDXL self-attention: 640 wide at 64x64 (t = 4096), 1280 at 32x32.
    {"attn_sdxl_l1", 2, 4096, 640, 32, 640, 0, 0, 1, {0.8f, -1.25f}, 1.0f},
    {"attn_sdxl_l2", 2, 1024, 1280, 64, 1280, 0, 0, 1, {0.8f, -1.25f}, 1.0f},
    // CLIP text encoder: q_proj (768) and fc1 (768 -> 3072), 77 tokens.
    {"te_q", 2, 77, 768, 8, 768, 0, 0, 1, {0.8f, -1.25f}, 1.0f},
    {"te_fc1", 2, 77, 768, 32, 3072, 0, 0, 1, {0.8f, -1.25f}, 1.0f},
    // Odd: n = 1, nothing a multiple of anything.
    {"odd", 1, 7, 59, 3, 37, 0, 0, 1, {1.5f}, 1.0f},
    // A target inside a wider output (col 9 of 40) with adapters interleaved
    // and zero rows between runs.
    {"odd_col", 5, 13, 33, 5, 17, 9, 40, 2, {0.8f, 0.0f, -1.5f, 0.25f}, 0.7f},
    {"odd_tiny", 3, 1, 1, 1, 1, 0, 0, 1, {2.0f, 0.0f, -1.0f}, 1.0f},
    // 70 samples in one run: two launches (64 + 6).
    {"long_run", 70, 3, 8, 2, 8, 0, 0, 1, {0.5f, -0.5f, 1.0f, 2.0f}, 1.0f},
    // Rank 128: two 64-wide tiles of the shrink GEMM (small enough to emulate).
    {"rank128", 2, 77, 320, 128, 320, 0, 0, 1, {0.8f, -1.25f}, 0.125f},
    // Ragged token count, rank not a multiple of 16, every other sample off.
    {"ragged", 4, 101, 320, 12, 320, 0, 0, 1, {1.0f, 0.0f, 0.5f, 0.0f}, 0.5f},
};

int main(int argc, char **argv) {
    if (!tc_init("test_cuda_lora", argc, argv)) return HSD_TEST_SKIP;
    check_validation();
    for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) run_case(&k_cases[i]);
    return tc_finish();
}
