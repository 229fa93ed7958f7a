// safetensors reader/writer: writer round trip, dtype conversion on read,
// and one hostile file per format rule (status code AND a message naming the
// file and the rule).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "testutil.h"

static char g_dir[64];

static char *path_in_dir(const char *name) {
    static char buf[8][256];
    static int slot;
    char *p = buf[slot++ % 8];
    snprintf(p, 256, "%s/%s", g_dir, name);
    return p;
}

static const char *write_bytes(const char *name, const void *bytes, size_t len) {
    char *p = path_in_dir(name);
    FILE *f = fopen(p, "wb");
    if (!f) {
        fprintf(stderr, "cannot create %s: %s\n", p, strerror(errno));
        abort();
    }
    if (len) fwrite(bytes, 1, len, f);
    fclose(f);
    return p;
}

// A file with header `json` (length prefix = strlen(json) unless hlen_override
// is nonzero) followed by `buffer_len` bytes of data.
static const char *write_st(const char *name, const char *json, size_t buffer_len,
                            uint64_t hlen_override) {
    size_t jl = strlen(json);
    size_t len = 8 + jl + buffer_len;
    unsigned char *b = calloc(1, len);
    uint64_t h = hlen_override ? hlen_override : jl;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(h >> (8 * i));
    memcpy(b + 8, json, jl);
    for (size_t i = 0; i < buffer_len; i++) b[8 + jl + i] = (unsigned char)i;
    const char *p = write_bytes(name, b, len);
    free(b);
    return p;
}

// Opens `path`, expects status `want`, and a message containing the file's
// name and `word`.
#define EXPECT_FAIL(path, want, word) expect_fail(path, want, word, __LINE__)
static void expect_fail(const char *path, enum hsd_status want, const char *word, int line) {
    struct hsd_safetensors *st = (struct hsd_safetensors *)1;
    hsd_clear_error();
    enum hsd_status s = hsd_safetensors_open(&st, path);
    const char *msg = hsd_last_error();
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    hsd_test_check(s == want, __FILE__, line, "%s: status %s, want %s (%s)", base,
                   hsd_status_str(s), hsd_status_str(want), msg);
    hsd_test_check(st == NULL, __FILE__, line, "%s: *out not NULL on failure", base);
    hsd_test_check(strstr(msg, base) != NULL, __FILE__, line, "%s: message lacks file: %s",
                   base, msg);
    hsd_test_check(strstr(msg, word) != NULL, __FILE__, line, "%s: message lacks '%s': %s", base,
                   word, msg);
    if (s == HSD_OK) hsd_safetensors_close(st);
    else printf("  %-24s -> %s\n", base, msg);
}

static void test_round_trip(void) {
    float f32[6] = {1.0f, -2.0f, 3.5f, 0.0f, -0.0f, 1e-30f};
    uint16_t f16[4] = {0x3c00, 0xc100, 0x3800, 0x7bff};   // 1, -2.5, 0.5, 65504
    uint16_t bf16[4] = {0x3f80, 0xc020, 0x3f00, 0x4780};  // 1, -2.5, 0.5, 65536
    int64_t i64[1] = {981};
    float scalar = 7.25f;
    const int64_t s23[] = {2, 3}, s4[] = {4}, s22[] = {2, 2}, s1[] = {1}, s03[] = {0, 3};

    struct hsd_st_writer *w;
    CHECK_OK(hsd_st_writer_create(&w));
    // Added out of name order: the file keeps add order, listings sort.
    CHECK_OK(hsd_st_writer_add(w, "w.f32", HSD_F32, 2, s23, f32));
    CHECK_OK(hsd_st_writer_add(w, "b.f16", HSD_F16, 1, s4, f16));
    CHECK_OK(hsd_st_writer_add(w, "c.bf16", HSD_BF16, 2, s22, bf16));
    CHECK_OK(hsd_st_writer_add(w, "timesteps", HSD_I64, 1, s1, i64));
    CHECK_OK(hsd_st_writer_add(w, "scalar", HSD_F32, 0, NULL, &scalar));
    CHECK_OK(hsd_st_writer_add(w, "empty", HSD_F32, 2, s03, NULL));
    CHECK_OK(hsd_st_writer_set_metadata(w, "format", "pt"));
    CHECK_OK(hsd_st_writer_set_metadata(w, "note", "r\xc3\xa9sum\xc3\xa9"));
    CHECK(hsd_st_writer_add(w, "w.f32", HSD_F32, 1, s4, f32) == HSD_ERR_INVALID_ARG);
    CHECK(strstr(hsd_last_error(), "duplicate") != NULL);
    CHECK(hsd_st_writer_add(w, "bad", HSD_DTYPE_INVALID, 1, s4, f32) == HSD_ERR_INVALID_ARG);
    CHECK(hsd_st_writer_add(w, "__metadata__", HSD_F32, 1, s4, f32) == HSD_ERR_INVALID_ARG);
    const char *path = path_in_dir("round.safetensors");
    CHECK_OK(hsd_st_writer_write(w, path));

    // Writing into a missing directory fails, names the path, leaves nothing.
    char bad[300];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.safetensors", g_dir);
    CHECK(hsd_st_writer_write(w, bad) == HSD_ERR_IO);
    CHECKF(strstr(hsd_last_error(), bad) != NULL, "message lacks path: %s", hsd_last_error());
    hsd_st_writer_free(w);

    // Layout: header length a multiple of 8, keys in add order, no temp file.
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    unsigned char raw[1024];
    size_t got = f ? fread(raw, 1, sizeof raw, f) : 0;
    if (f) fclose(f);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | raw[i];
    CHECKF(hlen % 8 == 0, "header length %llu not a multiple of 8", (unsigned long long)hlen);
    CHECK(got == 8 + hlen + 24 + 8 + 8 + 8 + 4);
    raw[got < sizeof raw ? got : sizeof raw - 1] = 0;
    const char *hj = (const char *)raw + 8;
    const char *pw = strstr(hj, "\"w.f32\""), *pb = strstr(hj, "\"b.f16\""),
               *pe = strstr(hj, "\"empty\"");
    CHECK(pw && pb && pe && pw < pb && pb < pe);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    CHECK(access(tmp, F_OK) != 0);

    struct hsd_safetensors *st;
    CHECK_OK(hsd_safetensors_open(&st, path));
    if (!st) return;
    CHECK(strcmp(hsd_safetensors_path(st), path) == 0);
    CHECK(hsd_safetensors_count(st) == 6);
    for (size_t i = 1; i < hsd_safetensors_count(st); i++)
        CHECK(strcmp(hsd_safetensors_at(st, i - 1)->name, hsd_safetensors_at(st, i)->name) < 0);
    CHECK(strcmp(hsd_safetensors_metadata(st, "format"), "pt") == 0);
    CHECK(strcmp(hsd_safetensors_metadata(st, "note"), "r\xc3\xa9sum\xc3\xa9") == 0);
    CHECK(hsd_safetensors_metadata(st, "missing") == NULL);
    CHECK(hsd_safetensors_find(st, "nope") == NULL);
    CHECK(hsd_safetensors_find(st, "") == NULL);

    const struct hsd_st_tensor *t = hsd_safetensors_find(st, "w.f32");
    CHECK(t && t->dtype == HSD_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 &&
          t->numel == 6 && t->nbytes == 24 && memcmp(t->data, f32, 24) == 0);
    CHECK(t && ((uintptr_t)t->data % 8) == 0);  // 8-byte padding of the header
    t = hsd_safetensors_find(st, "b.f16");
    CHECK(t && t->dtype == HSD_F16 && t->numel == 4 && memcmp(t->data, f16, 8) == 0);
    t = hsd_safetensors_find(st, "c.bf16");
    CHECK(t && t->dtype == HSD_BF16 && t->ndim == 2 && memcmp(t->data, bf16, 8) == 0);
    t = hsd_safetensors_find(st, "timesteps");
    CHECK(t && t->dtype == HSD_I64 && t->numel == 1 && memcmp(t->data, i64, 8) == 0);
    t = hsd_safetensors_find(st, "scalar");
    CHECK(t && t->ndim == 0 && t->numel == 1 && t->nbytes == 4 && memcmp(t->data, &scalar, 4) == 0);
    t = hsd_safetensors_find(st, "empty");
    CHECK(t && t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 3 && t->numel == 0 &&
          t->nbytes == 0);

    float out[6];
    CHECK_OK(hsd_safetensors_read_f32(st, "w.f32", out, 6));
    CHECK(memcmp(out, f32, sizeof out) == 0);
    CHECK_OK(hsd_safetensors_read_f32(st, "b.f16", out, 4));
    CHECK(out[0] == 1.0f && out[1] == -2.5f && out[2] == 0.5f && out[3] == 65504.0f);
    CHECK_OK(hsd_safetensors_read_f32(st, "c.bf16", out, 4));
    CHECK(out[0] == 1.0f && out[1] == -2.5f && out[2] == 0.5f && out[3] == 65536.0f);
    CHECK_OK(hsd_safetensors_read_f32(st, "scalar", out, 1));
    CHECK(out[0] == 7.25f);
    CHECK_OK(hsd_safetensors_read_f32(st, "empty", NULL, 0));
    CHECK(hsd_safetensors_read_f32(st, "w.f32", out, 5) == HSD_ERR_SHAPE);
    CHECK(hsd_safetensors_read_f32(st, "nope", out, 1) == HSD_ERR_NOT_FOUND);
    CHECK(strstr(hsd_last_error(), "nope") != NULL);
    CHECK(hsd_safetensors_read_f32(st, "timesteps", out, 1) == HSD_ERR_UNSUPPORTED);
    CHECKF(strstr(hsd_last_error(), "unsupported dtype I64") != NULL, "%s", hsd_last_error());
    hsd_safetensors_close(st);

    // The same bytes through the in-memory entry point.
    struct hsd_safetensors *sm;
    CHECK_OK(hsd_safetensors_parse(&sm, raw, got, "mem"));
    if (sm) {
        CHECK(hsd_safetensors_count(sm) == 6);
        CHECK(strcmp(hsd_safetensors_path(sm), "mem") == 0);
        hsd_safetensors_close(sm);
    }
}

static void test_legal_edge_cases(void) {
    struct hsd_safetensors *st;
    // Empty header object with no data.
    CHECK_OK(hsd_safetensors_open(&st, write_st("empty_obj.st", "{}", 0, 0)));
    if (st) {
        CHECK(hsd_safetensors_count(st) == 0);
        CHECK(hsd_safetensors_find(st, "x") == NULL);
        hsd_safetensors_close(st);
    }
    // Trailing spaces (padding), zero-size tensors at both ends of the
    // buffer, metadata placed after tensors, an unaligned header length.
    const char *j = "{\"z0\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
                    "\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
                    "\"z1\":{\"dtype\":\"BF16\",\"shape\":[4,0],\"data_offsets\":[3,3]},"
                    "\"__metadata__\":{}}   ";
    CHECK_OK(hsd_safetensors_open(&st, write_st("edges.st", j, 3, 0)));
    if (st) {
        CHECK(hsd_safetensors_count(st) == 3);
        const struct hsd_st_tensor *t = hsd_safetensors_find(st, "a");
        CHECK(t && t->nbytes == 3 && ((const unsigned char *)t->data)[2] == 2);
        hsd_safetensors_close(st);
    }
}

static void test_hostile(void) {
    const char *E = "\"dtype\":\"F32\",\"shape\":[2]";  // an 8-byte tensor
    char j[512];

    EXPECT_FAIL(write_bytes("empty_file.st", "", 0), HSD_ERR_FORMAT, "truncated");
    EXPECT_FAIL(write_bytes("short.st", "\x02\x00\x00", 3), HSD_ERR_FORMAT, "truncated");
    EXPECT_FAIL(write_st("hlen_eof.st", "{}", 0, 100), HSD_ERR_FORMAT, "past end of file");
    EXPECT_FAIL(write_st("hlen_cap.st", "{}", 0, 200000000), HSD_ERR_FORMAT, "cap");
    EXPECT_FAIL(write_st("hlen_huge.st", "{}", 0, UINT64_MAX), HSD_ERR_FORMAT, "cap");
    EXPECT_FAIL(write_st("not_utf8.st", "{\"a\xff\":{}}", 0, 0), HSD_ERR_FORMAT, "UTF-8");
    EXPECT_FAIL(write_st("overlong.st", "{\"\xc0\xaf\":{}}", 0, 0), HSD_ERR_FORMAT, "UTF-8");
    EXPECT_FAIL(write_st("surrogate.st", "{\"\xed\xa0\x80\":{}}", 0, 0), HSD_ERR_FORMAT, "UTF-8");
    EXPECT_FAIL(write_st("bad_json.st", "{\"a\":", 0, 0), HSD_ERR_FORMAT, "JSON");
    EXPECT_FAIL(write_st("array.st", "[]", 0, 0), HSD_ERR_FORMAT, "object");
    EXPECT_FAIL(write_st("string.st", "\"x\"", 0, 0), HSD_ERR_FORMAT, "object");
    snprintf(j, sizeof j, "{\"a\":{%s,\"data_offsets\":[0,8]},\"a\":{%s,\"data_offsets\":[8,16]}}",
             E, E);
    EXPECT_FAIL(write_st("dup_key.st", j, 16, 0), HSD_ERR_FORMAT, "duplicate");
    snprintf(j, sizeof j, "{\"a\":{%s,\"data_offsets\":[0,8]},\"b\":{%s,\"data_offsets\":[4,12]}}",
             E, E);
    EXPECT_FAIL(write_st("overlap.st", j, 12, 0), HSD_ERR_FORMAT, "overlap");
    snprintf(j, sizeof j, "{\"a\":{%s,\"data_offsets\":[0,8]},\"b\":{%s,\"data_offsets\":[12,20]}}",
             E, E);
    EXPECT_FAIL(write_st("gap.st", j, 20, 0), HSD_ERR_FORMAT, "gap");
    snprintf(j, sizeof j, "{\"b\":{%s,\"data_offsets\":[4,12]}}", E);
    EXPECT_FAIL(write_st("gap_start.st", j, 12, 0), HSD_ERR_FORMAT, "gap");
    // A zero-size tensor inside another's bytes is an overlap too.
    snprintf(j, sizeof j,
             "{\"a\":{%s,\"data_offsets\":[0,8]},"
             "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}",
             E);
    EXPECT_FAIL(write_st("overlap_zero.st", j, 8, 0), HSD_ERR_FORMAT, "overlap");
    snprintf(j, sizeof j, "{\"a\":{%s,\"data_offsets\":[0,8]}}", E);
    EXPECT_FAIL(write_st("trailing.st", j, 12, 0), HSD_ERR_FORMAT, "trailing");
    EXPECT_FAIL(write_st("past_eof.st", j, 4, 0), HSD_ERR_FORMAT, "past end of file");
    snprintf(j, sizeof j, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}");
    EXPECT_FAIL(write_st("size_mismatch.st", j, 8, 0), HSD_ERR_FORMAT, "shape");
    snprintf(j, sizeof j, "{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}");
    EXPECT_FAIL(write_st("unknown_dtype.st", j, 8, 0), HSD_ERR_FORMAT, "unknown dtype 'F33'");
    snprintf(j, sizeof j, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}");
    EXPECT_FAIL(write_st("neg_shape.st", j, 8, 0), HSD_ERR_FORMAT, "negative");
    snprintf(j, sizeof j, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}");
    EXPECT_FAIL(write_st("float_shape.st", j, 8, 0), HSD_ERR_FORMAT, "shape entry 0 must be an integer");
    snprintf(j, sizeof j,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}");
    EXPECT_FAIL(write_st("overflow_numel.st", j, 0, 0), HSD_ERR_FORMAT, "overflow");
    // numel fits in int64 but numel * 4 bytes does not.
    snprintf(j, sizeof j,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}");
    EXPECT_FAIL(write_st("overflow_bytes.st", j, 0, 0), HSD_ERR_FORMAT, "overflow");
    // Wraps to exactly 0 bytes mod 2^64 if unchecked (2^62 * 4).
    snprintf(j, sizeof j,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2305843009213693952],\"data_offsets\":[0,0]}}");
    EXPECT_FAIL(write_st("overflow_wrap.st", j, 0, 0), HSD_ERR_FORMAT, "overflow");
    snprintf(j, sizeof j,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,0]}}");
    EXPECT_FAIL(write_st("huge_int.st", j, 0, 0), HSD_ERR_FORMAT, "JSON");
    snprintf(j, sizeof j, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],"
                          "\"data_offsets\":[0,8]}}");
    EXPECT_FAIL(write_st("too_many_dims.st", j, 8, 0), HSD_ERR_UNSUPPORTED, "dims");
    snprintf(j, sizeof j, "{\"a\":{%s}}", E);
    EXPECT_FAIL(write_st("no_offsets.st", j, 8, 0), HSD_ERR_FORMAT, "data_offsets");
    snprintf(j, sizeof j, "{\"a\":{%s,\"data_offsets\":[0,8,8]}}", E);
    EXPECT_FAIL(write_st("three_offsets.st", j, 8, 0), HSD_ERR_FORMAT, "data_offsets");
    snprintf(j, sizeof j, "{\"a\":{%s,\"data_offsets\":[-8,0]}}", E);
    EXPECT_FAIL(write_st("neg_offsets.st", j, 8, 0), HSD_ERR_FORMAT, "data_offsets");
    snprintf(j, sizeof j, "{\"a\":{%s,\"data_offsets\":[8,0]}}", E);
    EXPECT_FAIL(write_st("begin_gt_end.st", j, 8, 0), HSD_ERR_FORMAT, "begin > end");
    snprintf(j, sizeof j, "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}");
    EXPECT_FAIL(write_st("no_dtype.st", j, 8, 0), HSD_ERR_FORMAT, "dtype");
    snprintf(j, sizeof j, "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}");
    EXPECT_FAIL(write_st("no_shape.st", j, 8, 0), HSD_ERR_FORMAT, "shape");
    snprintf(j, sizeof j, "{\"a\":{%s,\"data_offsets\":[0,8],\"extra\":1}}", E);
    EXPECT_FAIL(write_st("extra_key.st", j, 8, 0), HSD_ERR_FORMAT, "unknown key 'extra'");
    snprintf(j, sizeof j, "{\"a\":[1]}");
    EXPECT_FAIL(write_st("entry_array.st", j, 0, 0), HSD_ERR_FORMAT, "object");
    snprintf(j, sizeof j, "{\"__metadata__\":{\"k\":1}}");
    EXPECT_FAIL(write_st("meta_value.st", j, 0, 0), HSD_ERR_FORMAT, "__metadata__");
    snprintf(j, sizeof j, "{\"__metadata__\":[\"k\"]}");
    EXPECT_FAIL(write_st("meta_array.st", j, 0, 0), HSD_ERR_FORMAT, "__metadata__");

    // Not a file at all.
    char missing[300];
    snprintf(missing, sizeof missing, "%s/does_not_exist.safetensors", g_dir);
    EXPECT_FAIL(missing, HSD_ERR_IO, "cannot open");
    EXPECT_FAIL(g_dir, HSD_ERR_IO, "not a regular file");
}

// The parse entry point names the label and never reads past `len`: the
// buffer here is an exact-size heap copy, so ASan catches any overread.
static void test_parse_label(void) {
    const char *j = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    size_t jl = strlen(j);
    unsigned char *b = malloc(8 + jl + 4);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)jl >> (8 * i));
    memcpy(b + 8, j, jl);
    struct hsd_safetensors *st;
    CHECK(hsd_safetensors_parse(&st, b, 8 + jl + 4, "my-label") == HSD_ERR_FORMAT);
    CHECK(strstr(hsd_last_error(), "my-label") && strstr(hsd_last_error(), "past end of file"));
    free(b);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/hsd_st_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_legal_edge_cases();
    test_hostile();
    test_parse_label();
    if (hsd_test_failures() == 0) {
        // Keep the directory on failure so the files can be inspected.
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    } else {
        fprintf(stderr, "hostile files kept in %s\n", g_dir);
    }
    return hsd_test_finish();
}
