// The C side of the Python client's tests (tests/pyclient/*.py): what the
// C implementation makes of bytes the Python client built, and replies the C
// encoder built for the Python decoder. Not a test by itself.
//
//   wire_tool check KEYS MSG        hsd_auth_check (signature, window, key)
//                                   + hsd_wire_decode + hsd_wire_encode of
//                                   the decoded struct: prints the fields as
//                                   JSON, "canonical": re-encoding gives the
//                                   same bytes. Exit 0 accepted, 1 refused
//                                   (JSON says the code), 2 usage/IO.
//   wire_tool reference MODEL MSG OUT   the RESULT hsd_edge_reference_result
//                                   gives for GENERATE MSG on pipeline MODEL
//                                   (what a service must send for that
//                                   request run alone), encoded, to OUT.
//   wire_tool finish EDGE GEN RES OUT.png [LATENT]   the C edge's side of
//                                   a RESULT (RES, e.g. received by the
//                                   Python client) for GENERATE GEN (text
//                                   prompts): hsd_edge_verify_result +
//                                   hsd_edge_finish on pipeline EDGE, the
//                                   image as a PNG and the final latent as
//                                   raw little-endian f32 [c, h, w].
//   wire_tool decode LIST           hsd_wire_decode of each file named in
//                                   LIST (one path a line): "OK TYPE" or
//                                   "ERR CODE" a line (differential fuzzing).
//   wire_tool fields MSG            hsd_wire_decode of one reply, no auth:
//                                   a RESULT's fields as JSON (pooled
//                                   embeddings and time ids of version 2
//                                   in full) and "canonical". Exit 0
//                                   decoded, 1 refused, 2 usage/IO.
//   wire_tool error ID CODE RETRY TEXT OUT [VERSION]    hsd_wire_encode_error
//   wire_tool cancel-ack ID TARGET CANCELLED OUT [VERSION]
//   (VERSION: the protocol version the reply is written in, default 1,
//   as a service answers a version 1 request; docs/protocol.md §6)
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/edge.h"
#include "io/png.h"
#include "net/auth.h"
#include "net/wire.h"
#include "pipeline/pipeline.h"

static int usage(void) {
    fprintf(stderr, "usage: wire_tool check KEYS MSG | reference MODEL MSG OUT | "
                    "finish EDGE GEN RES OUT.png [LATENT] | decode LIST | fields MSG | "
                    "error ID CODE RETRY TEXT OUT [VERSION] | "
                    "cancel-ack ID TARGET CANCELLED OUT [VERSION]\n");
    return 2;
}

static void *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    for (size_t got; b && (got = fread(b + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) free(b);
            b = nb;
        }
    }
    fclose(f);
    *len = n;
    return b;
}

static int write_file(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(b, 1, n, f) == n;
    if (f && fclose(f)) ok = 0;
    if (!ok) fprintf(stderr, "wire_tool: cannot write %s\n", path);
    return ok ? 0 : 2;
}

static json_t *prompt_json(const struct hsd_wire_prompt *p) {
    if (p->kind == HSD_WIRE_PROMPT_TEXT) return json_stringn(p->text.p ? p->text.p : "", p->text.n);
    json_t *a = json_array();
    int32_t ids[HSD_WIRE_MAX_TOKENS];
    hsd_wire_read_tokens(ids, p);
    for (uint32_t i = 0; i < p->n_tokens; i++) json_array_append_new(a, json_integer(ids[i]));
    return a;
}

static int refused(enum hsd_wire_error code) {
    json_t *o = json_pack("{s:b, s:s, s:s}", "ok", 0, "code", hsd_wire_error_name(code), "error",
                          hsd_last_error());
    json_dumpf(o, stdout, JSON_COMPACT);
    printf("\n");
    json_decref(o);
    return 1;
}

static int cmd_check(const char *keys, const char *path) {
    size_t len;
    uint8_t *msg = read_file(path, &len);
    if (!msg) return fprintf(stderr, "wire_tool: cannot read %s\n", path), 2;
    struct hsd_auth *a = NULL;
    if (hsd_auth_load(&a, keys, NULL)) {
        fprintf(stderr, "wire_tool: %s\n", hsd_last_error());
        free(msg);
        return 2;
    }
    const struct hsd_auth_key *key = NULL;
    enum hsd_wire_error code = HSD_WIRE_E_NONE;
    struct hsd_wire_msg m;
    int rc = 0;
    if (hsd_auth_check(a, msg, len, hsd_auth_now_ms(), &key, &code, NULL) ||
        hsd_wire_decode(&m, &code, msg, len)) {
        rc = refused(code);
        goto out;
    }
    void *re = malloc(len);
    size_t re_len = 0;
    int canonical = re && !hsd_wire_encode(re, len, &re_len, &m) && re_len == len &&
                    !memcmp(re, msg, len);
    free(re);
    json_t *o = json_pack("{s:b, s:s, s:s, s:I, s:b}", "ok", 1, "key_id", hsd_auth_key_id(key),
                          "type", hsd_wire_type_name(m.type), "request_id",
                          (json_int_t)m.request_id, "canonical", canonical);
    // request_id and seed as decimal strings: JSON integers stop at 2^63.
    char num[32];
    snprintf(num, sizeof num, "%llu", (unsigned long long)m.request_id);
    json_object_set_new(o, "request_id", json_string(num));
    json_object_set_new(o, "timestamp_ms", json_integer((json_int_t)m.auth.timestamp_ms));
    json_object_set_new(o, "version", json_integer(m.version));
    if (m.type == HSD_WIRE_GENERATE) {
        const struct hsd_wire_generate *g = &m.u.generate;
        snprintf(num, sizeof num, "%llu", (unsigned long long)g->seed);
        json_t *j = json_pack(
            "{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:i, s:i, s:i, s:s%}", "seed", num,
            "width", g->width, "height", g->height, "steps", g->steps, "k_min", g->k_min, "k_max",
            g->k_max, "sampler", g->sampler, "flags", g->flags, "cfg_scale", (double)g->cfg_scale,
            "deadline_ms", (int)g->deadline_ms, "clip_skip", g->clip_skip, "priority", g->priority,
            "model", g->model.p ? g->model.p : "", g->model.n);
        json_object_set_new(j, "prompt", prompt_json(&g->prompt));
        json_object_set_new(j, "negative_prompt", prompt_json(&g->negative));
        json_t *loras = json_array();
        for (unsigned i = 0; i < g->n_loras; i++)
            json_array_append_new(loras, json_pack("[s%, f]", g->loras[i].name.p,
                                                   g->loras[i].name.n,
                                                   (double)g->loras[i].scale));
        json_object_set_new(j, "loras", loras);
        json_object_set_new(j, "original_width", json_integer(g->original_width));
        json_object_set_new(j, "original_height", json_integer(g->original_height));
        json_object_set_new(j, "crop_top", json_integer(g->crop_top));
        json_object_set_new(j, "crop_left", json_integer(g->crop_left));
        json_object_set_new(j, "edge_ctx_c", json_integer(g->edge_ctx_c));
        json_object_set_new(j, "edge_pooled_c", json_integer(g->edge_pooled_c));
        json_object_set_new(o, "generate", j);
    } else if (m.type == HSD_WIRE_CANCEL) {
        snprintf(num, sizeof num, "%llu", (unsigned long long)m.u.cancel.target);
        json_object_set_new(o, "target", json_string(num));
    }
    json_dumpf(o, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
    printf("\n");
    json_decref(o);
out:
    hsd_auth_free(a);
    free(msg);
    return rc;
}

// n little-endian f32 from a wire view, as a JSON array (jansson prints
// reals with 17 significant digits: every f32 survives the round trip).
static json_t *floats_json(const void *p, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        float f;
        hsd_wire_read_f32(&f, (const uint8_t *)p + 4 * i, 1);
        json_array_append_new(a, json_real(f));
    }
    return a;
}

static int cmd_fields(const char *path) {
    size_t len;
    uint8_t *msg = read_file(path, &len);
    if (!msg) return fprintf(stderr, "wire_tool: cannot read %s\n", path), 2;
    struct hsd_wire_msg m;
    enum hsd_wire_error code = HSD_WIRE_E_NONE;
    if (hsd_wire_decode(&m, &code, msg, len)) {
        free(msg);
        return refused(code);
    }
    void *re = malloc(len);
    size_t re_len = 0;
    int canonical = re && !hsd_wire_encode(re, len, &re_len, &m) && re_len == len &&
                    !memcmp(re, msg, len);
    free(re);
    json_t *o = json_pack("{s:b, s:s, s:i, s:b}", "ok", 1, "type", hsd_wire_type_name(m.type),
                          "version", m.version, "canonical", canonical);
    if (m.type == HSD_WIRE_RESULT) {
        const struct hsd_wire_result *r = &m.u.result;
        json_t *j = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f}",
                              "steps", r->steps, "k_used", r->k_used, "sampler", r->sampler,
                              "n_emb", r->n_emb, "c", r->c, "h", r->h, "w", r->w, "emb_t",
                              r->emb_t, "emb_c", r->emb_c, "pooled_c", r->pooled_c, "n_time_ids",
                              r->n_time_ids, "device_ms", r->device_ms, "queue_ms", r->queue_ms);
        json_object_set_new(j, "state_len", json_integer((json_int_t)r->sampler_state.n));
        json_object_set_new(j, "pooled", floats_json(r->pooled, (size_t)r->n_emb * r->pooled_c));
        json_object_set_new(j, "time_ids",
                            floats_json(r->time_ids, (size_t)r->n_emb * r->n_time_ids));
        json_object_set_new(o, "result", j);
    }
    json_dumpf(o, stdout, JSON_COMPACT);
    printf("\n");
    json_decref(o);
    free(msg);
    return 0;
}

static int cmd_reference(const char *model, const char *path, const char *out) {
    size_t len;
    uint8_t *msg = read_file(path, &len);
    if (!msg) return fprintf(stderr, "wire_tool: cannot read %s\n", path), 2;
    struct hsd_wire_msg m;
    enum hsd_wire_error code;
    int rc = 2;
    struct hsd_pipeline *p = NULL;
    struct hsd_pipeline_config pc = {.model = model, .threads = 2};
    if (hsd_wire_decode(&m, &code, msg, len) || m.type != HSD_WIRE_GENERATE ||
        hsd_pipeline_load(&p, &pc)) {
        fprintf(stderr, "wire_tool: %s\n", hsd_last_error());
        goto out;
    }
    struct hsd_wire_msg res;
    void *store = NULL, *buf = NULL;
    size_t n = 0;
    int ok = !hsd_edge_reference_result(&res, &store, p, m.request_id, &m.u.generate);
    res.version = m.version;  // a service answers in the request's version
    if (!ok || hsd_wire_encode_alloc(&buf, &n, &res))
        fprintf(stderr, "wire_tool: %s\n", hsd_last_error());
    else
        rc = write_file(out, buf, n);
    free(buf);
    free(store);
out:
    hsd_pipeline_free(p);
    free(msg);
    return rc;
}

static int cmd_finish(const char *edge, const char *gen_path, const char *res_path,
                      const char *out, const char *latent_out) {
    size_t gl = 0, rl = 0;
    uint8_t *gb = read_file(gen_path, &gl), *rb = read_file(res_path, &rl);
    static char prompt[HSD_WIRE_MAX_PROMPT_BYTES + 1], negative[HSD_WIRE_MAX_PROMPT_BYTES + 1];
    struct hsd_wire_msg gm, rm;
    enum hsd_wire_error code;
    struct hsd_pipeline *p = NULL;
    struct hsd_edge_handover h = {0};
    uint8_t *rgb = NULL;
    int rc = 2;
    if (!gb || !rb) {
        fprintf(stderr, "wire_tool: cannot read %s\n", gb ? res_path : gen_path);
        goto out;
    }
    if (hsd_wire_decode(&gm, &code, gb, gl) || gm.type != HSD_WIRE_GENERATE ||
        gm.u.generate.prompt.kind != HSD_WIRE_PROMPT_TEXT ||
        gm.u.generate.negative.kind != HSD_WIRE_PROMPT_TEXT ||
        hsd_wire_decode(&rm, &code, rb, rl)) {
        fprintf(stderr, "wire_tool: unreadable GENERATE (text prompts) or RESULT: %s\n",
                hsd_last_error());
        goto out;
    }
    const struct hsd_wire_generate *g = &gm.u.generate;
    hsd_wire_str_copy(prompt, sizeof prompt, g->prompt.text);
    hsd_wire_str_copy(negative, sizeof negative, g->negative.text);
    // The request as `hsd edge` builds it from its flags (host/cli/cmd_edge.c).
    struct hsd_edge_request r = {
        .gen = {.prompt = prompt, .negative_prompt = negative, .guidance_scale = g->cfg_scale,
                .steps = g->steps, .split = -1, .sampler = (enum hsd_sampler_kind)g->sampler,
                .width = g->width, .height = g->height, .seed = g->seed, .batch_count = 1,
                .clip_skip = g->clip_skip, .original_width = g->original_width,
                .original_height = g->original_height, .crop_top = g->crop_top,
                .crop_left = g->crop_left},
        .k_min = g->k_min, .k_max = g->k_max};
    struct hsd_pipeline_config pc = {.model = edge, .threads = 2};
    struct hsd_edge_expect e;
    if (hsd_pipeline_load(&p, &pc)) goto fail;
    hsd_edge_expect_from(&e, p);
    if (hsd_edge_verify_result(&h, &rm, gm.request_id, &r, &e)) goto fail;
    rgb = malloc((size_t)g->width * g->height * 3);
    if (!rgb || hsd_edge_finish(p, &h, &r, rgb, NULL, NULL, NULL) ||
        hsd_png_write(out, rgb, g->width, g->height, NULL, 0))
        goto fail;
    // hsd_edge_finish advanced the handover's latent to the final one (x86
    // and aarch64 are little-endian, as the wire is).
    rc = latent_out ? write_file(latent_out, h.latent, (size_t)h.c * h.h * h.w * sizeof(float))
                    : 0;
    goto out;
fail:
    fprintf(stderr, "wire_tool: %s\n", hsd_last_error());
out:
    free(rgb);
    hsd_edge_handover_free(&h);
    hsd_pipeline_free(p);
    free(gb);
    free(rb);
    return rc;
}

static int cmd_decode(const char *list) {
    FILE *f = fopen(list, "r");
    if (!f) return fprintf(stderr, "wire_tool: cannot read %s\n", list), 2;
    char path[4096];
    int rc = 0;
    while (fgets(path, sizeof path, f)) {
        path[strcspn(path, "\n")] = '\0';
        size_t len;
        uint8_t *msg = read_file(path, &len);
        if (!msg) {
            fprintf(stderr, "wire_tool: cannot read %s\n", path);
            rc = 2;
            break;
        }
        struct hsd_wire_msg m;
        enum hsd_wire_error code = HSD_WIRE_E_NONE;
        if (hsd_wire_decode(&m, &code, msg, len)) printf("ERR %s\n", hsd_wire_error_name(code));
        else printf("OK %s\n", hsd_wire_type_name(m.type));
        free(msg);
    }
    fclose(f);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "check")) return cmd_check(argv[2], argv[3]);
    if (argc == 3 && !strcmp(argv[1], "decode")) return cmd_decode(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "fields")) return cmd_fields(argv[2]);
    if ((argc == 6 || argc == 7) && !strcmp(argv[1], "finish"))
        return cmd_finish(argv[2], argv[3], argv[4], argv[5], argc == 7 ? argv[6] : NULL);
    if (argc == 5 && !strcmp(argv[1], "reference")) return cmd_reference(argv[2], argv[3], argv[4]);
    char buf[HSD_WIRE_ERROR_MAX_SIZE];
    size_t n;
    if ((argc == 7 || argc == 8) && !strcmp(argv[1], "error")) {
        if (hsd_wire_encode_error(buf, sizeof buf, &n, strtoull(argv[2], NULL, 10),
                                  (enum hsd_wire_error)atoi(argv[3]),
                                  (uint32_t)strtoul(argv[4], NULL, 10), "%s", argv[5]))
            return fprintf(stderr, "wire_tool: %s\n", hsd_last_error()), 2;
        hsd_wire_set_version(buf, n, argc == 8 ? (uint16_t)atoi(argv[7]) : 1);
        return write_file(argv[6], buf, n);
    }
    if ((argc == 6 || argc == 7) && !strcmp(argv[1], "cancel-ack")) {
        struct hsd_wire_msg m = {.version = argc == 7 ? (uint16_t)atoi(argv[6]) : 1,
                                 .type = HSD_WIRE_CANCEL_ACK,
                                 .request_id = strtoull(argv[2], NULL, 10)};
        m.u.cancel_ack.target = strtoull(argv[3], NULL, 10);
        m.u.cancel_ack.cancelled = (uint8_t)atoi(argv[4]);
        if (hsd_wire_encode(buf, sizeof buf, &n, &m))
            return fprintf(stderr, "wire_tool: %s\n", hsd_last_error()), 2;
        return write_file(argv[5], buf, n);
    }
    return usage();
}
