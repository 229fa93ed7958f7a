// CLIP BPE tokenizer, exactly as transformers' CLIPTokenizer tokenizes for
// Stable Diffusion: text cleaning, the pre-tokenizer regex, byte-level BPE
// with "</w>" word ends, BOS 49406 / EOS 49407, fixed length with padding and
// truncation. The reference is transformers 5.23, where CLIPTokenizer is the
// `tokenizers` (Rust) pipeline: NFC + whitespace folding + lowercase, no
// ftfy, no HTML unescaping (host/text/clip_internal.h lists the stages).
// Goldens: tests/data/tokenizer (tests/oracle/make_tokenizer_cases.py).
// A loaded tokenizer is read-only and may be shared by threads.
#ifndef HSD_TEXT_CLIP_TOKENIZER_H
#define HSD_TEXT_CLIP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

struct hsd_clip_tokenizer;

// `path` is one of: a diffusers pipeline root (reads tokenizer/), a
// tokenizer folder (vocab.json + merges.txt [+ tokenizer_config.json,
// special_tokens_map.json]), or the original bpe_simple_vocab_16e6.txt.gz.
// Padding follows tokenizer_config.json / special_tokens_map.json (SD 1.x
// pads with EOS "<|endoftext|>", SD 2.x with "!"); the .gz form pads with EOS.
enum hsd_status hsd_clip_tokenizer_load(struct hsd_clip_tokenizer **out, const char *path);
// The .gz vocabulary with SD 2.x's settings (stabilityai/stable-diffusion-2-1
// tokenizer/: pads with "!", id 0), for SD 2.x single files.
enum hsd_status hsd_clip_tokenizer_load_sd2(struct hsd_clip_tokenizer **out, const char *gz);
void hsd_clip_tokenizer_free(struct hsd_clip_tokenizer *t);
// Path of the CLIP vocabulary shipped with hsd (host/text/data), for models
// without a tokenizer folder: $HSD_CLIP_BPE_GZ, else the installed copy,
// else the source tree's (text/clip_vocab_default.c).
enum hsd_status hsd_clip_default_vocab(char *out, size_t cap);

// Tokenizes UTF-8 `text` (len bytes) to exactly `max_len` ids (77 for SD):
// BOS, tokens truncated to max_len - 2, EOS, then padding. *n_used receives
// the count before padding (BOS and EOS included). Invalid UTF-8 fails with
// HSD_ERR_INVALID_ARG naming the byte offset. Special tokens written in the
// text become their ids, as in transformers ("<|endoftext|>"; with SD 2.x's
// config also every "!", its pad token).
enum hsd_status hsd_clip_tokenize(const struct hsd_clip_tokenizer *t, const char *text,
                                  size_t len, int32_t *ids, int max_len, int *n_used);

int32_t hsd_clip_tokenizer_bos(const struct hsd_clip_tokenizer *t);
int32_t hsd_clip_tokenizer_eos(const struct hsd_clip_tokenizer *t);
int32_t hsd_clip_tokenizer_pad(const struct hsd_clip_tokenizer *t);
// Largest id + 1 (the text encoder's embedding rows): 49408 for SD.
int hsd_clip_tokenizer_vocab_size(const struct hsd_clip_tokenizer *t);
// tokenizer_config.json's model_max_length (77 for SD); 0 if not given.
int hsd_clip_tokenizer_model_max_length(const struct hsd_clip_tokenizer *t);
// The token string of an id ("a</w>", "<|endoftext|>"), NULL if none.
const char *hsd_clip_tokenizer_token(const struct hsd_clip_tokenizer *t, int32_t id);

// Writes `t` as a tokenizer folder that transformers' CLIPTokenizer and
// hsd_clip_tokenizer_load read back to the same tokenizer: vocab.json,
// merges.txt, tokenizer_config.json (with added_tokens_decoder, so the
// special-token flags survive), special_tokens_map.json. Creates `dir`.
enum hsd_status hsd_clip_tokenizer_save(const struct hsd_clip_tokenizer *t, const char *dir);

#endif
