// The resident step's gather and scatter kernels (cuda/step_gather.cu,
// host/backend/resident_ops.h), every version's launcher, C-callable.
// Production: hsd_cuda_step_gather(), hsd_cuda_step_scatter() (cuda/registry.h).
#ifndef HSD_CUDA_STEP_GATHER_CUH
#define HSD_CUDA_STEP_GATHER_CUH

#include <cuda_runtime_api.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

enum hsd_status hsd_step_gather_v1_direct(const struct hsd_step_gather_params *p,
                                          cudaStream_t stream);
enum hsd_status hsd_step_scatter_v1_direct(const struct hsd_step_scatter_params *p,
                                           cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
