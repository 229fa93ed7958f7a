// Typed reads of optional config.json keys (jansson), shared by the model
// configs (unet_config.c, clip_text_config.c, vae*.c). Each leaves *out
// as it is when the key is absent or null, and fails with HSD_ERR_FORMAT
// naming `label` (the file) and the key otherwise.
#ifndef HSD_IO_CONFIG_JSON_H
#define HSD_IO_CONFIG_JSON_H

#include <jansson.h>

#include "core/status.h"

// Parses config.json bytes (duplicate keys rejected) that must hold one
// JSON object; *root (caller json_decref's) on success. Python's JSON
// dialect is accepted: diffusers and transformers write configs with
// json.dumps, which spells float('inf'), -inf and nan as the bare tokens
// Infinity, -Infinity and NaN (e.g. DPMSolverMultistepScheduler's
// "lambda_min_clipped": -Infinity). RFC 8259 (and so jansson) has no such
// tokens; they are read as numbers by hsd_cfg_number and hsd_cfg_float,
// and a key hsd ignores may hold them like any other value.
enum hsd_status hsd_cfg_parse(const char *json, size_t len, const char *label, json_t **root);

// A config.json file (at most 1 MiB) through hsd_cfg_parse, labelled with
// its path.
enum hsd_status hsd_cfg_load_file(const char *path, json_t **root);

// 1 and *x when v is a JSON number or one of the Python tokens above
// (+-inf, NaN), else 0.
int hsd_cfg_number(const json_t *v, double *x);

// "<label>: config key '<key>': <why>" as HSD_ERR_FORMAT.
enum hsd_status hsd_cfg_bad(const char *label, const char *key, const char *why);
// An integer in [lo, hi].
enum hsd_status hsd_cfg_int(json_t *root, const char *label, const char *key, int lo, int hi,
                            int *out);
// A finite number of magnitude <= 1e6.
enum hsd_status hsd_cfg_float(json_t *root, const char *label, const char *key, float *out);
enum hsd_status hsd_cfg_bool(json_t *root, const char *label, const char *key, int *out);
// A non-empty list of at most max_n integers in [lo, hi]; *n gets its length.
enum hsd_status hsd_cfg_int_list(json_t *root, const char *label, const char *key, int max_n,
                                 int lo, int hi, int *out, int *n);

#endif
