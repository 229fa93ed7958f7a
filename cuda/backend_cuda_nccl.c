// Weight broadcast for multi-GPU serving (backend_cuda.h): the first GPU
// reads the weights from disk; the others allocated the same buffers in
// HSD_WEIGHTS_RECEIVE mode and get their contents by ncclBroadcast from
// rank 0, one communicator per GPU made by ncclCommInitAll in this thread.
// Without NCCL in the build, broadcast answers HSD_ERR_UNSUPPORTED and the
// caller loads every GPU from the file instead.
#include <stdio.h>
#include <stdlib.h>

#include "backend_cuda.h"
#include "backend_cuda_internal.h"
#include "core/log.h"

#ifdef HSD_HAVE_NCCL
#include <nccl.h>

int hsd_backend_cuda_have_nccl(void) { return 1; }

// Broadcasts per NCCL group: bounded so one group never queues thousands of
// operations (NCCL aggregates a group's calls into one launch per comm).
enum { GROUP_OPS = 128 };

static enum hsd_status check_records(struct hsd_backend *const *bes, int n) {
    const struct cuda_impl *c0 = bes[0]->impl;
    for (int r = 0; r < n; r++) {
        if (bes[r]->kind != HSD_BACKEND_CUDA)
            return hsd_fail(HSD_ERR_INVALID_ARG, "broadcast: backend %d is not a GPU", r);
        const struct cuda_impl *c = bes[r]->impl;
        if (c->n_rec != c0->n_rec)
            return hsd_fail(HSD_ERR_INTERNAL,
                            "broadcast: cuda:%d recorded %zu weight uploads, cuda:%d %zu (the "
                            "models were not loaded the same way)",
                            c0->device, c0->n_rec, c->device, c->n_rec);
        for (size_t i = 0; i < c->n_rec; i++)
            if (c->rec[i].bytes != c0->rec[i].bytes)
                return hsd_fail(HSD_ERR_INTERNAL,
                                "broadcast: upload %zu is %zu bytes on cuda:%d, %zu on cuda:%d",
                                i, c0->rec[i].bytes, c0->device, c->rec[i].bytes, c->device);
        if (c->lost) return hsd_fail(HSD_ERR_DEVICE, "cuda:%d lost: %s", c->device, c->lost_msg);
    }
    return HSD_OK;
}

enum hsd_status hsd_backend_cuda_broadcast(struct hsd_backend *const *bes, int n) {
    if (n < 2) return HSD_OK;
    enum hsd_status s = check_records(bes, n);
    if (s) return s;
    int *devs = malloc((size_t)n * sizeof *devs);
    ncclComm_t *comms = calloc((size_t)n, sizeof *comms);
    if (!devs || !comms) {
        free(devs);
        free(comms);
        return hsd_fail(HSD_ERR_NOMEM, "broadcast: out of memory");
    }
    size_t bytes = 0;
    const struct cuda_impl *c0 = bes[0]->impl;
    for (int r = 0; r < n; r++) devs[r] = ((const struct cuda_impl *)bes[r]->impl)->device;
    for (size_t i = 0; i < c0->n_rec; i++) bytes += c0->rec[i].bytes;
    ncclResult_t nr = ncclCommInitAll(comms, n, devs);
    if (nr != ncclSuccess) {
        s = hsd_fail(HSD_ERR_DEVICE, "ncclCommInitAll over %d GPUs: %s", n, ncclGetErrorString(nr));
        goto done;
    }
    for (size_t i = 0; i < c0->n_rec && !s; i += GROUP_OPS) {
        size_t end = i + GROUP_OPS < c0->n_rec ? i + GROUP_OPS : c0->n_rec;
        nr = ncclGroupStart();
        for (size_t j = i; j < end && nr == ncclSuccess; j++)
            for (int r = 0; r < n && nr == ncclSuccess; r++) {
                const struct cuda_impl *c = bes[r]->impl;
                nr = ncclBroadcast(c0->rec[j].p, c->rec[j].p, c->rec[j].bytes, ncclUint8, 0,
                                   comms[r], c->stream);
            }
        ncclResult_t ne = ncclGroupEnd();
        if (nr == ncclSuccess) nr = ne;
        if (nr != ncclSuccess)
            s = hsd_fail(HSD_ERR_DEVICE, "ncclBroadcast of weights: %s", ncclGetErrorString(nr));
    }
    for (int r = 0; r < n && !s; r++) {
        struct cuda_impl *c = bes[r]->impl;
        cudaError_t e = cudaSetDevice(c->device);
        if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
        if (e != cudaSuccess) s = hsd_cuda_be_lost(c, "weight broadcast", e);
    }
    if (!s)
        HSD_INFO("broadcast %zu weight buffers (%.1f MB) from cuda:%d to %d more GPU(s) over NCCL",
                 c0->n_rec, bytes / 1048576.0, c0->device, n - 1);
done:
    for (int r = 0; r < n; r++)
        if (comms[r]) ncclCommDestroy(comms[r]);
    free(comms);
    free(devs);
    return s;
}

#else

int hsd_backend_cuda_have_nccl(void) { return 0; }

enum hsd_status hsd_backend_cuda_broadcast(struct hsd_backend *const *bes, int n) {
    (void)bes;
    if (n < 2) return HSD_OK;
    return hsd_fail(HSD_ERR_UNSUPPORTED, "weight broadcast: this build has no NCCL");
}

#endif
