// CLIP vocab: token string <-> id, and the byte-level alphabet
// (bytes_to_unicode of openai/CLIP clip/simple_tokenizer.py, the same table
// as GPT-2's and `tokenizers`' ByteLevel).
#include <stdlib.h>
#include <string.h>

#include "text/clip_internal.h"

enum hsd_status clip_ids_push(struct clip_ids *ids, int32_t id) {
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        int32_t *v = realloc(ids->v, cap * sizeof *v);
        if (!v) return hsd_fail(HSD_ERR_NOMEM, "clip tokenizer: out of memory (%zu ids)", cap);
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return HSD_OK;
}

void clip_ids_free(struct clip_ids *ids) {
    free(ids->v);
    ids->v = NULL;
    ids->n = ids->cap = 0;
}

// FNV-1a: short keys, no adversary who can pick the vocab.
static uint64_t hash_bytes(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static enum hsd_status vocab_grow(struct clip_vocab *v) {
    size_t cap = v->cap ? v->cap * 2 : 1024;
    struct clip_vocab_slot *slots = calloc(cap, sizeof *slots);
    if (!slots) return hsd_fail(HSD_ERR_NOMEM, "clip vocab: out of memory (%zu slots)", cap);
    for (size_t i = 0; i < v->cap; i++) {
        struct clip_vocab_slot *s = &v->slots[i];
        if (!s->key) continue;
        size_t j = hash_bytes(s->key, s->len) & (cap - 1);
        while (slots[j].key) j = (j + 1) & (cap - 1);
        slots[j] = *s;
    }
    free(v->slots);
    v->slots = slots;
    v->cap = cap;
    return HSD_OK;
}

static struct clip_vocab_slot *vocab_find(const struct clip_vocab *v, const char *key, size_t len) {
    if (!v->cap) return NULL;
    size_t j = hash_bytes(key, len) & (v->cap - 1);
    while (v->slots[j].key) {
        if (v->slots[j].len == len && memcmp(v->slots[j].key, key, len) == 0) return &v->slots[j];
        j = (j + 1) & (v->cap - 1);
    }
    return &v->slots[j];
}

enum hsd_status clip_vocab_put(struct clip_vocab *v, const char *key, size_t len, int32_t id) {
    if (len > UINT32_MAX || id < 0)
        return hsd_fail(HSD_ERR_INVALID_ARG, "clip vocab: bad entry (len %zu, id %d)", len, id);
    if ((v->n + 1) * 2 > v->cap) {
        enum hsd_status s = vocab_grow(v);
        if (s) return s;
    }
    struct clip_vocab_slot *s = vocab_find(v, key, len);
    if (s->key) {
        s->id = id;
        return HSD_OK;
    }
    char *k = malloc(len + 1);
    if (!k) return hsd_fail(HSD_ERR_NOMEM, "clip vocab: out of memory");
    memcpy(k, key, len);
    k[len] = '\0';
    s->key = k;
    s->len = (uint32_t)len;
    s->id = id;
    v->n++;
    return HSD_OK;
}

int32_t clip_vocab_get(const struct clip_vocab *v, const char *key, size_t len) {
    const struct clip_vocab_slot *s = vocab_find(v, key, len);
    return s && s->key ? s->id : -1;
}

enum hsd_status clip_vocab_index(struct clip_vocab *v) {
    int32_t n_ids = 0;
    for (size_t i = 0; i < v->cap; i++)
        if (v->slots[i].key && v->slots[i].id >= n_ids) n_ids = v->slots[i].id + 1;
    free(v->tokens);
    v->tokens = calloc(n_ids ? (size_t)n_ids : 1, sizeof *v->tokens);
    if (!v->tokens) return hsd_fail(HSD_ERR_NOMEM, "clip vocab: out of memory (%d ids)", n_ids);
    for (size_t i = 0; i < v->cap; i++)
        if (v->slots[i].key) v->tokens[v->slots[i].id] = v->slots[i].key;
    v->n_ids = n_ids;
    return HSD_OK;
}

void clip_vocab_free(struct clip_vocab *v) {
    for (size_t i = 0; i < v->cap; i++) free(v->slots[i].key);
    free(v->slots);
    free(v->tokens);
    memset(v, 0, sizeof *v);
}

// bytes_to_unicode: bytes that are printable Latin-1 ('!'..'~', U+00A1..
// U+00AC, U+00AE..U+00FF) stand for themselves; the other 68 map to U+0100 +
// n, n counting them in byte order.
static int printable(int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

static uint32_t byte_code_point(uint8_t b) {
    if (printable(b)) return b;
    uint32_t n = 0;
    for (int i = 0; i < b; i++) n += !printable(i);
    return 256 + n;
}

int clip_byte_char(uint8_t b, char out[4]) {
    uint32_t c = byte_code_point(b);  // < U+0144: one or two UTF-8 bytes
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    out[0] = (char)(0xC0 | (c >> 6));
    out[1] = (char)(0x80 | (c & 0x3F));
    return 2;
}

void clip_byte_order(uint8_t order[256]) {
    // simple_tokenizer.py: list(bytes_to_unicode().values()) lists the
    // printable bytes first, then the remapped ones, each in byte order.
    int k = 0;
    for (int b = 0; b < 256; b++)
        if (printable(b)) order[k++] = (uint8_t)b;
    for (int b = 0; b < 256; b++)
        if (!printable(b)) order[k++] = (uint8_t)b;
}

void clip_byte_ids(struct hsd_clip_tokenizer *t) {
    for (int b = 0; b < 256; b++) {
        char buf[16];
        int n = clip_byte_char((uint8_t)b, buf);
        t->byte_id[b] = clip_vocab_get(&t->vocab, buf, (size_t)n);
        memcpy(buf + n, "</w>", 4);
        t->byte_eow_id[b] = clip_vocab_get(&t->vocab, buf, (size_t)n + 4);
    }
}
