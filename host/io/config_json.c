// Typed reads of optional config.json keys (config_json.h).
#include "io/config_json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"

// Python's non-finite tokens are rewritten, outside strings, into strings
// that start with a byte no real config string holds (U+0001, which JSON
// can only spell escaped), so hsd_cfg_number tells them from a genuine
// "Infinity" string. Column numbers in jansson's messages then count the
// rewritten text; line numbers are unchanged.
#define PY_MARK "\\u0001"
static const char py_mark_byte = '\x01';
static const char *const py_tokens[] = {"-Infinity", "Infinity", "NaN"};

static int ident_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '+' || c == '-';
}

// The text with every bare Python token quoted; NULL when out of memory.
// A token glued to other word characters (NaNx, -Infinity1) is left as it
// is, so jansson reports it as the invalid token it is.
static char *python_dialect(const char *json, size_t len, size_t *out_len) {
    // Each token (3+ bytes) grows by two quotes and the 6-byte mark, and
    // sprintf adds a NUL: under 4x, plus room for the NUL.
    if (len > ((size_t)1 << 28)) return NULL;
    char *out = malloc(len * 4 + 16);
    if (!out) return NULL;
    size_t o = 0;
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        const char c = json[i];
        if (in_string) {
            out[o++] = c;
            if (c == '\\' && i + 1 < len) out[o++] = json[++i];
            else if (c == '"') in_string = 0;
            continue;
        }
        if (c == '"') in_string = 1;
        if (c == '-' || c == 'I' || c == 'N') {
            const int starts = i == 0 || !ident_char(json[i - 1]);
            for (size_t t = 0; starts && t < sizeof py_tokens / sizeof py_tokens[0]; t++) {
                const size_t n = strlen(py_tokens[t]);
                if (len - i >= n && !memcmp(json + i, py_tokens[t], n) &&
                    (i + n == len || !ident_char(json[i + n]))) {
                    o += (size_t)sprintf(out + o, "\"" PY_MARK "%s\"", py_tokens[t]);
                    i += n - 1;
                    goto next;
                }
            }
        }
        out[o++] = c;
    next:;
    }
    *out_len = o;
    return out;
}

int hsd_cfg_number(const json_t *v, double *x) {
    if (json_is_number(v)) {
        *x = json_number_value(v);
        return 1;
    }
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (!s || s[0] != py_mark_byte) return 0;
    if (!strcmp(s + 1, "Infinity")) *x = INFINITY;
    else if (!strcmp(s + 1, "-Infinity")) *x = -INFINITY;
    else *x = NAN;
    return 1;
}

enum hsd_status hsd_cfg_parse(const char *json, size_t len, const char *label, json_t **root) {
    json_error_t err;
    size_t plen = 0;
    char *plain = python_dialect(json, len, &plen);
    if (!plain) return hsd_fail(HSD_ERR_NOMEM, "%s: out of memory reading the config", label);
    *root = json_loadb(plain, plen, JSON_REJECT_DUPLICATES, &err);
    free(plain);
    if (!*root)
        return hsd_fail(HSD_ERR_FORMAT, "%s: invalid JSON at line %d column %d: %s", label,
                        err.line, err.column, err.text);
    if (!json_is_object(*root)) {
        json_decref(*root);
        *root = NULL;
        return hsd_fail(HSD_ERR_FORMAT, "%s: config is not a JSON object", label);
    }
    return HSD_OK;
}

static enum hsd_status parse_into(void *root, const char *text, size_t len, const char *label) {
    return hsd_cfg_parse(text, len, label, root);
}

enum hsd_status hsd_cfg_load_file(const char *path, json_t **root) {
    // Real config.json files are a few KB.
    return hsd_parse_small_file(path, 1u << 20, "config", parse_into, root);
}

enum hsd_status hsd_cfg_bad(const char *label, const char *key, const char *why) {
    return hsd_fail(HSD_ERR_FORMAT, "%s: config key '%s': %s", label, key, why);
}

enum hsd_status hsd_cfg_int(json_t *root, const char *label, const char *key, int lo, int hi,
                            int *out) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return HSD_OK;
    if (!json_is_integer(v)) return hsd_cfg_bad(label, key, "expected an integer");
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return hsd_fail(HSD_ERR_FORMAT, "%s: config key '%s': %lld is outside [%d, %d]", label,
                        key, (long long)x, lo, hi);
    *out = (int)x;
    return HSD_OK;
}

enum hsd_status hsd_cfg_float(json_t *root, const char *label, const char *key, float *out) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return HSD_OK;
    double x;
    if (!hsd_cfg_number(v, &x)) return hsd_cfg_bad(label, key, "expected a number");
    if (!isfinite(x) || fabs(x) > 1e6) return hsd_cfg_bad(label, key, "number out of range");
    *out = (float)x;
    return HSD_OK;
}

enum hsd_status hsd_cfg_bool(json_t *root, const char *label, const char *key, int *out) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return HSD_OK;
    if (!json_is_boolean(v)) return hsd_cfg_bad(label, key, "expected true or false");
    *out = json_is_true(v);
    return HSD_OK;
}

enum hsd_status hsd_cfg_int_list(json_t *root, const char *label, const char *key, int max_n,
                                 int lo, int hi, int *out, int *n) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return HSD_OK;
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > (size_t)max_n)
        return hsd_fail(HSD_ERR_FORMAT, "%s: config key '%s': expected a list of 1 to %d integers",
                        label, key, max_n);
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_integer(e)) return hsd_cfg_bad(label, key, "list entries must be integers");
        json_int_t x = json_integer_value(e);
        if (x < lo || x > hi)
            return hsd_fail(HSD_ERR_FORMAT, "%s: config key '%s'[%zu]: %lld is outside [%d, %d]",
                            label, key, i, (long long)x, lo, hi);
        out[i] = (int)x;
    }
    *n = (int)json_array_size(v);
    return HSD_OK;
}
