// hsd edge: the edge worker. Asks a cloud `hsd serve` for the first k
// denoising steps, verifies the RESULT, finishes with the edge model,
// writes the PNG; generates locally when no cloud answers in time.
#include <getopt.h>
#include <signal.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/open/backend_open.h"
#include "cli/cli.h"
#include "cli/cli_lora.h"
#include "cli/cli_backend.h"
#include "cli/cli_progress.h"
#include "core/log.h"
#include "edge/edge.h"
#include "edge/edge_http.h"
#include "io/png.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: hsd edge --cloud ENDPOINT [--cloud ENDPOINT ...] --model EDGE_DIR\n"
            "                [--key-file FILE --key-id ID] -p PROMPT -o OUT.png\n"
            "                (--split K | --split-range KMIN:KMAX) [options]\n"
            "       hsd edge --http [ADDR:PORT] --cloud ENDPOINT ... --model EDGE_DIR\n"
            "                (--split K | --split-range KMIN:KMAX) [options]\n\n"
            "Sends the request to the cloud, which runs the first k U-Net calls with its\n"
            "large model and returns the latent, the sampler state and the text\n"
            "embeddings; the edge model finishes the rest and decodes. With the same\n"
            "models, seed and settings the pixels equal `hsd generate --model LARGE\n"
            "--edge-model EDGE_DIR --split k`. If no cloud answers before the deadline\n"
            "(or every retry fails with a retryable error) the whole image is made on\n"
            "the edge (k = 0): a notice goes to stderr and \"fallback\": \"local\" into\n"
            "the PNG's parameters, and the exit status is 0.\n\n"
            "cloud:\n"
            "  --cloud ENDPOINT     tcp://HOST:PORT or ipc:///PATH of an `hsd serve`; repeat for\n"
            "                       several (nanomsg load-balances and fails over), at most %d\n"
            "  --key-file FILE      keys file (host/net/auth.h format: `key_id hex_secret ...`);\n"
            "                       requests are signed with HMAC-SHA256. Without it requests\n"
            "                       go unsigned (only a service without a keys file takes them)\n"
            "  --key-id ID          which key (line) of the keys file to sign with\n"
            "  --split K            the cloud runs U-Net calls 0..K-1 (0 <= K <= steps)\n"
            "  --split-range A:B    the cloud picks k in [A, B] by its load (RESULT says which)\n"
            "  --timeout-ms T       wait for one attempt's reply (default 60000)\n"
            "  --deadline-ms D      the whole cloud part, retries included; also sent as the\n"
            "                       request's deadline; 0 = none (default 300000)\n"
            "  --retries R          attempts after the first, 0..100 (default 4): on timeout,\n"
            "                       BUSY, RATE_LIMITED, SHUTTING_DOWN, REPLAYED, INTERNAL, with\n"
            "                       exponential backoff and jitter, at least the retry hint\n"
            "  --cloud-model NAME   the service's model to use (default: its default)\n"
            "  --priority P         0..7, higher first (the service may cap it; default 0)\n"
            "  --no-fallback        exit 1 instead of generating locally when no cloud answers\n\n"
            "edge and image (as hsd generate):\n"
            "  --model DIR          the edge pipeline folder (tokenizer/, text_encoder/, unet/,\n"
            "                       vae/, scheduler/, maybe vae_tiny/) or an SD 1.x\n"
            "                       single-file .safetensors checkpoint\n"
            "  -p, --prompt TEXT    the prompt (UTF-8)\n"
            "  -n, --negative-prompt TEXT   (default empty)\n"
            "  -o, --out FILE.png   output (written atomically; nothing is written on failure)\n"
            "  --steps N            denoising steps, 1..1000 (default 25)\n"
            "  --sampler NAME       dpmpp-2m (default), ddim, euler, euler-a, pndm, lcm (LCM U-Nets\n"
            "                       take --cfg as their guidance input, no CFG; LCM-LoRA: 1-2)\n"
            "  --cfg S              classifier-free guidance scale (default 7.5; <= 1 disables)\n"
            "  --width W, --height H   pixels, multiples of 64 for SD (default 512x512)\n"
            "  --seed S             torch.Generator().manual_seed(S) (default 0)\n"
            "  --clip-skip K        the cloud text encoder's layer L-K (default 0 = last)\n"
            HSD_CLI_MICRO_HELP
            "  --prompt-style S     diffusers (default, 77 tokens) or a1111 (75-token chunks,\n"
            "                       (text:1.2) emphasis; the cloud encodes, see hsd generate)\n"
            "  --vae full|tiny|DIR  decoder: EDGE_DIR/vae (default), EDGE_DIR/vae_tiny, or a\n"
            "                       folder\n"
            "  --lora NAME=FILE[:SCALE]  a LoRA the cloud registered as NAME (hsd serve --lora):\n"
            "                       asked for in GENERATE and applied to the edge's own U-Net\n"
            "                       and text encoder too (refused if it does not fit them);\n"
            "                       with --http: registers NAME for prompts' <lora:NAME:SCALE>\n"
            "  --threads T          CPU threads (default: every core)\n"
            HSD_CLI_BACKEND_HELP
            HSD_CLI_CPU_PRECISION_HELP
            HSD_CLI_PREDICTION_HELP
            "daemon (--http): AUTOMATIC1111's API, so A1111 clients (webuiapi, front ends,\n"
            "plugins) use the edge; every image is made as above (docs/edge-http.md):\n"
            "  --http [ADDR:PORT]   serve HTTP on ADDR:PORT (default 127.0.0.1:7860; port 0:\n"
            "                       any free one, printed): POST /sdapi/v1/txt2img, GET\n"
            "                       /sdapi/v1/samplers, sd-models, options (and POST), progress,\n"
            "                       POST /sdapi/v1/interrupt, and a web page at /. Image\n"
            "                       options come from each request (A1111's defaults), not\n"
            "                       -p/-o/--steps/--cfg...; --split/--split-range and\n"
            "                       --clip-skip are defaults (options hsd_split and\n"
            "                       CLIP_stop_at_last_layers change them). Runs until\n"
            "                       SIGINT/SIGTERM. No TLS, no auth: keep it on loopback or\n"
            "                       behind a proxy that has them\n"
            "  --queue-limit N      requests waiting or running, 1..1024 (default 8); more get\n"
            "                       503 with Retry-After\n"
            "  --max-body BYTES     request body cap, 1024..67108864 (default 1048576); more: 413\n"
            "  --max-connections N  open HTTP connections, 1..10000 (default 64)\n\n"
            "  -v                   retries and a timing breakdown on stderr\n"
            "  -q                   no progress bar\n\n"
            "Without --http, prints one line: the PNG path, k used, cloud and edge times. Exit status: 0\n"
            "image written (from the cloud or locally), 1 failure (e.g. the cloud refused\n"
            "the request or sent a RESULT that does not match it; no file is written),\n"
            "2 usage error.\n",
            HSD_EDGE_MAX_ENDPOINTS);
}

static int endpoint_ok(const char *e) {
    const char *rest = NULL;
    if (!strncmp(e, "tcp://", 6)) rest = e + 6;
    if (!strncmp(e, "ipc://", 6)) rest = e + 6;
    return rest && *rest;
}

// "A:B" with 0 <= A <= B <= 1000.
static int parse_range(const char *v, int *lo, int *hi) {
    char *end;
    long a = strtol(v, &end, 10);
    if (end == v || *end != ':') return 0;
    const char *b_str = end + 1;
    long b = strtol(b_str, &end, 10);
    if (end == b_str || *end || a < 0 || b < a || b > 1000) return 0;
    *lo = (int)a;
    *hi = (int)b;
    return 1;
}

static enum hsd_status load_key(struct hsd_auth **keys, const struct hsd_auth_key **key,
                                const char *file, const char *id) {
    enum hsd_status s = hsd_auth_load(keys, file, NULL);
    if (s) return s;
    if (!(*key = hsd_auth_find(*keys, id)))
        return hsd_fail(HSD_ERR_NOT_FOUND, "%s has no key '%s'", file, id);
    return HSD_OK;
}

// --http's value: "ADDR:PORT", ":PORT" or "PORT" (IPv4; port 0..65535).
static int parse_http(const char *v, char *addr, size_t cap, int *port) {
    const char *colon = strrchr(v, ':');
    const char *p = colon ? colon + 1 : v;
    char *end;
    long n = strtol(p, &end, 10);
    if (end == p || *end || n < 0 || n > 65535) return 0;
    size_t alen = colon ? (size_t)(colon - v) : 0;
    if (alen >= cap) return 0;
    if (alen)
        memcpy(addr, v, alen), addr[alen] = '\0';
    else
        snprintf(addr, cap, "127.0.0.1");
    *port = (int)n;
    return 1;
}

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static enum hsd_status serve_http(struct hsd_edge_http_config *hc) {
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return hsd_edge_http_run(hc, &g_stop);
}

int hsd_cmd_edge(int argc, char **argv) {
    struct hsd_pipeline_config pc = {0};
    const char *backend = NULL, *cpu_precision = NULL;
    struct hsd_edge_request r = {
        .gen = {.guidance_scale = 7.5f, .steps = 25, .split = -1, .sampler = HSD_SAMPLER_DPMPP_2M,
                .width = 512, .height = 512, .batch_count = 1},
        .k_min = -1, .k_max = -1, .deadline_ms = 300000};
    const char *endpoints[HSD_EDGE_MAX_ENDPOINTS];
    int n_endpoints = 0;
    struct hsd_edge_client_opts co = {.timeout_ms = 60000, .retries = 4};
    const char *out = NULL, *key_file = NULL, *key_id = NULL, *split_arg = NULL;
    int verbose = 0, quiet = 0, no_fallback = 0, have_split = 0, have_range = 0, http = 0;
    struct hsd_cli_loras loras = {0};
    const char *lora_names[HSD_PIPELINE_MAX_LORAS];
    char http_addr[64] = "127.0.0.1";
    struct hsd_edge_http_config hc = {.port = 7860};
    static const struct option opts[] = {
        {"cloud", required_argument, 0, 'C'},       {"model", required_argument, 0, 'm'},
        {"key-file", required_argument, 0, 'K'},    {"key-id", required_argument, 0, 'I'},
        {"prompt", required_argument, 0, 'p'},      {"negative-prompt", required_argument, 0, 'n'},
        {"out", required_argument, 0, 'o'},         {"split", required_argument, 0, 'k'},
        {"split-range", required_argument, 0, 'R'}, {"steps", required_argument, 0, 'S'},
        {"sampler", required_argument, 0, 'a'},     {"cfg", required_argument, 0, 'g'},
        {"width", required_argument, 0, 'W'},       {"height", required_argument, 0, 'H'},
        {"seed", required_argument, 0, 's'},        {"clip-skip", required_argument, 0, 'c'},
        {"vae", required_argument, 0, 'V'},         {"threads", required_argument, 0, 't'}, {"backend", required_argument, 0, 'B'},
        {"cpu-precision", required_argument, 0, HSD_CLI_OPT_CPU_PRECISION},
        {"timeout-ms", required_argument, 0, 'T'},  {"deadline-ms", required_argument, 0, 'D'},
        {"retries", required_argument, 0, 'r'},     {"cloud-model", required_argument, 0, 'M'},
        {"priority", required_argument, 0, 'P'},    {"no-fallback", no_argument, 0, 'F'},
        {"verbose", no_argument, 0, 'v'},           {"quiet", no_argument, 0, 'q'},
        {"http", optional_argument, 0, 'X'},        {"queue-limit", required_argument, 0, 'Q'},
        {"max-body", required_argument, 0, 'Y'},    {"max-connections", required_argument, 0, 'Z'},
        {"lora", required_argument, 0, 'L'},
        {"prompt-style", required_argument, 0, 1000},
        {"prediction", required_argument, 0, 1001},
        {"original-size", required_argument, 0, 1002}, {"crop", required_argument, 0, 1003},
        {"help", no_argument, 0, 'h'},              {0, 0, 0, 0}};
    int c, v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:p:n:o:vqh", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'C':
            if (!endpoint_ok(optarg)) {
                fprintf(stderr,
                        "hsd edge: --cloud expects tcp://HOST:PORT or ipc:///PATH, got '%s'\n",
                        optarg);
                return 2;
            }
            if (n_endpoints == HSD_EDGE_MAX_ENDPOINTS) {
                fprintf(stderr, "hsd edge: at most %d --cloud endpoints\n", HSD_EDGE_MAX_ENDPOINTS);
                return 2;
            }
            endpoints[n_endpoints++] = optarg;
            break;
        case 1002:
        case 1003:
            // The wire carries u16 pixels (docs/protocol.md §5.1).
            if (hsd_cli_parse_micro("edge", c == 1002, optarg, 65535, &r.gen)) return 2;
            break;
        case 1001: {
            int pred;
            if (hsd_cli_parse_prediction("edge", optarg, &pred)) return 2;
            pc.prediction = (enum hsd_prediction_choice)pred;
            break;
        }
        case 'm': pc.model = optarg; break;
        case 'K': key_file = optarg; break;
        case 'I': key_id = optarg; break;
        case 'p': r.gen.prompt = optarg; break;
        case 'n': r.gen.negative_prompt = optarg; break;
        case 'o': out = optarg; break;
        case 'V': pc.vae = optarg; break;
        case 'B': backend = optarg; break;
        case HSD_CLI_OPT_CPU_PRECISION: cpu_precision = optarg; break;
        case 'M': r.cloud_model = optarg; break;
        case 'F': no_fallback = 1; break;
        case 'k':
            if ((v = hsd_cli_parse_int("edge", "--split", optarg, 0, 1000)) < 0) return 2;
            r.k_min = r.k_max = v;
            have_split = 1;
            split_arg = optarg;
            break;
        case 'R':
            if (!parse_range(optarg, &r.k_min, &r.k_max)) {
                fprintf(stderr, "hsd edge: --split-range expects KMIN:KMAX with 0 <= KMIN <= KMAX, "
                                "got '%s'\n", optarg);
                return 2;
            }
            have_range = 1;
            split_arg = optarg;
            break;
        case 'a':
            if (hsd_sampler_parse(optarg, &r.gen.sampler)) {
                fprintf(stderr, "hsd edge: %s\n", hsd_last_error());
                return 2;
            }
            break;
        case 'g':
            r.gen.guidance_scale = strtof(optarg, &end);
            if (*optarg == '\0' || *end) {
                fprintf(stderr, "hsd edge: --cfg expects a number, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 's':
            r.gen.seed = strtoull(optarg, &end, 10);
            if (*optarg == '\0' || *end || *optarg == '-') {
                fprintf(stderr, "hsd edge: --seed expects a non-negative integer\n");
                return 2;
            }
            break;
        case 'S': if ((r.gen.steps = hsd_cli_parse_int("edge", "--steps", optarg, 1, 1000)) < 0) return 2; break;
        case 'W': if ((r.gen.width = hsd_cli_parse_int("edge", "--width", optarg, 8, 4096)) < 0) return 2; break;
        case 'H': if ((r.gen.height = hsd_cli_parse_int("edge", "--height", optarg, 8, 4096)) < 0) return 2; break;
        case 'c': if ((r.gen.clip_skip = hsd_cli_parse_int("edge", "--clip-skip", optarg, 0, 23)) < 0) return 2; break;
        case 1000:
            if (hsd_prompt_style_parse(optarg, &r.gen.prompt_style)) {
                fprintf(stderr, "hsd edge: %s\n", hsd_last_error());
                return 2;
            }
            break;
        case 't': if ((pc.threads = hsd_cli_parse_int("edge", "--threads", optarg, 1, 1024)) < 0) return 2; break;
        case 'T': if ((co.timeout_ms = hsd_cli_parse_int("edge", "--timeout-ms", optarg, 1, 3600000)) < 0) return 2; break;
        case 'r': if ((co.retries = hsd_cli_parse_int("edge", "--retries", optarg, 0, 100)) < 0) return 2; break;
        case 'P':
            if ((v = hsd_cli_parse_int("edge", "--priority", optarg, 0, 7)) < 0) return 2;
            r.priority = (uint8_t)v;
            break;
        case 'D':
            if ((v = hsd_cli_parse_int("edge", "--deadline-ms", optarg, 0, 3600000)) < 0) return 2;
            r.deadline_ms = (uint32_t)v;
            break;
        case 'X':
            http = 1;
            // "--http ADDR:PORT" as well as "--http=ADDR:PORT"; a bare --http
            // takes the default.
            if (!optarg && optind < argc && argv[optind][0] != '-') optarg = argv[optind++];
            if (optarg && !parse_http(optarg, http_addr, sizeof http_addr, &hc.port)) {
                fprintf(stderr, "hsd edge: --http expects ADDR:PORT (IPv4, port 0..65535), "
                                "got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'Q': if ((hc.queue_limit = hsd_cli_parse_int("edge", "--queue-limit", optarg, 1, 1024)) < 0) return 2; break;
        case 'Y':
            if ((v = hsd_cli_parse_int("edge", "--max-body", optarg, 1024, 64 << 20)) < 0) return 2;
            hc.max_body = (size_t)v;
            break;
        case 'Z': if ((hc.max_connections = hsd_cli_parse_int("edge", "--max-connections", optarg, 1, 10000)) < 0) return 2; break;
        case 'v': verbose = 1; hsd_log_set_level(HSD_LOG_INFO); break;
        case 'q': quiet = 1; break;
        case 'L': if (hsd_cli_lora_named("edge", &loras, optarg, 1)) return 2; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!n_endpoints || !pc.model || (!http && (!r.gen.prompt || !out)) || optind != argc) {
        fprintf(stderr, http ? "hsd edge: --cloud and --model are required\n"
                             : "hsd edge: --cloud, --model, --prompt and --out are required\n");
        usage(stderr);
        return 2;
    }
    if (hsd_cli_check_backend("edge", backend, 0)) return 2;
    if (hsd_cli_cpu_precision("edge", cpu_precision, backend, &pc.cpu_precision)) return 2;
    // The LoRAs go into the edge pipeline (its U-Net and text encoder) under
    // the names the cloud registered them with.
    pc.loras = loras.spec;
    pc.n_loras = loras.n;
    for (int i = 0; i < loras.n; i++) lora_names[i] = loras.spec[i].name;
    r.lora_names = lora_names;
    r.n_loras = loras.n;
    // The daemon's requests choose their LoRAs and scales in the prompt
    // (<lora:NAME:SCALE>, docs/edge-http.md); --lora only registers them.
    r.gen.lora_scales = loras.n && !http ? loras.scale : NULL;
    if (have_split == have_range) {
        fprintf(stderr, "hsd edge: give exactly one of --split K and --split-range KMIN:KMAX "
                        "(the U-Net calls the cloud runs)\n");
        return 2;
    }
    if (!key_id != !key_file) {
        fprintf(stderr, "hsd edge: --key-file and --key-id go together (the line of the keys "
                        "file to sign with)\n");
        return 2;
    }
    // A daemon's requests bring their own steps (a k beyond them is 422).
    if (!http && r.k_max > r.gen.steps) {
        fprintf(stderr, "hsd edge: --split%s %s: the cloud runs at most --steps (%d) U-Net calls\n",
                have_range ? "-range" : "", split_arg, r.gen.steps);
        return 2;
    }
    // Everything is checked before any network traffic or compute: the
    // output path, the key, the edge model and the request against it.
    if (!http && hsd_png_check_writable(out)) return hsd_cli_fail("edge");
    struct hsd_auth *keys = NULL;
    struct hsd_pipeline *p = NULL;
    uint8_t *rgb = NULL;
    char *js = NULL;
    int rc = 1;
    if (key_file && load_key(&keys, &co.key, key_file, key_id)) goto fail;
    struct hsd_backend *be = NULL;
    double t_load = hsd_cli_now_s();
    // An edge with a GPU finishes its steps and decodes on it.
    if (backend && hsd_backend_open_one(backend, pc.threads, &be)) goto fail;
    pc.backend = be;
    if (hsd_pipeline_load(&p, &pc)) goto fail;
    t_load = hsd_cli_now_s() - t_load;
    co.endpoints = endpoints;
    co.n_endpoints = n_endpoints;
    if (http && hsd_pipeline_is_sdxl(p) && r.gen.prompt_style == HSD_PROMPT_A1111) {
        // Every request of the daemon takes its style: refused once, at
        // start, as hsd generate and hsd serve refuse it for SDXL.
        hsd_fail(HSD_ERR_UNSUPPORTED, "%s: an SDXL model; --prompt-style a1111 is not "
                 "supported for SDXL models yet (drop it: diffusers' prompt style)", pc.model);
        goto fail;
    }
    if (http) {
        hc.addr = http_addr;
        hc.p = &p;  // the daemon may reload it with another VAE
        hc.pc = &pc;
        hc.client = &co;
        hc.base = r;
        hc.no_fallback = no_fallback;
        if (serve_http(&hc)) goto fail;
        rc = 0;
        goto done;
    }
    if (hsd_edge_request_validate(&r, p)) goto fail;
    rgb = malloc((size_t)r.gen.width * r.gen.height * 3);
    if (!rgb) {
        hsd_fail(HSD_ERR_NOMEM, "out of memory");
        goto fail;
    }
    struct hsd_cli_progress pr;
    hsd_cli_progress_start(&pr, quiet);
    struct hsd_edge_run_info ri;
    if (hsd_edge_run(p, &r, &co, no_fallback, rgb, &ri, hsd_cli_on_progress, &pr)) goto fail;
    const struct hsd_edge_cloud_info info = ri.cloud;
    const struct hsd_edge_timing tm = ri.edge;
    int local = info.outcome == HSD_EDGE_LOCAL;
    if (local)
        fprintf(stderr, "hsd edge: no cloud answered: %s; generating locally with the edge "
                        "model (k = 0)\n", info.reason);

    // Endpoints as given: nanomsg does not say which one answered.
    char eps[HSD_EDGE_MAX_ENDPOINTS * 64] = "";
    for (int i = 0; i < n_endpoints; i++) {
        size_t l = strlen(eps);
        snprintf(eps + l, sizeof eps - l, "%s%s", i ? "," : "", endpoints[i]);
    }
    json_t *j = json_pack("{s:s, s:s, s:i, s:s, s:f, s:i, s:i, s:I, s:s, s:i, s:s, s:i, s:s}",
                          "prompt", r.gen.prompt, "negative_prompt",
                          r.gen.negative_prompt ? r.gen.negative_prompt : "", "steps",
                          r.gen.steps, "sampler", hsd_sampler_name(r.gen.sampler), "cfg",
                          (double)r.gen.guidance_scale, "width", r.gen.width, "height",
                          r.gen.height, "seed", (json_int_t)r.gen.seed, "edge_model", pc.model,
                          "split", ri.k_used, "vae", pc.vae ? pc.vae : "full",
                          "clip_skip", r.gen.clip_skip, "cloud_endpoint", eps);
    if (j && local) {
        json_object_set_new(j, "fallback", json_string("local"));
        json_object_set_new(j, "fallback_reason", json_string(info.reason));
    } else if (j) {
        json_object_set_new(j, "cloud_k", json_integer(ri.k_used));
        json_object_set_new(j, "cloud_device_ms", json_real(ri.device_ms));
    }
    js = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    struct hsd_png_text text[2] = {{"Software", "hybridsd"}, {"hsd-parameters", js ? js : "{}"}};
    if (hsd_png_write(out, rgb, r.gen.width, r.gen.height, text, 2)) goto fail;
    if (local)
        printf("%s: local fallback (k = 0), edge %d U-Net calls %.0f ms, decode %.0f ms\n", out,
               tm.calls, tm.unet_ms, tm.decode_ms);
    else
        printf("%s: cloud k = %d (%.0f ms to RESULT, %.1f device-ms, %d attempt(s)), edge %d "
               "U-Net calls %.0f ms, decode %.0f ms\n",
               out, ri.k_used, info.wait_ms, ri.device_ms, info.attempts, tm.calls, tm.unet_ms,
               tm.decode_ms);
    if (verbose)
        fprintf(stderr, "timing: load %.1f ms, cloud %.1f ms (%d attempt(s)%s), edge text %.1f ms, "
                        "%d U-Net calls %.1f ms, decode %.1f ms\n",
                t_load * 1e3, info.wait_ms, info.attempts, local ? ", gave up" : "", tm.text_ms,
                tm.calls, tm.unet_ms, tm.decode_ms);
    rc = 0;
    goto done;
fail:
    hsd_cli_fail("edge");
done:
    free(js);
    free(rgb);
    hsd_pipeline_free(p);
    hsd_backend_destroy(be);
    hsd_auth_free(keys);
    return rc;
}
