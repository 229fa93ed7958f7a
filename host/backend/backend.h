// The backend op table (docs/conventions.md "Code shape": backends are
// tables of function pointers, after ggml's ggml_backend_i). Model code (host/models) calls
// these ops and never asks which backend it runs on; the CPU backend
// (backend/cpu) is the fp32 reference truth, the CUDA backend (cuda/)
// implements the same table in fp16.
//
// Conventions shared by every op:
// - Activations are NHWC: a feature map [n, h, w, c] is also the token
//   sequence [n, h*w, c] of the transformer blocks, so no transposes.
// - Buffers are backend memory (`void *`): host floats on the CPU backend,
//   device memory on CUDA. Element size is `be->act_size` bytes.
// - Weights use the PyTorch layouts except convolutions, which the model
//   re-lays once at load from [co, ci, kh, kw] to [co, kh, kw, ci] so one
//   output channel's taps are contiguous in the NHWC reduction order.
// - Every op takes one params struct (outputs, inputs, dims), the same
//   struct the tests and benchmarks use.
#ifndef HSD_BACKEND_H
#define HSD_BACKEND_H

#include <stddef.h>

#include <stdint.h>

#include "backend/resident_ops.h"
#include "backend/step_ops.h"
#include "core/dtype.h"
#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// out[n, ho, wo, co] = conv(in[n, h, w, ci], weight[co, kh, kw, ci]) + bias[co]
//                      (+ residual[n, ho, wo, co])
// ho = (h + 2*pad + pad_bottom - kh) / stride + 1 (likewise wo with
// pad_right). Zero padding.
struct hsd_conv2d_params {
    void *out;             // [n, ho, wo, co]
    const void *in;        // [n, h, w, ci]
    const void *weight;    // [co, kh, kw, ci]
    const void *bias;      // [co] or NULL
    const void *residual;  // [n, ho, wo, co] or NULL; may be `out` itself (in place:
                           // the VAE's ResNets), may alias nothing else
    int n, h, w, ci, co, kh, kw, stride, pad;
    // Extra zero rows below / columns right of the image, on top of `pad`:
    // diffusers Downsample2D(padding=0) pads (0, 1, 0, 1) before its
    // stride-2 conv (the VAE encoder). 0 when zero-initialised.
    int pad_bottom, pad_right;
};

// out[m, n_out] = in[m, k] * weight[n_out, k]^T + bias (+ residual[m, n_out]).
// Also the 1x1 convolution of an NHWC map (m = n*h*w).
struct hsd_linear_params {
    void *out;             // [m, n_out]
    const void *in;        // [m, k]
    const void *weight;    // [n_out, k] (PyTorch nn.Linear layout)
    const void *bias;      // [n_out] or NULL
    const void *residual;  // [m, n_out] or NULL; may be `out` itself (in place)
    int m, k, n_out;
};

// torch.nn.GroupNorm over NHWC: statistics per (sample, group) across
// hw * (c / groups) values; biased variance; then optional SiLU.
struct hsd_group_norm_params {
    void *out;             // [n, hw, c]
    const void *in;        // [n, hw, c]
    const void *gamma;     // [c]
    const void *beta;      // [c]
    int n, hw, c, groups;
    float eps;
    int silu;              // 1: out = silu(norm(in)) (ResnetBlock2D norm+act)
};

// torch.nn.LayerNorm over the last dim.
struct hsd_layer_norm_params {
    void *out;             // [m, c]
    const void *in;        // [m, c]
    const void *gamma;     // [c]
    const void *beta;      // [c]
    int m, c;
    float eps;
};

// Multi-head attention core: out = softmax(scale * q k^T) v per (sample,
// head), fp32 softmax. Heads are read with strides straight from the
// projections: head h of token t of sample b is at q + (b*t_q + t)*ldq + h*d.
// causal = 1 (needs t_q == t_kv): query i attends keys 0..i only, the
// scores of keys j > i being -inf before the softmax (transformers' additive
// causal mask in CLIPTextModel; its large negative value also gives exp 0).
struct hsd_attention_params {
    void *out;             // [n, t_q, heads*d], token stride ldo
    const void *q;         // [n, t_q, heads*d], token stride ldq
    const void *k;         // [n, t_kv, heads*d], token stride ldk
    const void *v;         // [n, t_kv, heads*d], token stride ldv
    int n, heads, d, t_q, t_kv;
    int ldq, ldk, ldv, ldo;
    float scale;           // usually 1/sqrt(d)
    int causal;            // 0: every key; 1: keys 0..i for query i (CLIP text)
};

// diffusers GEGLU after its projection: in = [hidden | gate] along the last
// dim; out = hidden * gelu(gate) (exact erf GELU).
struct hsd_geglu_params {
    void *out;             // [m, f]
    const void *in;        // [m, 2f]
    int m, f;
};

// Nearest-neighbour upsampling by 2 (F.interpolate scale_factor=2, "nearest").
struct hsd_upsample_params {
    void *out;             // [n, 2h, 2w, c]
    const void *in;        // [n, h, w, c]
    int n, h, w, c;
};

// Channel concatenation (torch.cat dim=1 in NCHW = last dim in NHWC).
struct hsd_concat_params {
    void *out;             // [m, ca + cb]
    const void *a;         // [m, ca]
    const void *b;         // [m, cb]
    int m, ca, cb;
};

// x[b, p, c] += v[b, c]: per-sample channel bias (ResNet time embedding).
struct hsd_add_bias_params {
    void *x;               // [n, p, c], in place
    const void *v;         // [n, c]
    int n, p, c;
};

// out = a + b elementwise, or out = silu(a) / relu(a) (b ignored) for ops
// silu and relu; gelu: exact erf form a * Phi(a) (torch
// F.gelu(approximate="none"), transformers ACT2FN["gelu"], CLIP in SD 2.x);
// quick_gelu: a * sigmoid(1.702 a) (transformers QuickGELUActivation, CLIP in
// SD 1.x).
struct hsd_eltwise_params {
    void *out;             // [count]
    const void *a;         // [count]
    const void *b;         // [count] (add only)
    size_t count;
};

// out = limit * tanh(in / limit): a smooth clamp to (-limit, limit)
// (diffusers DecoderTiny: torch.tanh(x / 3) * 3 on the latent).
struct hsd_tanh_clamp_params {
    void *out;             // [count], may be in (in place)
    const void *in;        // [count]
    size_t count;
    float limit;           // > 0
};

// Sinusoidal timestep embedding, diffusers embeddings.get_timestep_embedding:
// freq_j = exp(-ln(max_period) * j / (half - shift)), emb = [sin(t f), cos(t f)],
// swapped to [cos, sin] when flip_sin_to_cos. `t` is backend memory, fp32.
struct hsd_timestep_embedding_params {
    void *out;             // [n, dim]
    const void *t;         // [n] fp32 timesteps
    int n, dim;
    int flip_sin_to_cos;
    float shift;           // downscale_freq_shift
    float max_period;      // 10000
};

// A GEMM weight as its file holds it (weight_view): a linear weight
// [n_out, k] or a conv weight in PyTorch's [co, ci, kh, kw] layout (not
// re-laid), F32, F16 or BF16, little-endian, possibly unaligned. Unless
// `copy` is set, `data` must stay valid while the returned buffer lives
// (the model keeps its weights file mapped, models/loader.h).
struct hsd_weight_view_params {
    const void *data;      // [n_out, k] or [co, ci, kh, kw]
    enum hsd_dtype dtype;
    int rows;              // n_out or co
    int k;                 // k or ci*kh*kw
    int taps;              // kh*kw of a conv weight (1: linear or 1x1)
    int copy;              // 1: the backend keeps a copy (data is freed after the call)
};

// A LoRA side product (models/lora.h), unfused and chosen per sample: for
// every sample b with s = scale[b * scale_ld] * mult != 0,
//   out[b, t, 0:n_out] += s * (in[b, t, :] down^T) up^T
// (diffusers/PEFT LoraLayer: base(x) + lora_B(lora_A(x)) * scaling); rows
// whose s is 0 are left untouched.
struct hsd_lora_params {
    void *out;             // [n, tokens, ldo]: columns [0, n_out) updated
    const void *in;        // [n, tokens, k]
    const void *down;      // [r, k]      (lora_A / lora_down)
    const void *up;        // [n_out, r]  (lora_B / lora_up)
    void *tmp;             // [n, tokens, r] scratch
    const float *scale;    // host memory, [n] with stride scale_ld
    int n, tokens, k, r, n_out, ldo, scale_ld;
    float mult;            // alpha / r
};

struct hsd_backend;

// What identifies one recorded op sequence (graph_begin): the model object,
// the bucket and the arena the activations live in.
struct hsd_graph_key {
    const void *model;
    const void *arena;
    int n, h, w, t_ctx;
    // What else the recorded ops read or write outside the arena: NULL for
    // hsd_unet_forward (its inputs live in the arena); the input buffers
    // for hsd_unet_forward_dev and the whole-step graph.
    const void *io;
    int whole_step;  // 1: the resident step's graph (host/pipeline/resident_step.c)
};

enum hsd_backend_kind { HSD_BACKEND_CPU, HSD_BACKEND_CUDA };

// How weight uploads behave (multi-GPU serving, cuda/backend_cuda.h):
// NORMAL uploads; RECEIVE allocates but neither converts nor copies (the
// weights arrive later by an NCCL broadcast from a device that loaded them,
// so the loader skips reading the file's tensor data too).
enum hsd_weight_mode { HSD_WEIGHTS_NORMAL, HSD_WEIGHTS_RECEIVE };

struct hsd_backend_ops {
    const char *name;
    void (*destroy)(struct hsd_backend *be);

    // Memory. alloc returns NULL on failure (with hsd_fail set).
    void *(*alloc)(struct hsd_backend *be, size_t bytes);
    void (*free)(struct hsd_backend *be, void *p);
    // Host fp32 <-> backend elements (count elements).
    enum hsd_status (*upload)(struct hsd_backend *be, void *dst, const float *src, size_t count);
    enum hsd_status (*download)(struct hsd_backend *be, float *dst, const void *src, size_t count);
    // Host fp32 -> backend fp32, never converted (the fp32 timesteps of
    // timestep_embedding; the buffer must hold 4*count bytes).
    enum hsd_status (*upload_f32)(struct hsd_backend *be, void *dst, const float *src,
                                  size_t count);
    // Backend fp32 -> host fp32, never converted (the step ops' latents and
    // sampler history, backend/step_ops.h).
    enum hsd_status (*download_f32)(struct hsd_backend *be, float *dst, const void *src,
                                    size_t count);
    // Waits for queued work (no-op on CPU). A device error (a sticky CUDA
    // error, ...) returns HSD_ERR_DEVICE: the device is lost for this process.
    enum hsd_status (*synchronize)(struct hsd_backend *be);

    // Optional (NULL where the backend has none): record the ops between
    // graph_begin and graph_end once per key and replay them afterwards
    // (CUDA graphs). On a replay, graph_begin puts the backend in a mode
    // where the ops in between only return HSD_OK and graph_end launches
    // the recorded graph, so model code runs the same calls either way.
    // The ops must use the same buffers on every call with a key (a planned
    // arena at a fixed address); inputs are uploaded before graph_begin,
    // outputs downloaded after graph_end. graph_end is called after every
    // successful graph_begin; ok = 0 (an op failed in between) discards a
    // recording. HSD_ERR_UNSUPPORTED from graph_end: the recording failed
    // and nothing ran; the backend stops recording graphs and the caller
    // runs the same ops again (they now run as they are called).
    enum hsd_status (*graph_begin)(struct hsd_backend *be, const struct hsd_graph_key *key);
    enum hsd_status (*graph_end)(struct hsd_backend *be, int ok);
    // Optional: device memory this backend holds and the device's total,
    // bytes (STATUS). A snapshot; may be read from another thread.
    void (*memory)(const struct hsd_backend *be, size_t *used, size_t *total);

    // Optional (NULL: nothing happens): the bytes [p, p + bytes) of a buffer
    // from alloc hold nothing needed any more, so the backend may give their
    // memory back (CPU: madvise MADV_DONTNEED; the pages read as zeros and
    // are faulted in again when next written). Models call it on their
    // activation arena after a forward, so one model's arena does not stay
    // resident while the next model runs (issue 14: peak RSS).
    void (*discard)(struct hsd_backend *be, void *p, size_t bytes);
    // Optional (NULL: the loader converts every weight to fp32, re-lays
    // conv weights and uploads them): a weight buffer for conv2d/linear made
    // from the file's bytes as they are, kept in the file's precision and
    // layout, borrowed where the backend can read them in place, and
    // converted while the GEMM packs it (the CPU backend, cpu_weights.c).
    // The buffer is freed with `free`; it is only valid as the `weight` of
    // conv2d (taps = kh*kw) and linear. NULL on failure (hsd_fail set).
    void *(*weight_view)(struct hsd_backend *be, const struct hsd_weight_view_params *p);

    enum hsd_status (*conv2d)(struct hsd_backend *be, const struct hsd_conv2d_params *p);
    enum hsd_status (*linear)(struct hsd_backend *be, const struct hsd_linear_params *p);
    enum hsd_status (*group_norm)(struct hsd_backend *be, const struct hsd_group_norm_params *p);
    enum hsd_status (*layer_norm)(struct hsd_backend *be, const struct hsd_layer_norm_params *p);
    enum hsd_status (*attention)(struct hsd_backend *be, const struct hsd_attention_params *p);
    enum hsd_status (*geglu)(struct hsd_backend *be, const struct hsd_geglu_params *p);
    enum hsd_status (*upsample_nearest2x)(struct hsd_backend *be, const struct hsd_upsample_params *p);
    enum hsd_status (*concat_channels)(struct hsd_backend *be, const struct hsd_concat_params *p);
    enum hsd_status (*add_bias)(struct hsd_backend *be, const struct hsd_add_bias_params *p);
    enum hsd_status (*add)(struct hsd_backend *be, const struct hsd_eltwise_params *p);
    enum hsd_status (*silu)(struct hsd_backend *be, const struct hsd_eltwise_params *p);
    enum hsd_status (*gelu)(struct hsd_backend *be, const struct hsd_eltwise_params *p);
    enum hsd_status (*quick_gelu)(struct hsd_backend *be, const struct hsd_eltwise_params *p);
    // torch.relu: max(a, 0), NaN propagated (the TAESD blocks).
    enum hsd_status (*relu)(struct hsd_backend *be, const struct hsd_eltwise_params *p);
    enum hsd_status (*tanh_clamp)(struct hsd_backend *be, const struct hsd_tanh_clamp_params *p);
    enum hsd_status (*timestep_embedding)(struct hsd_backend *be,
                                          const struct hsd_timestep_embedding_params *p);
    // The denoising step around the U-Net (backend/step_ops.h).
    enum hsd_status (*step_input)(struct hsd_backend *be, const struct hsd_step_input_params *p);
    enum hsd_status (*cfg_combine)(struct hsd_backend *be, const struct hsd_cfg_combine_params *p);
    enum hsd_status (*sampler_step)(struct hsd_backend *be,
                                    const struct hsd_sampler_step_params *p);
    // Optional (NULL: the backend serves no LoRA; attaching one fails).
    enum hsd_status (*lora)(struct hsd_backend *be, const struct hsd_lora_params *p);
    // The resident step's gather and scatter (backend/resident_ops.h).
    enum hsd_status (*step_gather)(struct hsd_backend *be, const struct hsd_step_gather_params *p);
    enum hsd_status (*step_scatter)(struct hsd_backend *be,
                                    const struct hsd_step_scatter_params *p);
};

// Host <-> backend transfers, counted by every backend's upload, upload_f32,
// download and download_f32 (a CPU "transfer" is a copy of host memory):
// what lets a test assert that a steady-state step crosses PCIe zero times
// (docs/denoise_step.md "Transfers"). Calls and bytes of backend memory
// written or read (fp16 elements: 2 bytes each) since creation; written by
// the thread that owns the backend.
struct hsd_backend_xfer {
    uint64_t uploads, upload_bytes;
    uint64_t downloads, download_bytes;
};
static inline void hsd_xfer_up(struct hsd_backend_xfer *x, size_t bytes) {
    x->uploads++;
    x->upload_bytes += bytes;
}
static inline void hsd_xfer_down(struct hsd_backend_xfer *x, size_t bytes) {
    x->downloads++;
    x->download_bytes += bytes;
}

struct hsd_backend {
    const struct hsd_backend_ops *ops;
    size_t act_size;   // bytes per activation/weight element
    int threads;       // worker threads (CPU) or 0
    enum hsd_backend_kind kind;
    int device;        // GPU ordinal (CUDA) or -1
    char desc[128];    // for logs, STATUS and metrics: "cpu (8 threads)", "cuda:0 NVIDIA H100 ..."
    enum hsd_weight_mode weight_mode;
    struct hsd_backend_xfer xfer;  // transfers so far (hsd_xfer_up/down)
    void *impl;        // backend-private state
};

// The CPU fp32 reference backend. threads <= 0: every core.
enum hsd_status hsd_backend_cpu_create(struct hsd_backend **out, int threads);
// The CPU backend's compute precision (--cpu-precision; docs/cpu-precision.md):
// FP32 (default, the reference) or BF16 (linear and conv GEMMs on bf16
// operands with fp32 accumulation, as torch's CPU bf16 autocast). BF16 on
// another backend fails with HSD_ERR_INVALID_ARG; FP32 there is a no-op.
enum hsd_cpu_precision { HSD_CPU_FP32, HSD_CPU_BF16 };
enum hsd_status hsd_backend_cpu_set_precision(struct hsd_backend *be,
                                              enum hsd_cpu_precision prec);
// Bytes of bf16 weight copies the bf16 mode holds (0 in fp32 mode).
size_t hsd_cpu_bf16_bytes(const struct hsd_backend *be);
static inline void hsd_backend_destroy(struct hsd_backend *be) {
    if (be) be->ops->destroy(be);
}

#ifdef __cplusplus
}
#endif

#endif
