// Private to host/net/wire*.c: a bounds-checked little-endian reader and
// writer, and the context that turns a broken rule into a status + protocol
// error code + message. Not part of the public API.
#ifndef HSD_NET_WIRE_INTERNAL_H
#define HSD_NET_WIRE_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "net/wire.h"

// Where a rule was broken: decode reports HSD_ERR_FORMAT (a peer sent it),
// encode HSD_ERR_INVALID_ARG (our caller built it). `what` prefixes the
// message ("GENERATE", "RESULT", ...).
struct wire_ctx {
    enum hsd_status st;
    enum hsd_wire_error *code;
    const char *what;
};

enum hsd_status wire_bad(struct wire_ctx *c, enum hsd_wire_error e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Reader over a payload. Every read checks the remaining length first, so a
// lying length field can never move a read past the end (the fuzzer's job is
// to prove it).
struct wire_rd {
    const uint8_t *p;
    size_t n, off;
};

static inline int rd_has(const struct wire_rd *r, uint64_t k) { return k <= r->n - r->off; }

static inline uint8_t rd_u8(struct wire_rd *r) { return r->p[r->off++]; }
static inline uint16_t rd_u16(struct wire_rd *r) {
    const uint8_t *b = r->p + r->off;
    r->off += 2;
    return (uint16_t)(b[0] | (b[1] << 8));
}
static inline uint32_t rd_u32(struct wire_rd *r) {
    const uint8_t *b = r->p + r->off;
    r->off += 4;
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}
static inline uint64_t rd_u64(struct wire_rd *r) {
    uint64_t lo = rd_u32(r);
    uint64_t hi = rd_u32(r);
    return lo | (hi << 32);
}
static inline float rd_f32(struct wire_rd *r) {
    uint32_t u = rd_u32(r);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline double rd_f64(struct wire_rd *r) {
    uint64_t u = rd_u64(r);
    double d;
    memcpy(&d, &u, 8);
    return d;
}
static inline const uint8_t *rd_take(struct wire_rd *r, size_t k) {
    const uint8_t *b = r->p + r->off;
    r->off += k;
    return b;
}

// Writer into a buffer whose size was computed beforehand (encoded_size).
struct wire_wr {
    uint8_t *p;
    size_t off;
};

static inline void wr_u8(struct wire_wr *w, uint8_t v) { w->p[w->off++] = v; }
static inline void wr_u16(struct wire_wr *w, uint16_t v) {
    w->p[w->off++] = (uint8_t)v;
    w->p[w->off++] = (uint8_t)(v >> 8);
}
static inline void wr_u32(struct wire_wr *w, uint32_t v) {
    for (int i = 0; i < 4; i++) w->p[w->off++] = (uint8_t)(v >> (8 * i));
}
static inline void wr_u64(struct wire_wr *w, uint64_t v) {
    wr_u32(w, (uint32_t)v);
    wr_u32(w, (uint32_t)(v >> 32));
}
static inline void wr_f32(struct wire_wr *w, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    wr_u32(w, u);
}
static inline void wr_f64(struct wire_wr *w, double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    wr_u64(w, u);
}
static inline void wr_bytes(struct wire_wr *w, const void *src, size_t k) {
    if (k) memcpy(w->p + w->off, src, k);
    w->off += k;
}

// Per-type payload codecs (wire_msg.c). parse_*: structure only (lengths),
// BAD_MESSAGE; check_*: field ranges (BAD_REQUEST), shared by decode and
// encode; payload_size_*: 0 when a length would overflow; write_*: assumes
// check_* passed and the buffer has payload_size_* bytes.
enum hsd_status wire_parse_payload(struct hsd_wire_msg *m, struct wire_ctx *c, struct wire_rd *r);
enum hsd_status wire_check_payload(const struct hsd_wire_msg *m, struct wire_ctx *c);
uint64_t wire_payload_size(const struct hsd_wire_msg *m);
void wire_write_payload(struct wire_wr *w, const struct hsd_wire_msg *m);

#endif
