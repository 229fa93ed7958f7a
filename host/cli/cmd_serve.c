// hsd serve: the cloud denoising service (scheduler/service.h).
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/open/backend_open.h"
#include "cli/cli_backend.h"
#include "cli/cli.h"
#include "cli/cli_lora.h"
#include "core/log.h"
#include "service.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: hsd serve --model M --bind ENDPOINT [--bind ENDPOINT ...]\n"
            "                 (--keys FILE | --no-auth) [options]\n\n"
            "  --model M              the large model: pipeline folder (tokenizer/,\n"
            "                         text_encoder/, unet/, vae/, scheduler/) or an SD 1.x/2.x/\n"
            "                         SDXL single-file .safetensors checkpoint\n"
            HSD_CLI_PREDICTION_HELP
            "  --bind ENDPOINT        tcp://HOST:PORT or ipc:///PATH (repeatable)\n"
            "  --keys FILE            client keys: 'key_id hex_secret [rate_per_min=N] [burst=N]\n"
            "                         [max_bytes=N] [max_pixels=N] [max_steps=N]' per line\n"
            "  --no-auth              accept unauthenticated requests (local testing only)\n"
            "  --max-batch N          U-Net batch rows; a CFG request takes 2 (default 16)\n"
            "  --buckets LIST         pad each U-Net call to the smallest of these row counts,\n"
            "                         e.g. 1,2,4,8,16,32 (default: no padding): one plan and\n"
            "                         graph per size (docs/denoise_step.md)\n"
            "  --warmup, --no-warmup  before serving, plan (CUDA: also tune and record) every\n"
            "                         (bucket, size) and print each one's time (default: on\n"
            "                         for cuda, off for cpu); /metrics hsd_plans_total stays\n"
            "                         flat after it for those shapes\n"
            "  --warmup-sizes LIST    image sizes to warm, WxH or S (square), e.g. 512,768x512\n"
            "                         (default: the model's native size)\n"
            "  --queue-limit N        waiting requests before BUSY (default 64)\n"
            "  --key-queue-limit N    waiting requests of one key before that key gets BUSY\n"
            "                         (default: half of --queue-limit; 0: no per-key share)\n"
            "  --max-active N         requests being denoised at once (default 32)\n"
            "  --admit-batch N        prompts encoded per text-encoder call (default 8)\n"
            "  --adaptive-threshold N queue depth from which requests with a k range are handed\n"
            "                         over at k_min (default 8)\n"
            "  --backend B            cpu (default), cuda (every GPU), cuda:all or cuda:IDS\n"
            "                         (e.g. cuda:0,1): one worker per device, all sharing one\n"
            "                         request queue; GPUs compute in fp16, the first GPU reads\n"
            "                         the weights and NCCL broadcasts them to the others\n"
            "  --devices N | IDS      cpu: N workers, each with its own copy of the models\n"
            "                         (default 1); cuda: the GPUs to use (0,1,... or all), the\n"
            "                         same as --backend cuda:IDS\n"
            "  --metrics-port P       Prometheus metrics at http://0.0.0.0:P/metrics (default off)\n"
            "  --grace-ms T           on SIGINT/SIGTERM, time to finish in-flight work (default\n"
            "                         30000); what is left then gets an explicit ERROR\n"
            "  --lora NAME=FILE       a LoRA (kohya or diffusers/PEFT .safetensors) requests may\n"
            "                         choose by NAME with a scale (GENERATE's LoRA list);\n"
            "                         applied per request, unfused (repeatable, up to 32)\n"
            "  --threads T            CPU threads per worker (default: every core)\n"
            HSD_CLI_CPU_PRECISION_HELP
            "  -v                     log each request\n");
}

int hsd_cmd_serve(int argc, char **argv) {
    const char *model = NULL, *binds[16];
    const char *backend = NULL, *devices_arg = NULL, *cpu_precision = NULL;
    enum hsd_cpu_precision precision = HSD_CPU_FP32;
    int n_binds = 0, threads = 0, buckets[HSD_PIPELINE_MAX_BUCKETS], n_buckets = 0;
    int warmup = -1, sizes[32], n_sizes = 0;  // warmup -1: the backend's default
    struct hsd_cli_loras loras = {0};
    int key_limit = -1;                       // -1: half the queue limit
    int prediction = HSD_PREDICTION_AUTO;
    struct hsd_service_opts o = {.grace_ms = 30000,
                                 .sched = {.max_batch_rows = 16, .queue_limit = 64,
                                           .max_active = 32, .admit_batch = 8,
                                           .adaptive_threshold = 8}};
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},     {"bind", required_argument, 0, 'b'},
        {"keys", required_argument, 0, 'k'},      {"no-auth", no_argument, 0, 'N'},
        {"max-batch", required_argument, 0, 'B'}, {"queue-limit", required_argument, 0, 'Q'},
        {"max-active", required_argument, 0, 'A'}, {"admit-batch", required_argument, 0, 'a'},
        {"adaptive-threshold", required_argument, 0, 'T'},
        {"devices", required_argument, 0, 'D'},   {"metrics-port", required_argument, 0, 'P'},
        {"grace-ms", required_argument, 0, 'G'},  {"threads", required_argument, 0, 't'},
        {"verbose", no_argument, 0, 'v'},         {"help", no_argument, 0, 'h'},
        {"backend", required_argument, 0, 'X'},
        {"cpu-precision", required_argument, 0, HSD_CLI_OPT_CPU_PRECISION},   {"buckets", required_argument, 0, 'U'},
        {"warmup", no_argument, 0, 'W'},          {"no-warmup", no_argument, 0, 'w'},
        {"warmup-sizes", required_argument, 0, 'S'}, {"prediction", required_argument, 0, 1001},
        {"key-queue-limit", required_argument, 0, 'K'}, {"lora", required_argument, 0, 'L'},
        {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:b:k:vh", opts, NULL)) != -1) {
        int *dst = NULL, lo = 1, hi = 1 << 20;
        switch (c) {
        case 'm': model = optarg; continue;
        case 'L':
            if (hsd_cli_lora_named("serve", &loras, optarg, 0)) return 2;
            continue;
        case 1001:
            if (hsd_cli_parse_prediction("serve", optarg, &prediction)) return 2;
            continue;
        case HSD_CLI_OPT_CPU_PRECISION: cpu_precision = optarg; continue;
        case 'b':
            if (n_binds == 16) {
                fprintf(stderr, "hsd serve: at most 16 --bind endpoints\n");
                return 2;
            }
            binds[n_binds++] = optarg;
            continue;
        case 'k': o.keys_file = optarg; continue;
        case 'N': o.allow_no_auth = 1; continue;
        case 'X': backend = optarg; continue;
        case 'D': devices_arg = optarg; continue;
        case 'U':
            if ((n_buckets = hsd_cli_parse_buckets("serve", optarg, buckets)) < 0) return 2;
            continue;
        case 'W': warmup = 1; continue;
        case 'w': warmup = 0; continue;
        case 'S':
            if ((n_sizes = hsd_cli_parse_sizes("serve", optarg, sizes)) < 0) return 2;
            continue;
        case 'v': hsd_log_set_level(HSD_LOG_DEBUG); continue;
        case 'h': usage(stdout); return 0;
        case 'B': dst = &o.sched.max_batch_rows; hi = 256; break;
        case 'Q': dst = &o.sched.queue_limit; break;
        case 'A': dst = &o.sched.max_active; hi = 4096; break;
        case 'K': dst = &key_limit; lo = 0; break;
        case 'a': dst = &o.sched.admit_batch; hi = 64; break;
        case 'T': dst = &o.sched.adaptive_threshold; lo = 0; break;
        case 'P': dst = &o.metrics_port; hi = 65535; break;
        case 'G': dst = &o.grace_ms; lo = 0; hi = 3600000; break;
        case 't': dst = &threads; hi = 1024; break;
        default: usage(stderr); return 2;
        }
        if ((*dst = hsd_cli_parse_int("serve", argv[optind - 1], optarg, lo, hi)) < 0) return 2;
    }
    if (!model || n_binds == 0 || optind != argc || (!o.keys_file && !o.allow_no_auth) ||
        (o.keys_file && o.allow_no_auth)) {
        fprintf(stderr, "hsd serve: --model, at least one --bind, and exactly one of --keys or "
                        "--no-auth are required\n");
        usage(stderr);
        return 2;
    }
    // One key may fill half the queue by default (issue 15, finding 5): a
    // flooding key leaves the other half to everyone else.
    o.sched.tenant_queue_limit =
        key_limit >= 0 ? key_limit : (o.sched.queue_limit + 1) / 2;
    // The devices, checked before any model is read.
    struct hsd_backend_spec spec;
    if (hsd_backend_spec_parse(backend ? backend : "cpu", &spec)) {
        fprintf(stderr, "hsd serve: %s\n", hsd_last_error());
        return 2;
    }
    if (hsd_cli_cpu_precision("serve", cpu_precision, backend, &precision)) return 2;
    int cpu_workers = 1;
    if (devices_arg && spec.kind == HSD_BACKEND_CPU) {
        if ((cpu_workers = hsd_cli_parse_int("serve", "--devices", devices_arg, 1,
                                             HSD_MAX_DEVICES)) < 0)
            return 2;
    } else if (devices_arg) {
        if (spec.n_ids) {
            fprintf(stderr, "hsd serve: --backend %s already names the GPUs; drop --devices %s\n",
                    backend, devices_arg);
            return 2;
        }
        if (hsd_backend_spec_set_ids(&spec, devices_arg)) {
            fprintf(stderr, "hsd serve: --devices: %s\n", hsd_last_error());
            return 2;
        }
    }
    o.endpoints = binds;
    o.n_endpoints = n_binds;
    // GPUs warm by default: a first call of a new shape there costs a plan,
    // ~20 conv timings and a graph capture while a request waits.
    o.warmup = warmup >= 0 ? warmup : spec.kind == HSD_BACKEND_CUDA;
    o.warmup_sizes = n_sizes ? sizes : NULL;
    o.n_warmup_sizes = n_sizes;
    struct hsd_pipeline_config pc = {.model = model, .threads = threads,
                                     .row_buckets = buckets, .n_row_buckets = n_buckets,
                                     .loras = loras.spec, .n_loras = loras.n,
                                     .prediction = (enum hsd_prediction_choice)prediction,
                                     .cpu_precision = precision};
    struct hsd_pipeline_set set;
    int rc = 0;
    if (hsd_pipeline_set_load(&set, &pc, &spec, cpu_workers)) return hsd_cli_fail("serve");
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (hsd_service_run(set.pipes, set.n, &o, &g_stop)) rc = hsd_cli_fail("serve");
    hsd_pipeline_set_free(&set);
    return rc;
}
