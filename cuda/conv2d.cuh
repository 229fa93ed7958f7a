// Convolution kernels (cuda/conv2d.cu): every version's launcher, C-callable,
// all taking the backend's struct hsd_conv2d_params (NHWC fp16 maps, weights
// [co, kh, kw, ci]). Production calls hsd_cuda_conv2d() (cuda/registry.h).
#ifndef HSD_CUDA_CONV2D_CUH
#define HSD_CUDA_CONV2D_CUH

#include <cuda_runtime_api.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

enum hsd_status hsd_conv2d_v1_direct(const struct hsd_conv2d_params *p, cudaStream_t stream);
enum hsd_status hsd_conv2d_v2_igemm(const struct hsd_conv2d_params *p, cudaStream_t stream);

// Output size of a conv (ho, wo), as the CPU backend computes it.
void hsd_conv2d_out_size(const struct hsd_conv2d_params *p, int *ho, int *wo);

#ifdef __cplusplus
}
#endif
#endif
