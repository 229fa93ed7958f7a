// The hsd wire protocol, version 2 (version 1 still spoken): one binary
// message per nanomsg message,
// little-endian, specified field by field in docs/protocol.md (that page is
// the contract; this header mirrors it).
//
//   [header 32 B][payload payload_len B][auth block 88 B, iff flag AUTH]
//
// Decoding is strict and zero-copy: hsd_wire_decode() checks every length,
// range, UTF-8 string and float, allocates nothing, and leaves views (pointer
// + length) into the caller's buffer in the decoded struct, so the buffer
// must outlive the struct. Float arrays and token ids are views of
// little-endian bytes that may be unaligned: copy them out with
// hsd_wire_read_f32() / hsd_wire_read_tokens(), never cast the pointer.
//
// On failure decode returns HSD_ERR_FORMAT, records a message for people
// (hsd_last_error()) and sets the protocol error code to put into the ERROR
// reply. Encoding validates the struct with the same rules, so anything that
// encodes also decodes (tests/fuzz/fuzz_wire.c checks encode(decode(x)) == x).
#ifndef HSD_NET_WIRE_H
#define HSD_NET_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---- framing ----
#define HSD_WIRE_MAGIC "HSDW"  // bytes 48 53 44 57 at offset 0
#define HSD_WIRE_VERSION 2      // what this build sends by default
#define HSD_WIRE_VERSION_MIN 1  // the oldest it still decodes and answers (docs/protocol.md §6)
#define HSD_WIRE_HEADER_SIZE 32
#define HSD_WIRE_AUTH_SIZE 88  // key id 32 + timestamp 8 + nonce 16 + mac 32
#define HSD_WIRE_MAC_SIZE 32  // HMAC-SHA256 (RFC 2104, FIPS 180-4)
#define HSD_WIRE_NONCE_SIZE 16
#define HSD_WIRE_KEY_ID_SIZE 32  // field size; ids are 1..31 chars
#define HSD_WIRE_CHECKSUM_OFFSET 24  // u32 CRC-32 field inside the header

// Header flags. Bits 0-7 are "critical": a receiver that does not know a set
// critical bit refuses the message (BAD_VERSION). Bits 8-15 are advisory: an
// unknown one is ignored.
#define HSD_WIRE_FLAG_AUTH 0x0001u  // an auth block follows the payload
#define HSD_WIRE_FLAGS_CRITICAL 0x00ffu
#define HSD_WIRE_FLAGS_KNOWN HSD_WIRE_FLAG_AUTH

// ---- limits (every allocation a peer can cause is bounded by these) ----
#define HSD_WIRE_MAX_MESSAGE (64u << 20)  // whole message, bytes (a client's NN_RCVMAXSIZE)
#define HSD_WIRE_MAX_PROMPT_BYTES 16384u  // UTF-8 prompt text
#define HSD_WIRE_MAX_TOKENS 77u  // CLIP context length
#define HSD_WIRE_MAX_TOKEN_ID 0xffffffu  // ids are < 2^24 (the service checks its vocab)
#define HSD_WIRE_MAX_NAME 255u  // model name bytes
#define HSD_WIRE_MAX_ERROR_TEXT 1024u  // ERROR text bytes
#define HSD_WIRE_MAX_SHORT_TEXT 64u  // STATUS server / device names
#define HSD_WIRE_MAX_STEPS 1000u  // N (HSD_SAMPLER_MAX_STEPS)
#define HSD_WIRE_MIN_SIDE 64u  // image width/height, pixels
#define HSD_WIRE_MAX_SIDE 4096u  // = 8 x HSD_WIRE_MAX_LATENT_SIDE
#define HSD_WIRE_MAX_LATENT_SIDE 512u
#define HSD_WIRE_MAX_LATENT_C 16u
#define HSD_WIRE_TEXT_LEN 77u  // text embedding tokens
#define HSD_WIRE_MAX_EMB_C 4096u
#define HSD_WIRE_MAX_CFG 100.0f
#define HSD_WIRE_MAX_DEADLINE_MS 3600000u  // 1 h
#define HSD_WIRE_MAX_RETRY_MS 3600000u
#define HSD_WIRE_MAX_CLIP_SKIP 23u
#define HSD_WIRE_MAX_PRIORITY 7u
#define HSD_WIRE_MAX_DEVICES 32u
#define HSD_WIRE_SAMPLER_COUNT 6u  // = HSD_SAMPLER_COUNT (checked in wire.c)
#define HSD_WIRE_MAX_LORAS 8u  // LoRAs one GENERATE may choose
#define HSD_WIRE_MAX_LORA_NAME 63u  // bytes of a LoRA's name
#define HSD_WIRE_MAX_LORA_SCALE 16.0f
#define HSD_WIRE_MAX_POOLED_C 4096u  // RESULT v2: pooled text embedding width (SDXL: 1280)
#define HSD_WIRE_N_TIME_IDS 6u  // RESULT v2: SDXL's add_time_ids per pass
#define HSD_WIRE_MAX_MICRO 65535u  // GENERATE v2: original size / crop, pixels
#define HSD_WIRE_GEN_V2_EXTRA 12  // GENERATE v2: 6 u16 after v1's fixed fields
// The largest request a client can send: a version 2 GENERATE with the
// longest model name, two prompts of HSD_WIRE_MAX_PROMPT_BYTES each (token
// prompts are shorter: 77 ids = 308 bytes) and the longest LoRA list,
// signed (the A1111 prompt style is a flag only: the prompt limit is the
// same). 33,744 bytes; the service's receive limit (docs/protocol.md §1;
// wire_msg.c checks it against the layout).
#define HSD_WIRE_MAX_REQUEST \
    (HSD_WIRE_HEADER_SIZE + 32 + HSD_WIRE_GEN_V2_EXTRA + 2 + HSD_WIRE_MAX_NAME + \
     2 * (5 + HSD_WIRE_MAX_PROMPT_BYTES) + 1 + HSD_WIRE_MAX_LORAS * (1 + HSD_WIRE_MAX_LORA_NAME + 4) + \
     HSD_WIRE_AUTH_SIZE)
// An ERROR message always fits in this many bytes (header, max text, auth).
#define HSD_WIRE_ERROR_MAX_SIZE \
    (HSD_WIRE_HEADER_SIZE + 10 + HSD_WIRE_MAX_ERROR_TEXT + HSD_WIRE_AUTH_SIZE)

enum hsd_wire_type {
    HSD_WIRE_GENERATE = 1,  // request -> RESULT | ERROR
    HSD_WIRE_RESULT = 2,  // reply
    HSD_WIRE_ERROR = 3,  // reply to any request
    HSD_WIRE_STATUS_REQUEST = 4,  // request (empty payload) -> STATUS | ERROR
    HSD_WIRE_STATUS = 5,  // reply
    HSD_WIRE_CANCEL = 6,  // request -> CANCEL_ACK | ERROR
    HSD_WIRE_CANCEL_ACK = 7,  // reply
};
#define HSD_WIRE_TYPE_MAX 7

// Protocol error codes carried by ERROR (docs/protocol.md "ERROR codes").
// Values are part of the protocol: append, never renumber.
enum hsd_wire_error {
    HSD_WIRE_E_NONE = 0,  // not an error (never sent)
    HSD_WIRE_E_BAD_MESSAGE = 1,  // framing/structure: magic, lengths, unknown type
    HSD_WIRE_E_BAD_VERSION = 2,  // unknown version or unknown critical flag
    HSD_WIRE_E_BAD_CHECKSUM = 3,
    HSD_WIRE_E_TOO_LARGE = 4,  // over the protocol's or the key's byte limit
    HSD_WIRE_E_UNAUTHENTICATED = 5,
    HSD_WIRE_E_REPLAYED = 6,
    HSD_WIRE_E_RATE_LIMITED = 7,  // retry_after_ms says when a token is back
    HSD_WIRE_E_BUSY = 8,  // queue full; retry_after_ms hint
    HSD_WIRE_E_BAD_REQUEST = 9,  // a field out of its valid range
    HSD_WIRE_E_CANCELLED = 10,
    HSD_WIRE_E_EXPIRED = 11,  // deadline passed before the result
    HSD_WIRE_E_INTERNAL = 12,
    HSD_WIRE_E_SHUTTING_DOWN = 13,
};
#define HSD_WIRE_E_MAX 13

// "BAD_MESSAGE", ...; "UNKNOWN" for codes this build does not know.
const char *hsd_wire_error_name(uint16_t code);
// "GENERATE", ...; "UNKNOWN" otherwise.
const char *hsd_wire_type_name(uint16_t type);
// 1 when a client may resend the same request later (BUSY, RATE_LIMITED,
// SHUTTING_DOWN, and any code with retry_after_ms > 0).
int hsd_wire_error_retryable(uint16_t code, uint32_t retry_after_ms);

// ---- views into a buffer ----
struct hsd_wire_str {  // UTF-8, no NUL bytes, NOT NUL-terminated
    const char *p;
    size_t n;
};
struct hsd_wire_bytes {
    const void *p;
    size_t n;
};

enum hsd_wire_prompt_kind { HSD_WIRE_PROMPT_TEXT = 0, HSD_WIRE_PROMPT_TOKENS = 1 };

struct hsd_wire_prompt {
    enum hsd_wire_prompt_kind kind;
    struct hsd_wire_str text;  // TEXT: 0..HSD_WIRE_MAX_PROMPT_BYTES bytes
    const void *tokens;  // TOKENS: n_tokens little-endian u32 ids (an int32_t
    uint32_t n_tokens;  //   array on encode; read with hsd_wire_read_tokens)
};

#define HSD_WIRE_GEN_TEXT_EMB 0x01u  // GENERATE flags: return text embeddings in RESULT
#define HSD_WIRE_GEN_A1111 0x02u     // prompts in A1111 style (long, emphasis): text prompts only
#define HSD_WIRE_GEN_LORAS 0x04u     // a LoRA list follows the negative prompt
#define HSD_WIRE_GEN_FLAGS (HSD_WIRE_GEN_TEXT_EMB | HSD_WIRE_GEN_A1111 | HSD_WIRE_GEN_LORAS)
#define HSD_WIRE_MAX_TEXT_CHUNKS 8u  // RESULT emb_t: 77 x 1..8 (A1111 prompts)

struct hsd_wire_lora {
    struct hsd_wire_str name;  // 1..63 bytes: a name the service registered (--lora NAME=FILE)
    float scale;               // finite, -16..16
};

struct hsd_wire_generate {
    uint64_t seed;
    uint16_t width, height;  // pixels, 64..4096, multiples of 8
    uint16_t steps;  // N, 1..1000
    uint16_t k_min, k_max;  // cloud steps: fixed k has k_min == k_max; 0 <= k_min <= k_max <= N
    uint8_t sampler;  // enum hsd_sampler_kind value, < HSD_WIRE_SAMPLER_COUNT
    uint8_t flags;  // HSD_WIRE_GEN_*
    float cfg_scale;  // finite, 0..100 (<= 1 disables CFG, as in diffusers)
    uint32_t deadline_ms;  // relative to arrival; 0 = none; <= 1 h
    uint8_t clip_skip;  // 0..23 (0 = last layer)
    uint8_t priority;  // 0..7, higher first (the service may cap it per key)
    struct hsd_wire_str model;  // 0..255 bytes; empty = the server's default model
    struct hsd_wire_prompt prompt, negative;  // tokens: 1..77 ids; negative text may be empty
    uint8_t n_loras;  // 1..8 with HSD_WIRE_GEN_LORAS, else 0; names distinct
    struct hsd_wire_lora loras[HSD_WIRE_MAX_LORAS];
    // Version 2 only (0 in version 1). SDXL's micro-conditioning (diffusers
    // _get_add_time_ids), pixels, 0..65535: original size 0 = the target
    // size (diffusers' default), crop top-left (0, 0) by default.
    uint16_t original_width, original_height, crop_top, crop_left;
    // What the edge's U-Net needs, checked by the service before any
    // compute: its cross-attention width and its pooled text-embedding
    // width (SDXL's text_time U-Nets; 0 for SD 1.x/2.x). edge_ctx_c 0: not
    // checked (then edge_pooled_c must be 0 too).
    uint16_t edge_ctx_c, edge_pooled_c;
};

struct hsd_wire_result {
    uint16_t steps;  // N
    uint16_t k_used;  // steps the cloud ran, 0..N
    uint8_t sampler;
    uint16_t c, h, w;  // latent: c 1..16, h/w 1..512
    const void *latent;  // [c, h, w] f32, finite
    struct hsd_wire_bytes sampler_state;  // opaque (hsd_sampler_serialize), any length
    uint8_t n_emb;  // 0, 1 (cond) or 2 (cond, uncond)
    uint16_t emb_t, emb_c;  // 77 x 1..8 (chunks of an A1111 prompt; 77 otherwise) and
                            // 1..4096 when n_emb > 0, else 0 and 0
    const void *emb;  // [n_emb, emb_t, emb_c] f32, finite: [0] cond, [1] uncond
    // Version 2 only (0 in version 1): SDXL's added conditioning per pass,
    // present iff pooled_c > 0 (then n_emb > 0 and n_time_ids == 6).
    uint16_t pooled_c;  // text_encoder_2's text_embeds width, 0..4096
    uint16_t n_time_ids;  // 0 or HSD_WIRE_N_TIME_IDS
    const void *pooled;  // [n_emb, pooled_c] f32, finite
    const void *time_ids;  // [n_emb, n_time_ids] f32, finite, 0..65535 each
    double device_ms;  // finite, >= 0
    double queue_ms;  // finite, >= 0
};

struct hsd_wire_error_msg {
    uint16_t code;  // enum hsd_wire_error; unknown codes decode (newer peers)
    uint32_t retry_after_ms;  // 0 = no hint; <= 1 h
    struct hsd_wire_str text;  // 0..1024 bytes
};

enum hsd_wire_health {
    HSD_WIRE_HEALTH_OK = 0,
    HSD_WIRE_HEALTH_DEGRADED = 1,
    HSD_WIRE_HEALTH_DRAINING = 2
};
enum hsd_wire_device_kind { HSD_WIRE_DEVICE_CPU = 0, HSD_WIRE_DEVICE_CUDA = 1 };

struct hsd_wire_device {
    uint8_t kind;  // enum hsd_wire_device_kind
    uint8_t healthy;  // 0 or 1
    uint16_t batch;  // requests in its current batch
    uint32_t mem_total_mib, mem_used_mib;  // used <= total
    struct hsd_wire_str name;  // 0..64 bytes
};

struct hsd_wire_status {
    uint8_t health;  // enum hsd_wire_health
    uint32_t queue_depth, queue_limit, active, max_batch;
    float steps_per_s;  // finite, >= 0
    uint64_t uptime_ms, requests_done, requests_failed;
    uint32_t max_message;  // the server's receive limit (NN_RCVMAXSIZE), bytes
    struct hsd_wire_str server;  // 0..64 bytes, e.g. "hsd 0.1.0"
    uint8_t n_devices;  // 0..32
    struct hsd_wire_device devices[HSD_WIRE_MAX_DEVICES];
};

struct hsd_wire_cancel {
    uint64_t target;  // request id of the GENERATE to cancel
};

struct hsd_wire_cancel_ack {
    uint64_t target;
    uint8_t cancelled;  // 1: it was queued or running and is now cancelled;
        // 0: unknown or already finished
};

struct hsd_wire_auth {
    char key_id[HSD_WIRE_KEY_ID_SIZE];  // 1..31 of [A-Za-z0-9._-], NUL-padded
    uint64_t timestamp_ms;  // Unix time, ms
    uint8_t nonce[HSD_WIRE_NONCE_SIZE];
    uint8_t mac[HSD_WIRE_MAC_SIZE];
};

struct hsd_wire_msg {
    uint16_t version;  // decode: as received; encode: 0 writes HSD_WIRE_VERSION, else
                       // HSD_WIRE_VERSION_MIN..HSD_WIRE_VERSION as given (replies answer
                       // a request in its own version)
    uint16_t type;  // enum hsd_wire_type
    uint16_t flags;  // HSD_WIRE_FLAG_*; unknown advisory bits are kept
    uint64_t request_id;  // chosen by the client; replies echo it
    struct hsd_wire_auth auth;  // when flags & HSD_WIRE_FLAG_AUTH (encode writes it as given;
        // hsd_auth_sign fills it in place afterwards)
    union {
        struct hsd_wire_generate generate;
        struct hsd_wire_result result;
        struct hsd_wire_error_msg error;
        struct hsd_wire_status status;
        struct hsd_wire_cancel cancel;
        struct hsd_wire_cancel_ack cancel_ack;
    } u;
};

// A checked frame: the header and lengths are consistent and the checksum
// matches; the payload is not parsed. Used by auth (hsd_auth_check) to reach
// the auth block before any payload work.
struct hsd_wire_frame {
    uint16_t version, type, flags;
    uint64_t request_id;
    const uint8_t *payload;  // view
    uint32_t payload_len;
    const uint8_t *auth;  // view of the auth block, or NULL
    const uint8_t *msg;  // the whole message
    size_t len;
};

// ---- decoding ----

// Checks the frame (magic, version, flags, lengths, checksum, type). On
// failure returns HSD_ERR_FORMAT and sets *code; f->request_id is filled as
// soon as the header's first 24 bytes are readable and the magic and version
// match (0 otherwise), so an ERROR reply can echo it.
enum hsd_status hsd_wire_decode_frame(struct hsd_wire_frame *f, enum hsd_wire_error *code,
                                      const void *buf, size_t len);
// The same checks without the checksum: O(1) whatever the length, for
// refusing a message before spending a CRC (or a MAC) on its bytes
// (hsd_auth_precheck). Nothing in it is verified: never act on its payload.
enum hsd_status hsd_wire_peek_frame(struct hsd_wire_frame *f, enum hsd_wire_error *code,
                                    const void *buf, size_t len);

// Full decode: frame, auth block shape, payload fields. *m holds views into
// buf. On failure: HSD_ERR_FORMAT, *code set, m->request_id/type as above.
enum hsd_status hsd_wire_decode(struct hsd_wire_msg *m, enum hsd_wire_error *code, const void *buf,
                                size_t len);

// GENERATE's size fields from a checked frame, without decoding the rest (for
// per-key limits in auth). Fails (HSD_ERR_FORMAT) if the payload is too short.
enum hsd_status hsd_wire_peek_generate(const struct hsd_wire_frame *f, uint16_t *width,
                                       uint16_t *height, uint16_t *steps);

// The fields of an auth block (HSD_WIRE_AUTH_SIZE bytes, e.g. a frame's
// f.auth), unchecked: hsd_auth_check verifies them.
void hsd_wire_read_auth(struct hsd_wire_auth *a, const uint8_t *block);
// Copies n little-endian f32 from a view (unaligned OK) into dst.
void hsd_wire_read_f32(float *dst, const void *src, size_t n);
// Copies a TOKENS prompt's ids into dst[p->n_tokens].
void hsd_wire_read_tokens(int32_t *dst, const struct hsd_wire_prompt *p);
// Copies a string view into dst (cap bytes) NUL-terminated; returns 0 if it
// did not fit (dst then holds the truncated prefix).
int hsd_wire_str_copy(char *dst, size_t cap, struct hsd_wire_str s);

// ---- encoding ----

// Bytes the encoding of m takes; 0 if m's type is unknown or a length field
// would overflow. Does not validate field ranges (hsd_wire_encode does).
size_t hsd_wire_encoded_size(const struct hsd_wire_msg *m);

// Validates m with the decoder's rules (HSD_ERR_INVALID_ARG naming the field
// otherwise) and writes it into buf[cap]; *len receives the size. With
// HSD_WIRE_FLAG_AUTH the auth block m->auth is written and covered by the
// checksum; call hsd_auth_sign() afterwards to fill it in place.
enum hsd_status hsd_wire_encode(void *buf, size_t cap, size_t *len, const struct hsd_wire_msg *m);
// Same, into a malloc'd buffer (free() it).
enum hsd_status hsd_wire_encode_alloc(void **buf, size_t *len, const struct hsd_wire_msg *m);

// An ERROR reply (no auth block) with printf-style text. Text that is not
// valid UTF-8 has the offending bytes replaced by '?', and text longer than
// HSD_WIRE_MAX_ERROR_TEXT is cut at a character boundary, so this succeeds
// whenever cap >= HSD_WIRE_ERROR_MAX_SIZE.
enum hsd_status hsd_wire_encode_error(void *buf, size_t cap, size_t *len, uint64_t request_id,
                                      enum hsd_wire_error code, uint32_t retry_after_ms,
                                      const char *fmt, ...) __attribute__((format(printf, 7, 8)));

// Rewrites the version of an encoded message without an auth block (an
// ERROR reply) and its checksum, so a reply answers in its request's
// version. A version outside HSD_WIRE_VERSION_MIN..HSD_WIRE_VERSION (a
// request this peer could not read: garbage, a newer version) gets version
// 1, whose ERROR layout every version keeps, so any client can read it.
void hsd_wire_set_version(void *msg, size_t len, uint16_t version);
// 1 when this build decodes `version`.
int hsd_wire_version_ok(uint16_t version);

// Recomputes the header checksum of an encoded message in place (after the
// auth block was filled in). len must be the message's exact size.
void hsd_wire_update_checksum(void *msg, size_t len);
// CRC-32 (zlib crc32) of a message with its checksum field taken as zero.
uint32_t hsd_wire_checksum(const void *msg, size_t len);

// ---- helpers shared with auth.c ----
// 1 if s[0..n) is strict UTF-8 (RFC 3629) without NUL bytes; else 0 and
// *bad_at (may be NULL) gets the offset of the first bad byte.
int hsd_wire_utf8_ok(const char *s, size_t n, size_t *bad_at);
// 1 if id is 1..31 chars of [A-Za-z0-9._-].
int hsd_wire_key_id_ok(const char *id, size_t n);

#ifdef __cplusplus
}
#endif

#endif
