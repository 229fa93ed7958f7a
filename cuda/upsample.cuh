// Nearest x2 upsampling kernels (cuda/upsample.cu), every version's launcher,
// C-callable, taking the backend's struct hsd_upsample_params. Production:
// hsd_cuda_upsample_nearest2x() (cuda/registry.h).
#ifndef HSD_CUDA_UPSAMPLE_CUH
#define HSD_CUDA_UPSAMPLE_CUH

#include <cuda_runtime_api.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

enum hsd_status hsd_upsample_nearest2x_v1_vec8(const struct hsd_upsample_params *p,
                                               cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
