// The kernel registry: one table per op listing every version of that op's
// CUDA kernel (docs/conventions.md: versions live side by side; production, tests and
// benchmarks walk the same table). C header: the C tests include it.
//
// For each op X in HSD_CUDA_OPS below this header declares
//   typedef enum hsd_status (*hsd_cuda_X_fn)(const struct <params> *p, cudaStream_t s);
//   struct hsd_cuda_X_entry { struct hsd_cuda_kernel_info info; hsd_cuda_X_fn launch; };
//   const struct hsd_cuda_X_entry *hsd_cuda_X_table(int *count);  // every version
//   const struct hsd_cuda_X_entry *hsd_cuda_X_production(void);    // the one production runs
//   enum hsd_status hsd_cuda_X(const struct <params> *p, cudaStream_t s);
// hsd_cuda_X() runs the production version; where that version answers
// HSD_ERR_UNSUPPORTED for a shape (odd head dims past its padding, channel
// counts that break its 16-byte loads, ...) it tries the FALLBACK rows in
// table order (fast versions for the shapes production leaves out: the VAE's
// 512-wide attention head), then the table's reference version, which takes
// every shape the CPU backend takes. hsd_cuda_last_version() names the row
// that ran.
//
// Every launcher: device fp16 buffers (fp32 timesteps), fp32 statistics and
// accumulation, validates the params like the CPU backend, launches on
// `stream`, checks cudaGetLastError after each launch, never synchronizes.
//
// Tables (status of each version: see the header of its .cu file):
//   attention           hsd_attn_fwd_v1_rowwarp (reference), hsd_attn_fwd_v2_flash (production),
//                       hsd_attn_fwd_v3_wide (fallback: d 161..512)
//   conv2d              hsd_conv2d_v1_direct (reference), hsd_conv2d_v2_igemm (production)
//   group_norm          hsd_group_norm_v1_twopass (reference), hsd_group_norm_v2_welford (production)
//   layer_norm          hsd_layer_norm_v1_warp (reference, production)
//   geglu               hsd_geglu_v1_vec8 (reference, production)
//   upsample_nearest2x  hsd_upsample_nearest2x_v1_vec8 (reference, production)
//   timestep_embedding  hsd_timestep_embedding_v1_direct (reference, production)
//   add/silu/gelu/quick_gelu/relu  hsd_<op>_v1_vec8 (reference, production)
//   concat_channels     hsd_concat_channels_v1_vec8 (reference, production)
//   add_bias            hsd_add_bias_v1_vec8 (reference, production)
//   tanh_clamp          hsd_tanh_clamp_v1_vec8 (reference, production)
//   step_input, cfg_combine, sampler_step, step_gather, step_scatter
//                       hsd_<op>_v1_direct (reference, production)
//   lora                hsd_lora_v1_tiled (reference, production)
#ifndef HSD_CUDA_REGISTRY_H
#define HSD_CUDA_REGISTRY_H

#include <cuda_runtime_api.h>

#include "backend/backend.h"
#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum hsd_cuda_kernel_flags {
    HSD_CUDA_PRODUCTION = 1u << 0,    // what hsd_cuda_X() runs (one per table)
    HSD_CUDA_REFERENCE = 1u << 1,     // simple, obviously correct, every shape: the fallback
    HSD_CUDA_EXPERIMENTAL = 1u << 2,  // not for production; benchmarked and tested only
    HSD_CUDA_NEEDS_SM90A = 1u << 3,   // wgmma/setmaxnreg code: runs on sm_90 devices only
    HSD_CUDA_FALLBACK = 1u << 4,      // tried (in table order) where production answers
                                      // unsupported, before the reference
};

struct hsd_cuda_kernel_info {
    const char *name;    // hsd_<op>_v<N>_<what>, never renumbered
    unsigned flags;      // enum hsd_cuda_kernel_flags
    int min_arch;        // lowest compute capability, major*10 + minor (80 = A100)
    const char *status;  // what has been verified, e.g. "compiled, not yet run on a GPU"
    const char *what;    // one line: what the version does
};

// X(op, params struct tag)
#define HSD_CUDA_OPS(X)                                  \
    X(attention, hsd_attention_params)                   \
    X(conv2d, hsd_conv2d_params)                         \
    X(group_norm, hsd_group_norm_params)                 \
    X(layer_norm, hsd_layer_norm_params)                 \
    X(geglu, hsd_geglu_params)                           \
    X(upsample_nearest2x, hsd_upsample_params)           \
    X(timestep_embedding, hsd_timestep_embedding_params) \
    X(add, hsd_eltwise_params)                           \
    X(silu, hsd_eltwise_params)                          \
    X(gelu, hsd_eltwise_params)                          \
    X(quick_gelu, hsd_eltwise_params)                    \
    X(relu, hsd_eltwise_params)                          \
    X(concat_channels, hsd_concat_params)                \
    X(add_bias, hsd_add_bias_params)                     \
    X(tanh_clamp, hsd_tanh_clamp_params)                 \
    X(step_input, hsd_step_input_params)                 \
    X(cfg_combine, hsd_cfg_combine_params)               \
    X(sampler_step, hsd_sampler_step_params)             \
    X(step_gather, hsd_step_gather_params)               \
    X(step_scatter, hsd_step_scatter_params)             \
    X(lora, hsd_lora_params)

#define HSD_CUDA_DECLARE_OP(op, params)                                                  \
    typedef enum hsd_status (*hsd_cuda_##op##_fn)(const struct params *p,                \
                                                  cudaStream_t stream);                  \
    struct hsd_cuda_##op##_entry {                                                       \
        struct hsd_cuda_kernel_info info;                                                \
        hsd_cuda_##op##_fn launch;                                                       \
    };                                                                                   \
    const struct hsd_cuda_##op##_entry *hsd_cuda_##op##_table(int *count);               \
    const struct hsd_cuda_##op##_entry *hsd_cuda_##op##_production(void);                \
    enum hsd_status hsd_cuda_##op(const struct params *p, cudaStream_t stream);
HSD_CUDA_OPS(HSD_CUDA_DECLARE_OP)
#undef HSD_CUDA_DECLARE_OP

// The name of the version the calling thread's last hsd_cuda_X() call ran
// (production, a fallback or the reference), or "" before any call. For
// tests and the shape query (tests/unit/test_cuda_model_shapes.c).
const char *hsd_cuda_last_version(void);

// Whether a version can run on the current device (compute capability
// `arch` = major*10 + minor): min_arch, and sm_90 exactly for sm_90a code.
int hsd_cuda_kernel_runs_on(const struct hsd_cuda_kernel_info *info, int arch);

#ifdef __cplusplus
}
#endif

#endif
