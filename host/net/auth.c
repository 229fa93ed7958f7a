// Request authentication (see auth.h and docs/protocol.md §4).
//
// Crypto comes from libsodium only: crypto_auth_hmacsha256_* (HMAC-SHA256,
// RFC 2104 / RFC 4231 test vectors), sodium_memcmp (constant-time compare),
// randombytes_buf (nonces), crypto_shorthash (SipHash-2-4, keyed so peers
// cannot aim nonces at one hash bucket), sodium_hex2bin, sodium_memzero.
#include "net/auth.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/assert.h"
#include "core/log.h"

#define KEYS_FILE_MAX (16u << 20)
#define NO_ENTRY UINT32_MAX

// One remembered nonce.
struct replay_entry {
    uint8_t nonce[HSD_WIRE_NONCE_SIZE];
    uint32_t key;  // index into keys[]
    uint32_t hash;
    uint32_t next;  // chain link, NO_ENTRY ends
    uint64_t expiry;  // timestamp + window: after it the window check refuses a replay
};

// A token bucket in exact integer units: a token is 60000 units and each
// ms adds rate_per_min units, so the retry hint is never a rounding error
// short.
struct bucket {
    uint64_t units;
    uint64_t last_ms;
    int started;
};

// One key's replay cache: entries sit in a ring in arrival order (evicted
// from the head once expired) and in hash chains for lookup.
struct replay {
    struct replay_entry *ring;
    uint32_t cap, head, count;
    uint32_t *buckets;  // power of two >= 2 * cap
    uint32_t bucket_mask;
};

struct hsd_auth_key {
    char id[HSD_WIRE_KEY_ID_SIZE];
    uint8_t secret[HSD_AUTH_MAX_SECRET];
    size_t secret_len;
    struct hsd_auth_limits lim;
    int line;
    // Token buckets (guarded by hsd_auth.mu): GENERATE, and STATUS/CANCEL.
    struct bucket gen, ctl;
    struct replay rp;  // this key's nonces (issue 15, finding 3: one shared
                       // cache let one key lock every key out)
};


struct hsd_auth {
    struct hsd_auth_key *keys;  // sorted by id
    int n_keys;
    uint32_t window_ms;

    pthread_mutex_t mu;
    uint32_t key_cap;  // nonces each key's cache holds
    uint8_t hash_key[crypto_shorthash_KEYBYTES];
};

// ---------------------------------------------------------------------------
// Keys file

static int key_cmp(const void *a, const void *b) {
    return strcmp(((const struct hsd_auth_key *)a)->id, ((const struct hsd_auth_key *)b)->id);
}

static int parse_uint(const char *s, size_t n, uint64_t max, uint64_t *out) {
    if (n == 0 || n > 20) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    if (v > max) return 0;
    *out = v;
    return 1;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// Splits a line into whitespace-separated fields (at most `max`). Returns the
// count, or -1 if there are more.
static int split_fields(const char *s, size_t n, const char **f, size_t *fl, int max) {
    int k = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && is_space(s[i])) i++;
        if (i >= n) break;
        if (k == max) return -1;
        f[k] = s + i;
        while (i < n && !is_space(s[i])) i++;
        fl[k] = (size_t)(s + i - f[k]);
        k++;
    }
    return k;
}

static enum hsd_status parse_option(struct hsd_auth_key *k, int *burst_set, const char *label,
                                    int line, const char *f, size_t n) {
    static const struct {
        const char *name;
        uint64_t max;
    } opts[] = {
        {"rate_per_min", 1000000},
        {"burst", 1000000},
        {"max_bytes", HSD_WIRE_MAX_MESSAGE},
        {"max_pixels", (uint64_t)HSD_WIRE_MAX_SIDE * HSD_WIRE_MAX_SIDE},
        {"max_steps", HSD_WIRE_MAX_STEPS},
        {"ctl_rate_per_min", 1000000},
        {"ctl_burst", 1000000},
    };
    const char *eq = memchr(f, '=', n);
    if (!eq)
        return hsd_fail(HSD_ERR_FORMAT, "%s:%d: option '%.*s' must be name=value", label, line,
                        (int)n, f);
    size_t nl = (size_t)(eq - f);
    for (size_t i = 0; i < HSD_ARRAY_LEN(opts); i++) {
        if (strlen(opts[i].name) != nl || memcmp(opts[i].name, f, nl) != 0) continue;
        uint64_t v;
        if (!parse_uint(eq + 1, n - nl - 1, opts[i].max, &v))
            return hsd_fail(HSD_ERR_FORMAT, "%s:%d: %s needs a whole number in 0..%llu, got '%.*s'",
                            label, line, opts[i].name, (unsigned long long)opts[i].max,
                            (int)(n - nl - 1), eq + 1);
        switch (i) {
        case 0: k->lim.rate_per_min = (uint32_t)v; break;
        case 1:
            k->lim.burst = (uint32_t)v;
            *burst_set = 1;
            break;
        case 2: k->lim.max_bytes = (uint32_t)v; break;
        case 3: k->lim.max_pixels = v; break;
        case 4: k->lim.max_steps = (uint32_t)v; break;
        case 5: k->lim.ctl_rate_per_min = (uint32_t)v; break;
        case 6: k->lim.ctl_burst = (uint32_t)v; break;
        }
        return HSD_OK;
    }
    return hsd_fail(HSD_ERR_FORMAT,
                    "%s:%d: unknown option '%.*s' (known: rate_per_min, burst, max_bytes, "
                    "max_pixels, max_steps, ctl_rate_per_min, ctl_burst)",
                    label, line, (int)nl, f);
}

static enum hsd_status parse_line(struct hsd_auth_key *k, const char *label, int line,
                                  const char **f, size_t *fl, int nf) {
    memset(k, 0, sizeof *k);
    k->line = line;
    k->lim.max_bytes = HSD_WIRE_MAX_REQUEST;
    k->lim.max_pixels = HSD_AUTH_DEFAULT_MAX_PIXELS;
    k->lim.max_steps = HSD_AUTH_DEFAULT_MAX_STEPS;
    k->lim.ctl_rate_per_min = HSD_AUTH_DEFAULT_CTL_RATE;
    k->lim.ctl_burst = HSD_AUTH_DEFAULT_CTL_BURST;
    if (nf < 2)
        return hsd_fail(HSD_ERR_FORMAT, "%s:%d: expected 'key_id hex_secret [name=value ...]'",
                        label, line);
    if (!hsd_wire_key_id_ok(f[0], fl[0]))
        return hsd_fail(HSD_ERR_FORMAT,
                        "%s:%d: key id '%.*s' must be 1..31 characters of [A-Za-z0-9._-]", label,
                        line, (int)(fl[0] < 64 ? fl[0] : 64), f[0]);
    memcpy(k->id, f[0], fl[0]);
    const char *end = NULL;
    size_t bin_len = 0;
    if (fl[1] < 2 * HSD_AUTH_MIN_SECRET || fl[1] > 2 * HSD_AUTH_MAX_SECRET || fl[1] % 2 != 0 ||
        sodium_hex2bin(k->secret, sizeof k->secret, f[1], fl[1], NULL, &bin_len, &end) != 0 ||
        end != f[1] + fl[1] || bin_len * 2 != fl[1]) {
        sodium_memzero(k->secret, sizeof k->secret);
        return hsd_fail(HSD_ERR_FORMAT,
                        "%s:%d: secret of key '%s' must be %d..%d hex digits (%d..%d random bytes; "
                        "e.g. `head -c 32 /dev/urandom | xxd -p -c 64`)",
                        label, line, k->id, 2 * HSD_AUTH_MIN_SECRET, 2 * HSD_AUTH_MAX_SECRET,
                        HSD_AUTH_MIN_SECRET, HSD_AUTH_MAX_SECRET);
    }
    k->secret_len = bin_len;
    int burst_set = 0;
    for (int i = 2; i < nf; i++) {
        enum hsd_status s = parse_option(k, &burst_set, label, line, f[i], fl[i]);
        if (s != HSD_OK) return s;
    }
    if (!burst_set) {
        uint32_t b = (k->lim.rate_per_min + 5) / 6;  // 10 s worth
        k->lim.burst = b ? b : 1;
    }
    if (k->lim.rate_per_min && k->lim.burst == 0)
        return hsd_fail(HSD_ERR_FORMAT, "%s:%d: burst must be >= 1 when rate_per_min is set", label,
                        line);
    if (k->lim.ctl_rate_per_min && k->lim.ctl_burst == 0)
        return hsd_fail(HSD_ERR_FORMAT,
                        "%s:%d: ctl_burst must be >= 1 when ctl_rate_per_min is set", label, line);
    return HSD_OK;
}

static enum hsd_status replay_init(struct replay *r, uint32_t cap) {
    r->cap = cap;
    uint32_t nb = 1;
    while (nb < 2 * cap) nb <<= 1;
    r->bucket_mask = nb - 1;
    r->ring = calloc(cap, sizeof *r->ring);
    r->buckets = malloc((size_t)nb * sizeof *r->buckets);
    if (!r->ring || !r->buckets)
        return hsd_fail(HSD_ERR_NOMEM, "auth: cannot allocate a replay cache of %u nonces", cap);
    for (uint32_t i = 0; i < nb; i++) r->buckets[i] = NO_ENTRY;
    return HSD_OK;
}

enum hsd_status hsd_auth_parse(struct hsd_auth **out, const char *text, size_t len,
                               const char *label, const struct hsd_auth_opts *opts) {
    *out = NULL;
    if (sodium_init() < 0)
        return hsd_fail(HSD_ERR_INTERNAL, "auth: libsodium failed to initialise");
    uint32_t window = opts && opts->window_ms ? opts->window_ms : HSD_AUTH_DEFAULT_WINDOW_MS;
    uint32_t cap =
        opts && opts->replay_capacity ? opts->replay_capacity : HSD_AUTH_DEFAULT_REPLAY_CAPACITY;
    if (cap > (1u << 26))
        return hsd_fail(HSD_ERR_INVALID_ARG, "auth: replay capacity %u > %u", cap, 1u << 26);

    struct hsd_auth *a = calloc(1, sizeof *a);
    if (!a) return hsd_fail(HSD_ERR_NOMEM, "auth: out of memory");
    a->window_ms = window;
    pthread_mutex_init(&a->mu, NULL);
    enum hsd_status s = HSD_OK;
    int cap_keys = 0, line = 0;
    size_t i = 0;
    while (i < len && s == HSD_OK) {
        size_t j = i;
        while (j < len && text[j] != '\n') j++;
        line++;
        const char *ln = text + i;
        size_t n = j - i;
        i = j + 1;
        const char *hash = memchr(ln, '#', n);
        if (hash) n = (size_t)(hash - ln);
        if (memchr(ln, '\0', n)) {
            s = hsd_fail(HSD_ERR_FORMAT, "%s:%d: NUL byte in a keys file", label, line);
            break;
        }
        const char *f[9];
        size_t fl[9];
        int nf = split_fields(ln, n, f, fl, 9);
        if (nf == 0) continue;
        if (nf < 0) {
            s = hsd_fail(HSD_ERR_FORMAT, "%s:%d: too many fields (key_id, secret, up to 7 options)",
                         label, line);
            break;
        }
        if (a->n_keys == cap_keys) {
            int nc = cap_keys ? 2 * cap_keys : 16;
            struct hsd_auth_key *nk = realloc(a->keys, (size_t)nc * sizeof *nk);
            if (!nk) {
                s = hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", label);
                break;
            }
            a->keys = nk;
            cap_keys = nc;
        }
        s = parse_line(&a->keys[a->n_keys], label, line, f, fl, nf);
        if (s == HSD_OK) a->n_keys++;
    }
    if (s == HSD_OK && a->n_keys == 0)
        s = hsd_fail(HSD_ERR_FORMAT, "%s: no keys (expected lines 'key_id hex_secret [options]')",
                     label);
    if (s == HSD_OK) {
        qsort(a->keys, (size_t)a->n_keys, sizeof *a->keys, key_cmp);
        for (int k = 1; k < a->n_keys; k++)
            if (strcmp(a->keys[k - 1].id, a->keys[k].id) == 0) {
                int l1 = a->keys[k - 1].line, l2 = a->keys[k].line;
                s = hsd_fail(HSD_ERR_FORMAT, "%s:%d: key id '%s' already defined on line %d", label,
                             l1 > l2 ? l1 : l2, a->keys[k].id, l1 < l2 ? l1 : l2);
                break;
            }
    }
    if (s == HSD_OK) {
        // Each key gets its share of the capacity (at least
        // HSD_AUTH_MIN_KEY_REPLAY): filling its own cache makes only that
        // key BUSY.
        uint32_t share = cap / (uint32_t)a->n_keys;
        a->key_cap = share < HSD_AUTH_MIN_KEY_REPLAY ? HSD_AUTH_MIN_KEY_REPLAY : share;
        if (cap < a->key_cap) a->key_cap = cap;
        randombytes_buf(a->hash_key, sizeof a->hash_key);
        for (int k = 0; k < a->n_keys && s == HSD_OK; k++) s = replay_init(&a->keys[k].rp, a->key_cap);
    }
    if (s != HSD_OK) {
        hsd_auth_free(a);
        return s;
    }
    *out = a;
    return HSD_OK;
}

enum hsd_status hsd_auth_load(struct hsd_auth **out, const char *path,
                              const struct hsd_auth_opts *opts) {
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return hsd_fail(HSD_ERR_IO, "%s: cannot open keys file: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > KEYS_FILE_MAX) {
        fclose(fp);
        return hsd_fail(HSD_ERR_IO, "%s: not a regular file of at most %u bytes", path,
                        KEYS_FILE_MAX);
    }
    // Like ssh with private keys: secrets others can read are not secret.
    if (st.st_mode & (S_IRWXG | S_IRWXO))
        HSD_WARN("%s: keys file is accessible to group/others (mode %03o); chmod 600 it", path,
                 (unsigned)(st.st_mode & 0777));
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n ? n : 1);
    if (!buf) {
        fclose(fp);
        return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, n, fp);
    int err = ferror(fp);
    fclose(fp);
    if (got != n || err) {
        sodium_memzero(buf, n);
        free(buf);
        return hsd_fail(HSD_ERR_IO, "%s: read failed", path);
    }
    enum hsd_status s = hsd_auth_parse(out, buf, n, path, opts);
    sodium_memzero(buf, n);
    free(buf);
    return s;
}

void hsd_auth_free(struct hsd_auth *a) {
    if (!a) return;
    if (a->keys) {
        for (int k = 0; k < a->n_keys; k++) {
            free(a->keys[k].rp.ring);
            free(a->keys[k].rp.buckets);
        }
        sodium_memzero(a->keys, sizeof *a->keys * (size_t)a->n_keys);
        free(a->keys);
    }
    pthread_mutex_destroy(&a->mu);
    free(a);
}

int hsd_auth_key_count(const struct hsd_auth *a) { return a->n_keys; }

const struct hsd_auth_key *hsd_auth_find(const struct hsd_auth *a, const char *key_id) {
    struct hsd_auth_key probe;
    size_t n = strnlen(key_id, sizeof probe.id);
    if (n >= sizeof probe.id) return NULL;
    memcpy(probe.id, key_id, n + 1);
    return bsearch(&probe, a->keys, (size_t)a->n_keys, sizeof *a->keys, key_cmp);
}

const char *hsd_auth_key_id(const struct hsd_auth_key *k) { return k->id; }

const struct hsd_auth_limits *hsd_auth_key_limits(const struct hsd_auth_key *k) { return &k->lim; }

uint64_t hsd_auth_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

// ---------------------------------------------------------------------------
// MAC

void hsd_auth_mac(uint8_t mac[HSD_WIRE_MAC_SIZE], const void *msg, size_t len,
                  const uint8_t *secret, size_t secret_len) {
    HSD_ASSERT(len >= HSD_WIRE_HEADER_SIZE + HSD_WIRE_MAC_SIZE);
    static const uint8_t zero4[4];
    const uint8_t *b = msg;
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, secret, secret_len);
    crypto_auth_hmacsha256_update(&st, b, HSD_WIRE_CHECKSUM_OFFSET);
    crypto_auth_hmacsha256_update(&st, zero4, sizeof zero4);
    crypto_auth_hmacsha256_update(&st, b + HSD_WIRE_CHECKSUM_OFFSET + 4,
                                  len - HSD_WIRE_MAC_SIZE - HSD_WIRE_CHECKSUM_OFFSET - 4);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(&st, sizeof st);
}

enum hsd_status hsd_auth_sign(void *msg, size_t len, const struct hsd_auth_key *key,
                              uint64_t now_ms) {
    struct hsd_wire_frame f;
    enum hsd_wire_error code;
    if (hsd_wire_decode_frame(&f, &code, msg, len) != HSD_OK)
        return hsd_fail_context(HSD_ERR_INVALID_ARG, "auth sign: ");
    if (!f.auth)
        return hsd_fail(
            HSD_ERR_INVALID_ARG,
            "auth sign: message was encoded without HSD_WIRE_FLAG_AUTH (no auth block)");
    uint8_t *a = (uint8_t *)msg + (f.auth - f.msg);
    memset(a, 0, HSD_WIRE_KEY_ID_SIZE);
    memcpy(a, key->id, strlen(key->id));
    for (int i = 0; i < 8; i++) a[HSD_WIRE_KEY_ID_SIZE + i] = (uint8_t)(now_ms >> (8 * i));
    randombytes_buf(a + HSD_WIRE_KEY_ID_SIZE + 8, HSD_WIRE_NONCE_SIZE);
    hsd_auth_mac(a + HSD_WIRE_AUTH_SIZE - HSD_WIRE_MAC_SIZE, msg, len, key->secret,
                 key->secret_len);
    hsd_wire_update_checksum(msg, len);
    return HSD_OK;
}

// ---------------------------------------------------------------------------
// Replay cache (caller holds a->mu)

static uint32_t nonce_hash(const struct hsd_auth *a, const uint8_t *nonce) {
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, nonce, HSD_WIRE_NONCE_SIZE, a->hash_key);
    uint32_t v;
    memcpy(&v, h, 4);
    return v;
}

static void replay_unlink(struct replay *r, uint32_t idx) {
    uint32_t *link = &r->buckets[r->ring[idx].hash & r->bucket_mask];
    while (*link != idx) {
        HSD_ASSERT(*link != NO_ENTRY);
        link = &r->ring[*link].next;
    }
    *link = r->ring[idx].next;
}

static void replay_evict(struct replay *r, uint64_t now_ms) {
    while (r->count > 0 && r->ring[r->head].expiry < now_ms) {
        replay_unlink(r, r->head);
        r->head = (r->head + 1) % r->cap;
        r->count--;
    }
}

// 1: inserted; 0: seen before; -1: full of live entries.
static int replay_insert(const struct hsd_auth *a, struct replay *r, const uint8_t *nonce,
                         uint64_t expiry, uint64_t now_ms, uint32_t *retry_ms) {
    replay_evict(r, now_ms);
    uint32_t h = nonce_hash(a, nonce);
    for (uint32_t i = r->buckets[h & r->bucket_mask]; i != NO_ENTRY; i = r->ring[i].next)
        if (r->ring[i].hash == h && sodium_memcmp(r->ring[i].nonce, nonce, HSD_WIRE_NONCE_SIZE) == 0)
            return 0;
    if (r->count == r->cap) {
        uint64_t wait = r->ring[r->head].expiry - now_ms + 1;
        *retry_ms = wait > HSD_WIRE_MAX_RETRY_MS ? HSD_WIRE_MAX_RETRY_MS : (uint32_t)wait;
        return -1;
    }
    uint32_t idx = (r->head + r->count) % r->cap;
    struct replay_entry *e = &r->ring[idx];
    memcpy(e->nonce, nonce, HSD_WIRE_NONCE_SIZE);
    e->hash = h;
    e->expiry = expiry;
    e->next = r->buckets[h & r->bucket_mask];
    r->buckets[h & r->bucket_mask] = idx;
    r->count++;
    return 1;
}

// Token bucket: refills rate_per_min tokens per minute up to burst.
#define UNITS_PER_TOKEN 60000u
static int bucket_take(struct bucket *k, uint32_t rate_per_min, uint32_t burst, uint64_t now_ms,
                       uint32_t *retry_ms) {
    uint64_t rate = rate_per_min;
    if (rate == 0) return 1;
    uint64_t cap = (uint64_t)burst * UNITS_PER_TOKEN;
    if (!k->started) {
        k->started = 1;
        k->units = cap;
        k->last_ms = now_ms;
    }
    if (now_ms > k->last_ms) {
        uint64_t dt = now_ms - k->last_ms;
        // dt * rate <= cap suffices; clamp dt first so the product cannot overflow.
        k->units = dt >= cap ? cap : k->units + dt * rate;
        if (k->units > cap) k->units = cap;
    }
    k->last_ms = now_ms;  // a clock step backwards just pauses the refill
    if (k->units >= UNITS_PER_TOKEN) {
        k->units -= UNITS_PER_TOKEN;
        return 1;
    }
    uint64_t wait = (UNITS_PER_TOKEN - k->units + rate - 1) / rate;
    *retry_ms = wait > HSD_WIRE_MAX_RETRY_MS ? HSD_WIRE_MAX_RETRY_MS : (uint32_t)wait;
    return 0;
}

// ---------------------------------------------------------------------------
// The check

static enum hsd_status refuse(enum hsd_wire_error *code, enum hsd_wire_error e, const char *fmt,
                              ...) __attribute__((format(printf, 3, 4)));
static enum hsd_status refuse(enum hsd_wire_error *code, enum hsd_wire_error e, const char *fmt,
                              ...) {
    va_list ap;
    va_start(ap, fmt);
    hsd_vfail(HSD_ERR_INVALID_ARG, fmt, ap);
    va_end(ap);
    *code = e;
    return HSD_ERR_INVALID_ARG;
}

// The key an auth block names (id: its NUL-terminated id), or an
// UNAUTHENTICATED refusal: no auth block (raw_id NULL), malformed or unknown id.
static enum hsd_status frame_key(const struct hsd_auth *a, const char *raw_id,
                                 const struct hsd_auth_key **k, char id[HSD_WIRE_KEY_ID_SIZE],
                                 enum hsd_wire_error *code) {
    if (!raw_id)
        return refuse(code, HSD_WIRE_E_UNAUTHENTICATED,
                      "unauthenticated: the request carries no auth block (sign it with a key "
                      "from the service's keys file)");
    memcpy(id, raw_id, HSD_WIRE_KEY_ID_SIZE);
    size_t idn = strnlen(id, HSD_WIRE_KEY_ID_SIZE);
    if (idn == HSD_WIRE_KEY_ID_SIZE || !hsd_wire_key_id_ok(id, idn))
        return refuse(code, HSD_WIRE_E_UNAUTHENTICATED, "unauthenticated: malformed key id");
    *k = hsd_auth_find(a, id);
    if (!*k)
        return refuse(code, HSD_WIRE_E_UNAUTHENTICATED, "unauthenticated: unknown key id '%s'", id);
    return HSD_OK;
}

uint32_t hsd_auth_max_bytes(const struct hsd_auth *a) {
    uint32_t m = 0;
    for (int i = 0; i < a->n_keys; i++)
        if (a->keys[i].lim.max_bytes > m) m = a->keys[i].lim.max_bytes;
    return m;
}

enum hsd_status hsd_auth_precheck(const struct hsd_auth *a, const void *msg, size_t len,
                                  enum hsd_wire_error *code) {
    struct hsd_wire_frame f;
    *code = HSD_WIRE_E_NONE;
    enum hsd_status s = hsd_wire_peek_frame(&f, code, msg, len);
    if (s != HSD_OK) return s;
    const struct hsd_auth_key *k;
    char id[HSD_WIRE_KEY_ID_SIZE];
    if ((s = frame_key(a, (const char *)f.auth, &k, id, code))) return s;
    if (len > k->lim.max_bytes)
        return refuse(code, HSD_WIRE_E_TOO_LARGE,
                      "key '%s' allows messages of at most %u bytes, got %zu", id, k->lim.max_bytes,
                      len);
    return HSD_OK;
}

// What the check needs from a request, from either a checked frame
// (hsd_auth_check) or a decoded message (hsd_auth_check_msg).
struct auth_req {
    uint16_t type;
    const struct hsd_wire_auth *auth;  // NULL: the message carries none
    int dims_ok;  // GENERATE: width/height/steps were readable
    uint16_t width, height, steps;
};

static enum hsd_status check(struct hsd_auth *a, const void *msg, size_t len, uint64_t now_ms,
                             const struct auth_req *q, const struct hsd_auth_key **key,
                             enum hsd_wire_error *code, uint32_t *retry_after_ms) {
    const struct hsd_auth_key *ck;
    char id[HSD_WIRE_KEY_ID_SIZE];
    enum hsd_status s = frame_key(a, q->auth ? q->auth->key_id : NULL, &ck, id, code);
    if (s) return s;
    struct hsd_auth_key *k = (struct hsd_auth_key *)ck;  // its buckets and cache change

    uint8_t mac[HSD_WIRE_MAC_SIZE];
    hsd_auth_mac(mac, msg, len, k->secret, k->secret_len);
    int mac_ok = sodium_memcmp(mac, q->auth->mac, HSD_WIRE_MAC_SIZE) == 0;
    sodium_memzero(mac, sizeof mac);
    if (!mac_ok)
        return refuse(code, HSD_WIRE_E_UNAUTHENTICATED,
                      "unauthenticated: signature does not match for key '%s' (wrong secret or "
                      "modified message)",
                      id);

    uint64_t ts = q->auth->timestamp_ms;
    uint64_t w = a->window_ms;
    if (ts > now_ms + w)
        return refuse(code, HSD_WIRE_E_UNAUTHENTICATED,
                      "unauthenticated: timestamp is %.1f s ahead of server time (allowed ±%.0f "
                      "s): check the client's clock",
                      (double)(ts - now_ms) / 1000.0, w / 1000.0);
    if (ts + w < now_ms)
        return refuse(code, HSD_WIRE_E_UNAUTHENTICATED,
                      "unauthenticated: timestamp is %.1f s behind server time (allowed ±%.0f "
                      "s): stale request or the client's clock is off",
                      (double)(now_ms - ts) / 1000.0, w / 1000.0);

    if (len > k->lim.max_bytes)
        return refuse(code, HSD_WIRE_E_TOO_LARGE,
                      "key '%s' allows messages of at most %u bytes, got %zu", id, k->lim.max_bytes,
                      len);
    if (q->type == HSD_WIRE_GENERATE) {
        uint16_t wd = q->width, ht = q->height, steps = q->steps;
        if (!q->dims_ok)
            return refuse(code, HSD_WIRE_E_BAD_MESSAGE, "GENERATE: payload too short");
        if ((uint64_t)wd * ht > k->lim.max_pixels)
            return refuse(code, HSD_WIRE_E_BAD_REQUEST,
                          "key '%s' allows at most %llu pixels per image, asked %ux%u", id,
                          (unsigned long long)k->lim.max_pixels, wd, ht);
        if (steps > k->lim.max_steps)
            return refuse(code, HSD_WIRE_E_BAD_REQUEST,
                          "key '%s' allows at most %u steps, asked %u", id, k->lim.max_steps,
                          steps);
    }

    pthread_mutex_lock(&a->mu);
    int r = replay_insert(a, &k->rp, q->auth->nonce, ts + w, now_ms,
                          retry_after_ms);
    int gen = q->type == HSD_WIRE_GENERATE, ok_rate = 1;
    if (r == 1)
        ok_rate = gen ? bucket_take(&k->gen, k->lim.rate_per_min, k->lim.burst, now_ms,
                                    retry_after_ms)
                      : bucket_take(&k->ctl, k->lim.ctl_rate_per_min, k->lim.ctl_burst, now_ms,
                                    retry_after_ms);
    pthread_mutex_unlock(&a->mu);
    if (r == 0)
        return refuse(code, HSD_WIRE_E_REPLAYED,
                      "replayed: key '%s' already used this nonce (sign every send anew)", id);
    if (r < 0)
        return refuse(code, HSD_WIRE_E_BUSY,
                      "busy: key '%s' has %u live nonces, its share of the replay cache", id,
                      a->key_cap);
    if (!ok_rate && gen)
        return refuse(code, HSD_WIRE_E_RATE_LIMITED,
                      "rate limited: key '%s' may send %u GENERATE per minute (burst %u)", id,
                      k->lim.rate_per_min, k->lim.burst);
    if (!ok_rate)
        return refuse(code, HSD_WIRE_E_RATE_LIMITED,
                      "rate limited: key '%s' may send %u STATUS/CANCEL per minute (burst %u)", id,
                      k->lim.ctl_rate_per_min, k->lim.ctl_burst);
    *key = k;
    return HSD_OK;
}

static void reset_out(const struct hsd_auth_key **key, enum hsd_wire_error *code,
                      uint32_t **retry_after_ms, uint32_t *dummy) {
    if (!*retry_after_ms) *retry_after_ms = dummy;
    **retry_after_ms = 0;
    *key = NULL;
    *code = HSD_WIRE_E_NONE;
}

enum hsd_status hsd_auth_check(struct hsd_auth *a, const void *msg, size_t len, uint64_t now_ms,
                               const struct hsd_auth_key **key, enum hsd_wire_error *code,
                               uint32_t *retry_after_ms) {
    uint32_t dummy;
    reset_out(key, code, &retry_after_ms, &dummy);
    struct hsd_wire_frame f;
    enum hsd_status s = hsd_wire_decode_frame(&f, code, msg, len);
    if (s != HSD_OK) return s;
    struct hsd_wire_auth au;
    struct auth_req q = {.type = f.type, .auth = f.auth ? &au : NULL};
    if (f.auth) hsd_wire_read_auth(&au, f.auth);
    if (f.type == HSD_WIRE_GENERATE)
        q.dims_ok = hsd_wire_peek_generate(&f, &q.width, &q.height, &q.steps) == HSD_OK;
    return check(a, msg, len, now_ms, &q, key, code, retry_after_ms);
}

enum hsd_status hsd_auth_check_msg(struct hsd_auth *a, const struct hsd_wire_msg *m,
                                   const void *msg, size_t len, uint64_t now_ms,
                                   const struct hsd_auth_key **key, enum hsd_wire_error *code,
                                   uint32_t *retry_after_ms) {
    uint32_t dummy;
    reset_out(key, code, &retry_after_ms, &dummy);
    struct auth_req q = {.type = m->type,
                         .auth = (m->flags & HSD_WIRE_FLAG_AUTH) ? &m->auth : NULL};
    if (m->type == HSD_WIRE_GENERATE) {
        q.dims_ok = 1;
        q.width = m->u.generate.width;
        q.height = m->u.generate.height;
        q.steps = m->u.generate.steps;
    }
    return check(a, msg, len, now_ms, &q, key, code, retry_after_ms);
}
