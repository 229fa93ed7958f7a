// hsd run-vae: one VAE decode (or encode) on a tensor read from a
// .safetensors file, result written to another. For parity checks against
// diffusers (vae.decode(latent).sample before any clamping/quantising;
// vae.encode(image): the posterior mean for AutoencoderKL, the latents for
// AutoencoderTiny).
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/open/backend_open.h"
#include "cli/cli.h"
#include "cli/cli_backend.h"
#include "core/log.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "models/vae.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: hsd run-vae --model DIR --in IN.safetensors --out OUT.safetensors\n"
            "                   [--encode] [--threads N] [--backend B] [-v]\n\n"
            "  --model    diffusers pipeline folder (reads vae/), the vae folder itself\n"
            "             (AutoencoderKL or AutoencoderTiny) or an SD single-file checkpoint\n"
            "             (first_stage_model.*)\n"
            "  --in       decode: latent [n,C,h,w] F32 (NCHW, as vae.decode receives it:\n"
            "             already divided by the scaling factor)\n"
            "             --encode: image [n,3,H,W] F32 in [-1, 1], H and W multiples of 8\n"
            "  --out      decode: image [n,3,8h,8w] F32, not clamped; --encode: latent\n"
            "             [n,C,H/8,W/8] F32 (KL: posterior mean, not scaled) (atomically)\n"
            "  --encode   encode instead of decode\n"
            "  --threads  CPU threads (default: every core)\n"
            HSD_CLI_BACKEND_HELP);
}

int hsd_cmd_run_vae(int argc, char **argv) {
    const char *backend = NULL;
    const char *model = NULL, *in = NULL, *outp = NULL;
    int threads = 0, encode = 0;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"in", required_argument, 0, 'i'},
        {"out", required_argument, 0, 'o'},   {"encode", no_argument, 0, 'e'},
        {"threads", required_argument, 0, 't'}, {"verbose", no_argument, 0, 'v'}, {"backend", required_argument, 0, 'B'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:i:o:et:vhB:", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'B': backend = optarg; break;
        case 'i': in = optarg; break;
        case 'o': outp = optarg; break;
        case 'e': encode = 1; break;
        case 't':
            if ((threads = hsd_cli_parse_int("run-vae", "--threads", optarg, 1, 1024)) < 0)
                return 2;
            break;
        case 'v': hsd_log_set_level(HSD_LOG_INFO); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (hsd_cli_check_backend("run-vae", backend, 0)) return 2;
    if (!model || !in || !outp || optind != argc) {
        fprintf(stderr, "hsd run-vae: --model, --in and --out are required\n");
        usage(stderr);
        return 2;
    }

    int rc = 1;
    const char *in_name = encode ? "image" : "latent", *out_name = encode ? "latent" : "image";
    struct hsd_safetensors *st = NULL;
    struct hsd_backend *be = NULL;
    struct hsd_vae *v = NULL;
    float *x = NULL, *y = NULL;
    struct hsd_st_writer *w = NULL;

    // The input is validated before the model is loaded (cheap first).
    if (hsd_safetensors_open(&st, in)) goto fail;
    const struct hsd_st_tensor *t = hsd_safetensors_find(st, in_name);
    if (!t) {
        hsd_fail(HSD_ERR_NOT_FOUND, "%s: missing tensor '%s'%s", in, in_name,
                 encode ? "" : " (use --encode to encode an 'image')");
        goto fail;
    }
    if (t->ndim != 4 || t->shape[0] < 1 || t->shape[2] < 1 || t->shape[3] < 1 ||
        t->shape[0] > 4096 || t->shape[2] > 65536 || t->shape[3] > 65536) {
        hsd_fail(HSD_ERR_SHAPE, "%s: tensor '%s' must be [n, C, h, w] with positive sizes", in,
                 in_name);
        goto fail;
    }
    if (t->dtype != HSD_F32) {
        hsd_fail(HSD_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s, expected F32", in, in_name,
                 hsd_dtype_name(t->dtype));
        goto fail;
    }
    x = malloc((size_t)t->numel * sizeof *x);
    if (!x) {
        hsd_fail(HSD_ERR_NOMEM, "out of memory reading '%s'", in_name);
        goto fail;
    }
    if (hsd_safetensors_read_f32(st, in_name, x, (size_t)t->numel)) goto fail;
    int n = (int)t->shape[0], h = (int)t->shape[2], wd = (int)t->shape[3];

    if (hsd_backend_open_one(backend, threads, &be)) goto fail;
    struct timespec t0, t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (hsd_is_file(model) ? hsd_vae_load_ldm(&v, model, be) : hsd_vae_load(&v, model, be))
        goto fail;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int lc = hsd_vae_latent_channels(v), s = hsd_vae_scale(v);
    int64_t want_c = encode ? 3 : lc;
    if (t->shape[1] != want_c) {
        hsd_fail(HSD_ERR_SHAPE, "%s: tensor '%s' has %lld channels; the model expects %lld", in,
                 in_name, (long long)t->shape[1], (long long)want_c);
        goto fail;
    }
    int64_t shape[4] = {n, encode ? lc : 3, encode ? h / s : (int64_t)h * s,
                        encode ? wd / s : (int64_t)wd * s};
    size_t count = (size_t)(shape[0] * shape[1] * shape[2] * shape[3]);
    y = malloc((count ? count : 1) * sizeof *y);
    if (!y) {
        hsd_fail(HSD_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (encode ? hsd_vae_encode(v, y, x, n, h, wd) : hsd_vae_decode(v, y, x, n, h, wd)) goto fail;
    clock_gettime(CLOCK_MONOTONIC, &t2);
    HSD_INFO("run-vae: load %.1f ms, %s %.1f ms (n=%d %dx%d)",
             (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6,
             encode ? "encode" : "decode",
             (t2.tv_sec - t1.tv_sec) * 1e3 + (t2.tv_nsec - t1.tv_nsec) / 1e6, n, h, wd);
    if (hsd_st_writer_create(&w) || hsd_st_writer_add(w, out_name, HSD_F32, 4, shape, y) ||
        hsd_st_writer_write(w, outp))
        goto fail;
    rc = 0;
    goto done;
fail:
    hsd_cli_fail("run-vae");
done:
    hsd_st_writer_free(w);
    free(x);
    free(y);
    hsd_vae_free(v);
    hsd_backend_destroy(be);
    hsd_safetensors_close(st);
    return rc;
}
