#include "cli/cli_backend.h"

#include <stdio.h>
#include <string.h>

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

int hsd_cli_cpu_precision(const char *cmd, const char *text, const char *backend,
                          enum hsd_cpu_precision *out) {
    *out = HSD_CPU_FP32;
    if (!text) return 0;
    if (!strcmp(text, "fp32")) return 0;
    if (strcmp(text, "bf16")) {
        fprintf(stderr, "hsd %s: --cpu-precision '%s': expected fp32 or bf16\n", cmd, text);
        return -1;
    }
    struct hsd_backend_spec spec;
    if (backend && !hsd_backend_spec_parse(backend, &spec) && spec.kind != HSD_BACKEND_CPU) {
        fprintf(stderr,
                "hsd %s: --cpu-precision bf16 applies to the CPU backend only (--backend %s "
                "computes in fp16 with fp32 accumulation); drop the flag or use --backend cpu\n",
                cmd, backend);
        return -1;
    }
    *out = HSD_CPU_BF16;
    return 0;
}
