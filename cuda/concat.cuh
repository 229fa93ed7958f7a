// Channel concatenation kernels (cuda/concat.cu): out[m, ca + cb] = [a | b]
// along the last dim (torch.cat(dim=1) in NCHW = last dim in NHWC, the
// U-Net up blocks' skip connections), every version's launcher,
// C-callable, taking the backend's struct hsd_concat_params. Production:
// hsd_cuda_concat_channels() (cuda/registry.h).
#ifndef HSD_CUDA_CONCAT_CUH
#define HSD_CUDA_CONCAT_CUH

#include <cuda_runtime_api.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

enum hsd_status hsd_concat_channels_v1_vec8(const struct hsd_concat_params *p,
                                            cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
