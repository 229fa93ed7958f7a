"""diffusers -> CompVis/LDM names for UNet2DConditionModel weights.

Single-file Stable Diffusion checkpoints (the `.safetensors` files people
download) keep the U-Net under `model.diffusion_model.` in the naming of the
original latent-diffusion `openaimodel.py`. The C loader has to read those
files, so the goldens include one; this module produces its key names from a
diffusers state dict. It is written from the layout of openaimodel.py, not by
inverting diffusers' converter, so that make_unet_cases.py can check one
against the other (diffusers' `convert_ldm_unet_checkpoint` must give back
exactly the state dict we started from).

Layout of the LDM U-Net (lpb = layers_per_block):
  time_embed.{0,2}                         TimestepEmbedding linear_1 / linear_2
  input_blocks.0.0                         conv_in
  input_blocks.{1 + i*(lpb+1) + j}.0       down_blocks[i].resnets[j]
  input_blocks.{1 + i*(lpb+1) + j}.1       down_blocks[i].attentions[j]
  input_blocks.{1 + i*(lpb+1) + lpb}.0.op  down_blocks[i].downsamplers[0].conv
  middle_block.{0,1,2}                     mid resnets[0], attentions[0], resnets[1]
  output_blocks.{i*(lpb+1) + j}.0          up_blocks[i].resnets[j]   (j < lpb+1)
  output_blocks.{i*(lpb+1) + j}.1          up_blocks[i].attentions[j]
  output_blocks.{i*(lpb+1) + lpb}.{1|2}.conv  up_blocks[i].upsamplers[0].conv
                                           (.2 when the block has attentions,
                                            since .1 is then the attention)
  out.{0,2}                                conv_norm_out / conv_out
Inside a ResBlock: in_layers.0 = norm1, in_layers.2 = conv1 (in_layers.1 is
SiLU), emb_layers.1 = time_emb_proj (emb_layers.0 is SiLU), out_layers.0 =
norm2, out_layers.3 = conv2 (1 is SiLU, 2 is dropout), skip_connection =
conv_shortcut. SpatialTransformer keeps diffusers' inner names (norm, proj_in,
transformer_blocks.*, proj_out).
"""

import re

LDM_UNET_PREFIX = "model.diffusion_model."

# Top-level modules whose names are a plain rename.
_TOP = {
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "conv_in.": "input_blocks.0.0.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
    # SDXL's added conditioning (text_time): openaimodel.py's label_emb.
    "add_embedding.linear_1.": "label_emb.0.0.",
    "add_embedding.linear_2.": "label_emb.0.2.",
}

# ResnetBlock2D sub-modules: diffusers name -> LDM ResBlock name.
_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}


def _resnet_rest(rest: str) -> str:
    """Rename the part of a key below a ResnetBlock2D, e.g. 'conv1.weight'."""
    head, _, tail = rest.partition(".")
    if head not in _RESNET:
        raise KeyError(f"unknown ResnetBlock2D member '{head}' in '{rest}'")
    return f"{_RESNET[head]}.{tail}"


def diffusers_to_ldm_key(key: str, layers_per_block: int, up_blocks_with_attn: set) -> str:
    """LDM name (without the model.diffusion_model. prefix) of one diffusers key."""
    lpb = layers_per_block
    for old, new in _TOP.items():
        if key.startswith(old):
            return new + key[len(old):]

    m = re.match(r"down_blocks\.(\d+)\.(resnets|attentions|downsamplers)\.(\d+)\.(.*)$", key)
    if m:
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        if kind == "resnets":
            return f"input_blocks.{1 + i * (lpb + 1) + j}.0.{_resnet_rest(rest)}"
        if kind == "attentions":
            return f"input_blocks.{1 + i * (lpb + 1) + j}.1.{rest}"
        # Downsample2D's conv is 'op' in LDM; it opens its own input block.
        if not rest.startswith("conv."):
            raise KeyError(key)
        return f"input_blocks.{1 + i * (lpb + 1) + lpb}.0.op.{rest[len('conv.'):]}"

    m = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)$", key)
    if m:
        kind, j, rest = m[1], int(m[2]), m[3]
        if kind == "resnets":  # resnets[0] -> 0, resnets[1] -> 2
            return f"middle_block.{2 * j}.{_resnet_rest(rest)}"
        return f"middle_block.{2 * j + 1}.{rest}"

    m = re.match(r"up_blocks\.(\d+)\.(resnets|attentions|upsamplers)\.(\d+)\.(.*)$", key)
    if m:
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        # Up blocks have lpb+1 layers (one more to consume the skip of the
        # downsampler), so their stride in output_blocks is lpb+1.
        if kind == "resnets":
            return f"output_blocks.{i * (lpb + 1) + j}.0.{_resnet_rest(rest)}"
        if kind == "attentions":
            return f"output_blocks.{i * (lpb + 1) + j}.1.{rest}"
        if not rest.startswith("conv."):
            raise KeyError(key)
        slot = 2 if i in up_blocks_with_attn else 1
        return f"output_blocks.{i * (lpb + 1) + lpb}.{slot}.conv.{rest[len('conv.'):]}"

    raise KeyError(f"no LDM name for diffusers key '{key}'")


def diffusers_to_ldm_unet(state_dict: dict, layers_per_block: int) -> dict:
    """Whole U-Net state dict -> {'model.diffusion_model.<ldm name>': tensor}."""
    up_with_attn = {
        int(k.split(".")[1]) for k in state_dict if k.startswith("up_blocks.") and ".attentions." in k
    }
    out = {}
    for key, tensor in state_dict.items():
        ldm = LDM_UNET_PREFIX + diffusers_to_ldm_key(key, layers_per_block, up_with_attn)
        if ldm in out:
            raise KeyError(f"two diffusers keys map to '{ldm}'")
        out[ldm] = tensor
    return out


# ---- VAE (AutoencoderKL) ---------------------------------------------------
#
# Layout of the LDM autoencoder (ldm/modules/diffusionmodules/model.py
# Encoder/Decoder), under first_stage_model.:
#   encoder.down.{i}.block.{j}          down_blocks[i].resnets[j]
#   encoder.down.{i}.downsample.conv    down_blocks[i].downsamplers[0].conv
#   decoder.up.{L-1-i}.block.{j}        up_blocks[i].resnets[j]  (LDM counts the
#   decoder.up.{L-1-i}.upsample.conv    up_blocks[i].upsamplers[0].conv  levels from the
#                                                                 lowest resolution)
#   {encoder,decoder}.mid.block_{1,2}   mid_block.resnets[0, 1]
#   {encoder,decoder}.mid.attn_1.{norm,q,k,v,proj_out}
#                                       mid_block.attentions[0].{group_norm,to_q,to_k,to_v,to_out.0}
#                                       (q/k/v/proj_out are 1x1 convs: [c, c, 1, 1])
#   {encoder,decoder}.norm_out          conv_norm_out
#   nin_shortcut (ResnetBlock)          conv_shortcut
# conv_in, conv_out, quant_conv, post_quant_conv keep their names.

LDM_VAE_PREFIX = "first_stage_model."
LDM_CLIP_PREFIX = "cond_stage_model.transformer."

_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _vae_resnet_rest(rest: str) -> str:
    return "nin_shortcut." + rest[len("conv_shortcut."):] if rest.startswith("conv_shortcut.") else rest


def diffusers_to_ldm_vae_key(key: str, levels: int) -> str:
    """LDM name (without first_stage_model.) of one AutoencoderKL key."""
    if key.startswith(("quant_conv.", "post_quant_conv.")):
        return key
    side, _, rest = key.partition(".")
    if side not in ("encoder", "decoder"):
        raise KeyError(key)
    if rest.startswith(("conv_in.", "conv_out.")):
        return key
    if rest.startswith("conv_norm_out."):
        return f"{side}.norm_out.{rest[len('conv_norm_out.'):]}"
    m = re.match(r"mid_block\.resnets\.(\d+)\.(.*)$", rest)
    if m:
        return f"{side}.mid.block_{int(m[1]) + 1}.{_vae_resnet_rest(m[2])}"
    m = re.match(r"mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(.*)$", rest)
    if m:
        return f"{side}.mid.attn_1.{_VAE_ATTN[m[1]]}.{m[2]}"
    m = re.match(r"(down|up)_blocks\.(\d+)\.(resnets|downsamplers|upsamplers)\.(\d+)\.(.*)$", rest)
    if m:
        i = int(m[2])
        word, level = ("down", i) if m[1] == "down" else ("up", levels - 1 - i)
        if m[3] == "resnets":
            return f"{side}.{word}.{level}.block.{m[4]}.{_vae_resnet_rest(m[5])}"
        return f"{side}.{word}.{level}.{m[3][:-2]}.{m[5]}"  # downsample.conv / upsample.conv
    raise KeyError(f"no LDM name for AutoencoderKL key '{key}'")


def diffusers_to_ldm_vae(state_dict: dict, levels: int) -> dict:
    """AutoencoderKL state dict -> {'first_stage_model.<ldm name>': tensor}, the
    attention's linear weights as the 1x1 conv weights LDM stores."""
    out = {}
    for key, t in state_dict.items():
        ldm = diffusers_to_ldm_vae_key(key, levels)
        if ".mid.attn_1." in ldm and ldm.endswith(".weight") and ".norm." not in ldm:
            t = t.reshape(*t.shape, 1, 1)
        out[LDM_VAE_PREFIX + ldm] = t
    return out


def diffusers_to_ldm_clip(state_dict: dict, prefix: str = LDM_CLIP_PREFIX) -> dict:
    """transformers CLIPTextModel state dict -> SD 1.x single-file names
    (transformers 4.x names, with text_model.: the original checkpoints were
    saved from those; transformers >= 5.6 flattened the module). SDXL files
    hold the same names under conditioner.embedders.0.transformer."""
    return {prefix + (k if k.startswith("text_model.") else "text_model." + k): t
            for k, t in state_dict.items()}


LDM_OPENCLIP_PREFIX = "cond_stage_model.model."
_OPENCLIP_TOP = {
    "embeddings.token_embedding.weight": "token_embedding.weight",
    "embeddings.position_embedding.weight": "positional_embedding",
    "final_layer_norm.weight": "ln_final.weight",
    "final_layer_norm.bias": "ln_final.bias",
}
_OPENCLIP_LAYER = {
    "layer_norm1": "ln_1", "layer_norm2": "ln_2", "self_attn.out_proj": "attn.out_proj",
    "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
}


def diffusers_to_ldm_openclip(state_dict: dict, extra_block: dict, text_projection,
                              prefix: str = None) -> dict:
    """transformers CLIPTextModel (SD 2.x's 23-layer penultimate encoder) ->
    an SD 2.x single file's OpenCLIP text tower: the inverse of diffusers'
    convert_open_clip_checkpoint (q/k/v fused into attn.in_proj_*), plus the
    block the converter drops (extra_block: OpenCLIP names below
    transformer.resblocks.<L>.) and text_projection, as real files hold them.
    SDXL's bigG (prefix conditioner.embedders.1.model.): no extra block, and
    text_projection is CLIPTextModelWithProjection's weight transposed."""
    import torch
    sd = {k.removeprefix("text_model."): v for k, v in state_dict.items()}
    out, n_layers = {}, 0
    for k, v in sd.items():
        if k in _OPENCLIP_TOP:
            out[_OPENCLIP_TOP[k]] = v
            continue
        parts = k.split(".")  # encoder.layers.N.<module...>.<weight|bias>
        if parts[:2] != ["encoder", "layers"]:
            raise KeyError(k)
        n, rest = int(parts[2]), ".".join(parts[3:])
        n_layers = max(n_layers, n + 1)
        pre = f"transformer.resblocks.{n}."
        if rest.startswith("self_attn.q_proj."):
            kind = rest.rsplit(".", 1)[1]
            qkv = [sd[f"encoder.layers.{n}.self_attn.{p}_proj.{kind}"] for p in "qkv"]
            out[pre + "attn.in_proj_" + kind] = torch.cat(qkv)
        elif rest.startswith(("self_attn.k_proj.", "self_attn.v_proj.")):
            continue
        else:
            mod, kind = rest.rsplit(".", 1)
            out[pre + _OPENCLIP_LAYER[mod] + "." + kind] = v
    for k, v in extra_block.items():
        out[f"transformer.resblocks.{n_layers}.{k}"] = v
    out["text_projection"] = text_projection
    return {(prefix or LDM_OPENCLIP_PREFIX) + k: v.contiguous() for k, v in out.items()}
