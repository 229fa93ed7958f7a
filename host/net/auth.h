// Request authentication and per-client limits for the hsd service
// (docs/protocol.md §4): HMAC-SHA256 (RFC 2104 with SHA-256, via libsodium)
// over each request, a timestamp window, a bounded replay cache of nonces,
// and per-key token-bucket rate limits and size limits. The service calls
// hsd_auth_check() on every request before any compute; clients call
// hsd_auth_sign() on a message encoded with HSD_WIRE_FLAG_AUTH.
//
// Keys file (one client per line; '#' starts a comment; blank lines ignored):
//
//   # key_id   secret (hex, 32..64 bytes)                                    options
//   edge-01    9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  rate_per_min=120 burst=20
//   lab.gpu-2  <64..128 hex digits>  max_pixels=262144 max_steps=50 max_bytes=1048576
//
// key_id: 1..31 of [A-Za-z0-9._-], unique. Options (all optional, decimal):
//   rate_per_min  GENERATE requests per minute, token bucket (0 = unlimited; default 0)
//   burst         bucket size (default: 10 s worth of rate_per_min, at least 1)
//   max_bytes     largest request message, bytes (default and useful maximum:
//                 HSD_WIRE_MAX_REQUEST, the largest legal GENERATE)
//   max_pixels    largest width*height of a GENERATE (default
//                 HSD_AUTH_DEFAULT_MAX_PIXELS; up to 4096*4096)
//   max_steps     largest N of a GENERATE (default HSD_AUTH_DEFAULT_MAX_STEPS;
//                 up to 1000)
//   ctl_rate_per_min  STATUS and CANCEL requests per minute, a bucket of their
//                 own (default HSD_AUTH_DEFAULT_CTL_RATE; 0 = unlimited)
//   ctl_burst     its bucket size (default HSD_AUTH_DEFAULT_CTL_BURST)
// The same file format serves clients (`hsd edge` signs with the line whose
// id it is given). Keep it private: loading warns when group/others can read it.
//
// Thread-safe: hsd_auth_check may be called from several threads at once.
#ifndef HSD_NET_AUTH_H
#define HSD_NET_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "net/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HSD_AUTH_DEFAULT_WINDOW_MS 60000u  // accepted |client clock - server clock|
#define HSD_AUTH_DEFAULT_REPLAY_CAPACITY 131072u  // nonces remembered, all keys (~ 5.6 MiB),
    // shared out: each key has a cache of its own of capacity / keys entries
#define HSD_AUTH_MIN_KEY_REPLAY 1024u  // ... but at least this many (or the capacity)
#define HSD_AUTH_DEFAULT_CTL_RATE 600u  // STATUS + CANCEL per minute per key
#define HSD_AUTH_DEFAULT_CTL_BURST 100u
// What a key may ask for unless its line says otherwise (docs/protocol.md §4
// "Default limits"): 1024x1024 is four times SD 1.x's 512x512 training size
// and covers SD 2.x's 768x768; 150 steps is three times the 50 that the
// diffusers pipelines default to (DDIM, DPM-Solver++ converge well before). The wire's own ceilings
// (4096x4096, 1000 steps) stay reachable by explicit per-key options: one
// such request costs ~64x the U-Net work of a 1024x1024 one per step.
#define HSD_AUTH_DEFAULT_MAX_PIXELS (1024u * 1024u)
#define HSD_AUTH_DEFAULT_MAX_STEPS 150u
#define HSD_AUTH_MIN_SECRET 32  // bytes; RFC 2104 §3: at least the hash length
#define HSD_AUTH_MAX_SECRET 64  // SHA-256 block size; longer keys buy nothing

struct hsd_auth;  // keys + replay cache + rate state
struct hsd_auth_key;  // one client's key and limits (owned by its hsd_auth)

struct hsd_auth_opts {
    uint32_t window_ms;  // 0: HSD_AUTH_DEFAULT_WINDOW_MS
    uint32_t replay_capacity;  // 0: HSD_AUTH_DEFAULT_REPLAY_CAPACITY
};

struct hsd_auth_limits {
    uint32_t rate_per_min;  // 0 = unlimited
    uint32_t burst;
    uint32_t max_bytes;
    uint64_t max_pixels;
    uint32_t max_steps;
    uint32_t ctl_rate_per_min;  // STATUS + CANCEL; 0 = unlimited
    uint32_t ctl_burst;
};

// Loads a keys file. Errors name the file and line ("keys.txt:3: secret must
// be 64..128 hex digits"). opts may be NULL.
enum hsd_status hsd_auth_load(struct hsd_auth **out, const char *path,
                              const struct hsd_auth_opts *opts);
// Same from a buffer; `label` names it in messages.
enum hsd_status hsd_auth_parse(struct hsd_auth **out, const char *text, size_t len,
                               const char *label, const struct hsd_auth_opts *opts);
// Wipes the secrets and frees everything.
void hsd_auth_free(struct hsd_auth *a);

int hsd_auth_key_count(const struct hsd_auth *a);
// NULL if absent.
const struct hsd_auth_key *hsd_auth_find(const struct hsd_auth *a, const char *key_id);
const char *hsd_auth_key_id(const struct hsd_auth_key *k);
const struct hsd_auth_limits *hsd_auth_key_limits(const struct hsd_auth_key *k);

// Checks one request message (the raw bytes as received) at server time
// now_ms (Unix ms, hsd_auth_now_ms()), in this order, and stops at the first
// failure:
//   frame (hsd_wire_decode_frame: magic, version, lengths, checksum) -> its code
//   no auth block, malformed or unknown key id, MAC mismatch   -> UNAUTHENTICATED
//   timestamp outside ±window of now_ms (clock skew or stale)   -> UNAUTHENTICATED
//   larger than the key's max_bytes                             -> TOO_LARGE
//   GENERATE over the key's max_pixels / max_steps              -> BAD_REQUEST
//   nonce already seen within the window by this key            -> REPLAYED
//   this key's replay cache full of live nonces (fails closed)  -> BUSY + retry hint
//   the key's bucket for the type is empty (GENERATE: rate_per_min;
//   STATUS, CANCEL: ctl_rate_per_min)                           -> RATE_LIMITED + retry hint
// The MAC is verified before any state changes, so forged traffic can fill
// neither a replay cache nor anyone's bucket. Each key has its own replay
// cache and buckets, so a key can only exhaust its own.
// Returns HSD_OK (and *key) when accepted. Otherwise HSD_ERR_FORMAT for a
// broken frame, HSD_ERR_INVALID_ARG for a refusal; *code is the protocol
// error for the ERROR reply, *retry_after_ms (may be NULL) a hint (0 = none),
// and hsd_last_error() a text fit to send back (it holds no secrets).
enum hsd_status hsd_auth_check(struct hsd_auth *a, const void *msg, size_t len, uint64_t now_ms,
                               const struct hsd_auth_key **key, enum hsd_wire_error *code,
                               uint32_t *retry_after_ms);

// The same check for a message the service already decoded in full
// (hsd_wire_decode: frame, checksum, auth block shape, payload): the auth
// block and GENERATE's sizes come from *m instead of a second pass over the
// bytes; the MAC still covers msg[0..len). Same order, codes and texts as
// hsd_auth_check. One decode per message serves auth and the batcher.
enum hsd_status hsd_auth_check_msg(struct hsd_auth *a, const struct hsd_wire_msg *m,
                                   const void *msg, size_t len, uint64_t now_ms,
                                   const struct hsd_auth_key **key, enum hsd_wire_error *code,
                                   uint32_t *retry_after_ms);

// The cheap part of hsd_auth_check, for a service to run before it spends a
// checksum or a MAC on a message: the header read without its checksum
// (hsd_wire_peek_frame), an auth block present, a known key id, and len
// within that key's max_bytes. Same codes as hsd_auth_check. Nothing here
// proves who sent it; hsd_auth_check must still follow.
enum hsd_status hsd_auth_precheck(const struct hsd_auth *a, const void *msg, size_t len,
                                  enum hsd_wire_error *code);
// The largest max_bytes of any key: the service's receive limit.
uint32_t hsd_auth_max_bytes(const struct hsd_auth *a);

// Client side: fills the auth block of a message encoded with
// HSD_WIRE_FLAG_AUTH (hsd_wire_encode) in place: key id, timestamp now_ms,
// a fresh random nonce (randombytes_buf), the MAC, then the checksum.
// Sign each send anew: a resent copy with the old nonce is a replay.
enum hsd_status hsd_auth_sign(void *msg, size_t len, const struct hsd_auth_key *key,
                              uint64_t now_ms);

// The MAC as specified in docs/protocol.md §4: HMAC-SHA256(secret,
// msg[0 .. len-32)) with the header checksum field taken as zero. Exposed for
// tests and other-language clients' test vectors.
void hsd_auth_mac(uint8_t mac[HSD_WIRE_MAC_SIZE], const void *msg, size_t len,
                  const uint8_t *secret, size_t secret_len);

// Unix time in milliseconds (CLOCK_REALTIME): what timestamps are compared to.
uint64_t hsd_auth_now_ms(void);

#ifdef __cplusplus
}
#endif

#endif
