// The unfused LoRA side product (cuda/lora.cu, backend.h struct
// hsd_lora_params), every version's launcher, C-callable.
// Production: hsd_cuda_lora() (cuda/registry.h).
#ifndef HSD_CUDA_LORA_CUH
#define HSD_CUDA_LORA_CUH

#include <cuda_runtime_api.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

enum hsd_status hsd_lora_v1_tiled(const struct hsd_lora_params *p, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
