#!/usr/bin/env python3
"""Make the committed CLIP text encoder goldens in tests/data/text/ from transformers.

Each case is a small random-weight transformers CLIPTextModel (the SD text
encoder class). For each case we write

  <case>/text_encoder/config.json, <case>/text_encoder/model.safetensors
      what save_pretrained writes (weights in the case's dtype); the `prefixed`
      case instead stores the names with the "text_model." prefix and the
      int64 `position_ids` buffer, as checkpoints saved by transformers 4.x
      (every SD text_encoder on the Hub) do,
  <case>/io.safetensors
      input_ids [2, 77] I64, last_hidden_state [2, 77, C], hidden.<i> for
      i = 0..num_layers (transformers' output_hidden_states: the embeddings,
      then each encoder layer's output), and clip_skip.<k> for k = 1, 2:
      final_layer_norm(hidden_states[-(k + 1)]), what diffusers'
      StableDiffusionPipeline.encode_prompt computes for clip_skip = k.
All references are transformers fp32 on CPU, computed from the weights as
stored (fp16-rounded for the fp16 case).

build_tiny_clip_text() is importable: tests/oracle scripts that assemble tiny
pipelines reuse it for their text_encoder/ folder.

Usage:  python make_text_cases.py [--out tests/data/text] [--only CASE ...]
Regeneration is deterministic (fixed seeds, one torch thread); see regen.sh.
"""

import argparse
import json
import os
import shutil

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import transformers
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# SD's tokenizer always pads to 77 tokens.
SEQ_LEN = 77
# Vocabulary of the tiny test tokenizer (tests/data/tokenizer): its last two
# ids are BOS and EOS, as 49406/49407 are for SD's 49408-entry vocabulary.
TINY_VOCAB = 1014


def build_tiny_clip_text(out_dir, vocab_size=TINY_VOCAB, hidden=32, layers=3, heads=4,
                         intermediate=37, hidden_act="quick_gelu", layer_norm_eps=1e-5,
                         max_positions=SEQ_LEN, seed=0, dtype=torch.float32,
                         projection_dim=None, eos_token_id=None):
    """Write a random-weight CLIPTextModel to `out_dir` (a text_encoder/ folder).

    Every parameter is drawn here from one seeded generator, in sorted name
    order, so the weights do not depend on transformers' init code:
    embeddings N(0, 0.5^2) (token vectors of norm ~3, like SD's), Linear
    weights U(+-1/sqrt(fan_in)) as torch's default, with q/k scaled by 4 so
    the attention is peaked rather than uniform (a uniform softmax would not
    show a missing causal mask or a wrong scale), biases U(+-0.1), LayerNorm
    weight 1 + 0.1 N(0, 1) and bias 0.1 N(0, 1) (non-trivial, so a swapped or
    ignored gamma/beta shows). The model is rounded to `dtype` before saving.
    Returns the model (in `dtype`, eval mode).
    """
    cfg = CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=intermediate,
        num_hidden_layers=layers, num_attention_heads=heads,
        max_position_embeddings=max_positions, hidden_act=hidden_act,
        layer_norm_eps=layer_norm_eps, projection_dim=projection_dim or hidden,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1 if eos_token_id is None else eos_token_id,
        pad_token_id=vocab_size - 1)
    # SDXL's text_encoder_2 is a CLIPTextModelWithProjection.
    model = (CLIPTextModelWithProjection if projection_dim else CLIPTextModel)(cfg).eval()
    gen = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            if "embedding" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            elif "layer_norm" in name:
                base = 1.0 if name.endswith(".weight") else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".weight"):
                bound = p.shape[1] ** -0.5
                if "q_proj" in name or "k_proj" in name:
                    bound *= 4.0
                p.copy_(bound * (2.0 * torch.rand(p.shape, generator=gen) - 1.0))
            else:
                p.copy_(0.1 * (2.0 * torch.rand(p.shape, generator=gen) - 1.0))
    model = model.to(dtype)
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    return model


def make_ids(vocab_size, gen):
    """Batch 2 of SD-style ids: BOS, tokens, EOS, then EOS padding.

    Row 0 holds id 0 and vocab-1 mid-sequence and is padded after 12 tokens;
    row 1 is 60 tokens long. Both rows share nothing after position 0, so a
    mix-up between samples shows.
    """
    bos, eos = vocab_size - 2, vocab_size - 1
    ids = torch.full((2, SEQ_LEN), eos, dtype=torch.int64)
    for row, used in ((0, 12), (1, 60)):
        ids[row, 0] = bos
        ids[row, 1:used - 1] = torch.randint(0, vocab_size - 2, (used - 2,), generator=gen)
    ids[0, 3] = 0
    ids[0, 7] = vocab_size - 1
    ids[1, 30] = 0
    return ids


CASES = [
    # SD 1.x style: quick_gelu, eps 1e-5, fp32, 3 layers of 4 heads (d = 8).
    dict(name="quick_gelu", seed=7001, hidden=32, layers=3, heads=4, intermediate=37,
         hidden_act="quick_gelu", layer_norm_eps=1e-5, dtype=torch.float32),
    # SD 2.x style activation (exact GELU) with other widths (3 heads of
    # 16) and eps 1e-3: large enough that using 1e-5 instead moves
    # last_hidden_state by 1.8e-3 of its scale (quick_gelu instead of gelu:
    # 4.7e-3), far above the test's 1e-4 bound.
    dict(name="gelu_eps", seed=7002, hidden=48, layers=2, heads=3, intermediate=37,
         hidden_act="gelu", layer_norm_eps=1e-3, dtype=torch.float32),
    # fp16 storage (tests the fp16 load path); reference in fp32 from the
    # rounded weights.
    dict(name="fp16", seed=7003, hidden=32, layers=3, heads=4, intermediate=37,
         hidden_act="quick_gelu", layer_norm_eps=1e-5, dtype=torch.float16),
    # The names of checkpoints saved by transformers 4.x (the SD Hub
    # folders): "text_model." prefix plus the int64 position_ids buffer.
    dict(name="prefixed", seed=7004, hidden=32, layers=2, heads=2, intermediate=37,
         hidden_act="quick_gelu", layer_norm_eps=1e-5, dtype=torch.float16, prefixed=True),
]


# SDXL (diffusers StableDiffusionXLPipeline.encode_prompt): both encoders
# give hidden_states[-2] (`penultimate`; `sdxl_skip.1` is clip_skip 1,
# hidden_states[-3]); the pooled output is `pooler_output` (CLIPTextModel)
# or `text_embeds` (WithProjection). eos_token_id 2 is what SDXL's configs
# say (pre-#24773: the pooled row is the argmax of the ids).
SDXL_TEXT_CASES = [
    # text_encoder (CLIP ViT-L's kind): quick_gelu, fp16.
    dict(name="sdxl_te1", seed=7101, hidden=16, layers=3, heads=2, intermediate=24,
         hidden_act="quick_gelu", layer_norm_eps=1e-5, dtype=torch.float16, eos_token_id=2,
         sdxl=True),
    # text_encoder_2 (OpenCLIP bigG's kind): gelu, WithProjection to 16.
    dict(name="sdxl_te2", seed=7102, hidden=24, layers=3, heads=3, intermediate=40,
         hidden_act="gelu", layer_norm_eps=1e-5, dtype=torch.float16, eos_token_id=2,
         projection_dim=16, sdxl=True),
]
CASES += SDXL_TEXT_CASES


def rewrite_prefixed(te_dir, max_positions):
    """Rename the weights to transformers 4.x names and check 5.x still loads them."""
    path = os.path.join(te_dir, "model.safetensors")
    sd = load_file(path)
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    new = {"text_model." + k: v for k, v in sd.items()}
    new["text_model.embeddings.position_ids"] = torch.arange(max_positions,
                                                             dtype=torch.int64)[None]
    save_file(new, path, metadata=meta)


def make_case(case, out_root):
    name = case["name"]
    case_dir = os.path.join(out_root, name)
    # Start the case from an empty folder so no stale file survives.
    shutil.rmtree(case_dir, ignore_errors=True)
    te_dir = os.path.join(case_dir, "text_encoder")
    model = build_tiny_clip_text(
        te_dir, vocab_size=TINY_VOCAB, hidden=case["hidden"], layers=case["layers"],
        heads=case["heads"], intermediate=case["intermediate"], hidden_act=case["hidden_act"],
        layer_norm_eps=case["layer_norm_eps"], seed=case["seed"], dtype=case["dtype"],
        projection_dim=case.get("projection_dim"), eos_token_id=case.get("eos_token_id"))
    if case.get("prefixed"):
        rewrite_prefixed(te_dir, SEQ_LEN)
    # The reference runs the model as transformers loads it from the folder
    # (proves the file is what we think), in fp32.
    cls = CLIPTextModelWithProjection if case.get("projection_dim") else CLIPTextModel
    loaded = cls.from_pretrained(te_dir, dtype=torch.float32).eval()
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v.float()), f"{name}: {k} differs on reload"
    model = loaded

    gen = torch.Generator().manual_seed(case["seed"] + 1)
    ids = make_ids(TINY_VOCAB, gen)
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
        hs = out.hidden_states
        assert len(hs) == case["layers"] + 1
        # hidden_states[0] is the embedding output.
        assert torch.equal(hs[0], getattr(model, "text_model", model).embeddings(input_ids=ids))
        # diffusers encode_prompt: prompt_embeds[-1] is the hidden_states
        # tuple; [-(clip_skip + 1)] of it, then text_model.final_layer_norm
        # (CLIPTextModel in transformers 5 holds final_layer_norm itself).
        assert out[-1] is hs
        fln = getattr(model, "text_model", model).final_layer_norm
        if case.get("sdxl"):
            # tokenizer_2 pads with "!" (id 0): the pooled row must still be
            # found (argmax), so pad row 1 with 0 as SDXL's second ids do.
            if case.get("projection_dim"):
                ids[1, 60:] = 0
                ids[1, 59] = TINY_VOCAB - 1
                out = model(ids, output_hidden_states=True)
                hs = out.hidden_states
        io = {"input_ids": ids, "last_hidden_state": out.last_hidden_state.contiguous()}
        if case.get("sdxl"):
            io["penultimate"] = hs[-2].clone()
            io["sdxl_skip.1"] = hs[-3].clone()
            pooled = out.text_embeds if case.get("projection_dim") else out.pooler_output
            io["pooled"] = pooled.contiguous()
        assert torch.equal(fln(hs[-1]), out.last_hidden_state)
        for i, h in enumerate(hs):
            io[f"hidden.{i}"] = h.contiguous()
        for k in (1, 2):
            io[f"clip_skip.{k}"] = fln(hs[-(k + 1)]).contiguous()
    for v in io.values():
        assert torch.isfinite(v.float()).all()
    meta = {
        "case": name,
        "weights_dtype": str(case["dtype"]).replace("torch.", ""),
        "reference": f"transformers {transformers.__version__} torch {torch.__version__} fp32 cpu",
    }
    # One metadata key only: safetensors keeps __metadata__ in a Rust
    # HashMap, so several keys come out in a different order on every run.
    save_file(io, os.path.join(case_dir, "io.safetensors"),
              metadata={"hsd_oracle": json.dumps(meta, sort_keys=True)})
    files = {}
    for root, _, names in os.walk(case_dir):
        for fn in names:
            p = os.path.join(root, fn)
            files[os.path.relpath(p, out_root)] = os.path.getsize(p)
    return {"case": name, "max_abs": out.last_hidden_state.abs().max().item(), "files": files}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "data", "text"))
    ap.add_argument("--only", nargs="*", help="case names (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    total = 0
    for case in CASES:
        if args.only and case["name"] not in args.only:
            continue
        s = make_case(case, args.out)
        size = sum(s["files"].values())
        total += size
        print(f"{s['case']:12s} last_hidden_state max_abs={s['max_abs']:.4f} bytes={size}")
        for p, b in sorted(s["files"].items()):
            print(f"    {p:50s} {b:9d}")
    print(f"total bytes {total}")


if __name__ == "__main__":
    main()
