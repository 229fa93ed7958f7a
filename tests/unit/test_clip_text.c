// CLIP text encoder parity with transformers: every case under
// tests/data/text (made by tests/oracle/make_text_cases.py) is loaded, run
// on the oracle's ids, and its last_hidden_state, every layer's hidden
// state (through the probe hook) and the clip_skip 1 and 2 outputs are
// compared with transformers' fp32 CPU results. Then the strict-loading and
// bad-input errors.
//
// Tolerance: max |err| <= 1e-4 * max |ref| per tensor (docs/architecture.md §7). Both
// sides are fp32 and differ only in summation order (OpenBLAS vs torch's
// GEMM blocking, SDPA vs our softmax, LayerNorm reductions): ~6e-8 relative
// per rounding, growing like sqrt(K) (K <= 48 here) and with depth (3
// layers), so ~1e-6 is expected and printed. The bound still catches every
// semantic error the cases are built to expose: a wrong layer_norm_eps moves
// gelu_eps by 1.8e-3, quick_gelu for gelu by 4.7e-3, and a missing causal
// mask, a wrong head split or position offset by order 1e-1.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/safetensors.h"
#include "models/clip_text.h"
#include "testutil.h"

#define TOL 1e-4

struct probe_ctx {
    struct hsd_backend *be;
    const struct hsd_safetensors *io;
    const char *label;
    int n_checked;
};

// Compares a backend [n, L, C] hidden state with the golden of that name.
static void on_probe(void *user, const char *name, const void *buf, int n, int L, int c) {
    struct probe_ctx *p = user;
    const struct hsd_st_tensor *ref = hsd_safetensors_find(p->io, name);
    char what[128];
    snprintf(what, sizeof what, "%s %s", p->label, name);
    CHECKF(ref != NULL, "%s: no golden", what);
    size_t count = (size_t)n * L * c;
    if (!ref || (size_t)ref->numel != count) {
        CHECKF(0, "%s: golden has %lld elements, we have %zu", what,
               ref ? (long long)ref->numel : 0LL, count);
        return;
    }
    float *got = malloc(count * sizeof *got), *want = malloc(count * sizeof *want);
    p->be->ops->download(p->be, got, buf, count);
    CHECK_OK(hsd_safetensors_read_f32(p->io, name, want, count));
    CHECK_CLOSE(what, got, want, count, TOL);
    p->n_checked++;
    free(got);
    free(want);
}

static float *read_golden(const struct hsd_safetensors *io, const char *name, size_t count) {
    const struct hsd_st_tensor *t = hsd_safetensors_find(io, name);
    CHECKF(t && (size_t)t->numel == count, "golden '%s' missing or of the wrong size", name);
    if (!t || (size_t)t->numel != count) return NULL;
    float *x = malloc(count * sizeof *x);
    CHECK_OK(hsd_safetensors_read_f32(io, name, x, count));
    return x;
}

// SDXL's outputs (hsd_clip_text_forward_sdxl): hidden_states[-2] and [-3]
// (clip_skip 1) without the final norm, and the pooled output
// (text_embeds through text_projection for the WithProjection case, at the
// argmax of the ids: row 0 holds the eos id mid-sequence, row 1 of
// text_encoder_2 pads with id 0 as tokenizer_2 does).
static void check_sdxl(const char *name, struct hsd_clip_text *m,
                       const struct hsd_safetensors *io, const int32_t *ids, int n, int L) {
    const int C = hsd_clip_text_get_config(m)->hidden_size, P = hsd_clip_text_pooled_dim(m);
    const size_t count = (size_t)n * L * C;
    float *hid = malloc(count * sizeof *hid), *pooled = malloc((size_t)n * P * sizeof *pooled);
    char what[160];
    static const char *const gold[2] = {"penultimate", "sdxl_skip.1"};
    for (int k = 0; k < 2; k++) {
        CHECK_OK(hsd_clip_text_forward_sdxl(m, hid, k ? NULL : pooled, ids, n, L, k));
        float *want = read_golden(io, gold[k], count);
        if (want) {
            snprintf(what, sizeof what, "%s %s", name, gold[k]);
            CHECK_CLOSE(what, hid, want, count, TOL);
        }
        free(want);
    }
    float *want = read_golden(io, "pooled", (size_t)n * P);
    if (want) {
        snprintf(what, sizeof what, "%s pooled (%d wide)", name, P);
        CHECK_CLOSE(what, pooled, want, (size_t)n * P, TOL);
    }
    free(want);
    free(hid);
    free(pooled);
}

static void check_case(const char *name, struct hsd_backend *be) {
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/text/%s", HSD_TEST_DATA, name);
    snprintf(path, sizeof path, "%s/io.safetensors", dir);
    struct hsd_safetensors *io = NULL;
    CHECK_OK(hsd_safetensors_open(&io, path));
    if (!io) return;
    const struct hsd_st_tensor *tid = hsd_safetensors_find(io, "input_ids");
    CHECKF(tid && tid->dtype == HSD_I64 && tid->ndim == 2, "%s: input_ids [n, L] I64", name);
    if (!tid || tid->dtype != HSD_I64 || tid->ndim != 2) {
        hsd_safetensors_close(io);
        return;
    }
    const int n = (int)tid->shape[0], L = (int)tid->shape[1];
    int32_t *ids = malloc((size_t)n * L * sizeof *ids);
    for (int i = 0; i < n * L; i++) {
        int64_t v;
        memcpy(&v, (const char *)tid->data + 8 * (size_t)i, 8);
        ids[i] = (int32_t)v;
    }

    // The pipeline-root form for every case; the text_encoder folder itself
    // gives the same model (checked on the output below).
    struct hsd_clip_text *m = NULL;
    CHECK_OK(hsd_clip_text_load(&m, dir, be));
    if (!m) {
        free(ids);
        hsd_safetensors_close(io);
        return;
    }
    const struct hsd_clip_text_config *cfg = hsd_clip_text_get_config(m);
    const int C = cfg->hidden_size, N = cfg->num_hidden_layers;
    const size_t count = (size_t)n * L * C;
    float *out = malloc(count * sizeof *out), *out2 = malloc(count * sizeof *out2);
    char what[160];

    // clip_skip 0: last_hidden_state, with hidden.0 .. hidden.N probed.
    struct probe_ctx pc = {be, io, name, 0};
    hsd_clip_text_set_probe(m, on_probe, &pc);
    CHECK_OK(hsd_clip_text_forward(m, out, ids, n, L, 0));
    CHECKF(pc.n_checked == N + 1, "%s: %d hidden states probed, expected %d", name,
           pc.n_checked, N + 1);
    hsd_clip_text_set_probe(m, NULL, NULL);
    float *ref = read_golden(io, "last_hidden_state", count);
    if (ref) {
        snprintf(what, sizeof what, "%s last_hidden_state", name);
        CHECK_CLOSE(what, out, ref, count, TOL);
    }

    // diffusers clip_skip = 1, 2 (layers N-1, N-2 then final_layer_norm).
    for (int k = 1; k <= 2 && k <= N; k++) {
        char gname[32];
        snprintf(gname, sizeof gname, "clip_skip.%d", k);
        float *want = read_golden(io, gname, count);
        CHECK_OK(hsd_clip_text_forward(m, out2, ids, n, L, k));
        if (want) {
            snprintf(what, sizeof what, "%s %s", name, gname);
            CHECK_CLOSE(what, out2, want, count, TOL);
        }
        free(want);
    }

    // A shorter sequence: with the causal mask, position t never sees
    // t' > t, so the first Ls rows of the L-token golden are the answer
    // (also replans the arena for a new (n, L)).
    const int Ls = 20;
    int32_t *ids_s = malloc((size_t)n * Ls * sizeof *ids_s);
    float *got_s = malloc((size_t)n * Ls * C * sizeof *got_s);
    float *ref_s = malloc((size_t)n * Ls * C * sizeof *ref_s);
    for (int b = 0; b < n; b++) {
        memcpy(ids_s + (size_t)b * Ls, ids + (size_t)b * L, (size_t)Ls * sizeof *ids_s);
        if (ref)
            memcpy(ref_s + (size_t)b * Ls * C, ref + (size_t)b * L * C,
                   (size_t)Ls * C * sizeof *ref_s);
    }
    CHECK_OK(hsd_clip_text_forward(m, got_s, ids_s, n, Ls, 0));
    if (ref) {
        snprintf(what, sizeof what, "%s L=%d prefix", name, Ls);
        CHECK_CLOSE(what, got_s, ref_s, (size_t)n * Ls * C, TOL);
    }
    // One sample alone (n = 1) is the golden's second row.
    CHECK_OK(hsd_clip_text_forward(m, out2, ids + L, 1, L, 0));
    if (ref) {
        snprintf(what, sizeof what, "%s n=1 (sample 1)", name);
        CHECK_CLOSE(what, out2, ref + (size_t)L * C, (size_t)L * C, TOL);
    }

    if (hsd_safetensors_find(io, "pooled")) check_sdxl(name, m, io, ids, n, L);

    // The text_encoder folder itself: same weights, same bits.
    struct hsd_clip_text *m2 = NULL;
    snprintf(path, sizeof path, "%s/text_encoder", dir);
    CHECK_OK(hsd_clip_text_load(&m2, path, be));
    if (m2) {
        CHECK_OK(hsd_clip_text_forward(m2, out2, ids, n, L, 0));
        CHECKF(!memcmp(out, out2, count * sizeof *out),
               "%s: text_encoder folder output differs from the pipeline root's", name);
    }
    hsd_clip_text_free(m2);

    free(ids_s), free(got_s), free(ref_s);
    free(ref);
    free(out), free(out2), free(ids);
    hsd_clip_text_free(m);
    hsd_safetensors_close(io);
}

// ---- errors ----------------------------------------------------------------

#define CHECK_FAILS(call, code, needle)                                                      \
    do {                                                                                     \
        enum hsd_status s_ = (call);                                                         \
        CHECKF(s_ == (code) && strstr(hsd_last_error(), needle) != NULL,                     \
               "%s -> %s (expected %s) \"%s\" should mention \"%s\"", #call, hsd_status_str(s_), \
               hsd_status_str(code), hsd_last_error(), needle);                              \
        printf("expected error: %s\n", hsd_last_error());                                     \
        hsd_clear_error();                                                                   \
    } while (0)

static void test_bad_inputs(struct hsd_backend *be) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/text/quick_gelu", HSD_TEST_DATA);
    struct hsd_clip_text *m = NULL;
    CHECK_OK(hsd_clip_text_load(&m, dir, be));
    if (!m) return;
    const struct hsd_clip_text_config *cfg = hsd_clip_text_get_config(m);
    enum { L = 8 };
    int32_t ids[2 * L] = {0};
    float *out = malloc(2 * L * (size_t)cfg->hidden_size * sizeof *out);
    ids[L + 5] = cfg->vocab_size;  // one past the table
    CHECK_FAILS(hsd_clip_text_forward(m, out, ids, 2, L, 0), HSD_ERR_INVALID_ARG, "[1, 5]");
    ids[L + 5] = -1;
    CHECK_FAILS(hsd_clip_text_forward(m, out, ids, 2, L, 0), HSD_ERR_INVALID_ARG, "-1");
    ids[L + 5] = cfg->vocab_size - 1;  // the last valid id
    CHECK_OK(hsd_clip_text_forward(m, out, ids, 2, L, 0));
    CHECK_FAILS(hsd_clip_text_forward(m, out, ids, 1, cfg->max_position_embeddings + 1, 0),
                HSD_ERR_INVALID_ARG, "max_position_embeddings");
    CHECK_FAILS(hsd_clip_text_forward(m, out, ids, 2, L, cfg->num_hidden_layers + 1),
                HSD_ERR_INVALID_ARG, "clip_skip");
    CHECK_FAILS(hsd_clip_text_forward(m, out, ids, 0, L, 0), HSD_ERR_INVALID_ARG, "n=0");
    free(out);
    hsd_clip_text_free(m);
}

static void test_config_errors(void) {
    struct hsd_clip_text_config cfg;
    const char *ok = "{\"model_type\": \"clip_text_model\", \"hidden_size\": 64, "
                     "\"num_attention_heads\": 4, \"hidden_act\": \"gelu\"}";
    CHECK_OK(hsd_clip_text_config_parse(&cfg, ok, strlen(ok), "ok.json"));
    CHECK(cfg.hidden_size == 64 && !cfg.quick_gelu && cfg.vocab_size == 49408 &&
          cfg.num_hidden_layers == 12 && cfg.max_position_embeddings == 77 &&
          cfg.layer_norm_eps == 1e-5f);
    static const struct {
        const char *json;
        enum hsd_status code;
        const char *needle;
    } bad[] = {
        {"{\"hidden_act\": \"gelu_new\"}", HSD_ERR_UNSUPPORTED, "'hidden_act'"},
        {"{\"hidden_size\": 32, \"num_attention_heads\": 5}", HSD_ERR_FORMAT, "divisible"},
        {"{\"model_type\": \"clip\"}", HSD_ERR_UNSUPPORTED, "'model_type'"},
        {"{\"architectures\": [\"CLIPVisionModel\"]}", HSD_ERR_UNSUPPORTED, "CLIPVisionModel"},
        {"{\"layer_norm_eps\": 0}", HSD_ERR_FORMAT, "'layer_norm_eps'"},
        {"{\"vocab_size\": -3}", HSD_ERR_FORMAT, "'vocab_size'"},
        {"{\"num_hidden_layers\": 1.5}", HSD_ERR_FORMAT, "'num_hidden_layers'"},
        {"[1, 2]", HSD_ERR_FORMAT, "JSON object"},
        {"{\"vocab_size\": 3", HSD_ERR_FORMAT, "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_FAILS(hsd_clip_text_config_parse(&cfg, bad[i].json, strlen(bad[i].json), "c.json"),
                    bad[i].code, bad[i].needle);
}

// Copies a whole small file; 0 on success.
static int copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    int rc = !a || !b;
    char buf[4096];
    size_t k;
    while (!rc && (k = fread(buf, 1, sizeof buf, a)) > 0) rc = fwrite(buf, 1, k, b) != k;
    if (a) fclose(a);
    if (b && fclose(b)) rc = 1;
    return rc;
}

// Rewrites the quick_gelu case's weights into tmp/text_encoder with one
// change: `drop` left out, `reshape` stored [cols, rows], `extra` added
// (a copy of final_layer_norm.bias under that name).
static void write_variant(const char *tmp, const char *drop, const char *reshape,
                          const char *extra) {
    char src[600], dst[600];
    snprintf(src, sizeof src, "%s/text/quick_gelu/text_encoder/model.safetensors", HSD_TEST_DATA);
    snprintf(dst, sizeof dst, "%s/text_encoder/model.safetensors", tmp);
    struct hsd_safetensors *st = NULL;
    struct hsd_st_writer *w = NULL;
    CHECK_OK(hsd_safetensors_open(&st, src));
    CHECK_OK(hsd_st_writer_create(&w));
    if (!st || !w) return;
    for (size_t i = 0; i < hsd_safetensors_count(st); i++) {
        const struct hsd_st_tensor *t = hsd_safetensors_at(st, i);
        if (drop && !strcmp(t->name, drop)) continue;
        int64_t shape[HSD_ST_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        if (reshape && !strcmp(t->name, reshape) && t->ndim == 2)
            shape[0] = t->shape[1], shape[1] = t->shape[0];
        CHECK_OK(hsd_st_writer_add(w, t->name, t->dtype, t->ndim, shape, t->data));
        if (extra && !strcmp(t->name, "final_layer_norm.bias"))
            CHECK_OK(hsd_st_writer_add(w, extra, t->dtype, t->ndim, t->shape, t->data));
    }
    CHECK_OK(hsd_st_writer_write(w, dst));
    hsd_st_writer_free(w);
    hsd_safetensors_close(st);
}

static void test_strict_loading(struct hsd_backend *be) {
    char tmp[512], te[600], cfg_src[600], cfg_dst[700];
    snprintf(tmp, sizeof tmp, "%s/test_clip_text_tmp", HSD_BINARY_DIR);
    snprintf(te, sizeof te, "%s/text_encoder", tmp);
    CHECKF((mkdir(tmp, 0755) == 0 || errno == EEXIST) && (mkdir(te, 0755) == 0 || errno == EEXIST),
           "cannot create %s", te);
    snprintf(cfg_src, sizeof cfg_src, "%s/text/quick_gelu/text_encoder/config.json",
             HSD_TEST_DATA);
    snprintf(cfg_dst, sizeof cfg_dst, "%s/config.json", te);
    CHECK(copy_file(cfg_src, cfg_dst) == 0);
    struct hsd_clip_text *m = NULL;

    write_variant(tmp, "encoder.layers.1.mlp.fc2.bias", NULL, NULL);
    CHECK_FAILS(hsd_clip_text_load(&m, tmp, be), HSD_ERR_NOT_FOUND,
                "model.safetensors: missing tensor 'encoder.layers.1.mlp.fc2.bias'");
    CHECK(m == NULL);
    write_variant(tmp, NULL, "encoder.layers.2.mlp.fc1.weight", NULL);
    CHECK_FAILS(hsd_clip_text_load(&m, tmp, be), HSD_ERR_SHAPE,
                "model.safetensors: tensor 'encoder.layers.2.mlp.fc1.weight': shape [32, 37]");
    write_variant(tmp, NULL, "embeddings.token_embedding.weight", NULL);
    CHECK_FAILS(hsd_clip_text_load(&m, tmp, be), HSD_ERR_SHAPE,
                "'embeddings.token_embedding.weight'");
    write_variant(tmp, NULL, NULL, "encoder.layers.3.layer_norm1.bias");
    CHECK_FAILS(hsd_clip_text_load(&m, tmp, be), HSD_ERR_FORMAT,
                "'encoder.layers.3.layer_norm1.bias'");
    // The unchanged copy loads (the variants above failed for their change).
    write_variant(tmp, NULL, NULL, NULL);
    CHECK_OK(hsd_clip_text_load(&m, tmp, be));
    hsd_clip_text_free(m);
    m = NULL;

    snprintf(cfg_dst, sizeof cfg_dst, "%s/no_such_dir", tmp);
    CHECK_FAILS(hsd_clip_text_load(&m, cfg_dst, be), HSD_ERR_NOT_FOUND, "no_such_dir");
    // A folder with neither text_encoder/ nor config.json.
    snprintf(cfg_dst, sizeof cfg_dst, "%s/text", HSD_TEST_DATA);
    CHECK_FAILS(hsd_clip_text_load(&m, cfg_dst, be), HSD_ERR_NOT_FOUND, "config.json");
}

int main(void) {
    struct hsd_backend *be = NULL;
    CHECK_OK(hsd_backend_cpu_create(&be, 0));
    if (!be) return hsd_test_finish();
    static const char *const cases[] = {"quick_gelu", "gelu_eps", "fp16",
                                        "prefixed",   "sdxl_te1", "sdxl_te2"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(cases[i], be);
    test_bad_inputs(be);
    test_config_errors();
    test_strict_loading(be);
    hsd_backend_destroy(be);
    return hsd_test_finish();
}
