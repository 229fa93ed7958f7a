// VAE parity with diffusers: every case under tests/data/vae (made by
// tests/oracle/make_vae_cases.py) is loaded from its folder, decoded and
// encoded on the oracle's inputs (square batch and non-square), and
// compared with diffusers' fp32 CPU results, intermediates included; then
// the loader's failure modes: missing / extra / misshapen tensors and bad
// configs must fail naming the file and the tensor or key.
//
// Tolerance: max |err| <= 1e-4 * max |ref| per tensor (docs/architecture.md §7). Both
// sides are fp32 from the same (fp16/bf16-rounded) weights and differ only
// in summation order (OpenBLAS im2col GEMMs vs oneDNN direct convolution,
// norm and softmax reductions): ~6e-8 relative per op, growing with
// sqrt(reduction length) and the ~20-40 convolutions deep; the observed
// worst is printed per tensor and sits around 1e-6. A real mistake (wrong
// eps, missing residual, wrong pad side of the encoder's downsampler,
// TAESD's input/output maps) gives 1e-2 or more.
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/assert.h"
#include "io/safetensors.h"
#include "models/vae.h"
#include "testutil.h"

#define TOL 1e-4

static struct hsd_backend *g_be;

struct case_info {
    const char *name;
    enum hsd_vae_kind kind;
    float scaling, shift;  // the values in its config.json
};

static const struct case_info k_cases[] = {
    {"kl", HSD_VAE_KL, 0.18215f, 0.0f},
    {"kl_fp16", HSD_VAE_KL, 1.5305f, 0.0609f},
    {"kl_noattn_bf16", HSD_VAE_KL, 0.18215f, 0.0f},
    {"tiny", HSD_VAE_TINY, 1.0f, 0.0f},
};

// ---- parity ------------------------------------------------------------------

struct probe_ctx {
    const struct hsd_safetensors *io;
    const char *label;
    int n_checked;
};

// Compares a backend NHWC map with the golden NCHW tensor of the same name.
static void on_probe(void *user, const char *name, const void *buf, int n, int h, int w, int c) {
    struct probe_ctx *p = user;
    const struct hsd_st_tensor *ref = hsd_safetensors_find(p->io, name);
    if (!ref) return;  // the oracle did not record this stage
    size_t count = (size_t)n * h * w * c;
    char what[128];
    snprintf(what, sizeof what, "%s %s", p->label, name);
    // Probes fire for every pass; only the square batch matches the golden.
    if ((size_t)ref->numel != count || ref->shape[2] != h) return;
    float *got = malloc(count * sizeof *got), *nchw = malloc(count * sizeof *nchw);
    float *want = malloc(count * sizeof *want);
    g_be->ops->download(g_be, got, buf, count);
    size_t hw = (size_t)h * w;
    for (int b = 0; b < n; b++)
        for (size_t q = 0; q < hw; q++)
            for (int k = 0; k < c; k++)
                nchw[((size_t)b * c + k) * hw + q] = got[((size_t)b * hw + q) * c + k];
    CHECK_OK(hsd_safetensors_read_f32(p->io, name, want, count));
    CHECK_CLOSE(what, nchw, want, count, TOL);
    p->n_checked++;
    free(got);
    free(nchw);
    free(want);
}

static float *read_all(const struct hsd_safetensors *io, const char *name,
                       const struct hsd_st_tensor **t) {
    *t = hsd_safetensors_find(io, name);
    CHECKF(*t != NULL && (*t)->ndim == 4, "golden file lacks 4-D '%s'", name);
    if (!*t || (*t)->ndim != 4) return NULL;
    float *x = malloc((size_t)(*t)->numel * sizeof *x);
    CHECK_OK(hsd_safetensors_read_f32(io, name, x, (size_t)(*t)->numel));
    return x;
}

// Runs one direction on golden input `in_name`, compares with `out_name`;
// returns the output (caller frees).
static float *run_and_check(struct hsd_vae *v, const struct hsd_safetensors *io,
                            const char *label, int encode, const char *in_name,
                            const char *out_name) {
    const struct hsd_st_tensor *ti, *to;
    float *in = read_all(io, in_name, &ti), *want = read_all(io, out_name, &to);
    float *got = NULL;
    if (in && want) {
        int n = (int)ti->shape[0], h = (int)ti->shape[2], w = (int)ti->shape[3];
        int s = hsd_vae_scale(v);
        int64_t want_c = encode ? hsd_vae_latent_channels(v) : 3;
        int64_t want_h = encode ? h / s : (int64_t)h * s, want_w = encode ? w / s : (int64_t)w * s;
        CHECKF(to->shape[0] == n && to->shape[1] == want_c && to->shape[2] == want_h &&
                   to->shape[3] == want_w,
               "%s: golden %s has an unexpected shape", label, out_name);
        got = malloc((size_t)to->numel * sizeof *got);
        enum hsd_status st = encode ? hsd_vae_encode(v, got, in, n, h, w)
                                    : hsd_vae_decode(v, got, in, n, h, w);
        CHECK_OK(st);
        char what[128];
        snprintf(what, sizeof what, "%s %s", label, out_name);
        if (!st) CHECK_CLOSE(what, got, want, (size_t)to->numel, TOL);
    }
    free(in);
    free(want);
    return got;
}

static void check_case(const struct case_info *ci, int from_vae_folder) {
    char dir[600], io_path[700], label[160];
    snprintf(dir, sizeof dir, "%s/vae/%s%s", HSD_TEST_DATA, ci->name, from_vae_folder ? "/vae" : "");
    snprintf(io_path, sizeof io_path, "%s/vae/%s/io.safetensors", HSD_TEST_DATA, ci->name);
    snprintf(label, sizeof label, "%s%s", ci->name, from_vae_folder ? " (vae folder)" : "");
    struct hsd_safetensors *io = NULL;
    CHECK_OK(hsd_safetensors_open(&io, io_path));
    struct hsd_vae *v = NULL;
    CHECK_OK(hsd_vae_load(&v, dir, g_be));
    if (!io || !v) {
        hsd_vae_free(v);
        hsd_safetensors_close(io);
        return;
    }
    CHECKF(hsd_vae_get_kind(v) == ci->kind, "%s: kind %d", label, (int)hsd_vae_get_kind(v));
    CHECKF(hsd_vae_latent_channels(v) == 4, "%s: latent channels %d", label,
           hsd_vae_latent_channels(v));
    CHECKF(hsd_vae_scale(v) == 8, "%s: scale %d", label, hsd_vae_scale(v));
    CHECKF(hsd_vae_scaling_factor(v) == ci->scaling && hsd_vae_shift_factor(v) == ci->shift,
           "%s: scaling_factor %g shift_factor %g, config has %g %g", label,
           (double)hsd_vae_scaling_factor(v), (double)hsd_vae_shift_factor(v),
           (double)ci->scaling, (double)ci->shift);

    struct probe_ctx pc = {io, label, 0};
    hsd_vae_set_probe(v, on_probe, &pc);
    float *img = run_and_check(v, io, label, 0, "latent", "image");
    free(run_and_check(v, io, label, 0, "latent_ns", "image_ns"));
    free(run_and_check(v, io, label, 1, "enc_image", "enc_latent"));
    free(run_and_check(v, io, label, 1, "enc_image_ns", "enc_latent_ns"));
    int want_probes = ci->kind == HSD_VAE_KL ? 3 : 1;
    CHECKF(pc.n_checked == want_probes, "%s: %d intermediates compared, expected %d", label,
           pc.n_checked, want_probes);
    hsd_vae_set_probe(v, NULL, NULL);

    // Back to a shape planned before (the arena is reused, no re-plan): the
    // same result bit for bit.
    const struct hsd_st_tensor *tl = hsd_safetensors_find(io, "latent");
    if (img && tl) {
        size_t cnt = (size_t)tl->shape[0] * 3 * 64 * 64;
        float *lat = malloc((size_t)tl->numel * sizeof *lat), *img2 = malloc(cnt * sizeof *img2);
        CHECK_OK(hsd_safetensors_read_f32(io, "latent", lat, (size_t)tl->numel));
        CHECK_OK(hsd_vae_decode(v, img2, lat, (int)tl->shape[0], 8, 8));
        CHECKF(!memcmp(img, img2, cnt * sizeof *img), "%s: second decode differs from the first",
               label);
        free(lat);
        free(img2);
    }
    free(img);
    hsd_vae_free(v);
    hsd_safetensors_close(io);
}

// ---- failure modes -----------------------------------------------------------

static char g_tmp[256];

// Writes `dir`/vae/{config.json, diffusion_pytorch_model.safetensors} from
// case `src`: config edited by `edit_cfg`, tensors renamed/dropped by
// `rename` (returns NULL to drop; writes into buf), plus optional extra.
typedef const char *(*rename_fn)(const char *name, char *buf, size_t cap);
static void write_variant(const char *dir, const char *src, void (*edit_cfg)(json_t *),
                          rename_fn rename, int add_extra) {
    char p[700], q[700];
    snprintf(p, sizeof p, "%s/vae", dir);
    CHECK(mkdir(dir, 0755) == 0 && mkdir(p, 0755) == 0);
    snprintf(p, sizeof p, "%s/vae/%s/vae/config.json", HSD_TEST_DATA, src);
    json_error_t err;
    json_t *cfg = json_load_file(p, 0, &err);
    CHECK(cfg != NULL);
    if (!cfg) return;
    if (edit_cfg) edit_cfg(cfg);
    snprintf(q, sizeof q, "%s/vae/config.json", dir);
    CHECK(json_dump_file(cfg, q, JSON_INDENT(2)) == 0);
    json_decref(cfg);

    snprintf(p, sizeof p, "%s/vae/%s/vae/diffusion_pytorch_model.safetensors", HSD_TEST_DATA, src);
    struct hsd_safetensors *st = NULL;
    CHECK_OK(hsd_safetensors_open(&st, p));
    struct hsd_st_writer *w = NULL;
    CHECK_OK(hsd_st_writer_create(&w));
    if (!st || !w) return;
    static char names[512][160];
    size_t n = hsd_safetensors_count(st);
    CHECK(n < 512);
    for (size_t i = 0; i < n && i < 512; i++) {
        const struct hsd_st_tensor *t = hsd_safetensors_at(st, i);
        const char *nm = rename ? rename(t->name, names[i], sizeof names[i]) : t->name;
        if (nm) CHECK_OK(hsd_st_writer_add(w, nm, t->dtype, t->ndim, t->shape, t->data));
    }
    static const float extra[2] = {1, 2};
    if (add_extra) CHECK_OK(hsd_st_writer_add(w, "decoder.extra.weight", HSD_F32, 1,
                                              (int64_t[]){2}, extra));
    snprintf(q, sizeof q, "%s/vae/diffusion_pytorch_model.safetensors", dir);
    CHECK_OK(hsd_st_writer_write(w, q));
    hsd_st_writer_free(w);
    hsd_safetensors_close(st);
}

// Loading `dir` must fail with `code` and a message holding every needle.
static void expect_fail(const char *what, const char *dir, enum hsd_status code,
                        const char *needle1, const char *needle2) {
    struct hsd_vae *v = NULL;
    enum hsd_status s = hsd_vae_load(&v, dir, g_be);
    const char *msg = hsd_last_error();
    CHECKF(s == code, "%s: got %s (%s), want %s", what, hsd_status_str(s), msg,
           hsd_status_str(code));
    CHECKF(v == NULL, "%s: model returned on failure", what);
    CHECKF(needle1 == NULL || strstr(msg, needle1), "%s: message lacks '%s': %s", what, needle1,
           msg);
    CHECKF(needle2 == NULL || strstr(msg, needle2), "%s: message lacks '%s': %s", what, needle2,
           msg);
    printf("%-28s -> %s: %s\n", what, hsd_status_str(s), msg);
    hsd_vae_free(v);
    hsd_clear_error();
}

#define MISSING "decoder.mid_block.attentions.0.to_k.bias"
static const char *drop_one(const char *name, char *buf, size_t cap) {
    (void)buf, (void)cap;
    return strcmp(name, MISSING) ? name : NULL;
}

// The pre-0.14 attention names (query/key/value/proj_attn) diffusers still
// converts on load.
static const char *old_attn_names(const char *name, char *buf, size_t cap) {
    static const char *const map[4][2] = {
        {".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."},
        {".to_out.0.", ".proj_attn."}};
    for (int i = 0; i < 4; i++) {
        const char *at = strstr(name, map[i][0]);
        if (at) {
            snprintf(buf, cap, "%.*s%s%s", (int)(at - name), name, map[i][1],
                     at + strlen(map[i][0]));
            return buf;
        }
    }
    return name;
}

static void cfg_groups_3(json_t *c) { json_object_set_new(c, "norm_num_groups", json_integer(3)); }
static void cfg_latent_8(json_t *c) { json_object_set_new(c, "latent_channels", json_integer(8)); }
static void cfg_act_gelu(json_t *c) { json_object_set_new(c, "act_fn", json_string("gelu")); }
static void cfg_class(json_t *c) { json_object_set_new(c, "_class_name", json_string("VQModel")); }
static void cfg_latents_mean(json_t *c) {
    json_t *a = json_array();
    for (int i = 0; i < 4; i++) json_array_append_new(a, json_real(0.1));
    json_object_set_new(c, "latents_mean", a);
}
static void cfg_down_type(json_t *c) {
    json_array_set_new(json_object_get(c, "down_block_types"), 2,
                       json_string("AttnDownEncoderBlock2D"));
}
static void cfg_no_attn(json_t *c) {
    json_object_set_new(c, "mid_block_add_attention", json_false());
}
static void cfg_upsample_bilinear(json_t *c) {
    json_object_set_new(c, "upsample_fn", json_string("bilinear"));
}
static void cfg_tiny_widths(json_t *c) {
    json_array_set_new(json_object_get(c, "decoder_block_out_channels"), 1, json_integer(16));
}

static void test_failures(void) {
    char d[400];
    // Missing tensor: file and tensor named.
    snprintf(d, sizeof d, "%s/missing", g_tmp);
    write_variant(d, "kl", NULL, drop_one, 0);
    expect_fail("missing tensor", d, HSD_ERR_NOT_FOUND, MISSING,
                "/missing/vae/diffusion_pytorch_model.safetensors");
    // A tensor the config does not explain.
    snprintf(d, sizeof d, "%s/extra", g_tmp);
    write_variant(d, "kl", NULL, NULL, 1);
    expect_fail("extra tensor", d, HSD_ERR_FORMAT, "decoder.extra.weight", "not used by");
    // Config says no attention, the file has it: unused tensors.
    snprintf(d, sizeof d, "%s/noattn", g_tmp);
    write_variant(d, "kl", cfg_no_attn, NULL, 0);
    expect_fail("attention not in config", d, HSD_ERR_FORMAT, "mid_block.attentions.0",
                "config and weights disagree");
    // Shape vs config.
    snprintf(d, sizeof d, "%s/latent8", g_tmp);
    write_variant(d, "kl", cfg_latent_8, NULL, 0);
    expect_fail("latent_channels vs shapes", d, HSD_ERR_SHAPE, "encoder.conv_out.weight",
                "contradicts the config");
    // Bad configs name the file and the key.
    snprintf(d, sizeof d, "%s/groups3", g_tmp);
    write_variant(d, "kl", cfg_groups_3, NULL, 0);
    expect_fail("groups do not divide", d, HSD_ERR_FORMAT, "config.json", "norm_num_groups");
    snprintf(d, sizeof d, "%s/gelu", g_tmp);
    write_variant(d, "kl", cfg_act_gelu, NULL, 0);
    expect_fail("act_fn gelu", d, HSD_ERR_UNSUPPORTED, "config.json", "'act_fn'");
    snprintf(d, sizeof d, "%s/class", g_tmp);
    write_variant(d, "kl", cfg_class, NULL, 0);
    expect_fail("unknown class", d, HSD_ERR_UNSUPPORTED, "config.json", "VQModel");
    snprintf(d, sizeof d, "%s/lmean", g_tmp);
    write_variant(d, "kl", cfg_latents_mean, NULL, 0);
    expect_fail("latents_mean", d, HSD_ERR_UNSUPPORTED, "config.json", "'latents_mean'");
    snprintf(d, sizeof d, "%s/downtype", g_tmp);
    write_variant(d, "kl", cfg_down_type, NULL, 0);
    expect_fail("down block type", d, HSD_ERR_UNSUPPORTED, "'down_block_types'[2]",
                "AttnDownEncoderBlock2D");
    snprintf(d, sizeof d, "%s/bilinear", g_tmp);
    write_variant(d, "tiny", cfg_upsample_bilinear, NULL, 0);
    expect_fail("tiny upsample_fn", d, HSD_ERR_UNSUPPORTED, "config.json", "'upsample_fn'");
    snprintf(d, sizeof d, "%s/tinywidths", g_tmp);
    write_variant(d, "tiny", cfg_tiny_widths, NULL, 0);
    expect_fail("tiny unequal widths", d, HSD_ERR_UNSUPPORTED, "decoder_block_out_channels",
                "stage 1");
    snprintf(d, sizeof d, "%s/nothing", g_tmp);
    expect_fail("no folder", d, HSD_ERR_NOT_FOUND, "/nothing", NULL);

    // Old attention names load and decode exactly like the new ones.
    snprintf(d, sizeof d, "%s/oldnames", g_tmp);
    write_variant(d, "kl", NULL, old_attn_names, 0);
    char orig[600];
    snprintf(orig, sizeof orig, "%s/vae/kl", HSD_TEST_DATA);
    struct hsd_vae *a = NULL, *b = NULL;
    CHECK_OK(hsd_vae_load(&a, orig, g_be));
    CHECK_OK(hsd_vae_load(&b, d, g_be));
    if (a && b) {
        float lat[4 * 8 * 8], ia[3 * 64 * 64], ib[3 * 64 * 64];
        hsd_test_fill_uniform(lat, HSD_ARRAY_LEN(lat), 7, 2.0f);
        CHECK_OK(hsd_vae_decode(a, ia, lat, 1, 8, 8));
        CHECK_OK(hsd_vae_decode(b, ib, lat, 1, 8, 8));
        CHECKF(!memcmp(ia, ib, sizeof ia), "old attention names decode differently");
        // Bad call arguments fail that call alone.
        enum hsd_status s = hsd_vae_encode(a, lat, ia, 1, 60, 64);
        CHECKF(s == HSD_ERR_INVALID_ARG && strstr(hsd_last_error(), "multiple of 8"),
               "encode of 60x64 -> %s: %s", hsd_status_str(s), hsd_last_error());
        hsd_clear_error();
        s = hsd_vae_decode(a, ia, lat, 0, 8, 8);
        CHECKF(s == HSD_ERR_INVALID_ARG, "decode n=0 -> %s", hsd_status_str(s));
        hsd_clear_error();
        CHECK_OK(hsd_vae_decode(a, ib, lat, 1, 8, 8));  // still usable
        CHECKF(!memcmp(ia, ib, sizeof ia), "decode after failed calls differs");
    }
    hsd_vae_free(a);
    hsd_vae_free(b);
}

// hsd_vae_create: the same config as text, random weights (the shape
// queries of test_cuda_model_shapes build the SD VAE this way). The
// config's facts come through, a decode runs and is finite; bad text
// fails naming the label.
static void test_create_from_config(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/vae/kl/vae/config.json", HSD_TEST_DATA);
    FILE *f = fopen(path, "rb");
    CHECKF(f != NULL, "cannot open %s", path);
    if (!f) return;
    char text[4096];
    const size_t len = fread(text, 1, sizeof text, f);
    fclose(f);
    CHECK(len > 0 && len < sizeof text);
    struct hsd_vae *v = NULL;
    CHECK_OK(hsd_vae_create(&v, text, len, "kl config text", g_be));
    if (v) {
        CHECK(hsd_vae_get_kind(v) == HSD_VAE_KL && hsd_vae_latent_channels(v) == 4 &&
              hsd_vae_scale(v) == 8 && hsd_vae_scaling_factor(v) == 0.18215f);
        float lat[4 * 2 * 2], img[3 * 16 * 16];
        hsd_test_fill_uniform(lat, 16, 7, 1.0f);
        CHECK_OK(hsd_vae_decode(v, img, lat, 1, 2, 2));
        size_t bad = 0;
        for (size_t i = 0; i < sizeof img / sizeof *img; i++) bad += !isfinite(img[i]);
        CHECKF(bad == 0, "random-weight decode: %zu non-finite values", bad);
        hsd_vae_free(v);
    }
    v = NULL;
    CHECK(hsd_vae_create(&v, "{\"_class_name\": ", 16, "broken text", g_be) == HSD_ERR_FORMAT &&
          !v && strstr(hsd_last_error(), "broken text"));
    static const char other[] = "{\"_class_name\": \"VQModel\"}";
    CHECK(hsd_vae_create(&v, other, sizeof other - 1, "vq", g_be) == HSD_ERR_UNSUPPORTED && !v);
    hsd_clear_error();
}

int main(void) {
    CHECK_OK(hsd_backend_cpu_create(&g_be, 0));
    if (!g_be) return hsd_test_finish();
    for (size_t i = 0; i < HSD_ARRAY_LEN(k_cases); i++) check_case(&k_cases[i], 0);
    check_case(&k_cases[3], 1);  // the vae folder itself, not the pipeline root
    test_create_from_config();

    snprintf(g_tmp, sizeof g_tmp, "/tmp/hsd_test_vae_XXXXXX");
    if (mkdtemp(g_tmp)) {
        test_failures();
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
        CHECK(system(cmd) == 0);
    } else {
        CHECKF(0, "mkdtemp failed");
    }
    hsd_backend_destroy(g_be);
    return hsd_test_finish();
}
