// Sharded checkpoints (io/weights_index.h, io/weights.c): the index parser's
// refusals (a shard path out of its folder, a non-string, no weight_map),
// and an index that disagrees with its shards, on a copy of the diffusers-
// sharded edge U-Net of tests/data/pipeline_sdxl (made by
// make_sdxl_pipeline_cases.py with max_shard_size; its parity with the
// unsharded weights is in test_pipeline pipeline_sdxl).
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/weights.h"
#include "io/weights_index.h"
#include "testutil.h"

#define SRC HSD_TEST_DATA "/pipeline_sdxl/edge_sharded/unet"
#define INDEX "diffusion_pytorch_model.safetensors.index.fp16.json"

static void expect_parse_fail(const char *json, const char *word) {
    struct hsd_weights_index idx;
    enum hsd_status s = hsd_weights_index_parse(&idx, json, strlen(json), "idx.json");
    printf("%-60.60s -> %s: %s\n", json, hsd_status_str(s), hsd_last_error());
    CHECKF(s == HSD_ERR_FORMAT && strstr(hsd_last_error(), word), "%s: %s", json,
           hsd_last_error());
    CHECK(idx.n == 0 && idx.n_files == 0);
}

static void check_parse(void) {
    const char *ok = "{\"metadata\": {\"total_size\": 1}, \"weight_map\": {\"b\": "
                     "\"m-2.safetensors\", \"a\": \"m-1.safetensors\", \"c\": \"m-2.safetensors\"}}";
    struct hsd_weights_index idx;
    CHECK_OK(hsd_weights_index_parse(&idx, ok, strlen(ok), "ok"));
    CHECK(idx.n == 3 && idx.n_files == 2);
    for (size_t i = 0; i < idx.n; i++) {
        // Tensor "a" lives in m-1, "b" and "c" in m-2.
        const char *want = !strcmp(idx.names[i], "a") ? "m-1.safetensors" : "m-2.safetensors";
        CHECKF(!strcmp(idx.files[idx.file_of[i]], want), "%s in %s", idx.names[i],
               idx.files[idx.file_of[i]]);
    }
    hsd_weights_index_free(&idx);
    expect_parse_fail("{\"weight_map\": {\"a\": \"../x.safetensors\"}}", "outside");
    expect_parse_fail("{\"weight_map\": {\"a\": \"/etc/x.safetensors\"}}", "outside");
    expect_parse_fail("{\"weight_map\": {\"a\": \"m.bin\"}}", "non-.safetensors");
    expect_parse_fail("{\"weight_map\": {\"a\": 3}}", "non-string");
    expect_parse_fail("{\"weight_map\": {}}", "empty");
    expect_parse_fail("{\"metadata\": {}}", "weight_map");
}

// A copy of the sharded folder whose index is edited by `edit`.
static void check_disagreement(const char *tmp, void (*edit)(json_t *map), const char *word,
                               enum hsd_status want) {
    char cmd[1200], path[800];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/u' && cp -r '%s' '%s/u'", tmp, SRC, tmp);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/u/%s", tmp, INDEX);
    json_t *root = json_load_file(path, 0, NULL);
    CHECK(root != NULL);
    if (!root) return;
    edit(json_object_get(root, "weight_map"));
    CHECK(json_dump_file(root, path, 0) == 0);
    json_decref(root);
    struct hsd_weights *w = NULL;
    enum hsd_status s = hsd_weights_open_diffusers(&w, path);
    printf("index edited -> %s: %s\n", hsd_status_str(s), hsd_last_error());
    CHECKF(s == want && strstr(hsd_last_error(), word) && strstr(hsd_last_error(), INDEX),
           "want %s naming '%s' and the index: %s", hsd_status_str(want), word, hsd_last_error());
    hsd_weights_close(w);
}

static void drop_one(json_t *map) { json_object_del(map, "conv_in.weight"); }
static void move_one(json_t *map) {
    const char *f = json_string_value(json_object_get(map, "conv_in.weight"));
    // Another shard of the three.
    char other[200];
    snprintf(other, sizeof other, "%s", f);
    char *d = strstr(other, "-0000");
    if (d) d[5] = d[5] == '1' ? '2' : '1';
    json_object_set_new(map, "conv_in.weight", json_string(other));
}
static void add_missing(json_t *map) {
    json_object_set_new(map, "conv_in.weight_extra",
                        json_string(json_string_value(json_object_get(map, "conv_in.weight"))));
}

int main(void) {
    check_parse();
    // The real sharded folder opens as one map, path = the index.
    struct hsd_weights *w = NULL;
    char path[600];
    snprintf(path, sizeof path, "%s/" INDEX, SRC);
    CHECK_OK(hsd_weights_open_diffusers(&w, path));
    if (w) {
        printf("sharded edge U-Net: %zu tensors from %s\n", hsd_weights_count(w),
               hsd_weights_path(w));
        CHECK(hsd_weights_count(w) > 100 && hsd_weights_find(w, "conv_in.weight"));
        CHECK(!strcmp(hsd_weights_path(w), path));
    }
    hsd_weights_close(w);
    char tmp[] = "/tmp/hsd_test_weights_index_XXXXXX";
    CHECK(mkdtemp(tmp) != NULL);
    check_disagreement(tmp, drop_one, "index lists", HSD_ERR_FORMAT);
    check_disagreement(tmp, move_one, "missing from shard", HSD_ERR_NOT_FOUND);
    check_disagreement(tmp, add_missing, "conv_in.weight_extra", HSD_ERR_NOT_FOUND);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    CHECK(system(cmd) == 0);
    return hsd_test_finish();
}
