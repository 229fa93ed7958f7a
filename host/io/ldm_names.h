// CompVis/LDM ("original Stable Diffusion") U-Net key names -> diffusers
// names, the mapping diffusers' single_file_utils.convert_ldm_unet_checkpoint
// applies, derived here from the checkpoint's own structure.
//
// LDM numbers every layer of the encoder in one list `input_blocks`:
//   input_blocks.0            conv_in
//   input_blocks.1+b*(L+1)+l  level b, layer l: .0 resnet, .1 attention
//   input_blocks.1+b*(L+1)+L  level b's downsampler (.0.op), not on the last
// and the decoder in `output_blocks` (u*(L+1)+l: .0 resnet, .1 attention,
// the upsampler .1.conv or .2.conv on each level's last layer), where L is
// layers per block. Inside a resnet: in_layers.0/2 = norm1/conv1,
// emb_layers.1 = time_emb_proj, out_layers.0/3 = norm2/conv2,
// skip_connection = conv_shortcut. Attention blocks keep their inner names.
#ifndef HSD_IO_LDM_NAMES_H
#define HSD_IO_LDM_NAMES_H

#include <stddef.h>

#include "core/status.h"

#define HSD_LDM_UNET_PREFIX "model.diffusion_model."
// The other parts of an SD 1.x single file (io/ldm_detect.h).
#define HSD_LDM_VAE_PREFIX "first_stage_model."
#define HSD_LDM_CLIP_PREFIX "cond_stage_model.transformer."

// names[i] are LDM names without the prefix; on success out[i] are malloc'd
// diffusers names (caller frees each). `label` names the file in messages.
enum hsd_status hsd_ldm_unet_rename(char **out, const char *const *names, size_t n,
                                    const char *label);

// VAE names (without HSD_LDM_VAE_PREFIX) -> diffusers AutoencoderKL names
// (io/ldm_vae_names.c); same contract as hsd_ldm_unet_rename.
enum hsd_status hsd_ldm_vae_rename(char **out, const char *const *names, size_t n,
                                   const char *label);

#endif
