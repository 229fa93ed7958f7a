// Step-op kernels (cuda/sampler_step.cu): scale_model_input into the
// U-Net's fp16 input rows, CFG combine of its fp16 output rows, and the
// sampler step of every kind on fp32 latents and history
// (host/backend/step_ops.h), every version's launcher, C-callable.
// Production: hsd_cuda_step_input(), hsd_cuda_cfg_combine(),
// hsd_cuda_sampler_step() (cuda/registry.h).
#ifndef HSD_CUDA_SAMPLER_STEP_CUH
#define HSD_CUDA_SAMPLER_STEP_CUH

#include <cuda_runtime_api.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

enum hsd_status hsd_step_input_v1_direct(const struct hsd_step_input_params *p,
                                         cudaStream_t stream);
enum hsd_status hsd_cfg_combine_v1_direct(const struct hsd_cfg_combine_params *p,
                                          cudaStream_t stream);
enum hsd_status hsd_sampler_step_v1_direct(const struct hsd_sampler_step_params *p,
                                           cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
