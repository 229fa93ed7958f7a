// Framing of the hsd wire protocol (docs/protocol.md §2-§4): header, length
// accounting, checksum, auth block shape, and the shared helpers (UTF-8,
// error names, ERROR replies). Payload codecs per message type live in
// wire_msg.c.
#include "net/wire.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/assert.h"
#include "net/wire_internal.h"
#include "sampling/sampler.h"

// The protocol numbers samplers the way host/sampling does, so the service
// can cast; adding a sampler there must be a conscious protocol change here.
_Static_assert(HSD_WIRE_SAMPLER_COUNT == HSD_SAMPLER_COUNT,
               "a sampler was added: give it a wire id in docs/protocol.md and bump "
               "HSD_WIRE_SAMPLER_COUNT");
_Static_assert(HSD_WIRE_MAX_STEPS == HSD_SAMPLER_MAX_STEPS, "step limits disagree");
// Wire floats are IEEE-754 binary32/64 little-endian; float arrays are
// memcpy'd, which is only right on a little-endian host.
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "hsd's wire code assumes a little-endian host");
_Static_assert(sizeof(float) == 4 && sizeof(double) == 8, "IEEE-754 floats expected");

static const char *const k_error_names[HSD_WIRE_E_MAX + 1] = {
    [HSD_WIRE_E_NONE] = "NONE",
    [HSD_WIRE_E_BAD_MESSAGE] = "BAD_MESSAGE",
    [HSD_WIRE_E_BAD_VERSION] = "BAD_VERSION",
    [HSD_WIRE_E_BAD_CHECKSUM] = "BAD_CHECKSUM",
    [HSD_WIRE_E_TOO_LARGE] = "TOO_LARGE",
    [HSD_WIRE_E_UNAUTHENTICATED] = "UNAUTHENTICATED",
    [HSD_WIRE_E_REPLAYED] = "REPLAYED",
    [HSD_WIRE_E_RATE_LIMITED] = "RATE_LIMITED",
    [HSD_WIRE_E_BUSY] = "BUSY",
    [HSD_WIRE_E_BAD_REQUEST] = "BAD_REQUEST",
    [HSD_WIRE_E_CANCELLED] = "CANCELLED",
    [HSD_WIRE_E_EXPIRED] = "EXPIRED",
    [HSD_WIRE_E_INTERNAL] = "INTERNAL",
    [HSD_WIRE_E_SHUTTING_DOWN] = "SHUTTING_DOWN",
};

static const char *const k_type_names[HSD_WIRE_TYPE_MAX + 1] = {
    [HSD_WIRE_GENERATE] = "GENERATE",     [HSD_WIRE_RESULT] = "RESULT",
    [HSD_WIRE_ERROR] = "ERROR",           [HSD_WIRE_STATUS_REQUEST] = "STATUS_REQUEST",
    [HSD_WIRE_STATUS] = "STATUS",         [HSD_WIRE_CANCEL] = "CANCEL",
    [HSD_WIRE_CANCEL_ACK] = "CANCEL_ACK",
};

const char *hsd_wire_error_name(uint16_t code) {
    return code <= HSD_WIRE_E_MAX ? k_error_names[code] : "UNKNOWN";
}

const char *hsd_wire_type_name(uint16_t type) {
    return (type >= 1 && type <= HSD_WIRE_TYPE_MAX) ? k_type_names[type] : "UNKNOWN";
}

int hsd_wire_error_retryable(uint16_t code, uint32_t retry_after_ms) {
    return code == HSD_WIRE_E_BUSY || code == HSD_WIRE_E_RATE_LIMITED ||
           code == HSD_WIRE_E_SHUTTING_DOWN || retry_after_ms > 0;
}

enum hsd_status wire_bad(struct wire_ctx *c, enum hsd_wire_error e, const char *fmt, ...) {
    char text[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (c->code) *c->code = e;
    return hsd_fail(c->st, "%s: %s (%s)", c->what, text, hsd_wire_error_name((uint16_t)e));
}

// ---------------------------------------------------------------------------
// UTF-8 and key ids

// Length of the valid UTF-8 character at s (RFC 3629 §4 table: no overlongs,
// no surrogates, nothing past U+10FFFF), or 0 if the bytes there are not
// one. NUL counts as invalid: text fields reach C string APIs.
static size_t utf8_char_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c == 0) return 0;
    if (c < 0x80) return 1;
    size_t need;
    unsigned lo = 0x80, hi = 0xbf;  // range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        if (c == 0xe0)
            lo = 0xa0;  // overlong
        else if (c == 0xed)
            hi = 0x9f;  // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        if (c == 0xf0)
            lo = 0x90;  // overlong
        else if (c == 0xf4)
            hi = 0x8f;  // > U+10FFFF
    } else {
        return 0;
    }
    if (n < need + 1) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t k = 2; k <= need; k++)
        if ((s[k] & 0xc0) != 0x80) return 0;
    return need + 1;
}

int hsd_wire_utf8_ok(const char *s, size_t n, size_t *bad_at) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t l = utf8_char_len(u + i, n - i);
        if (!l) {
            if (bad_at) *bad_at = i;
            return 0;
        }
        i += l;
    }
    return 1;
}

static void utf8_sanitize(char *s, size_t n) {
    unsigned char *u = (unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t l = utf8_char_len(u + i, n - i);
        if (!l) {
            u[i++] = '?';
        } else {
            i += l;
        }
    }
}

int hsd_wire_key_id_ok(const char *id, size_t n) {
    if (n < 1 || n >= HSD_WIRE_KEY_ID_SIZE) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '.' || ch == '_' || ch == '-';
        if (!ok) return 0;
    }
    return 1;
}

// ---------------------------------------------------------------------------
// Checksum: CRC-32 as zlib computes it (ISO-HDLC polynomial), over the whole
// message with the checksum field read as zero. It catches corruption and
// truncation, nothing more: integrity against an attacker is the HMAC's job.

uint32_t hsd_wire_checksum(const void *msg, size_t len) {
    HSD_ASSERT(len >= HSD_WIRE_HEADER_SIZE);
    static const uint8_t zero4[4];
    const uint8_t *b = msg;
    uLong crc = crc32_z(0L, Z_NULL, 0);
    crc = crc32_z(crc, b, HSD_WIRE_CHECKSUM_OFFSET);
    crc = crc32_z(crc, zero4, 4);
    crc = crc32_z(crc, b + HSD_WIRE_CHECKSUM_OFFSET + 4, len - HSD_WIRE_CHECKSUM_OFFSET - 4);
    return (uint32_t)crc;
}

void hsd_wire_update_checksum(void *msg, size_t len) {
    uint32_t crc = hsd_wire_checksum(msg, len);
    struct wire_wr w = {(uint8_t *)msg, HSD_WIRE_CHECKSUM_OFFSET};
    wr_u32(&w, crc);
}

int hsd_wire_version_ok(uint16_t version) {
    return version >= HSD_WIRE_VERSION_MIN && version <= HSD_WIRE_VERSION;
}

void hsd_wire_set_version(void *msg, size_t len, uint16_t version) {
    if (len < HSD_WIRE_HEADER_SIZE) return;
    struct wire_wr w = {(uint8_t *)msg, 4};
    wr_u16(&w, hsd_wire_version_ok(version) ? version : HSD_WIRE_VERSION_MIN);
    hsd_wire_update_checksum(msg, len);
}

// ---------------------------------------------------------------------------
// Decoding

// The frame checks; the CRC only when `crc` (hsd_wire_peek_frame skips it).
static enum hsd_status frame(struct hsd_wire_frame *f, enum hsd_wire_error *code, const void *buf,
                             size_t len, int crc) {
    struct wire_ctx c = {HSD_ERR_FORMAT, code, "message"};
    enum hsd_wire_error dummy;
    if (!code) c.code = &dummy;
    *c.code = HSD_WIRE_E_NONE;
    memset(f, 0, sizeof *f);
    const uint8_t *b = buf;
    if (!b) len = 0;

    // Magic and version sit at fixed offsets in every version, so a peer can
    // always say "wrong protocol" or "wrong version" (docs/protocol.md §6).
    if (len < 4 || memcmp(b, HSD_WIRE_MAGIC, 4) != 0)
        return wire_bad(&c, HSD_WIRE_E_BAD_MESSAGE, "bad magic (not an hsd message; %zu bytes)",
                        len);
    if (len < 6)
        return wire_bad(&c, HSD_WIRE_E_BAD_MESSAGE, "truncated header: %zu of %d bytes", len,
                        HSD_WIRE_HEADER_SIZE);
    struct wire_rd r = {b, len, 4};
    uint16_t version = rd_u16(&r);
    f->version = version;
    if (!hsd_wire_version_ok(version))
        return wire_bad(&c, HSD_WIRE_E_BAD_VERSION,
                        "protocol version %u; this peer speaks versions %d..%d", version,
                        HSD_WIRE_VERSION_MIN, HSD_WIRE_VERSION);
    if (len < HSD_WIRE_HEADER_SIZE) {
        if (len >= 24) {
            r.off = 16;
            f->request_id = rd_u64(&r);
        }
        return wire_bad(&c, HSD_WIRE_E_BAD_MESSAGE, "truncated header: %zu of %d bytes", len,
                        HSD_WIRE_HEADER_SIZE);
    }
    f->type = rd_u16(&r);
    f->flags = rd_u16(&r);
    uint16_t reserved16 = rd_u16(&r);
    f->payload_len = rd_u32(&r);
    f->request_id = rd_u64(&r);
    uint32_t checksum = rd_u32(&r);
    uint32_t reserved32 = rd_u32(&r);
    f->msg = b;
    f->len = len;

    if (reserved16 != 0 || reserved32 != 0)
        return wire_bad(&c, HSD_WIRE_E_BAD_MESSAGE, "reserved header fields must be zero");
    uint16_t unknown_critical = f->flags & HSD_WIRE_FLAGS_CRITICAL & ~HSD_WIRE_FLAGS_KNOWN;
    if (unknown_critical)
        return wire_bad(&c, HSD_WIRE_E_BAD_VERSION, "unknown critical flags 0x%04x",
                        unknown_critical);
    int has_auth = (f->flags & HSD_WIRE_FLAG_AUTH) != 0;
    uint64_t expect =
        (uint64_t)HSD_WIRE_HEADER_SIZE + f->payload_len + (has_auth ? HSD_WIRE_AUTH_SIZE : 0);
    if (expect > HSD_WIRE_MAX_MESSAGE || len > HSD_WIRE_MAX_MESSAGE)
        return wire_bad(&c, HSD_WIRE_E_TOO_LARGE, "message of %llu bytes exceeds the %u-byte limit",
                        (unsigned long long)(expect > len ? expect : len), HSD_WIRE_MAX_MESSAGE);
    if (expect > len)
        return wire_bad(&c, HSD_WIRE_E_BAD_MESSAGE,
                        "payload length %u runs past the end: header says %llu bytes, got %zu",
                        f->payload_len, (unsigned long long)expect, len);
    if (expect < len)
        return wire_bad(&c, HSD_WIRE_E_BAD_MESSAGE,
                        "length mismatch: header says %llu bytes, got %zu (trailing bytes)",
                        (unsigned long long)expect, len);
    uint32_t want = crc ? hsd_wire_checksum(b, len) : checksum;
    if (checksum != want)
        return wire_bad(&c, HSD_WIRE_E_BAD_CHECKSUM, "checksum 0x%08x, computed 0x%08x", checksum,
                        want);
    if (f->type < 1 || f->type > HSD_WIRE_TYPE_MAX)
        return wire_bad(&c, HSD_WIRE_E_BAD_MESSAGE, "unknown message type %u", f->type);
    f->payload = b + HSD_WIRE_HEADER_SIZE;
    f->auth = has_auth ? f->payload + f->payload_len : NULL;
    return HSD_OK;
}

enum hsd_status hsd_wire_decode_frame(struct hsd_wire_frame *f, enum hsd_wire_error *code,
                                      const void *buf, size_t len) {
    return frame(f, code, buf, len, 1);
}

enum hsd_status hsd_wire_peek_frame(struct hsd_wire_frame *f, enum hsd_wire_error *code,
                                    const void *buf, size_t len) {
    return frame(f, code, buf, len, 0);
}

void hsd_wire_read_auth(struct hsd_wire_auth *a, const uint8_t *p) {
    struct wire_rd r = {p, HSD_WIRE_AUTH_SIZE, 0};
    memcpy(a->key_id, rd_take(&r, HSD_WIRE_KEY_ID_SIZE), HSD_WIRE_KEY_ID_SIZE);
    a->timestamp_ms = rd_u64(&r);
    memcpy(a->nonce, rd_take(&r, HSD_WIRE_NONCE_SIZE), HSD_WIRE_NONCE_SIZE);
    memcpy(a->mac, rd_take(&r, HSD_WIRE_MAC_SIZE), HSD_WIRE_MAC_SIZE);
}

static enum hsd_status parse_auth(struct hsd_wire_auth *a, struct wire_ctx *c, const uint8_t *p) {
    hsd_wire_read_auth(a, p);
    size_t n = strnlen(a->key_id, HSD_WIRE_KEY_ID_SIZE);
    // A canonical encoding: the id, then only NULs (so re-encoding is exact).
    for (size_t i = n; i < HSD_WIRE_KEY_ID_SIZE; i++)
        if (a->key_id[i] != 0)
            return wire_bad(c, HSD_WIRE_E_BAD_MESSAGE, "auth key id is not NUL-padded");
    if (!hsd_wire_key_id_ok(a->key_id, n))
        return wire_bad(c, HSD_WIRE_E_BAD_MESSAGE,
                        "auth key id must be 1..31 characters of [A-Za-z0-9._-]");
    return HSD_OK;
}

enum hsd_status hsd_wire_decode(struct hsd_wire_msg *m, enum hsd_wire_error *code, const void *buf,
                                size_t len) {
    enum hsd_wire_error dummy;
    if (!code) code = &dummy;
    memset(m, 0, sizeof *m);
    struct hsd_wire_frame f;
    enum hsd_status s = hsd_wire_decode_frame(&f, code, buf, len);
    m->version = f.version;
    m->type = f.type;
    m->flags = f.flags;
    m->request_id = f.request_id;
    if (s != HSD_OK) return s;

    struct wire_ctx c = {HSD_ERR_FORMAT, code, hsd_wire_type_name(f.type)};
    if (f.auth && (s = parse_auth(&m->auth, &c, f.auth)) != HSD_OK) return s;
    struct wire_rd r = {f.payload, f.payload_len, 0};
    if ((s = wire_parse_payload(m, &c, &r)) != HSD_OK) return s;
    if (r.off != r.n)
        return wire_bad(&c, HSD_WIRE_E_BAD_MESSAGE, "%zu unexpected bytes after the last field",
                        r.n - r.off);
    return wire_check_payload(m, &c);
}

enum hsd_status hsd_wire_peek_generate(const struct hsd_wire_frame *f, uint16_t *width,
                                       uint16_t *height, uint16_t *steps) {
    if (f->type != HSD_WIRE_GENERATE || f->payload_len < 14)
        return hsd_fail(HSD_ERR_FORMAT, "not a GENERATE with its fixed fields");
    struct wire_rd r = {f->payload, f->payload_len, 8};  // GENERATE: seed u64 first
    *width = rd_u16(&r);
    *height = rd_u16(&r);
    *steps = rd_u16(&r);
    return HSD_OK;
}

void hsd_wire_read_f32(float *dst, const void *src, size_t n) {
    if (n) memcpy(dst, src, n * sizeof(float));  // little-endian host (asserted above)
}

void hsd_wire_read_tokens(int32_t *dst, const struct hsd_wire_prompt *p) {
    if (p->kind == HSD_WIRE_PROMPT_TOKENS && p->n_tokens)
        memcpy(dst, p->tokens, p->n_tokens * sizeof(int32_t));
}

int hsd_wire_str_copy(char *dst, size_t cap, struct hsd_wire_str s) {
    if (cap == 0) return 0;
    size_t n = s.n < cap - 1 ? s.n : cap - 1;
    if (n) memcpy(dst, s.p, n);
    dst[n] = '\0';
    return n == s.n;
}

// ---------------------------------------------------------------------------
// Encoding

size_t hsd_wire_encoded_size(const struct hsd_wire_msg *m) {
    if (m->type < 1 || m->type > HSD_WIRE_TYPE_MAX) return 0;
    uint64_t p = wire_payload_size(m);
    if (p == 0 && m->type != HSD_WIRE_STATUS_REQUEST) return 0;
    uint64_t total =
        HSD_WIRE_HEADER_SIZE + p + ((m->flags & HSD_WIRE_FLAG_AUTH) ? HSD_WIRE_AUTH_SIZE : 0);
    if (total > HSD_WIRE_MAX_MESSAGE) return 0;
    return (size_t)total;
}

static enum hsd_status check_for_encode(const struct hsd_wire_msg *m, size_t *size) {
    enum hsd_wire_error code;
    struct wire_ctx c = {HSD_ERR_INVALID_ARG, &code, hsd_wire_type_name(m->type)};
    if (m->type < 1 || m->type > HSD_WIRE_TYPE_MAX)
        return wire_bad(&c, HSD_WIRE_E_BAD_MESSAGE, "unknown message type %u", m->type);
    if (m->version && !hsd_wire_version_ok(m->version))
        return wire_bad(&c, HSD_WIRE_E_BAD_VERSION, "protocol version %u: this build writes %d..%d",
                        m->version, HSD_WIRE_VERSION_MIN, HSD_WIRE_VERSION);
    uint16_t unknown = m->flags & HSD_WIRE_FLAGS_CRITICAL & ~HSD_WIRE_FLAGS_KNOWN;
    if (unknown)
        return wire_bad(&c, HSD_WIRE_E_BAD_VERSION, "unknown critical flags 0x%04x", unknown);
    if (m->flags & HSD_WIRE_FLAG_AUTH) {
        // An all-zero key id is the placeholder hsd_auth_sign fills in later.
        size_t n = strnlen(m->auth.key_id, HSD_WIRE_KEY_ID_SIZE);
        int padded = 1;
        for (size_t i = n; i < HSD_WIRE_KEY_ID_SIZE; i++)
            if (m->auth.key_id[i] != 0) padded = 0;
        if (!padded || (n != 0 && !hsd_wire_key_id_ok(m->auth.key_id, n)))
            return wire_bad(&c, HSD_WIRE_E_BAD_MESSAGE,
                            "auth key id must be 1..31 characters of [A-Za-z0-9._-], NUL-padded");
    }
    enum hsd_status s = wire_check_payload(m, &c);
    if (s != HSD_OK) return s;
    *size = hsd_wire_encoded_size(m);
    if (*size == 0)
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: the message would exceed the %u-byte limit",
                        c.what, HSD_WIRE_MAX_MESSAGE);
    return HSD_OK;
}

static void write_msg(uint8_t *b, size_t size, const struct hsd_wire_msg *m) {
    struct wire_wr w = {b, 0};
    wr_bytes(&w, HSD_WIRE_MAGIC, 4);
    wr_u16(&w, m->version ? m->version : HSD_WIRE_VERSION);
    wr_u16(&w, m->type);
    wr_u16(&w, m->flags);
    wr_u16(&w, 0);
    size_t auth = (m->flags & HSD_WIRE_FLAG_AUTH) ? HSD_WIRE_AUTH_SIZE : 0;
    wr_u32(&w, (uint32_t)(size - HSD_WIRE_HEADER_SIZE - auth));
    wr_u64(&w, m->request_id);
    wr_u32(&w, 0);  // checksum, filled last
    wr_u32(&w, 0);
    wire_write_payload(&w, m);
    if (auth) {
        wr_bytes(&w, m->auth.key_id, HSD_WIRE_KEY_ID_SIZE);
        wr_u64(&w, m->auth.timestamp_ms);
        wr_bytes(&w, m->auth.nonce, HSD_WIRE_NONCE_SIZE);
        wr_bytes(&w, m->auth.mac, HSD_WIRE_MAC_SIZE);
    }
    HSD_ASSERT(w.off == size);
    hsd_wire_update_checksum(b, size);
}

enum hsd_status hsd_wire_encode(void *buf, size_t cap, size_t *len, const struct hsd_wire_msg *m) {
    size_t size = 0;
    enum hsd_status s = check_for_encode(m, &size);
    if (s != HSD_OK) return s;
    if (cap < size)
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: needs %zu bytes, buffer has %zu",
                        hsd_wire_type_name(m->type), size, cap);
    write_msg(buf, size, m);
    *len = size;
    return HSD_OK;
}

enum hsd_status hsd_wire_encode_alloc(void **buf, size_t *len, const struct hsd_wire_msg *m) {
    *buf = NULL;
    size_t size = 0;
    enum hsd_status s = check_for_encode(m, &size);
    if (s != HSD_OK) return s;
    uint8_t *b = malloc(size);
    if (!b)
        return hsd_fail(HSD_ERR_NOMEM, "%s: cannot allocate %zu bytes", hsd_wire_type_name(m->type),
                        size);
    write_msg(b, size, m);
    *buf = b;
    *len = size;
    return HSD_OK;
}

enum hsd_status hsd_wire_encode_error(void *buf, size_t cap, size_t *len, uint64_t request_id,
                                      enum hsd_wire_error code, uint32_t retry_after_ms,
                                      const char *fmt, ...) {
    char text[HSD_WIRE_MAX_ERROR_TEXT + 1];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    size_t tn = n < 0 ? 0 : ((size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
    // Cut a multi-byte character that vsnprintf's truncation split, then make
    // any other invalid byte (e.g. echoed from a peer) a '?'.
    if (n > 0 && (size_t)n >= sizeof text) {
        size_t i = tn, k = 0;
        while (i > 0 && k < 3 && ((unsigned char)text[i - 1] & 0xc0) == 0x80) i--, k++;
        if (i > 0 && ((unsigned char)text[i - 1] & 0xc0) == 0xc0 &&
            utf8_char_len((const unsigned char *)text + i - 1, tn - (i - 1)) == 0)
            tn = i - 1;
    }
    utf8_sanitize(text, tn);
    struct hsd_wire_msg m = {0};
    m.type = HSD_WIRE_ERROR;
    m.request_id = request_id;
    m.u.error.code = (uint16_t)code;
    m.u.error.retry_after_ms =
        retry_after_ms > HSD_WIRE_MAX_RETRY_MS ? HSD_WIRE_MAX_RETRY_MS : retry_after_ms;
    m.u.error.text.p = text;
    m.u.error.text.n = tn;
    return hsd_wire_encode(buf, cap, len, &m);
}
