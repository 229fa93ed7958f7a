// cuDNN conv2d: see conv2d_cudnn.h for the API and the rules of
// hsd_cudnn_conv_supports().
//
// One call per conv: cudnnConvolutionBiasActivationForward (legacy
// cudnn_cnn API, still in cuDNN 9.x: cudnn_cnn.h), which computes
//   y = act(alpha1 * conv(x, w) + alpha2 * z + bias)
// with act = CUDNN_ACTIVATION_IDENTITY, alpha1 = 1, z = residual and
// alpha2 = 1. The residual may be `out` itself (z == y): each output
// element is read and written by the same epilogue thread.
// No residual: cudnnConvolutionForward with beta = 0, then cudnnAddTensor
// of the bias (when there is one). That call does not read y when beta is
// 0 (cuDNN Developer Guide, "Scaling Parameters": the output may then hold
// uninitialised data, NaN included). The fused call's z has no such
// promise for alpha2 = 0: passing the unwritten output as z, as before,
// lets an engine that reads z compute 0 * NaN = NaN.
// Descriptors: x [n, ci, h, w] and y [n, co, ho, wo] CUDNN_TENSOR_NHWC, the
// filter CUDNN_TENSOR_NHWC = KRSC = our weight [co, kh, kw, ci], bias
// [1, co, 1, 1]; all CUDNN_DATA_HALF; convolution CUDNN_CROSS_CORRELATION
// (PyTorch's conv), compute CUDNN_DATA_FLOAT, CUDNN_TENSOR_OP_MATH.
//
// Algorithm. cuDNN documents CUDNN_ACTIVATION_IDENTITY as working only with
// CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM in this call
// (cudnnActivationMode_t), so there is nothing to pick between: on the
// first call for a shape, cudnnGetConvolutionForwardAlgorithm_v7 (host
// heuristics, no device work, unlike cudnnFindConvolutionForwardAlgorithmEx,
// which runs and synchronizes) is asked whether IMPLICIT_PRECOMP_GEMM is
// supported for the descriptors, and cudnnGetConvolutionForwardWorkspaceSize
// what it needs; if it is unsupported or needs more than the context's
// workspace, the shape is cached as unsupported and the backend keeps ours.
// Rejected: cudnnConvolutionForward with v7's top algorithm followed by
// cudnnAddTensor for the bias and the residual: two or three passes over
// the output instead of a fused epilogue (and cudnnAddTensor is reported
// slow on NHWC); not measured. Convs without a residual do take two passes
// now (above), for correctness; the backend's per-shape timing against our
// kernel sees that cost.
//
// No bias: a zero bias buffer (fp16 zeros of at least co channels, owned by
// the context), so every conv is the same single fused call. It starts at
// 4096 channels (every SD 1.x/2.x/XL and VAE conv) and grows on the first
// call for a shape with more output channels; a replaced buffer is kept
// until destroy, since freeing it could wait on the device (cudaFree
// synchronizes) while a queued conv still reads it.
//
// How to test: ctest -R test_cuda_conv2d (needs a GPU; the cuDNN rows are
// "cudnn_fused" next to the registry versions).
// How to time: build/cuda/bench_kernels --op conv2d (row hsd_cudnn_conv2d).
#include "conv2d_cudnn.h"

#include <stdint.h>

#ifdef HSD_HAVE_CUDNN

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cudnn.h>

#include "conv2d.cuh"
#include "core/assert.h"

enum {
    K_ZERO_BIAS_INITIAL = 4096,  // channels
    K_MAX_RETIRED = 48,          // capacity doubles: 4096 << 48 is never reached
};

// What a shape's descriptors and algorithm depend on. Bias and residual
// presence do not change them (bias has its own [1, co, 1, 1] descriptor,
// z shares y's).
struct shape_key {
    int n, h, w, ci, co, kh, kw, stride, pad;
};

struct shape_entry {
    struct shape_key key;
    int usable;               // 0: cuDNN has no algorithm here; why says so
    char why[192];
    cudnnTensorDescriptor_t x, y, bias;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    cudnnConvolutionFwdAlgo_t algo;
};

struct hsd_cudnn_conv {
    cudnnHandle_t handle;
    cudaStream_t stream;
    int device;
    void *workspace;
    size_t workspace_bytes;
    cudnnActivationDescriptor_t identity;
    void *zero_bias;  // [zero_cap] fp16 zeros
    int zero_cap;
    void *retired[K_MAX_RETIRED];
    int n_retired;
    struct shape_entry *shapes;
    int n_shapes, cap_shapes;
};

// cuDNN failure: HSD_ERR_DEVICE with the call, cudnnGetErrorString's text
// and cuDNN's own last message (often names the offending descriptor).
static enum hsd_status cudnn_fail(cudnnStatus_t s, const char *call, const char *what) {
    char detail[256] = "";
    cudnnGetLastErrorString(detail, sizeof detail);
    return hsd_fail(HSD_ERR_DEVICE, "cudnn conv2d%s%s: %s: %s%s%s", what ? " " : "",
                    what ? what : "", call, cudnnGetErrorString(s), detail[0] ? ": " : "",
                    detail);
}

#define CUDNN_TRY(call, what)                                                 \
    do {                                                                      \
        cudnnStatus_t s_ = (call);                                            \
        if (s_ != CUDNN_STATUS_SUCCESS) return cudnn_fail(s_, #call, (what)); \
    } while (0)

#define CUDA_TRY(call)                                                                   \
    do {                                                                                 \
        cudaError_t e_ = (call);                                                         \
        if (e_ != cudaSuccess)                                                           \
            return hsd_fail(HSD_ERR_DEVICE, "cudnn conv2d: %s: %s", #call,               \
                            cudaGetErrorString(e_));                                     \
    } while (0)

static int not_supported(cudnnStatus_t s) {
    return CUDNN_STATUS_CATEGORY(s) == CUDNN_STATUS_NOT_SUPPORTED;
}

#endif  // HSD_HAVE_CUDNN

// ---- supports() -------------------------------------------------------------

static int aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

// The CPU backend's (and cuda/conv2d.cu's) rules. Returns 1 when valid,
// else records the message and returns 0.
static int params_valid(const struct hsd_conv2d_params *p, int record) {
    if (!p) {
        if (record) hsd_fail(HSD_ERR_INVALID_ARG, "cudnn conv2d: NULL params");
        return 0;
    }
    if (p->n <= 0 || p->h <= 0 || p->w <= 0 || p->ci <= 0 || p->co <= 0 || p->kh <= 0 ||
        p->kw <= 0 || p->stride <= 0 || p->pad < 0 || p->pad_bottom < 0 || p->pad_right < 0) {
        if (record)
            hsd_fail(HSD_ERR_INVALID_ARG,
                     "cudnn conv2d: bad dims n=%d h=%d w=%d ci=%d co=%d kh=%d kw=%d stride=%d "
                     "pad=%d pad_bottom=%d pad_right=%d (sizes and stride must be positive, pads "
                     ">= 0)",
                     p->n, p->h, p->w, p->ci, p->co, p->kh, p->kw, p->stride, p->pad,
                     p->pad_bottom, p->pad_right);
        return 0;
    }
    const long long hp = (long long)p->h + 2LL * p->pad + p->pad_bottom;
    const long long wp = (long long)p->w + 2LL * p->pad + p->pad_right;
    if (hp < p->kh || wp < p->kw) {
        if (record)
            hsd_fail(HSD_ERR_INVALID_ARG,
                     "cudnn conv2d: kernel %dx%d larger than padded input %lldx%lld (%dx%d, "
                     "pad %d)",
                     p->kh, p->kw, hp, wp, p->h, p->w, p->pad);
        return 0;
    }
    if (!p->out || !p->in || !p->weight) {
        if (record)
            hsd_fail(HSD_ERR_INVALID_ARG, "cudnn conv2d: out, in and weight must be non-NULL");
        return 0;
    }
    return 1;
}

// NULL when cuDNN's fused tensor-core path takes valid params, else why not.
static const char *why_unsupported(const struct hsd_conv2d_params *p) {
    if (p->pad_bottom != 0 || p->pad_right != 0)
        return "asymmetric padding (pad_bottom/pad_right): cuDNN pads both sides alike";
    if (p->ci % 8 != 0 || p->co % 8 != 0)
        return "ci or co not a multiple of 8 (cuDNN's fp16 tensor-core rule)";
    if (!aligned16(p->in) || !aligned16(p->weight) || !aligned16(p->out) ||
        (p->bias && !aligned16(p->bias)) || (p->residual && !aligned16(p->residual)))
        return "a pointer not 16-byte aligned (cuDNN's NHWC tensor-core rule)";
    // cuDNN's 4-d descriptors take int dims and strides.
    const long long hp = (long long)p->h + 2LL * p->pad, wp = (long long)p->w + 2LL * p->pad;
    const long long ho = (hp - p->kh) / p->stride + 1, wo = (wp - p->kw) / p->stride + 1;
    if ((long long)p->n * p->h * p->w * p->ci > INT32_MAX ||
        (long long)p->n * ho * wo * p->co > INT32_MAX ||
        (long long)p->co * p->kh * p->kw * p->ci > INT32_MAX)
        return "a tensor of 2^31 elements or more (cuDNN's int dims)";
    return NULL;
}

int hsd_cudnn_conv_supports(const struct hsd_conv2d_params *p) {
    return params_valid(p, 0) && why_unsupported(p) == NULL;
}

#ifndef HSD_HAVE_CUDNN

// ---- built without cuDNN ----------------------------------------------------

enum hsd_status hsd_cudnn_conv_create(struct hsd_cudnn_conv **out, cudaStream_t stream,
                                      size_t workspace_bytes) {
    (void)stream;
    (void)workspace_bytes;
    if (out) *out = NULL;
    return hsd_fail(HSD_ERR_UNSUPPORTED,
                    "cudnn conv2d: built without cuDNN (no cudnn.h/libcudnn found at configure "
                    "time; set HSD_CUDNN_ROOT)");
}

void hsd_cudnn_conv_destroy(struct hsd_cudnn_conv *c) { (void)c; }

enum hsd_status hsd_cudnn_conv2d(struct hsd_cudnn_conv *c, const struct hsd_conv2d_params *p) {
    (void)c;
    (void)p;
    return hsd_fail(HSD_ERR_UNSUPPORTED, "cudnn conv2d: built without cuDNN");
}

#else

// ---- context ------------------------------------------------------------------

static void destroy_descriptors(struct shape_entry *e) {
    if (e->x) cudnnDestroyTensorDescriptor(e->x);
    if (e->y) cudnnDestroyTensorDescriptor(e->y);
    if (e->bias) cudnnDestroyTensorDescriptor(e->bias);
    if (e->w) cudnnDestroyFilterDescriptor(e->w);
    if (e->conv) cudnnDestroyConvolutionDescriptor(e->conv);
    e->x = e->y = e->bias = NULL;
    e->w = NULL;
    e->conv = NULL;
}

void hsd_cudnn_conv_destroy(struct hsd_cudnn_conv *c) {
    if (!c) return;
    for (int i = 0; i < c->n_shapes; i++) destroy_descriptors(&c->shapes[i]);
    free(c->shapes);
    if (c->identity) cudnnDestroyActivationDescriptor(c->identity);
    if (c->handle) cudnnDestroy(c->handle);
    if (c->workspace) cudaFree(c->workspace);
    if (c->zero_bias) cudaFree(c->zero_bias);
    for (int i = 0; i < c->n_retired; i++) cudaFree(c->retired[i]);
    free(c);
}

// Makes the zero bias hold at least `channels` fp16 zeros (queued on the
// stream, so the convs after it see them).
static enum hsd_status ensure_zero_bias(struct hsd_cudnn_conv *c, int channels) {
    if (channels <= c->zero_cap) return HSD_OK;
    int cap = c->zero_cap ? c->zero_cap : K_ZERO_BIAS_INITIAL;
    while (cap < channels) cap = cap > INT_MAX / 2 ? channels : 2 * cap;
    if (c->zero_bias) HSD_ASSERT(c->n_retired < K_MAX_RETIRED);
    void *zb = NULL;
    const cudaError_t e = cudaMalloc(&zb, (size_t)cap * 2);
    if (e != cudaSuccess)
        return hsd_fail(HSD_ERR_NOMEM, "cudnn conv2d: zero bias of %d channels: %s", cap,
                        cudaGetErrorString(e));
    const cudaError_t m = cudaMemsetAsync(zb, 0, (size_t)cap * 2, c->stream);
    if (m != cudaSuccess) {
        cudaFree(zb);
        return hsd_fail(HSD_ERR_DEVICE, "cudnn conv2d: zeroing the bias: %s",
                        cudaGetErrorString(m));
    }
    if (c->zero_bias) c->retired[c->n_retired++] = c->zero_bias;
    c->zero_bias = zb;
    c->zero_cap = cap;
    return HSD_OK;
}

static enum hsd_status create_impl(struct hsd_cudnn_conv *c, cudaStream_t stream,
                                   size_t workspace_bytes) {
    CUDA_TRY(cudaGetDevice(&c->device));
    c->stream = stream;
    CUDNN_TRY(cudnnCreate(&c->handle), NULL);
    CUDNN_TRY(cudnnSetStream(c->handle, stream), NULL);
    CUDNN_TRY(cudnnCreateActivationDescriptor(&c->identity), NULL);
    CUDNN_TRY(cudnnSetActivationDescriptor(c->identity, CUDNN_ACTIVATION_IDENTITY,
                                           CUDNN_PROPAGATE_NAN, 0.0),
              NULL);
    if (workspace_bytes) {
        const cudaError_t e = cudaMalloc(&c->workspace, workspace_bytes);
        if (e != cudaSuccess) {
            c->workspace = NULL;
            return hsd_fail(HSD_ERR_NOMEM, "cudnn conv2d: workspace of %zu bytes: %s",
                            workspace_bytes, cudaGetErrorString(e));
        }
    }
    c->workspace_bytes = workspace_bytes;
    return ensure_zero_bias(c, K_ZERO_BIAS_INITIAL);
}

enum hsd_status hsd_cudnn_conv_create(struct hsd_cudnn_conv **out, cudaStream_t stream,
                                      size_t workspace_bytes) {
    if (!out) return hsd_fail(HSD_ERR_INVALID_ARG, "cudnn conv2d: NULL out");
    *out = NULL;
    struct hsd_cudnn_conv *c = calloc(1, sizeof *c);
    if (!c) return hsd_fail(HSD_ERR_NOMEM, "cudnn conv2d: context");
    const enum hsd_status st = create_impl(c, stream, workspace_bytes);
    if (st != HSD_OK) {
        hsd_cudnn_conv_destroy(c);
        return st;
    }
    *out = c;
    return HSD_OK;
}

// ---- per-shape descriptors and algorithm --------------------------------------

static const char *algo_name(cudnnConvolutionFwdAlgo_t a) {
    switch (a) {
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM: return "IMPLICIT_GEMM";
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM: return "IMPLICIT_PRECOMP_GEMM";
    case CUDNN_CONVOLUTION_FWD_ALGO_GEMM: return "GEMM";
    case CUDNN_CONVOLUTION_FWD_ALGO_DIRECT: return "DIRECT";
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT: return "FFT";
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING: return "FFT_TILING";
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD: return "WINOGRAD";
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED: return "WINOGRAD_NONFUSED";
    default: return "?";
    }
}

// Fills e's descriptors and algorithm. HSD_OK with e->usable = 0 and e->why
// when cuDNN has no algorithm for the shape (a verdict to cache); another
// status on a cuDNN failure (nothing cached).
static enum hsd_status build_shape(struct hsd_cudnn_conv *c, struct shape_entry *e, int ho,
                                   int wo) {
    const struct shape_key *k = &e->key;
    char what[96];
    snprintf(what, sizeof what, "n%d %dx%d %d->%d k%dx%d s%d p%d", k->n, k->h, k->w, k->ci, k->co,
             k->kh, k->kw, k->stride, k->pad);
    CUDNN_TRY(cudnnCreateTensorDescriptor(&e->x), what);
    CUDNN_TRY(cudnnCreateTensorDescriptor(&e->y), what);
    CUDNN_TRY(cudnnCreateTensorDescriptor(&e->bias), what);
    CUDNN_TRY(cudnnCreateFilterDescriptor(&e->w), what);
    CUDNN_TRY(cudnnCreateConvolutionDescriptor(&e->conv), what);
    // 4-d descriptors take dims in n, c, h, w order whatever the format.
    CUDNN_TRY(cudnnSetTensor4dDescriptor(e->x, CUDNN_TENSOR_NHWC, CUDNN_DATA_HALF, k->n, k->ci,
                                         k->h, k->w),
              what);
    CUDNN_TRY(cudnnSetTensor4dDescriptor(e->y, CUDNN_TENSOR_NHWC, CUDNN_DATA_HALF, k->n, k->co, ho,
                                         wo),
              what);
    CUDNN_TRY(cudnnSetTensor4dDescriptor(e->bias, CUDNN_TENSOR_NHWC, CUDNN_DATA_HALF, 1, k->co, 1,
                                         1),
              what);
    // NHWC filter = KRSC = [co][kh][kw][ci]: our weight as stored.
    CUDNN_TRY(cudnnSetFilter4dDescriptor(e->w, CUDNN_DATA_HALF, CUDNN_TENSOR_NHWC, k->co, k->ci,
                                         k->kh, k->kw),
              what);
    CUDNN_TRY(cudnnSetConvolution2dDescriptor(e->conv, k->pad, k->pad, k->stride, k->stride, 1, 1,
                                              CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
              what);
    CUDNN_TRY(cudnnSetConvolutionMathType(e->conv, CUDNN_TENSOR_OP_MATH), what);

    // cuDNN's idea of the output size must be ours (hsd_conv2d_out_size).
    int on = 0, oc = 0, oh = 0, ow = 0;
    CUDNN_TRY(cudnnGetConvolution2dForwardOutputDim(e->conv, e->x, e->w, &on, &oc, &oh, &ow), what);
    if (on != k->n || oc != k->co || oh != ho || ow != wo)
        return hsd_fail(HSD_ERR_INTERNAL,
                        "cudnn conv2d %s: cuDNN's output %dx%dx%dx%d (n, c, h, w) differs from "
                        "ours %dx%dx%dx%d",
                        what, on, oc, oh, ow, k->n, k->co, ho, wo);

    // The heuristics' ranking: is IMPLICIT_PRECOMP_GEMM supported here (and
    // with which math type), and within the workspace?
    cudnnConvolutionFwdAlgoPerf_t perf[2 * CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int max_count = 0, returned = 0;
    CUDNN_TRY(cudnnGetConvolutionForwardAlgorithmMaxCount(c->handle, &max_count), what);
    if (max_count <= 0 || max_count > (int)HSD_ARRAY_LEN(perf))
        max_count = (int)HSD_ARRAY_LEN(perf);
    cudnnStatus_t s = cudnnGetConvolutionForwardAlgorithm_v7(c->handle, e->x, e->w, e->conv, e->y,
                                                             max_count, &returned, perf);
    if (not_supported(s)) {
        snprintf(e->why, sizeof e->why, "cuDNN's heuristics: %s", cudnnGetErrorString(s));
        return HSD_OK;
    }
    if (s != CUDNN_STATUS_SUCCESS)
        return cudnn_fail(s, "cudnnGetConvolutionForwardAlgorithm_v7", what);
    int pick = -1;
    for (int i = 0; i < returned; i++) {
        if (perf[i].algo != CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM ||
            perf[i].status != CUDNN_STATUS_SUCCESS)
            continue;
        if (pick < 0 || (perf[pick].mathType != CUDNN_TENSOR_OP_MATH &&
                         perf[i].mathType == CUDNN_TENSOR_OP_MATH))
            pick = i;
    }
    if (pick < 0) {
        snprintf(e->why, sizeof e->why,
                 "cuDNN's heuristics offer no IMPLICIT_PRECOMP_GEMM (the fused call's only "
                 "algorithm with an identity activation); their first choice: %s",
                 returned > 0 ? algo_name(perf[0].algo) : "none");
        return HSD_OK;
    }
    // The heuristics may report another math type for the entry (the
    // documented advice: run with the math type of the perf result).
    if (perf[pick].mathType != CUDNN_TENSOR_OP_MATH)
        CUDNN_TRY(cudnnSetConvolutionMathType(e->conv, perf[pick].mathType), what);
    size_t need = 0;
    s = cudnnGetConvolutionForwardWorkspaceSize(c->handle, e->x, e->w, e->conv, e->y,
                                                CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                                                &need);
    if (not_supported(s)) {
        snprintf(e->why, sizeof e->why, "IMPLICIT_PRECOMP_GEMM workspace query: %s",
                 cudnnGetErrorString(s));
        return HSD_OK;
    }
    if (s != CUDNN_STATUS_SUCCESS)
        return cudnn_fail(s, "cudnnGetConvolutionForwardWorkspaceSize", what);
    if (need > c->workspace_bytes) {
        snprintf(e->why, sizeof e->why,
                 "IMPLICIT_PRECOMP_GEMM needs %zu workspace bytes, the context has %zu", need,
                 c->workspace_bytes);
        return HSD_OK;
    }
    // A later call for this shape without a bias must not allocate.
    const enum hsd_status st = ensure_zero_bias(c, k->co);
    if (st != HSD_OK) return st;
    e->algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
    e->usable = 1;
    return HSD_OK;
}

// The cached entry of p's shape, built on first use. *out is NULL on failure.
static enum hsd_status find_shape(struct hsd_cudnn_conv *c, const struct hsd_conv2d_params *p,
                                  struct shape_entry **out) {
    *out = NULL;
    struct shape_key key;
    memset(&key, 0, sizeof key);
    key.n = p->n;
    key.h = p->h;
    key.w = p->w;
    key.ci = p->ci;
    key.co = p->co;
    key.kh = p->kh;
    key.kw = p->kw;
    key.stride = p->stride;
    key.pad = p->pad;
    for (int i = 0; i < c->n_shapes; i++) {
        if (memcmp(&c->shapes[i].key, &key, sizeof key) == 0) {
            *out = &c->shapes[i];
            return HSD_OK;
        }
    }
    if (c->n_shapes == c->cap_shapes) {
        const int cap = c->cap_shapes ? 2 * c->cap_shapes : 32;
        struct shape_entry *s = realloc(c->shapes, (size_t)cap * sizeof *s);
        if (!s) return hsd_fail(HSD_ERR_NOMEM, "cudnn conv2d: shape cache of %d", cap);
        c->shapes = s;
        c->cap_shapes = cap;
    }
    struct shape_entry *e = &c->shapes[c->n_shapes];
    memset(e, 0, sizeof *e);
    e->key = key;
    int ho, wo;
    hsd_conv2d_out_size(p, &ho, &wo);
    const enum hsd_status st = build_shape(c, e, ho, wo);
    if (st != HSD_OK) {
        destroy_descriptors(e);  // a failure is not a verdict: retried next call
        return st;
    }
    if (!e->usable) destroy_descriptors(e);
    c->n_shapes++;
    *out = e;
    return HSD_OK;
}

// ---- the conv -------------------------------------------------------------------

enum hsd_status hsd_cudnn_conv2d(struct hsd_cudnn_conv *c, const struct hsd_conv2d_params *p) {
    if (!c) return hsd_fail(HSD_ERR_INVALID_ARG, "cudnn conv2d: NULL context");
    if (!params_valid(p, 1)) return HSD_ERR_INVALID_ARG;
    const char *why = why_unsupported(p);
    if (why) return hsd_fail(HSD_ERR_UNSUPPORTED, "cudnn conv2d: %s", why);
    int dev = -1;
    CUDA_TRY(cudaGetDevice(&dev));
    if (dev != c->device)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "cudnn conv2d: current device %d, context made on device %d", dev,
                        c->device);
    struct shape_entry *e = NULL;
    const enum hsd_status st = find_shape(c, p, &e);
    if (st != HSD_OK) return st;
    if (!e->usable) return hsd_fail(HSD_ERR_UNSUPPORTED, "cudnn conv2d: %s", e->why);

    // Scaling factors are float for fp16 data (cuDNN: float unless the data is double).
    const float one = 1.0f, zero = 0.0f;
    const void *bias = p->bias ? p->bias : c->zero_bias;
    const char *call = "cudnnConvolutionBiasActivationForward";
    cudnnStatus_t s;
    if (p->residual) {
        s = cudnnConvolutionBiasActivationForward(
            c->handle, &one, e->x, p->in, e->w, p->weight, e->conv, e->algo, c->workspace,
            c->workspace_bytes, &one, e->y, p->residual, e->bias, bias, c->identity, e->y,
            p->out);
    } else {
        call = "cudnnConvolutionForward";
        s = cudnnConvolutionForward(c->handle, &one, e->x, p->in, e->w, p->weight, e->conv,
                                    e->algo, c->workspace, c->workspace_bytes, &zero, e->y,
                                    p->out);
        if (s == CUDNN_STATUS_SUCCESS && p->bias) {
            call = "cudnnAddTensor";
            s = cudnnAddTensor(c->handle, &one, e->bias, p->bias, &one, e->y, p->out);
        }
    }
    if (s != CUDNN_STATUS_SUCCESS) {
        char what[96];
        snprintf(what, sizeof what, "n%d %dx%d %d->%d k%dx%d s%d p%d", p->n, p->h, p->w, p->ci,
                 p->co, p->kh, p->kw, p->stride, p->pad);
        return cudnn_fail(s, call, what);
    }
    return HSD_OK;
}

#endif  // HSD_HAVE_CUDNN
