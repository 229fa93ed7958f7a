// Every registered attention version (cuda/registry.h), and the production
// entry point hsd_cuda_attention(), against the CPU backend in fp32 on the
// same fp16-rounded inputs: SD1.5 shapes at a 64x64 latent, batch 2 (self
// t = 4096/1024/256/64 with d = 40/80/160, cross with 77 keys), a fused qkv
// projection read in place (token stride 3*heads*d), CLIP's causal shape,
// and odd ones (d = 59/72/128/200, ragged t, n = 1, t = 1, t = 16384).
// With --vae: the SD VAE's 512-wide head instead (k_vae_cases below).
// Skipped (77) without a GPU.
//
// Inputs q, k, v uniform in [-2, 2) (scores of std ~1.3 after the 1/sqrt(d)
// scale: peakier than uniform [-1, 1), closer to trained attention), fresh
// per run (seed printed). Outputs poisoned with NaN; with a token stride
// larger than heads*d the gap columns must still be NaN afterwards (the
// kernel wrote nothing outside its heads).
//
// Bounds (test_cuda_common.h for the rule):
// - tol 1e-2 of max|ref|: the output's own fp16 rounding is 2^-11 (4.9e-4)
//   of |out|; flash kernels also round P to fp16 before P V, an error of at
//   most 2^-11 * max|v| (= 1e-3 here) when every rounding leans one way,
//   against outputs of max|ref| ~0.3-2 (attention averages v): at worst
//   ~3e-3 of max|ref|. A wrong key, head or row errs by O(max|ref|).
// - NMSE 1e-5: both roundings are independent per element, giving
//   NMSE ~ (2^-11)^2 / 3 ~ 1e-7 each; 1e-5 leaves 50x margin and still
//   fails a single wrong row among the 65536 of t = 4096, batch 2, 8 heads.
// - with the PyTorch table: max|err| <= 2x torch SDPA's fp16 max|err|.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memory.h"
#include "registry.h"
#include "test_cuda_common.h"
#include "testutil.h"

#define TOL 1e-2
#define NMSE_TOL 1e-5

struct att_case {
    const char *kind;  // self, cross, causal, packed (fused qkv buffer)
    int n, heads, d, t_q, t_kv;
    int extra_ld;      // token stride = heads*d + extra_ld (q, k, v and out)
};

static const struct att_case k_cases[] = {
    // SD1.5 at 64x64 latents, batch 2 (CFG pair), 8 heads.
    {"self", 2, 8, 40, 4096, 4096, 0},
    {"self", 2, 8, 80, 1024, 1024, 0},
    {"self", 2, 8, 160, 256, 256, 0},
    {"self", 2, 8, 160, 64, 64, 0},
    {"cross", 2, 8, 40, 4096, 77, 0},
    {"cross", 2, 8, 80, 1024, 77, 0},
    {"cross", 2, 8, 160, 256, 77, 0},
    {"cross", 2, 8, 160, 64, 77, 0},
    {"packed", 2, 8, 80, 1024, 1024, 0},
    // SDXL-base at 1024x1024 (128x128 latents), batch 2: 64-wide heads, 10
    // at 64x64 (640 wide), 20 at 32x32 (1280 wide); cross-attention over
    // the 77 tokens of the 2048-wide context (to_k/to_v project it to the
    // heads first, so the kernel sees d = 64). The 10-layer stacks repeat
    // the 32x32 shapes. Then small ones on SDXL's head count for the
    // emulation.
    {"self", 2, 10, 64, 4096, 4096, 0},
    {"self", 2, 20, 64, 1024, 1024, 0},
    {"cross", 2, 10, 64, 4096, 77, 0},
    {"cross", 2, 20, 64, 1024, 77, 0},
    {"cross", 1, 10, 64, 64, 77, 0},
    {"self", 1, 10, 64, 100, 100, 0},
    // CLIP text encoder (SD1.5): 12 heads of 64, causal over 77 tokens;
    // SDXL's OpenCLIP bigG: 20 heads of 64.
    {"causal", 2, 12, 64, 77, 77, 0},
    {"causal", 2, 20, 64, 77, 77, 0},
    // Odd: head dims that need padding, ragged lengths, n = 1, strides.
    {"packed", 1, 3, 59, 333, 333, 0},
    {"cross", 1, 2, 72, 100, 130, 8},
    {"causal", 1, 2, 59, 200, 200, 0},
    {"self", 1, 2, 128, 300, 300, 0},
    {"cross", 2, 4, 64, 1000, 77, 16},
    {"self", 1, 1, 40, 1, 1, 0},
    {"cross", 1, 5, 16, 37, 3, 3},
    {"self", 1, 1, 200, 50, 50, 0},  // v2 pads up to 160: unsupported, falls back
    // Small ones on the SD head dims and the 16-byte path (emulated in CI).
    {"self", 1, 2, 40, 150, 150, 0},
    {"cross", 1, 2, 80, 130, 77, 0},
    // A1111 long prompts (--prompt-style a1111): 77 x chunks keys, at SD
    // size on a GPU and small enough for the emulation.
    {"cross", 2, 8, 40, 4096, 231, 0},
    {"cross", 2, 8, 160, 256, 154, 0},
    {"cross", 1, 2, 80, 130, 154, 0},
    {"cross", 1, 2, 40, 150, 231, 0},
    {"cross", 1, 2, 160, 64, 616, 0},
    {"self", 1, 1, 160, 100, 100, 0},
    {"packed", 1, 2, 40, 200, 200, 0},
    {"self", 1, 2, 64, 16384, 16384, 0},
};

// --vae (test_cuda_attention_vae): the SD VAE's mid-block attention, one
// head of width 512 over every latent pixel (diffusers AutoencoderKL
// UNetMidBlock2D: heads = 1, dim_head = 512): t = 4096 at 512x512 and
// t = 16384 at 1024x1024 (GPU only: 8.6e9 and 1.4e11 of emulation work),
// then small ones on the same width that the emulation runs in CI (ragged
// tiles, a padded 384/256-wide head, causal, strides).
static const struct att_case k_vae_cases[] = {
    {"self", 1, 1, 512, 4096, 4096, 0},
    {"self", 1, 1, 512, 16384, 16384, 0},
    {"self", 2, 1, 512, 1024, 1024, 0},
    {"self", 1, 1, 512, 64, 64, 0},
    {"self", 2, 1, 512, 100, 100, 0},
    {"cross", 1, 2, 512, 70, 33, 8},
    {"causal", 1, 1, 512, 45, 45, 0},
    {"self", 1, 1, 384, 80, 80, 0},
    {"packed", 1, 2, 200, 50, 50, 0},
    {"self", 1, 1, 513, 20, 20, 0},  // past v3's 512: the reference takes it
};

static void case_name(char *buf, size_t len, const struct att_case *c) {
    snprintf(buf, len, "%s_n%d_h%d_tq%d_tkv%d_d%d%s", c->kind, c->n, c->heads, c->t_q, c->t_kv,
             c->d, c->extra_ld ? "_ld+" : "");
    if (c->extra_ld) snprintf(buf + strlen(buf), len - strlen(buf), "%d", c->extra_ld);
}

// Runs one case: builds inputs, the CPU reference, then every version.
static void run_case(const struct att_case *c) {
    char name[96];
    case_name(name, sizeof name, c);
    if (tc_skip_in_emulation("attention", name,
                             (double)c->n * c->heads * c->t_q * c->t_kv * c->d)) {
        return;
    }
    const int hd = c->heads * c->d;
    const int packed = strcmp(c->kind, "packed") == 0;
    const int causal = strcmp(c->kind, "causal") == 0;
    const int ld = packed ? 3 * hd : hd + c->extra_ld;
    const int ldo = hd + c->extra_ld;
    const size_t nq = (size_t)c->n * c->t_q * ld, nkv = (size_t)c->n * c->t_kv * ld;
    const size_t nout = (size_t)c->n * c->t_q * ldo;

    // Host inputs (fp16-exact). Packed: one [n, t, 3*hd] buffer, q | k | v.
    float *hq = tc_host_uniform(nq, -2.0f, 2.0f);
    float *hk = packed ? hq : tc_host_uniform(nkv, -2.0f, 2.0f);
    float *hv = packed ? hq : tc_host_uniform(nkv, -2.0f, 2.0f);
    const size_t koff = packed ? (size_t)hd : 0, voff = packed ? 2 * (size_t)hd : 0;

    struct hsd_attention_params p = {0};
    p.n = c->n;
    p.heads = c->heads;
    p.d = c->d;
    p.t_q = c->t_q;
    p.t_kv = c->t_kv;
    p.ldq = p.ldk = p.ldv = ld;
    p.ldo = ldo;
    p.scale = 1.0f / sqrtf((float)c->d);
    p.causal = causal;

    // CPU reference.
    struct hsd_backend *cpu = tc_cpu();
    struct hsd_attention_params pc = p;
    float *cq = tc_cpu_buf(hq, nq);
    float *ck = packed ? cq : tc_cpu_buf(hk, nkv);
    float *cv = packed ? cq : tc_cpu_buf(hv, nkv);
    float *cout = tc_cpu_out(nout);
    pc.q = cq;
    pc.k = ck + koff;
    pc.v = cv + voff;
    pc.out = cout;
    const double t0 = tc_seconds();
    CHECK_OK(cpu->ops->attention(cpu, &pc));
    const double t_ref = tc_seconds() - t0;
    // Compact [n, t_q, hd] reference.
    float *ref = tc_host_alloc((size_t)c->n * c->t_q * hd);
    for (size_t r = 0; r < (size_t)c->n * c->t_q; r++)
        memcpy(ref + r * hd, cout + r * ldo, (size_t)hd * sizeof(float));
    if (!tc_gpu()) {
        tc_reference_only("attention", name, ref, (size_t)c->n * c->t_q * hd, t_ref);
        tc_free_all();
        return;
    }

    // Device inputs.
    void *dq = tc_dev_f16(hq, nq);
    void *dk = packed ? dq : tc_dev_f16(hk, nkv);
    void *dv = packed ? dq : tc_dev_f16(hv, nkv);
    p.q = dq;
    p.k = (const uint16_t *)dk + koff;
    p.v = (const uint16_t *)dv + voff;

    float *got_full = tc_host_alloc(nout);
    float *got = tc_host_alloc((size_t)c->n * c->t_q * hd);
    int count = 0;
    const struct hsd_cuda_attention_entry *table = hsd_cuda_attention_table(&count);
    for (int i = 0; i <= count; i++) {
        // i == count: the production entry point (with its fallback).
        const char *vname = i < count ? table[i].info.name : "hsd_cuda_attention";
        if (i < count && !hsd_cuda_kernel_runs_on(&table[i].info, tc_arch())) continue;
        void *dout = tc_dev_poisoned_f16(nout);
        p.out = dout;
        enum hsd_status st = i < count ? table[i].launch(&p, 0) : hsd_cuda_attention(&p, 0);
        if (st == HSD_ERR_UNSUPPORTED && i < count && !(table[i].info.flags & HSD_CUDA_REFERENCE)) {
            tc_note_unsupported("attention", vname, name);
            continue;
        }
        CHECKF(st == HSD_OK, "attention %s %s: %s", vname, name, hsd_last_error());
        CHECK_OK(hsd_cuda_sync());
        tc_download_f16(got_full, dout, nout);
        size_t gap_written = 0;
        for (size_t r = 0; r < (size_t)c->n * c->t_q; r++) {
            memcpy(got + r * hd, got_full + r * ldo, (size_t)hd * sizeof(float));
            for (int j = hd; j < ldo; j++) gap_written += !isnan(got_full[r * ldo + j]);
        }
        CHECKF(gap_written == 0, "attention %s %s: %zu values written between heads' rows",
               vname, name, gap_written);
        tc_check("attention", vname, name, got, ref, (size_t)c->n * c->t_q * hd, TOL, NMSE_TOL);
    }
    tc_free_all();
}

int main(int argc, char **argv) {
    int vae = 0;
    for (int i = 1; i < argc; i++) vae |= strcmp(argv[i], "--vae") == 0;
    if (!tc_init(vae ? "test_cuda_attention_vae" : "test_cuda_attention", argc, argv))
        return HSD_TEST_SKIP;
    if (vae) {
        for (size_t i = 0; i < sizeof k_vae_cases / sizeof k_vae_cases[0]; i++)
            run_case(&k_vae_cases[i]);
        return tc_finish();
    }
    for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) run_case(&k_cases[i]);
    if (!tc_gpu()) return tc_finish();

    // Invalid params are rejected, not launched.
    struct hsd_attention_params bad = {0};
    bad.n = 1;
    bad.heads = 1;
    bad.d = 40;
    bad.t_q = 4;
    bad.t_kv = 5;
    bad.ldq = bad.ldk = bad.ldv = bad.ldo = 40;
    bad.scale = 1.0f;
    bad.causal = 1;  // needs t_q == t_kv
    bad.q = bad.k = bad.v = bad.out = (void *)16;
    int count = 0;
    const struct hsd_cuda_attention_entry *table = hsd_cuda_attention_table(&count);
    for (int i = 0; i < count; i++) CHECK(table[i].launch(&bad, 0) == HSD_ERR_INVALID_ARG);
    return tc_finish();
}
