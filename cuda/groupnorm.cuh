// Group norm kernels (cuda/groupnorm.cu): torch.nn.GroupNorm over NHWC,
// optional fused SiLU; every version's launcher, C-callable, all taking the
// backend's struct hsd_group_norm_params. Production: hsd_cuda_group_norm()
// (cuda/registry.h).
#ifndef HSD_CUDA_GROUPNORM_CUH
#define HSD_CUDA_GROUPNORM_CUH

#include <cuda_runtime_api.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

enum hsd_status hsd_group_norm_v1_twopass(const struct hsd_group_norm_params *p,
                                          cudaStream_t stream);
enum hsd_status hsd_group_norm_v2_welford(const struct hsd_group_norm_params *p,
                                          cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
