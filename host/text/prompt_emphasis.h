// AUTOMATIC1111's prompt emphasis syntax (`--prompt-style a1111`), as its
// wiki page "Features: Attention/emphasis" documents it and
// modules/prompt_parser.py parse_prompt_attention implements it:
//   (text)      weight x 1.1        [text]  weight / 1.1
//   (text:w)    weight x w          nesting multiplies: ((text)) = x 1.21
//   \( \) \[ \] \\   the literal character; a lone backslash is dropped
//   BREAK       (uppercase, a word of its own) ends the current 75-token chunk
// Brackets left open at the end apply their factor to the rest of the
// prompt, a closing bracket with no opener is literal text, and neighbouring
// pieces of equal weight are merged before tokenizing (so "\(x" is one
// piece "(x"), all as A1111 does.
//
// One rule is stricter than A1111, which raises a Python ValueError (and
// fails the whole generation) on them: inside round brackets, a ':' followed
// only by digits, signs, dots and spaces up to ')' is a weight and must be a
// number ("(a:1.2.3)", "(a:)", "(a:1 2)" fail with the byte offset). A ':'
// followed by anything else stays literal text, as in A1111 ("(style: oil)").
// Whitespace is ASCII plus \x1c-\x1f; a non-ASCII byte counts as a word
// character for BREAK's word boundaries (Python's \b on letters).
#ifndef HSD_TEXT_PROMPT_EMPHASIS_H
#define HSD_TEXT_PROMPT_EMPHASIS_H

#include <stddef.h>

#include "core/status.h"

struct hsd_emphasis_piece {
    char *text;     // NUL-terminated, escapes resolved (may be "")
    size_t len;
    double weight;  // products in double, in A1111's order
    int is_break;   // a BREAK marker (text "BREAK", weight -1 untouched by brackets)
};

struct hsd_emphasis {
    struct hsd_emphasis_piece *pieces;
    int n;  // >= 1: an empty prompt is one empty piece of weight 1
};

// Parses `len` bytes of `text` (no NUL needed). Fails with
// HSD_ERR_INVALID_ARG for a malformed weight, naming its byte offset.
enum hsd_status hsd_emphasis_parse(struct hsd_emphasis *out, const char *text, size_t len);
void hsd_emphasis_free(struct hsd_emphasis *e);

#endif
