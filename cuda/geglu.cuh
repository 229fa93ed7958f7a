// GEGLU kernels (cuda/geglu.cu): out = hidden * gelu(gate) for in = [hidden |
// gate] (diffusers GEGLU after its projection), every version's launcher,
// C-callable, taking the backend's struct hsd_geglu_params. Production:
// hsd_cuda_geglu() (cuda/registry.h).
#ifndef HSD_CUDA_GEGLU_CUH
#define HSD_CUDA_GEGLU_CUH

#include <cuda_runtime_api.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

enum hsd_status hsd_geglu_v1_vec8(const struct hsd_geglu_params *p, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
