// Layer norm kernels (cuda/layernorm.cu): torch.nn.LayerNorm over the last
// dim, every version's launcher, C-callable, taking the backend's struct
// hsd_layer_norm_params. Production: hsd_cuda_layer_norm() (cuda/registry.h).
#ifndef HSD_CUDA_LAYERNORM_CUH
#define HSD_CUDA_LAYERNORM_CUH

#include <cuda_runtime_api.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

enum hsd_status hsd_layer_norm_v1_warp(const struct hsd_layer_norm_params *p, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
