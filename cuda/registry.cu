// The kernel registry tables (see registry.h). One row per kernel version;
// a version is added here when its launcher exists and is never renumbered
// or removed (a retired version loses its flags and keeps its row with the
// measurement that retired it, in its .cu header).
//
// Invariants (checked by tests/unit/test_cuda_registry.c, no GPU needed):
// every table has exactly one PRODUCTION and one REFERENCE row, names start
// with hsd_ and carry _v<N>_, min_arch >= 80, a status line on every row.
#include "registry.h"

#include "add_bias.cuh"
#include "attention.cuh"
#include "concat.cuh"
#include "conv2d.cuh"
#include "eltwise.cuh"
#include "geglu.cuh"
#include "groupnorm.cuh"
#include "layernorm.cuh"
#include "lora.cuh"
#include "sampler_step.cuh"
#include "step_gather.cuh"
#include "tanh_clamp.cuh"
#include "timestep_embedding.cuh"
#include "upsample.cuh"

namespace {

// Where a version stands. Change a row's status only with the evidence
// (the device-check log that showed it) named in its .cu header.
constexpr const char *kNotRun =
    "compiled for sm_80/sm_90; passes the CPU emulation; not yet run on a GPU";

// Checked in host emulation only (cuda/emulate.cuh, test_cuda_*_emulated),
// built for sm_80/sm_90.
constexpr const char *kEmulated = "compiled, checked in host emulation, not yet run on a GPU";

constexpr unsigned P = HSD_CUDA_PRODUCTION, R = HSD_CUDA_REFERENCE;

const hsd_cuda_attention_entry k_attention[] = {
    {{"hsd_attn_fwd_v1_rowwarp", R, 80, kNotRun,
      "one warp per query row, fp32 CUDA cores, online softmax; any d <= 256"},
     hsd_attn_fwd_v1_rowwarp},
    {{"hsd_attn_fwd_v2_flash", P, 80, kNotRun,
      "FlashAttention-2 on mma.sync m16n8k16, 64x64 tiles, cp.async double buffer, d padded "
      "to 32/48/64/80/96/128/160"},
     hsd_attn_fwd_v2_flash},
    {{"hsd_attn_fwd_v3_wide", HSD_CUDA_FALLBACK, 80, kEmulated,
      "16 rows per block on mma.sync, S and P through shared memory, warps split the head "
      "columns; d padded to 256/384/512 (the SD VAE's single 512-wide head)"},
     hsd_attn_fwd_v3_wide},
};

const hsd_cuda_conv2d_entry k_conv2d[] = {
    {{"hsd_conv2d_v1_direct", R, 80, kNotRun, "one thread per output, fp32 loop over taps"},
     hsd_conv2d_v1_direct},
    {{"hsd_conv2d_v2_igemm", P, 80, kNotRun,
      "implicit GEMM on mma.sync, 128x64x32 tiles, 3-stage cp.async, bias+residual epilogue"},
     hsd_conv2d_v2_igemm},
};

const hsd_cuda_group_norm_entry k_group_norm[] = {
    {{"hsd_group_norm_v1_twopass", R, 80, kNotRun,
      "block per (group, sample), double two-pass statistics"},
     hsd_group_norm_v1_twopass},
    {{"hsd_group_norm_v2_welford", P, 80, kNotRun,
      "Welford/Chan partials over pixel splits, then a 16-byte apply (+SiLU) pass"},
     hsd_group_norm_v2_welford},
};

const hsd_cuda_layer_norm_entry k_layer_norm[] = {
    {{"hsd_layer_norm_v1_warp", P | R, 80, kNotRun, "warp per row, two-pass fp32, 16-byte"},
     hsd_layer_norm_v1_warp},
};

const hsd_cuda_geglu_entry k_geglu[] = {
    {{"hsd_geglu_v1_vec8", P | R, 80, kNotRun, "8 outputs per thread, 16-byte accesses"},
     hsd_geglu_v1_vec8},
};

const hsd_cuda_upsample_nearest2x_entry k_upsample_nearest2x[] = {
    {{"hsd_upsample_nearest2x_v1_vec8", P | R, 80, kNotRun,
      "16-byte input vector to its 4 output pixels"},
     hsd_upsample_nearest2x_v1_vec8},
};

const hsd_cuda_timestep_embedding_entry k_timestep_embedding[] = {
    {{"hsd_timestep_embedding_v1_direct", P | R, 80, kNotRun,
      "thread per (sample, frequency), accurate expf/sinf/cosf"},
     hsd_timestep_embedding_v1_direct},
};

const hsd_cuda_add_entry k_add[] = {
    {{"hsd_add_v1_vec8", P | R, 80, kNotRun, "16-byte grid-stride"}, hsd_add_v1_vec8},
};
const hsd_cuda_silu_entry k_silu[] = {
    {{"hsd_silu_v1_vec8", P | R, 80, kNotRun, "16-byte grid-stride"}, hsd_silu_v1_vec8},
};
const hsd_cuda_gelu_entry k_gelu[] = {
    {{"hsd_gelu_v1_vec8", P | R, 80, kNotRun, "16-byte grid-stride, x * normcdf(x)"},
     hsd_gelu_v1_vec8},
};
const hsd_cuda_quick_gelu_entry k_quick_gelu[] = {
    {{"hsd_quick_gelu_v1_vec8", P | R, 80, kNotRun, "16-byte grid-stride"},
     hsd_quick_gelu_v1_vec8},
};
const hsd_cuda_relu_entry k_relu[] = {
    {{"hsd_relu_v1_vec8", P | R, 80, kNotRun, "16-byte grid-stride, NaN propagated"},
     hsd_relu_v1_vec8},
};

const hsd_cuda_concat_channels_entry k_concat_channels[] = {
    {{"hsd_concat_channels_v1_vec8", P | R, 80, kEmulated,
      "16-byte output vector from a or b, grid-stride"},
     hsd_concat_channels_v1_vec8},
};
const hsd_cuda_add_bias_entry k_add_bias[] = {
    {{"hsd_add_bias_v1_vec8", P | R, 80, kEmulated,
      "16-byte in-place x vector plus its sample's bias vector, grid-stride"},
     hsd_add_bias_v1_vec8},
};
const hsd_cuda_tanh_clamp_entry k_tanh_clamp[] = {
    {{"hsd_tanh_clamp_v1_vec8", P | R, 80, kEmulated,
      "16-byte grid-stride, accurate tanhf in fp32"},
     hsd_tanh_clamp_v1_vec8},
};

const hsd_cuda_step_input_entry k_step_input[] = {
    {{"hsd_step_input_v1_direct", P | R, 80, kEmulated,
      "thread per (item, element), x (/ input_div) to the item's cond and uncond fp16 rows"},
     hsd_step_input_v1_direct},
};
const hsd_cuda_cfg_combine_entry k_cfg_combine[] = {
    {{"hsd_cfg_combine_v1_direct", P | R, 80, kEmulated,
      "thread per (item, element), u + g (c - u) from fp16 rows to fp32, no FMA"},
     hsd_cfg_combine_v1_direct},
};
const hsd_cuda_sampler_step_entry k_sampler_step[] = {
    {{"hsd_sampler_step_v1_direct", P | R, 80, kEmulated,
      "thread per (item, element), backend/step_math.h per kind, fp32, no FMA"},
     hsd_sampler_step_v1_direct},
};
const hsd_cuda_step_gather_entry k_step_gather[] = {
    {{"hsd_step_gather_v1_direct", P | R, 80, kEmulated,
      "grid (blocks, items): slot -> batch latent, history (+ noise), step row, t, fp16 context"},
     hsd_step_gather_v1_direct},
};
const hsd_cuda_step_scatter_entry k_step_scatter[] = {
    {{"hsd_step_scatter_v1_direct", P | R, 80, kEmulated,
      "grid (blocks, items): batch -> slot latent and history, call counter + 1"},
     hsd_step_scatter_v1_direct},
};
const hsd_cuda_lora_entry k_lora[] = {
    {{"hsd_lora_v1_tiled", P | R, 80, kEmulated,
      "shrink and expand GEMMs per run of samples, 64x64 fp32 tiles, per-sample scale by value"},
     hsd_lora_v1_tiled},
};

template <typename E, int N>
const E *find_flag(const E (&table)[N], unsigned flag) {
    for (int i = 0; i < N; i++)
        if (table[i].info.flags & flag) return &table[i];
    return nullptr;
}

thread_local const char *t_last_version = "";

// Production; where it does not take the shape, each FALLBACK row in table
// order, then the reference.
template <typename E, int N, typename Params>
enum hsd_status run_production(const E (&table)[N], const Params *p, cudaStream_t stream) {
    const E *prod = find_flag(table, HSD_CUDA_PRODUCTION);
    const E *ref = find_flag(table, HSD_CUDA_REFERENCE);
    if (!prod || !ref) return hsd_fail(HSD_ERR_INTERNAL, "kernel registry: table without production/reference");
    t_last_version = prod->info.name;
    enum hsd_status st = prod->launch(p, stream);
    for (int i = 0; i < N && st == HSD_ERR_UNSUPPORTED; i++) {
        if (!(table[i].info.flags & HSD_CUDA_FALLBACK) || &table[i] == prod || &table[i] == ref)
            continue;
        t_last_version = table[i].info.name;
        st = table[i].launch(p, stream);
    }
    if (st == HSD_ERR_UNSUPPORTED && ref != prod) {
        t_last_version = ref->info.name;
        st = ref->launch(p, stream);
    }
    return st;
}

}  // namespace

#define HSD_CUDA_DEFINE_OP(op, params)                                                       \
    extern "C" const struct hsd_cuda_##op##_entry *hsd_cuda_##op##_table(int *count) {      \
        *count = (int)(sizeof k_##op / sizeof k_##op[0]);                                  \
        return k_##op;                                                                      \
    }                                                                                       \
    extern "C" const struct hsd_cuda_##op##_entry *hsd_cuda_##op##_production(void) {       \
        return find_flag(k_##op, HSD_CUDA_PRODUCTION);                                      \
    }                                                                                       \
    extern "C" enum hsd_status hsd_cuda_##op(const struct params *p, cudaStream_t stream) { \
        return run_production(k_##op, p, stream);                                           \
    }
HSD_CUDA_OPS(HSD_CUDA_DEFINE_OP)
#undef HSD_CUDA_DEFINE_OP

extern "C" const char *hsd_cuda_last_version(void) { return t_last_version; }

extern "C" int hsd_cuda_kernel_runs_on(const struct hsd_cuda_kernel_info *info, int arch) {
    if (arch < info->min_arch) return 0;
    if ((info->flags & HSD_CUDA_NEEDS_SM90A) && arch != 90) return 0;
    return 1;
}
