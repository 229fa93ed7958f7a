#!/usr/bin/env python3
"""CLIP BPE vocabularies built from OpenAI's bpe_simple_vocab_16e6.txt.gz.

build_tiny_tokenizer(out_dir) writes a small but real CLIP tokenizer folder
(the diffusers `tokenizer/` layout of SD 1.x) for the tiny test pipelines:
the first N_TINY_MERGES merges of the real BPE, so the vocab is the 256
byte-level characters, their 256 "</w>" variants, one token per merge and
the two specials (1014 entries). The other helpers rebuild the full 49408
vocab the way OpenAI's CLIP simple_tokenizer.py does.

Usage:  python tiny_tokenizer.py OUT_DIR     (or import build_tiny_tokenizer)
"""

import gzip
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The original vocab is vendored in host/text/data with CLIP's MIT licence;
# HSD_CLIP_BPE_GZ overrides, like the CMake cache variable of the same name.
DEFAULT_GZ = os.environ.get(
    "HSD_CLIP_BPE_GZ",
    os.path.join(REPO, "host", "text", "data", "clip_bpe_simple_vocab_16e6.txt.gz"))

N_TINY_MERGES = 500
BOS = "<|startoftext|>"
EOS = "<|endoftext|>"


def bytes_to_unicode():
    """byte -> printable character, in the order CLIP's vocab lists them.

    Same as openai/CLIP clip/simple_tokenizer.py bytes_to_unicode(): printable
    Latin-1 bytes map to themselves, the other 68 to U+0100 + n in byte order.
    """
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def read_clip_merges(gz_path=DEFAULT_GZ, n_merges=None):
    """The merges of bpe_simple_vocab_16e6.txt.gz as (a, b) tuples.

    simple_tokenizer.py keeps lines [1 : 49152-256-2+1] (line 0 is a header);
    n_merges keeps only the first n of those (rank order).
    """
    with gzip.open(gz_path) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
    return merges if n_merges is None else merges[:n_merges]


def clip_vocab(merges):
    """Token list in id order: bytes, bytes + "</w>", merges, BOS, EOS."""
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += [BOS, EOS]
    return vocab


def write_vocab_merges(out_dir, merges):
    """vocab.json + merges.txt as the CLIP folders on the Hub have them."""
    os.makedirs(out_dir, exist_ok=True)
    encoder = {tok: i for i, tok in enumerate(clip_vocab(merges))}
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(encoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(a + " " + b + "\n")


def _added(content):
    return {"content": content, "lstrip": False, "normalized": True, "rstrip": False,
            "single_word": False}


def sd15_config_files():
    """tokenizer_config.json and special_tokens_map.json of SD 1.x's tokenizer/.

    As in runwayml/stable-diffusion-v1-5 (from openai/clip-vit-large-patch14):
    BOS/EOS/UNK are AddedToken dicts with normalized=true, pad is the plain
    string "<|endoftext|>". Note what transformers v5 makes of it: the plain
    pad string becomes AddedToken(normalized=False), is added after EOS and so
    wins for id 49407; "<|startoftext|>" stays normalized (so "<|STARTOFTEXT|>"
    is the BOS id) while "<|ENDOFTEXT|>" is tokenized as text.
    """
    typed = lambda c: {"__type": "AddedToken", **_added(c)}  # noqa: E731
    config = {
        "add_prefix_space": False,
        "bos_token": typed(BOS),
        "do_lower_case": True,
        "eos_token": typed(EOS),
        "errors": "replace",
        "model_max_length": 77,
        "name_or_path": "openai/clip-vit-large-patch14",
        "pad_token": EOS,
        "special_tokens_map_file": "./special_tokens_map.json",
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": typed(EOS),
    }
    special = {"bos_token": _added(BOS), "eos_token": _added(EOS), "pad_token": EOS,
               "unk_token": _added(EOS)}
    return config, special


def sd2_config_files():
    """As sd15_config_files, but padding with "!" (id 0) as SD 2.x does
    (stabilityai/stable-diffusion-2-1 tokenizer/). The plain "!" string also
    becomes a special added token, so every "!" in a prompt is split out as id
    0 ("!" without "</w>") instead of going through BPE."""
    config, special = sd15_config_files()
    config = dict(config, pad_token="!", name_or_path="hf-models/clip-vit-large-patch14")
    special = dict(special, pad_token="!")
    return config, special


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def build_full_tokenizer(out_dir, gz_path=DEFAULT_GZ, style="sd15"):
    """The full 49408-token SD tokenizer folder (not committed: ~1.6 MB)."""
    write_vocab_merges(out_dir, read_clip_merges(gz_path))
    config, special = sd15_config_files() if style == "sd15" else sd2_config_files()
    write_json(os.path.join(out_dir, "tokenizer_config.json"), config)
    write_json(os.path.join(out_dir, "special_tokens_map.json"), special)


def build_tiny_tokenizer(out_dir, gz_path=DEFAULT_GZ, n_merges=N_TINY_MERGES):
    """Writes a tiny diffusers tokenizer folder to out_dir; returns the
    CLIPTokenizer loaded back from it (the same way pipelines load it).

    Files: vocab.json + merges.txt (CLIP format), tokenizer_config.json as
    transformers' save_pretrained writes it, special_tokens_map.json. v5's
    save_pretrained writes only tokenizer.json + tokenizer_config.json; we
    drop tokenizer.json so the folder has the layout of the SD tokenizer/
    folders on the Hub and transformers loads it from vocab.json/merges.txt,
    the files the C tokenizer reads.
    """
    from transformers import CLIPTokenizer

    os.makedirs(out_dir, exist_ok=True)
    write_vocab_merges(out_dir, read_clip_merges(gz_path, n_merges))
    tok = CLIPTokenizer(vocab_file=os.path.join(out_dir, "vocab.json"),
                        merges_file=os.path.join(out_dir, "merges.txt"), model_max_length=77)
    tok.save_pretrained(out_dir)
    os.remove(os.path.join(out_dir, "tokenizer.json"))
    # Machine-local keys save_pretrained records; they do not change loading.
    config_path = os.path.join(out_dir, "tokenizer_config.json")
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    for k in ("is_local", "local_files_only", "name_or_path"):
        config.pop(k, None)
    write_json(config_path, config)
    write_json(os.path.join(out_dir, "special_tokens_map.json"),
               {"bos_token": BOS, "eos_token": EOS, "pad_token": EOS, "unk_token": EOS})
    return CLIPTokenizer.from_pretrained(out_dir)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: tiny_tokenizer.py OUT_DIR")
    t = build_tiny_tokenizer(sys.argv[1])
    print(f"{sys.argv[1]}: {len(t)} tokens")
