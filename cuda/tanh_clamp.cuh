// Soft clamp kernels (cuda/tanh_clamp.cu): out = limit * tanh(in / limit)
// (diffusers DecoderTiny's input clamp, torch.tanh(x / 3) * 3), every
// version's launcher, C-callable, taking the backend's struct
// hsd_tanh_clamp_params. Production: hsd_cuda_tanh_clamp() (cuda/registry.h).
#ifndef HSD_CUDA_TANH_CLAMP_CUH
#define HSD_CUDA_TANH_CLAMP_CUH

#include <cuda_runtime_api.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

enum hsd_status hsd_tanh_clamp_v1_vec8(const struct hsd_tanh_clamp_params *p,
                                       cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
