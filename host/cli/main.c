// hsd: git-style front end (docs/architecture.md §1). `hsd help` lists the commands.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/status.h"

#define HSD_VERSION "0.1.0"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} k_cmds[] = {
    {"serve", hsd_cmd_serve, "the cloud service: batch early denoising steps for edge clients"},
    {"generate", hsd_cmd_generate, "text -> PNG, full model or hybrid (--edge-model, --split k)"},
    {"edge", hsd_cmd_edge, "edge worker: first k steps from a cloud (hsd serve), finish locally"},
    {"status", hsd_cmd_status, "health of hsd serve nodes (exit 0 healthy, 3 degraded, 1 down)"},
    {"run-unet", hsd_cmd_run_unet, "one U-Net forward pass on tensors from a .safetensors file"},
    {"run-vae", hsd_cmd_run_vae, "VAE decode or encode of a tensor from a .safetensors file"},
    {"run-text", hsd_cmd_run_text, "one CLIP text encoder forward pass on token ids"},
    {"inspect", hsd_cmd_inspect, "what a model folder or checkpoint holds"},
    {"bench", hsd_cmd_bench, "benchmarks (bench unet)"},
    {"devices", hsd_cmd_devices, "list GPUs usable by the CUDA backend"},
    {"tokenize", hsd_cmd_tokenize, "CLIP token ids of a prompt, as the text encoder gets them"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: hsd <command> [options]   (hsd <command> --help for its options)\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof k_cmds / sizeof k_cmds[0]; i++)
        fprintf(f, "  %-10s %s\n", k_cmds[i].name, k_cmds[i].help);
    fprintf(f, "  %-10s %s\n  %-10s %s\n", "help", "this list", "version", "print the version");
}

int hsd_cli_fail(const char *cmd) {
    fprintf(stderr, "hsd %s: %s\n", cmd, hsd_last_error());
    return 1;
}

int hsd_cli_parse_int(const char *cmd, const char *flag, const char *v, int lo, int hi) {
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || *v == '\0' || *end != '\0' || x < lo || x > hi) {
        fprintf(stderr, "hsd %s: %s expects an integer in [%d, %d], got '%s'\n", cmd, flag, lo,
                hi, v ? v : "");
        return -1;
    }
    return (int)x;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("hsd %s\n", HSD_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof k_cmds / sizeof k_cmds[0]; i++)
        if (!strcmp(cmd, k_cmds[i].name)) return k_cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "hsd: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
