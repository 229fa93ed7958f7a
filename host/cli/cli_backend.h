// --backend for the subcommands: the help text and an early check of the
// value (before any model is read), shared by every command that takes it.
#ifndef HSD_CLI_BACKEND_H
#define HSD_CLI_BACKEND_H

#include "backend/backend.h"

#define HSD_CLI_BACKEND_HELP                                                              \
    "  --backend  cpu (default), cuda (the first GPU) or cuda:N; on a GPU the models\n"  \
    "             compute in fp16 with fp32 accumulation\n"

// Parses `text` (NULL: nothing to check); multi = 1 allows several GPUs
// (cuda:0,1). Prints "hsd <cmd>: <why>" and returns -1 on a bad value.
int hsd_cli_check_backend(const char *cmd, const char *text, int multi);

// --cpu-precision fp32|bf16 (docs/cpu-precision.md), the same for every
// command that takes it.
#define HSD_CLI_CPU_PRECISION_HELP                                                         \
    "  --cpu-precision  fp32 (default) or bf16: on the CPU backend, linear and conv\n"     \
    "             GEMMs on bf16 operands with fp32 accumulation (torch's CPU bf16\n"     \
    "             autocast); faster only on CPUs with avx512_bf16/AMX\n"
#define HSD_CLI_OPT_CPU_PRECISION 0x150  // getopt_long value of --cpu-precision

// Parses `text` into *out; refuses bf16 when `backend` (the --backend text,
// NULL = cpu) names a GPU. Prints "hsd <cmd>: <why>" and returns -1.
int hsd_cli_cpu_precision(const char *cmd, const char *text, const char *backend,
                          enum hsd_cpu_precision *out);

#endif
