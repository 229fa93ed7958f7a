// --backend parsing (backend_spec.h). Test: tests/unit/test_backend_spec.c.
#include "backend/backend_spec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum hsd_status hsd_backend_spec_set_ids(struct hsd_backend_spec *spec, const char *list) {
    spec->n_ids = 0;
    spec->all = 0;
    if (!strcmp(list, "all")) {
        spec->all = 1;
        return HSD_OK;
    }
    const char *p = list;
    if (!*p) return hsd_fail(HSD_ERR_INVALID_ARG, "empty GPU list (expected e.g. 0 or 0,1 or all)");
    while (*p) {
        if (*p < '0' || *p > '9')
            return hsd_fail(HSD_ERR_INVALID_ARG,
                            "GPU list '%s': expected ordinals like 0 or 0,1 or the word all",
                            list);
        errno = 0;
        char *end;
        long v = strtol(p, &end, 10);
        if (errno || v > 1023)
            return hsd_fail(HSD_ERR_INVALID_ARG, "GPU list '%s': ordinal out of range", list);
        for (int i = 0; i < spec->n_ids; i++)
            if (spec->ids[i] == (int)v)
                return hsd_fail(HSD_ERR_INVALID_ARG, "GPU list '%s': GPU %ld listed twice", list,
                                v);
        if (spec->n_ids == HSD_MAX_DEVICES)
            return hsd_fail(HSD_ERR_INVALID_ARG, "GPU list '%s': more than %d GPUs", list,
                            HSD_MAX_DEVICES);
        spec->ids[spec->n_ids++] = (int)v;
        p = end;
        if (*p == ',') {
            p++;
            if (!*p)
                return hsd_fail(HSD_ERR_INVALID_ARG, "GPU list '%s': trailing comma", list);
        } else if (*p) {
            return hsd_fail(HSD_ERR_INVALID_ARG,
                            "GPU list '%s': expected ordinals like 0 or 0,1 or the word all",
                            list);
        }
    }
    return HSD_OK;
}

enum hsd_status hsd_backend_spec_parse(const char *text, struct hsd_backend_spec *out) {
    memset(out, 0, sizeof *out);
    if (!text) return hsd_fail(HSD_ERR_INVALID_ARG, "--backend: missing value");
    if (!strcmp(text, "cpu")) {
        out->kind = HSD_BACKEND_CPU;
        return HSD_OK;
    }
    if (!strcmp(text, "cuda")) {
        out->kind = HSD_BACKEND_CUDA;
        out->all = 1;
        return HSD_OK;
    }
    if (!strncmp(text, "cuda:", 5)) {
        out->kind = HSD_BACKEND_CUDA;
        enum hsd_status s = hsd_backend_spec_set_ids(out, text + 5);
        if (s) return hsd_fail_context(s, "--backend %s: ", text);
        return HSD_OK;
    }
    return hsd_fail(HSD_ERR_INVALID_ARG,
                    "--backend '%s': expected cpu, cuda, cuda:all or cuda:IDS (e.g. cuda:0,1)",
                    text);
}

void hsd_backend_spec_format(const struct hsd_backend_spec *spec, char *buf, size_t cap) {
    if (!cap) return;
    if (spec->kind == HSD_BACKEND_CPU) {
        snprintf(buf, cap, "cpu");
        return;
    }
    if (spec->all || !spec->n_ids) {
        snprintf(buf, cap, "cuda:all");
        return;
    }
    size_t o = (size_t)snprintf(buf, cap, "cuda:");
    for (int i = 0; i < spec->n_ids && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%d", i ? "," : "", spec->ids[i]);
}
