// Elementwise kernels over struct hsd_eltwise_params (cuda/eltwise.cu):
// add, silu, gelu (erf), quick_gelu, relu; every version's launcher,
// C-callable. Production: hsd_cuda_add() etc. (cuda/registry.h).
#ifndef HSD_CUDA_ELTWISE_CUH
#define HSD_CUDA_ELTWISE_CUH

#include <cuda_runtime_api.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

enum hsd_status hsd_add_v1_vec8(const struct hsd_eltwise_params *p, cudaStream_t stream);
enum hsd_status hsd_silu_v1_vec8(const struct hsd_eltwise_params *p, cudaStream_t stream);
enum hsd_status hsd_gelu_v1_vec8(const struct hsd_eltwise_params *p, cudaStream_t stream);
enum hsd_status hsd_quick_gelu_v1_vec8(const struct hsd_eltwise_params *p, cudaStream_t stream);
enum hsd_status hsd_relu_v1_vec8(const struct hsd_eltwise_params *p, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
