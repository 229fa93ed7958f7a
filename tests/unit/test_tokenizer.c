// CLIP tokenizer (host/text) against transformers 5.23's CLIPTokenizer:
// tests/data/tokenizer/golden.json (the real 49408-token BPE, SD 1.x and SD
// 2.x special-token configs) and tiny_golden.json (the tiny test tokenizer),
// made by tests/oracle/make_tokenizer_cases.py. Every prompt must give the
// same 77 ids and the same count of real tokens. The real vocab is read both
// from OpenAI's bpe_simple_vocab_16e6.txt.gz and from a tokenizer folder
// written from it (as a model root, with SD's own config files), and all
// give identical ids. Then: invalid UTF-8 fails naming the byte offset,
// missing or broken files fail naming the path, concurrent use is safe.
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "testutil.h"
#include "text/clip_tokenizer.h"

#ifndef HSD_CLIP_BPE_GZ
#error "HSD_CLIP_BPE_GZ (path of bpe_simple_vocab_16e6.txt.gz) is set by tests/text.cmake"
#endif

#define MAX_IDS 512

static char g_tmp[1024];  // scratch folder under the build tree

// ---- helpers ---------------------------------------------------------------

static void print_escaped(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20 || c == 0x7f) fprintf(f, "\\x%02x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void print_ids(FILE *f, const char *what, const int32_t *ids, int n) {
    fprintf(f, "  %s:", what);
    for (int i = 0; i < n; i++) fprintf(f, " %d", (int)ids[i]);
    fputc('\n', f);
}

static json_t *load_json(const char *path) {
    json_error_t e;
    json_t *j = json_load_file(path, JSON_ALLOW_NUL, &e);
    CHECKF(j != NULL, "%s: line %d: %s", path, e.line, e.text);
    return j;
}

static int write_json(const char *path, json_t *j) {
    int rc = json_dump_file(j, path, JSON_INDENT(2) | JSON_SORT_KEYS);
    CHECKF(rc == 0, "cannot write %s", path);
    return rc;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    CHECKF(f != NULL, "cannot create %s: %s", path, strerror(errno));
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void make_dir(const char *path) {
    CHECKF(mkdir(path, 0777) == 0 || errno == EEXIST, "mkdir %s: %s", path, strerror(errno));
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

// Runs every case of `cases` through `t`; counts mismatches, prints the
// first. If `same_as` is given, also checks ids equal to that tokenizer's.
static void run_cases(const char *label, const struct hsd_clip_tokenizer *t, json_t *cases,
                      const struct hsd_clip_tokenizer *same_as) {
    size_t n_bad = 0, n_diff = 0, idx;
    json_t *c;
    json_array_foreach(cases, idx, c) {
        json_t *jp = json_object_get(c, "prompt"), *jids = json_object_get(c, "ids");
        const char *prompt = json_string_value(jp);
        size_t len = json_string_length(jp);
        int max_len = 77;
        if (json_object_get(c, "max_length"))
            max_len = (int)json_integer_value(json_object_get(c, "max_length"));
        int want_n = (int)json_integer_value(json_object_get(c, "n"));
        int32_t want[MAX_IDS], got[MAX_IDS], other[MAX_IDS];
        if (!prompt || (int)json_array_size(jids) != max_len || max_len > MAX_IDS) {
            CHECKF(0, "%s: case %zu is malformed", label, idx);
            continue;
        }
        for (int i = 0; i < max_len; i++)
            want[i] = (int32_t)json_integer_value(json_array_get(jids, (size_t)i));
        int n = -1;
        enum hsd_status s = hsd_clip_tokenize(t, prompt, len, got, max_len, &n);
        int ok = s == HSD_OK && n == want_n && memcmp(got, want, (size_t)max_len * 4) == 0;
        if (!ok && n_bad++ == 0) {
            fprintf(stderr, "%s: case %zu: prompt ", label, idx);
            print_escaped(stderr, prompt, len);
            fprintf(stderr, "\n  status %s (%s), n %d, expected n %d\n", hsd_status_str(s),
                    hsd_last_error(), n, want_n);
            print_ids(stderr, "ours    ", got, max_len);
            print_ids(stderr, "expected", want, max_len);
        }
        if (same_as) {
            int n2 = -1;
            s = hsd_clip_tokenize(same_as, prompt, len, other, max_len, &n2);
            if (s != HSD_OK || n2 != n || memcmp(got, other, (size_t)max_len * 4) != 0)
                n_diff++;
        }
    }
    CHECKF(n_bad == 0, "%s: %zu of %zu prompts differ from transformers", label, n_bad,
           json_array_size(cases));
    if (same_as)
        CHECKF(n_diff == 0, "%s: %zu prompts differ between the two forms", label, n_diff);
    printf("%s: %zu prompts, %zu mismatches\n", label, json_array_size(cases), n_bad);
}

// ---- the real vocab ---------------------------------------------------------

// Writes a model root <g_tmp>/<name>/tokenizer/ with the vocab of `t` and the
// given config files (NULL: keep what hsd_clip_tokenizer_save wrote).
static void make_root(const char *name, const struct hsd_clip_tokenizer *t, json_t *config,
                      json_t *special_map, char *root, size_t cap) {
    char dir[1200], path[1300];
    snprintf(root, cap, "%s/%s", g_tmp, name);
    make_dir(root);
    snprintf(dir, sizeof dir, "%s/tokenizer", root);
    CHECK_OK(hsd_clip_tokenizer_save(t, dir));
    if (config) {
        snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
        write_json(path, config);
    }
    if (special_map) {
        snprintf(path, sizeof path, "%s/special_tokens_map.json", dir);
        write_json(path, special_map);
    }
}

static void test_real_vocab(void) {
    if (!file_exists(HSD_CLIP_BPE_GZ)) {
        CHECKF(0, "%s is missing: the tokenizer goldens need OpenAI's BPE vocab (configure with "
               "-DHSD_CLIP_BPE_GZ=PATH)", HSD_CLIP_BPE_GZ);
        return;
    }
    json_t *golden = load_json(HSD_TEST_DATA "/tokenizer/golden.json");
    if (!golden) return;
    json_t *sets = json_object_get(golden, "sets");
    json_t *sd15 = json_object_get(sets, "sd15"), *sd2 = json_object_get(sets, "sd2");
    CHECK(json_array_size(json_object_get(sd15, "cases")) >= 200);

    struct hsd_clip_tokenizer *gz = NULL;
    CHECK_OK(hsd_clip_tokenizer_load(&gz, HSD_CLIP_BPE_GZ));
    if (!gz) {
        json_decref(golden);
        return;
    }
    CHECK(hsd_clip_tokenizer_vocab_size(gz) == 49408);
    CHECK(hsd_clip_tokenizer_bos(gz) == 49406);
    CHECK(hsd_clip_tokenizer_eos(gz) == 49407);
    CHECK(hsd_clip_tokenizer_pad(gz) == 49407);
    CHECK(hsd_clip_tokenizer_model_max_length(gz) == 77);
    CHECK(hsd_clip_tokenizer_token(gz, 320) && !strcmp(hsd_clip_tokenizer_token(gz, 320), "a</w>"));
    run_cases("sd15 .gz", gz, json_object_get(sd15, "cases"), NULL);

    // The folder hsd_clip_tokenizer_save writes (added_tokens_decoder form).
    char root[1100];
    struct hsd_clip_tokenizer *t = NULL;
    make_root("saved", gz, NULL, NULL, root, sizeof root);
    CHECK_OK(hsd_clip_tokenizer_load(&t, root));
    if (t) run_cases("sd15 saved folder", t, json_object_get(sd15, "cases"), gz);
    hsd_clip_tokenizer_free(t);
    t = NULL;

    // SD 1.x's own config files (AddedToken dicts, special_tokens_map.json).
    make_root("sd15", gz, json_object_get(sd15, "tokenizer_config"),
              json_object_get(sd15, "special_tokens_map"), root, sizeof root);
    CHECK_OK(hsd_clip_tokenizer_load(&t, root));
    if (t) run_cases("sd15 model root", t, json_object_get(sd15, "cases"), gz);
    hsd_clip_tokenizer_free(t);
    t = NULL;

    // SD 2.x: pad "!" (id 0), which also makes "!" a special token.
    make_root("sd2", gz, json_object_get(sd2, "tokenizer_config"),
              json_object_get(sd2, "special_tokens_map"), root, sizeof root);
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/tokenizer", root);
    CHECK_OK(hsd_clip_tokenizer_load(&t, dir));
    if (t) {
        CHECK(hsd_clip_tokenizer_pad(t) == 0);
        run_cases("sd2 folder", t, json_object_get(sd2, "cases"), NULL);
    }
    hsd_clip_tokenizer_free(t);

    // max_len bounds and an empty / NULL text.
    int32_t ids[80];
    int n = -1;
    CHECK(hsd_clip_tokenize(gz, "a", 1, ids, 1, &n) == HSD_ERR_INVALID_ARG);
    CHECK_OK(hsd_clip_tokenize(gz, NULL, 0, ids, 77, &n));
    CHECK(n == 2 && ids[0] == 49406 && ids[1] == 49407 && ids[76] == 49407);
    json_decref(golden);
    hsd_clip_tokenizer_free(gz);
}

// ---- the tiny tokenizer -------------------------------------------------------

static void test_tiny(void) {
    json_t *golden = load_json(HSD_TEST_DATA "/tokenizer/tiny_golden.json");
    struct hsd_clip_tokenizer *t = NULL;
    CHECK_OK(hsd_clip_tokenizer_load(&t, HSD_TEST_DATA "/tokenizer/tiny"));
    if (t && golden) {
        CHECK(hsd_clip_tokenizer_vocab_size(t) == 1014);
        CHECK(hsd_clip_tokenizer_bos(t) == 1012 && hsd_clip_tokenizer_eos(t) == 1013);
        CHECK(hsd_clip_tokenizer_pad(t) == 1013);
        CHECK(json_array_size(json_object_get(golden, "cases")) >= 40);
        run_cases("tiny", t, json_object_get(golden, "cases"), NULL);
    }
    hsd_clip_tokenizer_free(t);
    json_decref(golden);
}

// ---- invalid UTF-8 --------------------------------------------------------------

static void test_invalid_utf8(const struct hsd_clip_tokenizer *t) {
    static const struct {
        const char *bytes;
        size_t offset;
        const char *what;
    } cases[] = {
        {"a\xC0\xAF", 1, "overlong 2-byte '/'"},
        {"\xC1\xBF", 0, "overlong 2-byte (C1)"},
        {"ab\xE0\x80\xAF", 2, "overlong 3-byte"},
        {"\xF0\x80\x80\xAF", 0, "overlong 4-byte"},
        {"ab\x80", 2, "lone continuation byte"},
        {"\xBF", 0, "lone continuation byte at the start"},
        {"abc\xE2\x82", 3, "truncated 3-byte sequence at the end"},
        {"\xF0\x9F\x98", 0, "truncated 4-byte emoji"},
        {"x\xC3", 1, "truncated 2-byte sequence"},
        {"\xE2\x82x", 0, "sequence cut by an ASCII byte"},
        {"\xED\xA0\x80", 0, "high surrogate U+D800"},
        {"ok \xED\xBF\xBF", 3, "low surrogate U+DFFF"},
        {"\xF4\x90\x80\x80", 0, "above U+10FFFF"},
        {"\xF5\x80\x80\x80", 0, "lead byte F5"},
        {"caf\xE9", 3, "Latin-1, not UTF-8"},
        {"\xFF", 0, "byte FF"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t ids[77];
        int n = -1;
        enum hsd_status s =
            hsd_clip_tokenize(t, cases[i].bytes, strlen(cases[i].bytes), ids, 77, &n);
        char want[64];
        snprintf(want, sizeof want, "byte offset %zu:", cases[i].offset);
        CHECKF(s == HSD_ERR_INVALID_ARG && strstr(hsd_last_error(), want) != NULL,
               "%s: got %s \"%s\", want invalid argument naming \"%s\"", cases[i].what,
               hsd_status_str(s), hsd_last_error(), want);
    }
    // U+0000 is valid UTF-8 (a Python str may hold it); only its length says
    // where the text ends.
    int32_t ids[77];
    int n = -1;
    CHECK_OK(hsd_clip_tokenize(t, "a\0b", 3, ids, 77, &n));
    CHECK(n > 3);
}

// ---- missing and broken files ---------------------------------------------------

static void expect_load_error(const char *path, enum hsd_status want, const char *needle) {
    struct hsd_clip_tokenizer *t = NULL;
    enum hsd_status s = hsd_clip_tokenizer_load(&t, path);
    CHECKF(s == want && t == NULL && strstr(hsd_last_error(), needle) != NULL,
           "load %s: got %s \"%s\", want %s naming \"%s\"", path, hsd_status_str(s),
           hsd_last_error(), hsd_status_str(want), needle);
    hsd_clip_tokenizer_free(t);
}

static const char k_min_vocab[] =
    "{\"a\": 0, \"b\": 1, \"ab\": 2, \"<|startoftext|>\": 3, \"<|endoftext|>\": 4}";

static void test_bad_files(void) {
    char dir[1200], path[1300];
    expect_load_error(HSD_TEST_DATA "/tokenizer/no_such_thing", HSD_ERR_NOT_FOUND,
                      "tokenizer/no_such_thing");
    expect_load_error(NULL, HSD_ERR_INVALID_ARG, "no path");

    snprintf(dir, sizeof dir, "%s/empty", g_tmp);  // neither vocab.json nor tokenizer/
    make_dir(dir);
    expect_load_error(dir, HSD_ERR_NOT_FOUND, "tokenizer/vocab.json");

    snprintf(dir, sizeof dir, "%s/no_merges", g_tmp);  // vocab.json without merges.txt
    make_dir(dir);
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    write_text(path, k_min_vocab);
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    expect_load_error(dir, HSD_ERR_NOT_FOUND, path);

    write_text(path, "#version: 0.2\na b\na c\n");  // "c" is not in the vocab
    char needle[1400];
    snprintf(needle, sizeof needle, "%s:3: merge token \"c\"", path);
    expect_load_error(dir, HSD_ERR_FORMAT, needle);
    write_text(path, "#version: 0.2\na b c\n");
    snprintf(needle, sizeof needle, "%s:2:", path);
    expect_load_error(dir, HSD_ERR_FORMAT, needle);

    write_text(path, "#version: 0.2\na b\n");  // now valid; break vocab.json instead
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    write_text(path, "{\"a\": 0, ");
    expect_load_error(dir, HSD_ERR_FORMAT, path);
    write_text(path, "{\"a\": -1}");
    expect_load_error(dir, HSD_ERR_FORMAT, path);

    // A config naming a pad token that is not in the vocab.
    write_text(path, k_min_vocab);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    write_text(path, "{\"pad_token\": \"<pad>\"}");
    expect_load_error(dir, HSD_ERR_FORMAT, "<pad>");
    write_text(path, "{\"pad_token\": \"\"}");
    expect_load_error(dir, HSD_ERR_FORMAT, "pad_token \"\"");
    write_text(path, "{\"added_tokens_decoder\": {\"4\": null}}");
    expect_load_error(dir, HSD_ERR_FORMAT, "added_tokens_decoder[\"4\"]");
    write_text(path, "{\"eos_token\": {\"__type\": \"AddedToken\", \"content\": "
                     "\"<|endoftext|>\", \"rstrip\": true}}");
    expect_load_error(dir, HSD_ERR_UNSUPPORTED, "rstrip");
    write_text(path, "{\"bos_token\": 3}");
    expect_load_error(dir, HSD_ERR_FORMAT, "bos_token");
    write_text(path, "{\"pad_token\": \"b\", \"model_max_length\": "
                     "1000000000000000019884624838656}");
    struct hsd_clip_tokenizer *t = NULL;
    CHECK_OK(hsd_clip_tokenizer_load(&t, dir));  // a minimal valid folder
    if (t) {
        int32_t ids[6];
        int n = 0;
        CHECK_OK(hsd_clip_tokenize(t, "ab", 2, ids, 6, &n));
        // As transformers gives for this folder: the pad token "b" is split
        // out as a special token (id 1), and "a" alone needs "a</w>", which
        // is not in this vocab: unk (<|endoftext|>, CLIPTokenizer's default).
        CHECKF(n == 4 && ids[0] == 3 && ids[1] == 4 && ids[2] == 1 && ids[3] == 4,
               "minimal folder: n %d, ids %d %d %d %d", n, ids[0], ids[1], ids[2], ids[3]);
        CHECK(ids[4] == 1 && ids[5] == 1);  // pad "b" is id 1
        CHECK(hsd_clip_tokenizer_model_max_length(t) == 0);
    }
    hsd_clip_tokenizer_free(t);

    // Not a gzip stream / too short for CLIP's BPE.
    snprintf(path, sizeof path, "%s/short.txt.gz", g_tmp);
    write_text(path, "header\na b\n");
    expect_load_error(path, HSD_ERR_FORMAT, path);
}

// ---- concurrency ------------------------------------------------------------------

struct worker {
    const struct hsd_clip_tokenizer *t;
    json_t *cases;
    int bad;
};

static void *work(void *arg) {
    struct worker *w = arg;
    for (int rep = 0; rep < 3; rep++) {
        size_t idx;
        json_t *c;
        json_array_foreach(w->cases, idx, c) {
            json_t *jp = json_object_get(c, "prompt"), *jids = json_object_get(c, "ids");
            int max_len = json_object_get(c, "max_length")
                              ? (int)json_integer_value(json_object_get(c, "max_length")) : 77;
            int32_t got[MAX_IDS];
            int n;
            if (hsd_clip_tokenize(w->t, json_string_value(jp), json_string_length(jp), got, max_len,
                                  &n) != HSD_OK) {
                w->bad++;
                continue;
            }
            for (int i = 0; i < max_len; i++)
                w->bad += got[i] != json_integer_value(json_array_get(jids, (size_t)i));
        }
    }
    return NULL;
}

static void test_threads(void) {
    json_t *golden = load_json(HSD_TEST_DATA "/tokenizer/tiny_golden.json");
    struct hsd_clip_tokenizer *t = NULL;
    CHECK_OK(hsd_clip_tokenizer_load(&t, HSD_TEST_DATA "/tokenizer/tiny"));
    if (t && golden) {
        pthread_t th[4];
        struct worker w[4];
        for (int i = 0; i < 4; i++) {
            w[i] = (struct worker){t, json_object_get(golden, "cases"), 0};
            CHECK(pthread_create(&th[i], NULL, work, &w[i]) == 0);
        }
        int bad = 0;
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            bad += w[i].bad;
        }
        CHECKF(bad == 0, "4 threads sharing one tokenizer: %d wrong ids", bad);
    }
    hsd_clip_tokenizer_free(t);
    json_decref(golden);
}

// Extra golden files (make_tokenizer_cases.py --random ... --random-out F):
// the same case format, tokenized with the .gz vocab.
static void test_extra_files(int argc, char **argv) {
    struct hsd_clip_tokenizer *gz = NULL;
    if (argc < 2) return;
    CHECK_OK(hsd_clip_tokenizer_load(&gz, HSD_CLIP_BPE_GZ));
    for (int i = 1; gz && i < argc; i++) {
        json_t *j = load_json(argv[i]);
        if (j) run_cases(argv[i], gz, json_object_get(j, "cases"), NULL);
        json_decref(j);
    }
    hsd_clip_tokenizer_free(gz);
}

int main(int argc, char **argv) {
    snprintf(g_tmp, sizeof g_tmp, "%s/test_tokenizer.tmp.%d", HSD_BINARY_DIR, (int)getpid());
    make_dir(g_tmp);
    test_real_vocab();
    test_tiny();
    struct hsd_clip_tokenizer *t = NULL;
    CHECK_OK(hsd_clip_tokenizer_load(&t, HSD_TEST_DATA "/tokenizer/tiny"));
    if (t) test_invalid_utf8(t);
    hsd_clip_tokenizer_free(t);
    test_bad_files();
    test_threads();
    test_extra_files(argc, argv);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (hsd_test_failures() == 0 && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_tmp);
    return hsd_test_finish();
}
