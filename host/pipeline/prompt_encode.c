// Prompt -> text embeddings in the request's prompt style: diffusers'
// encode_prompt (77 tokens, truncated) or A1111's long prompts with emphasis
// (text/prompt_chunks.h): every chunk through the text encoder on its own
// (one batch of all chunks: rows never mix), then A1111's "Original"
// emphasis per chunk (modules/sd_hijack_clip.py process_tokens):
//   z' = z * weight[token];  z' *= mean(z) / mean(z')
// means over the chunk's whole [77, C] block, so emphasis shifts the
// tokens against each other without changing the block's mean.
#include <stdlib.h>
#include <string.h>

#include "pipeline/pipeline_internal.h"
#include "text/prompt_chunks.h"

static void apply_emphasis(float *z, const float *weights, int width) {
    size_t n = (size_t)HSD_PROMPT_CHUNK_LEN * width;
    double before = 0, after = 0;
    for (size_t i = 0; i < n; i++) before += z[i];
    for (int t = 0; t < HSD_PROMPT_CHUNK_LEN; t++)
        for (int c = 0; c < width; c++) z[(size_t)t * width + c] *= weights[t];
    for (size_t i = 0; i < n; i++) after += z[i];
    // torch: original_mean / new_mean in float32, then one multiply.
    float k = (float)(before / (double)n) / (float)(after / (double)n);
    for (size_t i = 0; i < n; i++) z[i] *= k;
}

static enum hsd_status encode_a1111(struct hsd_pipeline *p, float **out, int *n_ctx,
                                    const char *const *prompts, int n_prompts, int clip_skip) {
    struct hsd_prompt_chunks ch[2] = {{0}}, empty = {0};
    enum hsd_status s = HSD_OK;
    if (n_prompts < 1 || n_prompts > 2)
        return hsd_fail(HSD_ERR_INVALID_ARG, "encode: %d prompts, expected 1 or 2", n_prompts);
    int n = 1;
    for (int i = 0; i < n_prompts && !s; i++) {
        s = hsd_prompt_chunks_a1111(&ch[i], p->tok, prompts[i], strlen(prompts[i]));
        if (!s && ch[i].n > n) n = ch[i].n;
    }
    // A1111 pads the shorter of prompt and negative with the empty prompt's
    // encoding (one chunk of BOS, EOS, padding, all of weight 1).
    if (!s) s = hsd_prompt_chunks_a1111(&empty, p->tok, "", 0);
    const size_t cl = HSD_PROMPT_CHUNK_LEN, rows = (size_t)n_prompts * n;
    int32_t *ids = s ? NULL : malloc(rows * cl * sizeof *ids);
    float *w = s ? NULL : malloc(rows * cl * sizeof *w);
    float *z = s ? NULL : malloc(rows * cl * p->ctx_dim * sizeof *z);
    if (!s && (!ids || !w || !z)) s = hsd_fail(HSD_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n_prompts && !s; i++)
        for (int k = 0; k < n; k++) {
            const struct hsd_prompt_chunks *src = k < ch[i].n ? &ch[i] : &empty;
            int from = k < ch[i].n ? k : 0;
            size_t at = ((size_t)i * n + k) * cl;
            memcpy(ids + at, src->ids + (size_t)from * cl, cl * sizeof *ids);
            memcpy(w + at, src->weights + (size_t)from * cl, cl * sizeof *w);
        }
    if (!s) s = hsd_clip_text_forward(p->text, z, ids, (int)rows, (int)cl, clip_skip);
    for (size_t r = 0; r < rows && !s; r++)
        apply_emphasis(z + r * cl * p->ctx_dim, w + r * cl, p->ctx_dim);
    for (int i = 0; i < 2; i++) hsd_prompt_chunks_free(&ch[i]);
    hsd_prompt_chunks_free(&empty);
    free(ids);
    free(w);
    if (s) {
        free(z);
        return s;
    }
    *out = z;
    *n_ctx = n * HSD_PROMPT_CHUNK_LEN;
    return HSD_OK;
}

enum hsd_status hsd_pipeline_encode_prompts(struct hsd_pipeline *p, float **out, int *n_ctx,
                                            const char *const *prompts, int n_prompts,
                                            enum hsd_prompt_style style, int clip_skip) {
    *out = NULL;
    *n_ctx = 0;
    if (style == HSD_PROMPT_A1111) return encode_a1111(p, out, n_ctx, prompts, n_prompts, clip_skip);
    float *z = malloc((size_t)n_prompts * HSD_TEXT_LEN * p->ctx_dim * sizeof *z);
    if (!z) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    enum hsd_status s = hsd_pipeline_encode_text(p, z, prompts, n_prompts, clip_skip);
    if (s) {
        free(z);
        return s;
    }
    *out = z;
    *n_ctx = HSD_TEXT_LEN;
    return HSD_OK;
}

enum hsd_status hsd_pipeline_check_prompt(const struct hsd_pipeline *p, const char *text,
                                          enum hsd_prompt_style style, int *n_chunks) {
    if (style == HSD_PROMPT_A1111) {
        struct hsd_prompt_chunks c;
        enum hsd_status s = hsd_prompt_chunks_a1111(&c, p->tok, text, strlen(text));
        if (!s && n_chunks) *n_chunks = c.n;
        hsd_prompt_chunks_free(&c);
        return s;
    }
    int32_t ids[HSD_TEXT_LEN];
    int used;
    if (n_chunks) *n_chunks = 1;
    return hsd_clip_tokenize(p->tok, text, strlen(text), ids, HSD_TEXT_LEN, &used);
}

static const char *const k_style_names[HSD_PROMPT_STYLE_COUNT] = {"diffusers", "a1111"};

const char *hsd_prompt_style_name(enum hsd_prompt_style s) {
    return (unsigned)s < HSD_PROMPT_STYLE_COUNT ? k_style_names[s] : "?";
}

enum hsd_status hsd_prompt_style_parse(const char *name, enum hsd_prompt_style *out) {
    for (int i = 0; i < HSD_PROMPT_STYLE_COUNT; i++)
        if (name && !strcmp(name, k_style_names[i])) {
            *out = (enum hsd_prompt_style)i;
            return HSD_OK;
        }
    return hsd_fail(HSD_ERR_INVALID_ARG, "unknown prompt style '%s' (diffusers, a1111)",
                    name ? name : "");
}
