// Attention forward kernels (cuda/attention.cu, cuda/attention_wide.cu): every version's launcher,
// C-callable, all taking the backend's struct hsd_attention_params. The
// registry (cuda/registry.h) lists them; production calls hsd_cuda_attention().
#ifndef HSD_CUDA_ATTENTION_CUH
#define HSD_CUDA_ATTENTION_CUH

#include <cuda_runtime_api.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

enum hsd_status hsd_attn_fwd_v1_rowwarp(const struct hsd_attention_params *p, cudaStream_t stream);
enum hsd_status hsd_attn_fwd_v2_flash(const struct hsd_attention_params *p, cudaStream_t stream);
// cuda/attention_wide.cu: heads 161..512 wide (the SD VAE's 512).
enum hsd_status hsd_attn_fwd_v3_wide(const struct hsd_attention_params *p, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
