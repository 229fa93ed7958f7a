// libFuzzer target for the CLIP tokenizer (host/text): prompts are untrusted
// bytes from the network. Any input must either tokenize or fail with
// HSD_ERR_INVALID_ARG (invalid UTF-8); never crash, leak or read past `size`
// (the input is passed with its exact length and no NUL terminator). A
// successful result must be well formed: BOS first, EOS last, ids in the
// vocab, padding after, and the same tokens as a longer max_len up to the
// truncation point (truncation only cuts).
//
// The vocab is OpenAI's bpe_simple_vocab_16e6.txt.gz (HSD_CLIP_BPE_GZ from
// tests/fuzz.cmake), loaded once.
// Run: scripts/fuzz.sh [SECONDS]   (seed corpus: tests/fuzz/corpus/tokenizer)
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/clip_tokenizer.h"

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
        fprintf(stderr, "fuzz_tokenizer: %s\n", hsd_last_error());
        abort();
    }
    return 0;
}

#define LONG_MAX_LEN 300

static void check_well_formed(const int32_t *ids, int n, int max_len) {
    int vocab = hsd_clip_tokenizer_vocab_size(g_tok);
    if (n < 2 || n > max_len) abort();
    if (ids[0] != hsd_clip_tokenizer_bos(g_tok) || ids[n - 1] != hsd_clip_tokenizer_eos(g_tok))
        abort();
    for (int i = 0; i < max_len; i++)
        if (ids[i] < 0 || ids[i] >= vocab) abort();
    for (int i = n; i < max_len; i++)
        if (ids[i] != hsd_clip_tokenizer_pad(g_tok)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    // An exact-size heap copy: a read one byte too far hits ASan's redzone.
    char *text = malloc(size ? size : 1);
    if (!text) return 0;
    if (size) memcpy(text, data, size);

    int32_t ids[77], more[LONG_MAX_LEN];
    int n = 0, n_more = 0;
    enum hsd_status s = hsd_clip_tokenize(g_tok, text, size, ids, 77, &n);
    if (s != HSD_OK && s != HSD_ERR_INVALID_ARG) abort();
    enum hsd_status s2 = hsd_clip_tokenize(g_tok, text, size, more, LONG_MAX_LEN, &n_more);
    if (s2 != s) abort();  // validity does not depend on max_len
    if (s == HSD_OK) {
        check_well_formed(ids, n, 77);
        check_well_formed(more, n_more, LONG_MAX_LEN);
        // The 77-id result is the longer one cut after n - 2 tokens.
        if (n_more < n || memcmp(ids + 1, more + 1, (size_t)(n - 2) * sizeof *ids) != 0)
            abort();
        if (n < 77 && n_more != n) abort();
    }
    free(text);
    return 0;
}
