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
// SD 2.x's OpenCLIP ViT-H text tower (io/ldm_openclip_names.c).
#define HSD_LDM_OPENCLIP_PREFIX "cond_stage_model.model."
// SDXL's two text encoders (diffusers single_file_utils
// LDM_CLIP_PREFIX_TO_REMOVE and convert_open_clip_checkpoint's SDXL prefix):
// CLIP-L in transformers' names, OpenCLIP bigG in OpenCLIP's.
#define HSD_LDM_SDXL_PREFIX "conditioner.embedders."
#define HSD_LDM_SDXL_CLIP_PREFIX "conditioner.embedders.0.transformer."
#define HSD_LDM_SDXL_OPENCLIP_PREFIX "conditioner.embedders.1.model."

// names[i] are LDM names without the prefix; on success out[i] are malloc'd
// diffusers names (caller frees each). `label` names the file in messages.
enum hsd_status hsd_ldm_unet_rename(char **out, const char *const *names, size_t n,
                                    const char *label);

// VAE names (without HSD_LDM_VAE_PREFIX) -> diffusers AutoencoderKL names
// (io/ldm_vae_names.c); same contract as hsd_ldm_unet_rename.
enum hsd_status hsd_ldm_vae_rename(char **out, const char *const *names, size_t n,
                                   const char *label);

// One OpenCLIP text-tower key (without HSD_LDM_OPENCLIP_PREFIX) -> its
// transformers CLIPTextModel names, as diffusers' single_file_utils
// convert_open_clip_checkpoint renames them:
//   token_embedding.weight -> text_model.embeddings.token_embedding.weight
//   positional_embedding   -> text_model.embeddings.position_embedding.weight
//   ln_final.*             -> text_model.final_layer_norm.*
//   transformer.resblocks.N.{ln_1,ln_2,attn.out_proj,mlp.c_fc,mlp.c_proj}.*
//     -> text_model.encoder.layers.N.{layer_norm1,layer_norm2,
//        self_attn.out_proj,mlp.fc1,mlp.fc2}.*
//   transformer.resblocks.N.attn.in_proj_{weight,bias} -> *n_out = 3 names,
//     self_attn.{q,k,v}_proj.{weight,bias}: the fused tensor's row thirds
// *n_out = 0 for what the text encoder does not hold: text_projection,
// logit_scale, attn_mask, and resblock n_blocks - 1, the last one (SD 2.x
// conditions on the penultimate layer; diffusers' SD 2.x text_encoder has 23
// of OpenCLIP-H's 24 blocks and its converter drops block 23). sdxl: SDXL's
// OpenCLIP bigG (HSD_LDM_SDXL_OPENCLIP_PREFIX), a CLIPTextModelWithProjection
// in diffusers: every block is kept and text_projection ([width, proj], x @ P)
// becomes text_projection.weight, which the caller must transpose (the
// converter's checkpoint[...].T). out[i] are malloc'd (caller frees).
// Anything else fails naming the key.
enum hsd_status hsd_ldm_openclip_rename(char *out[3], int *n_out, const char *name,
                                        int n_blocks, int sdxl, const char *label);
// Resblocks in a list of OpenCLIP keys: the largest index + 1 (0: none).
int hsd_ldm_openclip_blocks(const char *const *names, size_t n);

#endif
