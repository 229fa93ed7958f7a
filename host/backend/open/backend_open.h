// Opening the backends that --backend names (backend/backend_spec.h): the
// CPU backend, or GPUs when this build has the CUDA backend (cuda/). Also
// the set of pipelines `hsd serve` runs, one per device, with the weights
// read from disk once and broadcast to the other GPUs over NCCL.
//
// This is its own library (hsd_backends) because it links hsd_cuda, which
// itself builds on hsd_host.
#ifndef HSD_BACKEND_OPEN_H
#define HSD_BACKEND_OPEN_H

#include "backend/backend_spec.h"
#include "pipeline/pipeline.h"

// 1 when this build has the CUDA backend.
int hsd_backend_built_with_cuda(void);

// Turns "cuda" / "cuda:all" into the visible GPUs and checks that every
// listed ordinal exists. HSD_ERR_UNSUPPORTED (built without CUDA) or
// HSD_ERR_NO_DEVICE (no GPU, or no such ordinal), each saying what exists.
enum hsd_status hsd_backend_spec_resolve(struct hsd_backend_spec *spec);

// The backend of one device of a resolved spec: index i of spec->ids, or
// the CPU backend with `threads` (<= 0: every core).
enum hsd_status hsd_backend_open(const struct hsd_backend_spec *spec, int i, int threads,
                                 struct hsd_backend **out);

// For commands that run on one device (generate, edge, run-*, bench):
// parses `text` (NULL = "cpu"), resolves it, requires exactly one device
// ("cuda" = the first visible GPU) and opens it.
enum hsd_status hsd_backend_open_one(const char *text, int threads, struct hsd_backend **out);

// Device memory a backend holds at most (bytes; 0 on the CPU backend).
size_t hsd_backend_peak_bytes(const struct hsd_backend *be);

// One pipeline per device, the same models on each.
struct hsd_pipeline_set {
    int n;
    struct hsd_pipeline *pipes[HSD_MAX_DEVICES];
    struct hsd_backend *bes[HSD_MAX_DEVICES];  // NULL for CPU workers (pipelines own theirs)
    int broadcast;                             // 1: GPUs 1.. got their weights over NCCL
};

// CPU: `cpu_workers` pipelines, each with its own CPU backend of
// pc->threads threads. CUDA: one pipeline per GPU of the resolved spec; the
// first GPU loads from disk, the others receive its weights by NCCL
// broadcast (where NCCL is missing or the broadcast fails, each GPU loads
// from disk, with a warning). pc->backend is ignored.
enum hsd_status hsd_pipeline_set_load(struct hsd_pipeline_set *set,
                                      const struct hsd_pipeline_config *pc,
                                      const struct hsd_backend_spec *spec, int cpu_workers);
void hsd_pipeline_set_free(struct hsd_pipeline_set *set);

#endif
