// Reading the CLIP vocab and merges: a tokenizer folder (vocab.json +
// merges.txt, as `tokenizers` BPE::read_file reads them) or OpenAI's
// bpe_simple_vocab_16e6.txt.gz (as clip/simple_tokenizer.py builds it).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <zlib.h>

#include "text/clip_internal.h"

// CLIP's BPE: simple_tokenizer.py keeps merges[1 : 49152-256-2+1] of the
// .gz lines (line 0 is a header), 48894 merges; with 2 x 256 byte tokens and
// the 2 specials that is the 49408-token vocab.
#define CLIP_GZ_MERGES (49152 - 256 - 2)

static enum hsd_status read_file(const char *path, char **out, size_t *len) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return hsd_fail(errno == ENOENT ? HSD_ERR_NOT_FOUND : HSD_ERR_IO, "%s: cannot open: %s",
                        path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *b = realloc(buf, 2 * cap + 1);
        if (!b) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = b;
        cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf) return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory reading it", path);
    if (err) {
        free(buf);
        return hsd_fail(HSD_ERR_IO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return HSD_OK;
}

static enum hsd_status read_gz(const char *path, char **out, size_t *len) {
    *out = NULL;
    FILE *probe = fopen(path, "rb");
    if (!probe)
        return hsd_fail(errno == ENOENT ? HSD_ERR_NOT_FOUND : HSD_ERR_IO, "%s: cannot open: %s",
                        path, strerror(errno));
    fclose(probe);
    gzFile gz = gzopen(path, "rb");
    if (!gz) return hsd_fail(HSD_ERR_IO, "%s: cannot open as gzip", path);
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap + 1);
    int got = 0;
    while (buf) {
        unsigned want = (unsigned)(cap - n < (1u << 30) ? cap - n : (1u << 30));
        got = gzread(gz, buf + n, want);
        if (got <= 0) break;
        n += (size_t)got;
        if (n == cap) {
            char *b = realloc(buf, 2 * cap + 1);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
    }
    int zerr = Z_OK;
    const char *zmsg = gzerror(gz, &zerr);
    enum hsd_status st = HSD_OK;
    if (!buf) st = hsd_fail(HSD_ERR_NOMEM, "%s: out of memory decompressing it", path);
    else if (got < 0 || (zerr != Z_OK && zerr != Z_STREAM_END))
        st = hsd_fail(HSD_ERR_FORMAT, "%s: gzip error after %zu bytes: %s", path, n, zmsg);
    gzclose(gz);
    if (st) {
        free(buf);
        return st;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return HSD_OK;
}

// One merge "a b" -> the merge table, as tokenizers' BPE builder does: both
// parts and their concatenation must be vocab tokens.
static enum hsd_status add_merge(struct hsd_clip_tokenizer *t, const char *a, size_t na,
                                 const char *b, size_t nb, const char *path, size_t line) {
    char stack[256];
    char *ab = na + nb <= sizeof stack ? stack : malloc(na + nb);
    if (!ab) return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", path);
    memcpy(ab, a, na);
    memcpy(ab + na, b, nb);
    int32_t ia = clip_vocab_get(&t->vocab, a, na), ib = clip_vocab_get(&t->vocab, b, nb);
    int32_t iab = clip_vocab_get(&t->vocab, ab, na + nb);
    if (ab != stack) free(ab);
    if (ia < 0 || ib < 0)
        return hsd_fail(HSD_ERR_FORMAT, "%s:%zu: merge token \"%.*s\" is not in the vocab", path,
                        line, ia < 0 ? (int)na : (int)nb, ia < 0 ? a : b);
    if (iab < 0)
        return hsd_fail(HSD_ERR_FORMAT, "%s:%zu: merged token \"%.*s%.*s\" is not in the vocab",
                        path, line, (int)na, a, (int)nb, b);
    return clip_merges_add(&t->merges, ia, ib, iab);
}

// Splits "a b" at the single space (tokenizers: line.split(' ') must give 2
// parts).
static enum hsd_status parse_merge(struct hsd_clip_tokenizer *t, const char *s, size_t n,
                                   const char *path, size_t line) {
    const char *sp = memchr(s, ' ', n);
    if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - s)))
        return hsd_fail(HSD_ERR_FORMAT, "%s:%zu: a merge is two tokens separated by one space, "
                        "got \"%.*s\"", path, line, (int)(n > 80 ? 80 : n), s);
    return add_merge(t, s, (size_t)(sp - s), sp + 1, n - (size_t)(sp + 1 - s), path, line);
}

enum hsd_status clip_load_gz(struct hsd_clip_tokenizer *t, const char *path) {
    char *text;
    size_t len = 0;
    enum hsd_status st = read_gz(path, &text, &len);
    if (st) return st;
    st = clip_utf8_validate(text, len);  // simple_tokenizer.py: .decode("utf-8")
    if (st) {
        free(text);
        return hsd_fail_context(HSD_ERR_FORMAT, "%s: ", path);
    }
    // Lines 1..CLIP_GZ_MERGES, split on "\n" only (str.split('\n')).
    const char **lines = malloc((CLIP_GZ_MERGES + 1) * sizeof *lines);
    size_t *lens = malloc((CLIP_GZ_MERGES + 1) * sizeof *lens);
    size_t n_lines = 0;
    if (!lines || !lens) {
        st = hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (const char *p = text, *end = text + len; n_lines <= CLIP_GZ_MERGES;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        lines[n_lines] = p;
        lens[n_lines] = (size_t)((nl ? nl : end) - p);
        n_lines++;
        if (!nl) break;
        p = nl + 1;
    }
    if (n_lines <= CLIP_GZ_MERGES) {
        st = hsd_fail(HSD_ERR_FORMAT, "%s: %zu lines, CLIP's BPE needs a header line and %d "
                      "merges", path, n_lines, CLIP_GZ_MERGES);
        goto done;
    }
    // vocab = byte characters, the same + "</w>", one token per merge, then
    // <|startoftext|>, <|endoftext|>; a repeated token keeps its last id
    // (dict(zip(vocab, range(len(vocab))))).
    uint8_t order[256];
    clip_byte_order(order);
    int32_t id = 0;
    for (int eow = 0; eow < 2 && !st; eow++) {
        for (int i = 0; i < 256 && !st; i++) {
            char buf[8];
            int n = clip_byte_char(order[i], buf);
            if (eow) memcpy(buf + n, "</w>", 4);
            st = clip_vocab_put(&t->vocab, buf, (size_t)n + (eow ? 4 : 0), id++);
        }
    }
    for (size_t i = 1; i <= CLIP_GZ_MERGES && !st; i++) {
        // "a b" -> token "ab": the part before and after the space.
        const char *sp = memchr(lines[i], ' ', lens[i]);
        if (!sp || memchr(sp + 1, ' ', lens[i] - (size_t)(sp + 1 - lines[i])) || sp == lines[i] ||
            sp + 1 == lines[i] + lens[i]) {
            st = hsd_fail(HSD_ERR_FORMAT, "%s: line %zu: a merge is two tokens separated by one "
                          "space", path, i + 1);
            break;
        }
        size_t na = (size_t)(sp - lines[i]), nb = lens[i] - na - 1;
        char stack[256];
        char *ab = na + nb <= sizeof stack ? stack : malloc(na + nb);
        if (!ab) {
            st = hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        memcpy(ab, lines[i], na);
        memcpy(ab + na, sp + 1, nb);
        st = clip_vocab_put(&t->vocab, ab, na + nb, id++);
        if (ab != stack) free(ab);
    }
    if (!st) st = clip_vocab_put(&t->vocab, "<|startoftext|>", 15, id++);
    if (!st) st = clip_vocab_put(&t->vocab, "<|endoftext|>", 13, id++);
    if (!st) st = clip_merges_init(&t->merges, CLIP_GZ_MERGES);
    for (size_t i = 1; i <= CLIP_GZ_MERGES && !st; i++)
        st = parse_merge(t, lines[i], lens[i], path, i + 1);
done:
    free(lines);
    free(lens);
    free(text);
    return st;
}

static enum hsd_status load_vocab_json(struct hsd_clip_tokenizer *t, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return hsd_fail(errno == ENOENT ? HSD_ERR_NOT_FOUND : HSD_ERR_IO,
                        "%s: cannot open: %s (a CLIP tokenizer folder has vocab.json and "
                        "merges.txt)", path, strerror(errno));
    fclose(f);
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    if (!j)
        return hsd_fail(HSD_ERR_FORMAT, "%s: line %d column %d: %s", path, e.line, e.column,
                        e.text);
    enum hsd_status st = HSD_OK;
    if (!json_is_object(j)) st = hsd_fail(HSD_ERR_FORMAT, "%s: must be a JSON object", path);
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        if (st) break;
        // tokenizers BPE::read_file: non-numbers are skipped, a number must
        // be a u64 (cast to u32; we require the int32 range).
        if (!json_is_number(v)) continue;
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > INT32_MAX) {
            st = hsd_fail(HSD_ERR_FORMAT, "%s: token \"%s\": id must be an integer in [0, %d]",
                          path, key, INT32_MAX);
            break;
        }
        st = clip_vocab_put(&t->vocab, key, strlen(key), (int32_t)json_integer_value(v));
    }
    json_decref(j);
    if (!st && t->vocab.n == 0) st = hsd_fail(HSD_ERR_FORMAT, "%s: empty vocab", path);
    return st;
}

static enum hsd_status load_merges_txt(struct hsd_clip_tokenizer *t, const char *path) {
    char *text;
    size_t len = 0;
    enum hsd_status st = read_file(path, &text, &len);
    if (st) {
        if (st == HSD_ERR_NOT_FOUND)
            hsd_fail_context(st, "(a CLIP tokenizer folder has vocab.json and merges.txt) ");
        return st;
    }
    st = clip_utf8_validate(text, len);
    if (st) {
        free(text);
        return hsd_fail_context(HSD_ERR_FORMAT, "%s: ", path);
    }
    size_t n_lines = 0;
    for (size_t i = 0; i < len; i++) n_lines += text[i] == '\n';
    st = clip_merges_init(&t->merges, n_lines + 1);
    size_t line = 0;
    // BufRead::lines: "\n" or "\r\n" ends a line, no empty last line after
    // a final newline; lines starting with "#version" are skipped.
    for (const char *p = text, *end = text + len; p < end && !st;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        line++;
        size_t n = (size_t)(e - p);
        if (n && p[n - 1] == '\r') n--;
        if (!(n >= 8 && memcmp(p, "#version", 8) == 0)) st = parse_merge(t, p, n, path, line);
        p = nl ? nl + 1 : end;
    }
    free(text);
    return st;
}

enum hsd_status clip_load_folder(struct hsd_clip_tokenizer *t, const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    enum hsd_status st = load_vocab_json(t, path);
    if (st) return st;
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    return load_merges_txt(t, path);
}
