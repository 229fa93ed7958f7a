// TEST DOUBLE of the CUDA backend's numerics, for tests only (never linked
// into the library or the CLI; it is not a product backend): the backend.h
// op table of cuda/backend_cuda.c run on the host, so the whole models can
// be checked in CI without a GPU with every op going through the CUDA
// kernels the real backend runs.
//
// - Memory: host memory (256-byte aligned malloc, filled with fp16 NaN so
//   a read of memory no op wrote shows) holding fp16 values
//   (act_size 2), as on the device. upload rounds fp32 -> fp16 to nearest
//   even (core/dtype.h, as cu_upload does), upload_f32 copies raw (the
//   timesteps, the step ops' latents and history), download converts
//   back, download_f32 copies raw.
// - Every op but linear calls the registry's production entry point
//   hsd_cuda_<op>(p, stream) from hsd_cuda_emu: the kernel files compiled as
//   host C++ over cuda/emulate.cuh (tests/cuda.cmake), the same launchers,
//   kernels, layouts and reference fallbacks the GPU runs. conv2d always
//   takes the hsd kernels (the GPU backend may pick cuDNN per shape).
// - linear: what cuBLASLt computes (backend_cuda_linear.c: fp16 A/B/C/D,
//   CUBLAS_COMPUTE_32F, bias epilogue): fp16 inputs and weights widened to
//   fp32, an fp32 GEMM (OpenBLAS cblas_sgemm), + bias + residual in fp32,
//   rounded once to fp16. residual may be `out` itself. The GPU's summation
//   order and split-k differ: only the semantics are modelled.
// - graph_begin/graph_end: NULL (ops run as they are called) unless
//   hsd_backend_emu_graphs turned them on (below); synchronize:
//   nothing to wait for, the emulation runs each launch to completion
//   before returning.
// The emulation keeps process-global state (cuda/emulate.cuh): one thread
// at a time may run ops on these backends.
//
// Used by tests/unit/test_models_cuda_emulated.c.
#ifndef HSD_TEST_EMU_BACKEND_H
#define HSD_TEST_EMU_BACKEND_H

#include "backend/backend.h"

// desc "cuda-emulated (host)", kind HSD_BACKEND_CUDA, device -1.
enum hsd_status hsd_backend_emu_create(struct hsd_backend **out);

// Per-op bookkeeping, to show which ops a model ran on the kernels.
enum hsd_emu_op {
    HSD_EMU_CONV2D,
    HSD_EMU_LINEAR,
    HSD_EMU_GROUP_NORM,
    HSD_EMU_LAYER_NORM,
    HSD_EMU_ATTENTION,
    HSD_EMU_GEGLU,
    HSD_EMU_UPSAMPLE_NEAREST2X,
    HSD_EMU_CONCAT_CHANNELS,
    HSD_EMU_ADD_BIAS,
    HSD_EMU_ADD,
    HSD_EMU_SILU,
    HSD_EMU_GELU,
    HSD_EMU_QUICK_GELU,
    HSD_EMU_RELU,
    HSD_EMU_TANH_CLAMP,
    HSD_EMU_TIMESTEP_EMBEDDING,
    HSD_EMU_STEP_INPUT,
    HSD_EMU_CFG_COMBINE,
    HSD_EMU_SAMPLER_STEP,
    HSD_EMU_STEP_GATHER,
    HSD_EMU_STEP_SCATTER,
    HSD_EMU_LORA,
    HSD_EMU_OP_COUNT
};
const char *hsd_backend_emu_op_name(enum hsd_emu_op op);
// Calls of `op` since creation, and how many of them the registry ran on
// a fallback or its reference version because the production one answered
// HSD_ERR_UNSUPPORTED for the shape (seen as the message that answer left
// behind on a call that then succeeded).
long hsd_backend_emu_calls(const struct hsd_backend *be, enum hsd_emu_op op);
long hsd_backend_emu_fallbacks(const struct hsd_backend *be, enum hsd_emu_op op);

// Graphs (off by default, as the existing tests expect): graph_begin /
// graph_end with cuda/backend_cuda.c's modes per key: the first call runs
// eagerly, the second records the ops (params by value, nothing runs) and
// graph_end runs the recording, later calls run only the recording. So a
// replay computes with the recorded arguments: anything a step changes on
// the host between replays is lost, as on the GPU. Transfers and
// allocations between graph_begin and graph_end fail, as on the GPU.
void hsd_backend_emu_graphs(struct hsd_backend *be, int on);
// Keys seen, recordings made, replays run.
void hsd_backend_emu_graph_stats(const struct hsd_backend *be, long *graphs, long *captures,
                                 long *replays);

#endif
