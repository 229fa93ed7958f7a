// LoRAs of a pipeline (hsd_pipeline_config.loras): opened once at load,
// attached to every U-Net and the text encoder, chosen per request by the
// scales each request (or denoise item) carries. models/lora.h applies them
// unfused, so the rows of one U-Net call may each use a different set.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/lora.h"
#include "pipeline/pipeline_internal.h"
#include "text/prompt_chunks.h"

void hsd_pipeline_lora_free(struct hsd_pipeline *p) {
    for (int i = 0; i < p->n_loras; i++) hsd_lora_file_free(p->loras[i]);
    p->n_loras = 0;
    free(p->lora_rows);
    p->lora_rows = NULL;
    p->lora_rows_cap = 0;
}

int hsd_pipeline_lora_count(const struct hsd_pipeline *p) { return p->n_loras; }

int hsd_pipeline_lora_index(const struct hsd_pipeline *p, const char *name) {
    for (int i = 0; i < p->n_loras; i++)
        if (!strcmp(p->lora_names[i], name)) return i;
    return -1;
}

const char *hsd_pipeline_lora_name(const struct hsd_pipeline *p, int i) {
    return i >= 0 && i < p->n_loras ? p->lora_names[i] : NULL;
}

// Every model gets every file, in order, so adapter i is LoRA i everywhere
// (a file without layers for a model attaches as an empty adapter).
static enum hsd_status attach(struct hsd_pipeline *p, const struct hsd_lora_file *f, int i) {
    int a;
    enum hsd_status s = hsd_unet_lora_attach(p->large, f, "U-Net", &a);
    if (!s && p->edge) s = hsd_unet_lora_attach(p->edge, f, "edge U-Net", &a);
    for (int k = 0; !s && k < p->n_more; k++) s = hsd_unet_lora_attach(p->more[k], f, "U-Net", &a);
    if (!s) s = hsd_clip_text_lora_attach(p->text, f, HSD_LORA_TE1, &a);
    // SDXL: lora_te2_ / text_encoder_2. layers go to its second encoder
    // (diffusers StableDiffusionXLLoraLoaderMixin: text_encoder_2).
    if (!s && p->text2) s = hsd_clip_text_lora_attach(p->text2, f, HSD_LORA_TE2, &a);
    else if (!s && f->n_part[HSD_LORA_TE2])
        s = hsd_fail(HSD_ERR_SHAPE,
                     "%s: has layers for a second text encoder (lora_te2_ / text_encoder_2.), "
                     "which this model does not have (only SDXL has one)",
                     f->path);
    if (!s && a != i) s = hsd_fail(HSD_ERR_INTERNAL, "LoRA adapter indices out of step");
    return s;
}

enum hsd_status hsd_pipeline_lora_load(struct hsd_pipeline *p,
                                       const struct hsd_pipeline_config *c) {
    if (c->n_loras < 0 || c->n_loras > HSD_PIPELINE_MAX_LORAS)
        return hsd_fail(HSD_ERR_INVALID_ARG, "at most %d LoRAs (got %d)",
                        HSD_PIPELINE_MAX_LORAS, c->n_loras);
    for (int i = 0; i < c->n_loras; i++) {
        const struct hsd_lora_spec *ls = &c->loras[i];
        if (!ls->name || !*ls->name || strlen(ls->name) >= sizeof p->lora_names[0])
            return hsd_fail(HSD_ERR_INVALID_ARG, "LoRA %d: a name of 1..63 bytes is needed", i);
        if (hsd_pipeline_lora_index(p, ls->name) >= 0)
            return hsd_fail(HSD_ERR_INVALID_ARG, "LoRA name '%s' is given twice", ls->name);
        enum hsd_status s = hsd_lora_file_open(&p->loras[i], ls->path);
        if (s) return s;
        snprintf(p->lora_names[i], sizeof p->lora_names[i], "%s", ls->name);
        p->n_loras = i + 1;
        if ((s = attach(p, p->loras[i], i))) return s;
    }
    return HSD_OK;
}

static enum hsd_status grow(struct hsd_pipeline *p, int rows) {
    size_t need = (size_t)rows * (size_t)p->n_loras;
    if (need <= p->lora_rows_cap) return HSD_OK;
    float *r = realloc(p->lora_rows, need * sizeof *r);
    if (!r) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    p->lora_rows = r;
    p->lora_rows_cap = need;
    return HSD_OK;
}

static void set_row(struct hsd_pipeline *p, int row, const float *scales) {
    float *dst = p->lora_rows + (size_t)row * p->n_loras;
    if (scales) memcpy(dst, scales, (size_t)p->n_loras * sizeof *dst);
    else memset(dst, 0, (size_t)p->n_loras * sizeof *dst);
}

enum hsd_status hsd_pipeline_lora_rows(struct hsd_pipeline *p, struct hsd_unet *unet,
                                       const struct hsd_denoise_item *items,
                                       const struct hsd_step_row *rows, int n, int padded) {
    if (!p->n_loras) return HSD_OK;
    enum hsd_status s = grow(p, padded);
    if (s) return s;
    for (int r = 0; r < padded; r++) set_row(p, r, NULL);
    for (int i = 0; i < n; i++) {
        set_row(p, rows[i].cond_row, items[i].lora_scales);
        if (rows[i].uncond_row >= 0) set_row(p, rows[i].uncond_row, items[i].lora_scales);
    }
    return hsd_unet_lora_select(unet, p->lora_rows, padded);
}

// Selects row r's text-encoder LoRAs (row_scales[r], NULL: none); 1 if any.
static enum hsd_status select_text(struct hsd_pipeline *p, const float *const *row_scales,
                                   int n) {
    if (!p->n_loras || !row_scales) return HSD_OK;
    enum hsd_status s = grow(p, n);
    for (int r = 0; r < n && !s; r++) set_row(p, r, row_scales[r]);
    return s ? s : hsd_clip_text_lora_select(p->text, p->lora_rows, n);
}

enum hsd_status hsd_pipeline_text_lora_select(struct hsd_pipeline *p, const float *scales,
                                               int rows) {
    if (!p->n_loras) return HSD_OK;
    if (!scales) {
        hsd_clip_text_lora_select(p->text, NULL, 0);
        if (p->text2) hsd_clip_text_lora_select(p->text2, NULL, 0);
        return HSD_OK;
    }
    enum hsd_status s = grow(p, rows);
    for (int r = 0; r < rows && !s; r++) set_row(p, r, scales);
    if (!s) s = hsd_clip_text_lora_select(p->text, p->lora_rows, rows);
    if (!s && p->text2) s = hsd_clip_text_lora_select(p->text2, p->lora_rows, rows);
    return s;
}

enum hsd_status hsd_pipeline_encode_text_lora(struct hsd_pipeline *p, float *out,
                                              const char *const *prompts, int n_prompts,
                                              int clip_skip, const float *scales) {
    const float *rows[2] = {scales, scales};
    enum hsd_status s = n_prompts <= 2 ? select_text(p, rows, n_prompts)
                                       : hsd_fail(HSD_ERR_INVALID_ARG, "at most 2 prompts");
    if (!s) s = hsd_pipeline_encode_text(p, out, prompts, n_prompts, clip_skip);
    hsd_clip_text_lora_select(p->text, NULL, 0);
    return s;
}

enum hsd_status hsd_pipeline_encode_prompts_lora(struct hsd_pipeline *p, float **out, int *n_ctx,
                                                 const char *const *prompts, int n_prompts,
                                                 enum hsd_prompt_style style, int clip_skip,
                                                 const float *scales) {
    *out = NULL;
    *n_ctx = 0;
    enum hsd_status s = HSD_OK;
    if (p->n_loras && scales) {
        // Every row the encoder may run (an A1111 prompt: one per chunk)
        // gets the request's scales; rows past a call's count go unused.
        int rows = 2 * HSD_PROMPT_MAX_CHUNKS;
        if (!(s = grow(p, rows))) {
            for (int r = 0; r < rows; r++) set_row(p, r, scales);
            s = hsd_clip_text_lora_select(p->text, p->lora_rows, rows);
        }
    }
    if (!s) s = hsd_pipeline_encode_prompts(p, out, n_ctx, prompts, n_prompts, style, clip_skip);
    hsd_clip_text_lora_select(p->text, NULL, 0);
    return s;
}

enum hsd_status hsd_pipeline_encode_ids_lora(struct hsd_pipeline *p, float *out,
                                             const int32_t *ids, int n, int clip_skip,
                                             const float *const *row_scales) {
    enum hsd_status s = select_text(p, row_scales, n);
    if (!s) s = hsd_pipeline_encode_ids(p, out, ids, n, clip_skip);
    hsd_clip_text_lora_select(p->text, NULL, 0);
    return s;
}
