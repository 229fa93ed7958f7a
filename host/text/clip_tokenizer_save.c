// Writing a loaded CLIP tokenizer as a tokenizer folder (e.g. the original
// bpe_simple_vocab_16e6.txt.gz as the vocab.json + merges.txt that SD
// pipelines ship). The special-token flags go into added_tokens_decoder, the
// form transformers itself trusts first (tokenization_utils_base.py
// from_pretrained), so the folder tokenizes exactly like `t`.
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "text/clip_internal.h"

static const char *const k_named_keys[CLIP_NAMED_COUNT] = {
    "bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"};

static enum hsd_status dump(json_t *j, const char *path) {
    if (!j) return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory building it", path);
    int rc = json_dump_file(j, path, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(j);
    return rc ? hsd_fail(HSD_ERR_IO, "%s: cannot write it", path) : HSD_OK;
}

enum hsd_status hsd_clip_tokenizer_save(const struct hsd_clip_tokenizer *t, const char *dir) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return hsd_fail(HSD_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    char path[4096];

    snprintf(path, sizeof path, "%s/vocab.json", dir);
    json_t *vocab = json_object();
    for (size_t i = 0; vocab && i < t->vocab.cap; i++) {
        const struct clip_vocab_slot *s = &t->vocab.slots[i];
        if (s->key && json_object_set_new(vocab, s->key, json_integer(s->id)) != 0) {
            json_decref(vocab);
            vocab = NULL;
        }
    }
    enum hsd_status st = dump(vocab, path);
    if (st) return st;

    snprintf(path, sizeof path, "%s/merges.txt", dir);
    FILE *f = fopen(path, "wb");
    if (!f) return hsd_fail(HSD_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    fputs("#version: 0.2\n", f);
    for (size_t r = 0; r < t->merges.n_list; r++)
        fprintf(f, "%s %s\n", t->vocab.tokens[t->merges.list[r][0]],
                t->vocab.tokens[t->merges.list[r][1]]);
    if (fclose(f) != 0) return hsd_fail(HSD_ERR_IO, "%s: write error", path);

    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    json_t *cfg = json_object(), *dec = json_object();
    for (int i = 0; cfg && dec && i < t->n_added; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", (int)t->added[i].id);
        json_object_set_new(dec, id, json_pack("{s:s,s:b,s:b,s:b,s:b,s:b}", "content",
                                               t->added[i].content, "lstrip", 0, "normalized",
                                               t->added[i].normalized, "rstrip", 0,
                                               "single_word", 0, "special", 1));
    }
    json_t *map = json_object();
    for (int i = 0; cfg && map && i < CLIP_NAMED_COUNT; i++) {
        if (!t->named[i]) continue;
        json_object_set_new(cfg, k_named_keys[i], json_string(t->named[i]));
        json_object_set_new(map, k_named_keys[i], json_string(t->named[i]));
    }
    if (cfg) {
        json_object_set_new(cfg, "added_tokens_decoder", dec);
        dec = NULL;
        if (t->model_max_length)
            json_object_set_new(cfg, "model_max_length", json_integer(t->model_max_length));
        json_object_set_new(cfg, "tokenizer_class", json_string("CLIPTokenizer"));
    }
    json_decref(dec);
    st = dump(cfg, path);
    if (st) {
        json_decref(map);
        return st;
    }
    snprintf(path, sizeof path, "%s/special_tokens_map.json", dir);
    return dump(map, path);
}
