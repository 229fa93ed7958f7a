// CLIP BPE tokenizer, exactly as transformers' CLIPTokenizer (slow, Python)
// tokenizes for Stable Diffusion: text cleaning, the pre-tokenizer regex,
// byte-level BPE with "</w>" word ends, BOS 49406 / EOS 49407, fixed length
// with padding and truncation.
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
void hsd_clip_tokenizer_free(struct hsd_clip_tokenizer *t);

// Tokenizes UTF-8 `text` (len bytes) to exactly `max_len` ids (77 for SD):
// BOS, tokens truncated to max_len - 2, EOS, then padding. *n_used receives
// the count before padding (BOS and EOS included). Invalid UTF-8 fails with
// HSD_ERR_INVALID_ARG naming the byte offset.
enum hsd_status hsd_clip_tokenize(const struct hsd_clip_tokenizer *t, const char *text,
                                  size_t len, int32_t *ids, int max_len, int *n_used);

int32_t hsd_clip_tokenizer_bos(const struct hsd_clip_tokenizer *t);
int32_t hsd_clip_tokenizer_eos(const struct hsd_clip_tokenizer *t);
int32_t hsd_clip_tokenizer_pad(const struct hsd_clip_tokenizer *t);
int hsd_clip_tokenizer_vocab_size(const struct hsd_clip_tokenizer *t);

#endif
