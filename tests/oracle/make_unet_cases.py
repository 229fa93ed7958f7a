#!/usr/bin/env python3
"""Make the committed U-Net goldens in tests/data/unet/ from diffusers.

Each case is a small random-weight diffusers UNet2DConditionModel with the
block structure of a real model (SD 1.5, BK-SDM-Tiny, SD 2.x, a structurally
pruned SD 1.5, and a non-square batch-3 run). For each case we write

  <case>/unet/config.json, <case>/unet/diffusion_pytorch_model.safetensors
      exactly what save_pretrained writes (weights in the case's dtype),
  <case>/io.safetensors
      inputs (sample, timestep, encoder_hidden_states), the output `out` and
      per-block intermediates, all computed by diffusers in fp32 on CPU,
and for sd15_narrow also model.safetensors, the same weights as a single-file
CompVis/LDM checkpoint, and for pruned also pruning.json (the widths kept).

Usage:  python make_unet_cases.py [--out tests/data/unet] [--only CASE ...]
Regeneration is deterministic (fixed seeds, one torch thread); see regen.sh.
"""

import argparse
import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file

import diffusers
from diffusers import UNet2DConditionModel
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ldm_names import diffusers_to_ldm_unet  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Text length SD's CLIP encoder always produces (padded to max_length).
SEQ_LEN = 77

SD15_DOWN = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
SD15_UP = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
# BK-SDM-Tiny (nota-ai/bk-sdm-tiny) is SD 1.5 without the mid block and
# without the innermost (attention-free) level, one layer per block: every
# level keeps its attention, so the last down block is a CrossAttnDownBlock2D
# with no downsampler and the first up block a CrossAttnUpBlock2D with an
# upsampler. At full size this gives exactly the published 323,384,964
# parameters (with DownBlock2D/UpBlock2D at the last level it would be 219M).
BK_TINY_DOWN = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"]
BK_TINY_UP = ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]

# Widths are tiny so the weights stay ~1 MB per case. norm_num_groups is 8
# (4 for bksdm_tiny) instead of SD's 32: with 16..32 channels, 32 groups
# would leave 1 channel (or less) per group, which is instance norm and would
# not test the reduction over channels within a group. A second group count
# keeps the C code from hard-wiring one.
#
# attention_head_dim is, in diffusers' UNet2DConditionModel, the number of
# heads (a known naming quirk kept for old configs); head_dim is then
# channels // heads, so it differs between levels, as in SD 1.5 (40/80/160).
CASES = [
    dict(
        # SD 1.5 structure: 4 levels, 2 layers per block, conv proj_in/out,
        # 8 heads everywhere. fp16 weights (tests the fp16 load path); also
        # written as a single-file LDM checkpoint.
        name="sd15_narrow",
        seed=1501,
        config=dict(
            sample_size=16,
            in_channels=4,
            out_channels=4,
            down_block_types=SD15_DOWN,
            up_block_types=SD15_UP,
            block_out_channels=[16, 16, 24, 32],
            layers_per_block=2,
            attention_head_dim=8,  # head_dim 2, 2, 3 and 4 (mid)
            cross_attention_dim=32,
            norm_num_groups=8,
            use_linear_projection=False,
        ),
        weights_dtype=torch.float16,
        batch=2, h=16, w=16,
        # A CFG pair: the same integer timestep for cond and uncond.
        timestep=torch.tensor([801, 801], dtype=torch.int64),
        ldm_single_file=True,
    ),
    dict(
        # BK-SDM-Tiny structure: 3 levels, all with attention, no mid block,
        # 1 layer per block. fp32 weights.
        name="bksdm_tiny",
        seed=2024,
        config=dict(
            sample_size=16,
            in_channels=4,
            out_channels=4,
            down_block_types=BK_TINY_DOWN,
            up_block_types=BK_TINY_UP,
            mid_block_type=None,
            block_out_channels=[16, 24, 24],
            layers_per_block=1,
            attention_head_dim=8,  # head_dim 2, 3
            cross_attention_dim=40,
            norm_num_groups=4,
        ),
        weights_dtype=torch.float32,
        batch=2, h=16, w=16,
        # Float timesteps with a fractional part (schedulers such as Euler or
        # DPM-Solver with Karras sigmas produce them).
        timestep=torch.tensor([500.0, 17.25], dtype=torch.float32),
    ),
    dict(
        # SD 2.x structure: linear proj_in/proj_out, heads per block chosen so
        # head_dim is constant (8 here, 64 in SD 2), 2 transformer layers per
        # attention block except at the first level. bf16 weights.
        name="sd2_style",
        seed=2100,
        config=dict(
            sample_size=16,
            in_channels=4,
            out_channels=4,
            down_block_types=SD15_DOWN,
            up_block_types=SD15_UP,
            block_out_channels=[16, 16, 24, 24],
            layers_per_block=2,
            attention_head_dim=[2, 2, 3, 3],  # heads per level; head_dim 8
            transformer_layers_per_block=[1, 2, 2, 2],
            cross_attention_dim=24,
            norm_num_groups=8,
            use_linear_projection=True,
            upcast_attention=False,
        ),
        weights_dtype=torch.bfloat16,
        batch=2, h=16, w=16,
        timestep=torch.tensor([999.0, 0.5], dtype=torch.float32),
    ),
    dict(
        # SD 1.5 structure with ResNet inner widths and attention heads pruned
        # per module (see PRUNE_* below). config.json stays the unpruned one:
        # the C loader must take widths from weight shapes.
        name="pruned",
        seed=2240,
        config=dict(
            sample_size=16,
            in_channels=4,
            out_channels=4,
            down_block_types=SD15_DOWN,
            up_block_types=SD15_UP,
            block_out_channels=[16, 24, 24, 32],
            layers_per_block=2,
            attention_head_dim=4,  # head_dim 4, 6, 6 and 8 (mid)
            cross_attention_dim=32,
            norm_num_groups=8,
        ),
        weights_dtype=torch.float16,
        batch=2, h=16, w=16,
        timestep=torch.tensor([640, 261], dtype=torch.int64),
        prune=True,
    ),
    dict(
        # Non-square latent, batch 3, each sample at its own timestep with its
        # own text embedding (the service batches requests at different steps).
        name="nonsquare_b3",
        seed=3003,
        config=dict(
            sample_size=16,
            in_channels=4,
            out_channels=4,
            down_block_types=SD15_DOWN,
            up_block_types=SD15_UP,
            block_out_channels=[16, 16, 24, 24],
            layers_per_block=2,
            attention_head_dim=4,  # head_dim 4, 4, 6 and 6 (mid)
            cross_attention_dim=48,
            norm_num_groups=8,
        ),
        weights_dtype=torch.float16,
        batch=3, h=16, w=24,  # both divisible by 2**3 (3 downsamplers)
        timestep=torch.tensor([999, 421, 0], dtype=torch.int64),
    ),
]

# SDXL family (diffusers' SDXL-base unet/config.json shrunk): the first
# level without attention, 64-wide heads (8 here, constant per level),
# linear projections, per-block transformer depths and the "text_time"
# added conditioning (pooled text embedding + 6 Fourier-embedded time ids,
# addition_time_embed_dim 4 here for 256). Context 24 stands for
# 768 + 1280 = 2048, the pooled width 16 for 1280. Widths are smaller than
# the SD 1.x cases' (and 4 norm groups) to keep each case ~200 KB.
SDXL_DOWN = ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"]
SDXL_UP = ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]
SDXL_POOLED = 16


def sdxl_config(**kw) -> dict:
    """A tiny SDXL-shaped config; kw sets widths, depths, heads, mid block."""
    return dict(sample_size=16, down_block_types=SDXL_DOWN, up_block_types=SDXL_UP,
                cross_attention_dim=24, norm_num_groups=4, use_linear_projection=True,
                addition_embed_type="text_time", addition_time_embed_dim=4,
                projection_class_embeddings_input_dim=SDXL_POOLED + 6 * 4, **kw)


SDXL_CASES = [
    dict(
        # SDXL-base structure: 2 layers per block, depths 1/2/3 (10 in SDXL),
        # non-square latent, each sample with its own time ids. fp16.
        name="sdxl_tiny",
        seed=4100,
        config=sdxl_config(block_out_channels=[8, 8, 16], layers_per_block=2,
                           attention_head_dim=[1, 1, 2], transformer_layers_per_block=[1, 2, 3]),
        weights_dtype=torch.float16,
        batch=2, h=16, w=24,
        timestep=torch.tensor([999, 261], dtype=torch.int64),
        time_ids=torch.tensor([[1024.0, 1024, 0, 0, 1024, 1024], [768, 1344, 64, 32, 832, 1216]]),
    ),
    dict(
        # SSD-1B's form (segmind/SSD-1B): depths per layer, lists of lists,
        # with the reverse list for the up blocks. fp16.
        name="sdxl_ssd1b_like",
        seed=4200,
        config=sdxl_config(block_out_channels=[8, 8, 16], layers_per_block=2,
                           attention_head_dim=[1, 1, 2],
                           transformer_layers_per_block=[1, [2, 1], [3, 1]],
                           reverse_transformer_layers_per_block=[[1, 3, 2], [2, 1, 1], 1]),
        weights_dtype=torch.float16,
        batch=1, h=16, w=16,
        timestep=torch.tensor([500.5], dtype=torch.float32),
        time_ids=torch.tensor([[512.0, 512, 0, 0, 512, 512]]),
    ),
    dict(
        # KOALA-700M's pruning (arXiv 2312.04005): one layer per block,
        # shallower stacks, no mid block. bf16.
        name="sdxl_koala_like",
        seed=4300,
        config=sdxl_config(block_out_channels=[8, 16, 16], layers_per_block=1,
                           attention_head_dim=[1, 2, 2], transformer_layers_per_block=[1, 1, 2],
                           mid_block_type=None),
        weights_dtype=torch.bfloat16,
        batch=2, h=8, w=16,
        timestep=torch.tensor([10, 10], dtype=torch.int64),
        time_ids=torch.tensor([[64.0, 128, 0, 0, 64, 128]] * 2),
    ),
]
CASES += SDXL_CASES

# ---------------------------------------------------------------------------
# Pruning plan for the "pruned" case. Everything not listed keeps its width.
# ResnetBlock2D: inner width (conv1 out = norm2 = time_emb_proj out = conv2 in);
# must stay a multiple of norm_num_groups (8) for norm2.
PRUNE_RESNET_MID = {
    "down_blocks.0.resnets.0": 8,   # of 16
    "down_blocks.1.resnets.0": 16,  # of 24; also has a conv_shortcut (16->24)
    "down_blocks.1.resnets.1": 8,   # of 24
    "down_blocks.2.resnets.0": 16,  # of 24
    "down_blocks.3.resnets.1": 24,  # of 32
    "mid_block.resnets.0": 16,      # of 32
    "up_blocks.0.resnets.0": 24,    # of 32 (input 32+32 concatenated)
    "up_blocks.0.resnets.2": 8,     # of 32
    "up_blocks.1.resnets.1": 16,    # of 24
    "up_blocks.2.resnets.0": 8,     # of 24
    "up_blocks.2.resnets.2": 16,    # of 24
    "up_blocks.3.resnets.0": 8,     # of 16
}
# Attention: heads kept (of 4); head_dim stays channels // 4. attn1 (self)
# and attn2 (cross) of one block are pruned independently.
_TB = "transformer_blocks.0"
PRUNE_HEADS = {
    f"down_blocks.0.attentions.0.{_TB}.attn1": 2,
    f"down_blocks.0.attentions.0.{_TB}.attn2": 3,
    f"down_blocks.0.attentions.1.{_TB}.attn2": 1,
    f"down_blocks.1.attentions.0.{_TB}.attn1": 3,
    f"down_blocks.1.attentions.0.{_TB}.attn2": 3,
    f"down_blocks.1.attentions.1.{_TB}.attn1": 1,
    f"down_blocks.2.attentions.1.{_TB}.attn1": 2,
    f"down_blocks.2.attentions.1.{_TB}.attn2": 2,
    f"mid_block.attentions.0.{_TB}.attn1": 2,
    f"mid_block.attentions.0.{_TB}.attn2": 1,
    f"up_blocks.1.attentions.0.{_TB}.attn1": 3,
    f"up_blocks.1.attentions.2.{_TB}.attn2": 2,
    f"up_blocks.2.attentions.1.{_TB}.attn1": 1,
    f"up_blocks.2.attentions.1.{_TB}.attn2": 3,
    f"up_blocks.3.attentions.0.{_TB}.attn1": 2,
    f"up_blocks.3.attentions.2.{_TB}.attn2": 1,
}


def perturb_norms(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Give every GroupNorm/LayerNorm a non-trivial affine transform.

    Default init is weight=1, bias=0; a C implementation that ignored gamma
    and beta, or swapped them, would then still match the golden.
    """
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (torch.nn.GroupNorm, torch.nn.LayerNorm)) and mod.weight is not None:
                mod.weight.copy_(1.0 + 0.1 * torch.randn(mod.weight.shape, generator=gen))
                if mod.bias is not None:
                    mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=gen))


def _sub_conv(old: torch.nn.Conv2d, out_idx=None, in_idx=None) -> torch.nn.Conv2d:
    """A Conv2d with the selected output/input channels of `old`."""
    w = old.weight.data
    b = old.bias.data if old.bias is not None else None
    if out_idx is not None:
        w = w[out_idx]
        b = b[out_idx] if b is not None else None
    if in_idx is not None:
        w = w[:, in_idx]
    new = torch.nn.Conv2d(w.shape[1], w.shape[0], old.kernel_size, stride=old.stride,
                          padding=old.padding, bias=b is not None)
    new.weight.data.copy_(w)
    if b is not None:
        new.bias.data.copy_(b)
    return new


def _sub_linear(old: torch.nn.Linear, out_idx=None, in_idx=None) -> torch.nn.Linear:
    """A Linear with the selected output/input features of `old`."""
    w = old.weight.data
    b = old.bias.data if old.bias is not None else None
    if out_idx is not None:
        w = w[out_idx]
        b = b[out_idx] if b is not None else None
    if in_idx is not None:
        w = w[:, in_idx]
    new = torch.nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    new.weight.data.copy_(w)
    if b is not None:
        new.bias.data.copy_(b)
    return new


def prune_resnet(res, mid: int, gen: torch.Generator) -> None:
    """Keep `mid` of the inner channels of a diffusers ResnetBlock2D.

    The kept channels are a random (sorted) subset, as a structural pruner
    would pick by importance, not simply the first `mid`.
    """
    full = res.conv1.out_channels
    assert mid % res.norm2.num_groups == 0 and mid < full
    keep = torch.sort(torch.randperm(full, generator=gen)[:mid]).values
    res.conv1 = _sub_conv(res.conv1, out_idx=keep)
    res.time_emb_proj = _sub_linear(res.time_emb_proj, out_idx=keep)
    norm = torch.nn.GroupNorm(res.norm2.num_groups, mid, eps=res.norm2.eps, affine=True)
    norm.weight.data.copy_(res.norm2.weight.data[keep])
    norm.bias.data.copy_(res.norm2.bias.data[keep])
    res.norm2 = norm
    res.conv2 = _sub_conv(res.conv2, in_idx=keep)


def prune_attention(attn, heads_kept: int, gen: torch.Generator) -> None:
    """Keep `heads_kept` heads of a diffusers Attention; head_dim unchanged.

    AttnProcessor2_0 (the default) reshapes q/k/v with attn.heads and derives
    head_dim = k.shape[-1] // attn.heads, then calls SDPA with its default
    scale 1/sqrt(head_dim); attn.scale is not read. So setting attn.heads is
    what diffusers' own forward needs. inner_dim / inner_kv_dim /
    sliceable_head_dim are updated too so nothing else sees stale widths.
    """
    head_dim = attn.to_q.out_features // attn.heads
    keep_heads = torch.sort(torch.randperm(attn.heads, generator=gen)[:heads_kept]).values
    rows = torch.cat([torch.arange(h * head_dim, (h + 1) * head_dim) for h in keep_heads.tolist()])
    attn.to_q = _sub_linear(attn.to_q, out_idx=rows)
    attn.to_k = _sub_linear(attn.to_k, out_idx=rows)
    attn.to_v = _sub_linear(attn.to_v, out_idx=rows)
    attn.to_out[0] = _sub_linear(attn.to_out[0], in_idx=rows)
    attn.heads = heads_kept
    attn.inner_dim = heads_kept * head_dim
    attn.inner_kv_dim = heads_kept * head_dim
    attn.sliceable_head_dim = heads_kept


def check_attention_by_hand(attn, query_dim: int, kv_dim: int, gen: torch.Generator) -> None:
    """Recompute a (pruned) attention by hand and compare with diffusers.

    This pins down what the C code must do: per head softmax(q k^T /
    sqrt(head_dim)) v with head_dim the unpruned one, heads = rows / head_dim.
    """
    x = torch.randn(2, 10, query_dim, generator=gen)
    c = torch.randn(2, 7, kv_dim, generator=gen) if attn.is_cross_attention else None
    kv_in = c if c is not None else x
    heads = attn.heads
    d = attn.to_q.out_features // heads
    q = attn.to_q(x).view(2, 10, heads, d).transpose(1, 2)
    k = attn.to_k(kv_in).view(2, -1, heads, d).transpose(1, 2)
    v = attn.to_v(kv_in).view(2, -1, heads, d).transpose(1, 2)
    p = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=-1)
    ref = attn.to_out[0]((p @ v).transpose(1, 2).reshape(2, 10, heads * d))
    got = attn(x, encoder_hidden_states=c)
    err = (got - ref).abs().max().item()
    assert err < 1e-5, f"pruned attention mismatch {err}"


def apply_pruning(model, gen: torch.Generator) -> dict:
    """Prune `model` in place per PRUNE_*; return the full width table."""
    mods = dict(model.named_modules())
    for path, mid in PRUNE_RESNET_MID.items():
        prune_resnet(mods[path], mid, gen)
    for path, kept in PRUNE_HEADS.items():
        prune_attention(mods[path], kept, gen)
    # Table of every resnet's inner width and every attention's heads,
    # pruned or not, for the C tests to compare against what the loader finds.
    table = {"resnet_mid_channels": {}, "attention_heads": {}}
    for name, mod in model.named_modules():
        cls = type(mod).__name__
        if cls == "ResnetBlock2D":
            table["resnet_mid_channels"][name] = mod.conv1.out_channels
        elif cls == "Attention":
            d = mod.to_q.out_features // mod.heads
            table["attention_heads"][name] = {"heads": mod.heads, "head_dim": d}
            check_attention_by_hand(mod, mod.to_q.in_features, mod.to_k.in_features, gen)
    return table


def run_with_intermediates(model, sample, timestep, ehs, added=None) -> dict:
    """Forward pass; returns `out` plus the per-block tensors (see README)."""
    cap = {}

    def keep(name, pick=lambda o: o):
        def hook(_mod, _inp, out):
            cap[name] = pick(out).detach().float().contiguous().clone()
        return hook

    hooks = [
        model.time_proj.register_forward_hook(keep("time_proj")),
        model.time_embedding.register_forward_hook(keep("time_emb")),
        model.conv_in.register_forward_hook(keep("conv_in")),
    ]
    for i, blk in enumerate(model.down_blocks):
        # Down blocks return (hidden_states, skip tensors); we keep the first.
        hooks.append(blk.register_forward_hook(keep(f"down.{i}", lambda o: o[0])))
    if model.mid_block is not None:
        hooks.append(model.mid_block.register_forward_hook(keep("mid")))
    for i, blk in enumerate(model.up_blocks):
        hooks.append(blk.register_forward_hook(keep(f"up.{i}")))

    def conv_out_in(_mod, inp):
        cap["conv_out_in"] = inp[0].detach().float().contiguous().clone()

    hooks.append(model.conv_out.register_forward_pre_hook(conv_out_in))
    if added is not None:
        hooks.append(model.add_embedding.register_forward_hook(keep("aug_emb")))
    with torch.no_grad():
        cap["out"] = model(sample, timestep, encoder_hidden_states=ehs,
                           added_cond_kwargs=added).sample.contiguous().clone()
    for h in hooks:
        h.remove()
    if added is not None:
        # emb = time_embedding(t) + add_embedding(...), what the ResNets get.
        cap["emb"] = (cap["time_emb"] + cap["aug_emb"]).contiguous()
    return cap


def ldm_extras() -> dict:
    """A few non-UNet tensors that real single-file checkpoints carry.

    Names and shapes are those of the SD 1.5 checkpoint (the tiny ones): the
    C loader must skip them, including int64/int32 and 0-dim tensors.
    """
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    g = torch.Generator().manual_seed(77)
    return {
        "alphas_cumprod": torch.cumprod(1.0 - betas, 0).float(),
        "model_ema.decay": torch.tensor(0.9999, dtype=torch.float32),
        "model_ema.num_updates": torch.tensor(0, dtype=torch.int32),
        "first_stage_model.quant_conv.weight": torch.randn(8, 8, 1, 1, generator=g).half(),
        "first_stage_model.quant_conv.bias": torch.randn(8, generator=g).half(),
        "first_stage_model.post_quant_conv.weight": torch.randn(4, 4, 1, 1, generator=g).half(),
        "first_stage_model.post_quant_conv.bias": torch.randn(4, generator=g).half(),
        "cond_stage_model.transformer.text_model.embeddings.position_ids":
            torch.arange(SEQ_LEN, dtype=torch.int64)[None],
        "cond_stage_model.transformer.text_model.final_layer_norm.weight": torch.ones(768).half(),
        "cond_stage_model.transformer.text_model.final_layer_norm.bias": torch.zeros(768).half(),
    }


def check_ldm_roundtrip(ldm: dict, state_dict: dict, config: dict) -> None:
    """diffusers' own converter must turn our LDM names back into `state_dict`."""
    back = convert_ldm_unet_checkpoint(ldm, dict(config))
    missing = sorted(set(state_dict) - set(back))
    extra = sorted(set(back) - set(state_dict))
    assert not missing and not extra, f"LDM roundtrip: missing {missing[:5]} extra {extra[:5]}"
    for k, v in state_dict.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), f"LDM roundtrip: {k} differs"


def make_case(case: dict, out_root: str) -> dict:
    name = case["name"]
    case_dir = os.path.join(out_root, name)
    # Start the case from an empty folder so no stale file survives.
    shutil.rmtree(case_dir, ignore_errors=True)
    os.makedirs(os.path.join(case_dir, "unet"))

    torch.manual_seed(case["seed"])
    model = UNet2DConditionModel(**case["config"]).eval()
    gen = torch.Generator().manual_seed(case["seed"] + 1)
    perturb_norms(model, gen)
    prune_table = apply_pruning(model, gen) if case.get("prune") else None

    # Round the weights to the storage dtype first, so the reference below is
    # computed from exactly the weights in the file.
    model = model.to(case["weights_dtype"])
    unet_dir = os.path.join(case_dir, "unet")
    model.save_pretrained(unet_dir)
    state_dict = {k: v.detach().clone() for k, v in model.state_dict().items()}

    # The state dict on disk must have the pruned shapes (save_pretrained
    # writes the in-memory modules; config.json stays the unpruned one).
    from safetensors.torch import load_file
    on_disk = load_file(os.path.join(unet_dir, "diffusion_pytorch_model.safetensors"))
    assert set(on_disk) == set(state_dict)
    for k, v in state_dict.items():
        assert on_disk[k].dtype == v.dtype and torch.equal(on_disk[k], v), k

    # The LDM naming is proved on every case (mid block absent, linear
    # projections, 2 transformer layers, pruned shapes); the file is written
    # for sd15_narrow only.
    # (SDXL names, label_emb.*, are single-file work not done yet.)
    if "time_ids" not in case:
        ldm = diffusers_to_ldm_unet(state_dict, case["config"]["layers_per_block"])
        ldm.update(ldm_extras())
        check_ldm_roundtrip(ldm, state_dict, model.config)
    if case.get("ldm_single_file"):
        save_file(ldm, os.path.join(case_dir, "model.safetensors"), metadata={"format": "pt"})

    model = model.float()
    if prune_table is not None:
        with open(os.path.join(case_dir, "pruning.json"), "w") as f:
            json.dump(prune_table, f, indent=1, sort_keys=True)
            f.write("\n")

    # Inputs come from their own generator so they do not depend on the
    # number of parameters drawn before.
    g_in = torch.Generator().manual_seed(case["seed"] + 2)
    n, h, w = case["batch"], case["h"], case["w"]
    sample = torch.randn(n, model.config.in_channels, h, w, generator=g_in)
    ehs = torch.randn(n, SEQ_LEN, model.config.cross_attention_dim, generator=g_in)
    timestep = case["timestep"]
    assert timestep.shape == (n,)

    added = None
    if "time_ids" in case:
        added = {"text_embeds": torch.randn(n, SDXL_POOLED, generator=g_in),
                 "time_ids": case["time_ids"]}
    cap = run_with_intermediates(model, sample, timestep, ehs, added)
    assert cap["out"].shape == (n, model.config.out_channels, h, w)
    assert torch.isfinite(cap["out"]).all()
    io = {"sample": sample, "timestep": timestep, "encoder_hidden_states": ehs}
    if added is not None:
        io.update(added)
    io.update(cap)
    meta = {
        "case": name,
        "weights_dtype": str(case["weights_dtype"]).replace("torch.", ""),
        "reference": f"diffusers {diffusers.__version__} torch {torch.__version__} fp32 cpu",
    }
    # One metadata key only: safetensors keeps __metadata__ in a Rust
    # HashMap, so several keys come out in a different order on every run and
    # the file would not be byte-identical when regenerated.
    save_file(io, os.path.join(case_dir, "io.safetensors"),
              metadata={"hsd_oracle": json.dumps(meta, sort_keys=True)})

    files = {}
    for root, _, names in os.walk(case_dir):
        for fn in names:
            p = os.path.join(root, fn)
            files[os.path.relpath(p, out_root)] = os.path.getsize(p)
    return {
        "case": name,
        "params": sum(v.numel() for v in state_dict.values()),
        "weights_dtype": meta["weights_dtype"],
        "timestep_dtype": str(timestep.dtype).replace("torch.", ""),
        "out_max_abs": cap["out"].abs().max().item(),
        "files": files,
        "tensors": sorted(io),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "data", "unet"))
    ap.add_argument("--only", nargs="*", help="case names (default: all)")
    args = ap.parse_args()

    # One thread and deterministic kernels: goldens must be byte-identical
    # when regenerated on the same machine.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    # Silence the "modules that should be kept in float32: []" notice that
    # model.to(half) prints; nothing is kept in fp32 for this model class.
    diffusers.utils.logging.set_verbosity_error()

    total = 0
    for case in CASES:
        if args.only and case["name"] not in args.only:
            continue
        s = make_case(case, args.out)
        size = sum(s["files"].values())
        total += size
        print(f"{s['case']:14s} params={s['params']:8d} weights={s['weights_dtype']:8s} "
              f"timestep={s['timestep_dtype']:7s} out_max_abs={s['out_max_abs']:.4f} bytes={size}")
        for p, b in sorted(s["files"].items()):
            print(f"    {p:60s} {b:9d}")
    print(f"total bytes {total}")


if __name__ == "__main__":
    main()
