// Pre-tokenizer of transformers v5's CLIPTokenizer, with PCRE2 (UTF + UCP):
//   Sequence([Split(Regex(CLIP_PATTERN), behavior="removed", invert=True),
//             ByteLevel(add_prefix_space=False, use_regex=True)])
// Split keeps only the matches of the CLIP pattern (openai/CLIP
// simple_tokenizer.py's `pat`); ByteLevel then splits each of them again
// with GPT-2's pattern before mapping bytes to characters. That second split
// only matters for "<|startoftext|>" / "<|endoftext|>" written in another
// case: lowercased they match the CLIP pattern as one piece, which GPT-2's
// pattern cuts into "<|", "endoftext", "|>" (the slow tokenizer looked the
// whole piece up in its cache and gave the special id).
//
// No caseless matching: the regexes of `tokenizers` are case-sensitive and
// the text is already lowercased. (simple_tokenizer.py compiles `pat` with
// re.IGNORECASE, which would let "'s" match "'ſ" (U+017F folds to "s") —
// golden.json has that case.)
//
// Unicode versions: tokenizers' regex knows Unicode 16 letters and digits,
// PCRE2 10.42 (Debian 12) Unicode 14. On all 1.1M code points the \p{L} /
// \p{N} classes differ for 9392, all unassigned in Unicode 14 (CJK
// extension H, Kawi, Garay, ...): a prompt made of such characters may be
// split differently. 50000 random prompts of assigned characters gave no
// difference (make_tokenizer_cases.py --random, then test_tokenizer FILE).
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "text/clip_internal.h"

// \s is written out as the White_Space property (Unicode PropList.txt,
// stable since U+180E left it in 6.3), which is what Oniguruma's \s means
// in tokenizers' regexes; PCRE2's \s also matches U+180E (golden.json:
// "mongolian\u180evowel separator"). Normalization has folded every
// White_Space run to " ", so what matters here is the characters the two
// engines disagree on, like U+180E, which must stay text.
#define WS                                                                   \
    "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}" \
    "\\x{202F}\\x{205F}\\x{3000}"
static const char k_clip_pattern[] =
    "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|"
    "[^" WS "\\p{L}\\p{N}]+";
// tokenizers pre_tokenizers/byte_level.rs
static const char k_gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS
    "])|[" WS "]+";

static enum hsd_status compile(void **out, const char *pattern, const char *name) {
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return hsd_fail(HSD_ERR_INTERNAL, "clip tokenizer: %s regex at offset %zu: %s", name,
                        (size_t)off, (const char *)msg);
    }
    *out = re;
    return HSD_OK;
}

enum hsd_status clip_pretok_init(struct clip_pretok *p) {
    p->split = p->bytelevel = NULL;
    enum hsd_status s = compile(&p->split, k_clip_pattern, "CLIP pre-tokenizer");
    if (!s) s = compile(&p->bytelevel, k_gpt2_pattern, "ByteLevel");
    if (s) clip_pretok_free(p);
    return s;
}

void clip_pretok_free(struct clip_pretok *p) {
    pcre2_code_free(p->split);
    pcre2_code_free(p->bytelevel);
    p->split = p->bytelevel = NULL;
}

// BPE-encodes every match of `re` in s[0..len). Level 0 is the CLIP pattern:
// the text between matches is dropped (Split, invert=True, "removed").
// Level 1 is ByteLevel's GPT-2 pattern, whose alternatives match every
// character, so nothing is dropped there. Stops at the first error or once
// the output holds `limit` ids.
struct walk {
    const struct hsd_clip_tokenizer *t;
    struct clip_ids *out;
    size_t limit;
};

static enum hsd_status each_match(const pcre2_code *re, pcre2_match_data *md, const char *s,
                                  size_t len, struct walk *w, int level);

static enum hsd_status on_piece(const char *s, size_t len, struct walk *w, int level,
                                pcre2_match_data *md) {
    if (level == 0) return each_match(w->t->pretok.bytelevel, md, s, len, w, 1);
    return clip_bpe_word(w->t, (const uint8_t *)s, len, w->out);
}

static enum hsd_status each_match(const pcre2_code *re, pcre2_match_data *md, const char *s,
                                  size_t len, struct walk *w, int level) {
    size_t at = 0;
    while (at < len && w->out->n < w->limit) {
        // The text is valid UTF-8 (checked on entry, then produced by ICU).
        int rc = pcre2_match(re, (PCRE2_SPTR)s, len, at, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return hsd_fail(HSD_ERR_INTERNAL,
                            "clip tokenizer: regex match failed at byte %zu: %s", at,
                            (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t b = ov[0], e = ov[1];
        if (e == b) {  // no alternative can match empty; guard anyway
            at = b + 1;
            while (at < len && ((uint8_t)s[at] & 0xC0) == 0x80) at++;
            continue;
        }
        // The match data is reused by the inner level: keep e first.
        enum hsd_status st = on_piece(s + b, e - b, w, level, md);
        if (st) return st;
        at = e;
    }
    return HSD_OK;
}

enum hsd_status clip_pretok_encode(const struct hsd_clip_tokenizer *t, const char *s, size_t len,
                                   struct clip_ids *out, size_t limit) {
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    if (!md) return hsd_fail(HSD_ERR_NOMEM, "clip tokenizer: out of memory (regex match data)");
    struct walk w = {t, out, limit};
    enum hsd_status st = each_match(t->pretok.split, md, s, len, &w, 0);
    pcre2_match_data_free(md);
    return st;
}
