// The CUDA backend: backend.h's op table on one GPU (docs/architecture.md §4). fp16
// weights and activations with fp32 accumulation; linear layers on
// cuBLASLt (bias and residual fused in its epilogue / beta), every other op
// on the kernels of the registry (registry.h), conv2d measured per shape
// against cuDNN when cuDNN is present (conv2d_cudnn.h); one stream; CUDA
// graphs per bucket through graph_begin/graph_end; pinned staging for
// uploads and downloads. C-callable.
//
// Environment (read once at create):
//   HSD_CUDA_GRAPHS=0        run every op eagerly (no graph capture)
//   HSD_CUDA_CONV=auto|hsd|cudnn
//                            auto (default): time both on the first eager
//                            call of each conv shape, keep the faster
#ifndef HSD_CUDA_BACKEND_CUDA_H
#define HSD_CUDA_BACKEND_CUDA_H

#include <stddef.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

// Opens GPU `device`. HSD_ERR_NO_DEVICE when there is no such GPU.
enum hsd_status hsd_backend_cuda_create(struct hsd_backend **out, int device);

// Multi-GPU serving: weights read from disk once (on the first GPU) and
// broadcast to the others with NCCL (backend_cuda_nccl.c).
//  1. record_uploads(be, 1) on every backend, load the same models on each
//     (the others with be->weight_mode = HSD_WEIGHTS_RECEIVE: buffers are
//     allocated, nothing is read nor copied), record_uploads(be, 0);
//  2. broadcast(bes, n): bes[0]'s recorded uploads are copied into the
//     others' buffers, which must have been recorded in the same order with
//     the same sizes (the same models loaded the same way), else
//     HSD_ERR_INTERNAL before anything is sent.
void hsd_backend_cuda_record_uploads(struct hsd_backend *be, int on);
enum hsd_status hsd_backend_cuda_broadcast(struct hsd_backend *const *bes, int n);
// 1 when this build has NCCL (else broadcast answers HSD_ERR_UNSUPPORTED
// and each GPU loads its weights from the file).
int hsd_backend_cuda_have_nccl(void);

// Device memory this backend holds now and at most (weights, arenas,
// workspaces), bytes.
size_t hsd_backend_cuda_bytes_in_use(const struct hsd_backend *be);
size_t hsd_backend_cuda_peak_bytes(const struct hsd_backend *be);

// Graphs recorded / replays so far (for logs and tests).
void hsd_backend_cuda_graph_stats(const struct hsd_backend *be, int *recorded, long *replays);

#ifdef __cplusplus
}
#endif
#endif
