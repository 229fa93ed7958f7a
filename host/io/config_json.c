// Typed reads of optional config.json keys (config_json.h).
#include "io/config_json.h"

#include <math.h>

enum hsd_status hsd_cfg_parse(const char *json, size_t len, const char *label, json_t **root) {
    json_error_t err;
    *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    if (!*root)
        return hsd_fail(HSD_ERR_FORMAT, "%s: invalid JSON at line %d column %d: %s", label,
                        err.line, err.column, err.text);
    if (!json_is_object(*root)) {
        json_decref(*root);
        *root = NULL;
        return hsd_fail(HSD_ERR_FORMAT, "%s: config must be a JSON object", label);
    }
    return HSD_OK;
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
    if (!json_is_number(v)) return hsd_cfg_bad(label, key, "expected a number");
    double x = json_number_value(v);
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
