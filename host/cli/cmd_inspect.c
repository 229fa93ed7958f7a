// hsd inspect: config, detected variant, parameter count and dtype of a
// U-Net, after checking every tensor against the config; for a single-file
// checkpoint also the parts found, the family and what hsd assumes for what
// the weights cannot show (the SD 1.x/2.x/SDXL pipeline of pipeline/pipeline.c).
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "io/ldm_detect.h"
#include "models/clip_text.h"
#include "models/unet.h"
#include "pipeline/pipeline.h"
#include "text/clip_tokenizer.h"

// A single file's text encoder config, from its shapes (models/clip_text.h).
static enum hsd_status text_shapes(struct hsd_clip_text_config *tc, const char *path,
                                   enum hsd_ldm_part part) {
    struct hsd_weights *w;
    enum hsd_status st = hsd_weights_open_ldm(&w, path, part);
    if (st) return st;
    st = hsd_clip_text_config_infer(tc, w);
    const struct hsd_st_tensor *p = hsd_weights_find(w, "text_projection.weight");
    if (!st && p && p->ndim == 2) tc->projection_dim = (int)p->shape[0];
    hsd_weights_close(w);
    return st;
}

// The parts of a single file and the assumptions `hsd generate --model FILE`
// makes (pipeline/pipeline.c load_single_file_parts); 0 on success (the
// U-Net report follows). force: --prediction (0 none, 1 epsilon, 2 v).
static int report_single_file(const char *path, int force) {
    struct hsd_ldm_info info;
    if (hsd_ldm_detect(&info, path)) return hsd_cli_fail("inspect");
    printf("family:     %s\n", hsd_ldm_family_name(info.family));
    printf("parts:      U-Net %ld tensors (model.diffusion_model.), VAE %ld (first_stage_model.), "
           "text encoder %ld, other %ld\n",
           info.n_unet, info.n_vae, info.n_text, info.n_other);
    if (hsd_ldm_require_pipeline(&info, path, 1)) {
        printf("pipeline:   not loadable as a whole pipeline: %s\n", hsd_last_error());
        printf("            (its U-Net alone still loads: run-unet, or --edge-model beside a matching model)\n");
        return 0;
    }
    int sd2 = info.family == HSD_LDM_FAMILY_SD2, xl = info.family == HSD_LDM_FAMILY_SDXL;
    struct hsd_clip_text_config tc;
    if (text_shapes(&tc, path, sd2 ? HSD_LDM_OPENCLIP : xl ? HSD_LDM_SDXL_CLIP : HSD_LDM_CLIP))
        return hsd_cli_fail("inspect");
    if (sd2)
        printf("text:       CLIPTextModel from OpenCLIP shapes: vocab %d, width %d, %d layers (the "
               "file's last block left out: penultimate layer, as SD 2.x), mlp %d, %d positions; "
               "assumed: %d heads (64 wide), gelu (OpenCLIP ViT-H/14)\n",
               tc.vocab_size, tc.hidden_size, tc.num_hidden_layers, tc.intermediate_size,
               tc.max_position_embeddings, tc.num_attention_heads);
    else
        printf("text:       CLIPTextModel from shapes: vocab %d, width %d, %d layers, mlp %d, %d "
               "positions; assumed: %d heads (64 wide), quick_gelu (OpenAI CLIP ViT-L/14)\n",
               tc.vocab_size, tc.hidden_size, tc.num_hidden_layers, tc.intermediate_size,
               tc.max_position_embeddings, tc.num_attention_heads);
    if (xl) {
        struct hsd_clip_text_config t2;
        if (text_shapes(&t2, path, HSD_LDM_SDXL_OPENCLIP)) return hsd_cli_fail("inspect");
        printf("text 2:     CLIPTextModelWithProjection from OpenCLIP shapes: vocab %d, width %d, "
               "%d layers (all kept), mlp %d, %d positions, text_projection to %d; assumed: %d "
               "heads (64 wide), gelu (OpenCLIP ViT-bigG/14)\n",
               t2.vocab_size, t2.hidden_size, t2.num_hidden_layers, t2.intermediate_size,
               t2.max_position_embeddings, t2.projection_dim, t2.num_attention_heads);
    }
    printf("vae:        AutoencoderKL from shapes; assumed: 32 norm groups, scaling factor %s\n",
           xl ? "0.13025 (SDXL)" : "0.18215 (SD 1.x/2.x)");
    char vocab[4096];
    if (hsd_clip_default_vocab(vocab, sizeof vocab)) printf("tokenizer:  %s\n", hsd_last_error());
    else
        printf("tokenizer:  shipped CLIP vocabulary %s, %s settings (assumed)\n", vocab,
               xl    ? "SD 1.5's (tokenizer) and pad \"!\" (tokenizer_2), as SDXL-base's"
               : sd2 ? "SD 2.1's (pad \"!\")"
                     : "SD 1.5's");
    const char *why;
    int v = hsd_ldm_prediction_v(&info, force, &why);
    printf("scheduler:  %s's scheduler config (betas 0.00085..0.012 scaled_linear, offset 1%s), "
           "%s prediction (%s)\n",
           xl ? "SDXL-base" : sd2 ? "SD 2.1" : "SD 1.5", xl ? ", leading spacing" : "",
           v ? "v_prediction" : "epsilon", why);
    if (xl) printf("conditioning: force_zeros_for_empty_prompt (SDXL-base's model_index.json)\n");
    return 0;
}

static void usage(FILE *f) {
    fprintf(f, "usage: hsd inspect [--config config.json] [--prediction v|epsilon] MODEL\n\n"
               "  MODEL is a diffusers folder (with unet/ or the unet folder itself) or a\n"
               "  single-file CompVis/LDM .safetensors checkpoint.\n");
}

int hsd_cmd_inspect(int argc, char **argv) {
    const char *config = NULL;
    int pred = HSD_PREDICTION_AUTO;
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"prediction", required_argument, 0, 'p'},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (c == 'c') config = optarg;
        else if (c == 'p') {
            if (hsd_cli_parse_prediction("inspect", optarg, &pred)) return 2;
        }
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
    int force = pred == HSD_PREDICTION_EPSILON ? 1 : pred == HSD_PREDICTION_V ? 2 : 0;
    if (src.single_file && report_single_file(path, force)) {
        hsd_unet_free(u);
        hsd_unet_source_close(&src);
        return 1;
    }
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
