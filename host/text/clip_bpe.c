// Byte-level BPE with "</w>" word ends: the merge-rank table, the merge loop
// and a word cache, matching `tokenizers` (models/bpe/word.rs Word::merge_all,
// model.rs BPE::merge_word / tokenize_with_cache), which transformers v5's
// CLIPTokenizer runs with continuing_subword_prefix "", end_of_word_suffix
// "</w>", fuse_unk false, no dropout.
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "text/clip_internal.h"

// ---- merge table: (left id, right id) -> (rank, merged id) ----------------

static uint64_t hash_pair(uint64_t x) {  // splitmix64 finaliser
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

enum hsd_status clip_merges_init(struct clip_merges *m, size_t n_expected) {
    memset(m, 0, sizeof *m);
    size_t cap = 64;
    while (cap < 2 * n_expected + 2) cap *= 2;
    m->slots = malloc(cap * sizeof *m->slots);
    m->list = malloc((n_expected ? n_expected : 1) * sizeof *m->list);
    if (!m->slots || !m->list) {
        clip_merges_free(m);
        return hsd_fail(HSD_ERR_NOMEM, "clip merges: out of memory (%zu merges)", n_expected);
    }
    for (size_t i = 0; i < cap; i++) m->slots[i].rank = -1;
    m->cap = cap;
    m->list_cap = n_expected ? n_expected : 1;
    return HSD_OK;
}

static struct clip_merge_slot *merge_find(const struct clip_merges *m, uint64_t pair) {
    size_t j = hash_pair(pair) & (m->cap - 1);
    while (m->slots[j].rank >= 0 && m->slots[j].pair != pair) j = (j + 1) & (m->cap - 1);
    return &m->slots[j];
}

enum hsd_status clip_merges_add(struct clip_merges *m, int32_t a, int32_t b, int32_t new_id) {
    if ((m->n + 1) * 2 > m->cap) {
        // Rehash into twice the slots (only when n_expected was too small).
        struct clip_merges bigger = *m;
        bigger.cap = m->cap * 2;
        bigger.slots = malloc(bigger.cap * sizeof *bigger.slots);
        if (!bigger.slots) return hsd_fail(HSD_ERR_NOMEM, "clip merges: out of memory");
        for (size_t i = 0; i < bigger.cap; i++) bigger.slots[i].rank = -1;
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].rank >= 0) *merge_find(&bigger, m->slots[i].pair) = m->slots[i];
        free(m->slots);
        *m = bigger;
    }
    if (m->n_list == m->list_cap) {
        int32_t(*l)[2] = realloc(m->list, 2 * m->list_cap * sizeof *l);
        if (!l) return hsd_fail(HSD_ERR_NOMEM, "clip merges: out of memory");
        m->list = l;
        m->list_cap *= 2;
    }
    int32_t rank = (int32_t)m->n_list;
    m->list[m->n_list][0] = a;
    m->list[m->n_list][1] = b;
    m->n_list++;
    uint64_t pair = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    struct clip_merge_slot *s = merge_find(m, pair);
    if (s->rank < 0) m->n++;
    // A repeated pair keeps the last rank: tokenizers collects the merges
    // into a HashMap (and simple_tokenizer.py into a dict) in file order.
    s->pair = pair;
    s->rank = rank;
    s->new_id = new_id;
    return HSD_OK;
}

void clip_merges_free(struct clip_merges *m) {
    free(m->slots);
    free(m->list);
    memset(m, 0, sizeof *m);
}

static const struct clip_merge_slot *merge_get(const struct clip_merges *m, int32_t a, int32_t b) {
    const struct clip_merge_slot *s =
        merge_find(m, ((uint64_t)(uint32_t)a << 32) | (uint32_t)b);
    return s->rank >= 0 ? s : NULL;
}

// ---- word cache -------------------------------------------------------------
// tokenizers' Cache: at most 10000 words, words of 256 bytes or more are not
// cached, and once full it stops inserting (no eviction). Lookups and inserts
// only try the lock, as tokenizers' try_read/try_write do: a busy cache is a
// miss, never a wait, so concurrent requests do not serialise on it.

#define CACHE_SLOTS 16384
#define CACHE_MAX_ENTRIES 10000
#define CACHE_MAX_WORD 256

struct cache_slot {
    char *key;  // NULL: empty
    uint32_t len, n_ids;
    int32_t *ids;
};

struct clip_bpe_cache {
    pthread_mutex_t mu;
    struct cache_slot *slots;
    size_t n;
};

struct clip_bpe_cache *clip_bpe_cache_new(void) {
    struct clip_bpe_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->slots = calloc(CACHE_SLOTS, sizeof *c->slots);
    if (!c->slots || pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c->slots);
        free(c);
        return NULL;
    }
    return c;
}

void clip_bpe_cache_free(struct clip_bpe_cache *c) {
    if (!c) return;
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        free(c->slots[i].key);
        free(c->slots[i].ids);
    }
    free(c->slots);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static size_t cache_index(const struct clip_bpe_cache *c, const uint8_t *w, size_t len) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) h = (h ^ w[i]) * 1099511628211ull;
    size_t j = h & (CACHE_SLOTS - 1);
    while (c->slots[j].key &&
           !(c->slots[j].len == len && memcmp(c->slots[j].key, w, len) == 0))
        j = (j + 1) & (CACHE_SLOTS - 1);
    return j;
}

// *hit = 1 when the word is cached (its ids appended to out); only the
// append can fail.
static enum hsd_status cache_get(struct clip_bpe_cache *c, const uint8_t *w, size_t len,
                                 struct clip_ids *out, int *hit) {
    *hit = 0;
    if (!c || len >= CACHE_MAX_WORD || pthread_mutex_trylock(&c->mu) != 0) return HSD_OK;
    enum hsd_status st = HSD_OK;
    struct cache_slot *s = &c->slots[cache_index(c, w, len)];
    if (s->key) {
        *hit = 1;
        for (uint32_t i = 0; i < s->n_ids && !st; i++) st = clip_ids_push(out, s->ids[i]);
    }
    pthread_mutex_unlock(&c->mu);
    return st;
}

static void cache_put(struct clip_bpe_cache *c, const uint8_t *w, size_t len, const int32_t *ids,
                      size_t n_ids) {
    if (!c || len >= CACHE_MAX_WORD || pthread_mutex_trylock(&c->mu) != 0) return;
    if (c->n < CACHE_MAX_ENTRIES) {
        struct cache_slot *s = &c->slots[cache_index(c, w, len)];
        if (!s->key) {
            char *key = malloc(len ? len : 1);
            int32_t *v = malloc((n_ids ? n_ids : 1) * sizeof *v);
            if (key && v) {  // out of memory: just do not cache
                memcpy(key, w, len);
                memcpy(v, ids, n_ids * sizeof *v);
                s->key = key;
                s->len = (uint32_t)len;
                s->ids = v;
                s->n_ids = (uint32_t)n_ids;
                c->n++;
            } else {
                free(key);
                free(v);
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
}

// ---- the merge loop ---------------------------------------------------------

struct sym {
    int32_t id;
    int32_t prev, next;  // -1: none
    int alive;
};

struct cand {
    int32_t rank, pos, new_id;
};

// Min-heap on (rank, pos): tokenizers' Merge orders by rank, then by the
// leftmost position, which reproduces simple_tokenizer.py's "merge the
// lowest-ranked pair, left to right" for every word.
static int cand_less(const struct cand *a, const struct cand *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(struct cand *h, size_t *n, struct cand c) {
    size_t i = (*n)++;
    h[i] = c;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&h[i], &h[p])) break;
        struct cand tmp = h[i];
        h[i] = h[p];
        h[p] = tmp;
        i = p;
    }
}

static struct cand heap_pop(struct cand *h, size_t *n) {
    struct cand top = h[0];
    h[0] = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && cand_less(&h[l], &h[m])) m = l;
        if (r < *n && cand_less(&h[r], &h[m])) m = r;
        if (m == i) break;
        struct cand tmp = h[i];
        h[i] = h[m];
        h[m] = tmp;
        i = m;
    }
    return top;
}

static void push_pair(const struct clip_merges *m, struct cand *h, size_t *nh,
                      const struct sym *s, int32_t pos) {
    const struct clip_merge_slot *ms = merge_get(m, s[pos].id, s[s[pos].next].id);
    if (ms) heap_push(h, nh, (struct cand){ms->rank, pos, ms->new_id});
}

enum hsd_status clip_bpe_word(const struct hsd_clip_tokenizer *t, const uint8_t *word,
                              size_t len, struct clip_ids *out) {
    if (len == 0) return HSD_OK;
    int hit;
    enum hsd_status st = cache_get(t->cache, word, len, out, &hit);
    if (st || hit) return st;

    // Symbols start as one byte-level character each, the last with
    // "</w>". A character missing from the vocab becomes unk (not fused with
    // its neighbours: fuse_unk false), or is dropped without an unk token
    // (tokenizers BPE::merge_word).
    struct sym *s = malloc(len * sizeof *s);
    struct cand *h = malloc(3 * len * sizeof *h);  // n-1 pairs + 2 per merge
    if (!s || !h) {
        free(s);
        free(h);
        return hsd_fail(HSD_ERR_NOMEM, "clip bpe: out of memory (word of %zu bytes)", len);
    }
    int32_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int32_t id = i + 1 == len ? t->byte_eow_id[word[i]] : t->byte_id[word[i]];
        if (id < 0) id = t->unk;
        if (id < 0) continue;
        s[n] = (struct sym){id, n - 1, n + 1, 1};
        n++;
    }
    if (n > 0) s[n - 1].next = -1;

    size_t nh = 0;
    for (int32_t i = 0; i + 1 < n; i++) push_pair(&t->merges, h, &nh, s, i);
    while (nh > 0) {
        struct cand c = heap_pop(h, &nh);
        struct sym *left = &s[c.pos];
        if (!left->alive || left->next < 0) continue;
        struct sym *right = &s[left->next];
        // An entry is stale when either symbol has changed since it was
        // queued; tokenizers checks that the pair still merges to new_id.
        const struct clip_merge_slot *ms = merge_get(&t->merges, left->id, right->id);
        if (!ms || ms->new_id != c.new_id) continue;
        left->id = c.new_id;
        right->alive = 0;
        left->next = right->next;
        if (right->next >= 0) s[right->next].prev = c.pos;
        if (left->prev >= 0) push_pair(&t->merges, h, &nh, s, left->prev);
        if (left->next >= 0) push_pair(&t->merges, h, &nh, s, c.pos);
    }

    size_t start = out->n;
    for (int32_t i = 0; i < n && !st; i++)
        if (s[i].alive) st = clip_ids_push(out, s[i].id);
    if (!st) cache_put(t->cache, word, len, out->v + start, out->n - start);
    free(s);
    free(h);
    return st;
}
