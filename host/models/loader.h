// Weights by name into backend buffers, shared by every model builder (the
// U-Net, the VAEs). A tensor is looked up by its diffusers name, its rank
// and dims checked against what the config implies (HSD_ANY dims take the
// file's value: widths a pruned model narrows), converted to fp32 (conv
// weights re-laid from [co, ci, kh, kw] to [co, kh, kw, ci], backend.h) and
// uploaded into a buffer the model owns. Every use is recorded, so a tensor
// the config does not explain fails the load (hsd_loader_check_all_used):
// config and weights disagree.
//
// Without weights (w == NULL) the loader makes random ones with exactly the
// requested shapes (benchmarks); without a backend (be == NULL) it only
// checks shapes and counts parameters (inspect).
#ifndef HSD_MODELS_LOADER_H
#define HSD_MODELS_LOADER_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "core/dtype.h"
#include "core/status.h"
#include "io/weights.h"

#define HSD_ANY (-1)  // a dim the file decides
#define HSD_DIMS(...) ((int64_t[]){__VA_ARGS__})

// The backend buffers a model owns (its weights), freed with the model,
// and the weights files those buffers read in place (backend.h
// weight_view), closed with it.
struct hsd_bufs {
    void **p;
    size_t n, cap;
    struct hsd_weights **files;
    size_t n_files;
};
// Keeps p (a backend buffer) to be freed with the others.
enum hsd_status hsd_bufs_add(struct hsd_bufs *b, void *p);
void hsd_bufs_free(struct hsd_bufs *b, struct hsd_backend *be);

struct hsd_loader {
    struct hsd_backend *be;       // NULL: shapes and counts only
    const struct hsd_weights *w;  // NULL: random weights
    const char *path;             // weights file, for messages
    struct hsd_bufs *bufs;        // where uploaded weights are kept
    // What was fetched: parameter count, dtype of the first tensor (F32 for
    // random weights) and whether others differ.
    int64_t params;
    enum hsd_dtype dtype;
    int mixed_dtypes;
    // Private.
    unsigned char *used;          // per weights entry
    float *tmp, *tmp2;            // conversion scratch
    size_t tmp_cap;
    uint64_t rng;
};

enum hsd_status hsd_loader_init(struct hsd_loader *ld, const struct hsd_weights *w,
                                struct hsd_backend *be, struct hsd_bufs *bufs);
void hsd_loader_release(struct hsd_loader *ld);

// Looks up `name`, checks rank and every dim that is not HSD_ANY (those
// receive the file's value), marks it used and counts it. With a backend,
// converts it to fp32 in loader scratch (conv: re-laid unless 1x1) and
// returns that in *host (valid until the next fetch); else *host = NULL.
enum hsd_status hsd_loader_fetch(struct hsd_loader *ld, const char *name, int ndim,
                                 int64_t *dims, int conv, const float **host);
// fetch + upload into *dst (left NULL without a backend). The name is
// printf-formatted. A weight of rank 2 (linear [n_out, k]) or 4 (conv
// [co, ci, kh, kw]) is a GEMM weight: where the backend has weight_view
// (the CPU backend), it stays in the file's precision and layout, read in
// place from the mapping, which the model then keeps open (ld->bufs).
enum hsd_status hsd_loader_get(struct hsd_loader *ld, void **dst, int ndim, int64_t *dims,
                               int conv, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
enum hsd_status hsd_loader_vget(struct hsd_loader *ld, void **dst, int ndim, int64_t *dims,
                                int conv, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));
// Several GEMM weights stacked along their rows into one [sum rows, k]
// weight (q, k, v projections multiplied by one GEMM): names[i] is a
// [rows[i], k] tensor, or [rows[i], k, 1, 1] (a 1x1 conv from an LDM
// conversion holds the same numbers). Kept in the file's precision where
// the backend has weight_view and the parts share a dtype (a copy: the
// parts are not adjacent in the file); *dst left NULL without a backend.
enum hsd_status hsd_loader_get_stacked(struct hsd_loader *ld, void **dst, int n,
                                       const char *const *names, const int64_t *rows,
                                       int64_t k);
// Uploads host floats into a new backend buffer kept in ld->bufs.
enum hsd_status hsd_loader_upload(struct hsd_loader *ld, void **dst, const float *src,
                                  size_t count);
// Whether the file has `name` (always 0 in random-weights mode).
int hsd_loader_has(const struct hsd_loader *ld, const char *name);
// Fails naming the first tensor never fetched: "<path>: N tensor(s) not
// used by <model> (first: '<name>'); config and weights disagree".
enum hsd_status hsd_loader_check_all_used(const struct hsd_loader *ld, const char *model);

#endif
