// LDM -> diffusers U-Net key renaming on an SD 1.x layout (4 levels, 2
// layers per block). Expected names are the ones diffusers'
// convert_ldm_unet_checkpoint produces for SD 1.5 (e.g. input_blocks.3.0.op
// is down_blocks.0.downsamplers.0.conv, output_blocks.2.1.conv is
// up_blocks.0.upsamplers.0.conv, output_blocks.5.2.conv is
// up_blocks.1.upsamplers.0.conv). The whole mapping is also proven
// end to end by test_unet_oracle (folder vs single file, bitwise).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(void) {
    check_vae();
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
