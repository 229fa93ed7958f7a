#!/usr/bin/env python3
"""Make the committed CLIP tokenizer goldens in tests/data/tokenizer/.

The oracle is transformers' CLIPTokenizer.from_pretrained(folder), called as
the SD pipelines call it: tokenizer(prompt, padding="max_length",
max_length=77, truncation=True).input_ids. The folders are built from the
original bpe_simple_vocab_16e6.txt.gz (tiny_tokenizer.py), so nothing is
downloaded. Writes

  golden.json        set "sd15": ~250 prompts with SD 1.x's tokenizer_config /
                     special_tokens_map (pad = EOS); set "sd2": a few prompts
                     with SD 2.x's (pad "!" = id 0). Each set carries its two
                     config files so the C test can rebuild the folder.
  tiny/              the tiny tokenizer folder (build_tiny_tokenizer)
  tiny_golden.json   ~50 prompts tokenized with tiny/

Each case: prompt, n (ids before padding, BOS and EOS included), ids (all
max_length of them); max_length is per case where it is not 77.
Usage:  python make_tokenizer_cases.py [--out tests/data/tokenizer]
Deterministic: running it twice gives byte-identical files.

A larger differential check, not committed (50000 cases: ~25 MB):
  python make_tokenizer_cases.py --random 50000 --random-out /tmp/rnd.json
  build/tests/test_tokenizer /tmp/rnd.json
tokenizes seeded random strings (ASCII, specials, every character assigned
in Python's Unicode, long ones past 77 tokens) with the SD 1.x tokenizer.
"""

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tiny_tokenizer as tt  # noqa: E402

REPO = tt.REPO
MAX_LEN = 77

LONG = ("masterpiece, best quality, ultra-detailed, 8k wallpaper, a beautiful portrait of a "
        "young woman with long flowing red hair standing in a field of sunflowers at golden "
        "hour, soft rim lighting, bokeh, shallow depth of field, 85mm lens, f/1.8, film grain, "
        "kodak portra 400, highly detailed skin texture, intricate embroidered dress, trending "
        "on artstation, by greg rutkowski and alphonse mucha")

PROMPTS = [
    # plain SD prompts
    "a photo of a cat",
    "A photograph of an astronaut riding a horse",
    "a painting of a fox sitting in a field at sunrise in the style of Claude Monet",
    "portrait of a cyberpunk samurai, neon lights, rain, 4k",
    "an oil painting of a lighthouse on a cliff, stormy sea",
    "studio ghibli style landscape with floating islands",
    "a red apple on a wooden table",
    "close-up of a dew drop on a leaf, macro photography",
    "isometric voxel art of a tiny island",
    "watercolor illustration of Paris in the rain",
    # mixed case
    "PhOtO oF a CaT",
    "NASA SpaceX iPhone McDonald's",
    "ALL CAPS PROMPT WITH SHOUTING",
    "camelCaseWordsAndPascalCase snake_case_words kebab-case-words",
    # empty and whitespace only
    "",
    " ",
    "   ",
    "\t",
    "\n",
    "\r\n",
    "  leading spaces",
    "trailing spaces   ",
    "many    inner     spaces",
    "tabs\tand\ttabs",
    "new\nlines\n\nand\r\ncarriage returns",
    "vertical\x0btab and form\x0cfeed",
    "mixed \t\n \r whitespace\t \n runs",
    # Unicode whitespace (White_Space property) and look-alikes that are not
    "no\u00a0break\u00a0space",
    "ogham\u1680space",
    "en\u2002em\u2003thin\u2009hair\u200aspaces",
    "line\u2028separator and paragraph\u2029separator",
    "narrow\u202fnbsp and math\u205fspace",
    "ideographic\u3000space",
    "next\u0085line",
    "mongolian\u180evowel separator",
    "zero\u200bwidth\u200bspace",
    "zero\u200cwidth\u200dnon joiner and joiner",
    "word\u2060joiner",
    "\ufeffbyte order mark",
    "soft\u00adhyphen",
    # control characters
    "nul\x00byte",
    "bell\x07 escape\x1b[31m red",
    "delete\x7f char",
    "c1 control\x90char",
    # contractions
    "don't stop",
    "it's a dog's life",
    "we're they've I'm you'll he'd",
    "DON'T IT'S WE'RE THEY'VE I'M YOU'LL HE'D",
    "'s 't 're 've 'm 'll 'd",
    "o'clock rock'n'roll ma'am y'all",
    "it\u2019s a curly apostrophe",
    "''quoted'' and 'single'",
    "!'s ?'t",
    "'\u017f long s after apostrophe",
    "'\u212a kelvin after apostrophe",
    "''s '''t",
    # punctuation runs
    "wow!!!",
    "what???",
    "wait...",
    "hello!? really?!",
    "(((masterpiece))), ((best quality)), (detailed:1.2)",
    "[cat:dog:0.5] {a|b|c}",
    "<lora:add_detail:0.8> a city",
    "a,b,c;d:e",
    "--ar 16:9 --v 5",
    "***stars*** ~~~waves~~~ ___under___",
    "#hashtag @mention $dollar %percent ^caret &and *star",
    "\"double quotes\" and `backticks`",
    "a/b\\c|d",
    "\u00bfQu\u00e9? \u00a1S\u00ed!",
    "\u2014em dash\u2013en dash\u2026ellipsis",
    "\u00ab guillemets \u00bb \u201cdouble\u201d \u2018single\u2019",
    # html entities (v5 does not unescape them)
    "fish &amp; chips",
    "it&#39;s",
    "&lt;b&gt;bold&lt;/b&gt;",
    "&quot;quoted&quot; &nbsp; &#x27; &copy;",
    "&amp;amp;",
    "<b>raw html</b> <br/>",
    # digits and numbers
    "1 2 3",
    "12345",
    "3.14159",
    "1,000,000 dollars",
    "8k 4k 1080p 16:9",
    "version 2.1.0-rc3",
    "2024-01-31T12:00:00Z",
    "\u0663\u0664\u0665 arabic-indic digits",
    "\u096b\u096c devanagari digits",
    "\uff13\uff14 fullwidth digits",
    "x\u00b2 + y\u00b3 superscripts",
    "\u00bd \u00bc \u00be fractions",
    "\u2460\u2461\u2462 circled",
    "\u216b \u2162 roman numerals",
    "0x1F 0b101 1e-9",
    # accents and combining marks
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9",
    "cafe\u0301 combining acute",
    "A\u030a angstrom via combining ring",
    "\u212b angstrom sign",
    "\u2126 ohm sign",
    "\u212a kelvin sign",
    "e\u0301\u0302\u0323 stacked marks",
    "\u0301 leading combining mark",
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dA\u036b\u0357\u0334\u0362\u0335\u031c\u0330\u0354L\u0368\u0367\u0369\u0358\u0320G\u0311\u0357\u030e\u0305\u035b\u0341\u0334\u033b\u0348\u034d\u0354\u0339O zalgo",
    "\u00c0\u00c9\u00ce\u00d5\u00dc \u00c7 \u00d1 uppercase accents",
    "\u0130stanbul \u0131s\u0131k",
    "STRASSE Stra\u00dfe \u1e9e",
    "\u03a3\u0399\u03a3\u03a5\u03a6\u039f\u03a3 \u03c3\u03af\u03c3\u03c5\u03c6\u03bf\u03c2 final sigma",
    "\u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3",
    "\u0394\u03b5\u03bb\u03c6\u03bf\u03af \u0391\u03b8\u03ae\u03bd\u03b1",
    "\u041c\u043e\u0441\u043a\u0432\u0430 \u041a\u0420\u0415\u041c\u041b\u042c",
    "\u0401\u0416\u0418\u041a \u0451\u0436\u0438\u043a",
    "\u0553\u0561\u0580\u056b\u0566 Armenian",
    "\u1c92\u1c94\u1c9d Georgian Mtavruli",
    "\u13a0\u13a1\u13a2 Cherokee",
    "\U00010400\U00010401 Deseret",
    "\uff21\uff22\uff23 fullwidth latin",
    "\ufb01ne \ufb02ow ligatures",
    "\u01c4 \u01c5 \u01c6 dz digraphs",
    "\u1e9b\u0323 long s dot",
    # marks newer than Unicode 9.0: tokenizers' NFC does not know them, so
    # they neither reorder nor let a mark behind them compose
    "g\u08d3\u0302 newer mark blocks composition",
    "x\u089a\u05bf newer mark not reordered",
    "\u0d15\u0d3b\u094d e\u1df8\u030c",
    "Vi\u1ec7t Nam ti\u1ebfng Vi\u1ec7t",
    "\u0141\u00f3d\u017a \u017b\u00f3\u0142w",
    # CJK, other scripts
    "\u4e00\u5e45\u5c71\u6c34\u753b",
    "\u6771\u4eac\u30bf\u30ef\u30fc\u306e\u591c\u666f",
    "\u3072\u3089\u304c\u306a \u30ab\u30bf\u30ab\u30ca \uff76\uff80\uff76\uff85",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
    "\u1100\u1161\u11a8 hangul jamo compose",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u05e9\u05b8\u05c1\u05dc\u05d5\u05b9\u05dd",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "\u1780\u1798\u17d2\u1796\u17bb\u1787\u17b6",
    "\u12a0\u121b\u122d\u129b",
    "\u2f00\u2f01 kangxi radicals",
    "\u3300 \u337f squared",
    "\U00020000\U0002a6d6 CJK ext B",
    "a cat \u732b and a dog \u72ac",
    # emoji
    "\U0001f600",
    "a cat \U0001f431 and a dog \U0001f436",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 family",
    "\U0001f44d\U0001f3fd thumbs up medium skin",
    "\U0001f1fa\U0001f1f8\U0001f1ef\U0001f1f5 flags",
    "\u2764\ufe0f red heart with VS16",
    "1\ufe0f\u20e3 keycap",
    "\U0001f3f3\ufe0f\u200d\U0001f308 rainbow flag",
    "\u2600\u2601\u2602\u2603 weather",
    "\U0001f525\U0001f525\U0001f525 fire fire fire",
    "emoji\U0001f680in\U0001f680words",
    # URLs and paths
    "https://example.com/path?query=1&x=y#frag",
    "http://www.Example.COM/index.html",
    "user.name+tag@example.co.uk",
    "C:\\Users\\me\\Pictures\\cat.png",
    "/usr/local/share/file.txt",
    "ftp://192.168.0.1:8080/",
    # special tokens in the text
    "<|startoftext|>",
    "<|endoftext|>",
    "<|STARTOFTEXT|> upper start",
    "<|ENDOFTEXT|> upper end",
    "<|startoftext|>a cat<|endoftext|>",
    "x<|endoftext|>y",
    "<|endoftext|><|endoftext|><|endoftext|>",
    "<|endoftext",
    "<|startoftext|",
    "<| endoftext |>",
    "a</w>b the literal end of word",
    "</w>",
    # words and odd lengths
    "a",
    "I",
    "!",
    "!!",
    "a!",
    "supercalifragilisticexpialidocious",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch",
    "thequickbrownfoxjumpsoverthelazydog" * 8,
    "z" * 300,
    "ab" * 150,
    # long prompts (> 77 tokens: truncated)
    LONG,
    LONG + ", " + LONG,
    " ".join(["cat"] * 80),
    " ".join(["cat"] * 75),
    " ".join(["cat"] * 76),
    " ".join(["cat"] * 74),
    ",".join(["a"] * 60),
    "1234567890" * 12,
    "!" * 200,
    "\U0001f600" * 40,
    "\u4e00\u4e8c\u4e09\u56db\u4e94\u516d\u4e03\u516b\u4e5d\u5341" * 4,
]

# Cases at other max lengths (truncation right at the boundary).
SHORT_MAX = [
    ("a photo of a cat", 2), ("a photo of a cat", 3), ("a photo of a cat", 7),
    ("a photo of a cat", 8), (LONG, 16), ("", 5), ("<|endoftext|> x y z", 4),
]

# Prompts for the SD 2.x set (pad "!" is a special token there).
SD2_PROMPTS = [
    "a photo of a cat", "hello!", "wow!!! what?!", "a!b !! x", "<|ENDOFTEXT|>",
    "<|endoftext|>", "!", "", LONG, "fish &amp; chips!",
]

POOLS = [
    (0x20, 0x7e), (0xa0, 0x17f), (0x180, 0x24f), (0x300, 0x36f), (0x370, 0x3ff),
    (0x400, 0x4ff), (0x590, 0x5ff), (0x600, 0x6ff), (0x900, 0x97f), (0xe00, 0xe7f),
    (0x1100, 0x11ff), (0x1e00, 0x1eff), (0x1f00, 0x1fff), (0x2000, 0x206f), (0x2100, 0x218f),
    (0x2460, 0x24ff), (0x3000, 0x30ff), (0x4e00, 0x4fff), (0xac00, 0xacff), (0xff00, 0xffef),
    (0x1f300, 0x1f6ff), (0x10400, 0x1044f),
]


def random_prompts(n, seed=1234):
    """Seeded random strings of assigned code points from mixed blocks:
    NFC composition, casing and the letter/number/other classes at random."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        s = []
        for _ in range(rng.randint(1, 24)):
            lo, hi = rng.choice(POOLS)
            c = rng.randint(lo, hi)
            if unicodedata.category(chr(c)) in ("Cn", "Cs", "Co"):
                continue
            s.append(chr(c))
            if rng.random() < 0.2:
                s.append(" ")
        out.append("".join(s))
    return out


def wide_random_prompts(n, seed):
    """For --random: strings over all assigned characters of Python's
    unicodedata plus ASCII, the special tokens and tricky characters."""
    rng = random.Random(seed)
    assigned = [c for c in range(0x80, 0x110000)
                if unicodedata.category(chr(c)) not in ("Cn", "Co", "Cs")]
    ascii_pool = [chr(c) for c in range(0x20, 0x7F)] + ["\t", "\n", " ", " ", "'"]
    tricky = ["<|endoftext|>", "<|startoftext|>", "<|ENDOFTEXT|>", "'s", "'LL", "\u0301",
              "\u0307", "\u03a3", "\u0130", "\u180e", "\u200b", "\u00a0", "\u3000", "\u0085"]
    out = []
    for _ in range(n):
        s = []
        k = rng.randint(0, 40) if rng.random() < 0.9 else rng.randint(100, 400)
        for _ in range(k):
            r = rng.random()
            s.append(rng.choice(ascii_pool) if r < 0.45 else
                     rng.choice(tricky) if r < 0.55 else chr(rng.choice(assigned)))
        out.append("".join(s))
    return out


def tokenize(tok, prompt, max_len=MAX_LEN):
    enc = tok(prompt, padding="max_length", max_length=max_len, truncation=True)
    ids = list(enc.input_ids)
    assert len(ids) == max_len, (prompt, len(ids))
    case = {"prompt": prompt, "n": int(sum(enc.attention_mask)), "ids": ids}
    if max_len != MAX_LEN:
        case["max_length"] = max_len
    return case


def dump(path, head, sets_or_cases):
    """JSON with one case per line: small diffs when a golden changes."""
    def case_line(c):
        return "    " + json.dumps(c, ensure_ascii=False, separators=(",", ":"))

    with open(path, "w", encoding="utf-8") as f:
        f.write("{\n")
        for k, v in head.items():
            f.write(f'  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False, sort_keys=True)},\n')
        if isinstance(sets_or_cases, dict):
            f.write('  "sets": {\n')
            names = list(sets_or_cases)
            for i, name in enumerate(names):
                s = sets_or_cases[name]
                f.write(f'  {json.dumps(name)}: {{\n')
                for k in ("tokenizer_config", "special_tokens_map"):
                    f.write(f'   {json.dumps(k)}: {json.dumps(s[k], sort_keys=True)},\n')
                f.write('   "cases": [\n')
                f.write(",\n".join(case_line(c) for c in s["cases"]))
                f.write("\n   ]}" + ("," if i + 1 < len(names) else "") + "\n")
            f.write("  }\n}\n")
        else:
            f.write('  "cases": [\n')
            f.write(",\n".join(case_line(c) for c in sets_or_cases))
            f.write("\n  ]\n}\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "data", "tokenizer"))
    ap.add_argument("--gz", default=tt.DEFAULT_GZ)
    ap.add_argument("--random", type=int, default=0, metavar="N",
                    help="also write N random cases to --random-out (not committed)")
    ap.add_argument("--random-out", default=None)
    ap.add_argument("--seed", type=int, default=99)
    args = ap.parse_args()
    if args.random and not args.random_out:
        ap.error("--random needs --random-out")

    import transformers
    from transformers import CLIPTokenizer
    transformers.logging.set_verbosity_error()  # "__type" kwarg notices

    prompts = PROMPTS + random_prompts(60)
    assert len(prompts) == len(set(prompts)), "duplicate prompts"
    os.makedirs(args.out, exist_ok=True)
    sets = {}
    with tempfile.TemporaryDirectory() as tmp:
        for style, plist, extra in (("sd15", prompts, SHORT_MAX), ("sd2", SD2_PROMPTS, [])):
            folder = os.path.join(tmp, style)
            tt.build_full_tokenizer(folder, args.gz, style)
            tok = CLIPTokenizer.from_pretrained(folder)
            config, special = (tt.sd15_config_files() if style == "sd15"
                               else tt.sd2_config_files())
            cases = [tokenize(tok, p) for p in plist] + [tokenize(tok, p, m) for p, m in extra]
            sets[style] = {"tokenizer_config": config, "special_tokens_map": special,
                           "cases": cases}
            if style == "sd15" and args.random:
                rnd = [tokenize(tok, p) for p in wide_random_prompts(args.random, args.seed)]
                dump(args.random_out, {"about": "random, seed %d" % args.seed}, rnd)
                print(f"{args.random_out}: {len(rnd)} random cases")
    head = {"about": "transformers " + transformers.__version__ + " CLIPTokenizer.from_pretrained"
            "(folder built from bpe_simple_vocab_16e6.txt.gz + the set's config files); "
            "tokenizer(prompt, padding='max_length', max_length=77, truncation=True)",
            "max_length": MAX_LEN}
    dump(os.path.join(args.out, "golden.json"), head, sets)

    tiny_dir = os.path.join(args.out, "tiny")
    shutil.rmtree(tiny_dir, ignore_errors=True)
    tiny = tt.build_tiny_tokenizer(tiny_dir, args.gz)
    tiny_prompts = prompts[::5][:50]
    head = {"about": "transformers " + transformers.__version__
            + " CLIPTokenizer.from_pretrained('tokenizer/tiny') (tiny_tokenizer.py: first "
            + str(tt.N_TINY_MERGES) + " merges of the real BPE)",
            "folder": "tiny", "max_length": MAX_LEN}
    dump(os.path.join(args.out, "tiny_golden.json"), head,
         [tokenize(tiny, p) for p in tiny_prompts])
    n = sum(len(s["cases"]) for s in sets.values())
    print(f"{args.out}: {n} golden cases, {len(tiny_prompts)} tiny cases")


if __name__ == "__main__":
    main()
