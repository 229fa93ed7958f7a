"""A1111-style long prompts and emphasis (`hsd --prompt-style a1111`): goldens.

    python tests/oracle/make_prompt_cases.py [--out tests/data/prompt]

A reference written from AUTOMATIC1111's documented rules, not from its code:
the wiki page "Features", sections "Attention/emphasis", "Infinite prompt
length" and "BREAK keyword", plus the settings page's "Prompt word wrap
length limit" (comma_padding_backtrack, default 20) and "Emphasis mode:
Original". The rules implemented here (host/text/prompt_emphasis.h and
prompt_chunks.h say the same for the C side):

  1. (text) multiplies attention by 1.1, [text] divides it by 1.1,
     (text:w) multiplies by w; nesting multiplies; brackets still open at the
     end apply to the rest; a closer without an opener is literal text.
  2. \\( \\) \\[ \\] \\\\ are the literal characters; a lone backslash vanishes.
  3. ':' inside round brackets followed by digits/sign/dots/spaces up to ')'
     is a weight and must be one number (A1111 raises ValueError on e.g.
     "1.2.3"; we report an error for those and for "(a:)" / "(a:1 2)").
     Any other ':' is text.
  4. BREAK (uppercase, own word, surrounding whitespace dropped) ends the chunk.
  5. Neighbouring pieces of equal weight are joined before tokenizing; each
     piece is tokenized on its own (no BOS/EOS, no truncation).
  6. Chunks of 75 tokens: a full chunk is closed when the next token comes;
     if its last comma is at most 20 tokens back, it is cut after the comma
     and the tail moves to the next chunk. Each chunk is BOS + tokens + EOS +
     the tokenizer's pad id to 77; BOS/EOS/pad weigh 1. Empty prompt: one chunk.
  7. Each chunk is encoded alone (last hidden state); then, per chunk,
     z' = z * w (per token), z' *= mean(z) / mean(z') ("Original" emphasis:
     mean-preserving), and the chunks are concatenated (77 x chunks tokens).
  8. Prompt and negative prompt are padded to the same number of chunks with
     the encoding of the empty prompt.

The model is the committed tiny pipeline tests/data/pipeline/large. Writes
<out>/cases.json (prompts, expected pieces, chunk counts, error cases, the
pipeline request) and <out>/goldens.safetensors: per case `<name>.ids` [n,77]
int32, `<name>.weights` [n,77], `<name>.emb` [n*77, C]; and for the pipeline
case `long200.latent`, `long200.rgb` (diffusers StableDiffusionPipeline fed
the reference's prompt_embeds / negative_prompt_embeds).
"""

import argparse
import json
import os
import re

os.environ["ATEN_CPU_CAPABILITY"] = "avx2"
os.environ["MKL_ENABLE_INSTRUCTIONS"] = "AVX2"

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")
MODEL = os.path.join(DATA, "pipeline", "large")

WS = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
CHUNK = 75
BACKTRACK = 20


class WeightError(ValueError):
    pass


def split_break(text):
    """Rule 4: pieces between BREAK words (whitespace around BREAK dropped)."""
    out, start = [], 0
    for m in re.finditer(r"BREAK", text):
        a, b = m.start(), m.end()
        word = lambda c: c == "_" or c.isalnum() or ord(c) >= 0x80  # noqa: E731
        if (a > 0 and word(text[a - 1])) or (b < len(text) and word(text[b])):
            continue
        if a < start:
            continue
        a2, b2 = a, b
        while a2 > start and text[a2 - 1] in WS:
            a2 -= 1
        while b2 < len(text) and text[b2] in WS:
            b2 += 1
        out.append(text[start:a2])
        out.append(None)  # the BREAK marker
        start = b2
    out.append(text[start:])
    return out


def parse(prompt):
    """Rules 1-5: [(text, weight, is_break)]."""
    pieces = []  # [text, weight, kind]
    opens = {"(": [], "[": []}

    def scale(start, m):
        for p in pieces[start:]:
            p[1] *= m

    def text(s):
        for part in split_break(s):
            pieces.append(["BREAK", -1.0, "break"] if part is None else [part, 1.0, "text"])

    i = 0
    while i < len(prompt):
        c = prompt[i]
        if c == "\\":
            nxt = prompt[i + 1] if i + 1 < len(prompt) else ""
            lit = nxt if nxt and nxt in "()[]\\" else ""
            pieces.append([lit, 1.0, "text"])
            i += 1 + len(lit)
        elif c in "([":
            opens[c].append(len(pieces))
            i += 1
        elif c == ":" and opens["("]:
            j = i + 1
            while j < len(prompt) and (prompt[j] in WS or prompt[j] in "+-.0123456789"):
                j += 1
            if j < len(prompt) and prompt[j] == ")":
                body = prompt[i + 1:j].strip(WS)
                if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)", body):
                    raise WeightError(f"malformed weight {prompt[i + 1:j]!r} at {i + 1}")
                scale(opens["("].pop(), float(body))
                i = j + 1
            else:
                text(":")
                i += 1
        elif c == ")" and opens["("]:
            scale(opens["("].pop(), 1.1)
            i += 1
        elif c == "]" and opens["["]:
            scale(opens["["].pop(), 1 / 1.1)
            i += 1
        elif c in ":)]":
            text(c)
            i += 1
        else:
            j = i
            while j < len(prompt) and prompt[j] not in "\\()[]:":
                j += 1
            text(prompt[i:j])
            i = j
    for p in opens["("]:
        scale(p, 1.1)
    for p in opens["["]:
        scale(p, 1 / 1.1)
    if not pieces:
        pieces = [["", 1.0, "text"]]
    merged = [pieces[0]]
    for p in pieces[1:]:
        if p[1] == merged[-1][1]:
            merged[-1] = [merged[-1][0] + p[0], p[1], "text"]
        else:
            merged.append(p)
    # A marker is a BREAK only while its weight is untouched (a bracket
    # around it turns it into the text "BREAK").
    return [(t, w, t == "BREAK" and w == -1.0) for t, w, _ in merged]


def chunks(tok, prompt):
    """Rule 6: ids [n, 77], weights [n, 77]."""
    comma = tok.convert_tokens_to_ids(",</w>")
    out_ids, out_w = [], []
    cur, curw, last_comma = [], [], -1

    def close():
        nonlocal cur, curw, last_comma
        n = len(cur)
        out_ids.append([tok.bos_token_id] + cur + [tok.eos_token_id] +
                       [tok.pad_token_id] * (CHUNK - n))
        out_w.append([1.0] + curw + [1.0] * (CHUNK - n + 1))
        cur, curw, last_comma = [], [], -1

    for text, w, brk in parse(prompt):
        if brk:
            close()
            continue
        for t in tok(text, add_special_tokens=False, truncation=False)["input_ids"]:
            if t == comma:
                last_comma = len(cur)
            elif len(cur) == CHUNK and last_comma != -1 and len(cur) - last_comma <= BACKTRACK:
                keep = last_comma + 1
                tail, tailw = cur[keep:], curw[keep:]
                cur, curw = cur[:keep], curw[:keep]
                close()
                cur, curw = tail, tailw
            if len(cur) == CHUNK:
                close()
            cur.append(t)
            curw.append(w)
    if cur or not out_ids:
        close()
    return (np.array(out_ids, dtype=np.int32), np.array(out_w, dtype=np.float32))


def encode(text_model, ids, weights):
    """Rule 7: [n*77, C]."""
    with torch.no_grad():
        z = text_model(torch.from_numpy(ids).long())[0]  # [n, 77, C]
    w = torch.from_numpy(weights)[..., None]
    out = []
    for k in range(z.shape[0]):
        zk = z[k]
        zw = zk * w[k]
        out.append(zw * (zk.mean() / zw.mean()))
    return torch.cat(out)


def words(n, w="a"):
    return " ".join([w] * n)


PARSE = [
    "a cat", "(a cat)", "((a cat))", "[a cat]", "[[a cat]]", "(a cat:1.5)", "(a (cat:0.5) x)",
    "(a [cat] dog)", "\\(a cat\\)", "a \\[b\\] c", "a\\\\b", "a\\b", "(a cat", "a cat)",
    "a] b", "(style: oil) cat", "(a:-0.5) b", "(a: 1.25 ) b", "(a:.5)(b:2.)", "(a)(b)",
    "a BREAK b", "aBREAK b", "(a BREAK b)", "BREAK", "a : b", "a:1.2) b", "", "[(a:1.3)]",
    "((a:1.2), b:0.8)",
]
ERRORS = ["(a:1.2.3)", "(a:)", "(a:1 2)", "((a:+))", "(a:.)", "(a:--1)"]

CHUNKS = {
    "t74": words(74), "t75": words(75), "t76": words(76), "t150": words(150),
    "t151": words(151),
    # comma 5 tokens before the end of chunk 1: cut after it
    "comma_near": words(69) + " , " + words(10, "b"),
    # comma 40 tokens back: no cut
    "comma_far": words(35) + " , " + words(50, "b"),
    "break": "a red BREAK (the:1.3) b",
    "emph_across": words(70) + " (" + words(10, "b") + ":1.4) [" + words(5) + "]",
    "empty": "",
    "escapes": "\\(a\\) [b] ((red)) c",
}

LONG_PROMPT = ", ".join(["(a red:1.2) the b", "[of the] a", "and (red (b))"] * 15) + \
    ", the (red:0.7) end"
LONG_NEG = "(b:1.3), [the a]"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(DATA, "prompt"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    pipe = StableDiffusionPipeline.from_pretrained(MODEL, torch_dtype=torch.float32,
                                                   safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    tok, text_model = pipe.tokenizer, pipe.text_encoder.eval()
    tensors = {}
    cases = {"parse": [], "errors": ERRORS, "chunks": [], "pipeline": None}
    for p in PARSE:
        cases["parse"].append({"prompt": p, "pieces": [
            {"text": t, "weight": w, "break": b} for t, w, b in parse(p)]})
    for e in ERRORS:
        try:
            parse(e)
        except WeightError:
            continue
        raise SystemExit(f"error case {e!r} parsed")
    for name, p in CHUNKS.items():
        ids, w = chunks(tok, p)
        tensors[f"{name}.ids"] = torch.from_numpy(ids)
        tensors[f"{name}.weights"] = torch.from_numpy(w)
        tensors[f"{name}.emb"] = encode(text_model, ids, w).contiguous()
        cases["chunks"].append({"name": name, "prompt": p, "n_chunks": int(ids.shape[0])})
    # Rule 8 and the pipeline: diffusers with the reference's embeddings.
    ids, w = chunks(tok, LONG_PROMPT)
    nids, nw = chunks(tok, LONG_NEG)
    assert ids.shape[0] == 3, ids.shape  # a 200-odd token prompt: three chunks
    cond = encode(text_model, ids, w)
    uncond = encode(text_model, nids, nw)
    empty = encode(text_model, *chunks(tok, ""))
    while uncond.shape[0] < cond.shape[0]:
        uncond = torch.cat([uncond, empty])
    req = dict(name="long200", sampler="euler", steps=5, cfg=7.5, seed=3, width=64, height=64,
               prompt=LONG_PROMPT, negative=LONG_NEG, n_tokens=int(sum(
                   len(tok(t, add_special_tokens=False)["input_ids"])
                   for t, _, b in parse(LONG_PROMPT) if not b)))
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    with torch.no_grad():
        latents = pipe(prompt_embeds=cond[None], negative_prompt_embeds=uncond[None],
                       num_inference_steps=req["steps"], guidance_scale=req["cfg"],
                       height=req["height"], width=req["width"],
                       generator=torch.Generator().manual_seed(req["seed"]),
                       output_type="latent").images
        image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    rgb = ((image / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
    tensors["long200.latent"] = latents.contiguous()
    tensors["long200.rgb"] = rgb.permute(0, 2, 3, 1).contiguous()
    cases["pipeline"] = req
    with open(os.path.join(args.out, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1, ensure_ascii=False)
        f.write("\n")
    save_file(tensors, os.path.join(args.out, "goldens.safetensors"))
    print(f"wrote {len(tensors)} tensors, {len(PARSE)} parse cases, {len(CHUNKS)} chunk cases, "
          f"long prompt of {req['n_tokens']} tokens in {ids.shape[0]} chunks")


if __name__ == "__main__":
    main()
