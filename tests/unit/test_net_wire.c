// host/net/wire: every message type round-trips byte-exactly, and one
// hostile message per rule of docs/protocol.md §3/§5 is refused with the
// right protocol error code (never a crash: run it under ASan too). argv[1]:
// the fuzz seed corpus dir, whose valid_* files were written from the spec
// by a separate encoder and must decode.
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "net/wire.h"
#include "testutil.h"

// ---------------------------------------------------------------------------
// Fixtures

static const int32_t k_tokens[5] = {49406, 320, 1929, 539, 49407};
static float g_latent[4 * 8 * 8];
static float g_emb[2 * 77 * 16];
static const uint8_t k_state[13] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};

// The offset-patching tests below work on version 1 layouts (what SD 1.x
// clients of before version 2 send); test_version2 covers version 2.
static struct hsd_wire_msg make_generate(void) {
    struct hsd_wire_msg m = {0};
    m.version = 1;
    m.type = HSD_WIRE_GENERATE;
    m.request_id = 0x0123456789abcdefull;
    struct hsd_wire_generate *g = &m.u.generate;
    g->seed = 42;
    g->width = 512;
    g->height = 768;
    g->steps = 25;
    g->k_min = 5;
    g->k_max = 10;
    g->sampler = 0;
    g->flags = HSD_WIRE_GEN_TEXT_EMB;
    g->cfg_scale = 7.5f;
    g->deadline_ms = 30000;
    g->clip_skip = 1;
    g->priority = 3;
    g->model = (struct hsd_wire_str){"sd15", 4};
    g->prompt.kind = HSD_WIRE_PROMPT_TEXT;
    g->prompt.text = (struct hsd_wire_str){"a photo of a cat \xc3\xa9\xe2\x82\xac", 22};
    g->negative.kind = HSD_WIRE_PROMPT_TEXT;
    g->negative.text = (struct hsd_wire_str){"blurry", 6};
    return m;
}

static struct hsd_wire_msg make_result(void) {
    struct hsd_wire_msg m = {0};
    m.version = 1;
    m.type = HSD_WIRE_RESULT;
    m.request_id = 77;
    struct hsd_wire_result *r = &m.u.result;
    r->steps = 25;
    r->k_used = 10;
    r->sampler = 1;
    r->c = 4;
    r->h = 8;
    r->w = 8;
    r->latent = g_latent;
    r->sampler_state = (struct hsd_wire_bytes){k_state, sizeof k_state};
    r->n_emb = 2;
    r->emb_t = 77;
    r->emb_c = 16;
    r->emb = g_emb;
    r->device_ms = 1234.5;
    r->queue_ms = 0.25;
    return m;
}

static uint8_t *encode(const struct hsd_wire_msg *m, size_t *len) {
    void *buf = NULL;
    enum hsd_status s = hsd_wire_encode_alloc(&buf, len, m);
    CHECKF(s == HSD_OK, "encode %s: %s", hsd_wire_type_name(m->type), hsd_last_error());
    return buf;
}

// Decodes a copy of exactly `len` bytes (so ASan sees any over-read) and
// checks the result code.
static int expect_code(const char *what, const uint8_t *b, size_t len, enum hsd_wire_error want) {
    uint8_t *copy = malloc(len ? len : 1);
    if (len) memcpy(copy, b, len);
    struct hsd_wire_msg m;
    enum hsd_wire_error code = HSD_WIRE_E_NONE;
    enum hsd_status s = hsd_wire_decode(&m, &code, copy, len);
    free(copy);
    int ok = want == HSD_WIRE_E_NONE ? s == HSD_OK : (s == HSD_ERR_FORMAT && code == want);
    printf("  %-34s -> %-15s %s\n", what, s == HSD_OK ? "ok" : hsd_wire_error_name(code),
           s == HSD_OK ? "" : hsd_last_error());
    CHECKF(ok, "%s: expected %s, got status %s code %s (%s)", what, hsd_wire_error_name(want),
           hsd_status_str(s), hsd_wire_error_name(code), hsd_last_error());
    return ok;
}

static void put16(uint8_t *b, size_t off, uint16_t v) {
    b[off] = (uint8_t)v;
    b[off + 1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *b, size_t off, uint32_t v) {
    for (int i = 0; i < 4; i++) b[off + i] = (uint8_t)(v >> (8 * i));
}

// Patches a field of an encoded message (payload offset) and fixes the
// checksum, so the rule under test is the only one broken.
static uint8_t *patched(const uint8_t *src, size_t len, size_t off, const void *val, size_t n) {
    uint8_t *b = malloc(len);
    memcpy(b, src, len);
    memcpy(b + HSD_WIRE_HEADER_SIZE + off, val, n);
    hsd_wire_update_checksum(b, len);
    return b;
}

static void expect_patch(const char *what, const uint8_t *src, size_t len, size_t off,
                         const void *val, size_t n, enum hsd_wire_error want) {
    uint8_t *b = patched(src, len, off, val, n);
    expect_code(what, b, len, want);
    free(b);
}

// ---------------------------------------------------------------------------
// Round trips

// The decoded struct holds views into the encoded bytes, so the buffer of
// the last round trip stays alive until the next one.
static uint8_t *g_last;

static void check_roundtrip(const char *what, const struct hsd_wire_msg *m,
                            struct hsd_wire_msg *out) {
    size_t len;
    free(g_last);
    uint8_t *b = g_last = encode(m, &len);
    if (!b) return;
    CHECKF(len == hsd_wire_encoded_size(m), "%s: size %zu vs encoded_size %zu", what, len,
           hsd_wire_encoded_size(m));
    enum hsd_wire_error code;
    CHECK_OK(hsd_wire_decode(out, &code, b, len));
    CHECK(out->type == m->type && out->request_id == m->request_id && out->flags == m->flags);
    CHECK(out->version == (m->version ? m->version : HSD_WIRE_VERSION));
    // Canonical: decode -> encode gives the same bytes.
    size_t len2;
    uint8_t *b2 = encode(out, &len2);
    CHECKF(b2 && len2 == len && memcmp(b, b2, len) == 0, "%s: re-encoding differs", what);
    printf("  round trip %-16s %zu bytes\n", what, len);
    free(b2);
}

static void test_roundtrips(void) {
    printf("round trips\n");
    hsd_test_fill_uniform(g_latent, HSD_ARRAY_LEN(g_latent), 1, 3.0f);
    hsd_test_fill_uniform(g_emb, HSD_ARRAY_LEN(g_emb), 2, 1.0f);
    struct hsd_wire_msg d;

    struct hsd_wire_msg g = make_generate();
    check_roundtrip("GENERATE text", &g, &d);
    const struct hsd_wire_generate *dg = &d.u.generate;
    CHECK(dg->seed == 42 && dg->width == 512 && dg->height == 768 && dg->steps == 25);
    CHECK(dg->k_min == 5 && dg->k_max == 10 && dg->flags == HSD_WIRE_GEN_TEXT_EMB);
    CHECK(dg->cfg_scale == 7.5f && dg->deadline_ms == 30000 && dg->clip_skip == 1 &&
          dg->priority == 3);
    CHECK(dg->model.n == 4 && memcmp(dg->model.p, "sd15", 4) == 0);
    CHECK(dg->prompt.kind == HSD_WIRE_PROMPT_TEXT && dg->prompt.text.n == 22);
    CHECK(dg->negative.text.n == 6 && memcmp(dg->negative.text.p, "blurry", 6) == 0);
    char buf[8];
    CHECK(hsd_wire_str_copy(buf, sizeof buf, dg->model) == 1 && strcmp(buf, "sd15") == 0);
    CHECK(hsd_wire_str_copy(buf, 3, dg->model) == 0 && strcmp(buf, "sd") == 0);

    // Token ids, empty negative text, empty model, an auth block placeholder
    // and an advisory flag.
    g.u.generate.prompt.kind = HSD_WIRE_PROMPT_TOKENS;
    g.u.generate.prompt.tokens = k_tokens;
    g.u.generate.prompt.n_tokens = 5;
    g.u.generate.negative.text.n = 0;
    g.u.generate.model.n = 0;
    g.flags = HSD_WIRE_FLAG_AUTH | 0x0100;
    strcpy(g.auth.key_id, "edge-01");
    g.auth.timestamp_ms = 1700000000123ull;
    memset(g.auth.nonce, 0xab, sizeof g.auth.nonce);
    memset(g.auth.mac, 0xcd, sizeof g.auth.mac);
    check_roundtrip("GENERATE tokens", &g, &d);
    int32_t ids[5];
    hsd_wire_read_tokens(ids, &d.u.generate.prompt);
    CHECK(d.u.generate.prompt.n_tokens == 5 && memcmp(ids, k_tokens, sizeof ids) == 0);
    CHECK(strcmp(d.auth.key_id, "edge-01") == 0 && d.auth.timestamp_ms == 1700000000123ull);
    CHECK(d.auth.nonce[15] == 0xab && d.auth.mac[31] == 0xcd);
    // The A1111 prompt style works on text: with token ids it is refused.
    g.u.generate.flags |= HSD_WIRE_GEN_A1111;
    void *tb = NULL;
    size_t tl;
    CHECK(hsd_wire_encode_alloc(&tb, &tl, &g) != HSD_OK &&
          strstr(hsd_last_error(), "A1111 prompt style needs text prompts"));
    hsd_clear_error();
    g.u.generate.flags &= (uint8_t)~HSD_WIRE_GEN_A1111;

    struct hsd_wire_msg r = make_result();
    check_roundtrip("RESULT", &r, &d);
    const struct hsd_wire_result *dr = &d.u.result;
    CHECK(dr->c == 4 && dr->h == 8 && dr->w == 8 && dr->k_used == 10 && dr->n_emb == 2);
    CHECK(dr->device_ms == 1234.5 && dr->queue_ms == 0.25);
    CHECK(dr->sampler_state.n == sizeof k_state &&
          memcmp(dr->sampler_state.p, k_state, sizeof k_state) == 0);
    float lat[HSD_ARRAY_LEN(g_latent)], emb[HSD_ARRAY_LEN(g_emb)];
    hsd_wire_read_f32(lat, dr->latent, HSD_ARRAY_LEN(lat));
    hsd_wire_read_f32(emb, dr->emb, HSD_ARRAY_LEN(emb));
    CHECK(memcmp(lat, g_latent, sizeof lat) == 0 && memcmp(emb, g_emb, sizeof emb) == 0);
    r.u.result.n_emb = 0;
    r.u.result.emb_t = r.u.result.emb_c = 0;
    r.u.result.sampler_state.n = 0;
    check_roundtrip("RESULT no emb", &r, &d);
    // A1111 prompts: 77 x chunks context tokens (2 here), at most 8 chunks.
    r = make_result();
    r.u.result.emb_t = 2 * 77;
    r.u.result.emb_c = 8;
    check_roundtrip("RESULT 154 tokens (A1111)", &r, &d);
    CHECK(d.u.result.emb_t == 154 && d.u.result.emb_c == 8);
    void *nb = NULL;
    size_t nl;
    r.u.result.n_emb = 1;
    r.u.result.emb_t = 9 * 77;
    r.u.result.emb_c = 1;
    CHECK(hsd_wire_encode_alloc(&nb, &nl, &r) != HSD_OK);
    r.u.result.emb_t = 78;
    CHECK(hsd_wire_encode_alloc(&nb, &nl, &r) != HSD_OK);
    hsd_clear_error();

    struct hsd_wire_msg e = {0};
    e.type = HSD_WIRE_ERROR;
    e.request_id = 5;
    e.u.error.code = HSD_WIRE_E_BUSY;
    e.u.error.retry_after_ms = 250;
    e.u.error.text = (struct hsd_wire_str){"queue full", 10};
    check_roundtrip("ERROR", &e, &d);
    CHECK(d.u.error.code == HSD_WIRE_E_BUSY && d.u.error.retry_after_ms == 250);
    CHECK(hsd_wire_error_retryable(d.u.error.code, 0) &&
          !hsd_wire_error_retryable(HSD_WIRE_E_BAD_REQUEST, 0));

    struct hsd_wire_msg q = {0};
    q.type = HSD_WIRE_STATUS_REQUEST;
    q.request_id = 6;
    check_roundtrip("STATUS_REQUEST", &q, &d);

    struct hsd_wire_msg st = {0};
    st.type = HSD_WIRE_STATUS;
    st.request_id = 6;
    struct hsd_wire_status *s = &st.u.status;
    s->health = HSD_WIRE_HEALTH_DEGRADED;
    s->queue_depth = 3;
    s->queue_limit = 64;
    s->active = 12;
    s->max_batch = 16;
    s->steps_per_s = 41.5f;
    s->uptime_ms = 86400000;
    s->requests_done = 1000;
    s->requests_failed = 2;
    s->max_message = HSD_WIRE_MAX_MESSAGE;
    s->server = (struct hsd_wire_str){"hsd 0.1.0", 9};
    s->n_devices = 2;
    s->devices[0] =
        (struct hsd_wire_device){HSD_WIRE_DEVICE_CUDA, 1, 16, 81559, 40000, {"NVIDIA H100", 11}};
    s->devices[1] = (struct hsd_wire_device){HSD_WIRE_DEVICE_CPU, 0, 0, 0, 0, {"cpu", 3}};
    check_roundtrip("STATUS", &st, &d);
    CHECK(d.u.status.n_devices == 2 && d.u.status.devices[0].mem_total_mib == 81559);
    CHECK(d.u.status.devices[1].name.n == 3 && d.u.status.steps_per_s == 41.5f);

    struct hsd_wire_msg c = {0};
    c.type = HSD_WIRE_CANCEL;
    c.request_id = 8;
    c.u.cancel.target = 0x0123456789abcdefull;
    check_roundtrip("CANCEL", &c, &d);
    CHECK(d.u.cancel.target == 0x0123456789abcdefull);

    struct hsd_wire_msg ca = {0};
    ca.type = HSD_WIRE_CANCEL_ACK;
    ca.request_id = 8;
    ca.u.cancel_ack.target = 9;
    ca.u.cancel_ack.cancelled = 1;
    check_roundtrip("CANCEL_ACK", &ca, &d);
    CHECK(d.u.cancel_ack.target == 9 && d.u.cancel_ack.cancelled == 1);
    free(g_last);
    g_last = NULL;
}

// ---------------------------------------------------------------------------
// Hostile messages

static void test_framing(void) {
    printf("framing\n");
    struct hsd_wire_msg g = make_generate();
    size_t len;
    uint8_t *b = encode(&g, &len);
    if (!b) return;
    expect_code("valid", b, len, HSD_WIRE_E_NONE);

    uint8_t *x = malloc(len + 16);
    memcpy(x, b, len);
    x[0] = 'X';
    expect_code("bad magic", x, len, HSD_WIRE_E_BAD_MESSAGE);
    expect_code("empty", x, 0, HSD_WIRE_E_BAD_MESSAGE);

    memcpy(x, b, len);
    put16(x, 4, HSD_WIRE_VERSION + 1);
    hsd_wire_update_checksum(x, len);
    expect_code("wrong version", x, len, HSD_WIRE_E_BAD_VERSION);
    expect_code("wrong version, 6 bytes", x, 6, HSD_WIRE_E_BAD_VERSION);

    memcpy(x, b, len);
    put16(x, 6, 99);
    hsd_wire_update_checksum(x, len);
    expect_code("unknown type", x, len, HSD_WIRE_E_BAD_MESSAGE);

    memcpy(x, b, len);
    put16(x, 8, 0x0002);
    hsd_wire_update_checksum(x, len);
    expect_code("unknown critical flag", x, len, HSD_WIRE_E_BAD_VERSION);
    memcpy(x, b, len);
    put16(x, 8, 0x8000);
    hsd_wire_update_checksum(x, len);
    expect_code("unknown advisory flag", x, len, HSD_WIRE_E_NONE);

    memcpy(x, b, len);
    put16(x, 10, 1);
    hsd_wire_update_checksum(x, len);
    expect_code("reserved header field", x, len, HSD_WIRE_E_BAD_MESSAGE);

    expect_code("truncated header", b, 20, HSD_WIRE_E_BAD_MESSAGE);
    expect_code("header only", b, HSD_WIRE_HEADER_SIZE, HSD_WIRE_E_BAD_MESSAGE);
    // The request id survives a failed decode once the header is readable.
    struct hsd_wire_msg m;
    enum hsd_wire_error code;
    CHECK(hsd_wire_decode(&m, &code, b, len - 1) == HSD_ERR_FORMAT && m.request_id == g.request_id);

    memcpy(x, b, len);
    put32(x, 12, (uint32_t)(len - HSD_WIRE_HEADER_SIZE + 10));
    hsd_wire_update_checksum(x, len);
    expect_code("payload length past end", x, len, HSD_WIRE_E_BAD_MESSAGE);

    memcpy(x, b, len);
    x[len] = 0;
    hsd_wire_update_checksum(x, len + 1);
    expect_code("length mismatch (trailing)", x, len + 1, HSD_WIRE_E_BAD_MESSAGE);

    // A payload one byte longer than its fields, consistent header.
    memcpy(x, b, len);
    x[len] = 0;
    put32(x, 12, (uint32_t)(len + 1 - HSD_WIRE_HEADER_SIZE));
    hsd_wire_update_checksum(x, len + 1);
    expect_code("extra byte after last field", x, len + 1, HSD_WIRE_E_BAD_MESSAGE);

    memcpy(x, b, len);
    x[len - 3] ^= 0x20;
    expect_code("bad checksum", x, len, HSD_WIRE_E_BAD_CHECKSUM);
    memcpy(x, b, len);
    x[25] ^= 1;
    expect_code("bad checksum (field itself)", x, len, HSD_WIRE_E_BAD_CHECKSUM);

    memcpy(x, b, len);
    put32(x, 12, 100u << 20);
    expect_code("oversized (declared)", x, len, HSD_WIRE_E_TOO_LARGE);
    size_t big = (size_t)HSD_WIRE_MAX_MESSAGE + 1;
    uint8_t *huge = calloc(1, big);
    memcpy(huge, b, HSD_WIRE_HEADER_SIZE);
    put32(huge, 12, (uint32_t)(big - HSD_WIRE_HEADER_SIZE));
    struct hsd_wire_msg hm;
    CHECK(hsd_wire_decode(&hm, &code, huge, big) == HSD_ERR_FORMAT && code == HSD_WIRE_E_TOO_LARGE);
    printf("  %-34s -> %s\n", "oversized (64 MiB + 1 bytes)", hsd_wire_error_name(code));
    free(huge);

    // Every prefix and every shortened payload must fail cleanly (ASan
    // checks there is no read past the end).
    int bad = 0;
    for (size_t n = 0; n < len; n++) {
        struct hsd_wire_msg t;
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, b, n);
        if (hsd_wire_decode(&t, &code, copy, n) == HSD_OK) bad++;
        free(copy);
    }
    for (size_t p = 0; p + HSD_WIRE_HEADER_SIZE < len; p++) {
        size_t n = HSD_WIRE_HEADER_SIZE + p;
        uint8_t *copy = malloc(n);
        memcpy(copy, b, n);
        put32(copy, 12, (uint32_t)p);
        hsd_wire_update_checksum(copy, n);
        struct hsd_wire_msg t;
        if (hsd_wire_decode(&t, &code, copy, n) == HSD_OK || code != HSD_WIRE_E_BAD_MESSAGE) bad++;
        free(copy);
    }
    CHECKF(bad == 0, "%d truncated GENERATEs were not refused as BAD_MESSAGE", bad);
    printf("  every truncation of a %zu-byte GENERATE refused\n", len);
    free(x);
    free(b);
}

// GENERATE payload offsets (docs/protocol.md §5.1).
enum {
    G_WIDTH = 8,
    G_HEIGHT = 10,
    G_STEPS = 12,
    G_KMIN = 14,
    G_KMAX = 16,
    G_SAMPLER = 18,
    G_FLAGS = 19,
    G_CFG = 20,
    G_DEADLINE = 24,
    G_CLIPSKIP = 28,
    G_PRIO = 29,
    G_RESERVED = 30,
    G_MODEL = 32
};

static void test_generate_rules(void) {
    printf("GENERATE rules\n");
    struct hsd_wire_msg g = make_generate();
    size_t len;
    uint8_t *b = encode(&g, &len);
    if (!b) return;
    uint16_t v16;
    uint8_t v8;
    float f;
    uint32_t v32;
#define P16(name, off, val, code) (v16 = (val), expect_patch(name, b, len, off, &v16, 2, code))
#define P8(name, off, val, code) (v8 = (val), expect_patch(name, b, len, off, &v8, 1, code))
    P16("steps 0", G_STEPS, 0, HSD_WIRE_E_BAD_REQUEST);
    P16("steps 1001", G_STEPS, 1001, HSD_WIRE_E_BAD_REQUEST);
    P16("steps 1000", G_STEPS, 1000, HSD_WIRE_E_NONE);
    P16("k_max > N", G_KMAX, 26, HSD_WIRE_E_BAD_REQUEST);
    P16("k_max = N", G_KMAX, 25, HSD_WIRE_E_NONE);
    P16("k_min > k_max", G_KMIN, 11, HSD_WIRE_E_BAD_REQUEST);
    P16("width 517 (not multiple of 8)", G_WIDTH, 517, HSD_WIRE_E_BAD_REQUEST);
    P16("height 100 (not multiple of 8)", G_HEIGHT, 100, HSD_WIRE_E_BAD_REQUEST);
    P16("width 56 (too small)", G_WIDTH, 56, HSD_WIRE_E_BAD_REQUEST);
    P16("width 4104 (too large)", G_WIDTH, 4104, HSD_WIRE_E_BAD_REQUEST);
    P8("sampler 6", G_SAMPLER, 6, HSD_WIRE_E_BAD_REQUEST);
    P8("sampler 5 (lcm)", G_SAMPLER, 5, HSD_WIRE_E_NONE);
    P8("unknown gen flag", G_FLAGS, 0x08, HSD_WIRE_E_BAD_REQUEST);
    P8("LoRA flag without the list", G_FLAGS, 0x04, HSD_WIRE_E_BAD_MESSAGE);
    P8("A1111 prompt style flag, text prompts", G_FLAGS, 0x03, HSD_WIRE_E_NONE);
    P8("clip skip 24", G_CLIPSKIP, 24, HSD_WIRE_E_BAD_REQUEST);
    P8("priority 8", G_PRIO, 8, HSD_WIRE_E_BAD_REQUEST);
    P16("reserved", G_RESERVED, 1, HSD_WIRE_E_BAD_MESSAGE);
    f = NAN;
    expect_patch("NaN cfg", b, len, G_CFG, &f, 4, HSD_WIRE_E_BAD_REQUEST);
    f = INFINITY;
    expect_patch("Inf cfg", b, len, G_CFG, &f, 4, HSD_WIRE_E_BAD_REQUEST);
    f = -1.0f;
    expect_patch("cfg -1", b, len, G_CFG, &f, 4, HSD_WIRE_E_BAD_REQUEST);
    v32 = HSD_WIRE_MAX_DEADLINE_MS + 1;
    expect_patch("deadline > 1 h", b, len, G_DEADLINE, &v32, 4, HSD_WIRE_E_BAD_REQUEST);

    // Strings: model "sd15" at G_MODEL+2, prompt text at G_MODEL+2+4+5.
    size_t prompt = G_MODEL + 2 + 4 + 5;
    expect_patch("non-UTF-8 prompt", b, len, prompt + 2, "\xff", 1, HSD_WIRE_E_BAD_REQUEST);
    expect_patch("overlong UTF-8 prompt", b, len, prompt, "\xc0\xaf", 2, HSD_WIRE_E_BAD_REQUEST);
    expect_patch("surrogate in prompt", b, len, prompt, "\xed\xa0\x80", 3, HSD_WIRE_E_BAD_REQUEST);
    expect_patch("NUL in prompt", b, len, prompt + 1, "\0", 1, HSD_WIRE_E_BAD_REQUEST);
    expect_patch("truncated UTF-8 at end of prompt", b, len, prompt + 21, "\xe2", 1,
                 HSD_WIRE_E_BAD_REQUEST);
    expect_patch("non-UTF-8 model name", b, len, G_MODEL + 2, "\x80", 1, HSD_WIRE_E_BAD_REQUEST);
    P8("prompt kind 2", G_MODEL + 2 + 4, 2, HSD_WIRE_E_BAD_REQUEST);
    v32 = 1u << 30;
    expect_patch("prompt length past end", b, len, G_MODEL + 2 + 4 + 1, &v32, 4,
                 HSD_WIRE_E_BAD_MESSAGE);
    v16 = 0xffff;
    expect_patch("model length past end", b, len, G_MODEL, &v16, 2, HSD_WIRE_E_BAD_MESSAGE);
    free(b);

    // Token-id prompts.
    g.u.generate.prompt.kind = HSD_WIRE_PROMPT_TOKENS;
    g.u.generate.prompt.tokens = k_tokens;
    g.u.generate.prompt.n_tokens = 5;
    b = encode(&g, &len);
    if (!b) return;
    size_t tok = G_MODEL + 2 + 4 + 1;  // n field
    v32 = HSD_WIRE_MAX_TOKEN_ID + 1;
    expect_patch("token id >= 2^24", b, len, tok + 4 + 8, &v32, 4, HSD_WIRE_E_BAD_REQUEST);
    free(b);
    int32_t many[78] = {0};
    g.u.generate.prompt.tokens = many;
    g.u.generate.prompt.n_tokens = 77;
    b = encode(&g, &len);
    expect_code("77 token ids", b, len, HSD_WIRE_E_NONE);
    free(b);
    // 0 ids cannot be encoded either; forge one from 1 id minus its 4 bytes.
    g.u.generate.prompt.n_tokens = 1;
    b = encode(&g, &len);
    size_t ids_at = HSD_WIRE_HEADER_SIZE + tok + 4;
    uint8_t *f0 = malloc(len - 4);
    memcpy(f0, b, ids_at);
    memcpy(f0 + ids_at, b + ids_at + 4, len - ids_at - 4);
    put32(f0, HSD_WIRE_HEADER_SIZE + tok, 0);
    put32(f0, 12, (uint32_t)(len - 4 - HSD_WIRE_HEADER_SIZE));
    hsd_wire_update_checksum(f0, len - 4);
    expect_code("0 token ids", f0, len - 4, HSD_WIRE_E_BAD_REQUEST);
    free(f0);
    free(b);
    g.u.generate.prompt.n_tokens = 77;
    // 78 ids cannot be encoded; forge one from 77 + 4 bytes.
    b = encode(&g, &len);
    uint8_t *f78 = malloc(len + 4);
    memcpy(f78, b, tok + HSD_WIRE_HEADER_SIZE);
    put32(f78, HSD_WIRE_HEADER_SIZE + tok, 78);
    memset(f78 + HSD_WIRE_HEADER_SIZE + tok + 4, 0, 78 * 4);
    memcpy(f78 + HSD_WIRE_HEADER_SIZE + tok + 4 + 78 * 4,
           b + HSD_WIRE_HEADER_SIZE + tok + 4 + 77 * 4,
           len - (HSD_WIRE_HEADER_SIZE + tok + 4 + 77 * 4));
    put32(f78, 12, (uint32_t)(len + 4 - HSD_WIRE_HEADER_SIZE));
    hsd_wire_update_checksum(f78, len + 4);
    expect_code("78 token ids", f78, len + 4, HSD_WIRE_E_BAD_REQUEST);
    free(f78);
    free(b);

    // Auth block key id.
    g = make_generate();
    g.flags = HSD_WIRE_FLAG_AUTH;
    strcpy(g.auth.key_id, "edge-01");
    b = encode(&g, &len);
    size_t auth = len - HSD_WIRE_AUTH_SIZE;
    uint8_t *x = malloc(len);
    memcpy(x, b, len);
    x[auth + 2] = '/';
    hsd_wire_update_checksum(x, len);
    expect_code("auth key id with '/'", x, len, HSD_WIRE_E_BAD_MESSAGE);
    memcpy(x, b, len);
    x[auth + 20] = 'z';
    hsd_wire_update_checksum(x, len);
    expect_code("auth key id not NUL-padded", x, len, HSD_WIRE_E_BAD_MESSAGE);
    memcpy(x, b, len);
    memset(x + auth, 'a', HSD_WIRE_KEY_ID_SIZE);
    hsd_wire_update_checksum(x, len);
    expect_code("auth key id of 32 chars", x, len, HSD_WIRE_E_BAD_MESSAGE);
    free(x);
    free(b);
#undef P16
#undef P8
}

// RESULT payload offsets (§5.2).
enum {
    R_STEPS = 0,
    R_KUSED = 2,
    R_SAMPLER = 4,
    R_NEMB = 5,
    R_C = 6,
    R_H = 8,
    R_W = 10,
    R_EMBT = 12,
    R_EMBC = 14,
    R_DEVMS = 16,
    R_LATENT = 32
};

static void test_result_rules(void) {
    printf("RESULT and other types\n");
    struct hsd_wire_msg r = make_result();
    size_t len;
    uint8_t *b = encode(&r, &len);
    if (!b) return;
    uint16_t v16;
    uint8_t v8;
    v16 = 5;
    expect_patch("latent c*h*w inconsistent (c 5)", b, len, R_C, &v16, 2, HSD_WIRE_E_BAD_MESSAGE);
    v16 = 3;
    expect_patch("latent c*h*w inconsistent (c 3)", b, len, R_C, &v16, 2, HSD_WIRE_E_BAD_MESSAGE);
    v16 = 9;
    expect_patch("latent h 9", b, len, R_H, &v16, 2, HSD_WIRE_E_BAD_MESSAGE);
    v16 = 26;
    expect_patch("k_used > N", b, len, R_KUSED, &v16, 2, HSD_WIRE_E_BAD_REQUEST);
    v8 = 7;
    expect_patch("sampler 7", b, len, R_SAMPLER, &v8, 1, HSD_WIRE_E_BAD_REQUEST);
    v16 = 76;
    expect_patch("emb_t 76", b, len, R_EMBT, &v16, 2, HSD_WIRE_E_BAD_MESSAGE);
    v8 = 1;
    expect_patch("n_emb 1 with 2 stored", b, len, R_NEMB, &v8, 1, HSD_WIRE_E_BAD_MESSAGE);
    float f = NAN;
    expect_patch("NaN in latent", b, len, R_LATENT + 4 * 17, &f, 4, HSD_WIRE_E_BAD_REQUEST);
    f = -INFINITY;
    expect_patch("-Inf in embeddings", b, len, len - HSD_WIRE_HEADER_SIZE - 4, &f, 4,
                 HSD_WIRE_E_BAD_REQUEST);
    double d = -1.0;
    expect_patch("negative device_ms", b, len, R_DEVMS, &d, 8, HSD_WIRE_E_BAD_REQUEST);
    uint32_t sn = 1u << 31;
    expect_patch("sampler state length past end", b, len, R_LATENT + 4 * 4 * 8 * 8, &sn, 4,
                 HSD_WIRE_E_BAD_MESSAGE);
    free(b);

    // Latent dims at their limits and beyond (c 17 with a consistent size).
    struct hsd_wire_msg big = make_result();
    static float lat17[17 * 2 * 2];
    big.u.result.latent = lat17;
    big.u.result.c = 16;
    big.u.result.h = big.u.result.w = 2;
    big.u.result.n_emb = 0;
    big.u.result.emb_t = big.u.result.emb_c = 0;
    b = encode(&big, &len);
    expect_code("latent c 16", b, len, HSD_WIRE_E_NONE);
    CHECK(b != NULL);
    uint8_t *x = malloc(len + 16);
    memcpy(x, b, len);
    memset(x + len, 0, 16);
    put16(x, HSD_WIRE_HEADER_SIZE + R_C, 17);
    put32(x, 12, (uint32_t)(len + 16 - HSD_WIRE_HEADER_SIZE));
    // 16 more latent bytes sit where the state length was: move it.
    size_t st = HSD_WIRE_HEADER_SIZE + R_LATENT + 16 * 4 * 4;
    memmove(x + st + 16, x + st, len - st);
    memset(x + st, 0, 16);
    hsd_wire_update_checksum(x, len + 16);
    expect_code("latent c 17", x, len + 16, HSD_WIRE_E_BAD_REQUEST);
    free(x);
    free(b);

    // Encoding refuses what decoding would refuse.
    struct hsd_wire_msg bad = make_generate();
    bad.u.generate.steps = 0;
    void *buf;
    size_t n;
    CHECK(hsd_wire_encode_alloc(&buf, &n, &bad) == HSD_ERR_INVALID_ARG && buf == NULL);
    bad = make_generate();
    bad.u.generate.cfg_scale = NAN;
    CHECK(hsd_wire_encode_alloc(&buf, &n, &bad) == HSD_ERR_INVALID_ARG);
    bad = make_result();
    g_latent[3] = NAN;
    CHECK(hsd_wire_encode_alloc(&buf, &n, &bad) == HSD_ERR_INVALID_ARG);
    g_latent[3] = 0.5f;
    uint8_t small[16];
    struct hsd_wire_msg ok = make_generate();
    CHECK(hsd_wire_encode(small, sizeof small, &n, &ok) == HSD_ERR_INVALID_ARG);
    bad = make_generate();
    bad.type = 42;
    CHECK(hsd_wire_encode_alloc(&buf, &n, &bad) == HSD_ERR_INVALID_ARG);

    // ERROR: code 0 refused, unknown codes accepted (newer peers), text
    // sanitised and cut by the helper.
    uint8_t eb[HSD_WIRE_ERROR_MAX_SIZE];
    CHECK_OK(hsd_wire_encode_error(eb, sizeof eb, &n, 3, HSD_WIRE_E_BAD_REQUEST, 0,
                                   "bad prompt byte %s", "\xff\xfe ok \xc3\xa9"));
    struct hsd_wire_msg em;
    enum hsd_wire_error code;
    CHECK_OK(hsd_wire_decode(&em, &code, eb, n));
    CHECK(em.u.error.text.n == 24 &&
          memcmp(em.u.error.text.p, "bad prompt byte ?? ok \xc3\xa9", 24) == 0);
    char longtext[3000];
    for (int i = 0; i < 1500; i++) memcpy(longtext + 2 * i, "\xc3\xa9", 2);  // 'é' x 1500
    longtext[2999] = 0;
    CHECK_OK(
        hsd_wire_encode_error(eb, sizeof eb, &n, 3, HSD_WIRE_E_INTERNAL, 5000000, "x%s", longtext));
    CHECK_OK(hsd_wire_decode(&em, &code, eb, n));
    CHECK(em.u.error.text.n == 1023 && em.u.error.retry_after_ms == HSD_WIRE_MAX_RETRY_MS);
    put16(eb, HSD_WIRE_HEADER_SIZE, 0);
    hsd_wire_update_checksum(eb, n);
    expect_code("ERROR code 0", eb, n, HSD_WIRE_E_BAD_REQUEST);
    put16(eb, HSD_WIRE_HEADER_SIZE, 999);
    hsd_wire_update_checksum(eb, n);
    expect_code("ERROR code 999 (unknown, accepted)", eb, n, HSD_WIRE_E_NONE);
    CHECK(strcmp(hsd_wire_error_name(999), "UNKNOWN") == 0);

    // STATUS: device count over the limit; STATUS_REQUEST with a payload.
    struct hsd_wire_msg st2 = {0};
    st2.type = HSD_WIRE_STATUS;
    b = encode(&st2, &len);
    v8 = 33;
    expect_patch("STATUS with 33 devices", b, len, 1, &v8, 1, HSD_WIRE_E_BAD_REQUEST);
    v8 = 1;
    expect_patch("STATUS device entry missing", b, len, 1, &v8, 1, HSD_WIRE_E_BAD_MESSAGE);
    v8 = 3;
    expect_patch("STATUS health 3", b, len, 0, &v8, 1, HSD_WIRE_E_BAD_REQUEST);
    free(b);
    struct hsd_wire_msg sq = {0};
    sq.type = HSD_WIRE_CANCEL;
    b = encode(&sq, &len);
    put16(b, 6, HSD_WIRE_STATUS_REQUEST);
    hsd_wire_update_checksum(b, len);
    expect_code("STATUS_REQUEST with a payload", b, len, HSD_WIRE_E_BAD_MESSAGE);
    free(b);
    struct hsd_wire_msg ack = {0};
    ack.type = HSD_WIRE_CANCEL_ACK;
    b = encode(&ack, &len);
    v8 = 2;
    expect_patch("CANCEL_ACK cancelled 2", b, len, 8, &v8, 1, HSD_WIRE_E_BAD_REQUEST);
    free(b);
}

// The seed corpus was written from docs/protocol.md by an independent
// encoder: its valid_* messages must decode (a check of the doc against the
// code), and its bad_* ones must not.
static void test_corpus(const char *dir) {
    printf("corpus %s\n", dir);
    DIR *d = opendir(dir);
    CHECKF(d != NULL, "cannot open %s", dir);
    if (!d) return;
    int n_valid = 0, n_bad = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int valid = strncmp(e->d_name, "valid_", 6) == 0;
        if (!valid && strncmp(e->d_name, "bad_", 4) != 0) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        uint8_t *buf = malloc(1 << 20);
        size_t n = fread(buf, 1, 1 << 20, f);
        fclose(f);
        struct hsd_wire_msg m;
        enum hsd_wire_error code;
        enum hsd_status s = hsd_wire_decode(&m, &code, buf, n);
        CHECKF((s == HSD_OK) == valid, "%s: %s", e->d_name,
               s == HSD_OK ? "decoded" : hsd_last_error());
        if (valid && s == HSD_OK) {
            void *again;
            size_t n2;
            CHECK_OK(hsd_wire_encode_alloc(&again, &n2, &m));
            CHECKF(again && n2 == n && memcmp(again, buf, n) == 0, "%s: re-encoding differs",
                   e->d_name);
            free(again);
        }
        valid ? n_valid++ : n_bad++;
        free(buf);
    }
    closedir(d);
    printf("  %d valid and %d bad corpus messages as expected\n", n_valid, n_bad);
    CHECK(n_valid >= 7);
}

// ---------------------------------------------------------------------------
// Version 2 (docs/protocol.md §5.1, §5.2): SDXL's micro-conditioning and
// edge widths in GENERATE, pooled embeddings and time ids in RESULT.

static float g_pooled[2 * 12];
static const float k_time_ids[2 * 6] = {768, 512, 16, 32, 768, 512, 768, 512, 16, 32, 768, 512};

static void test_version2(void) {
    printf("version 2\n");
    hsd_test_fill_uniform(g_pooled, HSD_ARRAY_LEN(g_pooled), 3, 1.0f);
    struct hsd_wire_msg d, g = make_generate();
    g.version = 0;  // this build's: 2
    struct hsd_wire_generate *wg = &g.u.generate;
    wg->original_width = 512, wg->original_height = 768, wg->crop_top = 16, wg->crop_left = 32;
    wg->edge_ctx_c = 2048, wg->edge_pooled_c = 1280;
    check_roundtrip("GENERATE v2", &g, &d);
    const struct hsd_wire_generate *dg = &d.u.generate;
    CHECK(d.version == 2 && dg->original_width == 512 && dg->original_height == 768 &&
          dg->crop_top == 16 && dg->crop_left == 32 && dg->edge_ctx_c == 2048 &&
          dg->edge_pooled_c == 1280);
    struct hsd_wire_msg v1 = make_generate();
    size_t n1, n2;
    free(encode(&v1, &n1));
    free(encode(&g, &n2));
    CHECKF(n2 == n1 + 12, "GENERATE v2 is %zu bytes, v1 %zu: 12 more expected", n2, n1);
    // Version 1 cannot carry the new fields: refused when encoding.
    g.version = 1;
    void *tb = NULL;
    size_t tl;
    CHECK(hsd_wire_encode_alloc(&tb, &tl, &g) != HSD_OK &&
          strstr(hsd_last_error(), "need protocol version 2"));
    g.version = 2;
    wg->edge_ctx_c = 0;  // pooled width without a context width
    CHECK(hsd_wire_encode_alloc(&tb, &tl, &g) != HSD_OK &&
          strstr(hsd_last_error(), "edge_pooled_c 1280 without edge_ctx_c"));
    wg->edge_ctx_c = 4097;
    CHECK(hsd_wire_encode_alloc(&tb, &tl, &g) != HSD_OK && strstr(hsd_last_error(), "edge_ctx_c"));
    hsd_clear_error();

    struct hsd_wire_msg r = make_result();
    r.version = 2;
    struct hsd_wire_result *wr = &r.u.result;
    wr->pooled_c = 12;
    wr->n_time_ids = 6;
    wr->pooled = g_pooled;
    wr->time_ids = k_time_ids;
    check_roundtrip("RESULT v2 (SDXL)", &r, &d);
    const struct hsd_wire_result *dr = &d.u.result;
    float pooled[HSD_ARRAY_LEN(g_pooled)], ids[12];
    hsd_wire_read_f32(pooled, dr->pooled, HSD_ARRAY_LEN(pooled));
    hsd_wire_read_f32(ids, dr->time_ids, 12);
    CHECK(dr->pooled_c == 12 && dr->n_time_ids == 6 &&
          memcmp(pooled, g_pooled, sizeof pooled) == 0 && memcmp(ids, k_time_ids, sizeof ids) == 0);
    size_t len;
    uint8_t *b = encode(&r, &len);
    if (!b) return;
    // Payload offsets: fixed 32 + pooled_c, n_time_ids; pooled and time ids end it.
    uint16_t v16 = 13;
    expect_patch("pooled_c 13 (length no longer fits)", b, len, 32, &v16, 2,
                 HSD_WIRE_E_BAD_MESSAGE);
    v16 = 0;
    const size_t tail = len - HSD_WIRE_HEADER_SIZE;
    float f = NAN;
    expect_patch("NaN in pooled embeddings", b, len, tail - 4 * (12 + 24), &f, 4,
                 HSD_WIRE_E_BAD_REQUEST);
    f = -1.0f;
    expect_patch("negative time id", b, len, tail - 4, &f, 4, HSD_WIRE_E_BAD_REQUEST);
    f = 65536.0f;
    expect_patch("time id 65536", b, len, tail - 4 * 12, &f, 4, HSD_WIRE_E_BAD_REQUEST);
    f = INFINITY;
    expect_patch("Inf time id", b, len, tail - 4 * 7, &f, 4, HSD_WIRE_E_BAD_REQUEST);
    // The same bytes as version 1 are a length error: v1 has no such fields.
    uint8_t *x = malloc(len);
    memcpy(x, b, len);
    put16(x, 4, 1);
    hsd_wire_update_checksum(x, len);
    expect_code("v2 RESULT labelled version 1", x, len, HSD_WIRE_E_BAD_MESSAGE);
    free(x);
    free(b);
    wr->n_time_ids = 0;  // pooled embeddings without time ids
    CHECK(hsd_wire_encode_alloc(&tb, &tl, &r) != HSD_OK && strstr(hsd_last_error(), "n_time_ids"));
    wr->n_time_ids = 6;
    r.version = 1;
    CHECK(hsd_wire_encode_alloc(&tb, &tl, &r) != HSD_OK &&
          strstr(hsd_last_error(), "need protocol version 2"));
    r.version = 2;
    wr->n_emb = 0, wr->emb_t = wr->emb_c = 0;
    CHECK(hsd_wire_encode_alloc(&tb, &tl, &r) != HSD_OK && strstr(hsd_last_error(), "n_emb 0"));
    hsd_clear_error();

    // An ERROR answers in its request's version (hsd_wire_set_version).
    uint8_t eb[HSD_WIRE_ERROR_MAX_SIZE];
    size_t en;
    CHECK_OK(hsd_wire_encode_error(eb, sizeof eb, &en, 9, HSD_WIRE_E_BUSY, 0, "busy"));
    hsd_wire_set_version(eb, en, 1);
    CHECK_OK(hsd_wire_decode(&d, NULL, eb, en));
    CHECK(d.version == 1 && d.u.error.code == HSD_WIRE_E_BUSY);
    hsd_wire_set_version(eb, en, 7);  // unreadable request: version 1, read by every client
    CHECK_OK(hsd_wire_decode(&d, NULL, eb, en));
    CHECK(d.version == 1);
    free(g_last);
    g_last = NULL;
}

int main(int argc, char **argv) {
    test_roundtrips();
    test_framing();
    test_generate_rules();
    test_result_rules();
    test_version2();
    if (argc > 1) test_corpus(argv[1]);
    return hsd_test_finish();
}
