// LDM -> diffusers U-Net key renaming on an SD 1.x layout (4 levels, 2
// layers per block). Expected names are the ones diffusers'
// convert_ldm_unet_checkpoint produces for SD 1.5 (e.g. input_blocks.3.0.op
// is down_blocks.0.downsamplers.0.conv, output_blocks.2.1.conv is
// up_blocks.0.upsamplers.0.conv, output_blocks.5.2.conv is
// up_blocks.1.upsamplers.0.conv). The whole mapping is also proven
// end to end by test_unet_oracle (folder vs single file, bitwise).
// SD 2.x's OpenCLIP text tower: expected names from diffusers'
// DIFFUSERS_TO_LDM_MAPPING["openclip"] and convert_open_clip_checkpoint
// (end to end: test_single_file), SDXL's bigG (test_sdxl_single_file); the
// family and v_pred detection and the
// prediction-type decision of io/ldm_detect.h.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/ldm_detect.h"
#include "io/ldm_names.h"
#include "testutil.h"

// A skeleton of the SD 1.x LDM key set: one key per structural element.
static const char *const k_sd1[] = {
    "time_embed.0.weight", "time_embed.2.bias", "input_blocks.0.0.weight",
    "input_blocks.1.0.in_layers.0.weight", "input_blocks.1.1.proj_in.weight",
    "input_blocks.2.0.out_layers.3.weight", "input_blocks.3.0.op.weight",
    "input_blocks.4.0.skip_connection.weight", "input_blocks.4.1.norm.bias",
    "input_blocks.5.0.emb_layers.1.weight", "input_blocks.6.0.op.bias",
    "input_blocks.7.0.in_layers.2.weight", "input_blocks.8.0.in_layers.2.weight",
    "input_blocks.9.0.op.weight", "input_blocks.10.0.in_layers.0.bias",
    "input_blocks.11.0.out_layers.0.weight",
    "middle_block.0.in_layers.0.weight",
    "middle_block.1.transformer_blocks.0.attn1.to_q.weight",
    "middle_block.2.out_layers.3.bias",
    "output_blocks.0.0.skip_connection.weight", "output_blocks.2.1.conv.weight",
    "output_blocks.3.1.proj_out.weight", "output_blocks.5.2.conv.bias",
    "output_blocks.6.0.in_layers.0.weight", "output_blocks.8.2.conv.weight",
    "output_blocks.9.0.in_layers.0.weight", "output_blocks.11.1.norm.weight",
    "out.0.weight", "out.2.bias",
    // SDXL's added conditioning (DIFFUSERS_TO_LDM_MAPPING["unet"]).
    "label_emb.0.0.weight", "label_emb.0.2.bias",
};
static const char *const k_want[] = {
    "time_embedding.linear_1.weight", "time_embedding.linear_2.bias", "conv_in.weight",
    "down_blocks.0.resnets.0.norm1.weight", "down_blocks.0.attentions.0.proj_in.weight",
    "down_blocks.0.resnets.1.conv2.weight", "down_blocks.0.downsamplers.0.conv.weight",
    "down_blocks.1.resnets.0.conv_shortcut.weight", "down_blocks.1.attentions.0.norm.bias",
    "down_blocks.1.resnets.1.time_emb_proj.weight", "down_blocks.1.downsamplers.0.conv.bias",
    "down_blocks.2.resnets.0.conv1.weight", "down_blocks.2.resnets.1.conv1.weight",
    "down_blocks.2.downsamplers.0.conv.weight", "down_blocks.3.resnets.0.norm1.bias",
    "down_blocks.3.resnets.1.norm2.weight",
    "mid_block.resnets.0.norm1.weight",
    "mid_block.attentions.0.transformer_blocks.0.attn1.to_q.weight",
    "mid_block.resnets.1.conv2.bias",
    "up_blocks.0.resnets.0.conv_shortcut.weight", "up_blocks.0.upsamplers.0.conv.weight",
    "up_blocks.1.attentions.0.proj_out.weight", "up_blocks.1.upsamplers.0.conv.bias",
    "up_blocks.2.resnets.0.norm1.weight", "up_blocks.2.upsamplers.0.conv.weight",
    "up_blocks.3.resnets.0.norm1.weight", "up_blocks.3.attentions.2.norm.weight",
    "conv_norm_out.weight", "conv_out.bias",
    "add_embedding.linear_1.weight", "add_embedding.linear_2.bias",
};

// SD VAE keys (4 levels, first_stage_model. stripped) and their diffusers
// names, as diffusers' single_file_utils DIFFUSERS_TO_LDM_MAPPING["vae"] and
// convert_ldm_vae_checkpoint pair them (decoder.up.3 is up_blocks.0).
static const char *const k_vae[][2] = {
    {"encoder.conv_in.weight", "encoder.conv_in.weight"},
    {"encoder.down.0.block.1.norm1.bias", "encoder.down_blocks.0.resnets.1.norm1.bias"},
    {"encoder.down.1.block.0.nin_shortcut.weight",
     "encoder.down_blocks.1.resnets.0.conv_shortcut.weight"},
    {"encoder.down.2.downsample.conv.bias", "encoder.down_blocks.2.downsamplers.0.conv.bias"},
    {"encoder.mid.block_1.conv2.weight", "encoder.mid_block.resnets.0.conv2.weight"},
    {"encoder.mid.block_2.norm2.bias", "encoder.mid_block.resnets.1.norm2.bias"},
    {"encoder.mid.attn_1.norm.weight", "encoder.mid_block.attentions.0.group_norm.weight"},
    {"encoder.mid.attn_1.q.weight", "encoder.mid_block.attentions.0.to_q.weight"},
    {"encoder.mid.attn_1.proj_out.bias", "encoder.mid_block.attentions.0.to_out.0.bias"},
    {"encoder.norm_out.weight", "encoder.conv_norm_out.weight"},
    {"encoder.conv_out.bias", "encoder.conv_out.bias"},
    {"quant_conv.weight", "quant_conv.weight"},
    {"post_quant_conv.bias", "post_quant_conv.bias"},
    {"decoder.mid.attn_1.v.bias", "decoder.mid_block.attentions.0.to_v.bias"},
    {"decoder.up.3.block.2.conv1.weight", "decoder.up_blocks.0.resnets.2.conv1.weight"},
    {"decoder.up.3.upsample.conv.weight", "decoder.up_blocks.0.upsamplers.0.conv.weight"},
    {"decoder.up.1.block.0.nin_shortcut.bias", "decoder.up_blocks.2.resnets.0.conv_shortcut.bias"},
    {"decoder.up.0.block.0.norm2.weight", "decoder.up_blocks.3.resnets.0.norm2.weight"},
    {"decoder.norm_out.bias", "decoder.conv_norm_out.bias"},
};

static void check_vae(void) {
    size_t n = sizeof k_vae / sizeof k_vae[0];
    const char *names[32];
    char *out[32];
    for (size_t i = 0; i < n; i++) names[i] = k_vae[i][0];
    CHECK_OK(hsd_ldm_vae_rename(out, names, n, "sd-vae-skeleton"));
    for (size_t i = 0; i < n; i++) {
        CHECKF(out[i] && !strcmp(out[i], k_vae[i][1]), "%s -> %s, want %s", names[i],
               out[i] ? out[i] : "(null)", k_vae[i][1]);
        free(out[i]);
    }
    // Unknown members fail naming the key with its prefix.
    const char *bad[][1] = {{"encoder.mid.attn_1.qkv.weight"}, {"decoder.up.9x.block.0.w"},
                            {"encoder.down.0.attn.0.weight"}, {"model.ema.decay"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum hsd_status s = hsd_ldm_vae_rename(out, bad[i], 1, "bad.safetensors");
        CHECKF(s == HSD_ERR_FORMAT && strstr(hsd_last_error(), "first_stage_model."),
               "%s: %s", bad[i][0], hsd_last_error());
    }
}

static void check_openclip(void) {
    static const char *const map[][4] = {  // OpenCLIP key, then its names (24 blocks)
        {"token_embedding.weight", "text_model.embeddings.token_embedding.weight"},
        {"positional_embedding", "text_model.embeddings.position_embedding.weight"},
        {"ln_final.bias", "text_model.final_layer_norm.bias"},
        {"transformer.resblocks.0.ln_1.weight", "text_model.encoder.layers.0.layer_norm1.weight"},
        {"transformer.resblocks.22.mlp.c_proj.bias", "text_model.encoder.layers.22.mlp.fc2.bias"},
        {"transformer.resblocks.7.attn.out_proj.weight",
         "text_model.encoder.layers.7.self_attn.out_proj.weight"},
        {"transformer.resblocks.3.attn.in_proj_weight",
         "text_model.encoder.layers.3.self_attn.q_proj.weight",
         "text_model.encoder.layers.3.self_attn.k_proj.weight",
         "text_model.encoder.layers.3.self_attn.v_proj.weight"},
        {"transformer.resblocks.3.attn.in_proj_bias",
         "text_model.encoder.layers.3.self_attn.q_proj.bias",
         "text_model.encoder.layers.3.self_attn.k_proj.bias",
         "text_model.encoder.layers.3.self_attn.v_proj.bias"},
        {"transformer.resblocks.23.ln_1.weight"},  // the last block: not run (penultimate)
        {"text_projection"},
        {"logit_scale"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        char *o[3];
        int k = -1, want = 0;
        while (want < 3 && map[i][want + 1]) want++;
        CHECK_OK(hsd_ldm_openclip_rename(o, &k, map[i][0], 24, 0, "sd2"));
        int ok = k == want;
        for (int j = 0; j < k; j++) {
            ok = ok && j < want && !strcmp(o[j], map[i][j + 1]);
            free(o[j]);
        }
        CHECKF(ok, "%s -> %d names, want %d", map[i][0], k, want);
    }
    const char *bad[] = {"transformer.resblocks.1.attn.bogus", "transformer.resblocks.01.ln_1.weight",
                         "transformer.resblocks.x.ln_1.weight", "visual.proj"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *o[3];
        int k = -1;
        enum hsd_status s = hsd_ldm_openclip_rename(o, &k, bad[i], 24, 0, "sd2");
        CHECKF(s == HSD_ERR_FORMAT && k == 0 && strstr(hsd_last_error(), "OpenCLIP"), "%s: %s",
               bad[i], hsd_last_error());
    }
    const char *names[] = {"ln_final.weight", "transformer.resblocks.0.ln_1.weight",
                           "transformer.resblocks.11.ln_2.bias"};
    CHECK(hsd_ldm_openclip_blocks(names, 3) == 12);
    // SDXL's bigG (diffusers convert_open_clip_checkpoint with prefix
    // conditioner.embedders.1.model.): every block kept, text_projection
    // kept as CLIPTextModelWithProjection's text_projection.weight.
    static const char *const xl[][2] = {
        {"transformer.resblocks.31.ln_1.weight", "text_model.encoder.layers.31.layer_norm1.weight"},
        {"text_projection", "text_projection.weight"},
        {"logit_scale", NULL},
    };
    for (size_t i = 0; i < sizeof xl / sizeof xl[0]; i++) {
        char *o[3];
        int k = -1;
        CHECK_OK(hsd_ldm_openclip_rename(o, &k, xl[i][0], 32, 1, "sdxl"));
        CHECKF(k == (xl[i][1] ? 1 : 0) && (!k || !strcmp(o[0], xl[i][1])), "sdxl %s -> %d names",
               xl[i][0], k);
        for (int j = 0; j < k; j++) free(o[j]);
    }
}

// A two-tensor file: an SD 2.x text key and the "v_pred" marker.
static void check_detect(void) {
    char path[] = "/tmp/hsd_test_ldm_XXXXXX.safetensors";
    int fd = mkstemps(path, 12);
    CHECK(fd >= 0);
    if (fd < 0) return;
    FILE *f = fdopen(fd, "wb");
    char header[] = "{\"cond_stage_model.model.ln_final.weight\":{\"dtype\":\"F32\",\"shape\":[1],"
                    "\"data_offsets\":[0,4]},\"v_pred\":{\"dtype\":\"F32\",\"shape\":[],"
                    "\"data_offsets\":[4,8]}}";
    uint64_t hl = (strlen(header) + 7) / 8 * 8;
    float data[2] = {1, 0};
    fwrite(&hl, 8, 1, f);  // little-endian hosts only, as safetensors itself
    fprintf(f, "%-*s", (int)hl, header);
    fwrite(data, sizeof data, 1, f);
    fclose(f);
    struct hsd_ldm_info info;
    CHECK_OK(hsd_ldm_detect(&info, path));
    CHECK(info.family == HSD_LDM_FAMILY_SD2 && info.v_pred_key == 1);
    const char *why;
    CHECK(hsd_ldm_prediction_v(&info, 0, &why) == 1 && strstr(why, "v_pred"));
    CHECK(hsd_ldm_prediction_v(&info, 1, &why) == 0 && strstr(why, "--prediction"));
    info.v_pred_key = 0;
    CHECK(hsd_ldm_prediction_v(&info, 0, &why) == 1 && strstr(why, "assumed"));
    CHECK(hsd_ldm_prediction_v(&info, 2, &why) == 1);
    info.family = HSD_LDM_FAMILY_SD1;
    CHECK(hsd_ldm_prediction_v(&info, 0, &why) == 0 && strstr(why, "assumed"));
    CHECK(hsd_ldm_require_pipeline(&info, path, 1) == HSD_ERR_NOT_FOUND);
    hsd_clear_error();
    remove(path);
}

// SDXL files need both embedders (a refiner's lone OpenCLIP is refused) and
// run epsilon unless the file or --prediction says v.
static void check_sdxl_require(void) {
    struct hsd_ldm_info info = {.family = HSD_LDM_FAMILY_SDXL, .n_unet = 1, .n_vae = 1,
                                .n_text = 1, .n_sdxl_openclip = 1};
    CHECK(hsd_ldm_require_pipeline(&info, "x", 1) == HSD_ERR_NOT_FOUND &&
          strstr(hsd_last_error(), "conditioner.embedders.0.transformer.") &&
          strstr(hsd_last_error(), "refiner"));
    info.n_sdxl_clip = 1;
    info.n_sdxl_openclip = 0;
    CHECK(hsd_ldm_require_pipeline(&info, "x", 1) == HSD_ERR_NOT_FOUND &&
          strstr(hsd_last_error(), "conditioner.embedders.1.model."));
    info.n_sdxl_openclip = 1;
    info.n_vae = 0;
    CHECK(hsd_ldm_require_pipeline(&info, "x", 1) == HSD_ERR_NOT_FOUND &&
          strstr(hsd_last_error(), "first_stage_model."));
    CHECK_OK(hsd_ldm_require_pipeline(&info, "x", 0));
    const char *why;
    CHECK(hsd_ldm_prediction_v(&info, 0, &why) == 0 && strstr(why, "SDXL-base"));
    info.v_pred_key = 1;
    CHECK(hsd_ldm_prediction_v(&info, 0, &why) == 1);
    hsd_clear_error();
}

int main(void) {
    check_vae();
    check_openclip();
    check_detect();
    check_sdxl_require();
    size_t n = sizeof k_sd1 / sizeof k_sd1[0];
    char *out[64];
    CHECK_OK(hsd_ldm_unet_rename(out, k_sd1, n, "sd1-skeleton"));
    for (size_t i = 0; i < n; i++) {
        CHECKF(out[i] && !strcmp(out[i], k_want[i]), "%s -> %s, want %s", k_sd1[i],
               out[i] ? out[i] : "(null)", k_want[i]);
        free(out[i]);
    }
    // An unknown key inside the U-Net namespace is an error, not ignored.
    // (One level of one layer: input_blocks 0-1, output_blocks 0-1.)
    const char *bad[] = {"input_blocks.0.0.weight", "input_blocks.1.0.bogus.weight",
                         "output_blocks.0.0.in_layers.0.weight",
                         "output_blocks.1.0.in_layers.0.weight"};
    enum hsd_status s = hsd_ldm_unet_rename(out, bad, 4, "bad.safetensors");
    CHECKF(s == HSD_ERR_FORMAT && strstr(hsd_last_error(), "bogus"), "unknown key: %s",
           hsd_last_error());
    // No input blocks at all: not an LDM U-Net.
    const char *none[] = {"first_stage_model.decoder.conv_in.weight"};
    s = hsd_ldm_unet_rename(out, none, 1, "vae.safetensors");
    CHECK(s == HSD_ERR_FORMAT);
    return hsd_test_finish();
}
