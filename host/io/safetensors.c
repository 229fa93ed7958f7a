// Strict safetensors reader and atomic writer (see safetensors.h for the
// rules). Reference: huggingface/safetensors safetensors/src/tensor.rs
// (Metadata::validate, prepare); its rules and 100 MB header cap are ours.
#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/assert.h"

struct st_meta {
    char *key;
    char *value;
};

struct hsd_safetensors {
    char *label;                     // file name (or the caller's label) for messages
    void *map;                       // mmap base; NULL when parsing a caller's buffer
    size_t map_len;
    struct hsd_st_tensor *tensors;   // sorted by name
    size_t n;
    struct st_meta *meta;
    size_t n_meta;
};

// ---------------------------------------------------------------------------
// Helpers shared by reader and writer

// Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing past
// U+10FFFF. jansson checks too, but this lets the message say "UTF-8" and
// where, instead of a generic JSON error. Returns the offset of the first bad
// byte, or `len` if all is well.
static size_t utf8_bad_offset(const unsigned char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned min;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            min = 0x10000;
        } else {
            return i;
        }
        if (len - i <= need) return i;
        unsigned cp = c & (0x3fu >> need);
        for (size_t k = 1; k <= need; k++) {
            unsigned cc = s[i + k];
            if ((cc & 0xc0) != 0x80) return i;
            cp = (cp << 6) | (cc & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += need + 1;
    }
    return len;
}

// "[2, 3, 4]" into buf (truncated with "..." if it does not fit).
static const char *format_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = 0;
    buf[k++] = '[';
    for (int i = 0; i < ndim && k < cap; i++) {
        int m = snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
        if (m < 0 || (size_t)m >= cap - k) {
            snprintf(buf + (cap > 5 ? cap - 5 : 0), cap > 5 ? 5 : cap, "...]");
            return buf;
        }
        k += (size_t)m;
    }
    if (k + 2 <= cap) {
        buf[k++] = ']';
        buf[k] = '\0';
    } else {
        snprintf(buf + (cap > 5 ? cap - 5 : 0), cap > 5 ? 5 : cap, "...]");
    }
    return buf;
}

// ---------------------------------------------------------------------------
// Reader

struct span {
    uint64_t begin, end;
    size_t idx;  // into the (not yet name-sorted) tensor array
};

static int span_cmp(const void *a, const void *b) {
    const struct span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int tensor_cmp(const void *a, const void *b) {
    const struct hsd_st_tensor *x = a, *y = b;
    return strcmp(x->name, y->name);
}

static int tensor_key_cmp(const void *key, const void *elem) {
    return strcmp(key, ((const struct hsd_st_tensor *)elem)->name);
}

static const char *json_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "value";
}

static enum hsd_status parse_metadata(struct hsd_safetensors *st, json_t *m) {
    if (!json_is_object(m))
        return hsd_fail(HSD_ERR_FORMAT, "%s: __metadata__ must be an object of strings (got %s)",
                        st->label, json_type_name(m));
    size_t cap = json_object_size(m);
    if (cap == 0) return HSD_OK;
    st->meta = calloc(cap, sizeof *st->meta);
    if (!st->meta) return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory for metadata", st->label);
    const char *key;
    json_t *v;
    json_object_foreach(m, key, v) {
        if (!json_is_string(v))
            return hsd_fail(HSD_ERR_FORMAT,
                            "%s: __metadata__ value of key '%s' must be a string (got %s)",
                            st->label, key, json_type_name(v));
        struct st_meta *e = &st->meta[st->n_meta];
        e->key = strdup(key);
        e->value = strdup(json_string_value(v));
        if (!e->key || !e->value) {
            free(e->key);
            free(e->value);
            return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory for metadata", st->label);
        }
        st->n_meta++;
    }
    return HSD_OK;
}

// Reads a JSON integer that must be >= 0 into *out.
static int json_nonneg(const json_t *v, int64_t *out) {
    if (!json_is_integer(v)) return 0;
    json_int_t x = json_integer_value(v);
    if (x < 0) return 0;
    *out = (int64_t)x;
    return 1;
}

// Validates one tensor entry and fills *t (name excepted) and *sp.
static enum hsd_status parse_entry(struct hsd_safetensors *st, const char *name, json_t *e,
                                   const unsigned char *buffer, size_t buffer_len,
                                   struct hsd_st_tensor *t, struct span *sp) {
    const char *file = st->label;
    if (!json_is_object(e))
        return hsd_fail(HSD_ERR_FORMAT, "%s: tensor '%s': entry must be an object (got %s)",
                        file, name, json_type_name(e));
    const char *key;
    json_t *v;
    // Unknown keys are refused: a writer that adds fields we silently ignore
    // could change the meaning of the bytes (the reference rejects them too).
    json_object_foreach(e, key, v) {
        if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets"))
            return hsd_fail(HSD_ERR_FORMAT,
                            "%s: tensor '%s': unknown key '%s' in tensor entry "
                            "(allowed: dtype, shape, data_offsets)",
                            file, name, key);
    }

    json_t *jd = json_object_get(e, "dtype");
    if (!jd) return hsd_fail(HSD_ERR_FORMAT, "%s: tensor '%s': missing 'dtype'", file, name);
    if (!json_is_string(jd))
        return hsd_fail(HSD_ERR_FORMAT, "%s: tensor '%s': dtype must be a string (got %s)", file,
                        name, json_type_name(jd));
    const char *ds = json_string_value(jd);
    size_t dlen = json_string_length(jd);
    t->dtype = hsd_dtype_parse(ds, dlen);
    if (t->dtype == HSD_DTYPE_INVALID)
        return hsd_fail(HSD_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%.*s'", file, name,
                        (int)(dlen > 32 ? 32 : dlen), ds);

    json_t *js = json_object_get(e, "shape");
    if (!js) return hsd_fail(HSD_ERR_FORMAT, "%s: tensor '%s': missing 'shape'", file, name);
    if (!json_is_array(js))
        return hsd_fail(HSD_ERR_FORMAT, "%s: tensor '%s': shape must be an array (got %s)", file,
                        name, json_type_name(js));
    size_t ndim = json_array_size(js);
    if (ndim > HSD_ST_MAX_DIMS)
        return hsd_fail(HSD_ERR_UNSUPPORTED,
                        "%s: tensor '%s': shape has %zu dims (at most %d supported)", file, name,
                        ndim, HSD_ST_MAX_DIMS);
    t->ndim = (int)ndim;
    int64_t numel = 1;
    for (size_t i = 0; i < ndim; i++) {
        json_t *d = json_array_get(js, i);
        if (!json_is_integer(d))
            return hsd_fail(HSD_ERR_FORMAT,
                            "%s: tensor '%s': shape entry %zu must be an integer (got %s)", file,
                            name, i, json_type_name(d));
        if (!json_nonneg(d, &t->shape[i]))
            return hsd_fail(HSD_ERR_FORMAT,
                            "%s: tensor '%s': shape entry %zu is negative (%lld)", file, name,
                            i, (long long)json_integer_value(d));
        if (__builtin_mul_overflow(numel, t->shape[i], &numel))
            return hsd_fail(HSD_ERR_FORMAT,
                            "%s: tensor '%s': shape element count overflows 64 bits "
                            "(at entry %zu = %lld)",
                            file, name, i, (long long)t->shape[i]);
    }
    t->numel = numel;
    uint64_t nbytes64;
    char sbuf[160];
    if (__builtin_mul_overflow((uint64_t)numel, (uint64_t)hsd_dtype_size(t->dtype), &nbytes64) ||
        nbytes64 > SIZE_MAX)
        return hsd_fail(HSD_ERR_FORMAT, "%s: tensor '%s': shape %s x %s byte size overflows",
                        file, name, format_shape(sbuf, sizeof sbuf, t->ndim, t->shape),
                        hsd_dtype_name(t->dtype));

    json_t *jo = json_object_get(e, "data_offsets");
    if (!jo)
        return hsd_fail(HSD_ERR_FORMAT, "%s: tensor '%s': missing 'data_offsets'", file, name);
    int64_t begin, end;
    if (!json_is_array(jo) || json_array_size(jo) != 2 ||
        !json_nonneg(json_array_get(jo, 0), &begin) || !json_nonneg(json_array_get(jo, 1), &end))
        return hsd_fail(HSD_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets must be 2 non-negative integers", file,
                        name);
    if (begin > end)
        return hsd_fail(HSD_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets begin > end (%lld > %lld)", file, name,
                        (long long)begin, (long long)end);
    if ((uint64_t)end > buffer_len)
        return hsd_fail(HSD_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets [%lld, %lld] past end of file "
                        "(data buffer has %zu bytes)",
                        file, name, (long long)begin, (long long)end, buffer_len);
    if ((uint64_t)(end - begin) != nbytes64)
        return hsd_fail(HSD_ERR_FORMAT,
                        "%s: tensor '%s': shape %s x %s needs %llu bytes but data_offsets "
                        "[%lld, %lld] hold %lld",
                        file, name, format_shape(sbuf, sizeof sbuf, t->ndim, t->shape),
                        hsd_dtype_name(t->dtype), (unsigned long long)nbytes64,
                        (long long)begin, (long long)end, (long long)(end - begin));
    t->nbytes = (size_t)nbytes64;
    t->data = buffer + begin;
    sp->begin = (uint64_t)begin;
    sp->end = (uint64_t)end;
    return HSD_OK;
}

// The tensors, sorted by offset, must tile [0, buffer_len) with no gap and
// no overlap: bytes no tensor owns could smuggle data past a reviewer, and
// overlapping tensors alias each other's storage.
static enum hsd_status check_tiling(const struct hsd_safetensors *st, struct span *sp, size_t n,
                                    size_t buffer_len) {
    if (n) qsort(sp, n, sizeof *sp, span_cmp);  // sp is NULL when n == 0
    uint64_t expect = 0;
    for (size_t i = 0; i < n; i++) {
        const struct hsd_st_tensor *t = &st->tensors[sp[i].idx];
        if (sp[i].begin == expect) {
            expect = sp[i].end;
            continue;
        }
        if (i == 0)
            return hsd_fail(HSD_ERR_FORMAT,
                            "%s: tensor '%s': gap of %llu bytes at the start of the data buffer "
                            "(data_offsets [%llu, %llu])",
                            st->label, t->name, (unsigned long long)sp[i].begin,
                            (unsigned long long)sp[i].begin, (unsigned long long)sp[i].end);
        const struct hsd_st_tensor *p = &st->tensors[sp[i - 1].idx];
        if (sp[i].begin > expect)
            return hsd_fail(HSD_ERR_FORMAT,
                            "%s: tensors '%s' and '%s': gap of %llu bytes between them "
                            "([%llu, %llu] then [%llu, %llu])",
                            st->label, p->name, t->name,
                            (unsigned long long)(sp[i].begin - expect),
                            (unsigned long long)sp[i - 1].begin, (unsigned long long)expect,
                            (unsigned long long)sp[i].begin, (unsigned long long)sp[i].end);
        return hsd_fail(HSD_ERR_FORMAT,
                        "%s: tensors '%s' and '%s': data overlap by %llu bytes "
                        "([%llu, %llu] and [%llu, %llu])",
                        st->label, p->name, t->name, (unsigned long long)(expect - sp[i].begin),
                        (unsigned long long)sp[i - 1].begin, (unsigned long long)expect,
                        (unsigned long long)sp[i].begin, (unsigned long long)sp[i].end);
    }
    if (expect != buffer_len)
        return hsd_fail(HSD_ERR_FORMAT,
                        "%s: file has %llu trailing bytes not covered by any tensor "
                        "(tensors end at %llu, data buffer has %zu bytes)",
                        st->label, (unsigned long long)(buffer_len - expect),
                        (unsigned long long)expect, buffer_len);
    return HSD_OK;
}

static enum hsd_status parse_buffer(struct hsd_safetensors *st, const unsigned char *buf,
                                    size_t len) {
    const char *file = st->label;
    if (len < 8)
        return hsd_fail(HSD_ERR_FORMAT,
                        "%s: truncated: file has %zu bytes, fewer than the 8-byte header length",
                        file, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
    if (hlen > HSD_ST_MAX_HEADER)
        return hsd_fail(HSD_ERR_FORMAT,
                        "%s: header length %llu exceeds the cap of %u bytes", file,
                        (unsigned long long)hlen, HSD_ST_MAX_HEADER);
    if (hlen > len - 8)
        return hsd_fail(HSD_ERR_FORMAT,
                        "%s: header length %llu past end of file (file has %zu bytes after "
                        "the 8-byte length)",
                        file, (unsigned long long)hlen, len - 8);
    const unsigned char *hdr = buf + 8;
    size_t bad = utf8_bad_offset(hdr, (size_t)hlen);
    if (bad != hlen)
        return hsd_fail(HSD_ERR_FORMAT,
                        "%s: header is not valid UTF-8 (byte 0x%02x at header offset %zu)",
                        file, hdr[bad], bad);

    // json_loadb takes a length, so the header needs no NUL terminator;
    // trailing spaces (the writers' 8-byte padding) are JSON whitespace.
    // JSON_DECODE_ANY lets a scalar header reach our "not an object" message.
    json_error_t jerr;
    json_t *root =
        json_loadb((const char *)hdr, (size_t)hlen, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root)
        return hsd_fail(HSD_ERR_FORMAT, "%s: header is not valid JSON: %s (line %d, column %d)",
                        file, jerr.text, jerr.line, jerr.column);
    enum hsd_status s = HSD_OK;
    struct span *spans = NULL;
    if (!json_is_object(root)) {
        s = hsd_fail(HSD_ERR_FORMAT, "%s: header JSON must be an object (got %s)", file,
                     json_type_name(root));
        goto out;
    }

    const unsigned char *buffer = hdr + hlen;
    size_t buffer_len = len - 8 - (size_t)hlen;
    size_t cap = json_object_size(root);
    if (cap) {
        st->tensors = calloc(cap, sizeof *st->tensors);
        spans = calloc(cap, sizeof *spans);
        if (!st->tensors || !spans) {
            s = hsd_fail(HSD_ERR_NOMEM, "%s: out of memory for %zu tensor entries", file, cap);
            goto out;
        }
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            s = parse_metadata(st, v);
            if (s) goto out;
            continue;
        }
        struct hsd_st_tensor *t = &st->tensors[st->n];
        s = parse_entry(st, key, v, buffer, buffer_len, t, &spans[st->n]);
        if (s) goto out;
        // jansson refuses NUL in keys (no JSON_ALLOW_NUL), so strdup keeps the
        // whole name.
        t->name = strdup(key);
        if (!t->name) {
            s = hsd_fail(HSD_ERR_NOMEM, "%s: out of memory for tensor names", file);
            goto out;
        }
        spans[st->n].idx = st->n;
        st->n++;
    }
    s = check_tiling(st, spans, st->n, buffer_len);
    if (s) goto out;
    if (st->n) qsort(st->tensors, st->n, sizeof *st->tensors, tensor_cmp);
out:
    free(spans);
    json_decref(root);
    return s;
}

void hsd_safetensors_drop(const struct hsd_safetensors *st, const struct hsd_st_tensor *t) {
    if (!st->map || !t->nbytes) return;  // a caller's buffer is not ours to drop
    const char *d = t->data, *m = st->map;
    if (d < m || d + t->nbytes > m + st->map_len) return;  // another file's (a sharded checkpoint)
    // Whole pages of the tensor only; a page it shares with a neighbour that
    // is still read in place is simply faulted in again from the page cache.
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)t->data + page - 1) & ~(page - 1);
    uintptr_t hi = ((uintptr_t)t->data + t->nbytes) & ~(page - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

void hsd_safetensors_close(struct hsd_safetensors *st) {
    if (!st) return;
    for (size_t i = 0; i < st->n; i++) free((char *)st->tensors[i].name);
    free(st->tensors);
    for (size_t i = 0; i < st->n_meta; i++) {
        free(st->meta[i].key);
        free(st->meta[i].value);
    }
    free(st->meta);
    if (st->map) munmap(st->map, st->map_len);
    free(st->label);
    free(st);
}

static struct hsd_safetensors *st_new(const char *label) {
    struct hsd_safetensors *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->label = strdup(label ? label : "<buffer>");
    if (!st->label) {
        free(st);
        return NULL;
    }
    return st;
}

enum hsd_status hsd_safetensors_parse(struct hsd_safetensors **out, const void *buf, size_t len,
                                      const char *label) {
    HSD_ASSERT(out && (buf || len == 0));
    *out = NULL;
    struct hsd_safetensors *st = st_new(label);
    if (!st) return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", label ? label : "<buffer>");
    enum hsd_status s = parse_buffer(st, buf, len);
    if (s) {
        hsd_safetensors_close(st);
        return s;
    }
    *out = st;
    return HSD_OK;
}

enum hsd_status hsd_safetensors_open(struct hsd_safetensors **out, const char *path) {
    HSD_ASSERT(out && path);
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return hsd_fail(HSD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return hsd_fail(HSD_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return hsd_fail(HSD_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return hsd_fail(HSD_ERR_IO, "%s: file too large to map (%lld bytes)", path,
                        (long long)sb.st_size);
    }
    struct hsd_safetensors *st = st_new(path);
    if (!st) {
        close(fd);
        return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t len = (size_t)sb.st_size;
    // mmap of length 0 is EINVAL; an empty file is simply "truncated" below.
    // The mapping is private and read-only: tensors point straight into it,
    // so weights are paged in on first use instead of copied. (A file
    // truncated by someone else while mapped would SIGBUS; we accept that,
    // as every mmap-based loader does.)
    static const unsigned char k_empty[1];
    const unsigned char *base = k_empty;
    if (len > 0) {
        void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            hsd_safetensors_close(st);
            return hsd_fail(HSD_ERR_IO, "%s: mmap of %zu bytes failed: %s", path, len,
                            strerror(e));
        }
        st->map = m;
        st->map_len = len;
        base = m;
    }
    close(fd);  // the mapping keeps the file referenced
    enum hsd_status s = parse_buffer(st, base, len);
    if (s) {
        hsd_safetensors_close(st);
        return s;
    }
    *out = st;
    return HSD_OK;
}

const char *hsd_safetensors_path(const struct hsd_safetensors *st) { return st->label; }

size_t hsd_safetensors_count(const struct hsd_safetensors *st) { return st->n; }

const struct hsd_st_tensor *hsd_safetensors_at(const struct hsd_safetensors *st, size_t i) {
    HSD_ASSERT(i < st->n);
    return &st->tensors[i];
}

const struct hsd_st_tensor *hsd_safetensors_find(const struct hsd_safetensors *st,
                                                 const char *name) {
    if (st->n == 0) return NULL;
    return bsearch(name, st->tensors, st->n, sizeof *st->tensors, tensor_key_cmp);
}

const char *hsd_safetensors_metadata(const struct hsd_safetensors *st, const char *key) {
    for (size_t i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta[i].key, key) == 0) return st->meta[i].value;
    return NULL;
}

enum hsd_status hsd_safetensors_read_f32(const struct hsd_safetensors *st, const char *name,
                                         float *dst, size_t numel) {
    const struct hsd_st_tensor *t = hsd_safetensors_find(st, name);
    if (!t) return hsd_fail(HSD_ERR_NOT_FOUND, "%s: tensor '%s' not found", st->label, name);
    if (t->dtype != HSD_F32 && t->dtype != HSD_F16 && t->dtype != HSD_BF16)
        return hsd_fail(HSD_ERR_UNSUPPORTED,
                        "%s: tensor '%s': unsupported dtype %s (expected F32, F16 or BF16)",
                        st->label, name, hsd_dtype_name(t->dtype));
    if ((uint64_t)t->numel != (uint64_t)numel)
        return hsd_fail(HSD_ERR_SHAPE,
                        "%s: tensor '%s': has %lld elements but the caller expects %zu",
                        st->label, name, (long long)t->numel, numel);
    if (numel == 0) return HSD_OK;  // dst may be NULL; memcpy(NULL, .., 0) is UB
    int rc = hsd_convert_to_f32(dst, t->data, t->dtype, numel);
    HSD_ASSERT(rc == 0);  // dtype checked above
    return HSD_OK;
}

// ---------------------------------------------------------------------------
// Writer

struct w_entry {
    char *name;
    enum hsd_dtype dtype;
    int ndim;
    int64_t shape[HSD_ST_MAX_DIMS];
    const void *data;
    size_t nbytes;
};

struct hsd_st_writer {
    struct w_entry *v;
    size_t n, cap;
    json_t *meta;  // object, created on first set_metadata
};

enum hsd_status hsd_st_writer_create(struct hsd_st_writer **out) {
    HSD_ASSERT(out);
    *out = calloc(1, sizeof **out);
    if (!*out) return hsd_fail(HSD_ERR_NOMEM, "safetensors writer: out of memory");
    return HSD_OK;
}

void hsd_st_writer_free(struct hsd_st_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) free(w->v[i].name);
    free(w->v);
    json_decref(w->meta);
    free(w);
}

enum hsd_status hsd_st_writer_add(struct hsd_st_writer *w, const char *name,
                                  enum hsd_dtype dtype, int ndim, const int64_t *shape,
                                  const void *data) {
    HSD_ASSERT(w && name);
    size_t nlen = strlen(name);
    if (utf8_bad_offset((const unsigned char *)name, nlen) != nlen)
        return hsd_fail(HSD_ERR_INVALID_ARG, "safetensors writer: tensor name is not valid UTF-8");
    if (strcmp(name, "__metadata__") == 0)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "safetensors writer: '__metadata__' is reserved, not a tensor name");
    if (dtype <= HSD_DTYPE_INVALID || dtype >= HSD_DTYPE_COUNT)
        return hsd_fail(HSD_ERR_INVALID_ARG, "safetensors writer: tensor '%s': invalid dtype",
                        name);
    if (ndim < 0 || ndim > HSD_ST_MAX_DIMS || (ndim > 0 && !shape))
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "safetensors writer: tensor '%s': ndim %d out of range [0, %d]", name,
                        ndim, HSD_ST_MAX_DIMS);
    // Linear scan: checkpoints hold ~10^3 tensors, so this is ~10^6 strcmp
    // at worst, negligible next to writing the data.
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->v[i].name, name) == 0)
            return hsd_fail(HSD_ERR_INVALID_ARG,
                            "safetensors writer: duplicate tensor name '%s'", name);
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || __builtin_mul_overflow(numel, shape[i], &numel))
            return hsd_fail(HSD_ERR_INVALID_ARG,
                            "safetensors writer: tensor '%s': bad shape entry %d (%lld)", name, i,
                            (long long)shape[i]);
    }
    size_t nbytes;
    if (__builtin_mul_overflow((uint64_t)numel, hsd_dtype_size(dtype), &nbytes))
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "safetensors writer: tensor '%s': byte size overflows", name);
    if (nbytes > 0 && !data)
        return hsd_fail(HSD_ERR_INVALID_ARG, "safetensors writer: tensor '%s': data is NULL",
                        name);
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        struct w_entry *nv = realloc(w->v, cap * sizeof *nv);
        if (!nv) return hsd_fail(HSD_ERR_NOMEM, "safetensors writer: out of memory");
        w->v = nv;
        w->cap = cap;
    }
    struct w_entry *e = &w->v[w->n];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    if (!e->name) return hsd_fail(HSD_ERR_NOMEM, "safetensors writer: out of memory");
    e->dtype = dtype;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->data = data;
    e->nbytes = nbytes;
    w->n++;
    return HSD_OK;
}

enum hsd_status hsd_st_writer_set_metadata(struct hsd_st_writer *w, const char *key,
                                           const char *value) {
    HSD_ASSERT(w && key && value);
    if (!w->meta && !(w->meta = json_object()))
        return hsd_fail(HSD_ERR_NOMEM, "safetensors writer: out of memory");
    // json_string() and the key check both refuse invalid UTF-8.
    if (json_object_set_new(w->meta, key, json_string(value)) != 0)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "safetensors writer: metadata '%s' is not valid UTF-8 (or out of memory)",
                        key);
    return HSD_OK;
}

// Builds the padded header. On success *out is malloc'd, *out_len % 8 == 0.
static enum hsd_status build_header(const struct hsd_st_writer *w, const char *path,
                                    char **out, size_t *out_len) {
    json_t *root = json_object();
    if (!root) return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory building header", path);
    enum hsd_status s = HSD_OK;
    char *text = NULL;
    if (w->meta && json_object_size(w->meta) &&
        json_object_set(root, "__metadata__", w->meta) != 0)
        goto nomem;
    uint64_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const struct w_entry *e = &w->v[i];
        uint64_t end;
        if (__builtin_add_overflow(off, (uint64_t)e->nbytes, &end) || end > (uint64_t)LLONG_MAX) {
            s = hsd_fail(HSD_ERR_INVALID_ARG, "%s: total tensor data exceeds 2^63 bytes", path);
            goto out;
        }
        json_t *shape = json_array();
        json_t *offs = json_pack("[II]", (json_int_t)off, (json_int_t)end);
        json_t *ent = json_object();
        int bad = !shape || !offs || !ent;
        for (int d = 0; !bad && d < e->ndim; d++)
            bad = json_array_append_new(shape, json_integer((json_int_t)e->shape[d])) != 0;
        // Key order dtype, shape, data_offsets: what the reference writes.
        if (!bad) bad = json_object_set_new(ent, "dtype", json_string(hsd_dtype_name(e->dtype)));
        if (!bad) bad = json_object_set(ent, "shape", shape);
        if (!bad) bad = json_object_set(ent, "data_offsets", offs);
        json_decref(shape);
        json_decref(offs);
        if (bad || json_object_set_new(root, e->name, ent) != 0) {
            if (bad) json_decref(ent);
            goto nomem;
        }
        off = end;
    }
    // jansson (>= 2.8) keeps insertion order, so tensors appear in the
    // order they were added, matching the data layout.
    size_t n = json_dumpb(root, NULL, 0, JSON_COMPACT);
    if (n == 0) goto nomem;
    // Pad with spaces to a multiple of 8 so the data buffer starts 8-aligned
    // (the reference writer does the same; readers skip JSON whitespace).
    size_t padded = (n + 7) & ~(size_t)7;
    if (padded > HSD_ST_MAX_HEADER) {
        s = hsd_fail(HSD_ERR_INVALID_ARG, "%s: header of %zu bytes exceeds the cap of %u bytes",
                     path, padded, HSD_ST_MAX_HEADER);
        goto out;
    }
    text = malloc(padded);
    if (!text || json_dumpb(root, text, n, JSON_COMPACT) != n) goto nomem;
    memset(text + n, ' ', padded - n);
    *out = text;
    *out_len = padded;
    text = NULL;
    goto out;
nomem:
    s = hsd_fail(HSD_ERR_NOMEM, "%s: out of memory building header", path);
out:
    free(text);
    json_decref(root);
    return s;
}

static int write_all(int fd, const void *buf, size_t len) {
    const unsigned char *p = buf;
    while (len > 0) {
        // Linux write() moves at most ~2 GiB per call; loop for big tensors.
        size_t chunk = len > (1u << 30) ? (1u << 30) : len;
        ssize_t m = write(fd, p, chunk);
        if (m < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += m;
        len -= (size_t)m;
    }
    return 0;
}

enum hsd_status hsd_st_writer_write(struct hsd_st_writer *w, const char *path) {
    HSD_ASSERT(w && path);
    char *hdr = NULL;
    size_t hlen = 0;
    enum hsd_status s = build_header(w, path, &hdr, &hlen);
    if (s) return s;

    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    if (!tmp) {
        free(hdr);
        return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        s = hsd_fail(HSD_ERR_IO, "%s: cannot create temporary file %s: %s", path, tmp,
                     strerror(errno));
        free(tmp);
        free(hdr);
        return s;
    }
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    const char *what = "write";
    int bad = write_all(fd, lenbuf, 8) || write_all(fd, hdr, hlen);
    for (size_t i = 0; !bad && i < w->n; i++)
        if (w->v[i].nbytes) bad = write_all(fd, w->v[i].data, w->v[i].nbytes);
    // fsync before rename: otherwise a crash can leave the new name pointing
    // at a file whose data never reached the disk.
    if (!bad && fsync(fd) != 0) {
        what = "fsync";
        bad = 1;
    }
    int e = errno;
    if (close(fd) != 0 && !bad) {
        e = errno;
        what = "close";
        bad = 1;
    }
    if (!bad && rename(tmp, path) != 0) {
        e = errno;
        what = "rename";
        bad = 1;
    }
    if (bad) {
        unlink(tmp);
        s = hsd_fail(HSD_ERR_IO, "%s: %s of %s failed: %s", path, what, tmp, strerror(e));
    }
    free(tmp);
    free(hdr);
    return s;
}
