// CLIP tokenizer: loading (which form a path is) and the encode driver
// (added tokens -> normalizer -> pre-tokenizer -> BPE -> BOS ... EOS,
// truncation, padding), as transformers 5.23 CLIPTokenizer does for
// tokenizer(prompt, padding="max_length", max_length=77, truncation=True).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "text/clip_internal.h"
#include "io/file.h"

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0 && (n == k || s[n - k - 1] == '/');
}

// Where the vocab is: *dir = a tokenizer folder, or NULL with `path` the
// BPE .gz. Returns a malloc'd folder path or NULL.
static enum hsd_status locate(const char *path, char **dir) {
    *dir = NULL;
    struct stat st;
    if (stat(path, &st) != 0)
        return hsd_fail(HSD_ERR_NOT_FOUND, "%s: no such file or directory (pass a diffusers "
                        "model root, a tokenizer folder or bpe_simple_vocab_16e6.txt.gz)", path);
    size_t n = strlen(path);
    char *buf = malloc(n + 32);
    if (!buf) return hsd_fail(HSD_ERR_NOMEM, "clip tokenizer: out of memory");
    if (S_ISREG(st.st_mode)) {
        // vocab.json / merges.txt themselves stand for their folder.
        if (ends_with(path, "vocab.json") || ends_with(path, "merges.txt")) {
            memcpy(buf, path, n + 1);
            char *slash = strrchr(buf, '/');
            if (slash) *slash = '\0';
            else strcpy(buf, ".");
            *dir = buf;
            return HSD_OK;
        }
        free(buf);
        return HSD_OK;  // the .gz (gzread also reads it uncompressed)
    }
    snprintf(buf, n + 32, "%s/vocab.json", path);
    if (hsd_is_file(buf)) {
        memcpy(buf, path, n + 1);
        *dir = buf;
        return HSD_OK;
    }
    snprintf(buf, n + 32, "%s/tokenizer/vocab.json", path);
    if (hsd_is_file(buf)) {
        snprintf(buf, n + 32, "%s/tokenizer", path);
        *dir = buf;
        return HSD_OK;
    }
    free(buf);
    return hsd_fail(HSD_ERR_NOT_FOUND, "%s: has neither vocab.json nor tokenizer/vocab.json "
                    "(pass a diffusers model root, a tokenizer folder or "
                    "bpe_simple_vocab_16e6.txt.gz)", path);
}

static enum hsd_status load(struct hsd_clip_tokenizer **out, const char *path, int sd2);

enum hsd_status hsd_clip_tokenizer_load(struct hsd_clip_tokenizer **out, const char *path) {
    return load(out, path, 0);
}

enum hsd_status hsd_clip_tokenizer_load_sd2(struct hsd_clip_tokenizer **out, const char *gz) {
    return load(out, gz, 1);
}

static enum hsd_status load(struct hsd_clip_tokenizer **out, const char *path, int sd2) {
    *out = NULL;
    if (!path || !*path)
        return hsd_fail(HSD_ERR_INVALID_ARG, "clip tokenizer: no path given (pass a diffusers "
                        "model root, a tokenizer folder or bpe_simple_vocab_16e6.txt.gz)");
    struct hsd_clip_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return hsd_fail(HSD_ERR_NOMEM, "clip tokenizer: out of memory");
    t->path = strdup(path);
    char *dir = NULL;
    struct clip_config cfg = {0};
    enum hsd_status st = t->path ? locate(path, &dir)
                                 : hsd_fail(HSD_ERR_NOMEM, "clip tokenizer: out of memory");
    if (!st) st = dir ? clip_load_folder(t, dir) : clip_load_gz(t, path);
    if (!st) st = clip_vocab_index(&t->vocab);
    if (!st) clip_byte_ids(t);
    if (!st) st = dir ? clip_config_read(&cfg, dir) : sd2 ? clip_config_sd2(&cfg) : clip_config_sd15(&cfg);
    if (!st) st = clip_config_apply(t, &cfg);
    if (!st) st = clip_pretok_init(&t->pretok);
    if (!st) {
        t->cache = clip_bpe_cache_new();
        if (!t->cache) st = hsd_fail(HSD_ERR_NOMEM, "clip tokenizer: out of memory (cache)");
    }
    clip_config_free(&cfg);
    free(dir);
    if (st) {
        hsd_clip_tokenizer_free(t);
        return st;
    }
    *out = t;
    return HSD_OK;
}

void hsd_clip_tokenizer_free(struct hsd_clip_tokenizer *t) {
    if (!t) return;
    clip_vocab_free(&t->vocab);
    clip_merges_free(&t->merges);
    for (int i = 0; i < t->n_added; i++) {
        free(t->added[i].content);
        free(t->added[i].match);
    }
    free(t->added);
    for (int i = 0; i < CLIP_NAMED_COUNT; i++) free(t->named[i]);
    clip_pretok_free(&t->pretok);
    clip_bpe_cache_free(t->cache);
    free(t->path);
    free(t);
}

int32_t hsd_clip_tokenizer_bos(const struct hsd_clip_tokenizer *t) { return t->bos; }
int32_t hsd_clip_tokenizer_eos(const struct hsd_clip_tokenizer *t) { return t->eos; }
int32_t hsd_clip_tokenizer_pad(const struct hsd_clip_tokenizer *t) { return t->pad; }

int hsd_clip_tokenizer_vocab_size(const struct hsd_clip_tokenizer *t) {
    int n = t->vocab.n_ids;
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id >= n) n = t->added[i].id + 1;
    return n;
}

int hsd_clip_tokenizer_model_max_length(const struct hsd_clip_tokenizer *t) {
    return t->model_max_length;
}

const char *hsd_clip_tokenizer_token(const struct hsd_clip_tokenizer *t, int32_t id) {
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return t->added[i].content;
    return id >= 0 && id < t->vocab.n_ids ? t->vocab.tokens[id] : NULL;
}

// A piece of raw text between two raw-matched added tokens: normalize it,
// split out the normalized added tokens, pre-tokenize + BPE the rest
// (tokenizers AddedVocabulary::extract_and_normalize, then the pipeline).
static enum hsd_status encode_piece(const struct hsd_clip_tokenizer *t, const char *s, size_t len,
                                    struct clip_ids *out, size_t limit) {
    if (len == 0) return HSD_OK;
    char *norm;
    size_t n;
    enum hsd_status st = clip_normalize(s, len, &norm, &n);
    for (size_t pos = 0; !st && pos < n && out->n < limit;) {
        size_t at = 0;
        int k = t->has_normalized_added ? clip_added_find(t, 1, norm + pos, n - pos, &at) : -1;
        size_t gap = k >= 0 ? at : n - pos;
        st = clip_pretok_encode(t, norm + pos, gap, out, limit);
        if (!st && k >= 0) st = clip_ids_push(out, t->added[k].id);
        pos += gap + (k >= 0 ? t->added[k].match_len : 0);
    }
    free(norm);
    return st;
}

static enum hsd_status encode(const struct hsd_clip_tokenizer *t, const char *s, size_t len,
                              struct clip_ids *out, size_t limit) {
    enum hsd_status st = HSD_OK;
    for (size_t pos = 0; !st && pos < len && out->n < limit;) {
        size_t at = 0;
        int k = t->has_raw_added ? clip_added_find(t, 0, s + pos, len - pos, &at) : -1;
        size_t gap = k >= 0 ? at : len - pos;
        st = encode_piece(t, s + pos, gap, out, limit);
        if (!st && k >= 0) st = clip_ids_push(out, t->added[k].id);
        pos += gap + (k >= 0 ? t->added[k].match_len : 0);
    }
    return st;
}

enum hsd_status hsd_clip_tokenize(const struct hsd_clip_tokenizer *t, const char *text,
                                  size_t len, int32_t *ids, int max_len, int *n_used) {
    if (n_used) *n_used = 0;
    if (!t || !ids || (!text && len))
        return hsd_fail(HSD_ERR_INVALID_ARG, "clip tokenize: NULL tokenizer, ids or text");
    if (max_len < 2)
        return hsd_fail(HSD_ERR_INVALID_ARG, "clip tokenize: max_len %d leaves no room for BOS "
                        "and EOS (SD uses 77)", max_len);
    enum hsd_status st = clip_utf8_validate(text, len);
    if (st) return st;
    // Truncation keeps the first max_len - 2 tokens (RobertaProcessing adds
    // BOS and EOS after truncation); encoding stops once it has them.
    size_t keep = (size_t)max_len - 2;
    struct clip_ids out = {0};
    st = encode(t, text, len, &out, keep);
    if (st) {
        clip_ids_free(&out);
        return st;
    }
    size_t n = out.n < keep ? out.n : keep;
    ids[0] = t->bos;
    if (n) memcpy(ids + 1, out.v, n * sizeof *ids);
    ids[n + 1] = t->eos;
    for (size_t i = n + 2; i < (size_t)max_len; i++) ids[i] = t->pad;
    if (n_used) *n_used = (int)n + 2;
    clip_ids_free(&out);
    return HSD_OK;
}
