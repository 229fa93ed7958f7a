#include "cli/cli_backend.h"

#include <stdio.h>

#include "backend/backend_spec.h"

int hsd_cli_check_backend(const char *cmd, const char *text, int multi) {
    if (!text) return 0;
    struct hsd_backend_spec spec;
    if (hsd_backend_spec_parse(text, &spec)) {
        fprintf(stderr, "hsd %s: %s\n", cmd, hsd_last_error());
        return -1;
    }
    if (!multi && spec.kind == HSD_BACKEND_CUDA && spec.n_ids > 1) {
        fprintf(stderr, "hsd %s: --backend %s: this command runs on one GPU (e.g. cuda:%d)\n",
                cmd, text, spec.ids[0]);
        return -1;
    }
    return 0;
}
