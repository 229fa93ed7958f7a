// State of one CUDA backend, shared by backend_cuda.c (ops, memory,
// graphs), backend_cuda_linear.c (cuBLASLt) and backend_cuda_nccl.c
// (weight broadcast). Not a public header.
#ifndef HSD_CUDA_BACKEND_CUDA_INTERNAL_H
#define HSD_CUDA_BACKEND_CUDA_INTERNAL_H

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <stdint.h>

#include "backend/backend.h"

struct hsd_cudnn_conv;

enum cuda_mode {
    CUDA_EAGER,    // ops run as they are called
    CUDA_CAPTURE,  // ops are recorded into the stream's graph
    CUDA_REPLAY,   // ops return at once; graph_end launches the recorded graph
};

// One cuBLASLt matmul shape, planned once (descriptors + algorithm).
struct cuda_lt_plan {
    int m, k, n, has_bias, has_res, align;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, cd;
    cublasLtMatmulAlgo_t algo;
};

struct cuda_graph {
    struct hsd_graph_key key;
    int calls;                // graph_begin calls with this key
    cudaGraphExec_t exec;     // NULL until recorded
    uint64_t last_use;
};

enum conv_choice { CONV_HSD = 1, CONV_CUDNN = 2 };

struct cuda_conv_shape {
    int n, h, w, ci, co, kh, kw, stride, pad, pad_bottom, pad_right, has_bias, has_res;
    enum conv_choice choice;
};

struct cuda_alloc {
    void *p;
    size_t bytes;
};

#define CUDA_MAX_GRAPHS 64

struct cuda_impl {
    int device;
    size_t total_mem;               // the device's, bytes
    cudaStream_t stream;
    enum cuda_mode mode;
    int lost;                       // a device error was seen: every later call fails
    char lost_msg[256];

    // Pinned host staging for uploads/downloads (fp16 conversion on the host).
    unsigned char *stage;
    size_t stage_cap, stage_used;

    cublasLtHandle_t lt;
    void *lt_ws;
    size_t lt_ws_bytes;
    struct cuda_lt_plan *plans;
    int n_plans, cap_plans;

    int graphs_enabled;
    struct cuda_graph graphs[CUDA_MAX_GRAPHS];
    int n_graphs;
    struct cuda_graph *cur;
    uint64_t tick;
    int recorded;
    long replays;

    enum { CONV_MODE_AUTO, CONV_MODE_HSD, CONV_MODE_CUDNN } conv_mode;
    struct hsd_cudnn_conv *cudnn;   // NULL: no cuDNN (build or runtime)
    struct cuda_conv_shape *convs;
    int n_convs, cap_convs;
    void *tune_buf;                 // scratch output for conv measurements
    size_t tune_bytes;

    struct cuda_alloc *allocs;
    size_t n_allocs, cap_allocs;
    size_t bytes_in_use, peak_bytes;

    int recording;                  // hsd_backend_cuda_record_uploads
    struct cuda_alloc *rec;         // uploads in order (dst, bytes)
    size_t n_rec, cap_rec;
};

// Marks the backend lost after a device error and returns HSD_ERR_DEVICE
// with `what` and the CUDA error text.
enum hsd_status hsd_cuda_be_lost(struct cuda_impl *c, const char *what, cudaError_t e);

// cuBLASLt linear (backend_cuda_linear.c).
enum hsd_status hsd_cuda_be_linear(struct hsd_backend *be, const struct hsd_linear_params *p);
enum hsd_status hsd_cuda_be_linear_init(struct cuda_impl *c);
void hsd_cuda_be_linear_destroy(struct cuda_impl *c);

#endif
