// *.safetensors.index.json -> struct hsd_weights_index (weights_index.h).
// The format is transformers' modeling_utils / diffusers' save_pretrained
// sharding: only "weight_map" is read; "metadata" (total_size) is ignored,
// the shards' own headers are the truth for sizes.
#include "io/weights_index.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "io/config_json.h"
#include "io/file.h"

void hsd_weights_index_free(struct hsd_weights_index *idx) {
    for (size_t i = 0; i < idx->n_files; i++) free(idx->files[i]);
    for (size_t i = 0; i < idx->n; i++) free(idx->names[i]);
    free(idx->files);
    free(idx->names);
    free(idx->file_of);
    memset(idx, 0, sizeof *idx);
}

static int plain_shard_name(const char *f) {
    size_t l = strlen(f), k = strlen(".safetensors");
    return l > k && l < 256 && f[0] != '.' && !strchr(f, '/') && !strchr(f, '\\') &&
           !strcmp(f + l - k, ".safetensors");
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// Index of `f` in the sorted, distinct idx->files.
static size_t file_index(const struct hsd_weights_index *idx, const char *f) {
    char *const *hit = bsearch(&f, idx->files, idx->n_files, sizeof *idx->files, cmp_str);
    return (size_t)(hit - idx->files);
}

static enum hsd_status parse_map(struct hsd_weights_index *idx, json_t *map, const char *label) {
    size_t n = json_object_size(map);
    if (!n) return hsd_cfg_bad(label, "weight_map", "is empty");
    idx->names = calloc(n, sizeof *idx->names);
    idx->file_of = calloc(n, sizeof *idx->file_of);
    char **all = calloc(n, sizeof *all);  // shard name per tensor, borrowed
    if (!idx->names || !idx->file_of || !all) {
        free(all);
        return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", label);
    }
    const char *key;
    json_t *v;
    json_object_foreach(map, key, v) {
        const char *f = json_is_string(v) ? json_string_value(v) : NULL;
        if (!f || !plain_shard_name(f)) {
            free(all);
            return hsd_fail(HSD_ERR_FORMAT,
                            "%s: config key 'weight_map': tensor '%.200s' maps to %s; expected "
                            "a .safetensors file name in the index's folder",
                            label, key,
                            f ? "a path outside the index's folder or a non-.safetensors name"
                              : "a non-string");
        }
        all[idx->n] = (char *)f;
        if (!(idx->names[idx->n++] = strdup(key))) {
            free(all);
            return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", label);
        }
    }
    // Distinct shard names: sort a copy of the per-tensor list, keep firsts.
    char **sorted = malloc(n * sizeof *sorted);
    if (!sorted || !(idx->files = calloc(n, sizeof *idx->files))) {
        free(sorted);
        free(all);
        return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", label);
    }
    memcpy(sorted, all, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_str);
    enum hsd_status s = HSD_OK;
    for (size_t i = 0; i < n && !s; i++) {
        if (i && !strcmp(sorted[i], sorted[i - 1])) continue;
        if (idx->n_files == HSD_WEIGHTS_MAX_SHARDS)
            s = hsd_fail(HSD_ERR_FORMAT, "%s: more than %d shard files", label,
                         HSD_WEIGHTS_MAX_SHARDS);
        else if (!(idx->files[idx->n_files++] = strdup(sorted[i])))
            s = hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", label);
    }
    for (size_t i = 0; i < n && !s; i++) idx->file_of[i] = file_index(idx, all[i]);
    free(sorted);
    free(all);
    return s;
}

enum hsd_status hsd_weights_index_parse(struct hsd_weights_index *idx, const char *json,
                                        size_t len, const char *label) {
    memset(idx, 0, sizeof *idx);
    json_t *root;
    enum hsd_status s = hsd_cfg_parse(json, len, label, &root);
    if (s) return s;
    json_t *map = json_object_get(root, "weight_map");
    if (!map || !json_is_object(map))
        s = hsd_cfg_bad(label, "weight_map", "missing or not an object of tensor -> shard file");
    else
        s = parse_map(idx, map, label);
    json_decref(root);
    if (s) hsd_weights_index_free(idx);
    return s;
}

static enum hsd_status parse_text(void *idx, const char *text, size_t len, const char *label) {
    return hsd_weights_index_parse(idx, text, len, label);
}

enum hsd_status hsd_weights_index_load(struct hsd_weights_index *idx, const char *path) {
    memset(idx, 0, sizeof *idx);
    return hsd_parse_small_file(path, 16u << 20, "index", parse_text, idx);
}
