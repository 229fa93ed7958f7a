// Per-sample channel bias kernels (cuda/add_bias.cu): x[n, p, c] += v[n, c]
// in place (diffusers ResnetBlock2D: hidden_states + temb[:, :, None, None]),
// every version's launcher, C-callable, taking the backend's struct
// hsd_add_bias_params. Production: hsd_cuda_add_bias() (cuda/registry.h).
#ifndef HSD_CUDA_ADD_BIAS_CUH
#define HSD_CUDA_ADD_BIAS_CUH

#include <cuda_runtime_api.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

enum hsd_status hsd_add_bias_v1_vec8(const struct hsd_add_bias_params *p, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
