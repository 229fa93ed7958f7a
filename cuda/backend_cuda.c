// The CUDA backend (backend_cuda.h): creation, memory, transfers, CUDA
// graphs and the op table. Linear layers: backend_cuda_linear.c (cuBLASLt);
// weight broadcast: backend_cuda_nccl.c; every other op: the production
// kernel of the registry (registry.h), conv2d against cuDNN per shape.
//
// Modes (backend.h graph_begin/graph_end), per bucket key:
//   1st call: EAGER   (plans cuBLASLt shapes, measures conv choices)
//   2nd call: CAPTURE (cudaStreamBeginCapture ... EndCapture, instantiate,
//                      launch) -- recording needs every plan made already
//   later:    REPLAY  (ops return at once, graph_end launches the graph)
// so a step costs one cudaGraphLaunch instead of ~1000 kernel launches.
//
// Test: tests/unit/test_backend_cuda.c (label gpu): every model on this
// backend against the CPU backend, graph replays against eager runs.
#include "backend_cuda.h"

#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cuda_internal.h"
#include "conv2d_cudnn.h"
#include "core/dtype.h"
#include "core/log.h"
#include "core/plan_stats.h"
#include "device.h"
#include "registry.h"

enum {
    STAGE_BYTES = 32 << 20,     // pinned staging; bigger transfers go in chunks
    CUDNN_WORKSPACE = 64 << 20,
    CONV_TUNE_REPS = 3,
};

enum hsd_status hsd_cuda_be_lost(struct cuda_impl *c, const char *what, cudaError_t e) {
    if (!c->lost) {
        c->lost = 1;
        snprintf(c->lost_msg, sizeof c->lost_msg, "%s: %s", what, cudaGetErrorString(e));
        HSD_WARN("cuda:%d: device error, the device is lost for this process: %s", c->device,
                 c->lost_msg);
    }
    return hsd_fail(HSD_ERR_DEVICE, "cuda:%d: %s: %s", c->device, what, cudaGetErrorString(e));
}

// Entry of every call that touches the device: the lost check and the
// calling thread's current device (loading and serving threads differ).
static enum hsd_status enter(struct cuda_impl *c) {
    if (c->lost) return hsd_fail(HSD_ERR_DEVICE, "cuda:%d lost: %s", c->device, c->lost_msg);
    cudaError_t e = cudaSetDevice(c->device);
    if (e != cudaSuccess) return hsd_cuda_be_lost(c, "cudaSetDevice", e);
    return HSD_OK;
}

// ---- memory -------------------------------------------------------------------------

static void *cu_alloc(struct hsd_backend *be, size_t bytes) {
    struct cuda_impl *c = be->impl;
    if (enter(c)) return NULL;
    if (c->mode == CUDA_CAPTURE) {
        hsd_fail(HSD_ERR_INTERNAL, "cuda: allocation inside a graph capture");
        return NULL;
    }
    if (c->n_allocs == c->cap_allocs) {
        size_t cap = c->cap_allocs ? 2 * c->cap_allocs : 1024;
        struct cuda_alloc *na = realloc(c->allocs, cap * sizeof *na);
        if (!na) {
            hsd_fail(HSD_ERR_NOMEM, "cuda: allocation table");
            return NULL;
        }
        c->allocs = na;
        c->cap_allocs = cap;
    }
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 256);
    if (e != cudaSuccess) {
        cudaGetLastError();  // out of memory is not sticky
        size_t free_b = 0, total = 0;
        cudaMemGetInfo(&free_b, &total);
        hsd_fail(HSD_ERR_NOMEM, "cuda:%d: cannot allocate %zu MB (%zu MB free of %zu): %s",
                 c->device, bytes >> 20, free_b >> 20, total >> 20, cudaGetErrorString(e));
        return NULL;
    }
    c->allocs[c->n_allocs++] = (struct cuda_alloc){p, bytes};
    c->bytes_in_use += bytes;
    if (c->bytes_in_use > c->peak_bytes) c->peak_bytes = c->bytes_in_use;
    return p;
}

static void cu_free(struct hsd_backend *be, void *p) {
    struct cuda_impl *c = be->impl;
    if (!p) return;
    for (size_t i = c->n_allocs; i-- > 0;) {
        if (c->allocs[i].p == p) {
            c->bytes_in_use -= c->allocs[i].bytes;
            c->allocs[i] = c->allocs[--c->n_allocs];
            break;
        }
    }
    cudaSetDevice(c->device);
    cudaFree(p);
}

// Waits until the staging buffer's queued copies are done.
static enum hsd_status stage_drain(struct cuda_impl *c) {
    if (!c->stage_used) return HSD_OK;
    cudaError_t e = cudaStreamSynchronize(c->stream);
    if (e != cudaSuccess) return hsd_cuda_be_lost(c, "cudaStreamSynchronize", e);
    c->stage_used = 0;
    return HSD_OK;
}

static enum hsd_status record(struct cuda_impl *c, void *dst, size_t bytes) {
    if (!c->recording) return HSD_OK;
    if (c->n_rec == c->cap_rec) {
        size_t cap = c->cap_rec ? 2 * c->cap_rec : 1024;
        struct cuda_alloc *nr = realloc(c->rec, cap * sizeof *nr);
        if (!nr) return hsd_fail(HSD_ERR_NOMEM, "cuda: upload record");
        c->rec = nr;
        c->cap_rec = cap;
    }
    c->rec[c->n_rec++] = (struct cuda_alloc){dst, bytes};
    return HSD_OK;
}

// count values of elem bytes each, converted on the host by `conv`
// (NULL: raw copy), through the pinned staging, queued on the stream.
static enum hsd_status upload(struct hsd_backend *be, void *dst, const float *src, size_t count,
                              size_t elem) {
    struct cuda_impl *c = be->impl;
    if (count && !dst) return hsd_fail(HSD_ERR_INVALID_ARG, "upload: NULL buffer");
    if (c->mode != CUDA_EAGER)
        return hsd_fail(HSD_ERR_INTERNAL, "cuda: upload between graph_begin and graph_end");
    enum hsd_status s = enter(c);
    if (s) return s;
    if ((s = record(c, dst, count * elem))) return s;
    if (be->weight_mode == HSD_WEIGHTS_RECEIVE || !count) return HSD_OK;
    if (!src) return hsd_fail(HSD_ERR_INVALID_ARG, "upload: NULL source");
    hsd_xfer_up(&be->xfer, count * elem);
    size_t per = c->stage_cap / elem;
    for (size_t done = 0; done < count;) {
        size_t n = count - done < per ? count - done : per;
        if (c->stage_used + n * elem > c->stage_cap && (s = stage_drain(c))) return s;
        unsigned char *st = c->stage + c->stage_used;
        if (elem == 2) {
            uint16_t *h = (uint16_t *)st;
            for (size_t i = 0; i < n; i++) h[i] = hsd_f32_to_f16(src[done + i]);
        } else {
            memcpy(st, src + done, n * elem);
        }
        cudaError_t e = cudaMemcpyAsync((char *)dst + done * elem, st, n * elem,
                                        cudaMemcpyHostToDevice, c->stream);
        if (e != cudaSuccess) return hsd_cuda_be_lost(c, "upload cudaMemcpyAsync", e);
        c->stage_used += (n * elem + 255) & ~(size_t)255;
        if (c->stage_used > c->stage_cap) c->stage_used = c->stage_cap;
        done += n;
    }
    return HSD_OK;
}

static enum hsd_status cu_upload(struct hsd_backend *be, void *dst, const float *src,
                                 size_t count) {
    return upload(be, dst, src, count, 2);
}

static enum hsd_status cu_upload_f32(struct hsd_backend *be, void *dst, const float *src,
                                     size_t count) {
    return upload(be, dst, src, count, 4);
}

// count values of elem bytes each (2: fp16, widened on the host; 4: fp32
// as is) through the pinned staging, synchronously.
static enum hsd_status download(struct hsd_backend *be, float *dst, const void *src, size_t count,
                                size_t elem) {
    struct cuda_impl *c = be->impl;
    if (count && (!dst || !src)) return hsd_fail(HSD_ERR_INVALID_ARG, "download: NULL buffer");
    if (c->mode != CUDA_EAGER)
        return hsd_fail(HSD_ERR_INTERNAL, "cuda: download between graph_begin and graph_end");
    enum hsd_status s = enter(c);
    if (s) return s;
    if ((s = stage_drain(c))) return s;
    if (count) hsd_xfer_down(&be->xfer, count * elem);
    size_t per = c->stage_cap / elem;
    for (size_t done = 0; done < count;) {
        size_t n = count - done < per ? count - done : per;
        cudaError_t e = cudaMemcpyAsync(c->stage, (const char *)src + done * elem, n * elem,
                                        cudaMemcpyDeviceToHost, c->stream);
        if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
        if (e != cudaSuccess) return hsd_cuda_be_lost(c, "download", e);
        if (elem == 2) {
            const uint16_t *h = (const uint16_t *)c->stage;
            for (size_t i = 0; i < n; i++) dst[done + i] = hsd_f16_to_f32(h[i]);
        } else {
            memcpy(dst + done, c->stage, n * elem);
        }
        done += n;
    }
    return HSD_OK;
}

static enum hsd_status cu_download(struct hsd_backend *be, float *dst, const void *src,
                                   size_t count) {
    return download(be, dst, src, count, 2);
}

static enum hsd_status cu_download_f32(struct hsd_backend *be, float *dst, const void *src,
                                       size_t count) {
    return download(be, dst, src, count, 4);
}

static enum hsd_status cu_synchronize(struct hsd_backend *be) {
    struct cuda_impl *c = be->impl;
    enum hsd_status s = enter(c);
    if (s) return s;
    cudaError_t e = cudaStreamSynchronize(c->stream);
    if (e != cudaSuccess) return hsd_cuda_be_lost(c, "cudaStreamSynchronize", e);
    c->stage_used = 0;
    return HSD_OK;
}

// ---- graphs -------------------------------------------------------------------------

static int key_eq(const struct hsd_graph_key *a, const struct hsd_graph_key *b) {
    return a->model == b->model && a->arena == b->arena && a->n == b->n && a->h == b->h &&
           a->w == b->w && a->t_ctx == b->t_ctx && a->io == b->io && a->whole_step == b->whole_step;
}

static struct cuda_graph *graph_slot(struct cuda_impl *c, const struct hsd_graph_key *key) {
    for (int i = 0; i < c->n_graphs; i++)
        if (key_eq(&c->graphs[i].key, key)) return &c->graphs[i];
    struct cuda_graph *g;
    if (c->n_graphs < CUDA_MAX_GRAPHS) {
        g = &c->graphs[c->n_graphs++];
    } else {
        // Evict the least recently used bucket (a new arena address also
        // retires the graphs recorded on the old one this way).
        g = &c->graphs[0];
        for (int i = 1; i < c->n_graphs; i++)
            if (c->graphs[i].last_use < g->last_use) g = &c->graphs[i];
        if (g->exec) cudaGraphExecDestroy(g->exec);
    }
    memset(g, 0, sizeof *g);
    g->key = *key;
    return g;
}

static enum hsd_status cu_graph_begin(struct hsd_backend *be, const struct hsd_graph_key *key) {
    struct cuda_impl *c = be->impl;
    if (c->mode != CUDA_EAGER) return hsd_fail(HSD_ERR_INTERNAL, "cuda: nested graph_begin");
    enum hsd_status s = enter(c);
    if (s) return s;
    c->cur = NULL;
    if (!c->graphs_enabled) return HSD_OK;
    struct cuda_graph *g = graph_slot(c, key);
    g->calls++;
    g->last_use = ++c->tick;
    c->cur = g;
    if (g->exec) {
        c->mode = CUDA_REPLAY;
    } else if (g->calls >= 2) {
        cudaError_t e = cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal);
        if (e != cudaSuccess) return hsd_cuda_be_lost(c, "cudaStreamBeginCapture", e);
        c->mode = CUDA_CAPTURE;
    }
    return HSD_OK;
}

static enum hsd_status cu_graph_end(struct hsd_backend *be, int ok) {
    struct cuda_impl *c = be->impl;
    enum cuda_mode mode = c->mode;
    struct cuda_graph *g = c->cur;
    c->mode = CUDA_EAGER;
    c->cur = NULL;
    if (mode == CUDA_EAGER || !g) return HSD_OK;
    cudaError_t e;
    if (mode == CUDA_CAPTURE) {
        cudaGraph_t graph = NULL;
        e = cudaStreamEndCapture(c->stream, &graph);
        if (e == cudaSuccess && ok) e = cudaGraphInstantiate(&g->exec, graph, 0);
        if (graph) cudaGraphDestroy(graph);
        if (e != cudaSuccess || !ok) {
            // A capture that failed is not a lost device: errors of capture
            // are not sticky. Stop recording on this backend (an op that
            // cannot be captured would fail every time) and let the caller
            // run the ops again as they come.
            cudaGetLastError();
            g->exec = NULL;
            c->graphs_enabled = 0;
            HSD_WARN("cuda:%d: recording a CUDA graph failed (%s); running ops one by one "
                     "from now on",
                     c->device, e != cudaSuccess ? cudaGetErrorString(e) : hsd_last_error());
            return hsd_fail(HSD_ERR_UNSUPPORTED, "cuda:%d: graph recording failed", c->device);
        }
        c->recorded++;
        hsd_plan_stats_add(HSD_PLAN_GRAPH_CAPTURE);
        HSD_DEBUG("cuda:%d: recorded a graph for batch %d, %dx%d, context %d", c->device,
                  g->key.n, g->key.h, g->key.w, g->key.t_ctx);
    } else if (!ok) {
        return HSD_OK;
    } else {
        c->replays++;
    }
    e = cudaGraphLaunch(g->exec, c->stream);
    if (e != cudaSuccess) return hsd_cuda_be_lost(c, "cudaGraphLaunch", e);
    return HSD_OK;
}

// ---- ops ----------------------------------------------------------------------------

// Every registry-backed op: nothing to do on a replay; else the device's
// production kernel on the stream (validation inside the launcher).
#define CUDA_OP(op, params)                                                               \
    static enum hsd_status cu_##op(struct hsd_backend *be, const struct params *p) {      \
        struct cuda_impl *c = be->impl;                                                   \
        if (c->mode == CUDA_REPLAY) return HSD_OK;                                        \
        if (c->lost)                                                                      \
            return hsd_fail(HSD_ERR_DEVICE, "cuda:%d lost: %s", c->device, c->lost_msg); \
        return hsd_cuda_##op(p, c->stream);                                               \
    }
CUDA_OP(attention, hsd_attention_params)
CUDA_OP(group_norm, hsd_group_norm_params)
CUDA_OP(layer_norm, hsd_layer_norm_params)
CUDA_OP(geglu, hsd_geglu_params)
CUDA_OP(upsample_nearest2x, hsd_upsample_params)
CUDA_OP(concat_channels, hsd_concat_params)
CUDA_OP(add_bias, hsd_add_bias_params)
CUDA_OP(add, hsd_eltwise_params)
CUDA_OP(silu, hsd_eltwise_params)
CUDA_OP(gelu, hsd_eltwise_params)
CUDA_OP(quick_gelu, hsd_eltwise_params)
CUDA_OP(relu, hsd_eltwise_params)
CUDA_OP(tanh_clamp, hsd_tanh_clamp_params)
CUDA_OP(timestep_embedding, hsd_timestep_embedding_params)
CUDA_OP(step_input, hsd_step_input_params)
CUDA_OP(cfg_combine, hsd_cfg_combine_params)
CUDA_OP(sampler_step, hsd_sampler_step_params)
CUDA_OP(step_gather, hsd_step_gather_params)
CUDA_OP(step_scatter, hsd_step_scatter_params)
CUDA_OP(lora, hsd_lora_params)
#undef CUDA_OP

static struct cuda_conv_shape *conv_shape(struct cuda_impl *c, const struct hsd_conv2d_params *p) {
    int hb = p->bias != NULL, hr = p->residual != NULL;
    for (int i = 0; i < c->n_convs; i++) {
        struct cuda_conv_shape *s = &c->convs[i];
        if (s->n == p->n && s->h == p->h && s->w == p->w && s->ci == p->ci && s->co == p->co &&
            s->kh == p->kh && s->kw == p->kw && s->stride == p->stride && s->pad == p->pad &&
            s->pad_bottom == p->pad_bottom && s->pad_right == p->pad_right && s->has_bias == hb &&
            s->has_res == hr)
            return s;
    }
    if (c->n_convs == c->cap_convs) {
        int cap = c->cap_convs ? 2 * c->cap_convs : 64;
        struct cuda_conv_shape *nc = realloc(c->convs, (size_t)cap * sizeof *nc);
        if (!nc) return NULL;
        c->convs = nc;
        c->cap_convs = cap;
    }
    struct cuda_conv_shape *s = &c->convs[c->n_convs++];
    *s = (struct cuda_conv_shape){p->n, p->h, p->w, p->ci, p->co, p->kh, p->kw, p->stride,
                                  p->pad, p->pad_bottom, p->pad_right, hb, hr, 0};
    return s;
}

typedef enum hsd_status (*conv_fn)(struct cuda_impl *c, const struct hsd_conv2d_params *p);

static enum hsd_status conv_hsd(struct cuda_impl *c, const struct hsd_conv2d_params *p) {
    return hsd_cuda_conv2d(p, c->stream);
}

static enum hsd_status conv_cudnn(struct cuda_impl *c, const struct hsd_conv2d_params *p) {
    return hsd_cudnn_conv2d(c->cudnn, p);
}

// Median-free mean of CONV_TUNE_REPS runs after one warm-up, into a scratch
// output (the residual, possibly `out`, is only read), in ms; < 0 on failure.
static float conv_time(struct cuda_impl *c, const struct hsd_conv2d_params *p, conv_fn fn) {
    struct hsd_conv2d_params q = *p;
    q.out = c->tune_buf;
    cudaEvent_t a = NULL, b = NULL;
    float ms = -1.0f;
    if (cudaEventCreate(&a) != cudaSuccess || cudaEventCreate(&b) != cudaSuccess) goto done;
    if (fn(c, &q)) goto done;
    cudaEventRecord(a, c->stream);
    for (int i = 0; i < CONV_TUNE_REPS; i++)
        if (fn(c, &q)) goto done;
    cudaEventRecord(b, c->stream);
    if (cudaEventSynchronize(b) != cudaSuccess) goto done;
    if (cudaEventElapsedTime(&ms, a, b) != cudaSuccess) ms = -1.0f;
    else ms /= CONV_TUNE_REPS;
done:
    if (a) cudaEventDestroy(a);
    if (b) cudaEventDestroy(b);
    hsd_clear_error();
    return ms;
}

static enum conv_choice conv_decide(struct cuda_impl *c, const struct hsd_conv2d_params *p) {
    if (!c->cudnn || c->conv_mode == CONV_MODE_HSD || !hsd_cudnn_conv_supports(p))
        return CONV_HSD;
    if (c->conv_mode == CONV_MODE_CUDNN) return CONV_CUDNN;
    int ho = (p->h + 2 * p->pad + p->pad_bottom - p->kh) / p->stride + 1;
    int wo = (p->w + 2 * p->pad + p->pad_right - p->kw) / p->stride + 1;
    size_t bytes = (size_t)p->n * ho * wo * p->co * 2;
    if (bytes > c->tune_bytes) {
        if (c->tune_buf) cudaFree(c->tune_buf);
        c->tune_buf = NULL;
        c->tune_bytes = 0;
        if (cudaMalloc(&c->tune_buf, bytes) != cudaSuccess) {
            cudaGetLastError();
            return CONV_HSD;
        }
        c->tune_bytes = bytes;
    }
    float t_hsd = conv_time(c, p, conv_hsd), t_dnn = conv_time(c, p, conv_cudnn);
    enum conv_choice ch = t_dnn > 0 && (t_hsd < 0 || t_dnn < t_hsd) ? CONV_CUDNN : CONV_HSD;
    HSD_DEBUG("cuda:%d: conv %dx%dx%dx%d -> %d k%d s%d: hsd %.3f ms, cuDNN %.3f ms: %s",
              c->device, p->n, p->h, p->w, p->ci, p->co, p->kh, p->stride, t_hsd, t_dnn,
              ch == CONV_CUDNN ? "cuDNN" : "hsd");
    return ch;
}

static enum hsd_status cu_conv2d(struct hsd_backend *be, const struct hsd_conv2d_params *p) {
    struct cuda_impl *c = be->impl;
    if (c->mode == CUDA_REPLAY) return HSD_OK;
    if (c->lost) return hsd_fail(HSD_ERR_DEVICE, "cuda:%d lost: %s", c->device, c->lost_msg);
    if (!c->cudnn || c->conv_mode == CONV_MODE_HSD) return hsd_cuda_conv2d(p, c->stream);
    struct cuda_conv_shape *s = conv_shape(c, p);
    if (!s) return hsd_fail(HSD_ERR_NOMEM, "cuda: conv shape table");
    // Decided in an eager run only: a capture cannot time anything.
    if (!s->choice) {
        if (c->mode == CUDA_CAPTURE) return hsd_cuda_conv2d(p, c->stream);
        s->choice = conv_decide(c, p);
        hsd_plan_stats_add(HSD_PLAN_CONV_TUNE);
    }
    return s->choice == CONV_CUDNN ? hsd_cudnn_conv2d(c->cudnn, p) : hsd_cuda_conv2d(p, c->stream);
}

// ---- lifetime -----------------------------------------------------------------------

static void cu_destroy(struct hsd_backend *be) {
    if (!be) return;
    struct cuda_impl *c = be->impl;
    if (c) {
        cudaSetDevice(c->device);
        if (c->stream) cudaStreamSynchronize(c->stream);
        for (int i = 0; i < c->n_graphs; i++)
            if (c->graphs[i].exec) cudaGraphExecDestroy(c->graphs[i].exec);
        hsd_cuda_be_linear_destroy(c);
        if (c->cudnn) hsd_cudnn_conv_destroy(c->cudnn);
        if (c->tune_buf) cudaFree(c->tune_buf);
        for (size_t i = 0; i < c->n_allocs; i++) cudaFree(c->allocs[i].p);
        if (c->stage) cudaFreeHost(c->stage);
        if (c->stream) cudaStreamDestroy(c->stream);
        free(c->allocs);
        free(c->convs);
        free(c->rec);
        free(c);
    }
    free(be);
}

static void cu_memory(const struct hsd_backend *be, size_t *used, size_t *total) {
    const struct cuda_impl *c = be->impl;
    *used = c->bytes_in_use + c->lt_ws_bytes + c->tune_bytes;
    *total = c->total_mem;
}

static const struct hsd_backend_ops k_cuda_ops = {
    .name = "cuda",
    .destroy = cu_destroy,
    .alloc = cu_alloc,
    .free = cu_free,
    .upload = cu_upload,
    .download = cu_download,
    .upload_f32 = cu_upload_f32,
    .download_f32 = cu_download_f32,
    .synchronize = cu_synchronize,
    .graph_begin = cu_graph_begin,
    .graph_end = cu_graph_end,
    .memory = cu_memory,
    .conv2d = cu_conv2d,
    .linear = hsd_cuda_be_linear,
    .group_norm = cu_group_norm,
    .layer_norm = cu_layer_norm,
    .attention = cu_attention,
    .geglu = cu_geglu,
    .upsample_nearest2x = cu_upsample_nearest2x,
    .concat_channels = cu_concat_channels,
    .add_bias = cu_add_bias,
    .add = cu_add,
    .silu = cu_silu,
    .gelu = cu_gelu,
    .quick_gelu = cu_quick_gelu,
    .relu = cu_relu,
    .tanh_clamp = cu_tanh_clamp,
    .timestep_embedding = cu_timestep_embedding,
    .step_input = cu_step_input,
    .cfg_combine = cu_cfg_combine,
    .sampler_step = cu_sampler_step,
    .step_gather = cu_step_gather,
    .step_scatter = cu_step_scatter,
    .lora = cu_lora,
};

static int env_flag(const char *name, int dflt) {
    const char *v = getenv(name);
    if (!v || !*v) return dflt;
    return strcmp(v, "0") != 0;
}

enum hsd_status hsd_backend_cuda_create(struct hsd_backend **out, int device) {
    if (!out) return hsd_fail(HSD_ERR_INVALID_ARG, "cuda backend: NULL output pointer");
    *out = NULL;
    struct hsd_cuda_probe probe;
    enum hsd_status s = hsd_cuda_probe(&probe);
    if (s) return s;
    const int count = probe.count;
    if (count == 0) return hsd_fail(HSD_ERR_NO_DEVICE, "cuda:%d: %s", device, probe.why);
    if (device < 0 || device >= count)
        return hsd_fail(HSD_ERR_NO_DEVICE, "cuda:%d: no such GPU (this machine has %d: 0..%d)",
                        device, count, count - 1);
    struct hsd_cuda_device_info info;
    if ((s = hsd_cuda_device_info(device, &info))) return s;
    if (info.sm_major * 10 + info.sm_minor < 80)
        return hsd_fail(HSD_ERR_UNSUPPORTED,
                        "cuda:%d %s: compute capability %d.%d; the kernels need 8.0 or newer",
                        device, info.name, info.sm_major, info.sm_minor);
    struct hsd_backend *be = calloc(1, sizeof *be);
    struct cuda_impl *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return hsd_fail(HSD_ERR_NOMEM, "cuda backend: out of memory");
    }
    be->ops = &k_cuda_ops;
    be->act_size = 2;  // fp16
    be->kind = HSD_BACKEND_CUDA;
    be->device = device;
    snprintf(be->desc, sizeof be->desc, "cuda:%d %.100s", device, info.name);
    be->impl = c;
    c->device = device;
    c->total_mem = info.total_mem;
    c->graphs_enabled = env_flag("HSD_CUDA_GRAPHS", 1);
    const char *cm = getenv("HSD_CUDA_CONV");
    c->conv_mode = !cm || !*cm || !strcmp(cm, "auto") ? CONV_MODE_AUTO
                   : !strcmp(cm, "hsd")               ? CONV_MODE_HSD
                   : !strcmp(cm, "cudnn")             ? CONV_MODE_CUDNN
                                                      : -1;
    if ((int)c->conv_mode < 0) {
        s = hsd_fail(HSD_ERR_INVALID_ARG, "HSD_CUDA_CONV='%s': expected auto, hsd or cudnn", cm);
        goto fail;
    }
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaMallocHost((void **)&c->stage, STAGE_BYTES);
    if (e != cudaSuccess) {
        s = hsd_fail(HSD_ERR_DEVICE, "cuda:%d: set-up: %s", device, cudaGetErrorString(e));
        goto fail;
    }
    c->stage_cap = STAGE_BYTES;
    if ((s = hsd_cuda_be_linear_init(c))) goto fail;
    if (c->conv_mode != CONV_MODE_HSD) {
        if (hsd_cudnn_conv_create(&c->cudnn, c->stream, CUDNN_WORKSPACE)) {
            if (c->conv_mode == CONV_MODE_CUDNN) {
                s = hsd_fail_context(HSD_ERR_UNSUPPORTED, "HSD_CUDA_CONV=cudnn: ");
                goto fail;
            }
            HSD_INFO("cuda:%d: conv runs on hsd kernels only (%s)", device, hsd_last_error());
            hsd_clear_error();
            c->cudnn = NULL;
        }
    }
    HSD_INFO("cuda:%d: %s, %d SMs, %zu MB, graphs %s, conv %s", device, info.name, info.sm_count,
             info.total_mem >> 20, c->graphs_enabled ? "on" : "off",
             !c->cudnn ? "hsd" : c->conv_mode == CONV_MODE_AUTO ? "hsd|cuDNN measured" : "cuDNN");
    *out = be;
    return HSD_OK;
fail:
    cu_destroy(be);
    return s;
}

void hsd_backend_cuda_record_uploads(struct hsd_backend *be, int on) {
    struct cuda_impl *c = be->impl;
    c->recording = on;
    if (on) c->n_rec = 0;
}

size_t hsd_backend_cuda_bytes_in_use(const struct hsd_backend *be) {
    const struct cuda_impl *c = be->impl;
    return c->bytes_in_use + c->lt_ws_bytes + c->tune_bytes;
}

size_t hsd_backend_cuda_peak_bytes(const struct hsd_backend *be) {
    const struct cuda_impl *c = be->impl;
    return c->peak_bytes + c->lt_ws_bytes + c->tune_bytes;
}

void hsd_backend_cuda_graph_stats(const struct hsd_backend *be, int *recorded, long *replays) {
    const struct cuda_impl *c = be->impl;
    if (recorded) *recorded = c->recorded;
    if (replays) *replays = c->replays;
}
