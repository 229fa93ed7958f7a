// libFuzzer target for the wire decoder (host/net/wire.c, wire_msg.c) and
// hsd_auth_check / hsd_auth_precheck (host/net/auth.c): arbitrary bytes
// from a peer. Each input
// is decoded with its exact length (ASan catches any read past the end) in
// three forms, so mutations get past the CRC and length checks and reach the
// payload parsers: as is; with the checksum recomputed; with payload_len
// made consistent and the checksum recomputed (and, when it carries an auth
// block, re-signed with a known key so the window/replay/rate paths run).
// A message that decodes must re-encode to exactly the same bytes (the
// encoding is canonical, docs/protocol.md §2) and decode again.
//
// Run: scripts/fuzz.sh [SECONDS]   (seed corpus: tests/fuzz/corpus/wire,
// valid messages of each type plus a few broken ones)
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/auth.h"
#include "net/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1700000000000ull

// Keys matching the corpus's signed messages (secret = bytes 0..31).
static struct hsd_auth *g_auth, *g_auth_msg;

static void check_decode(const uint8_t *data, size_t size) {
    struct hsd_wire_msg m;
    enum hsd_wire_error code = HSD_WIRE_E_NONE;
    if (hsd_wire_decode(&m, &code, data, size) != HSD_OK) {
        if (code == HSD_WIRE_E_NONE) abort();  // every failure names a protocol error
        return;
    }
    if (hsd_wire_encoded_size(&m) != size) abort();
    void *again = NULL;
    size_t len = 0;
    if (hsd_wire_encode_alloc(&again, &len, &m) != HSD_OK) abort();
    if (len != size || memcmp(again, data, size) != 0) abort();
    struct hsd_wire_msg m2;
    if (hsd_wire_decode(&m2, &code, again, len) != HSD_OK) abort();
    if (m2.type != m.type || m2.request_id != m.request_id || m2.flags != m.flags) abort();
    free(again);
}

// hsd_auth_check, and the cheap checks the service runs first
// (hsd_auth_precheck, hsd_wire_peek_frame): each failure names a code, and
// they never refuse what the full checks accept.
static void check_auth(const uint8_t *data, size_t size) {
    const struct hsd_auth_key *key;
    enum hsd_wire_error code, pcode;
    uint32_t retry;
    enum hsd_status full = hsd_auth_check(g_auth, data, size, NOW, &key, &code, &retry);
    if (full != HSD_OK && code == HSD_WIRE_E_NONE) abort();
    enum hsd_status pre = hsd_auth_precheck(g_auth, data, size, &pcode);
    if (pre != HSD_OK && pcode == HSD_WIRE_E_NONE) abort();
    if (full == HSD_OK && pre != HSD_OK) abort();
    struct hsd_wire_frame f;
    if (hsd_wire_decode_frame(&f, &code, data, size) == HSD_OK &&
        hsd_wire_peek_frame(&f, &pcode, data, size) != HSD_OK)
        abort();
    // The service's path: one decode, then auth on the decoded message
    // (hsd_auth_check_msg). Its own auth state: the replay caches of the two
    // paths see different messages, so only "a failure names a code" holds.
    struct hsd_wire_msg m;
    if (hsd_wire_decode(&m, &code, data, size) == HSD_OK &&
        hsd_auth_check_msg(g_auth_msg, &m, data, size, NOW, &key, &code, &retry) != HSD_OK &&
        code == HSD_WIRE_E_NONE)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_auth) {
        static const char keys[] =
            "edge-01 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
            "lab.gpu-2 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f "
            "rate_per_min=60 burst=2 max_pixels=262144\n";
        struct hsd_auth_opts o = {.replay_capacity = 1024};
        if (hsd_auth_parse(&g_auth, keys, sizeof keys - 1, "fuzz", &o) != HSD_OK ||
            hsd_auth_parse(&g_auth_msg, keys, sizeof keys - 1, "fuzz", &o) != HSD_OK)
            abort();
    }
    check_auth(data, size);
    check_decode(data, size);
    if (size < HSD_WIRE_HEADER_SIZE || size > HSD_WIRE_MAX_MESSAGE) return 0;

    uint8_t *copy = malloc(size);
    memcpy(copy, data, size);
    hsd_wire_update_checksum(copy, size);
    check_decode(copy, size);

    // payload_len := what the size implies for the flags given.
    size_t auth = (copy[8] & HSD_WIRE_FLAG_AUTH) ? HSD_WIRE_AUTH_SIZE : 0;
    if (size >= HSD_WIRE_HEADER_SIZE + auth) {
        uint32_t pl = (uint32_t)(size - HSD_WIRE_HEADER_SIZE - auth);
        for (int i = 0; i < 4; i++) copy[12 + i] = (uint8_t)(pl >> (8 * i));
        hsd_wire_update_checksum(copy, size);
        check_decode(copy, size);
        if (auth && hsd_auth_sign(copy, size, hsd_auth_find(g_auth, "lab.gpu-2"), NOW) == HSD_OK) {
            check_auth(copy, size);
            check_decode(copy, size);
        }
    }
    free(copy);
    return 0;
}
