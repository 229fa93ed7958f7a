// Whole-model comparisons between two backends (model_cases.h).
#include "model_cases.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "models/lora.h"
#include "models/clip_text.h"
#include "models/unet.h"
#include "models/vae.h"
#include "testutil.h"

int hsd_mc_unet(struct hsd_backend *ref, struct hsd_backend *test, const char *name, double tol,
                int runs, float **outs, size_t *count) {
    char dir[512], io_path[600], what[160];
    snprintf(dir, sizeof dir, "%s/unet/%s", HSD_TEST_DATA, name);
    snprintf(io_path, sizeof io_path, "%s/io.safetensors", dir);
    struct hsd_safetensors *io = NULL;
    struct hsd_unet_source src = {0};
    struct hsd_unet *ur = NULL, *ut = NULL;
    float *x = NULL, *t = NULL, *ctx = NULL, *want = NULL;
    int ok = 0;
    for (int i = 0; i < runs; i++) outs[i] = NULL;
    CHECK_OK(hsd_safetensors_open(&io, io_path));
    CHECK_OK(hsd_unet_source_open(&src, dir, NULL));
    if (!io) goto done;
    CHECK_OK(hsd_unet_create(&ur, &src, ref));
    CHECK_OK(hsd_unet_create(&ut, &src, test));
    if (!ur || !ut) goto done;
    const struct hsd_st_tensor *ts, *tt, *tc;
    x = hsd_test_read_input(io, "sample", &ts);
    t = hsd_test_read_input(io, "timestep", &tt);
    ctx = hsd_test_read_input(io, "encoder_hidden_states", &tc);
    if (!x || !t || !ctx) goto done;
    int n = (int)ts->shape[0], h = (int)ts->shape[2], w = (int)ts->shape[3];
    int L = (int)tc->shape[1];
    *count = (size_t)n * src.cfg.out_channels * h * w;
    want = malloc(*count * sizeof *want);
    CHECK_OK(hsd_unet_forward(ur, want, x, t, ctx, n, h, w, L));
    for (int i = 0; i < runs; i++) {
        outs[i] = malloc(*count * sizeof *outs[i]);
        CHECK_OK(hsd_unet_forward(ut, outs[i], x, t, ctx, n, h, w, L));
    }
    snprintf(what, sizeof what, "unet %s (n=%d %dx%d L=%d) %s vs %s", name, n, h, w, L,
             test->desc, ref->desc);
    CHECK_CLOSE(what, outs[0], want, *count, tol);
    ok = 1;
done:
    free(want);
    free(x);
    free(t);
    free(ctx);
    hsd_unet_free(ur);
    hsd_unet_free(ut);
    hsd_unet_source_close(&src);
    hsd_safetensors_close(io);
    return ok;
}

// A random rank-8 LoRA on U-Net case `name` (model_cases.h).
void hsd_mc_unet_lora(struct hsd_backend *ref, struct hsd_backend *test, const char *name,
                      double tol) {
    char dir[512], io_path[600];
    snprintf(dir, sizeof dir, "%s/unet/%s", HSD_TEST_DATA, name);
    snprintf(io_path, sizeof io_path, "%s/io.safetensors", dir);
    struct hsd_safetensors *io = NULL;
    struct hsd_unet_source src = {0};
    struct hsd_unet *ur = NULL, *ut = NULL;
    struct hsd_lora_file *lf = NULL;
    float *x = NULL, *t = NULL, *ctx = NULL, *want = NULL, *got[3] = {0};
    CHECK_OK(hsd_safetensors_open(&io, io_path));
    CHECK_OK(hsd_unet_source_open(&src, dir, NULL));
    if (io) CHECK_OK(hsd_unet_create(&ur, &src, ref));
    if (ur) CHECK_OK(hsd_unet_create(&ut, &src, test));
    if (ut) CHECK_OK(hsd_unet_lora_random(&lf, ur, 8, 7));
    int a = -1;
    if (lf) CHECK_OK(hsd_unet_lora_attach(ur, lf, "U-Net", &a));
    if (lf) CHECK_OK(hsd_unet_lora_attach(ut, lf, "U-Net", &a));
    const struct hsd_st_tensor *ts, *tt, *tc;
    if (io) {
        x = hsd_test_read_input(io, "sample", &ts);
        t = hsd_test_read_input(io, "timestep", &tt);
        ctx = hsd_test_read_input(io, "encoder_hidden_states", &tc);
    }
    if (!x || !t || !ctx || a != 0 || (int)ts->shape[0] < 2) {
        CHECKF(0, "lora %s: could not set up (needs a batch of 2 or more)", name);
        goto done;
    }
    int n = (int)ts->shape[0], h = (int)ts->shape[2], w = (int)ts->shape[3];
    int L = (int)tc->shape[1];
    size_t count = (size_t)n * src.cfg.out_channels * h * w, row = count / n;
    float scale[64] = {1.0f};  // row 0: the LoRA at scale 1; the others none
    want = malloc(count * sizeof *want);
    for (int i = 0; i < 3; i++) got[i] = malloc(count * sizeof *got[i]);
    CHECK_OK(hsd_unet_forward(ut, got[0], x, t, ctx, n, h, w, L));
    CHECK_OK(hsd_unet_lora_select(ur, scale, n));
    CHECK_OK(hsd_unet_lora_select(ut, scale, n));
    CHECK_OK(hsd_unet_forward(ur, want, x, t, ctx, n, h, w, L));
    CHECK_OK(hsd_unet_forward(ut, got[1], x, t, ctx, n, h, w, L));
    CHECK_OK(hsd_unet_lora_select(ut, NULL, 0));
    CHECK_OK(hsd_unet_forward(ut, got[2], x, t, ctx, n, h, w, L));
    char what[160];
    snprintf(what, sizeof what, "unet %s + rank-8 LoRA on row 0, %s vs %s", name, test->desc,
             ref->desc);
    CHECK_CLOSE(what, got[1], want, count, tol);
    CHECKF(!memcmp(got[0], got[2], count * sizeof(float)),
           "lora %s: the no-LoRA call after a LoRA call differs from the one before", name);
    CHECKF(!memcmp(got[0] + row, got[1] + row, (count - row) * sizeof(float)),
           "lora %s: rows without LoRA changed in the LoRA call", name);
    double moved = 0;
    for (size_t i = 0; i < row; i++) moved = fmax(moved, fabs((double)got[1][i] - got[0][i]));
    CHECKF(moved > 0, "lora %s: the LoRA changed nothing on row 0", name);
    printf("lora %s: row 0 moved by up to %.3g; other rows and the replay bitwise equal\n", name,
           moved);
done:
    for (int i = 0; i < 3; i++) free(got[i]);
    free(want);
    free(x);
    free(t);
    free(ctx);
    hsd_lora_file_free(lf);
    hsd_unet_free(ur);
    hsd_unet_free(ut);
    hsd_unet_source_close(&src);
    hsd_safetensors_close(io);
}

void hsd_mc_text(struct hsd_backend *ref, struct hsd_backend *test, const char *name, double tol) {
    char dir[512], what[160];
    snprintf(dir, sizeof dir, "%s/text/%s", HSD_TEST_DATA, name);
    struct hsd_clip_text *mr = NULL, *mt = NULL;
    CHECK_OK(hsd_clip_text_load(&mr, dir, ref));
    CHECK_OK(hsd_clip_text_load(&mt, dir, test));
    if (mr && mt) {
        const struct hsd_clip_text_config *cfg = hsd_clip_text_get_config(mr);
        int n = 2, L = cfg->max_position_embeddings < 77 ? cfg->max_position_embeddings : 77;
        int32_t *ids = malloc((size_t)n * L * sizeof *ids);
        uint32_t r = 12345;
        for (int i = 0; i < n * L; i++) {
            r = r * 1664525u + 1013904223u;
            ids[i] = (int32_t)((r >> 8) % (uint32_t)cfg->vocab_size);
        }
        size_t count = (size_t)n * L * cfg->hidden_size;
        float *want = malloc(count * sizeof *want), *got = malloc(count * sizeof *got);
        CHECK_OK(hsd_clip_text_forward(mr, want, ids, n, L, 0));
        CHECK_OK(hsd_clip_text_forward(mt, got, ids, n, L, 0));
        snprintf(what, sizeof what, "text %s (n=%d L=%d) %s vs %s", name, n, L, test->desc,
                 ref->desc);
        CHECK_CLOSE(what, got, want, count, tol);
        free(ids);
        free(want);
        free(got);
    }
    hsd_clip_text_free(mr);
    hsd_clip_text_free(mt);
}

void hsd_mc_vae(struct hsd_backend *ref, struct hsd_backend *test, const char *name, int h, int w,
                double tol) {
    char dir[512], what[160];
    snprintf(dir, sizeof dir, "%s/vae/%s", HSD_TEST_DATA, name);
    struct hsd_vae *vr = NULL, *vt = NULL;
    CHECK_OK(hsd_vae_load(&vr, dir, ref));
    CHECK_OK(hsd_vae_load(&vt, dir, test));
    if (vr && vt) {
        int n = 1, c = hsd_vae_latent_channels(vr), s = hsd_vae_scale(vr);
        size_t nl = (size_t)n * c * h * w, ni = (size_t)n * 3 * h * s * w * s;
        float *z = malloc(nl * sizeof *z), *want = malloc(ni * sizeof *want);
        float *got = malloc(ni * sizeof *got);
        hsd_test_fill_uniform(z, nl, 7, 2.0f);
        CHECK_OK(hsd_vae_decode(vr, want, z, n, h, w));
        CHECK_OK(hsd_vae_decode(vt, got, z, n, h, w));
        snprintf(what, sizeof what, "vae %s decode (%dx%d latent) %s", name, h, w, test->desc);
        CHECK_CLOSE(what, got, want, ni, tol);
        float *zr = malloc(nl * sizeof *zr), *zt = malloc(nl * sizeof *zt);
        CHECK_OK(hsd_vae_encode(vr, zr, want, n, h * s, w * s));
        CHECK_OK(hsd_vae_encode(vt, zt, want, n, h * s, w * s));
        snprintf(what, sizeof what, "vae %s encode (%dx%d image) %s", name, h * s, w * s,
                 test->desc);
        CHECK_CLOSE(what, zt, zr, nl, tol);
        free(z);
        free(want);
        free(got);
        free(zr);
        free(zt);
    }
    hsd_vae_free(vr);
    hsd_vae_free(vt);
}
