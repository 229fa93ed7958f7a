// A1111's long prompts (`--prompt-style a1111`): the emphasis pieces of
// text/prompt_emphasis.h tokenized one by one and cut into chunks of 75
// tokens, each encoded by CLIP on its own as BOS + 75 + EOS and the results
// concatenated, so the U-Net's context is 77 x chunks tokens. Rules, as the
// A1111 wiki ("Infinite prompt length", "BREAK keyword") documents them and
// modules/sd_hijack_clip.py tokenize_line implements them:
//   - a chunk is full at 75 tokens; the next token starts a new one;
//   - a full chunk whose last comma is at most 20 tokens back is cut after
//     that comma and the rest moves on (A1111's "comma padding backtrack",
//     default 20);
//   - BREAK closes the current chunk (padding it);
//   - a chunk holds BOS, its tokens, EOS, then the tokenizer's pad id (A1111
//     pads SD 1.x with EOS and SD 2.x with id 0, which are these
//     tokenizers' pad tokens); BOS, EOS and padding have weight 1;
//   - an empty prompt is one chunk.
#ifndef HSD_TEXT_PROMPT_CHUNKS_H
#define HSD_TEXT_PROMPT_CHUNKS_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "text/clip_tokenizer.h"

#define HSD_PROMPT_CHUNK_TOKENS 75
#define HSD_PROMPT_CHUNK_LEN 77     // BOS + 75 + EOS
#define HSD_PROMPT_MAX_CHUNKS 8     // 600 tokens: bounds a request's context and its RESULT
#define HSD_PROMPT_COMMA_BACKTRACK 20

struct hsd_prompt_chunks {
    int n;            // chunks, 1..HSD_PROMPT_MAX_CHUNKS
    int32_t *ids;     // [n, 77]
    float *weights;   // [n, 77] emphasis multipliers
};

// Fails for invalid UTF-8, a malformed weight, or more than
// HSD_PROMPT_MAX_CHUNKS chunks (the message gives the count).
enum hsd_status hsd_prompt_chunks_a1111(struct hsd_prompt_chunks *out,
                                        const struct hsd_clip_tokenizer *t, const char *text,
                                        size_t len);
void hsd_prompt_chunks_free(struct hsd_prompt_chunks *c);

#endif
