// TEST DOUBLE for shape queries, for tests only: a backend.h op table that
// computes nothing and records the shape of every op call, so a real model
// (SD 1.5's U-Net, the SD VAE at 1024x1024, OpenCLIP-H) can be run at full
// size in no time and no memory.
//
// - Memory: alloc hands out addresses that are never backed by memory
//   (256-byte aligned, as cudaMalloc's, from a range no one maps); upload,
//   upload_f32 and free do nothing, download writes zeros. Model code never
//   dereferences backend buffers on the host, so none of this is read.
// - weight_mode HSD_WEIGHTS_RECEIVE: the loader skips filling random
//   weights (it would otherwise make ~1 GB of them for nothing).
// - act_size 2, kind HSD_BACKEND_CUDA: the models plan their arenas as for
//   cuda:N (fp16), so offsets and alignments are the GPU's.
// - Every op call is recorded once per distinct shape (key: every dim,
//   stride and flag, the 16-byte alignment of each buffer and which
//   buffers alias) with a call count and the model that first made it, and
//   grouped into shape classes (class: the same key without the spatial
//   dims: batch, pixels, tokens, element counts only modulo 8), the unit
//   test_cuda_model_shapes runs at real widths on tiny sizes.
//
// Used by tests/unit/test_cuda_model_shapes.c.
#ifndef HSD_TEST_SHAPE_BACKEND_H
#define HSD_TEST_SHAPE_BACKEND_H

#include <stddef.h>

#include "backend/backend.h"
#include "emu_backend.h"

union hsd_shape_params {
    struct hsd_conv2d_params conv2d;
    struct hsd_linear_params linear;
    struct hsd_group_norm_params group_norm;
    struct hsd_layer_norm_params layer_norm;
    struct hsd_attention_params attention;
    struct hsd_geglu_params geglu;
    struct hsd_upsample_params upsample;
    struct hsd_concat_params concat;
    struct hsd_add_bias_params add_bias;
    struct hsd_eltwise_params eltwise;  // add, silu, gelu, quick_gelu, relu
    struct hsd_tanh_clamp_params tanh_clamp;
    struct hsd_timestep_embedding_params temb;
};

struct hsd_shape_call {
    enum hsd_emu_op op;          // the op (enum shared with the emulated backend)
    union hsd_shape_params p;    // the first call's params (fake buffer addresses)
    char key[224];               // every dim, stride, flag, alignment, alias
    char cls[224];               // key without the spatial dims
    char model[48];              // the model that first made this call
    long calls;
};

enum hsd_status hsd_backend_shape_create(struct hsd_backend **out);
// Names the model whose calls follow (for the report).
void hsd_backend_shape_set_model(struct hsd_backend *be, const char *model);
size_t hsd_backend_shape_count(const struct hsd_backend *be);
const struct hsd_shape_call *hsd_backend_shape_at(const struct hsd_backend *be, size_t i);

#endif
