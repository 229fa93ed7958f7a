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

// A recorded op: which, and its params by value (pointers into fixed
// buffers, as a CUDA graph holds its kernels' arguments).
union emu_params {
    struct hsd_conv2d_params conv2d;
    struct hsd_linear_params linear;
    struct hsd_group_norm_params group_norm;
    struct hsd_layer_norm_params layer_norm;
    struct hsd_attention_params attention;
    struct hsd_geglu_params geglu;
    struct hsd_upsample_params upsample_nearest2x;
    struct hsd_concat_params concat_channels;
    struct hsd_add_bias_params add_bias;
    struct hsd_eltwise_params add, silu, gelu, quick_gelu, relu;
    struct hsd_tanh_clamp_params tanh_clamp;
    struct hsd_timestep_embedding_params timestep_embedding;
    struct hsd_step_input_params step_input;
    struct hsd_cfg_combine_params cfg_combine;
    struct hsd_sampler_step_params sampler_step;
    struct hsd_step_gather_params step_gather;
    struct hsd_step_scatter_params step_scatter;
    struct hsd_lora_params lora;
};
struct emu_call {
    enum hsd_emu_op op;
    union emu_params p;
};
struct emu_graph {
    struct hsd_graph_key key;
    int calls, recorded;
    struct emu_call *ops;
    size_t n, cap;
};
enum emu_mode { EMU_EAGER, EMU_CAPTURE, EMU_REPLAY };
#define EMU_MAX_GRAPHS 64

struct emu {
    struct hsd_backend be;  // first: the op table gets this pointer back
    struct hsd_backend_ops ops;  // per instance: graphs on or off
    long calls[HSD_EMU_OP_COUNT];
    long fallbacks[HSD_EMU_OP_COUNT];
    enum emu_mode mode;
    struct emu_graph graphs[EMU_MAX_GRAPHS], *cur;
    int n_graphs;
    long captures, replays;
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
    [HSD_EMU_LORA] = "lora",
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
    if (E(be)->mode != EMU_EAGER) {
        hsd_fail(HSD_ERR_INTERNAL, "cuda-emulated: allocation inside a graph");
        return NULL;
    }
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
    if (E(be)->mode != EMU_EAGER)
        return hsd_fail(HSD_ERR_INTERNAL, "cuda-emulated: %s between graph_begin and graph_end",
                        "upload");
    if (count && (!dst || !src)) return hsd_fail(HSD_ERR_INVALID_ARG, "upload: NULL buffer");
    uint16_t *h = dst;
    for (size_t i = 0; i < count; i++) h[i] = hsd_f32_to_f16(src[i]);
    if (count) hsd_xfer_up(&be->xfer, count * sizeof *h);
    return HSD_OK;
}

static enum hsd_status emu_upload_f32(struct hsd_backend *be, void *dst, const float *src,
                                      size_t count) {
    if (E(be)->mode != EMU_EAGER)
        return hsd_fail(HSD_ERR_INTERNAL, "cuda-emulated: %s between graph_begin and graph_end",
                        "upload");
    if (count && (!dst || !src)) return hsd_fail(HSD_ERR_INVALID_ARG, "upload: NULL buffer");
    if (count) memcpy(dst, src, count * sizeof *src);
    if (count) hsd_xfer_up(&be->xfer, count * sizeof *src);
    return HSD_OK;
}

static enum hsd_status emu_download(struct hsd_backend *be, float *dst, const void *src,
                                    size_t count) {
    if (E(be)->mode != EMU_EAGER)
        return hsd_fail(HSD_ERR_INTERNAL, "cuda-emulated: %s between graph_begin and graph_end",
                        "download");
    if (count && (!dst || !src)) return hsd_fail(HSD_ERR_INVALID_ARG, "download: NULL buffer");
    const uint16_t *h = src;
    for (size_t i = 0; i < count; i++) dst[i] = hsd_f16_to_f32(h[i]);
    if (count) hsd_xfer_down(&be->xfer, count * sizeof *h);
    return HSD_OK;
}

static enum hsd_status emu_download_f32(struct hsd_backend *be, float *dst, const void *src,
                                        size_t count) {
    if (E(be)->mode != EMU_EAGER)
        return hsd_fail(HSD_ERR_INTERNAL, "cuda-emulated: %s between graph_begin and graph_end",
                        "download");
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
// Every registry-backed op of the table: X(op, OP, params).
#define EMU_OPS(X)                                                   \
    X(conv2d, CONV2D, hsd_conv2d_params)                             \
    X(group_norm, GROUP_NORM, hsd_group_norm_params)                 \
    X(layer_norm, LAYER_NORM, hsd_layer_norm_params)                 \
    X(attention, ATTENTION, hsd_attention_params)                    \
    X(geglu, GEGLU, hsd_geglu_params)                                \
    X(upsample_nearest2x, UPSAMPLE_NEAREST2X, hsd_upsample_params)   \
    X(concat_channels, CONCAT_CHANNELS, hsd_concat_params)           \
    X(add_bias, ADD_BIAS, hsd_add_bias_params)                       \
    X(add, ADD, hsd_eltwise_params)                                  \
    X(silu, SILU, hsd_eltwise_params)                                \
    X(gelu, GELU, hsd_eltwise_params)                                \
    X(quick_gelu, QUICK_GELU, hsd_eltwise_params)                    \
    X(relu, RELU, hsd_eltwise_params)                                \
    X(tanh_clamp, TANH_CLAMP, hsd_tanh_clamp_params)                 \
    X(timestep_embedding, TIMESTEP_EMBEDDING, hsd_timestep_embedding_params) \
    X(step_input, STEP_INPUT, hsd_step_input_params)                 \
    X(cfg_combine, CFG_COMBINE, hsd_cfg_combine_params)              \
    X(sampler_step, SAMPLER_STEP, hsd_sampler_step_params)           \
    X(step_gather, STEP_GATHER, hsd_step_gather_params)              \
    X(step_scatter, STEP_SCATTER, hsd_step_scatter_params)           \
    X(lora, LORA, hsd_lora_params)

#define EMU_RUN(op, OP, params)                                                       \
    static enum hsd_status run_##op(struct emu *e, const struct params *p) {          \
        e->calls[HSD_EMU_##OP]++;                                                     \
        hsd_clear_error();                                                            \
        enum hsd_status s = hsd_cuda_##op(p, (cudaStream_t)0);                        \
        if (s == HSD_OK && hsd_last_error()[0]) {                                     \
            e->fallbacks[HSD_EMU_##OP]++;                                             \
            hsd_clear_error();                                                        \
        }                                                                             \
        return s;                                                                     \
    }
EMU_OPS(EMU_RUN)
#undef EMU_RUN
static enum hsd_status run_linear(struct emu *e, const struct hsd_linear_params *p);
static enum hsd_status record(struct emu *e, enum hsd_emu_op op, const void *p, size_t size);

// Eager: run now. Between graph_begin and graph_end (graphs on): recorded
// on a capture, nothing on a replay; graph_end runs the recording.
#define EMU_OP(op, OP, params)                                                         \
    static enum hsd_status emu_##op(struct hsd_backend *be, const struct params *p) { \
        struct emu *e = E(be);                                                         \
        if (e->mode != EMU_EAGER) return record(e, HSD_EMU_##OP, p, sizeof *p);       \
        return run_##op(e, p);                                                         \
    }
EMU_OPS(EMU_OP)
EMU_OP(linear, LINEAR, hsd_linear_params)
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
static enum hsd_status run_linear(struct emu *e, const struct hsd_linear_params *p) {
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

// ---- graphs (hsd_backend_emu_graphs: cu_graph_begin/cu_graph_end's modes) ----------

static enum hsd_status record(struct emu *e, enum hsd_emu_op op, const void *p, size_t size) {
    struct emu_graph *g = e->cur;
    if (e->mode == EMU_REPLAY) return HSD_OK;
    if (g->n == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 256;
        struct emu_call *na = realloc(g->ops, cap * sizeof *na);
        if (!na) return hsd_fail(HSD_ERR_NOMEM, "cuda-emulated: graph recording");
        g->ops = na;
        g->cap = cap;
    }
    struct emu_call *c = &g->ops[g->n++];
    c->op = op;
    memcpy(&c->p, p, size);
    return HSD_OK;
}

static enum hsd_status replay(struct emu *e, const struct emu_graph *g) {
    enum hsd_status s = HSD_OK;
    for (size_t i = 0; i < g->n && !s; i++) {
        const struct emu_call *c = &g->ops[i];
        switch (c->op) {
#define EMU_CASE(op, OP, params) \
    case HSD_EMU_##OP: s = run_##op(e, &c->p.op); break;
            EMU_OPS(EMU_CASE)
#undef EMU_CASE
        case HSD_EMU_LINEAR: s = run_linear(e, &c->p.linear); break;
        case HSD_EMU_OP_COUNT: s = hsd_fail(HSD_ERR_INTERNAL, "cuda-emulated: bad recording");
        }
    }
    return s;
}

static int key_eq(const struct hsd_graph_key *a, const struct hsd_graph_key *b) {
    return a->model == b->model && a->arena == b->arena && a->n == b->n && a->h == b->h &&
           a->w == b->w && a->t_ctx == b->t_ctx && a->io == b->io &&
           a->whole_step == b->whole_step;
}

static enum hsd_status emu_graph_begin(struct hsd_backend *be, const struct hsd_graph_key *key) {
    struct emu *e = E(be);
    if (e->mode != EMU_EAGER) return hsd_fail(HSD_ERR_INTERNAL, "cuda-emulated: nested graph_begin");
    struct emu_graph *g = NULL;
    for (int i = 0; i < e->n_graphs && !g; i++)
        if (key_eq(&e->graphs[i].key, key)) g = &e->graphs[i];
    if (!g) {
        if (e->n_graphs == EMU_MAX_GRAPHS)
            return hsd_fail(HSD_ERR_INTERNAL, "cuda-emulated: more than %d graphs", EMU_MAX_GRAPHS);
        g = &e->graphs[e->n_graphs++];
        g->key = *key;
    }
    e->cur = g;
    if (g->recorded) e->mode = EMU_REPLAY;
    else if (++g->calls >= 2) e->mode = EMU_CAPTURE, g->n = 0;
    return HSD_OK;
}

static enum hsd_status emu_graph_end(struct hsd_backend *be, int ok) {
    struct emu *e = E(be);
    enum emu_mode mode = e->mode;
    struct emu_graph *g = e->cur;
    e->mode = EMU_EAGER;
    e->cur = NULL;
    if (mode == EMU_EAGER || !ok) {
        if (mode == EMU_CAPTURE) g->n = 0;
        return HSD_OK;
    }
    if (mode == EMU_CAPTURE) {
        g->recorded = 1;
        e->captures++;
    } else {
        e->replays++;
    }
    return replay(e, g);  // the launch
}

void hsd_backend_emu_graphs(struct hsd_backend *be, int on) {
    struct emu *e = E(be);
    e->ops.graph_begin = on ? emu_graph_begin : NULL;
    e->ops.graph_end = on ? emu_graph_end : NULL;
}

void hsd_backend_emu_graph_stats(const struct hsd_backend *be, long *graphs, long *captures,
                                 long *replays) {
    const struct emu *e = (const struct emu *)be;
    *graphs = e->n_graphs;
    *captures = e->captures;
    *replays = e->replays;
}

// ---- lifetime -----------------------------------------------------------------------

static void emu_destroy(struct hsd_backend *be) {
    struct emu *e = E(be);
    for (int i = 0; i < e->n_graphs; i++) free(e->graphs[i].ops);
    free(e);
}

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
    .lora = emu_lora,
};

enum hsd_status hsd_backend_emu_create(struct hsd_backend **out) {
    if (!out) return hsd_fail(HSD_ERR_INVALID_ARG, "cuda-emulated backend: NULL output pointer");
    struct emu *e = calloc(1, sizeof *e);
    *out = NULL;
    if (!e) return hsd_fail(HSD_ERR_NOMEM, "cuda-emulated backend: out of memory");
    e->ops = k_emu_ops;
    e->be.ops = &e->ops;
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
