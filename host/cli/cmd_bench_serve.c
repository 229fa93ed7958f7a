// hsd bench serve: a load generator of simulated edge clients against an
// in-process `hsd serve` (the real service path: nanomsg over ipc, wire
// codec, HMAC auth, batcher). Open-loop arrivals (Poisson at --rate), a mix
// of splits k; prints images/s, cloud device-ms per image, p50/p95/p99 time
// to RESULT and the U-Net batch-size distribution, and with --compare-cost
// the cloud cost per image of hybrid (k of N on the cloud, the edge decodes)
// against cloud-only (N cloud steps + a cloud VAE decode).
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/open/backend_open.h"
#include "cli/cli.h"
#include "cli/cli_backend.h"
#include "core/plan_stats.h"
#include "net/auth.h"
#include "net/transport.h"
#include "net/wire.h"
#include "service.h"

struct job {
    int k, steps, size;
    uint64_t seed;
    double t_send, latency_ms, device_ms;
    int type, k_used;
};

struct bench {
    char ep[160];
    struct hsd_auth *auth;
    float cfg;
    const char *prompt;
};

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static struct bench g_b;

static void *client(void *arg) {
    struct job *j = arg;
    struct hsd_wire_msg m = {.type = HSD_WIRE_GENERATE, .flags = HSD_WIRE_FLAG_AUTH,
                             .request_id = j->seed * 2654435761u + 17};
    struct hsd_wire_generate *g = &m.u.generate;
    g->seed = j->seed;
    g->width = g->height = (uint16_t)j->size;
    g->steps = (uint16_t)j->steps;
    g->k_min = g->k_max = (uint16_t)j->k;
    g->sampler = HSD_SAMPLER_DPMPP_2M;
    g->flags = HSD_WIRE_GEN_TEXT_EMB;
    g->cfg_scale = g_b.cfg;
    g->prompt.kind = g->negative.kind = HSD_WIRE_PROMPT_TEXT;
    g->prompt.text.p = g_b.prompt;
    g->prompt.text.n = strlen(g_b.prompt);
    void *buf;
    size_t len;
    j->type = -1;
    if (hsd_wire_encode_alloc(&buf, &len, &m)) return NULL;
    hsd_auth_sign(buf, len, hsd_auth_find(g_b.auth, "bench"), hsd_auth_now_ms());
    struct hsd_net_client *c = NULL;
    const char *eps[1] = {g_b.ep};
    struct hsd_net_opts no = {.resend_ivl_ms = 3600 * 1000};
    j->t_send = now_ms();
    if (!hsd_net_client_open(&c, NULL, eps, 1, &no) && !hsd_net_client_send(c, buf, len)) {
        struct hsd_net_msg r;
        enum hsd_net_wait what;
        if (!hsd_net_client_recv(c, &r, 30 * 60 * 1000, &what) && what == HSD_NET_GOT) {
            j->latency_ms = now_ms() - j->t_send;
            struct hsd_wire_msg rep;
            enum hsd_wire_error code;
            if (!hsd_wire_decode(&rep, &code, r.data, r.len)) {
                j->type = rep.type;
                if (rep.type == HSD_WIRE_RESULT) {
                    j->device_ms = rep.u.result.device_ms;
                    j->k_used = rep.u.result.k_used;
                }
            }
            hsd_net_msg_release(&r);
        }
    }
    hsd_net_client_close(c);
    free(buf);
    return NULL;
}

static volatile sig_atomic_t g_stop;
static struct hsd_pipeline *g_pipe;
static struct hsd_service_opts g_so;
static double g_recv_us;  // the receive thread's median per GENERATE, set when it exits

static void *serve(void *arg) {
    (void)arg;
    if (hsd_service_run(&g_pipe, 1, &g_so, &g_stop))
        fprintf(stderr, "hsd bench serve: service: %s\n", hsd_last_error());
    return NULL;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct phase_result {
    double images_per_s, device_ms_per_image, p50, p95, p99;
    double busy;  // share of the phase's wall time the workers spent computing
    int ok, failed;
    uint64_t hist[8], batches;
};

// Runs n requests arriving at `rate`/s with splits drawn from ks/weights.
static void run_phase(int n, double rate, const int *ks, const double *wts, int n_k, int steps,
                      int size, struct hsd_sched *volatile *sched, struct phase_result *pr) {
    struct job *jobs = calloc((size_t)n, sizeof *jobs);
    pthread_t *th = calloc((size_t)n, sizeof *th);
    struct hsd_sched_stats s0, s1;
    hsd_sched_get_stats(*sched, &s0);
    double t0 = now_ms(), next = 0;
    unsigned seed = 12345;
    for (int i = 0; i < n; i++) {
        double u = (rand_r(&seed) + 1.0) / (RAND_MAX + 2.0), pick = rand_r(&seed) / (double)RAND_MAX;
        int k = ks[n_k - 1];
        for (int a = 0; a < n_k; a++) {
            if (pick < wts[a]) {
                k = ks[a];
                break;
            }
            pick -= wts[a];
        }
        jobs[i] = (struct job){.k = k, .steps = steps, .size = size, .seed = (uint64_t)i};
        double wait = t0 + next - now_ms();
        if (wait > 0) usleep((useconds_t)(wait * 1000));
        pthread_create(&th[i], NULL, client, &jobs[i]);
        next += rate > 0 ? -log(u) / rate * 1000.0 : 0;  // Poisson arrivals
    }
    double *lat = calloc((size_t)n, sizeof *lat);
    double dev = 0;
    memset(pr, 0, sizeof *pr);
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        if (jobs[i].type == HSD_WIRE_RESULT) {
            lat[pr->ok++] = jobs[i].latency_ms;
            dev += jobs[i].device_ms;
        } else {
            pr->failed++;
        }
    }
    double wall = now_ms() - t0;
    hsd_sched_get_stats(*sched, &s1);
    qsort(lat, (size_t)pr->ok, sizeof *lat, cmp_d);
    if (pr->ok) {
        pr->p50 = lat[(pr->ok - 1) * 50 / 100];
        pr->p95 = lat[(pr->ok - 1) * 95 / 100];
        pr->p99 = lat[(pr->ok - 1) * 99 / 100];
        pr->device_ms_per_image = dev / pr->ok;
    }
    pr->images_per_s = pr->ok / (wall / 1e3);
    for (int i = 0; i < 8; i++) pr->hist[i] = s1.batch_hist[i] - s0.batch_hist[i];
    pr->batches = s1.batches - s0.batches;
    // Workers' compute time over wall time: at saturation, 1 - busy is the
    // scheduler's overhead (admission, batching, replies) plus the ramp-up
    // and drain of the phase.
    pr->busy = wall > 0 && s1.devices ? (s1.busy_ms - s0.busy_ms) / (wall * s1.devices) : 0.0;
    free(lat);
    free(jobs);
    free(th);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: hsd bench serve --model DIR [--requests N] [--rate R] [--steps N]\n"
            "                       [--k-mix K:W,K:W,...] [--size PX] [--max-batch B]\n"
            "                       [--cfg S] [--threads T] [--backend B] [--compare-cost]\n"
            "                       [--buckets LIST] [--warmup]\n\n"
            "  Starts hsd serve in-process on an ipc:// endpoint and sends N requests from\n"
            "  simulated edge clients arriving at R per second (Poisson; 0 = all at once).\n"
            "  --k-mix     splits and their weights (default 10:1 = all k=10)\n"
            "  --compare-cost  also run every request cloud-only (k = N) and add a cloud VAE\n"
            "              decode: prints cloud device-ms per image for both and the saving\n"
            "  --buckets   U-Net row buckets (as hsd serve --buckets)\n"
            "  --warmup    warm every (bucket, --size) first (hsd serve --warmup); prints the\n"
            "              plans/captures/tunings the run itself added (hsd_plans_total)\n"
            "  Defaults: 32 requests, rate 0, 25 steps, 64 px, max batch 16, cfg 7.5.\n"
            HSD_CLI_BACKEND_HELP);
}

static void print_phase(const char *name, const struct phase_result *p, int steps, double extra) {
    static const char *const b[8] = {"1", "2", "3-4", "5-8", "9-16", "17-32", "33-64", ">64"};
    printf("%-12s %3d ok %2d failed  %7.2f images/s  cloud %9.1f device-ms/image  "
           "p50 %8.1f  p95 %8.1f  p99 %8.1f ms\n",
           name, p->ok, p->failed, p->images_per_s, p->device_ms_per_image + extra, p->p50,
           p->p95, p->p99);
    printf("             batch rows:");
    for (int i = 0; i < 8; i++)
        if (p->hist[i]) printf(" %s:%llu", b[i], (unsigned long long)p->hist[i]);
    printf("  (%llu U-Net calls, %d steps; workers busy %.1f%% of the wall time)\n",
           (unsigned long long)p->batches, steps, 100 * p->busy);
    printf("{\"bench\":\"serve\",\"phase\":\"%s\",\"ok\":%d,\"failed\":%d,\"images_per_s\":%.4f,"
           "\"cloud_device_ms_per_image\":%.2f,\"p50_ms\":%.1f,\"p95_ms\":%.1f,\"p99_ms\":%.1f,"
           "\"batches\":%llu,\"busy\":%.4f}\n",
           name, p->ok, p->failed, p->images_per_s, p->device_ms_per_image + extra, p->p50, p->p95,
           p->p99, (unsigned long long)p->batches, p->busy);
}

int hsd_cmd_bench_serve(int argc, char **argv) {
    const char *model = NULL, *mix = "10:1", *backend = NULL;
    int n = 32, steps = 25, size = 64, max_batch = 16, threads = 0, compare = 0, warmup = 0;
    const char *bucket_arg = NULL;
    double rate = 0;
    float cfg = 7.5f;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"requests", required_argument, 0, 'n'},
        {"rate", required_argument, 0, 'r'},  {"steps", required_argument, 0, 's'},
        {"k-mix", required_argument, 0, 'k'}, {"size", required_argument, 0, 'z'},
        {"max-batch", required_argument, 0, 'b'}, {"cfg", required_argument, 0, 'g'},
        {"threads", required_argument, 0, 't'}, {"compare-cost", no_argument, 0, 'C'}, {"backend", required_argument, 0, 'B'},
        {"buckets", required_argument, 0, 'U'}, {"warmup", no_argument, 0, 'W'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'k': mix = optarg; break;
        case 'B': backend = optarg; break;
        case 'r': rate = atof(optarg); break;
        case 'g': cfg = (float)atof(optarg); break;
        case 'C': compare = 1; break;
        case 'W': warmup = 1; break;
        case 'U': bucket_arg = optarg; break;
        case 'n': if ((n = hsd_cli_parse_int("bench serve", "--requests", optarg, 1, 2000)) < 0) return 2; break;
        case 's': if ((steps = hsd_cli_parse_int("bench serve", "--steps", optarg, 1, 1000)) < 0) return 2; break;
        case 'z': if ((size = hsd_cli_parse_int("bench serve", "--size", optarg, 64, 2048)) < 0) return 2; break;
        case 'b': if ((max_batch = hsd_cli_parse_int("bench serve", "--max-batch", optarg, 1, 256)) < 0) return 2; break;
        case 't': if ((threads = hsd_cli_parse_int("bench serve", "--threads", optarg, 1, 1024)) < 0) return 2; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (hsd_cli_check_backend("bench serve", backend, 0)) return 2;
    int buckets[HSD_PIPELINE_MAX_BUCKETS], n_buckets = 0;
    if (bucket_arg && (n_buckets = hsd_cli_parse_buckets("bench serve", bucket_arg, buckets)) < 0)
        return 2;
    if (!model || optind != argc || rate < 0) {
        usage(stderr);
        return 2;
    }
    int ks[16], n_k = 0;
    double wts[16], wsum = 0;
    for (const char *p = mix; *p && n_k < 16;) {
        char *end;
        long k = strtol(p, &end, 10);
        double w = *end == ':' ? strtod(end + 1, &end) : 1.0;
        if (end == p || k < 0 || k > steps || w <= 0) {
            fprintf(stderr, "hsd bench serve: bad --k-mix '%s' (K:W,... with 0 <= K <= steps)\n", mix);
            return 2;
        }
        ks[n_k] = (int)k;
        wts[n_k++] = w;
        wsum += w;
        p = *end == ',' ? end + 1 : end;
    }
    for (int i = 0; i < n_k; i++) wts[i] /= wsum;

    char dir[] = "/tmp/hsd_bench_serve_XXXXXX", keys[96];
    if (!mkdtemp(dir)) return hsd_cli_fail("bench serve");
    snprintf(g_b.ep, sizeof g_b.ep, "ipc://%s/s.ipc", dir);
    snprintf(keys, sizeof keys, "%s/keys", dir);
    // The bench's own key may ask for every --steps and --size it accepts,
    // beyond the default per-key limits (docs/protocol.md §4 "Default limits").
    const char *line = "bench 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef "
                       "rate_per_min=0 max_pixels=16777216 max_steps=1000\n";
    FILE *kf = fopen(keys, "w");
    if (!kf) return hsd_cli_fail("bench serve");
    fputs(line, kf);
    fclose(kf);
    chmod(keys, 0600);  // a keys file holds secrets
    if (hsd_auth_parse(&g_b.auth, line, strlen(line), "bench key", NULL))
        return hsd_cli_fail("bench serve");
    g_b.cfg = cfg;
    g_b.prompt = "a photo of an astronaut riding a horse on mars";
    struct hsd_backend *be = NULL;
    if (backend && hsd_backend_open_one(backend, threads, &be)) return hsd_cli_fail("bench serve");
    struct hsd_pipeline_config pc = {.model = model, .threads = threads, .backend = be,
                                     .row_buckets = buckets, .n_row_buckets = n_buckets};
    if (hsd_pipeline_load(&g_pipe, &pc)) {
        hsd_backend_destroy(be);
        return hsd_cli_fail("bench serve");
    }
    printf("hsd bench serve: device %s\n", hsd_pipeline_backend(g_pipe)->desc);
    struct hsd_sched *volatile sched = NULL;
    const char *eps[1] = {g_b.ep};
    int warm_size[2] = {size, size};
    g_so = (struct hsd_service_opts){
        .endpoints = eps, .n_endpoints = 1, .keys_file = keys, .grace_ms = 1000,
        .sched = {.max_batch_rows = max_batch, .queue_limit = 4096, .max_active = 256,
                  .admit_batch = 16, .adaptive_threshold = 1 << 20},
        .sched_out = (struct hsd_sched **)&sched, .recv_us_out = &g_recv_us,
        .warmup = warmup, .warmup_sizes = warm_size, .n_warmup_sizes = 1};
    pthread_t st;
    pthread_create(&st, NULL, serve, NULL);
    // The service is up after its warm-up: every bucket recorded (and, on a
    // GPU, its convs timed) can take far longer than a cold start.
    for (int i = 0; i < (warmup ? 2400 : 100) && !sched; i++) usleep(50 * 1000);
    int rc = 1;
    if (!sched) goto out;
    usleep(200 * 1000);
    char rate_s[32];
    if (rate > 0) snprintf(rate_s, sizeof rate_s, "%.3g", rate);
    else snprintf(rate_s, sizeof rate_s, "unlimited");
    printf("hsd bench serve: %s, %d requests, rate %s/s, %d steps, %dx%d, max batch %d rows, "
           "cfg %.1f, k mix %s\n",
           model, n, rate_s, steps, size, size, max_batch, (double)cfg, mix);
    uint64_t plans0[HSD_PLAN_KINDS];
    for (int k = 0; k < HSD_PLAN_KINDS; k++) plans0[k] = hsd_plan_stats_get((enum hsd_plan_kind)k);
    struct phase_result hyb;
    run_phase(n, rate, ks, wts, n_k, steps, size, &sched, &hyb);
    print_phase("hybrid", &hyb, steps, 0.0);
    if (compare) {
        // Cloud-only: every step in the cloud, and the cloud also decodes.
        int all[1] = {steps};
        double one[1] = {1.0};
        struct phase_result co;
        run_phase(n, rate, all, one, 1, steps, size, &sched, &co);
        int h = size / hsd_pipeline_vae_scale(g_pipe);
        size_t lat = (size_t)hsd_pipeline_latent_channels(g_pipe) * h * h;
        float *z = calloc(lat, sizeof *z), *img = malloc((size_t)3 * size * size * sizeof *img);
        double t0 = now_ms();
        enum hsd_status s = hsd_pipeline_decode(g_pipe, img, z, 1, h, h);
        double dec = now_ms() - t0;
        free(z);
        free(img);
        if (s) goto out;
        print_phase("cloud-only", &co, steps, dec);
        double saving = 1.0 - hyb.device_ms_per_image / (co.device_ms_per_image + dec);
        printf("cloud cost per image: hybrid %.1f device-ms vs cloud-only %.1f (%.1f U-Net + "
               "%.1f decode): %.1f%% lower\n",
               hyb.device_ms_per_image, co.device_ms_per_image + dec, co.device_ms_per_image, dec,
               100 * saving);
        printf("{\"bench\":\"serve\",\"compare\":\"hybrid_vs_cloud_only\",\"hybrid_ms\":%.2f,"
               "\"cloud_only_ms\":%.2f,\"decode_ms\":%.2f,\"saving\":%.4f}\n",
               hyb.device_ms_per_image, co.device_ms_per_image + dec, dec, saving);
    }
    // What serving itself planned, tuned, recorded or grew: zero for shapes
    // a warm-up covered (hsd_plans_total on /metrics).
    printf("plans during the run (%s):", warmup ? "after warm-up" : "no warm-up");
    for (int k = 0; k < HSD_PLAN_KINDS; k++)
        printf(" %s %llu", hsd_plan_kind_name((enum hsd_plan_kind)k),
               (unsigned long long)(hsd_plan_stats_get((enum hsd_plan_kind)k) - plans0[k]));
    printf("\n{\"bench\":\"serve\",\"warmup\":%d,\"plans_during_run\":{", warmup);
    for (int k = 0; k < HSD_PLAN_KINDS; k++)
        printf("%s\"%s\":%llu", k ? "," : "", hsd_plan_kind_name((enum hsd_plan_kind)k),
               (unsigned long long)(hsd_plan_stats_get((enum hsd_plan_kind)k) - plans0[k]));
    printf("}}\n");
    rc = 0;
out:
    g_stop = 1;
    pthread_join(st, NULL);
    if (!rc) {
        printf("receive thread: median %.1f us per GENERATE (precheck, decode, auth, submit)\n",
               g_recv_us);
        printf("{\"bench\":\"serve\",\"recv_us_per_generate\":%.2f}\n", g_recv_us);
    }
    hsd_pipeline_free(g_pipe);
    hsd_backend_destroy(be);
    hsd_auth_free(g_b.auth);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) rc = rc ? rc : 1;
    if (rc) hsd_cli_fail("bench serve");
    return rc;
}
