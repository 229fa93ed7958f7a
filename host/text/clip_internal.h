// Internals of the CLIP tokenizer (host/text/clip_*.c), shared by its files.
//
// The reference is transformers 5.23 CLIPTokenizer, which is a `tokenizers`
// (Rust) pipeline, not the old Python BPE:
//   added tokens (specials) split out of the raw text   clip_special.c
//   normalizer NFC -> \s+ to " " -> Lowercase           clip_text_clean.c
//   pre-tokenizer Split(CLIP regex) -> ByteLevel(regex)  clip_pretok.c
//   BPE with "</w>" word ends, merge-rank table, cache   clip_bpe.c
//   vocab.json / merges.txt / bpe_simple_vocab_16e6.gz   clip_vocab*.c
//   post-processor BOS ... EOS, truncation, padding      clip_tokenizer.c
#ifndef HSD_TEXT_CLIP_INTERNAL_H
#define HSD_TEXT_CLIP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "text/clip_tokenizer.h"

// ---- growable id vector ---------------------------------------------------

struct clip_ids {
    int32_t *v;
    size_t n, cap;
};
enum hsd_status clip_ids_push(struct clip_ids *ids, int32_t id);
void clip_ids_free(struct clip_ids *ids);

// ---- vocab: token string <-> id (clip_vocab.c) ----------------------------

struct clip_vocab_slot {
    char *key;  // owned, NUL-terminated (tokens never contain NUL)
    uint32_t len;
    int32_t id;
};

struct clip_vocab {
    struct clip_vocab_slot *slots;  // open addressing, power-of-two capacity
    size_t cap, n;
    const char **tokens;  // [n_ids] id -> one of the keys (NULL for holes)
    int32_t n_ids;        // max id + 1
};

// Inserts or overwrites (the last value of a repeated key wins, as in a
// Python dict or serde's map).
enum hsd_status clip_vocab_put(struct clip_vocab *v, const char *key, size_t len, int32_t id);
int32_t clip_vocab_get(const struct clip_vocab *v, const char *key, size_t len);  // -1 if absent
// Builds tokens[] once every id is in.
enum hsd_status clip_vocab_index(struct clip_vocab *v);
void clip_vocab_free(struct clip_vocab *v);

// GPT-2 / CLIP bytes_to_unicode: the printable character standing for byte
// b, UTF-8 encoded into out (<= 2 bytes); returns the length.
int clip_byte_char(uint8_t b, char out[4]);
// The 256 byte characters in the order CLIP's vocab lists them.
void clip_byte_order(uint8_t order[256]);

// ---- BPE (clip_bpe.c) -----------------------------------------------------

struct clip_merge_slot {
    uint64_t pair;  // (left id << 32) | right id
    int32_t rank;   // -1: empty slot
    int32_t new_id;
};

struct clip_merges {
    struct clip_merge_slot *slots;
    size_t cap, n;
    int32_t (*list)[2];  // rank -> (left, right), for saving merges.txt
    size_t n_list, list_cap;
};

enum hsd_status clip_merges_init(struct clip_merges *m, size_t n_expected);
// rank = position in merges.txt; a repeated pair keeps the last rank.
enum hsd_status clip_merges_add(struct clip_merges *m, int32_t a, int32_t b, int32_t new_id);
void clip_merges_free(struct clip_merges *m);

struct clip_bpe_cache;
struct clip_bpe_cache *clip_bpe_cache_new(void);
void clip_bpe_cache_free(struct clip_bpe_cache *c);

// Appends the ids of one pre-tokenized word (raw bytes; the byte-level
// mapping happens here) to out.
enum hsd_status clip_bpe_word(const struct hsd_clip_tokenizer *t, const uint8_t *word,
                              size_t len, struct clip_ids *out);

// ---- text (clip_text_clean.c) ---------------------------------------------

// Fails with HSD_ERR_INVALID_ARG naming the byte offset and the rule.
enum hsd_status clip_utf8_validate(const char *s, size_t len);

// transformers' CLIP normalizer on valid UTF-8: NFC, every run of
// White_Space to one " ", per-character full lowercase. *out is malloc'd
// (NUL-terminated), *out_len its length.
enum hsd_status clip_normalize(const char *s, size_t len, char **out, size_t *out_len);

// ---- pre-tokenizer (clip_pretok.c) ----------------------------------------

struct clip_pretok {
    void *split;      // pcre2_code *: the CLIP pattern (Split, invert)
    void *bytelevel;  // pcre2_code *: GPT-2's pattern inside ByteLevel
};
enum hsd_status clip_pretok_init(struct clip_pretok *p);
void clip_pretok_free(struct clip_pretok *p);
// Pre-tokenizes normalized text and BPE-encodes each word into out; stops
// early once out holds `limit` ids (truncation makes the rest irrelevant).
enum hsd_status clip_pretok_encode(const struct hsd_clip_tokenizer *t, const char *s, size_t len,
                                   struct clip_ids *out, size_t limit);

// ---- added (special) tokens (clip_special.c) ------------------------------

enum clip_named {
    CLIP_BOS,
    CLIP_EOS,
    CLIP_UNK,
    CLIP_SEP,
    CLIP_PAD,
    CLIP_CLS,
    CLIP_MASK,
    CLIP_NAMED_COUNT
};

// One special-token value as a config gives it: a plain string, or an
// AddedToken object (content + flags).
struct clip_tok_spec {
    char *content;  // owned; NULL: unset / null
    int is_added;   // 1: AddedToken, 0: plain string
    int normalized, special, lstrip, rstrip, single_word;
};

struct clip_added_token {
    char *content;  // owned
    char *match;    // owned: what is searched for (content, or normalized)
    size_t match_len;
    int32_t id;
    int normalized;
};

struct clip_config {
    struct clip_tok_spec named[CLIP_NAMED_COUNT];
    struct clip_tok_spec *decoder;  // added_tokens_decoder entries, by id
    int32_t *decoder_ids;
    int n_decoder;
    int has_decoder;
    long long model_max_length;  // 0: not given
};

// CLIPTokenizer's defaults (bos "<|startoftext|>", eos/unk/pad
// "<|endoftext|>", plain strings).
enum hsd_status clip_config_defaults(struct clip_config *c);
// SD 1.x's tokenizer_config.json + special_tokens_map.json (the .gz form).
enum hsd_status clip_config_sd15(struct clip_config *c);
// SD 2.x's (pad "!").
enum hsd_status clip_config_sd2(struct clip_config *c);
// Reads tokenizer_config.json and special_tokens_map.json of a folder
// (either may be absent) on top of the defaults.
enum hsd_status clip_config_read(struct clip_config *c, const char *dir);
void clip_config_free(struct clip_config *c);

// Resolves the added tokens as transformers v5 does and fills t->added,
// t->bos/eos/unk/pad, t->model_max_length. Needs t->vocab.
enum hsd_status clip_config_apply(struct hsd_clip_tokenizer *t, const struct clip_config *c);

// Leftmost-longest search for an added token with the given `normalized`
// flag in s[0..len) (aho-corasick LeftmostLongest in tokenizers). Returns
// the token index or -1; *at receives the offset.
int clip_added_find(const struct hsd_clip_tokenizer *t, int normalized, const char *s, size_t len,
                    size_t *at);

// ---- vocab files (clip_vocab_files.c) -------------------------------------

enum hsd_status clip_load_gz(struct hsd_clip_tokenizer *t, const char *path);
enum hsd_status clip_load_folder(struct hsd_clip_tokenizer *t, const char *dir);

// ---- the tokenizer ---------------------------------------------------------

struct hsd_clip_tokenizer {
    char *path;  // what was loaded, for messages
    struct clip_vocab vocab;
    struct clip_merges merges;
    int32_t byte_id[256];      // id of byte b's character; -1 if absent
    int32_t byte_eow_id[256];  // id of that character + "</w>"; -1 if absent
    struct clip_added_token *added;
    int n_added;
    int has_normalized_added, has_raw_added;
    int32_t bos, eos, pad, unk;  // unk -1: none (unknown characters dropped)
    char *named[CLIP_NAMED_COUNT];  // bos_token ... mask_token contents (NULL: unset)
    int model_max_length;        // 0: not given
    struct clip_pretok pretok;
    struct clip_bpe_cache *cache;
};

// Fills byte_id / byte_eow_id from the vocab.
void clip_byte_ids(struct hsd_clip_tokenizer *t);

#endif
