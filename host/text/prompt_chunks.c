// A1111 modules/sd_hijack_clip.py TextConditionalModel.tokenize_line, on
// our tokenizer (rules in text/prompt_chunks.h).
#include "text/prompt_chunks.h"

#include <stdlib.h>
#include <string.h>

#include "text/prompt_emphasis.h"

struct chunker {
    struct hsd_prompt_chunks *out;
    int32_t bos, eos, pad;
    int32_t tok[HSD_PROMPT_CHUNK_TOKENS];  // the chunk being filled
    float mult[HSD_PROMPT_CHUNK_TOKENS];
    int n_tok, last_comma;
};

// A1111 next_chunk: closes the current chunk (BOS, tokens, EOS, padding).
static enum hsd_status next_chunk(struct chunker *c) {
    struct hsd_prompt_chunks *o = c->out;
    if (o->n == HSD_PROMPT_MAX_CHUNKS)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "more than %d tokens (%d chunks of %d; BREAK and comma "
                        "wrapping count): shorten it",
                        HSD_PROMPT_MAX_CHUNKS * HSD_PROMPT_CHUNK_TOKENS, HSD_PROMPT_MAX_CHUNKS,
                        HSD_PROMPT_CHUNK_TOKENS);
    int32_t *ids = o->ids + (size_t)o->n * HSD_PROMPT_CHUNK_LEN;
    float *w = o->weights + (size_t)o->n * HSD_PROMPT_CHUNK_LEN;
    ids[0] = c->bos;
    w[0] = 1.0f;
    memcpy(ids + 1, c->tok, (size_t)c->n_tok * sizeof *ids);
    memcpy(w + 1, c->mult, (size_t)c->n_tok * sizeof *w);
    ids[c->n_tok + 1] = c->eos;
    w[c->n_tok + 1] = 1.0f;
    for (int i = c->n_tok + 2; i < HSD_PROMPT_CHUNK_LEN; i++) {
        ids[i] = c->pad;
        w[i] = 1.0f;
    }
    o->n++;
    c->n_tok = 0;
    c->last_comma = -1;
    return HSD_OK;
}

static enum hsd_status add_token(struct chunker *c, int32_t token, float weight, int32_t comma) {
    enum hsd_status st;
    if (token == comma) {
        c->last_comma = c->n_tok;
    } else if (c->n_tok == HSD_PROMPT_CHUNK_TOKENS && c->last_comma != -1 &&
               c->n_tok - c->last_comma <= HSD_PROMPT_COMMA_BACKTRACK) {
        // Cut after the last comma; what follows it opens the next chunk.
        int at = c->last_comma + 1, k = c->n_tok - at;
        int32_t tok[HSD_PROMPT_CHUNK_TOKENS];
        float mult[HSD_PROMPT_CHUNK_TOKENS];
        memcpy(tok, c->tok + at, (size_t)k * sizeof *tok);
        memcpy(mult, c->mult + at, (size_t)k * sizeof *mult);
        c->n_tok = at;
        if ((st = next_chunk(c))) return st;
        memcpy(c->tok, tok, (size_t)k * sizeof *tok);
        memcpy(c->mult, mult, (size_t)k * sizeof *mult);
        c->n_tok = k;
    }
    if (c->n_tok == HSD_PROMPT_CHUNK_TOKENS && (st = next_chunk(c))) return st;
    c->tok[c->n_tok] = token;
    c->mult[c->n_tok++] = weight;
    return HSD_OK;
}

// The piece's tokens without BOS/EOS and untruncated: [*n] malloc'd.
static enum hsd_status piece_tokens(int32_t **out, int *n, const struct hsd_clip_tokenizer *t,
                                    const char *s, size_t len) {
    // Cleaning (NFC, lowercase) can grow the text a little; retry larger
    // when the guess is filled.
    for (size_t cap = 2 * len + 8;; cap *= 2) {
        if (cap > (size_t)1 << 28) return hsd_fail(HSD_ERR_INVALID_ARG, "prompt: too long");
        int32_t *ids = malloc(cap * sizeof *ids);
        if (!ids) return hsd_fail(HSD_ERR_NOMEM, "prompt: out of memory");
        int used;
        enum hsd_status st = hsd_clip_tokenize(t, s, len, ids, (int)cap, &used);
        if (st || (size_t)used < cap) {
            if (st) {
                free(ids);
                return st;
            }
            *n = used - 2;
            memmove(ids, ids + 1, (size_t)*n * sizeof *ids);
            *out = ids;
            return HSD_OK;
        }
        free(ids);
    }
}

enum hsd_status hsd_prompt_chunks_a1111(struct hsd_prompt_chunks *out,
                                        const struct hsd_clip_tokenizer *t, const char *text,
                                        size_t len) {
    memset(out, 0, sizeof *out);
    struct hsd_emphasis e;
    enum hsd_status st = hsd_emphasis_parse(&e, text, len);
    if (st) return st;
    size_t cells = (size_t)HSD_PROMPT_MAX_CHUNKS * HSD_PROMPT_CHUNK_LEN;
    out->ids = malloc(cells * sizeof *out->ids);
    out->weights = malloc(cells * sizeof *out->weights);
    struct chunker c = {.out = out,
                        .bos = hsd_clip_tokenizer_bos(t),
                        .eos = hsd_clip_tokenizer_eos(t),
                        .pad = hsd_clip_tokenizer_pad(t),
                        .last_comma = -1};
    int32_t comma = -1, probe[3];
    int used;
    if (!out->ids || !out->weights) st = hsd_fail(HSD_ERR_NOMEM, "prompt: out of memory");
    // A1111's comma_token is vocab[",</w>"]: what "," alone tokenizes to.
    if (!st) st = hsd_clip_tokenize(t, ",", 1, probe, 3, &used);
    if (!st && used == 3) comma = probe[1];
    for (int i = 0; i < e.n && !st; i++) {
        if (e.pieces[i].is_break) {
            st = next_chunk(&c);
            continue;
        }
        int32_t *ids = NULL;
        int n = 0;
        st = piece_tokens(&ids, &n, t, e.pieces[i].text, e.pieces[i].len);
        for (int k = 0; k < n && !st; k++) st = add_token(&c, ids[k], (float)e.pieces[i].weight, comma);
        free(ids);
    }
    if (!st && (c.n_tok || !out->n)) st = next_chunk(&c);
    hsd_emphasis_free(&e);
    if (st) hsd_prompt_chunks_free(out);
    return st;
}

void hsd_prompt_chunks_free(struct hsd_prompt_chunks *c) {
    if (!c) return;
    free(c->ids);
    free(c->weights);
    memset(c, 0, sizeof *c);
}
