// hsd bench unet: times the U-Net forward on random inputs. Prints a
// human line and one JSON line (machine-readable), so bench/ scripts can put
// it beside diffusers' time from the same run.
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/open/backend_open.h"
#include "cli/cli.h"
#include "cli/cmd_bench_lora.h"
#include "models/lora.h"
#include "cli/cli_backend.h"
#include "models/unet.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: hsd bench unet (--model DIR|FILE | --preset NAME) [--batch N] [--height H]\n"
            "                      [--width W] [--ctx-len L] [--threads T] [--repeats R]\n"
            "                      [--config FILE] [--backend B] [--loras K [--lora-rank R]]\n"
            "                      [--cpu-precision fp32|bf16]\n\n"
            "  --preset   a named configuration with random weights, no file needed:\n"
            "             %s\n"
            "  H, W are latent sizes (default 64x64 = 512x512 images); L defaults to 77.\n"
            "  One warm-up run, then the median of R (default 5) timed forwards.\n"
            "  --loras K  K random rank-R (default 16) LoRAs applied unfused, row b using\n"
            "             LoRA b %% K; also prints what merging one (fused) costs per switch;\n"
            "             --lora-off: attached but chosen by no row\n"
            HSD_CLI_BACKEND_HELP HSD_CLI_CPU_PRECISION_HELP,
            hsd_unet_preset_names());
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void fill(float *x, size_t n, unsigned seed) {
    // Deterministic inputs in [-1, 1): timing does not depend on values.
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / 8388608.0f - 1.0f;
    }
}

static int bench_unet(int argc, char **argv) {
    const char *model = NULL, *config = NULL, *preset = NULL, *backend = NULL;
    const char *cpu_precision = NULL;
    int n = 2, h = 64, w = 64, L = 77, threads = 0, repeats = 5, loras = 0, rank = 16;
    struct hsd_lora_file *lora = NULL;
    int lora_off = 0;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"batch", required_argument, 0, 'b'},
        {"height", required_argument, 0, 'H'}, {"width", required_argument, 0, 'W'},
        {"ctx-len", required_argument, 0, 'L'}, {"threads", required_argument, 0, 't'},
        {"repeats", required_argument, 0, 'r'}, {"config", required_argument, 0, 'c'},
        {"preset", required_argument, 0, 'p'}, {"help", no_argument, 0, 'h'}, {"backend", required_argument, 0, 'B'},
        {"loras", required_argument, 0, 'K'}, {"lora-rank", required_argument, 0, 'R'},
        {"lora-off", no_argument, 0, 'O'}, {"cpu-precision", required_argument, 0, HSD_CLI_OPT_CPU_PRECISION},
        {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:b:H:W:L:t:r:c:p:hB:", opts, NULL)) != -1) {
        int *dst = NULL, lo = 1, hi = 4096;
        switch (c) {
        case 'm': model = optarg; continue;
        case 'c': config = optarg; continue;
        case 'p': preset = optarg; continue;
        case 'B': backend = optarg; continue;
        case HSD_CLI_OPT_CPU_PRECISION: cpu_precision = optarg; continue;
        case 'b': dst = &n; hi = 256; break;
        case 'H': dst = &h; break;
        case 'W': dst = &w; break;
        case 'L': dst = &L; break;
        case 't': dst = &threads; hi = 1024; break;
        case 'r': dst = &repeats; hi = 1000; break;
        case 'K': dst = &loras; lo = 0; hi = 32; break;
        case 'O': lora_off = 1; continue;
        case 'R': dst = &rank; hi = 1024; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if ((*dst = hsd_cli_parse_int("bench unet", argv[optind - 1], optarg, lo, hi)) < 0)
            return 2;
    }
    if (hsd_cli_check_backend("bench unet", backend, 0)) return 2;
    enum hsd_cpu_precision precision;
    if (hsd_cli_cpu_precision("bench unet", cpu_precision, backend, &precision)) return 2;
    if (!model == !preset || optind != argc) {
        fprintf(stderr, "hsd bench unet: give exactly one of --model and --preset\n");
        usage(stderr);
        return 2;
    }
    struct hsd_unet_source src;
    if (preset ? hsd_unet_source_preset(&src, preset) : hsd_unet_source_open(&src, model, config))
        return hsd_cli_fail("bench unet");
    if (preset) model = preset;
    struct hsd_backend *be = NULL;
    struct hsd_unet *u = NULL;
    float *x = NULL, *t = NULL, *ctx = NULL, *out = NULL, *te = NULL, *ids = NULL;
    double *ms = NULL;
    int rc = 1;
    if (hsd_backend_open_one(backend, threads, &be) ||
        hsd_backend_cpu_set_precision(be, precision) || hsd_unet_create(&u, &src, be))
        goto fail;
    if (hsd_bench_lora_attach(u, loras, rank, lora_off ? 0 : n, &lora)) goto fail;
    const struct hsd_unet_config *cfg = &src.cfg;
    size_t nx = (size_t)n * cfg->in_channels * h * w, nc = (size_t)n * L * cfg->cross_attention_dim;
    x = malloc(nx * sizeof *x);
    out = malloc((size_t)n * cfg->out_channels * h * w * sizeof *out);
    ctx = malloc(nc * sizeof *ctx);
    t = malloc((size_t)n * sizeof *t);
    ms = malloc((size_t)repeats * sizeof *ms);
    if (!x || !out || !ctx || !t || !ms) {
        hsd_fail(HSD_ERR_NOMEM, "out of memory");
        goto fail;
    }
    fill(x, nx, 1);
    fill(ctx, nc, 2);
    for (int i = 0; i < n; i++) t[i] = (float)(999 - 40 * i % 1000);
    // SDXL-family: a pooled embedding and the time ids of an unscaled,
    // uncropped image of the latent's size times 8.
    int td = hsd_unet_text_embeds_dim(cfg);
    struct hsd_unet_added_cond add = {.text_embeds_dim = td, .n_time_ids = HSD_SDXL_N_TIME_IDS};
    if (cfg->add_text_time) {
        if (!td) {
            hsd_fail(HSD_ERR_UNSUPPORTED, "%s: no room for a pooled embedding beside 6 time ids",
                     model);
            goto fail;
        }
        te = malloc((size_t)n * td * sizeof *te);
        ids = malloc((size_t)n * HSD_SDXL_N_TIME_IDS * sizeof *ids);
        if (!te || !ids) {
            hsd_fail(HSD_ERR_NOMEM, "out of memory");
            goto fail;
        }
        fill(te, (size_t)n * td, 3);
        for (int i = 0; i < n; i++) {
            const float v[HSD_SDXL_N_TIME_IDS] = {8.0f * h, 8.0f * w, 0, 0, 8.0f * h, 8.0f * w};
            memcpy(ids + (size_t)i * HSD_SDXL_N_TIME_IDS, v, sizeof v);
        }
        add.text_embeds = te;
        add.time_ids = ids;
    }
    const struct hsd_unet_added_cond *addp = cfg->add_text_time ? &add : NULL;
    if (hsd_unet_forward_cond(u, out, x, t, ctx, addp, n, h, w, L)) goto fail;  // warm-up + planning
    int tty = isatty(STDERR_FILENO);
    for (int r = 0; r < repeats; r++) {
        double t0 = now_ms();
        if (hsd_unet_forward_cond(u, out, x, t, ctx, addp, n, h, w, L)) goto fail;
        ms[r] = now_ms() - t0;
        // Progress on a terminal only; logs and pipes get the result lines.
        if (tty) fprintf(stderr, "\rbench unet: run %d/%d %.1f ms", r + 1, repeats, ms[r]);
    }
    if (tty) fprintf(stderr, "\n");
    qsort(ms, (size_t)repeats, sizeof *ms, cmp_double);
    double med = ms[repeats / 2], gflop = hsd_unet_flops(u) / 1e9;
    struct hsd_unet_summary s;
    hsd_unet_get_summary(u, &s);
    double peak_mb = hsd_backend_peak_bytes(be) / 1048576.0;
    printf("hsd unet %s (%s, %.1f M params) on %s: batch %d, latent %dx%d: "
           "median %.1f ms (min %.1f), %.1f GFLOP, %.1f GFLOP/s, %.1f images-steps/s%s\n",
           model, s.variant, s.params / 1e6, be->desc, n, h, w, med, ms[0], gflop,
           gflop / (med / 1e3), n / (med / 1e3), be->kind == HSD_BACKEND_CUDA ? "" : " (CPU)");
    if (peak_mb > 0) printf("device memory: %.1f MB at most (weights, arena, workspaces)\n", peak_mb);
    if (lora)
        printf("LoRA: %d distinct rank-%d adapters over %d layers, %s (unfused); "
               "merging one into the weights (fused) takes %.1f ms per switch\n",
               loras, rank, lora->n_layers, lora_off ? "chosen by no row" : "row b uses adapter b mod K",
               hsd_bench_lora_merge_ms(lora));
    printf("{\"impl\":\"hsd\",\"backend\":\"%s\",\"model\":\"%s\",\"variant\":\"%s\",\"loras\":%d,\"batch\":%d,"
           "\"h\":%d,\"w\":%d,\"threads\":%d,\"repeats\":%d,\"ms\":%.3f,\"ms_min\":%.3f,"
           "\"gflop\":%.3f,\"gflops\":%.2f,\"images_steps_per_s\":%.3f,\"peak_mem_mb\":%.1f}\n",
           be->desc, model, s.variant, loras, n, h, w, be->threads, repeats, med, ms[0], gflop,
           gflop / (med / 1e3), n / (med / 1e3), peak_mb);
    rc = 0;
    goto done;
fail:
    hsd_cli_fail("bench unet");
done:
    free(ms);
    free(x);
    free(t);
    free(ctx);
    free(out);
    free(te);
    free(ids);
    hsd_unet_free(u);
    hsd_lora_file_free(lora);
    hsd_backend_destroy(be);
    hsd_unet_source_close(&src);
    return rc;
}

int hsd_cmd_bench(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "unet")) return bench_unet(argc - 1, argv + 1);
    if (!strcmp(argv[1], "serve")) return hsd_cmd_bench_serve(argc - 1, argv + 1);
    fprintf(stderr, "hsd bench: unknown benchmark '%s' (available: unet, serve)\n", argv[1]);
    return 2;
}
