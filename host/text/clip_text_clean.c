// Text cleaning of transformers v5's CLIPTokenizer: strict UTF-8 input, then
// its `tokenizers` normalizer
//   Sequence([NFC(), Replace(Regex(r"\s+"), " "), Lowercase()])
// (transformers 5.23 models/clip/tokenization_clip.py), done with ICU.
//
// ftfy / html: the slow (v4) CLIPTokenizer ran ftfy.fix_text when ftfy was
// installed, then html.unescape twice, whitespace_clean and lower(); v5's
// CLIPTokenizer does none of ftfy's fixes (mojibake, HTML entities, curly
// quotes, width, control characters, ...) and does not unescape HTML:
// "&amp;" stays five characters (tests/data/tokenizer/golden.json has the
// cases). The only Unicode repair left is NFC, below.
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/uset.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>

#include "text/clip_internal.h"

// Strict UTF-8 (RFC 3629), the set of strings a Python str can be encoded
// from: no overlong forms, no surrogates (U+D800..DFFF), nothing above
// U+10FFFF, no truncated sequences or stray continuation bytes.
enum hsd_status clip_utf8_validate(const char *str, size_t len) {
    const uint8_t *s = (const uint8_t *)str;
    size_t i = 0;
    while (i < len) {
        uint8_t b = s[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
        if (b >= 0x80 && b <= 0xBF)
            return hsd_fail(HSD_ERR_INVALID_ARG,
                            "text: invalid UTF-8 at byte offset %zu: continuation byte 0x%02x "
                            "without a lead byte", i, b);
        if (b == 0xC0 || b == 0xC1)
            return hsd_fail(HSD_ERR_INVALID_ARG,
                            "text: invalid UTF-8 at byte offset %zu: overlong encoding "
                            "(lead byte 0x%02x)", i, b);
        if (b >= 0xF5)
            return hsd_fail(HSD_ERR_INVALID_ARG,
                            "text: invalid UTF-8 at byte offset %zu: byte 0x%02x never appears "
                            "in UTF-8%s", i, b, b < 0xF8 ? " (code point above U+10FFFF)" : "");
        if (b < 0xE0) {
            n = 2;
        } else if (b < 0xF0) {
            n = 3;
            if (b == 0xE0) lo = 0xA0;  // E0 80..9F would be overlong
            if (b == 0xED) hi = 0x9F;  // ED A0..BF are the UTF-16 surrogates
        } else {
            n = 4;
            if (b == 0xF0) lo = 0x90;  // F0 80..8F would be overlong
            if (b == 0xF4) hi = 0x8F;  // F4 90.. is above U+10FFFF
        }
        for (size_t k = 1; k < n; k++) {
            if (i + k >= len)
                return hsd_fail(HSD_ERR_INVALID_ARG,
                                "text: invalid UTF-8 at byte offset %zu: truncated %zu-byte "
                                "sequence at the end of the text", i, n);
            uint8_t c = s[i + k];
            uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
            if (c < l || c > h) {
                const char *rule = "expected a continuation byte";
                if (c >= 0x80 && c <= 0xBF && k == 1) {
                    if (b == 0xED) rule = "UTF-16 surrogate code point";
                    else if (b == 0xF4) rule = "code point above U+10FFFF";
                    else rule = "overlong encoding";
                }
                return hsd_fail(HSD_ERR_INVALID_ARG,
                                "text: invalid UTF-8 at byte offset %zu: %s (byte 0x%02x at "
                                "offset %zu)", i, rule, c, i + k);
            }
        }
        i += n;
    }
    return HSD_OK;
}

struct outbuf {
    char *p;
    size_t n, cap;
};

static int out_cp(struct outbuf *o, UChar32 c) {
    if (o->n + 5 > o->cap) {
        size_t cap = o->cap * 2 + 16;
        char *p = realloc(o->p, cap);
        if (!p) return -1;
        o->p = p;
        o->cap = cap;
    }
    uint8_t *d = (uint8_t *)o->p + o->n;
    if (c < 0x80) {
        d[0] = (uint8_t)c;
        o->n += 1;
    } else if (c < 0x800) {
        d[0] = (uint8_t)(0xC0 | (c >> 6));
        d[1] = (uint8_t)(0x80 | (c & 0x3F));
        o->n += 2;
    } else if (c < 0x10000) {
        d[0] = (uint8_t)(0xE0 | (c >> 12));
        d[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        d[2] = (uint8_t)(0x80 | (c & 0x3F));
        o->n += 3;
    } else {
        d[0] = (uint8_t)(0xF0 | (c >> 18));
        d[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
        d[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        d[3] = (uint8_t)(0x80 | (c & 0x3F));
        o->n += 4;
    }
    return 0;
}

// Lowercase of one code point, appended to o. tokenizers' Lowercase maps each
// char with Rust's char::to_lowercase: the full, context-free mapping
// (U+0130 "İ" -> "i" U+0307) with no Final_Sigma rule ("ΣΑΣ" -> "σασ").
// ICU's u_strToLower on the lone code point gives exactly that: with nothing
// around it, no context-dependent rule of SpecialCasing.txt applies, and the
// root locale ("") applies no Turkish/Lithuanian tailoring.
static int out_lower(struct outbuf *o, UChar32 c) {
    if (c < 0x80) return out_cp(o, c >= 'A' && c <= 'Z' ? c + 32 : c);
    UChar src[2], dst[8];
    int32_t ns = 0, nd;
    U16_APPEND_UNSAFE(src, ns, c);
    UErrorCode err = U_ZERO_ERROR;
    nd = u_strToLower(dst, 8, src, ns, "", &err);
    if (U_FAILURE(err) || nd > 8) return out_cp(o, c);  // cannot happen: <= 3 code points
    for (int32_t i = 0; i < nd;) {
        UChar32 d;
        U16_NEXT_UNSAFE(dst, i, d);
        if (out_cp(o, d)) return -1;
    }
    return 0;
}

// tokenizers' NFC normalizer (crate unicode-normalization-alignments) has
// the Unicode 9.0 data: a combining mark added later (U+0D3B, U+08D3,
// U+089A, ... 99 of them up to Unicode 14) is to it an unknown character,
// a starter that is neither reordered nor composed. ICU's normalizer
// filtered to [:age=9.0:] (characters assigned by Unicode 9.0; the rest are
// copied and bound the normalized spans) does exactly that; ICU uses the
// same construction for IDNA's Unicode 3.2 NFC. Measured on every code
// point, alone and around combining marks (4.4M strings through the whole
// normalizer): with the filter the only differences from tokenizers are 50
// code points that ICU 72 (Unicode 15.0) does not have yet, Unicode 16 case
// pairs such as U+1C89 (Rust's to_lowercase knows them); without it, 99
// marks of Unicode 10..14 differed too. golden.json has such cases.
// Built once per process; ICU objects are immutable and thread-safe.
static pthread_once_t g_nfc9_once = PTHREAD_ONCE_INIT;
static UNormalizer2 *g_nfc9;
static UErrorCode g_nfc9_err = U_ZERO_ERROR;

static void nfc9_init(void) {
    static const UChar pattern[] = u"[:age=9.0:]";
    UErrorCode err = U_ZERO_ERROR;
    const UNormalizer2 *nfc = unorm2_getNFCInstance(&err);
    USet *set = U_SUCCESS(err) ? uset_openPattern(pattern, -1, &err) : NULL;
    if (U_SUCCESS(err)) {
        uset_freeze(set);
        g_nfc9 = unorm2_openFiltered(nfc, set, &err);  // keeps `set` (never freed)
    }
    if (U_FAILURE(err)) {
        g_nfc9_err = err;
        g_nfc9 = NULL;
        if (set) uset_close(set);
    }
}

static const UNormalizer2 *nfc9(void) {
    pthread_once(&g_nfc9_once, nfc9_init);
    return g_nfc9;
}

enum hsd_status clip_normalize(const char *s, size_t len, char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (len > (size_t)INT32_MAX / 4)
        return hsd_fail(HSD_ERR_INVALID_ARG, "text: %zu bytes is too long to tokenize", len);
    enum hsd_status st = HSD_OK;
    UChar *u = NULL, *nfc = NULL;
    struct outbuf o = {0};
    UErrorCode err = U_ZERO_ERROR;
    int32_t nu = 0, nn;

    // UTF-8 -> UTF-16 (at most one unit per byte); the input is valid.
    u = malloc(((size_t)len + 1) * sizeof *u);
    if (!u) goto nomem;
    u_strFromUTF8(u, (int32_t)len + 1, &nu, s, (int32_t)len, &err);
    if (U_FAILURE(err)) goto icu;

    // NFC as tokenizers does it (see nfc9 above). Expansion is bounded by
    // 3x (UAX #15: NFC at most triples the length).
    const UNormalizer2 *n2 = nfc9();
    if (!n2) {
        err = g_nfc9_err;
        goto icu;
    }
    int32_t cap = 3 * nu + 1;
    nfc = malloc((size_t)cap * sizeof *nfc);
    if (!nfc) goto nomem;
    nn = unorm2_normalize(n2, u, nu, nfc, cap, &err);
    if (U_FAILURE(err)) goto icu;

    // \s+ -> " ": the Replace normalizer's regex is Oniguruma's \s, which in
    // a Unicode encoding is the White_Space property (U+0085 and U+00A0
    // included, U+200B and U+180E not) = u_isUWhiteSpace. Then lowercase.
    o.cap = (size_t)nn * 3 + 16;
    o.p = malloc(o.cap);
    if (!o.p) goto nomem;
    for (int32_t i = 0; i < nn;) {
        UChar32 c;
        U16_NEXT(nfc, i, nn, c);
        if (u_isUWhiteSpace(c)) {
            while (i < nn) {
                int32_t j = i;
                UChar32 d;
                U16_NEXT(nfc, j, nn, d);
                if (!u_isUWhiteSpace(d)) break;
                i = j;
            }
            if (out_cp(&o, ' ')) goto nomem;
        } else if (out_lower(&o, c)) {
            goto nomem;
        }
    }
    if (out_cp(&o, 0)) goto nomem;  // NUL terminator, not counted
    *out = o.p;
    *out_len = o.n - 1;
    o.p = NULL;
    goto done;
nomem:
    st = hsd_fail(HSD_ERR_NOMEM, "text: out of memory normalizing %zu bytes", len);
    goto done;
icu:
    st = hsd_fail(HSD_ERR_INTERNAL, "text: ICU normalization failed: %s", u_errorName(err));
done:
    free(u);
    free(nfc);
    free(o.p);
    return st;
}
