// TEST DOUBLE of the CUDA backend's numerics (see emu_backend.h): the op
// table of cuda/backend_cuda.c over host memory, the registry's kernels
// through hsd_cuda_emu, linear as cuBLASLt computes it.
#include "emu_backend.h"

#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "registry.h"

struct emu {
    struct hsd_backend be;  // first: the op table gets this pointer back
    long calls[HSD_EMU_OP_COUNT];
    long fallbacks[HSD_EMU_OP_COUNT];
};

static struct emu *E(struct hsd_backend *be) { return (struct emu *)be; }

static const char *const k_op_names[HSD_EMU_OP_COUNT] = {
    [HSD_EMU_CONV2D] = "conv2d",
    [HSD_EMU_LINEAR] = "linear",
    [HSD_EMU_GROUP_NORM] = "group_norm",
    [HSD_EMU_LAYER_NORM] = "layer_norm",
    [HSD_EMU_ATTENTION] = "attention",
    [HSD_EMU_GEGLU] = "geglu",
    [HSD_EMU_UPSAMPLE_NEAREST2X] = "upsample_nearest2x",
    [HSD_EMU_CONCAT_CHANNELS] = "concat_channels",
    [HSD_EMU_ADD_BIAS] = "add_bias",
    [HSD_EMU_ADD] = "add",
    [HSD_EMU_SILU] = "silu",
    [HSD_EMU_GELU] = "gelu",
    [HSD_EMU_QUICK_GELU] = "quick_gelu",
    [HSD_EMU_RELU] = "relu",
    [HSD_EMU_TANH_CLAMP] = "tanh_clamp",
    [HSD_EMU_TIMESTEP_EMBEDDING] = "timestep_embedding",
    [HSD_EMU_STEP_INPUT] = "step_input",
    [HSD_EMU_CFG_COMBINE] = "cfg_combine",
    [HSD_EMU_SAMPLER_STEP] = "sampler_step",
    [HSD_EMU_STEP_GATHER] = "step_gather",
    [HSD_EMU_STEP_SCATTER] = "step_scatter",
};

const char *hsd_backend_emu_op_name(enum hsd_emu_op op) {
    return (unsigned)op < HSD_EMU_OP_COUNT ? k_op_names[op] : "?";
}

long hsd_backend_emu_calls(const struct hsd_backend *be, enum hsd_emu_op op) {
    return (unsigned)op < HSD_EMU_OP_COUNT ? ((const struct emu *)be)->calls[op] : 0;
}

long hsd_backend_emu_fallbacks(const struct hsd_backend *be, enum hsd_emu_op op) {
    return (unsigned)op < HSD_EMU_OP_COUNT ? ((const struct emu *)be)->fallbacks[op] : 0;
}

// ---- memory and transfers (cu_alloc / cu_upload / cu_download) -----------------------

static void *emu_alloc(struct hsd_backend *be, size_t bytes) {
    (void)be;
    // cudaMalloc's alignment (256 B), so the kernels' 16-byte paths and
    // their alignment checks see what they see on the device.
    // Filled with 0xFF bytes (fp16 NaN), as cuda/emulate.cuh's cudaMalloc:
    // an op that reads memory no op wrote yields NaN, not a lucky zero.
    size_t rounded = ((bytes ? bytes : 1) + 255) & ~(size_t)255;
    void *p = aligned_alloc(256, rounded);
    if (!p) hsd_fail(HSD_ERR_NOMEM, "cuda-emulated: cannot allocate %zu bytes", bytes);
    else memset(p, 0xFF, rounded);
    return p;
}

static void emu_free(struct hsd_backend *be, void *p) {
    (void)be;
    free(p);
}

static enum hsd_status emu_upload(struct hsd_backend *be, void *dst, const float *src,
                                  size_t count) {
    if (count && (!dst || !src)) return hsd_fail(HSD_ERR_INVALID_ARG, "upload: NULL buffer");
    uint16_t *h = dst;
    for (size_t i = 0; i < count; i++) h[i] = hsd_f32_to_f16(src[i]);
    if (count) hsd_xfer_up(&be->xfer, count * sizeof *h);
    return HSD_OK;
}

static enum hsd_status emu_upload_f32(struct hsd_backend *be, void *dst, const float *src,
                                      size_t count) {
    if (count && (!dst || !src)) return hsd_fail(HSD_ERR_INVALID_ARG, "upload: NULL buffer");
    if (count) memcpy(dst, src, count * sizeof *src);
    if (count) hsd_xfer_up(&be->xfer, count * sizeof *src);
    return HSD_OK;
}

static enum hsd_status emu_download(struct hsd_backend *be, float *dst, const void *src,
                                    size_t count) {
    if (count && (!dst || !src)) return hsd_fail(HSD_ERR_INVALID_ARG, "download: NULL buffer");
    const uint16_t *h = src;
    for (size_t i = 0; i < count; i++) dst[i] = hsd_f16_to_f32(h[i]);
    if (count) hsd_xfer_down(&be->xfer, count * sizeof *h);
    return HSD_OK;
}

static enum hsd_status emu_download_f32(struct hsd_backend *be, float *dst, const void *src,
                                        size_t count) {
    if (count && (!dst || !src)) return hsd_fail(HSD_ERR_INVALID_ARG, "download: NULL buffer");
    if (count) memcpy(dst, src, count * sizeof *dst);
    if (count) hsd_xfer_down(&be->xfer, count * sizeof *dst);
    return HSD_OK;
}

// Every emulated launch has run to completion when its launcher returns
// (cuda/emulate.cuh runs the grid inside the launch): nothing is queued.
static enum hsd_status emu_synchronize(struct hsd_backend *be) {
    (void)be;
    return HSD_OK;
}

// ---- ops ----------------------------------------------------------------------------

// The registry's production entry point, as cu_<op> calls it (stream 0:
// the emulation ignores streams). A production version that refuses a shape
// leaves its HSD_ERR_UNSUPPORTED message behind before the registry runs the
// reference version: a success with a message is counted as a fallback.
#define EMU_OP(op, OP, params)                                                     \
    static enum hsd_status emu_##op(struct hsd_backend *be, const struct params *p) { \
        struct emu *e = E(be);                                                     \
        e->calls[HSD_EMU_##OP]++;                                                  \
        hsd_clear_error();                                                         \
        enum hsd_status s = hsd_cuda_##op(p, (cudaStream_t)0);                     \
        if (s == HSD_OK && hsd_last_error()[0]) {                                  \
            e->fallbacks[HSD_EMU_##OP]++;                                          \
            hsd_clear_error();                                                     \
        }                                                                          \
        return s;                                                                  \
    }
EMU_OP(conv2d, CONV2D, hsd_conv2d_params)
EMU_OP(group_norm, GROUP_NORM, hsd_group_norm_params)
EMU_OP(layer_norm, LAYER_NORM, hsd_layer_norm_params)
EMU_OP(attention, ATTENTION, hsd_attention_params)
EMU_OP(geglu, GEGLU, hsd_geglu_params)
EMU_OP(upsample_nearest2x, UPSAMPLE_NEAREST2X, hsd_upsample_params)
EMU_OP(concat_channels, CONCAT_CHANNELS, hsd_concat_params)
EMU_OP(add_bias, ADD_BIAS, hsd_add_bias_params)
EMU_OP(add, ADD, hsd_eltwise_params)
EMU_OP(silu, SILU, hsd_eltwise_params)
EMU_OP(gelu, GELU, hsd_eltwise_params)
EMU_OP(quick_gelu, QUICK_GELU, hsd_eltwise_params)
EMU_OP(relu, RELU, hsd_eltwise_params)
EMU_OP(tanh_clamp, TANH_CLAMP, hsd_tanh_clamp_params)
EMU_OP(timestep_embedding, TIMESTEP_EMBEDDING, hsd_timestep_embedding_params)
EMU_OP(step_input, STEP_INPUT, hsd_step_input_params)
EMU_OP(cfg_combine, CFG_COMBINE, hsd_cfg_combine_params)
EMU_OP(sampler_step, SAMPLER_STEP, hsd_sampler_step_params)
EMU_OP(step_gather, STEP_GATHER, hsd_step_gather_params)
EMU_OP(step_scatter, STEP_SCATTER, hsd_step_scatter_params)
#undef EMU_OP

static float *widen(const void *src, size_t count) {
    float *x = malloc((count ? count : 1) * sizeof *x);
    if (!x) return NULL;
    const uint16_t *h = src;
    for (size_t i = 0; i < count; i++) x[i] = hsd_f16_to_f32(h[i]);
    return x;
}

// cuBLASLt's linear (backend_cuda_linear.c): D = W^T-op(A) B + C (beta 1
// with the residual) + bias epilogue, fp16 operands, fp32 compute, D
// rounded once to fp16. The residual is read in full before D is written,
// so residual == out (in place) works as cuBLASLt's C == D does.
static enum hsd_status emu_linear(struct hsd_backend *be, const struct hsd_linear_params *p) {
    struct emu *e = E(be);
    e->calls[HSD_EMU_LINEAR]++;
    if (!p || !p->out || !p->in || !p->weight || p->m < 1 || p->k < 1 || p->n_out < 1)
        return hsd_fail(HSD_ERR_INVALID_ARG, "linear: bad params m=%d k=%d n_out=%d",
                        p ? p->m : 0, p ? p->k : 0, p ? p->n_out : 0);
    const size_t m = (size_t)p->m, k = (size_t)p->k, n = (size_t)p->n_out;
    float *in = widen(p->in, m * k);          // [m, k]
    float *w = widen(p->weight, n * k);       // [n_out, k]
    float *acc = malloc(m * n * sizeof *acc); // [m, n_out]
    float *bias = p->bias ? widen(p->bias, n) : NULL;                    // [n_out]
    float *res = p->residual ? widen(p->residual, m * n) : NULL;         // [m, n_out]
    enum hsd_status s = HSD_OK;
    if (!in || !w || !acc || (p->bias && !bias) || (p->residual && !res)) {
        s = hsd_fail(HSD_ERR_NOMEM, "cuda-emulated linear m=%d k=%d n=%d: out of memory", p->m,
                     p->k, p->n_out);
        goto done;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p->m, p->n_out, p->k, 1.0f, in, p->k,
                w, p->k, 0.0f, acc, p->n_out);
    uint16_t *out = p->out;
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++) {
            float v = acc[i * n + j];
            if (res) v += res[i * n + j];
            if (bias) v += bias[j];
            out[i * n + j] = hsd_f32_to_f16(v);
        }
    }
done:
    free(in);
    free(w);
    free(acc);
    free(bias);
    free(res);
    return s;
}

// ---- lifetime -----------------------------------------------------------------------

static void emu_destroy(struct hsd_backend *be) { free(be); }

static const struct hsd_backend_ops k_emu_ops = {
    .name = "cuda-emulated",
    .destroy = emu_destroy,
    .alloc = emu_alloc,
    .free = emu_free,
    .upload = emu_upload,
    .download = emu_download,
    .upload_f32 = emu_upload_f32,
    .download_f32 = emu_download_f32,
    .synchronize = emu_synchronize,
    .graph_begin = NULL,
    .graph_end = NULL,
    .conv2d = emu_conv2d,
    .linear = emu_linear,
    .group_norm = emu_group_norm,
    .layer_norm = emu_layer_norm,
    .attention = emu_attention,
    .geglu = emu_geglu,
    .upsample_nearest2x = emu_upsample_nearest2x,
    .concat_channels = emu_concat_channels,
    .add_bias = emu_add_bias,
    .add = emu_add,
    .silu = emu_silu,
    .gelu = emu_gelu,
    .quick_gelu = emu_quick_gelu,
    .relu = emu_relu,
    .tanh_clamp = emu_tanh_clamp,
    .timestep_embedding = emu_timestep_embedding,
    .step_input = emu_step_input,
    .cfg_combine = emu_cfg_combine,
    .sampler_step = emu_sampler_step,
    .step_gather = emu_step_gather,
    .step_scatter = emu_step_scatter,
};

enum hsd_status hsd_backend_emu_create(struct hsd_backend **out) {
    if (!out) return hsd_fail(HSD_ERR_INVALID_ARG, "cuda-emulated backend: NULL output pointer");
    struct emu *e = calloc(1, sizeof *e);
    *out = NULL;
    if (!e) return hsd_fail(HSD_ERR_NOMEM, "cuda-emulated backend: out of memory");
    e->be.ops = &k_emu_ops;
    e->be.act_size = 2;  // fp16, as cuda:N
    e->be.threads = 0;
    e->be.kind = HSD_BACKEND_CUDA;
    e->be.device = -1;
    e->be.weight_mode = HSD_WEIGHTS_NORMAL;
    snprintf(e->be.desc, sizeof e->be.desc, "cuda-emulated (host)");
    e->be.impl = e;
    *out = &e->be;
    return HSD_OK;
}
