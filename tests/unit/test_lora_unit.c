// LoRA pieces without models: the key-name parser on every format
// diffusers' lora_conversion_utils.py reads (and names it must refuse), and
// the CPU backend's lora op against a direct triple loop per sample
// (y += s_b * alpha/r * B (A x)) at SD 1.x widths (320 features, rank 8,
// into the k columns of a packed [q|k|v] output) and odd ones, with rows
// that choose no adapter left
// untouched. Tolerance: the op sums k and r terms in fp32 like the loop
// (in another order): 1e-5 x max|ref|, far below a wrong row or scale.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "models/lora_keys.h"
#include "testutil.h"

static void key_ok(const char *key, enum hsd_lora_part part, enum hsd_lora_role role,
                   const char *layer) {
    struct hsd_lora_key k;
    enum hsd_status s = hsd_lora_key_parse(&k, key);
    CHECKF(s == HSD_OK && k.part == part && k.role == role && !strcmp(k.layer, layer),
           "%s -> %s part %d role %d layer '%s' (want %d %d '%s')", key, s ? hsd_last_error() : "ok",
           (int)k.part, (int)k.role, k.layer, (int)part, (int)role, layer);
    hsd_clear_error();
}

static void key_bad(const char *key) {
    struct hsd_lora_key k;
    enum hsd_status s = hsd_lora_key_parse(&k, key);
    CHECKF(s == HSD_ERR_FORMAT && hsd_last_error()[0], "'%s' must be refused", key);
    hsd_clear_error();
}

static void check_keys(void) {
    const char *q = "down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";
    key_ok("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight",
           HSD_LORA_UNET, HSD_LORA_DOWN, q);
    key_ok("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight",
           HSD_LORA_UNET, HSD_LORA_DOWN, q);
    key_ok("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora.up.weight",
           HSD_LORA_UNET, HSD_LORA_UP, q);
    key_ok("down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight",
           HSD_LORA_UNET, HSD_LORA_DOWN, q);
    key_ok("unet.mid_block.attentions.0.transformer_blocks.0.attn2.processor.to_out_lora.up.weight",
           HSD_LORA_UNET, HSD_LORA_UP,
           "mid_block_attentions_0_transformer_blocks_0_attn2_to_out_0");
    key_ok("lora_unet_up_blocks_1_attentions_0_proj_in.alpha", HSD_LORA_UNET, HSD_LORA_ALPHA,
           "up_blocks_1_attentions_0_proj_in");
    const char *te = "encoder_layers_3_self_attn_q_proj";
    key_ok("lora_te_text_model_encoder_layers_3_self_attn_q_proj.lora_up.weight", HSD_LORA_TE1,
           HSD_LORA_UP, te);
    key_ok("lora_te1_text_model_encoder_layers_3_self_attn_q_proj.alpha", HSD_LORA_TE1,
           HSD_LORA_ALPHA, te);
    key_ok("lora_te2_text_model_encoder_layers_3_self_attn_q_proj.lora_down.weight",
           HSD_LORA_TE2, HSD_LORA_DOWN, te);
    key_ok("text_encoder.text_model.encoder.layers.3.self_attn.q_proj.lora_B.weight",
           HSD_LORA_TE1, HSD_LORA_UP, te);
    key_ok("text_encoder_2.text_model.encoder.layers.3.self_attn.q_proj.lora_A.weight",
           HSD_LORA_TE2, HSD_LORA_DOWN, te);
    key_ok("text_encoder.encoder.layers.3.self_attn.q_proj.lora_A.weight", HSD_LORA_TE1,
           HSD_LORA_DOWN, te);
    key_bad("lora_unet_down_blocks_0_attn1_to_q.dora_scale");
    key_bad("lora_unet_down_blocks_0_attn1_to_q.hada_w1_a");
    key_bad("lora_unet_.lora_down.weight");
    key_bad("unet.down_blocks.0.attn1.to_q.weight");
    key_bad("unet.down blocks.0.to_q.lora_A.weight");
    key_bad("unet.x.processor.to_z_lora.down.weight");
    key_bad(".lora_A.weight");
    key_bad("lora_te2_text_model_.lora_up.weight");  // empty once text_model_ is cut (fuzz)
    key_bad("");
    char longk[400];
    memset(longk, 'a', sizeof longk);
    memcpy(longk, "lora_unet_", 10);
    strcpy(longk + 380, ".alpha");
    key_bad(longk);
}

// out[b] += s_b * mult * (in[b] A^T) B^T, the definition.
static void reference(float *out, const float *in, const float *a, const float *bm,
                      const float *scale, int n, int t, int k, int r, int n_out, int ldo,
                      float mult) {
    float *tmp = malloc((size_t)r * sizeof *tmp);
    for (int b = 0; b < n; b++) {
        float s = scale[b] * mult;
        if (s == 0) continue;
        for (int i = 0; i < t; i++) {
            const float *x = in + ((size_t)b * t + i) * k;
            for (int j = 0; j < r; j++) {
                double acc = 0;
                for (int c = 0; c < k; c++) acc += (double)x[c] * a[(size_t)j * k + c];
                tmp[j] = (float)acc;
            }
            float *y = out + ((size_t)b * t + i) * ldo;
            for (int o = 0; o < n_out; o++) {
                double acc = 0;
                for (int j = 0; j < r; j++) acc += (double)tmp[j] * bm[(size_t)o * r + j];
                y[o] += (float)(s * acc);
            }
        }
    }
    free(tmp);
}

static void check_op(struct hsd_backend *be, int n, int t, int k, int r, int n_out, int ldo,
                     const float *scale) {
    size_t nin = (size_t)n * t * k, nout = (size_t)n * t * ldo;
    float *in = malloc(nin * 4), *a = malloc((size_t)r * k * 4), *bm = malloc((size_t)n_out * r * 4);
    float *out = malloc(nout * 4), *ref = malloc(nout * 4), *tmp = malloc((size_t)n * t * r * 4);
    hsd_test_fill_uniform(in, nin, 1, 1.0f);
    hsd_test_fill_uniform(a, (size_t)r * k, 2, 0.1f);
    hsd_test_fill_uniform(bm, (size_t)n_out * r, 3, 0.5f);
    hsd_test_fill_uniform(out, nout, 4, 1.0f);
    memcpy(ref, out, nout * 4);
    const float mult = 0.5f;  // alpha 4, rank 8
    struct hsd_lora_params p = {out, in, a, bm, tmp, scale, n, t, k, r, n_out, ldo, 1, mult};
    CHECK_OK(be->ops->lora(be, &p));
    reference(ref, in, a, bm, scale, n, t, k, r, n_out, ldo, mult);
    char what[96];
    snprintf(what, sizeof what, "lora n=%d t=%d k=%d r=%d n_out=%d ldo=%d", n, t, k, r, n_out, ldo);
    CHECK_CLOSE(what, out, ref, nout, 1e-5);
    // Rows with scale 0 are untouched, bit for bit (the columns past n_out too).
    int untouched = 1;
    float *orig = malloc(nout * 4);
    hsd_test_fill_uniform(orig, nout, 4, 1.0f);
    for (int b = 0; b < n; b++)
        for (size_t i = 0; i < (size_t)t * ldo; i++) {
            size_t o = (size_t)b * t * ldo + i;
            if ((scale[b] == 0 || (int)(i % ldo) >= n_out) && memcmp(&out[o], &orig[o], 4))
                untouched = 0;
        }
    CHECKF(untouched, "%s: a row or column outside the adapter changed", what);
    free(orig);
    free(in), free(a), free(bm), free(out), free(ref), free(tmp);
}

int main(void) {
    check_keys();
    struct hsd_backend *be = NULL;
    CHECK_OK(hsd_backend_cpu_create(&be, 2));
    if (be) {
        const float s4[4] = {1.0f, 0.0f, -0.7f, 0.0f}, s3[3] = {0.0f, 2.0f, 1.0f};
        check_op(be, 4, 4096 / 16, 320, 8, 320, 960, s4);  // to_k of a packed [q|k|v]
        check_op(be, 3, 77, 59, 3, 37, 37, s3);
        check_op(be, 1, 1, 1, 1, 1, 1, s3 + 1);
    }
    hsd_backend_destroy(be);
    return hsd_test_finish();
}
