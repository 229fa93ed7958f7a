// --prompt-style a1111 against tests/data/prompt (tests/oracle/
// make_prompt_cases.py: a reference written from A1111's documented rules,
// with transformers' tokenizer and text encoder and diffusers' pipeline):
// - emphasis parsing: pieces and weights (nesting, escapes, BREAK, unclosed
//   brackets) exactly; malformed weights fail with HSD_ERR_INVALID_ARG;
// - chunking: token ids and weights per chunk exactly (75/76, 150/151,
//   comma backtrack, BREAK, emphasis across a boundary, empty prompt);
// - embeddings per chunk with the mean-preserving rescale: max|err| <= 1e-4
//   x max|ref|, the text encoder's parity bound (fp32, different summation
//   order; the rescale adds one float32 ratio);
// - a 198-token prompt end to end (3 chunks, context 231): latents within
//   1e-4 x max|ref| and 8-bit pixels within 1/255 of diffusers fed the
//   reference's prompt_embeds, the bounds of test_pipeline;
// - the default style is unchanged: 77 tokens, and an A1111 prompt without
//   emphasis that fits one chunk encodes exactly as the default.
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "pipeline/pipeline.h"
#include "text/prompt_chunks.h"
#include "text/prompt_emphasis.h"
#include "testutil.h"

#define TOL 1e-4

static const char *g_model = HSD_TEST_DATA "/pipeline/large";

static void check_parse(json_t *cases) {
    size_t i;
    json_t *c;
    int bad = 0;
    json_array_foreach(json_object_get(cases, "parse"), i, c) {
        const char *prompt = json_string_value(json_object_get(c, "prompt"));
        json_t *pieces = json_object_get(c, "pieces");
        struct hsd_emphasis e;
        CHECK_OK(hsd_emphasis_parse(&e, prompt, strlen(prompt)));
        int ok = e.n == (int)json_array_size(pieces);
        for (int k = 0; ok && k < e.n; k++) {
            json_t *p = json_array_get(pieces, (size_t)k);
            const char *t = json_string_value(json_object_get(p, "text"));
            ok = !strcmp(e.pieces[k].text, t) && e.pieces[k].len == strlen(t) &&
                 e.pieces[k].weight == json_number_value(json_object_get(p, "weight")) &&
                 e.pieces[k].is_break == json_is_true(json_object_get(p, "break"));
        }
        CHECKF(ok, "emphasis of '%s': %d pieces, reference %zu (or a piece differs)", prompt,
               e.n, json_array_size(pieces));
        bad += !ok;
        hsd_emphasis_free(&e);
    }
    printf("emphasis: %zu prompts parsed, %d differ from the reference\n",
           json_array_size(json_object_get(cases, "parse")), bad);
    json_array_foreach(json_object_get(cases, "errors"), i, c) {
        const char *prompt = json_string_value(c);
        struct hsd_emphasis e;
        enum hsd_status s = hsd_emphasis_parse(&e, prompt, strlen(prompt));
        CHECKF(s == HSD_ERR_INVALID_ARG && strstr(hsd_last_error(), "malformed weight") &&
                   strstr(hsd_last_error(), "at byte"),
               "'%s' -> %s: %s (want a malformed-weight error)", prompt, hsd_status_str(s),
               hsd_last_error());
        printf("error case %-12s -> %s\n", prompt, hsd_last_error());
        if (!s) hsd_emphasis_free(&e);
        hsd_clear_error();
    }
}

static void check_chunks(json_t *cases, const struct hsd_safetensors *g,
                         struct hsd_pipeline *p) {
    struct hsd_clip_tokenizer *tok;
    CHECK_OK(hsd_clip_tokenizer_load(&tok, g_model));
    size_t i;
    json_t *c;
    const int C = hsd_pipeline_text_width(p);
    json_array_foreach(json_object_get(cases, "chunks"), i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *prompt = json_string_value(json_object_get(c, "prompt"));
        int n_ref = (int)json_integer_value(json_object_get(c, "n_chunks"));
        char key[64];
        struct hsd_prompt_chunks ch;
        CHECK_OK(hsd_prompt_chunks_a1111(&ch, tok, prompt, strlen(prompt)));
        size_t cells = (size_t)n_ref * HSD_PROMPT_CHUNK_LEN;
        snprintf(key, sizeof key, "%s.ids", name);
        const struct hsd_st_tensor *t = hsd_safetensors_find(g, key);
        int ids_ok = t && ch.n == n_ref && t->numel == (int64_t)cells &&
                     !memcmp(t->data, ch.ids, cells * sizeof(int32_t));
        float *w = malloc(cells * sizeof *w);
        snprintf(key, sizeof key, "%s.weights", name);
        int w_ok = ch.n == n_ref && !hsd_safetensors_read_f32(g, key, w, cells) &&
                   !memcmp(w, ch.weights, cells * sizeof *w);
        printf("%-12s %d chunk(s) (reference %d): ids %s, weights %s\n", name, ch.n, n_ref,
               ids_ok ? "equal" : "DIFFER", w_ok ? "equal" : "DIFFER");
        CHECKF(ids_ok && w_ok, "%s: chunks differ from the reference", name);
        // Embeddings with emphasis and rescale.
        float *emb = NULL;
        int n_ctx = 0;
        CHECK_OK(hsd_pipeline_encode_prompts(p, &emb, &n_ctx, &prompt, 1, HSD_PROMPT_A1111, 0));
        float *ref = malloc(cells * C * sizeof *ref);
        snprintf(key, sizeof key, "%s.emb", name);
        CHECK_OK(hsd_safetensors_read_f32(g, key, ref, cells * C));
        CHECKF(n_ctx == n_ref * HSD_PROMPT_CHUNK_LEN, "%s: context %d, want %d", name, n_ctx,
               n_ref * HSD_PROMPT_CHUNK_LEN);
        if (emb && n_ctx == n_ref * HSD_PROMPT_CHUNK_LEN)
            CHECK_CLOSE(name, emb, ref, cells * C, TOL);
        free(emb);
        free(ref);
        free(w);
        hsd_prompt_chunks_free(&ch);
    }
    // Errors reach the chunker and the pipeline's validation.
    struct hsd_prompt_chunks ch;
    CHECK_INVALID(hsd_prompt_chunks_a1111(&ch, tok, "(a:1.2.3)", 9));
    char *longp = malloc(2 * 601 + 1);
    for (int k = 0; k < 601; k++) memcpy(longp + 2 * k, "a ", 2);
    longp[2 * 601] = '\0';
    CHECK_INVALID(hsd_prompt_chunks_a1111(&ch, tok, longp, strlen(longp)));
    longp[2 * 600] = '\0';  // exactly 8 x 75 tokens: allowed
    CHECK_OK(hsd_prompt_chunks_a1111(&ch, tok, longp, strlen(longp)));
    CHECK(ch.n == HSD_PROMPT_MAX_CHUNKS);
    hsd_prompt_chunks_free(&ch);
    free(longp);
    hsd_clip_tokenizer_free(tok);
}

// Default style: 77 tokens whatever the prompt; a plain one-chunk prompt in
// A1111 style is the same encoding.
static void check_default_unchanged(struct hsd_pipeline *p) {
    const int C = hsd_pipeline_text_width(p);
    const char *texts[2] = {"blurry", "a red bicycle and the red b"};
    float *a = NULL, *b = NULL;
    int na = 0, nb = 0;
    CHECK_OK(hsd_pipeline_encode_prompts(p, &a, &na, texts, 2, HSD_PROMPT_DIFFUSERS, 0));
    CHECK_OK(hsd_pipeline_encode_prompts(p, &b, &nb, texts, 2, HSD_PROMPT_A1111, 0));
    int same = a && b && na == HSD_TEXT_LEN && nb == HSD_TEXT_LEN &&
               !memcmp(a, b, (size_t)2 * HSD_TEXT_LEN * C * sizeof *a);
    printf("plain one-chunk prompt: a1111 encoding == diffusers encoding: %s\n",
           same ? "yes" : "NO");
    CHECK(same);
    free(a);
    free(b);
    struct hsd_gen_request r = {.prompt = "(a:1.2.3)", .guidance_scale = 7.5f, .steps = 2,
                                .sampler = HSD_SAMPLER_EULER, .width = 64, .height = 64,
                                .batch_count = 1, .split = -1};
    CHECK_OK(hsd_pipeline_validate(p, &r));  // literal text in diffusers style
    r.prompt_style = HSD_PROMPT_A1111;
    CHECK_INVALID(hsd_pipeline_validate(p, &r));
    r.prompt = "x", r.negative_prompt = "[b:1..2)";
    CHECK_OK(hsd_pipeline_validate(p, &r));  // ':' in square brackets is text
    r.negative_prompt = "(b:1..2)";
    CHECK_INVALID(hsd_pipeline_validate(p, &r));
}

static void check_long_prompt(json_t *cases, const struct hsd_safetensors *g,
                              struct hsd_pipeline *p) {
    json_t *c = json_object_get(cases, "pipeline");
    struct hsd_gen_request r = {
        .prompt = json_string_value(json_object_get(c, "prompt")),
        .negative_prompt = json_string_value(json_object_get(c, "negative")),
        .guidance_scale = (float)json_number_value(json_object_get(c, "cfg")),
        .steps = (int)json_integer_value(json_object_get(c, "steps")),
        .split = -1,
        .width = (int)json_integer_value(json_object_get(c, "width")),
        .height = (int)json_integer_value(json_object_get(c, "height")),
        .seed = (uint64_t)json_integer_value(json_object_get(c, "seed")),
        .batch_count = 1,
        .prompt_style = HSD_PROMPT_A1111};
    CHECK_OK(hsd_sampler_parse(json_string_value(json_object_get(c, "sampler")), &r.sampler));
    int chunks = 0;
    CHECK_OK(hsd_pipeline_check_prompt(p, r.prompt, r.prompt_style, &chunks));
    CHECK(chunks == 3);
    const size_t lat = (size_t)4 * (r.height / 8) * (r.width / 8), px = (size_t)3 * r.height * r.width;
    float *latent = malloc(lat * sizeof *latent), *ref = malloc(lat * sizeof *ref);
    uint8_t *rgb = malloc(px);
    CHECK_OK(hsd_pipeline_generate(p, &r, rgb, NULL, latent, NULL, NULL, NULL));
    CHECK_OK(hsd_safetensors_read_f32(g, "long200.latent", ref, lat));
    CHECK_CLOSE("long200 latent", latent, ref, lat, TOL);
    const struct hsd_st_tensor *t = hsd_safetensors_find(g, "long200.rgb");
    int worst = 256;
    if (t && t->numel == (int64_t)px) {
        worst = 0;
        for (size_t i = 0; i < px; i++) {
            int d = abs((int)rgb[i] - (int)((const uint8_t *)t->data)[i]);
            if (d > worst) worst = d;
        }
    }
    printf("long200 (%d tokens, %d chunks): 8-bit image within %d/255 of diffusers\n",
           (int)json_integer_value(json_object_get(c, "n_tokens")), chunks, worst);
    CHECKF(worst <= 1, "long200: 8-bit image differs by %d/255", worst);
    free(latent);
    free(ref);
    free(rgb);
}

int main(void) {
    json_error_t err;
    json_t *cases = json_load_file(HSD_TEST_DATA "/prompt/cases.json", 0, &err);
    CHECKF(cases != NULL, "cases.json: %s", err.text);
    struct hsd_safetensors *g = NULL;
    CHECK_OK(hsd_safetensors_open(&g, HSD_TEST_DATA "/prompt/goldens.safetensors"));
    struct hsd_pipeline_config pc = {.model = g_model, .threads = 2};
    struct hsd_pipeline *p = NULL;
    CHECK_OK(hsd_pipeline_load(&p, &pc));
    if (cases && g && p) {
        check_parse(cases);
        check_chunks(cases, g, p);
        check_default_unchanged(p);
        check_long_prompt(cases, g, p);
    }
    hsd_pipeline_free(p);
    hsd_safetensors_close(g);
    json_decref(cases);
    return hsd_test_finish();
}
