// hsd inspect: config, detected variant, parameter count and dtype of a
// U-Net, after checking every tensor against the config.
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "models/unet.h"

static void usage(FILE *f) {
    fprintf(f, "usage: hsd inspect [--config config.json] MODEL\n\n"
               "  MODEL is a diffusers folder (with unet/ or the unet folder itself) or a\n"
               "  single-file CompVis/LDM .safetensors checkpoint.\n");
}

int hsd_cmd_inspect(int argc, char **argv) {
    const char *config = NULL;
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (c == 'c') config = optarg;
        else if (c == 'h') { usage(stdout); return 0; }
        else { usage(stderr); return 2; }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    const char *path = argv[optind];
    struct hsd_unet_source src;
    if (hsd_unet_source_open(&src, path, config)) return hsd_cli_fail("inspect");
    struct hsd_unet *u = NULL;
    if (hsd_unet_create(&u, &src, NULL)) {
        hsd_unet_source_close(&src);
        return hsd_cli_fail("inspect");
    }
    struct hsd_unet_summary s;
    hsd_unet_get_summary(u, &s);
    char *json = hsd_unet_config_to_json(&src.cfg);
    printf("model:      %s\n", path);
    printf("format:     %s\n", src.single_file ? "single-file CompVis/LDM checkpoint"
                                                : "diffusers folder");
    printf("weights:    %s\n", src.weights_path);
    printf("config:     %s\n", src.config_path[0] ? src.config_path
                                                   : "(inferred from tensor shapes)");
    printf("variant:    %s\n", s.variant);
    printf("parameters: %lld (%.1f M)\n", (long long)s.params, (double)s.params / 1e6);
    printf("dtype:      %s%s\n", hsd_dtype_name(s.dtype), s.mixed_dtypes ? " (mixed)" : "");
    if (s.pruned)
        printf("pruning:    %d ResNet(s) with narrower inner width, %d attention layer(s) with "
               "fewer heads\n",
               s.n_resnets_pruned, s.n_attn_pruned);
    printf("latent h/w: multiples of %d\n", hsd_unet_size_multiple(u));
    printf("config.json (as used):\n%s\n", json ? json : "(out of memory)");
    free(json);
    hsd_unet_free(u);
    hsd_unet_source_close(&src);
    return 0;
}
