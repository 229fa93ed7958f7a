// hsd run-text: one CLIP text encoder forward on token ids read from a
// .safetensors file, last_hidden_state written to another. For parity
// checks against transformers (tests/oracle/make_text_cases.py).
#include <getopt.h>
#include <stdint.h>
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
#include "models/clip_text.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: hsd run-text --model DIR --in IN.safetensors --out OUT.safetensors\n"
            "                    [--clip-skip K] [--threads N] [--backend B] [-v]\n\n"
            "  --model      diffusers pipeline folder (with text_encoder/), a text_encoder\n"
            "               folder (config.json + model.safetensors) or an SD 1.x single-file\n"
            "               checkpoint (cond_stage_model.transformer.*)\n"
            "  --in         holds input_ids [n,L] I64 or I32 (L <= max_position_embeddings)\n"
            "  --out        written with last_hidden_state [n,L,C] F32 (atomically)\n"
            "  --clip-skip  as diffusers' clip_skip: the output of layer (layers - K), then\n"
            "               the final layer norm (default 0: the last layer)\n"
            "  --threads    CPU threads (default: every core)\n"
            HSD_CLI_BACKEND_HELP);
}

// input_ids as int32; I64 values outside int32 are refused (the model then
// checks them against the vocabulary).
static enum hsd_status read_ids(const struct hsd_safetensors *st, int32_t **out, int *n,
                                int *L) {
    const char *path = hsd_safetensors_path(st);
    const struct hsd_st_tensor *t = hsd_safetensors_find(st, "input_ids");
    *out = NULL;
    if (!t) return hsd_fail(HSD_ERR_NOT_FOUND, "%s: missing tensor 'input_ids'", path);
    if (t->ndim != 2 || t->shape[0] < 1 || t->shape[1] < 1 || t->shape[0] > 4096 ||
        t->shape[1] > 65536)
        return hsd_fail(HSD_ERR_SHAPE,
                        "%s: tensor 'input_ids' must be [n, L] with 1 <= n <= 4096 and "
                        "1 <= L <= 65536",
                        path);
    if (t->dtype != HSD_I64 && t->dtype != HSD_I32)
        return hsd_fail(HSD_ERR_UNSUPPORTED,
                        "%s: tensor 'input_ids': dtype %s (expected I64 or I32)", path,
                        hsd_dtype_name(t->dtype));
    *n = (int)t->shape[0];
    *L = (int)t->shape[1];
    int32_t *ids = malloc((size_t)t->numel * sizeof *ids);
    if (!ids) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    const unsigned char *p = t->data;  // possibly unaligned
    for (int64_t i = 0; i < t->numel; i++) {
        if (t->dtype == HSD_I32) {
            memcpy(&ids[i], p + 4 * i, 4);
            continue;
        }
        int64_t v;
        memcpy(&v, p + 8 * i, 8);
        if (v < INT32_MIN || v > INT32_MAX) {
            free(ids);
            return hsd_fail(HSD_ERR_INVALID_ARG,
                            "%s: tensor 'input_ids'[%lld, %lld] = %lld is not a token id", path,
                            (long long)(i / *L), (long long)(i % *L), (long long)v);
        }
        ids[i] = (int32_t)v;
    }
    *out = ids;
    return HSD_OK;
}

int hsd_cmd_run_text(int argc, char **argv) {
    const char *backend = NULL;
    const char *model = NULL, *in = NULL, *outp = NULL;
    int threads = 0, clip_skip = 0;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"in", required_argument, 0, 'i'},
        {"out", required_argument, 0, 'o'},     {"clip-skip", required_argument, 0, 'k'},
        {"threads", required_argument, 0, 't'}, {"verbose", no_argument, 0, 'v'}, {"backend", required_argument, 0, 'B'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:i:o:k:t:vhB:", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'B': backend = optarg; break;
        case 'i': in = optarg; break;
        case 'o': outp = optarg; break;
        case 'k':
            if ((clip_skip = hsd_cli_parse_int("run-text", "--clip-skip", optarg, 0, 256)) < 0)
                return 2;
            break;
        case 't':
            if ((threads = hsd_cli_parse_int("run-text", "--threads", optarg, 1, 1024)) < 0)
                return 2;
            break;
        case 'v': hsd_log_set_level(HSD_LOG_INFO); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (hsd_cli_check_backend("run-text", backend, 0)) return 2;
    if (!model || !in || !outp || optind != argc) {
        fprintf(stderr, "hsd run-text: --model, --in and --out are required\n");
        usage(stderr);
        return 2;
    }

    int rc = 1;
    struct hsd_safetensors *st = NULL;
    struct hsd_backend *be = NULL;
    struct hsd_clip_text *m = NULL;
    int32_t *ids = NULL;
    float *out = NULL;
    struct hsd_st_writer *w = NULL;
    int n = 0, L = 0;

    // The input is validated before the model is loaded (cheap first).
    if (hsd_safetensors_open(&st, in) || read_ids(st, &ids, &n, &L)) goto fail;
    if (hsd_backend_open_one(backend, threads, &be)) goto fail;
    struct timespec t0, t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (hsd_is_file(model) ? hsd_clip_text_load_ldm(&m, model, be)
                           : hsd_clip_text_load(&m, model, be))
        goto fail;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const struct hsd_clip_text_config *cfg = hsd_clip_text_get_config(m);
    out = malloc((size_t)n * L * cfg->hidden_size * sizeof *out);
    if (!out) {
        hsd_fail(HSD_ERR_NOMEM, "out of memory");
        goto fail;
    }
    enum hsd_status s = hsd_clip_text_forward(m, out, ids, n, L, clip_skip);
    if (s) {
        hsd_fail_context(s, "%s: ", in);  // bad ids: say which file held them
        goto fail;
    }
    clock_gettime(CLOCK_MONOTONIC, &t2);
    HSD_INFO("run-text: load %.1f ms, forward %.1f ms (n=%d L=%d clip_skip=%d)",
             (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6,
             (t2.tv_sec - t1.tv_sec) * 1e3 + (t2.tv_nsec - t1.tv_nsec) / 1e6, n, L, clip_skip);
    int64_t shape[3] = {n, L, cfg->hidden_size};
    if (hsd_st_writer_create(&w) ||
        hsd_st_writer_add(w, "last_hidden_state", HSD_F32, 3, shape, out) ||
        hsd_st_writer_write(w, outp))
        goto fail;
    rc = 0;
    goto done;
fail:
    hsd_cli_fail("run-text");
done:
    hsd_st_writer_free(w);
    free(out);
    free(ids);
    hsd_clip_text_free(m);
    hsd_backend_destroy(be);
    hsd_safetensors_close(st);
    return rc;
}
