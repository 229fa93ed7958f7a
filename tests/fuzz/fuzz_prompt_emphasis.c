// libFuzzer target for A1111 prompts (--prompt-style a1111): the emphasis
// parser (text/prompt_emphasis.c) and the 75-token chunker
// (text/prompt_chunks.c) read prompts that come from the network (GENERATE,
// the A1111 HTTP API). Any input must either parse or fail with
// HSD_ERR_INVALID_ARG (malformed weight, invalid UTF-8, too many chunks);
// never crash, leak or read past `size` (exact-size copy, no NUL). A
// successful parse is well formed: at least one piece, each NUL-terminated
// at its length with a finite weight; chunks of 77 start with BOS and end
// with EOS or padding, ids in the vocabulary, weights finite.
//
// The vocab is OpenAI's bpe_simple_vocab_16e6.txt.gz (HSD_CLIP_BPE_GZ from
// tests/fuzz.cmake), loaded once.
// Run: scripts/fuzz.sh [SECONDS]   (seed corpus: tests/fuzz/corpus/prompt_emphasis)
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/prompt_chunks.h"
#include "text/prompt_emphasis.h"

#ifndef HSD_CLIP_BPE_GZ
#error "HSD_CLIP_BPE_GZ is set by tests/fuzz.cmake"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct hsd_clip_tokenizer *g_tok;  // process lifetime: still reachable

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if (hsd_clip_tokenizer_load(&g_tok, HSD_CLIP_BPE_GZ) != HSD_OK) {
        fprintf(stderr, "fuzz_prompt_emphasis: %s\n", hsd_last_error());
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size ? size : 1);
    if (!text) return 0;
    if (size) memcpy(text, data, size);
    struct hsd_emphasis e;
    enum hsd_status s = hsd_emphasis_parse(&e, text, size);
    if (s == HSD_OK) {
        if (e.n < 1) abort();
        for (int i = 0; i < e.n; i++)
            if (strlen(e.pieces[i].text) > e.pieces[i].len || e.pieces[i].text[e.pieces[i].len] ||
                !isfinite(e.pieces[i].weight))
                abort();
        hsd_emphasis_free(&e);
    } else if (s != HSD_ERR_INVALID_ARG) {
        abort();
    }
    struct hsd_prompt_chunks c;
    s = hsd_prompt_chunks_a1111(&c, g_tok, text, size);
    if (s == HSD_OK) {
        if (c.n < 1 || c.n > HSD_PROMPT_MAX_CHUNKS) abort();
        for (int k = 0; k < c.n; k++) {
            const int32_t *ids = c.ids + (size_t)k * HSD_PROMPT_CHUNK_LEN;
            const float *w = c.weights + (size_t)k * HSD_PROMPT_CHUNK_LEN;
            // A typed "<|endoftext|>" is an EOS inside the tokens (as in
            // transformers), so only the frame is checked: BOS first, EOS or
            // padding last, ids in the vocab, finite weights.
            int32_t last = ids[HSD_PROMPT_CHUNK_LEN - 1];
            if (ids[0] != hsd_clip_tokenizer_bos(g_tok) || w[0] != 1.0f ||
                (last != hsd_clip_tokenizer_eos(g_tok) && last != hsd_clip_tokenizer_pad(g_tok)))
                abort();
            for (int i = 0; i < HSD_PROMPT_CHUNK_LEN; i++)
                if (ids[i] < 0 || ids[i] >= hsd_clip_tokenizer_vocab_size(g_tok) || !isfinite(w[i]))
                    abort();
        }
        hsd_prompt_chunks_free(&c);
    } else if (s != HSD_ERR_INVALID_ARG && s != HSD_ERR_NOMEM) {
        abort();
    }
    free(text);
    return 0;
}
