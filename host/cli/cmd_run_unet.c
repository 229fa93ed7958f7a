// hsd run-unet: one U-Net forward on tensors read from a .safetensors file
// (diffusers layouts), output written to another. For parity checks.
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/open/backend_open.h"
#include "cli/cli.h"
#include "cli/cli_backend.h"
#include "core/log.h"
#include "io/safetensors.h"
#include "models/unet.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: hsd run-unet --model DIR|FILE --in IN.safetensors --out OUT.safetensors\n"
            "                    [--config config.json] [--threads N] [--backend B] [-v]\n"
            "                    [--cpu-precision fp32|bf16]\n\n"
            "  --model    diffusers folder (with unet/ or the unet folder itself) or a\n"
            "             single-file CompVis/LDM .safetensors checkpoint\n"
            "  --in       holds sample [n,C,h,w] F32 (NCHW), timestep [n] F32 or I64 (or a\n"
            "             scalar, used for every sample), encoder_hidden_states [n,L,C] F32,\n"
            "             and for SDXL-family U-Nets text_embeds [n,P] and time_ids [n,6] F32\n"
            "  --out      written with sample [n,C_out,h,w] F32 (atomically)\n"
            "  --config   config.json to use instead of the model's (or the inferred one)\n"
            "  --threads  CPU threads (default: every core)\n"
            HSD_CLI_BACKEND_HELP HSD_CLI_CPU_PRECISION_HELP);
}

// Reads `name` as F32 data with the given rank; returns malloc'd floats.
static enum hsd_status read_tensor(const struct hsd_safetensors *st, const char *name, int ndim,
                                   const struct hsd_st_tensor **out_t, float **out) {
    const struct hsd_st_tensor *t = hsd_safetensors_find(st, name);
    *out = NULL;
    if (!t)
        return hsd_fail(HSD_ERR_NOT_FOUND, "%s: missing tensor '%s'", hsd_safetensors_path(st),
                        name);
    if (t->ndim != ndim)
        return hsd_fail(HSD_ERR_SHAPE, "%s: tensor '%s' has %d dims, expected %d",
                        hsd_safetensors_path(st), name, t->ndim, ndim);
    *out_t = t;
    *out = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
    if (!*out) return hsd_fail(HSD_ERR_NOMEM, "out of memory reading '%s'", name);
    if (t->dtype != HSD_F32)
        return hsd_fail(HSD_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s, expected F32",
                        hsd_safetensors_path(st), name, hsd_dtype_name(t->dtype));
    return hsd_safetensors_read_f32(st, name, *out, (size_t)t->numel);
}

static enum hsd_status read_timesteps(const struct hsd_safetensors *st, int n, float *t) {
    const struct hsd_st_tensor *tt = hsd_safetensors_find(st, "timestep");
    const char *path = hsd_safetensors_path(st);
    if (!tt) return hsd_fail(HSD_ERR_NOT_FOUND, "%s: missing tensor 'timestep'", path);
    if (!(tt->ndim == 0 || (tt->ndim == 1 && (tt->shape[0] == n || tt->shape[0] == 1))))
        return hsd_fail(HSD_ERR_SHAPE, "%s: tensor 'timestep' must be [%d] or a scalar", path, n);
    for (int i = 0; i < n; i++) {
        int64_t j = tt->numel == 1 ? 0 : i;
        const unsigned char *p = (const unsigned char *)tt->data;
        if (tt->dtype == HSD_F32) {
            memcpy(&t[i], p + 4 * j, 4);
        } else if (tt->dtype == HSD_I64) {
            int64_t v;
            memcpy(&v, p + 8 * j, 8);
            t[i] = (float)v;
        } else {
            return hsd_fail(HSD_ERR_UNSUPPORTED,
                            "%s: tensor 'timestep': dtype %s (expected F32 or I64)", path,
                            hsd_dtype_name(tt->dtype));
        }
    }
    return HSD_OK;
}

int hsd_cmd_run_unet(int argc, char **argv) {
    const char *backend = NULL, *cpu_precision = NULL;
    const char *model = NULL, *in = NULL, *outp = NULL, *config = NULL;
    int threads = 0;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"in", required_argument, 0, 'i'},
        {"out", required_argument, 0, 'o'},   {"config", required_argument, 0, 'c'},
        {"threads", required_argument, 0, 't'}, {"verbose", no_argument, 0, 'v'}, {"backend", required_argument, 0, 'B'},
        {"cpu-precision", required_argument, 0, HSD_CLI_OPT_CPU_PRECISION},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:i:o:c:t:vhB:", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'B': backend = optarg; break;
        case HSD_CLI_OPT_CPU_PRECISION: cpu_precision = optarg; break;
        case 'i': in = optarg; break;
        case 'o': outp = optarg; break;
        case 'c': config = optarg; break;
        case 't':
            if ((threads = hsd_cli_parse_int("run-unet", "--threads", optarg, 1, 1024)) < 0)
                return 2;
            break;
        case 'v': hsd_log_set_level(HSD_LOG_INFO); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (hsd_cli_check_backend("run-unet", backend, 0)) return 2;
    enum hsd_cpu_precision precision;
    if (hsd_cli_cpu_precision("run-unet", cpu_precision, backend, &precision)) return 2;
    if (!model || !in || !outp || optind != argc) {
        fprintf(stderr, "hsd run-unet: --model, --in and --out are required\n");
        usage(stderr);
        return 2;
    }

    int rc = 1;
    struct hsd_safetensors *st = NULL;
    struct hsd_unet_source src = {0};
    struct hsd_backend *be = NULL;
    struct hsd_unet *u = NULL;
    float *sample = NULL, *ctx = NULL, *t = NULL, *out = NULL, *te = NULL, *ids = NULL;
    struct hsd_unet_added_cond add = {0};
    const struct hsd_st_tensor *ts, *tc;
    struct hsd_st_writer *w = NULL;

    // Everything is validated before the model is loaded (cheap first).
    if (hsd_safetensors_open(&st, in)) goto fail;
    if (read_tensor(st, "sample", 4, &ts, &sample)) goto fail;
    if (read_tensor(st, "encoder_hidden_states", 3, &tc, &ctx)) goto fail;
    int n = (int)ts->shape[0], h = (int)ts->shape[2], wd = (int)ts->shape[3];
    if (n < 1 || tc->shape[0] != n) {
        hsd_fail(HSD_ERR_SHAPE, "%s: sample has batch %d but encoder_hidden_states has %lld", in,
                 n, (long long)tc->shape[0]);
        goto fail;
    }
    t = malloc((size_t)n * sizeof *t);
    if (!t || read_timesteps(st, n, t)) goto fail;
    if (hsd_unet_source_open(&src, model, config)) goto fail;
    const struct hsd_unet_config *cfg = &src.cfg;
    if (ts->shape[1] != cfg->in_channels || tc->shape[2] != cfg->cross_attention_dim) {
        hsd_fail(HSD_ERR_SHAPE,
                 "%s: sample has %lld channels and context width %lld; the model expects %d and "
                 "%d",
                 in, (long long)ts->shape[1], (long long)tc->shape[2], cfg->in_channels,
                 cfg->cross_attention_dim);
        goto fail;
    }
    if (cfg->add_text_time) {
        // diffusers' added_cond_kwargs, as tests/oracle's io.safetensors hold them.
        const struct hsd_st_tensor *tte, *tid;
        if (read_tensor(st, "text_embeds", 2, &tte, &te)) goto fail;
        if (read_tensor(st, "time_ids", 2, &tid, &ids)) goto fail;
        if (tte->shape[0] != n || tid->shape[0] != n) {
            hsd_fail(HSD_ERR_SHAPE, "%s: text_embeds/time_ids must have batch %d", in, n);
            goto fail;
        }
        add = (struct hsd_unet_added_cond){te, ids, (int)tte->shape[1], (int)tid->shape[1]};
    }
    if (hsd_backend_open_one(backend, threads, &be) ||
        hsd_backend_cpu_set_precision(be, precision))
        goto fail;
    struct timespec t0, t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (hsd_unet_create(&u, &src, be)) goto fail;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    out = malloc((size_t)n * cfg->out_channels * h * wd * sizeof *out);
    if (!out) {
        hsd_fail(HSD_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (hsd_unet_forward_cond(u, out, sample, t, ctx, cfg->add_text_time ? &add : NULL, n, h, wd,
                              (int)tc->shape[1]))
        goto fail;
    clock_gettime(CLOCK_MONOTONIC, &t2);
    HSD_INFO("run-unet: load %.1f ms, forward %.1f ms (n=%d %dx%d)",
             (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6,
             (t2.tv_sec - t1.tv_sec) * 1e3 + (t2.tv_nsec - t1.tv_nsec) / 1e6, n, h, wd);
    int64_t shape[4] = {n, cfg->out_channels, h, wd};
    if (hsd_st_writer_create(&w) || hsd_st_writer_add(w, "sample", HSD_F32, 4, shape, out) ||
        hsd_st_writer_write(w, outp))
        goto fail;
    rc = 0;
    goto done;
fail:
    hsd_cli_fail("run-unet");
done:
    hsd_st_writer_free(w);
    free(out);
    free(t);
    free(sample);
    free(ctx);
    free(te);
    free(ids);
    hsd_unet_free(u);
    hsd_backend_destroy(be);
    hsd_unet_source_close(&src);
    hsd_safetensors_close(st);
    return rc;
}
