// cuDNN as a selectable alternative for conv2d (cuda/conv2d_cudnn.c): the
// same struct hsd_conv2d_params as the registry versions of cuda/conv2d.cu,
// run by cudnnConvolutionBiasActivationForward. The CUDA backend times ours
// (hsd_cuda_conv2d) against this one per shape at start-up and keeps the
// faster; the test (tests/unit/test_cuda_conv2d.c) checks it against the
// CPU backend on the same cases as the registry versions.
//
// Plain C: this header names only the CUDA runtime's cudaStream_t, never
// cudnn.h, so callers need no cuDNN include path. Built without cuDNN
// (HSD_HAVE_CUDNN unset), hsd_cudnn_conv_create() answers
// HSD_ERR_UNSUPPORTED "built without cuDNN" and the rest is inert.
//
// A context is not thread-safe: one per stream and host thread.
#ifndef HSD_CUDA_CONV2D_CUDNN_H
#define HSD_CUDA_CONV2D_CUDNN_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#include "backend/backend.h"
#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// Opaque: the cuDNN handle (bound to one stream), the workspace, a zero
// bias, and per conv shape the descriptors and the algorithm.
struct hsd_cudnn_conv;

// Creates a context on the current device, bound to `stream`, with
// workspace_bytes of device memory for cuDNN's algorithms (allocated here,
// once; algorithms needing more are not used). HSD_ERR_UNSUPPORTED when
// built without cuDNN; HSD_ERR_DEVICE / HSD_ERR_NOMEM on cuDNN or CUDA
// failures (no GPU, driver, memory). *out is NULL on failure.
enum hsd_status hsd_cudnn_conv_create(struct hsd_cudnn_conv **out, cudaStream_t stream,
                                      size_t workspace_bytes);
// Frees the context and its device memory. NULL is a no-op. The caller
// makes sure no work queued by the context is still running.
void hsd_cudnn_conv_destroy(struct hsd_cudnn_conv *c);

// 1 when cuDNN's fused fp16 NHWC tensor-core convolution takes these params,
// else 0. No device call; the same answer for every context. Rules:
//   - valid dims (as the CPU backend checks them), in/weight/out non-NULL;
//   - symmetric padding only: pad_bottom == pad_right == 0 (cuDNN's 2-D
//     convolution descriptor has one pad per dimension, applied on both
//     sides; the VAE's (0,1,0,1) downsampler stays on ours);
//   - ci % 8 == 0 and co % 8 == 0, and in, weight, out, bias, residual
//     16-byte aligned: the cuDNN developer guide ("Legacy API", Tensor Core
//     operations, data and filter formats) runs fp16 convolutions on tensor
//     cores only when the channel counts C and K are multiples of 8 and,
//     for NHWC filters, the data pointers are 128-bit aligned. Shapes off
//     that (conv_in ci = 4, conv_out co = 4) would run cuDNN's slow
//     non-tensor-core or internally padded paths, never faster than ours,
//     so they are not offered;
//   - sizes that fit cuDNN's int dims (every tensor under 2^31 elements).
// Even when this says 1, hsd_cudnn_conv2d() may answer HSD_ERR_UNSUPPORTED
// on the first call for a shape, when cuDNN's heuristics offer no
// IMPLICIT_PRECOMP_GEMM (the only algorithm of the fused call with an
// identity activation) within the workspace; that verdict is cached.
int hsd_cudnn_conv_supports(const struct hsd_conv2d_params *p);

// out = conv(in, weight) + bias (+ residual; residual may be out itself),
// fp16 in/out, fp32 accumulation, on the context's stream. Never
// synchronizes. The first call for a shape (n, h, w, ci, co, kh, kw,
// stride, pad) builds and caches that shape's descriptors and algorithm
// (cudnnGetConvolutionForwardAlgorithm_v7: host heuristics, no device
// work) and may allocate (a larger zero bias); later calls for the shape
// allocate nothing, so they can be captured in a CUDA graph. Make the
// first call for each shape outside stream capture (the start-up timing
// does). HSD_ERR_INVALID_ARG for params the CPU backend rejects;
// HSD_ERR_UNSUPPORTED when hsd_cudnn_conv_supports() is 0 or cuDNN has no
// algorithm for the shape; HSD_ERR_DEVICE with cudnnGetErrorString's text
// when cuDNN fails.
enum hsd_status hsd_cudnn_conv2d(struct hsd_cudnn_conv *c, const struct hsd_conv2d_params *p);

#ifdef __cplusplus
}
#endif
#endif
