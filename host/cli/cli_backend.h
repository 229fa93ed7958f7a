// --backend for the subcommands: the help text and an early check of the
// value (before any model is read), shared by every command that takes it.
#ifndef HSD_CLI_BACKEND_H
#define HSD_CLI_BACKEND_H

#define HSD_CLI_BACKEND_HELP                                                              \
    "  --backend  cpu (default), cuda (the first GPU) or cuda:N; on a GPU the models\n"  \
    "             compute in fp16 with fp32 accumulation\n"

// Parses `text` (NULL: nothing to check); multi = 1 allows several GPUs
// (cuda:0,1). Prints "hsd <cmd>: <why>" and returns -1 on a bad value.
int hsd_cli_check_backend(const char *cmd, const char *text, int multi);

#endif
