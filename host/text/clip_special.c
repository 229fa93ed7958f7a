// Added (special) tokens of the CLIP tokenizer: which strings are split out
// of the text before BPE, with which id, and whether they are searched in the
// raw or in the normalized text. This follows what transformers 5.23 does
// when loading a folder (tokenization_utils_base.py from_pretrained,
// tokenization_utils_tokenizers.py TokenizersBackend.__init__) and what
// `tokenizers`' AddedVocabulary does with the result:
//
//  1. The named tokens start as CLIPTokenizer's defaults (plain strings) and
//     are overridden by tokenizer_config.json; a dict there is an
//     AddedToken(**dict) (normalized defaults to True).
//  2. If tokenizer_config.json has "added_tokens_decoder", its entries are
//     the added tokens (AddedToken(**entry): normalized defaults to
//     !special) and a named token with the same content takes that entry.
//     Otherwise special_tokens_map.json overrides the named tokens (a dict
//     there is AddedToken(**dict, special=True): normalized defaults False).
//  3. Tokens are added in the order: decoder entries (by id), then the
//     named ones bos, eos, unk, sep, pad, cls, mask (SPECIAL_TOKENS_ATTRIBUTES)
//     skipping a value equal to one already listed (a string equals a string,
//     an AddedToken an AddedToken with the same content and flags) or whose
//     content a decoder entry has. A plain string becomes
//     AddedToken(special=True), normalized=False. For each content the LAST
//     token added sets the flags.
//
// Consequence for SD 1.x's files (eos is an AddedToken with normalized=true,
// pad the plain string "<|endoftext|>"): pad comes last, so "<|endoftext|>"
// is matched in the raw text only, while "<|startoftext|>" is normalized
// ("<|StartOfText|>" gives the BOS id). For SD 2.x (pad "!"), "!" becomes a
// special token: every "!" in a prompt is id 0, never "!</w>" or "!!</w>".
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "text/clip_internal.h"

static const char *const k_named_keys[CLIP_NAMED_COUNT] = {
    "bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"};

static void spec_free(struct clip_tok_spec *s) {
    free(s->content);
    memset(s, 0, sizeof *s);
}

static enum hsd_status spec_set(struct clip_tok_spec *s, const char *content, int is_added,
                                int normalized, int special) {
    char *c = NULL;
    if (content) {
        c = strdup(content);
        if (!c) return hsd_fail(HSD_ERR_NOMEM, "clip tokenizer: out of memory");
    }
    spec_free(s);
    s->content = c;
    s->is_added = is_added;
    s->normalized = normalized;
    s->special = special;
    return HSD_OK;
}

static int get_bool(json_t *obj, const char *key, int dflt) {
    json_t *v = json_object_get(obj, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

// A token value from a config file: "string", null, or an AddedToken object.
// `normalized_default` is what AddedToken(**obj) gives when "normalized" is
// missing (the callers say which: it depends on `special`).
enum spec_source { FROM_CONFIG, FROM_SPECIAL_MAP, FROM_DECODER };

static enum hsd_status spec_from_json(struct clip_tok_spec *s, json_t *v, enum spec_source src,
                                      const char *path, const char *key) {
    if (src == FROM_DECODER && !json_is_object(v))
        return hsd_fail(HSD_ERR_FORMAT, "%s: added_tokens_decoder[\"%s\"] must be an object",
                        path, key);
    if (json_is_null(v)) return spec_set(s, NULL, 0, 0, 0);
    if (json_is_string(v)) return spec_set(s, json_string_value(v), 0, 0, 1);
    if (!json_is_object(v))
        return hsd_fail(HSD_ERR_FORMAT, "%s: \"%s\" must be a string, null or an AddedToken object",
                        path, key);
    json_t *content = json_object_get(v, "content");
    if (!json_is_string(content))
        return hsd_fail(HSD_ERR_FORMAT, "%s: \"%s\" has no string \"content\"", path, key);
    // special: special_tokens_map.json entries are built with special=True;
    // the others default to False (transformers marks the named ones special
    // later, which does not touch `normalized`).
    int special = src == FROM_SPECIAL_MAP ? 1 : get_bool(v, "special", 0);
    int normalized = get_bool(v, "normalized", !special);
    enum hsd_status st = spec_set(s, json_string_value(content), 1, normalized, special);
    if (st) return st;
    s->lstrip = get_bool(v, "lstrip", 0);
    s->rstrip = get_bool(v, "rstrip", 0);
    s->single_word = get_bool(v, "single_word", 0);
    return HSD_OK;
}

enum hsd_status clip_config_defaults(struct clip_config *c) {
    memset(c, 0, sizeof *c);
    // models/clip/tokenization_clip.py CLIPTokenizer.__init__ defaults.
    enum hsd_status s = spec_set(&c->named[CLIP_BOS], "<|startoftext|>", 0, 0, 1);
    if (!s) s = spec_set(&c->named[CLIP_EOS], "<|endoftext|>", 0, 0, 1);
    if (!s) s = spec_set(&c->named[CLIP_UNK], "<|endoftext|>", 0, 0, 1);
    if (!s) s = spec_set(&c->named[CLIP_PAD], "<|endoftext|>", 0, 0, 1);
    return s;
}

enum hsd_status clip_config_sd15(struct clip_config *c) {
    // runwayml/stable-diffusion-v1-5 tokenizer/ (from openai/clip-vit-large-
    // patch14): bos/eos/unk AddedToken(normalized=True), pad the string, model
    // max length 77. tests/oracle/tiny_tokenizer.py sd15_config_files().
    enum hsd_status s = clip_config_defaults(c);
    if (!s) s = spec_set(&c->named[CLIP_BOS], "<|startoftext|>", 1, 1, 0);
    if (!s) s = spec_set(&c->named[CLIP_EOS], "<|endoftext|>", 1, 1, 0);
    if (!s) s = spec_set(&c->named[CLIP_UNK], "<|endoftext|>", 1, 1, 0);
    c->model_max_length = 77;
    return s;
}

enum hsd_status clip_config_sd2(struct clip_config *c) {
    // stabilityai/stable-diffusion-2-1 tokenizer/: SD 1.x's, but the pad
    // token is the plain string "!" (id 0), which transformers then also
    // splits out of prompts as a special token. tests/oracle/tiny_tokenizer.py
    // sd2_config_files().
    enum hsd_status s = clip_config_sd15(c);
    if (!s) s = spec_set(&c->named[CLIP_PAD], "!", 0, 0, 1);
    return s;
}

void clip_config_free(struct clip_config *c) {
    for (int i = 0; i < CLIP_NAMED_COUNT; i++) spec_free(&c->named[i]);
    for (int i = 0; i < c->n_decoder; i++) spec_free(&c->decoder[i]);
    free(c->decoder);
    free(c->decoder_ids);
    memset(c, 0, sizeof *c);
}

static enum hsd_status load_json(const char *path, json_t **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return HSD_ERR_NOT_FOUND;  // optional file: the caller decides
    fclose(f);
    json_error_t e;
    // Integers as reals: transformers writes model_max_length = 1e30 as a
    // 31-digit integer ("unknown"), beyond jansson's json_int_t.
    json_t *j = json_load_file(path, JSON_DECODE_INT_AS_REAL, &e);
    if (!j)
        return hsd_fail(HSD_ERR_FORMAT, "%s: line %d column %d: %s", path, e.line, e.column,
                        e.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return hsd_fail(HSD_ERR_FORMAT, "%s: top level must be a JSON object", path);
    }
    *out = j;
    return HSD_OK;
}

struct decoder_entry {
    int32_t id;
    json_t *v;
};

static int cmp_decoder(const void *a, const void *b) {
    int32_t x = ((const struct decoder_entry *)a)->id, y = ((const struct decoder_entry *)b)->id;
    return (x > y) - (x < y);
}

static enum hsd_status read_decoder(struct clip_config *c, json_t *dec, const char *path) {
    if (!json_is_object(dec))
        return hsd_fail(HSD_ERR_FORMAT, "%s: \"added_tokens_decoder\" must be an object", path);
    size_t n = json_object_size(dec);
    // Sorted by id, as transformers reads them: int(key), then
    // sorted(added_tokens_decoder.items()).
    struct decoder_entry *e = malloc((n ? n : 1) * sizeof *e);
    c->decoder = calloc(n ? n : 1, sizeof *c->decoder);
    c->decoder_ids = malloc((n ? n : 1) * sizeof *c->decoder_ids);
    if (!e || !c->decoder || !c->decoder_ids) {
        free(e);
        return hsd_fail(HSD_ERR_NOMEM, "clip tokenizer: out of memory");
    }
    enum hsd_status st = HSD_OK;
    const char *key;
    json_t *v;
    size_t k = 0;
    json_object_foreach(dec, key, v) {
        char *end;
        long id = strtol(key, &end, 10);
        if (*key == '\0' || *end != '\0' || id < 0 || id > INT32_MAX) {
            st = hsd_fail(HSD_ERR_FORMAT, "%s: added_tokens_decoder key \"%s\" is not an id",
                          path, key);
            break;
        }
        e[k++] = (struct decoder_entry){(int32_t)id, v};
    }
    if (!st) qsort(e, n, sizeof *e, cmp_decoder);
    for (size_t i = 0; i < n && !st; i++) {
        char what[16];
        snprintf(what, sizeof what, "%d", (int)e[i].id);
        if (i > 0 && e[i].id == e[i - 1].id)
            st = hsd_fail(HSD_ERR_FORMAT, "%s: added_tokens_decoder has id %d twice", path,
                          (int)e[i].id);
        if (!st) st = spec_from_json(&c->decoder[i], e[i].v, FROM_DECODER, path, what);
        if (!st) {
            c->decoder_ids[i] = e[i].id;
            c->n_decoder = (int)i + 1;
        }
    }
    free(e);
    if (!st) c->has_decoder = 1;
    return st;
}

static enum hsd_status check_extra(json_t *j, const char *path) {
    static const char *const extra[] = {"additional_special_tokens", "extra_special_tokens"};
    for (size_t i = 0; i < 2; i++) {
        json_t *v = json_object_get(j, extra[i]);
        if (v && !json_is_null(v) && json_array_size(v) + json_object_size(v) > 0)
            return hsd_fail(HSD_ERR_UNSUPPORTED,
                            "%s: \"%s\" is not supported by this tokenizer (SD's CLIP "
                            "tokenizers have none)", path, extra[i]);
    }
    return HSD_OK;
}

enum hsd_status clip_config_read(struct clip_config *c, const char *dir) {
    enum hsd_status st = clip_config_defaults(c);
    if (st) return st;
    char path[4096];
    json_t *cfg = NULL, *map = NULL;

    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    st = load_json(path, &cfg);
    if (st == HSD_ERR_NOT_FOUND) st = HSD_OK;
    if (st) return st;
    if (cfg) {
        st = check_extra(cfg, path);
        for (int i = 0; i < CLIP_NAMED_COUNT && !st; i++) {
            json_t *v = json_object_get(cfg, k_named_keys[i]);
            if (v) st = spec_from_json(&c->named[i], v, FROM_CONFIG, path, k_named_keys[i]);
        }
        json_t *mml = json_object_get(cfg, "model_max_length");
        if (!st && json_is_number(mml) && json_number_value(mml) >= 1 &&
            json_number_value(mml) <= 1e6)
            c->model_max_length = (long long)json_number_value(mml);
        json_t *dec = json_object_get(cfg, "added_tokens_decoder");
        if (!st && dec) st = read_decoder(c, dec, path);
        // "do_lower_case" is ignored: v5's CLIPTokenizer always lowercases.
    }
    if (!st && !c->has_decoder) {
        snprintf(path, sizeof path, "%s/special_tokens_map.json", dir);
        st = load_json(path, &map);
        if (st == HSD_ERR_NOT_FOUND) st = HSD_OK;
        if (!st && map) st = check_extra(map, path);
        for (int i = 0; i < CLIP_NAMED_COUNT && !st && map; i++) {
            json_t *v = json_object_get(map, k_named_keys[i]);
            if (v) st = spec_from_json(&c->named[i], v, FROM_SPECIAL_MAP, path, k_named_keys[i]);
        }
    }
    json_decref(cfg);
    json_decref(map);
    return st;
}

// ---- resolution ------------------------------------------------------------

static int spec_equal(const struct clip_tok_spec *a, const struct clip_tok_spec *b) {
    if (a->is_added != b->is_added || strcmp(a->content, b->content) != 0) return 0;
    if (!a->is_added) return 1;
    return a->normalized == b->normalized && a->special == b->special &&
           a->lstrip == b->lstrip && a->rstrip == b->rstrip && a->single_word == b->single_word;
}

static enum hsd_status add_token(struct hsd_clip_tokenizer *t, const struct clip_tok_spec *s,
                                 int32_t declared_id, const char *what) {
    if (s->lstrip || s->rstrip || s->single_word)
        return hsd_fail(HSD_ERR_UNSUPPORTED, "%s: added token \"%s\" (%s) has lstrip/rstrip/"
                        "single_word set: not supported", t->path, s->content, what);
    if (s->content[0] == '\0') return HSD_OK;  // tokenizers skips empty tokens
    // tokenizers gives an added token the vocab's id when it has the content.
    int32_t id = clip_vocab_get(&t->vocab, s->content, strlen(s->content));
    if (id < 0) id = declared_id;
    if (id < 0)
        return hsd_fail(HSD_ERR_FORMAT, "%s: %s \"%s\" is not in the vocab", t->path, what,
                        s->content);
    // A plain string becomes AddedToken(content, special=True): normalized
    // False. The last token added for a content sets its flags.
    int normalized = s->is_added ? s->normalized : 0;
    for (int i = 0; i < t->n_added; i++) {
        if (strcmp(t->added[i].content, s->content) == 0) {
            t->added[i].normalized = normalized;
            t->added[i].id = id;
            return HSD_OK;
        }
    }
    struct clip_added_token *a = realloc(t->added, (size_t)(t->n_added + 1) * sizeof *a);
    if (!a) return hsd_fail(HSD_ERR_NOMEM, "clip tokenizer: out of memory");
    t->added = a;
    a = &t->added[t->n_added];
    memset(a, 0, sizeof *a);
    a->content = strdup(s->content);
    if (!a->content) return hsd_fail(HSD_ERR_NOMEM, "clip tokenizer: out of memory");
    a->id = id;
    a->normalized = normalized;
    t->n_added++;
    return HSD_OK;
}

static int32_t named_id(const struct hsd_clip_tokenizer *t, const struct clip_tok_spec *s) {
    if (!s->content) return -1;
    for (int i = 0; i < t->n_added; i++)
        if (strcmp(t->added[i].content, s->content) == 0) return t->added[i].id;
    return clip_vocab_get(&t->vocab, s->content, strlen(s->content));
}

enum hsd_status clip_config_apply(struct hsd_clip_tokenizer *t, const struct clip_config *c) {
    enum hsd_status st = HSD_OK;
    // 1. decoder entries, by id.
    for (int i = 0; i < c->n_decoder && !st; i++) {
        char what[64];
        snprintf(what, sizeof what, "added_tokens_decoder[%d]", (int)c->decoder_ids[i]);
        st = add_token(t, &c->decoder[i], c->decoder_ids[i], what);
    }
    // 2. named tokens, skipping repeats and decoder contents.
    const struct clip_tok_spec *listed[CLIP_NAMED_COUNT];
    int n_listed = 0;
    for (int i = 0; i < CLIP_NAMED_COUNT && !st; i++) {
        const struct clip_tok_spec *s = &c->named[i];
        if (!s->content) continue;
        int skip = 0;
        for (int k = 0; k < c->n_decoder && !skip; k++)
            skip = strcmp(c->decoder[k].content, s->content) == 0;
        for (int k = 0; k < n_listed && !skip; k++) skip = spec_equal(listed[k], s);
        if (skip) continue;
        listed[n_listed++] = s;
        st = add_token(t, s, -1, k_named_keys[i]);
    }
    if (st) return st;

    static const int roles[] = {CLIP_BOS, CLIP_EOS, CLIP_PAD};
    for (size_t i = 0; i < 3; i++)
        if (!c->named[roles[i]].content)
            return hsd_fail(HSD_ERR_UNSUPPORTED, "%s: %s is null: SD's text encoder needs it",
                            t->path, k_named_keys[roles[i]]);
    for (int i = 0; i < CLIP_NAMED_COUNT; i++) {
        free(t->named[i]);
        t->named[i] = c->named[i].content ? strdup(c->named[i].content) : NULL;
        if (c->named[i].content && !t->named[i])
            return hsd_fail(HSD_ERR_NOMEM, "clip tokenizer: out of memory");
    }
    t->bos = named_id(t, &c->named[CLIP_BOS]);
    t->eos = named_id(t, &c->named[CLIP_EOS]);
    t->pad = named_id(t, &c->named[CLIP_PAD]);
    for (size_t i = 0; i < 3; i++)
        if (named_id(t, &c->named[roles[i]]) < 0)  // only "" gets here
            return hsd_fail(HSD_ERR_FORMAT, "%s: %s \"%s\" is not a token", t->path,
                            k_named_keys[roles[i]], c->named[roles[i]].content);
    // BPE's unk is looked up in the model vocab only (tokenizers BPE).
    const struct clip_tok_spec *unk = &c->named[CLIP_UNK];
    t->unk = unk->content ? clip_vocab_get(&t->vocab, unk->content, strlen(unk->content)) : -1;
    if (unk->content && t->unk < 0)
        return hsd_fail(HSD_ERR_FORMAT, "%s: unk_token \"%s\" is not in the vocab", t->path,
                        unk->content);
    t->model_max_length = c->model_max_length > 0 && c->model_max_length <= 1000000
                              ? (int)c->model_max_length : 0;

    // What to search for: normalized tokens are matched in the normalized
    // text, as their normalized content (AddedVocabulary::refresh_added_tokens).
    t->has_normalized_added = t->has_raw_added = 0;
    for (int i = 0; i < t->n_added; i++) {
        struct clip_added_token *a = &t->added[i];
        free(a->match);
        a->match = NULL;
        size_t len = strlen(a->content);
        if (a->normalized) {
            st = clip_utf8_validate(a->content, len);
            if (st) return hsd_fail_context(st, "%s: added token: ", t->path);
            st = clip_normalize(a->content, len, &a->match, &a->match_len);
            if (st) return st;
            t->has_normalized_added |= a->match_len > 0;
        } else {
            a->match = strdup(a->content);
            if (!a->match) return hsd_fail(HSD_ERR_NOMEM, "clip tokenizer: out of memory");
            a->match_len = len;
            t->has_raw_added = 1;
        }
    }
    return HSD_OK;
}

int clip_added_find(const struct hsd_clip_tokenizer *t, int normalized, const char *s, size_t len,
                    size_t *at) {
    // Leftmost, then longest: the first offset where any token matches, and
    // of the tokens matching there the longest. A handful of tokens: a plain
    // scan is as fast as an automaton.
    for (size_t i = 0; i < len; i++) {
        int best = -1;
        for (int k = 0; k < t->n_added; k++) {
            const struct clip_added_token *a = &t->added[k];
            if (a->normalized != normalized || a->match_len == 0 || a->match_len > len - i)
                continue;
            if (memcmp(s + i, a->match, a->match_len) != 0) continue;
            if (best < 0 || a->match_len > t->added[best].match_len) best = k;
        }
        if (best >= 0) {
            *at = i;
            return best;
        }
    }
    return -1;
}
