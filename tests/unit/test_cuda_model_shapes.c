// The real models' op shapes against the CUDA kernels, without a GPU
// (issue 16: the first GPU run must not die on a width no test ran).
//
// 1. Catalogue: every model preset at full size on the shape-recording
//    test double (shape_backend.h: no memory, no compute): the U-Net
//    presets of host/models/unet_presets.c (SD 1.5, SD 2-base, BK-SDM
//    base/small/tiny, SDXL-base, KOALA-1B/700M) at batch 2 and 32 at 64x64 latents and batch 1 at
//    96x96, the SDXL family also at batch 2 at 128x128 (1024x1024 images: the
//    text_time add-embedding, its timestep_embedding of the time ids and
//    concat, the 10-layer transformer stacks, d = 64 at t = 4096/1024);
//    the SD VAE (also SDXL's: same widths) decoding 64x64, 128x128
//    (1024x1024 images: attention t = 16384) and encoding 512x512; TAESD;
//    CLIP ViT-L/14 (SD 1.x, SDXL), OpenCLIP ViT-H/14 (SD 2.x) and OpenCLIP
//    ViT-bigG/14 (SDXL) text encoders on 77 tokens. VAE and text encoders
//    use their published config.json files (below), random weights; the text encoders load from a sparse
//    safetensors file with their real tensor names (zeros, no disk).
// 2. Registry query: each distinct op shape goes through the registry's
//    production entry point hsd_cuda_<op>() in the emulation's dry-run
//    mode (launchers validate, launches check the hardware's limits:
//    threads, grid, the shared-memory opt-in; no block runs). Prints which
//    version each shape would run and every shape production would refuse;
//    the test fails unless that list is empty. (linear is cuBLASLt, not a
//    registry op: listed, not queried.)
// 3. Real widths on tiny sizes: each shape class (the shape without batch,
//    pixels and tokens) runs once on the emulated kernels
//    (emu_backend.h) with its real channel counts, head widths, strides
//    and buffer alignments but a few pixels/tokens, against the CPU
//    backend. Tolerance 1e-2 * max|ref| (test_cuda_*.c's bound for one
//    fp16 output rounding, 2^-11, plus attention's fp16 P: ~3e-3 at worst;
//    a wrong channel, head or tap errs by O(max|ref|)), and no NaN (the
//    emulation NaN-fills every allocation, so a read of unwritten memory
//    shows).
//
// Arguments: --ci runs, in step 3, one class per op (the cheapest to
// emulate) plus every class that ran on a fallback or reference version in
// step 2 (test_cuda_model_shapes_emulated, label unit); without it every
// class (test_cuda_real_widths_emulated, label slow: the 1280-wide convs
// dominate). -v lists every shape of step 2.
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/dtype.h"
#include "emu_backend.h"
#include "memory.h"
#include "models/clip_text.h"
#include "models/unet.h"
#include "models/vae.h"
#include "registry.h"
#include "shape_backend.h"
#include "testutil.h"

#define TOL 1e-2

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// ---- 1. the catalogue -----------------------------------------------------------------

// stabilityai/sd-vae-ft-mse (= runwayml/stable-diffusion-v1-5 vae/), the
// SD 2.x VAE and, but for scaling_factor, SDXL's.
static const char k_sd_vae[] =
    "{\"_class_name\": \"AutoencoderKL\", \"act_fn\": \"silu\", \"block_out_channels\": "
    "[128, 256, 512, 512], \"down_block_types\": [\"DownEncoderBlock2D\", "
    "\"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\"], \"in_channels\": 3, "
    "\"latent_channels\": 4, \"layers_per_block\": 2, \"norm_num_groups\": 32, \"out_channels\": "
    "3, \"sample_size\": 512, \"scaling_factor\": 0.18215, \"up_block_types\": "
    "[\"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}";
// madebyollin/taesd.
static const char k_taesd[] =
    "{\"_class_name\": \"AutoencoderTiny\", \"act_fn\": \"relu\", "
    "\"decoder_block_out_channels\": [64, 64, 64, 64], \"encoder_block_out_channels\": [64, 64, "
    "64, 64], \"in_channels\": 3, \"latent_channels\": 4, \"num_decoder_blocks\": [3, 3, 3, 1], "
    "\"num_encoder_blocks\": [1, 3, 3, 3], \"out_channels\": 3, \"upsample_fn\": \"nearest\", "
    "\"upsampling_scaling_factor\": 2, \"latent_magnitude\": 3, \"latent_shift\": 0.5, "
    "\"scaling_factor\": 1.0}";

struct text_model {
    const char *name;
    int hidden, inter, heads, layers;
    const char *act;
};
// runwayml/stable-diffusion-v1-5 and stabilityai/stable-diffusion-2-base
// text_encoder/config.json, and stabilityai/stable-diffusion-xl-base-1.0
// text_encoder_2/config.json (the keys hsd reads; its text_projection is a
// linear, cuBLASLt, not a registry op). SDXL's text_encoder is SD 1.x's
// CLIP ViT-L.
static const struct text_model k_texts[] = {
    {"clip-vit-l14 (SD 1.x, SDXL)", 768, 3072, 12, 12, "quick_gelu"},
    {"openclip-vit-h14 (SD 2.x)", 1024, 4096, 16, 23, "gelu"},
    {"openclip-vit-bigg14 (SDXL)", 1280, 5120, 20, 32, "gelu"},
};

// Writes DIR/config.json and DIR/model.safetensors: every tensor of the
// CLIPTextModel (transformers names, F16) in a sparse file of zeros.
static int write_text_model(const char *dir, const struct text_model *tm) {
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    fprintf(f,
            "{\"architectures\": [\"CLIPTextModel\"], \"model_type\": \"clip_text_model\", "
            "\"hidden_act\": \"%s\", \"hidden_size\": %d, \"intermediate_size\": %d, "
            "\"layer_norm_eps\": 1e-05, \"max_position_embeddings\": 77, "
            "\"num_attention_heads\": %d, \"num_hidden_layers\": %d, \"vocab_size\": 49408}",
            tm->act, tm->hidden, tm->inter, tm->heads, tm->layers);
    fclose(f);
    const long C = tm->hidden, I = tm->inter;
    size_t cap = 1 << 20, len = 0, off = 0;
    char *h = malloc(cap);
    if (!h) return 0;
#define T2(name, a, b)                                                                       \
    do {                                                                                     \
        len += (size_t)snprintf(h + len, cap - len,                                          \
                                "%s\"%s\":{\"dtype\":\"F16\",\"shape\":[%ld,%ld],"            \
                                "\"data_offsets\":[%zu,%zu]}",                               \
                                len > 1 ? "," : "", name, (long)(a), (long)(b), off,          \
                                off + 2 * (size_t)(a) * (size_t)(b));                        \
        off += 2 * (size_t)(a) * (size_t)(b);                                                \
    } while (0)
#define T1(name, a)                                                                          \
    do {                                                                                     \
        len += (size_t)snprintf(h + len, cap - len,                                          \
                                ",\"%s\":{\"dtype\":\"F16\",\"shape\":[%ld],"                 \
                                "\"data_offsets\":[%zu,%zu]}",                               \
                                name, (long)(a), off, off + 2 * (size_t)(a));                \
        off += 2 * (size_t)(a);                                                              \
    } while (0)
    len = (size_t)snprintf(h, cap, "{");
    T2("text_model.embeddings.token_embedding.weight", 49408, C);
    T2("text_model.embeddings.position_embedding.weight", 77, C);
    char n[160];
    for (int l = 0; l < tm->layers; l++) {
        static const char *const lin[] = {"self_attn.q_proj", "self_attn.k_proj",
                                          "self_attn.v_proj", "self_attn.out_proj"};
        for (int i = 0; i < 4; i++) {
            snprintf(n, sizeof n, "text_model.encoder.layers.%d.%s.weight", l, lin[i]);
            T2(n, C, C);
            snprintf(n, sizeof n, "text_model.encoder.layers.%d.%s.bias", l, lin[i]);
            T1(n, C);
        }
        static const char *const ln[] = {"layer_norm1", "layer_norm2"};
        for (int i = 0; i < 2; i++) {
            snprintf(n, sizeof n, "text_model.encoder.layers.%d.%s.weight", l, ln[i]);
            T1(n, C);
            snprintf(n, sizeof n, "text_model.encoder.layers.%d.%s.bias", l, ln[i]);
            T1(n, C);
        }
        snprintf(n, sizeof n, "text_model.encoder.layers.%d.mlp.fc1.weight", l);
        T2(n, I, C);
        snprintf(n, sizeof n, "text_model.encoder.layers.%d.mlp.fc1.bias", l);
        T1(n, I);
        snprintf(n, sizeof n, "text_model.encoder.layers.%d.mlp.fc2.weight", l);
        T2(n, C, I);
        snprintf(n, sizeof n, "text_model.encoder.layers.%d.mlp.fc2.bias", l);
        T1(n, C);
    }
    T1("text_model.final_layer_norm.weight", C);
    T1("text_model.final_layer_norm.bias", C);
#undef T1
#undef T2
    len += (size_t)snprintf(h + len, cap - len, "}");
    while (len % 8) h[len++] = ' ';
    int ok = len < cap;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    uint64_t hl = len;
    ok = ok && fd >= 0 && write(fd, &hl, 8) == 8 && write(fd, h, len) == (ssize_t)len &&
         ftruncate(fd, (off_t)(8 + len + off)) == 0;
    if (fd >= 0) close(fd);
    free(h);
    return ok;
}

static void run_unets(struct hsd_backend *sb) {
    char names[256];
    snprintf(names, sizeof names, "%s", hsd_unet_preset_names());
    // n, h, w; SDXL-family U-Nets also at 1024x1024 (128x128 latents:
    // attention t = 4096 at 640 wide, 1024 at 1280, the 10-layer stacks),
    // the size they were trained for.
    static const int buckets[][3] = {{2, 64, 64}, {32, 64, 64}, {1, 96, 96}, {2, 128, 128}};
    for (char *save = NULL, *name = strtok_r(names, ", ", &save); name;
         name = strtok_r(NULL, ", ", &save)) {
        struct hsd_unet_source src;
        struct hsd_unet *u = NULL;
        CHECK_OK(hsd_unet_source_preset(&src, name));
        CHECK_OK(hsd_unet_create(&u, &src, sb));
        if (!u) continue;
        const struct hsd_unet_config *cfg = hsd_unet_get_config(u);
        for (size_t b = 0; b < sizeof buckets / sizeof buckets[0]; b++) {
            const int n = buckets[b][0], h = buckets[b][1], w = buckets[b][2];
            if (h == 128 && !cfg->add_text_time) continue;
            char label[48];
            snprintf(label, sizeof label, "unet %s n%d %dx%d", name, n, h, w);
            hsd_backend_shape_set_model(sb, label);
            const size_t io = (size_t)n * cfg->in_channels * h * w;
            float *x = calloc(io, sizeof *x), *out = calloc((size_t)n * cfg->out_channels * h * w, sizeof *out);
            float *t = calloc((size_t)n, sizeof *t);
            float *ctx = calloc((size_t)n * 77 * cfg->cross_attention_dim, sizeof *ctx);
            // SDXL-family presets: pooled text + 6 time ids (zeros: shapes only).
            int td = hsd_unet_text_embeds_dim(cfg);
            float *te = calloc((size_t)n * (td + HSD_SDXL_N_TIME_IDS), sizeof *te);
            struct hsd_unet_added_cond add = {te, te + (size_t)n * td, td, HSD_SDXL_N_TIME_IDS};
            CHECK(x && out && t && ctx && te);
            if (x && out && t && ctx && te)
                CHECK_OK(hsd_unet_forward_cond(u, out, x, t, ctx, cfg->add_text_time ? &add : NULL,
                                               n, h, w, 77));
            free(te);
            free(x);
            free(out);
            free(t);
            free(ctx);
        }
        hsd_unet_free(u);
        hsd_unet_source_close(&src);
    }
}

static void run_vae(struct hsd_backend *sb, const char *name, const char *json) {
    struct hsd_vae *v = NULL;
    CHECK_OK(hsd_vae_create(&v, json, strlen(json), name, sb));
    if (!v) return;
    static const int dec[][3] = {{1, 64, 64}, {2, 64, 64}, {1, 128, 128}};
    char label[48];
    for (size_t i = 0; i < sizeof dec / sizeof dec[0]; i++) {
        const int n = dec[i][0], h = dec[i][1], w = dec[i][2];
        snprintf(label, sizeof label, "%s decode n%d %dx%d", name, n, h, w);
        hsd_backend_shape_set_model(sb, label);
        float *lat = calloc((size_t)n * 4 * h * w, sizeof *lat);
        float *img = calloc((size_t)n * 3 * 64 * h * w, sizeof *img);
        CHECK(lat && img);
        if (lat && img) CHECK_OK(hsd_vae_decode(v, img, lat, n, h, w));
        free(lat);
        free(img);
    }
    snprintf(label, sizeof label, "%s encode n1 512x512", name);
    hsd_backend_shape_set_model(sb, label);
    float *img = calloc(3 * 512 * 512, sizeof *img), *lat = calloc(4 * 64 * 64, sizeof *lat);
    CHECK(lat && img);
    if (lat && img) CHECK_OK(hsd_vae_encode(v, lat, img, 1, 512, 512));
    free(lat);
    free(img);
    hsd_vae_free(v);
}

static void run_texts(struct hsd_backend *sb) {
    char dir[] = "/tmp/hsd-model-shapes-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECKF(0, "mkdtemp: cannot make a scratch folder");
        return;
    }
    for (size_t i = 0; i < sizeof k_texts / sizeof k_texts[0]; i++) {
        struct hsd_clip_text *m = NULL;
        CHECKF(write_text_model(dir, &k_texts[i]), "%s: cannot write %s", k_texts[i].name, dir);
        CHECK_OK(hsd_clip_text_load(&m, dir, sb));
        if (!m) continue;
        hsd_backend_shape_set_model(sb, k_texts[i].name);
        int32_t ids[2 * 77] = {0};
        float *out = calloc(2 * 77 * (size_t)k_texts[i].hidden, sizeof *out);
        CHECK(out);
        if (out) CHECK_OK(hsd_clip_text_forward(m, out, ids, 2, 77, 0));
        free(out);
        hsd_clip_text_free(m);
    }
    char path[128];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
}

// ---- 2. the registry query ------------------------------------------------------------

// The registry's production entry point of `op` (linear: none, -1).
static enum hsd_status registry_run(enum hsd_emu_op op, const union hsd_shape_params *p) {
    switch (op) {
    case HSD_EMU_CONV2D: return hsd_cuda_conv2d(&p->conv2d, 0);
    case HSD_EMU_GROUP_NORM: return hsd_cuda_group_norm(&p->group_norm, 0);
    case HSD_EMU_LAYER_NORM: return hsd_cuda_layer_norm(&p->layer_norm, 0);
    case HSD_EMU_ATTENTION: return hsd_cuda_attention(&p->attention, 0);
    case HSD_EMU_GEGLU: return hsd_cuda_geglu(&p->geglu, 0);
    case HSD_EMU_UPSAMPLE_NEAREST2X: return hsd_cuda_upsample_nearest2x(&p->upsample, 0);
    case HSD_EMU_CONCAT_CHANNELS: return hsd_cuda_concat_channels(&p->concat, 0);
    case HSD_EMU_ADD_BIAS: return hsd_cuda_add_bias(&p->add_bias, 0);
    case HSD_EMU_ADD: return hsd_cuda_add(&p->eltwise, 0);
    case HSD_EMU_SILU: return hsd_cuda_silu(&p->eltwise, 0);
    case HSD_EMU_GELU: return hsd_cuda_gelu(&p->eltwise, 0);
    case HSD_EMU_QUICK_GELU: return hsd_cuda_quick_gelu(&p->eltwise, 0);
    case HSD_EMU_RELU: return hsd_cuda_relu(&p->eltwise, 0);
    case HSD_EMU_TANH_CLAMP: return hsd_cuda_tanh_clamp(&p->tanh_clamp, 0);
    case HSD_EMU_TIMESTEP_EMBEDDING: return hsd_cuda_timestep_embedding(&p->temb, 0);
    case HSD_EMU_LINEAR:
    // The denoise step's ops (backend/step_ops.h) run outside the models'
    // forwards, so no model records them; they are elementwise over the
    // latent with no width limit, checked by test_cuda_step_emulated.
    case HSD_EMU_STEP_INPUT:
    case HSD_EMU_CFG_COMBINE:
    case HSD_EMU_SAMPLER_STEP:
    case HSD_EMU_STEP_GATHER:
    case HSD_EMU_STEP_SCATTER:
    case HSD_EMU_LORA:  // only with an adapter attached: test_cuda_lora's shapes
    case HSD_EMU_OP_COUNT: break;
    }
    return HSD_ERR_INTERNAL;
}

// Per distinct shape: the version it ran on (NULL: linear, not queried).
static const char **g_version;

static int is_production(enum hsd_emu_op op, const char *version) {
#define PROD_NAME(o, params) \
    if (!strcmp(#o, hsd_backend_emu_op_name(op))) return !strcmp(version, hsd_cuda_##o##_production()->info.name);
    HSD_CUDA_OPS(PROD_NAME)
#undef PROD_NAME
    return 0;
}

static void query(const struct hsd_backend *sb, int verbose) {
    const size_t n = hsd_backend_shape_count(sb);
    g_version = calloc(n ? n : 1, sizeof *g_version);
    int refused = 0, off_production = 0;
    hsd_cuda_emu_set_dry_run(1);
    for (size_t i = 0; i < n; i++) {
        const struct hsd_shape_call *c = hsd_backend_shape_at(sb, i);
        if (c->op == HSD_EMU_LINEAR) {
            if (verbose)
                printf("  %-18s %-70s cuBLASLt (not a registry op) [%s]\n", "linear", c->key,
                       c->model);
            continue;
        }
        hsd_clear_error();
        enum hsd_status st = registry_run(c->op, &c->p);
        g_version[i] = hsd_cuda_last_version();
        const int prod = st == HSD_OK && is_production(c->op, g_version[i]);
        if (st != HSD_OK) {
            refused++;
            printf("  REFUSED %-18s %s [%s]: %s\n", hsd_backend_emu_op_name(c->op), c->key,
                   c->model, hsd_last_error());
            g_version[i] = NULL;
        } else if (!prod) {
            off_production++;
        }
        if (verbose || (st == HSD_OK && !prod))
            printf("  %-18s %-70s %s%s [%s, %ld calls]\n", hsd_backend_emu_op_name(c->op), c->key,
                   g_version[i], prod ? "" : " (not production: fallback/reference)", c->model,
                   c->calls);
    }
    hsd_cuda_emu_set_dry_run(0);
    printf("registry query: %zu distinct op shapes over the models above; %d run off the "
           "production version (listed); refused op/shape combinations: %s\n",
           n, off_production, refused ? "see REFUSED above" : "none");
    CHECKF(refused == 0, "%d op shapes of the real models are refused by the CUDA registry",
           refused);
}

// ---- 3. real widths on tiny sizes -------------------------------------------------------

// One buffer of a tiny case: where its pointer lives in the params copies,
// how many elements, whether the op writes it, fp32 (the timesteps).
enum { IN = 1, OUT = 2, INOUT = 3 };
struct tbuf {
    size_t field;      // offset of the pointer in the params union
    size_t count;
    int role, f32;     // IN / OUT / INOUT; fp32 (else fp16 on the device)
    uintptr_t real;    // the full-size call's address (alignment, aliasing)
    int alias;         // index of an earlier buffer with the same address, or -1
};

static void add_buf(struct tbuf *b, int *nb, const void *field, const void *base, size_t count,
                    int role, int f32) {
    const void *real = *(const void *const *)field;
    if (!real) return;  // optional input absent (bias, residual, b)
    struct tbuf *t = &b[*nb];
    t->field = (size_t)((const char *)field - (const char *)base);
    t->count = count;
    t->role = role;
    t->f32 = f32;
    t->real = (uintptr_t)real;
    t->alias = -1;
    for (int i = 0; i < *nb; i++) {
        if (b[i].real == t->real && t->alias < 0) {
            t->alias = i;
            b[i].role |= role;  // in place: one buffer read and written
        }
    }
    (*nb)++;
}

static int imin(int a, int b) { return a < b ? a : b; }

// The tiny version of a call (its batch, pixels and tokens cut) and its
// buffers. Returns the emulation-cost estimate used to pick CI classes.
static double make_tiny(enum hsd_emu_op op, union hsd_shape_params *p, struct tbuf *b, int *nb) {
    *nb = 0;
    switch (op) {
    case HSD_EMU_CONV2D: {
        struct hsd_conv2d_params *q = &p->conv2d;
        q->n = 1;
        q->h = imin(q->h, 6);
        q->w = imin(q->w, 5);
        const int ho = (q->h + 2 * q->pad + q->pad_bottom - q->kh) / q->stride + 1;
        const int wo = (q->w + 2 * q->pad + q->pad_right - q->kw) / q->stride + 1;
        const size_t nout = (size_t)ho * wo * q->co;
        add_buf(b, nb, &q->out, p, nout, OUT, 0);
        add_buf(b, nb, &q->in, p, (size_t)q->h * q->w * q->ci, IN, 0);
        add_buf(b, nb, &q->weight, p, (size_t)q->co * q->kh * q->kw * q->ci, IN, 0);
        add_buf(b, nb, &q->bias, p, (size_t)q->co, IN, 0);
        add_buf(b, nb, &q->residual, p, nout, IN, 0);
        return (double)q->ci * q->co * q->kh * q->kw;
    }
    case HSD_EMU_GROUP_NORM: {
        struct hsd_group_norm_params *q = &p->group_norm;
        q->n = 1;
        q->hw = imin(q->hw, 12);
        add_buf(b, nb, &q->out, p, (size_t)q->hw * q->c, OUT, 0);
        add_buf(b, nb, &q->in, p, (size_t)q->hw * q->c, IN, 0);
        add_buf(b, nb, &q->gamma, p, (size_t)q->c, IN, 0);
        add_buf(b, nb, &q->beta, p, (size_t)q->c, IN, 0);
        return q->c;
    }
    case HSD_EMU_LAYER_NORM: {
        struct hsd_layer_norm_params *q = &p->layer_norm;
        q->m = imin(q->m, 5);
        add_buf(b, nb, &q->out, p, (size_t)q->m * q->c, OUT, 0);
        add_buf(b, nb, &q->in, p, (size_t)q->m * q->c, IN, 0);
        add_buf(b, nb, &q->gamma, p, (size_t)q->c, IN, 0);
        add_buf(b, nb, &q->beta, p, (size_t)q->c, IN, 0);
        return q->c;
    }
    case HSD_EMU_ATTENTION: {
        struct hsd_attention_params *q = &p->attention;
        const int self = q->t_kv == q->t_q;
        q->n = 1;
        q->t_q = imin(q->t_q, 70);
        q->t_kv = self ? q->t_q : imin(q->t_kv, 77);
        add_buf(b, nb, &q->out, p, (size_t)q->t_q * q->ldo, OUT, 0);
        add_buf(b, nb, &q->q, p, (size_t)q->t_q * q->ldq, IN, 0);
        add_buf(b, nb, &q->k, p, (size_t)q->t_kv * q->ldk, IN, 0);
        add_buf(b, nb, &q->v, p, (size_t)q->t_kv * q->ldv, IN, 0);
        return (double)q->heads * q->d * q->t_q * q->t_kv / 100.0;
    }
    case HSD_EMU_GEGLU: {
        struct hsd_geglu_params *q = &p->geglu;
        q->m = imin(q->m, 5);
        add_buf(b, nb, &q->out, p, (size_t)q->m * q->f, OUT, 0);
        add_buf(b, nb, &q->in, p, (size_t)q->m * 2 * q->f, IN, 0);
        return q->f;
    }
    case HSD_EMU_UPSAMPLE_NEAREST2X: {
        struct hsd_upsample_params *q = &p->upsample;
        q->n = 1;
        q->h = imin(q->h, 3);
        q->w = imin(q->w, 3);
        add_buf(b, nb, &q->out, p, (size_t)4 * q->h * q->w * q->c, OUT, 0);
        add_buf(b, nb, &q->in, p, (size_t)q->h * q->w * q->c, IN, 0);
        return q->c;
    }
    case HSD_EMU_CONCAT_CHANNELS: {
        struct hsd_concat_params *q = &p->concat;
        q->m = imin(q->m, 5);
        add_buf(b, nb, &q->out, p, (size_t)q->m * (q->ca + q->cb), OUT, 0);
        add_buf(b, nb, &q->a, p, (size_t)q->m * q->ca, IN, 0);
        add_buf(b, nb, &q->b, p, (size_t)q->m * q->cb, IN, 0);
        return q->ca + q->cb;
    }
    case HSD_EMU_ADD_BIAS: {
        struct hsd_add_bias_params *q = &p->add_bias;
        q->n = imin(q->n, 2);
        q->p = imin(q->p, 5);
        add_buf(b, nb, &q->x, p, (size_t)q->n * q->p * q->c, INOUT, 0);
        add_buf(b, nb, &q->v, p, (size_t)q->n * q->c, IN, 0);
        return q->c;
    }
    case HSD_EMU_ADD:
    case HSD_EMU_SILU:
    case HSD_EMU_GELU:
    case HSD_EMU_QUICK_GELU:
    case HSD_EMU_RELU: {
        struct hsd_eltwise_params *q = &p->eltwise;
        q->count = q->count < 48 ? q->count : 40 + q->count % 8;  // keeps the vector remainder
        add_buf(b, nb, &q->out, p, q->count, OUT, 0);
        add_buf(b, nb, &q->a, p, q->count, IN, 0);
        if (op == HSD_EMU_ADD) add_buf(b, nb, &q->b, p, q->count, IN, 0);
        else q->b = NULL;
        return 1;
    }
    case HSD_EMU_TANH_CLAMP: {
        struct hsd_tanh_clamp_params *q = &p->tanh_clamp;
        q->count = q->count < 48 ? q->count : 40 + q->count % 8;
        add_buf(b, nb, &q->out, p, q->count, OUT, 0);
        add_buf(b, nb, &q->in, p, q->count, IN, 0);
        return 1;
    }
    case HSD_EMU_TIMESTEP_EMBEDDING: {
        struct hsd_timestep_embedding_params *q = &p->temb;
        q->n = imin(q->n, 2);
        add_buf(b, nb, &q->out, p, (size_t)q->n * q->dim, OUT, 0);
        add_buf(b, nb, &q->t, p, (size_t)q->n, IN, 1);
        return q->dim;
    }
    case HSD_EMU_LINEAR:
    case HSD_EMU_STEP_INPUT:  // not recorded by any model (see registry_run)
    case HSD_EMU_CFG_COMBINE:
    case HSD_EMU_SAMPLER_STEP:
    case HSD_EMU_STEP_GATHER:
    case HSD_EMU_STEP_SCATTER:
    case HSD_EMU_LORA:  // only with an adapter attached: test_cuda_lora's shapes
    case HSD_EMU_OP_COUNT: break;
    }
    return -1;
}

static enum hsd_status run_op(struct hsd_backend *be, enum hsd_emu_op op,
                              const union hsd_shape_params *p) {
    const struct hsd_backend_ops *o = be->ops;
    switch (op) {
    case HSD_EMU_CONV2D: return o->conv2d(be, &p->conv2d);
    case HSD_EMU_GROUP_NORM: return o->group_norm(be, &p->group_norm);
    case HSD_EMU_LAYER_NORM: return o->layer_norm(be, &p->layer_norm);
    case HSD_EMU_ATTENTION: return o->attention(be, &p->attention);
    case HSD_EMU_GEGLU: return o->geglu(be, &p->geglu);
    case HSD_EMU_UPSAMPLE_NEAREST2X: return o->upsample_nearest2x(be, &p->upsample);
    case HSD_EMU_CONCAT_CHANNELS: return o->concat_channels(be, &p->concat);
    case HSD_EMU_ADD_BIAS: return o->add_bias(be, &p->add_bias);
    case HSD_EMU_ADD: return o->add(be, &p->eltwise);
    case HSD_EMU_SILU: return o->silu(be, &p->eltwise);
    case HSD_EMU_GELU: return o->gelu(be, &p->eltwise);
    case HSD_EMU_QUICK_GELU: return o->quick_gelu(be, &p->eltwise);
    case HSD_EMU_RELU: return o->relu(be, &p->eltwise);
    case HSD_EMU_TANH_CLAMP: return o->tanh_clamp(be, &p->tanh_clamp);
    case HSD_EMU_TIMESTEP_EMBEDDING: return o->timestep_embedding(be, &p->temb);
    case HSD_EMU_LINEAR:
    case HSD_EMU_STEP_INPUT:  // not recorded by any model (see registry_run)
    case HSD_EMU_CFG_COMBINE:
    case HSD_EMU_SAMPLER_STEP:
    case HSD_EMU_STEP_GATHER:
    case HSD_EMU_STEP_SCATTER:
    case HSD_EMU_LORA:  // only with an adapter attached: test_cuda_lora's shapes
    case HSD_EMU_OP_COUNT: break;
    }
    return HSD_ERR_INTERNAL;
}

static void **slot(union hsd_shape_params *p, const struct tbuf *b) {
    return (void **)((char *)p + b->field);
}

// Runs one class at its tiny size on CPU and emulated kernels and compares.
static void run_tiny(struct hsd_backend *cpu, struct hsd_backend *emu,
                     const struct hsd_shape_call *c, uint64_t seed) {
    union hsd_shape_params pc = c->p, pe;
    struct tbuf b[8];
    int nb = 0;
    make_tiny(c->op, &pc, b, &nb);
    pe = pc;
    void *ebase[8] = {0}, *cbuf[8] = {0};
    float *host[8] = {0};
    int ok = 1;
    for (int i = 0; i < nb && ok; i++) {
        if (b[i].alias >= 0) {
            *slot(&pc, &b[i]) = *slot(&pc, &b[b[i].alias]);
            *slot(&pe, &b[i]) = *slot(&pe, &b[b[i].alias]);
            continue;
        }
        // The emulated buffer keeps the full-size call's offset within 256
        // bytes, so the kernels take the same aligned / unaligned paths.
        const size_t shift = b[i].real % 256;
        const size_t esz = b[i].f32 ? 4 : 2;
        ebase[i] = emu->ops->alloc(emu, b[i].count * esz + shift);
        cbuf[i] = cpu->ops->alloc(cpu, b[i].count * sizeof(float));
        host[i] = malloc(b[i].count * sizeof(float));
        ok = ebase[i] && cbuf[i] && host[i];
        if (!ok) break;
        void *ep = (char *)ebase[i] + shift;
        *slot(&pe, &b[i]) = ep;
        *slot(&pc, &b[i]) = cbuf[i];
        if (b[i].f32) {
            for (size_t j = 0; j < b[i].count; j++) host[i][j] = (float)((j * 397 + seed) % 1000);
            CHECK_OK(emu->ops->upload_f32(emu, ep, host[i], b[i].count));
        } else if (!(b[i].role & IN)) {
            // Outputs only: NaN on both sides (the emulated buffer is NaN
            // from its allocation), so an element no one writes fails.
            for (size_t j = 0; j < b[i].count; j++) host[i][j] = NAN;
        } else {
            hsd_test_fill_uniform(host[i], b[i].count, seed + (uint64_t)i, 1.0f);
            for (size_t j = 0; j < b[i].count; j++)
                host[i][j] = hsd_f16_to_f32(hsd_f32_to_f16(host[i][j]));
            CHECK_OK(emu->ops->upload(emu, ep, host[i], b[i].count));
        }
        CHECK_OK(cpu->ops->upload(cpu, cbuf[i], host[i], b[i].count));
    }
    CHECKF(ok, "%s %s: out of memory", hsd_backend_emu_op_name(c->op), c->cls);
    if (ok) {
        hsd_clear_error();
        CHECK_OK(run_op(cpu, c->op, &pc));
        enum hsd_status st = run_op(emu, c->op, &pe);
        CHECKF(st == HSD_OK, "%s %s: emulated kernels: %s", hsd_backend_emu_op_name(c->op), c->cls,
               hsd_last_error());
        for (int i = 0; i < nb && st == HSD_OK; i++) {
            if (!(b[i].role & OUT) || b[i].alias >= 0) continue;
            float *got = malloc(b[i].count * sizeof *got), *ref = malloc(b[i].count * sizeof *ref);
            CHECK(got && ref);
            if (got && ref) {
                CHECK_OK(emu->ops->download(emu, got, *slot(&pe, &b[i]), b[i].count));
                CHECK_OK(cpu->ops->download(cpu, ref, cbuf[i], b[i].count));
                // Attention: only the heads' columns of each token row are
                // outputs (the rest of an ldo-wide row is someone else's).
                size_t row = b[i].count, cols = b[i].count;
                if (c->op == HSD_EMU_ATTENTION) {
                    row = (size_t)pc.attention.ldo;
                    cols = (size_t)pc.attention.heads * pc.attention.d;
                }
                double max_err = 0, max_ref = 0;
                size_t bad = 0, worst = 0;
                for (size_t j = 0; j < b[i].count; j++) {
                    if (j % row >= cols) continue;
                    if (!isfinite(got[j]) || !isfinite(ref[j])) {
                        bad++;
                        continue;
                    }
                    const double e = fabs((double)got[j] - ref[j]);
                    if (e > max_err) max_err = e, worst = j;
                    if (fabs(ref[j]) > max_ref) max_ref = fabs(ref[j]);
                }
                const int pass = bad == 0 && max_err <= TOL * max_ref;
                printf("  %-18s %-62s %-26s max|err| %.2e (%.1e of max|ref| %.3g) worst[%zu] "
                       "got %.5g ref %.5g%s %s\n",
                       hsd_backend_emu_op_name(c->op), c->cls, hsd_cuda_last_version(), max_err,
                       max_ref > 0 ? max_err / max_ref : 0.0, max_ref, worst, got[worst],
                       ref[worst], bad ? " NON-FINITE" : "", pass ? "ok" : "FAIL");
                CHECKF(pass, "%s %s: max|err| %.3e, max|ref| %.3e, %zu non-finite",
                       hsd_backend_emu_op_name(c->op), c->cls, max_err, max_ref, bad);
            }
            free(got);
            free(ref);
        }
    }
    for (int i = 0; i < nb; i++) {
        if (ebase[i]) emu->ops->free(emu, ebase[i]);
        if (cbuf[i]) cpu->ops->free(cpu, cbuf[i]);
        free(host[i]);
    }
}

static void real_widths(const struct hsd_backend *sb, int ci_only) {
    struct hsd_backend *cpu = NULL, *emu = NULL;
    CHECK_OK(hsd_backend_cpu_create(&cpu, 1));
    CHECK_OK(hsd_backend_emu_create(&emu));
    if (!cpu || !emu) return;
    const size_t n = hsd_backend_shape_count(sb);
    // First call of each class; in CI the cheapest class per op.
    int *first = calloc(n ? n : 1, sizeof *first);
    size_t cheapest[HSD_EMU_OP_COUNT];
    double cost[HSD_EMU_OP_COUNT];
    for (int o = 0; o < HSD_EMU_OP_COUNT; o++) cheapest[o] = (size_t)-1, cost[o] = INFINITY;
    size_t classes = 0;
    for (size_t i = 0; i < n; i++) {
        const struct hsd_shape_call *c = hsd_backend_shape_at(sb, i);
        if (c->op == HSD_EMU_LINEAR || !g_version[i]) continue;
        first[i] = 1;
        for (size_t j = 0; j < i && first[i]; j++) {
            const struct hsd_shape_call *d = hsd_backend_shape_at(sb, j);
            if (first[j] && d->op == c->op && !strcmp(d->cls, c->cls)) first[i] = 0;
        }
        if (!first[i]) continue;
        classes++;
        union hsd_shape_params p = c->p;
        struct tbuf b[8];
        int nb;
        const double w = make_tiny(c->op, &p, b, &nb);
        if (w < cost[c->op]) cost[c->op] = w, cheapest[c->op] = i;
    }
    size_t ran = 0;
    const double t0 = now();
    printf("real widths, tiny sizes (%s): emulated kernels vs the CPU backend, tolerance %.0e * "
           "max|ref|\n", ci_only ? "one class per op + every class off production" : "every class", TOL);
    for (size_t i = 0; i < n; i++) {
        const struct hsd_shape_call *c = hsd_backend_shape_at(sb, i);
        if (!first[i]) continue;
        if (ci_only && cheapest[c->op] != i && is_production(c->op, g_version[i])) continue;
        run_tiny(cpu, emu, c, 1000 + i);
        ran++;
    }
    printf("real widths: %zu of %zu shape classes run (%.1f s)\n", ran, classes, now() - t0);
    free(first);
    hsd_backend_destroy(emu);
    hsd_backend_destroy(cpu);
}

int main(int argc, char **argv) {
    int ci = 0, verbose = 0;
    for (int i = 1; i < argc; i++) {
        ci |= !strcmp(argv[i], "--ci");
        verbose |= !strcmp(argv[i], "-v");
    }
    const double t0 = now();
    struct hsd_backend *sb = NULL;
    CHECK_OK(hsd_backend_shape_create(&sb));
    if (!sb) return hsd_test_finish();
    run_unets(sb);
    run_vae(sb, "sd-vae", k_sd_vae);
    run_vae(sb, "taesd", k_taesd);
    run_texts(sb);
    printf("catalogue: %zu distinct op shapes from the U-Net presets (%s), the SD VAE, TAESD, "
           "CLIP ViT-L/14, OpenCLIP ViT-H/14 and ViT-bigG/14 (%.1f s)\n",
           hsd_backend_shape_count(sb), hsd_unet_preset_names(), now() - t0);
    query(sb, verbose);
    real_widths(sb, ci);
    free(g_version);
    hsd_backend_destroy(sb);
    printf("total %.1f s\n", now() - t0);
    return hsd_test_finish();
}
