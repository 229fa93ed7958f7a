// Sinusoidal timestep embedding kernels (cuda/timestep_embedding.cu), every
// version's launcher, C-callable, taking the backend's struct
// hsd_timestep_embedding_params (fp32 timesteps in, fp16 out). Production:
// hsd_cuda_timestep_embedding() (cuda/registry.h).
#ifndef HSD_CUDA_TIMESTEP_EMBEDDING_CUH
#define HSD_CUDA_TIMESTEP_EMBEDDING_CUH

#include <cuda_runtime_api.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

enum hsd_status hsd_timestep_embedding_v1_direct(const struct hsd_timestep_embedding_params *p,
                                                 cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
