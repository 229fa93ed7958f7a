// hsd generate: text -> PNG in one process, full model or hybrid
// (--edge-model, --split k).
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/open/backend_open.h"
#include "cli/cli.h"
#include "cli/cli_backend.h"
#include "cli/cli_lora.h"
#include "cli/cli_progress.h"
#include "core/log.h"
#include "io/png.h"
#include "pipeline/pipeline.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: hsd generate --model M -p PROMPT -o OUT.png [options]\n\n"
            "  --model M            the large model: a diffusers pipeline folder (tokenizer/,\n"
            "                       text_encoder/, unet/, vae/, scheduler/) or an SD 1.x/2.x/\n"
            "                       SDXL single-file checkpoint (A1111/ComfyUI .safetensors)\n"
            "  -p, --prompt TEXT    the prompt (UTF-8)\n"
            "  -n, --negative-prompt TEXT   (default empty; SDXL without -n: zero negative\n"
            "                       embeddings, diffusers' force_zeros_for_empty_prompt)\n"
            "  -o, --out FILE.png   output; with --batch-count > 1: FILE-1.png, FILE-2.png, ...\n"
            "  --steps N            denoising steps, 1..1000 (default 25)\n"
            "  --sampler NAME       dpmpp-2m (default), ddim, euler, euler-a, pndm, lcm (LCM U-Nets\n"
            "                       take --cfg as their guidance input, no CFG; LCM-LoRA: 1-2)\n"
            "  --cfg S              classifier-free guidance scale (default 7.5; <= 1 disables)\n"
            "  --width W, --height H   pixels, multiples of 64 for SD (default 512x512)\n"
            "  --seed S             image i uses torch.Generator().manual_seed(S + i) (default 0)\n"
            "  --batch-count B      images, 1..64 (default 1)\n"
            "  --clip-skip K        use the text encoder's layer L-K (default 0 = last)\n"
            "  --prompt-style S     diffusers (default: 77 tokens, truncated, as diffusers) or\n"
            "                       a1111 (AUTOMATIC1111: 75-token chunks, (text:1.2) emphasis)\n"
            HSD_CLI_MICRO_HELP
            "  --edge-model E       small U-Net for steps k..N-1: pipeline root, unet folder or\n"
            "                       single-file checkpoint (model.diffusion_model.* is read)\n"
            "  --split K            U-Net calls 0..K-1 on the large U-Net, the rest on the edge\n"
            "                       one (required with --edge-model; calls = steps, PNDM: +1)\n"
            "                       More U-Nets: --edge-model repeated and --split K1,K2,...\n"
            "                       (U-Net i+1 takes over at call Ki), e.g. three models with\n"
            "                       --split 10,20\n"
            "  --vae full|tiny|DIR  decoder: the model's vae/ (default), a TAESD found as\n"
            "                       vae_tiny/ beside the edge or large model, or a folder\n"
            "  --lora FILE[:SCALE]  a LoRA (kohya/A1111 or diffusers/PEFT .safetensors) on the\n"
            "                       U-Net(s) and text encoder(s) at SCALE (default 1); repeatable\n"
            "  --threads T          CPU threads (default: every core)\n"
            HSD_CLI_BACKEND_HELP
            HSD_CLI_CPU_PRECISION_HELP
            HSD_CLI_PREDICTION_HELP
            "  -v                   timing breakdown (text, each U-Net step, decode)\n"
            "  -q                   no progress bar\n");
}

// OUT.png -> OUT-<i>.png for batches.
static int image_path(char *buf, size_t cap, const char *out, int i, int count) {
    if (count == 1) return snprintf(buf, cap, "%s", out) < (int)cap;
    const char *dot = strrchr(out, '.');
    const char *slash = strrchr(out, '/');
    if (!dot || (slash && dot < slash)) dot = out + strlen(out);
    return snprintf(buf, cap, "%.*s-%d%s", (int)(dot - out), out, i + 1, dot) < (int)cap;
}

int hsd_cmd_generate(int argc, char **argv) {
    struct hsd_pipeline_config pc = {0};
    const char *backend = NULL, *cpu_precision = NULL;
    struct hsd_gen_request r = {.guidance_scale = 7.5f, .steps = 25, .split = -1,
                                .sampler = HSD_SAMPLER_DPMPP_2M, .width = 512, .height = 512,
                                .batch_count = 1};
    const char *out = NULL;
    int verbose = 0, quiet = 0;
    struct hsd_cli_loras loras = {0};
    const char *more[HSD_PIPELINE_MAX_UNETS];
    int n_edge = 0, splits[HSD_PIPELINE_MAX_UNETS], n_splits = 0;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"prompt", required_argument, 0, 'p'},
        {"negative-prompt", required_argument, 0, 'n'}, {"out", required_argument, 0, 'o'},
        {"steps", required_argument, 0, 'S'},   {"sampler", required_argument, 0, 'a'},
        {"cfg", required_argument, 0, 'g'},     {"width", required_argument, 0, 'W'},
        {"height", required_argument, 0, 'H'},  {"seed", required_argument, 0, 's'},
        {"batch-count", required_argument, 0, 'b'}, {"clip-skip", required_argument, 0, 'c'},
        {"prompt-style", required_argument, 0, 'P'},
        {"edge-model", required_argument, 0, 'e'}, {"split", required_argument, 0, 'k'},
        {"vae", required_argument, 0, 'V'},     {"threads", required_argument, 0, 't'}, {"backend", required_argument, 0, 'B'},
        {"cpu-precision", required_argument, 0, HSD_CLI_OPT_CPU_PRECISION},
        {"original-size", required_argument, 0, 'O'}, {"crop", required_argument, 0, 'C'},
        {"verbose", no_argument, 0, 'v'},       {"quiet", no_argument, 0, 'q'},
        {"lora", required_argument, 0, 'L'},
        {"prediction", required_argument, 0, 1001},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:p:n:o:vqh", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 1001: {
            int pred;
            if (hsd_cli_parse_prediction("generate", optarg, &pred)) return 2;
            pc.prediction = (enum hsd_prediction_choice)pred;
            break;
        }
        case 'm': pc.model = optarg; break;
        case 'P':
            if (hsd_prompt_style_parse(optarg, &r.prompt_style)) {
                fprintf(stderr, "hsd generate: %s\n", hsd_last_error());
                return 2;
            }
            break;
        case 'p': r.prompt = optarg; break;
        case 'n': r.negative_prompt = optarg; break;
        case 'o': out = optarg; break;
        case 'e':
            if (n_edge == HSD_PIPELINE_MAX_UNETS - 1) {
                fprintf(stderr, "hsd generate: at most %d U-Nets in one schedule\n",
                        HSD_PIPELINE_MAX_UNETS);
                return 2;
            }
            if (n_edge++) more[pc.n_more_models++] = optarg;
            else pc.edge_model = optarg;
            break;
        case 'V': pc.vae = optarg; break;
        case 'B': backend = optarg; break;
        case HSD_CLI_OPT_CPU_PRECISION: cpu_precision = optarg; break;
        case 'a':
            if (hsd_sampler_parse(optarg, &r.sampler)) {
                fprintf(stderr, "hsd generate: %s\n", hsd_last_error());
                return 2;
            }
            break;
        case 'g':
            r.guidance_scale = strtof(optarg, &end);
            if (*optarg == '\0' || *end) {
                fprintf(stderr, "hsd generate: --cfg expects a number, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 's':
            r.seed = strtoull(optarg, &end, 10);
            if (*optarg == '\0' || *end || *optarg == '-') {
                fprintf(stderr, "hsd generate: --seed expects a non-negative integer\n");
                return 2;
            }
            break;
        case 'S': if ((r.steps = hsd_cli_parse_int("generate", "--steps", optarg, 1, 1000)) < 0) return 2; break;
        case 'W': if ((r.width = hsd_cli_parse_int("generate", "--width", optarg, 8, 4096)) < 0) return 2; break;
        case 'H': if ((r.height = hsd_cli_parse_int("generate", "--height", optarg, 8, 4096)) < 0) return 2; break;
        case 'b': if ((r.batch_count = hsd_cli_parse_int("generate", "--batch-count", optarg, 1, 64)) < 0) return 2; break;
        case 'c': if ((r.clip_skip = hsd_cli_parse_int("generate", "--clip-skip", optarg, 0, 64)) < 0) return 2; break;
        case 'k':
            if ((n_splits = hsd_cli_parse_int_list("generate", "--split", optarg, splits,
                                                   HSD_PIPELINE_MAX_UNETS - 1, 0, 1000)) < 0)
                return 2;
            r.split = splits[0];
            break;
        case 't': if ((pc.threads = hsd_cli_parse_int("generate", "--threads", optarg, 1, 1024)) < 0) return 2; break;
        case 'O':
        case 'C':
            if (hsd_cli_parse_micro("generate", c == 'O', optarg, 65536, &r)) return 2;
            break;
        case 'v': verbose = 1; hsd_log_set_level(HSD_LOG_INFO); break;
        case 'q': quiet = 1; break;
        case 'L': if (hsd_cli_lora_file("generate", &loras, optarg)) return 2; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!pc.model || !r.prompt || !out || optind != argc) {
        fprintf(stderr, "hsd generate: --model, --prompt and --out are required\n");
        usage(stderr);
        return 2;
    }
    if (hsd_cli_check_backend("generate", backend, 0)) return 2;
    if (hsd_cli_cpu_precision("generate", cpu_precision, backend, &pc.cpu_precision)) return 2;
    pc.more_models = more;
    if (n_splits > 1 && n_splits != n_edge) {
        fprintf(stderr, "hsd generate: %d --edge-model need %d --split points, got %d\n",
                n_edge, n_edge, n_splits);
        return 2;
    }
    if (n_splits > 1) {
        r.splits = splits;
        r.n_splits = n_splits;
    }
    if (pc.edge_model && r.split < 0) {
        fprintf(stderr, "hsd generate: --edge-model needs --split K (steps on the large U-Net)\n");
        return 2;
    }
    if (!pc.edge_model && r.split >= 0) {
        fprintf(stderr, "hsd generate: --split needs --edge-model\n");
        return 2;
    }
    int calls = hsd_pipeline_n_calls(&r);
    if (r.split > calls) {
        fprintf(stderr, "hsd generate: --split %d is larger than the %d U-Net calls of %d %s steps\n",
                r.split, calls, r.steps, hsd_sampler_name(r.sampler));
        return 2;
    }
    // Output paths are checked before any model is loaded.
    char path[4200];
    for (int i = 0; i < r.batch_count; i++) {
        if (!image_path(path, sizeof path, out, i, r.batch_count)) {
            fprintf(stderr, "hsd generate: output path too long\n");
            return 2;
        }
        if (hsd_png_check_writable(path)) return hsd_cli_fail("generate");
    }

    struct hsd_pipeline *p = NULL;
    struct hsd_backend *be = NULL;
    double t_load = hsd_cli_now_s();
    if (backend && hsd_backend_open_one(backend, pc.threads, &be)) return hsd_cli_fail("generate");
    pc.backend = be;
    pc.loras = loras.spec;
    pc.n_loras = loras.n;
    r.lora_scales = loras.n ? loras.scale : NULL;
    if (hsd_pipeline_load(&p, &pc)) {
        hsd_backend_destroy(be);
        return hsd_cli_fail("generate");
    }
    t_load = hsd_cli_now_s() - t_load;
    if (hsd_pipeline_validate(p, &r)) {
        hsd_pipeline_free(p);
        hsd_backend_destroy(be);
        return hsd_cli_fail("generate");
    }
    size_t px = (size_t)r.width * r.height * 3;
    uint8_t *rgb = malloc(px * r.batch_count);
    // One slot per U-Net call; a schedule can make one call more than the
    // SD 1.5 config used for `calls` (trailing spacing), so leave room.
    double *step_ms = calloc((size_t)r.steps + 2, sizeof *step_ms);
    struct hsd_gen_timing tm = {.step_ms = step_ms};
    struct hsd_cli_progress pr;
    hsd_cli_progress_start(&pr, quiet);
    int rc = 1;
    if (!rgb || !step_ms) {
        hsd_fail(HSD_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (hsd_pipeline_generate(p, &r, rgb, NULL, NULL, &tm, hsd_cli_on_progress, &pr)) goto fail;
    for (int i = 0; i < r.batch_count; i++) {
        // Parameters as a text chunk: a readable line and the same as JSON.
        json_t *j = json_pack("{s:s, s:s, s:i, s:s, s:f, s:i, s:i, s:I, s:s, s:s?, s:i, s:s, s:i, s:s}",
                              "prompt", r.prompt, "negative_prompt",
                              r.negative_prompt ? r.negative_prompt : "", "steps", r.steps,
                              "sampler", hsd_sampler_name(r.sampler), "cfg",
                              (double)r.guidance_scale, "width", r.width, "height", r.height,
                              "seed", (json_int_t)(r.seed + (uint64_t)i), "model", pc.model,
                              "edge_model", pc.edge_model, "split", r.split, "vae",
                              pc.vae ? pc.vae : "full", "clip_skip", r.clip_skip,
                              "prompt_style", hsd_prompt_style_name(r.prompt_style));
        char *js = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(j);
        struct hsd_png_text text[2] = {{"Software", "hybridsd"}, {"hsd-parameters", js ? js : "{}"}};
        image_path(path, sizeof path, out, i, r.batch_count);
        enum hsd_status s = hsd_png_write(path, rgb + px * i, r.width, r.height, text, 2);
        free(js);
        if (s) goto fail;
        printf("%s\n", path);
    }
    if (verbose) {
        double sum = 0;
        int k = r.split < 0 ? calls : r.split;
        for (int i = 0; i < calls; i++) sum += step_ms[i];
        fprintf(stderr, "timing: load %.1f ms, text %.1f ms, %d U-Net calls %.1f ms, decode %.1f ms\n",
                t_load * 1e3, tm.text_ms, calls, sum, tm.decode_ms);
        for (int i = 0; i < calls; i++) {
            int stage = 0;  // U-Nets whose split point is <= i
            while (stage < (n_splits > 1 ? n_splits : 1) &&
                   i >= (n_splits > 1 ? splits[stage] : k))
                stage++;
            static const char *const names[2] = {"large", "edge"};
            char other[16];
            snprintf(other, sizeof other, "#%d", stage + 1);
            fprintf(stderr, "  step %2d (%s U-Net): %.1f ms\n", i + 1,
                    stage < 2 ? names[stage] : other, step_ms[i]);
        }
    }
    rc = 0;
    goto done;
fail:
    hsd_cli_fail("generate");
done:
    free(rgb);
    free(step_ms);
    hsd_pipeline_free(p);
    hsd_backend_destroy(be);
    return rc;
}
