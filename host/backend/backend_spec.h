// Which backend and which devices a command runs on: the text of
// `--backend cpu | cuda | cuda:IDS` (IDS: "0", "0,1,3", "all"), parsed
// without touching any device so that a bad flag fails before models load.
#ifndef HSD_BACKEND_SPEC_H
#define HSD_BACKEND_SPEC_H

#include "backend/backend.h"

#define HSD_MAX_DEVICES 32

struct hsd_backend_spec {
    enum hsd_backend_kind kind;
    int all;                       // cuda / cuda:all: every visible GPU (ids filled by open)
    int n_ids;                     // GPU ordinals listed, in order, no repeats
    int ids[HSD_MAX_DEVICES];
};

// "cpu", "cuda", "cuda:all", "cuda:0", "cuda:0,2". Errors (HSD_ERR_INVALID_ARG)
// name the flag text and say what is accepted.
enum hsd_status hsd_backend_spec_parse(const char *text, struct hsd_backend_spec *out);

// Replaces the GPU list with `list` ("0,1" or "all"): `hsd serve --devices`.
enum hsd_status hsd_backend_spec_set_ids(struct hsd_backend_spec *spec, const char *list);

// Writes "cpu", "cuda:0,1" or "cuda:all" into buf.
void hsd_backend_spec_format(const struct hsd_backend_spec *spec, char *buf, size_t cap);

#endif
