// diffusers StableDiffusionPipeline.__call__ (pipeline_stable_diffusion.py)
// on our components, plus Hybrid SD's U-Net switch at step k.
#include "pipeline/pipeline.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "io/file.h"
#include "io/ldm_detect.h"
#include "pipeline/pipeline_internal.h"


static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

// --vae tiny: the first folder holding a TAESD next to the models.
static enum hsd_status find_tiny_vae(char *out, size_t cap, const struct hsd_pipeline_config *c) {
    const char *roots[2] = {c->edge_model, c->model};
    for (int i = 0; i < 2; i++) {
        if (!roots[i]) continue;
        int n = snprintf(out, cap, "%s/vae_tiny", roots[i]);
        if (n > 0 && (size_t)n < cap && hsd_is_dir(out)) return HSD_OK;
    }
    return hsd_fail(HSD_ERR_NOT_FOUND,
                    "--vae tiny: no vae_tiny/ folder (a diffusers AutoencoderTiny) in %s%s%s; "
                    "pass --vae DIR",
                    c->edge_model ? c->edge_model : "", c->edge_model ? " or " : "", c->model);
}

static enum hsd_status check_unet(const struct hsd_pipeline *p, const struct hsd_unet *u,
                                  const char *which, const char *path) {
    const struct hsd_unet_config *c = hsd_unet_get_config(u);
    enum hsd_status s = hsd_pipeline_sdxl_check_unet(p, u, which, path);
    if (s) return s;
    if (c->cross_attention_dim != p->ctx_dim)
        return hsd_fail(HSD_ERR_SHAPE,
                        "%s U-Net %s: cross_attention_dim %d does not match the text encoder's "
                        "width %d; these models cannot work together",
                        which, path, c->cross_attention_dim, p->ctx_dim);
    if (c->in_channels != p->latent_c || c->out_channels != p->latent_c)
        return hsd_fail(HSD_ERR_SHAPE,
                        "%s U-Net %s: %d in / %d out latent channels, expected %d (the large "
                        "U-Net's and the VAE's); these models cannot work together",
                        which, path, c->in_channels, c->out_channels, p->latent_c);
    return HSD_OK;
}

// An SD 1.x, 2.x or SDXL single-file checkpoint (A1111/ComfyUI): the parts the
// file does not hold come from the family's published pipeline, as
// diffusers' from_single_file takes them from the family's config folder:
// the CLIP tokenizer (the vocabulary shipped with hsd with SD 1.5's or SD
// 2.1's tokenizer settings; SDXL: both, for its two encoders) and the
// scheduler config (SD 1.5's; SD 2.x's with the prediction type of
// hsd_ldm_prediction_v; SDXL-base's). Checked before any weights are read.
static enum hsd_status load_single_file_parts(struct hsd_pipeline *p, const char *path,
                                              int own_vae, enum hsd_prediction_choice force) {
    struct hsd_ldm_info info;
    enum hsd_status s = hsd_ldm_detect(&info, path);
    if (!s) s = hsd_ldm_require_pipeline(&info, path, own_vae);
    if (s) return s;
    char vocab[4096];
    if ((s = hsd_clip_default_vocab(vocab, sizeof vocab))) return s;
    int sd2 = info.family == HSD_LDM_FAMILY_SD2, xl = info.family == HSD_LDM_FAMILY_SDXL;
    s = sd2 ? hsd_clip_tokenizer_load_sd2(&p->tok, vocab) : hsd_clip_tokenizer_load(&p->tok, vocab);
    // SDXL's tokenizer_2 is the same vocabulary padding with "!" (SD 2.1's).
    if (!s && xl) s = hsd_clip_tokenizer_load_sd2(&p->tok2, vocab);
    if (s) return s;
    const char *why;
    int v = hsd_ldm_prediction_v(&info, force == HSD_PREDICTION_EPSILON ? 1
                                        : force == HSD_PREDICTION_V     ? 2
                                                                        : 0,
                                 &why);
    // stabilityai/stable-diffusion-2-1's scheduler_config.json (DDIM,
    // v_prediction) and -2-1-base's (PNDM, epsilon) share SD 1.5's betas and
    // offsets; only the prediction type differs (the sampler is --sampler's).
    if (xl) hsd_noise_schedule_sdxl(&p->sched);
    else hsd_noise_schedule_sd15(&p->sched);
    p->sched.prediction_type = v ? HSD_PRED_V : HSD_PRED_EPSILON;
    HSD_DEBUG("%s: %s single file, %s prediction (%s)", path, hsd_ldm_family_name(info.family),
              v ? "v" : "epsilon", why);
    return HSD_OK;
}

static enum hsd_status set_buckets(struct hsd_pipeline *p, const struct hsd_pipeline_config *c) {
    if (c->n_row_buckets < 0 || c->n_row_buckets > HSD_PIPELINE_MAX_BUCKETS ||
        (c->n_row_buckets && !c->row_buckets))
        return hsd_fail(HSD_ERR_INVALID_ARG, "batch buckets: %d sizes, expected 0..%d",
                        c->n_row_buckets, HSD_PIPELINE_MAX_BUCKETS);
    for (int i = 0; i < c->n_row_buckets; i++) {
        int b = c->row_buckets[i];
        if (b < 1 || b > HSD_PIPELINE_MAX_ROWS || (i && b <= c->row_buckets[i - 1]))
            return hsd_fail(HSD_ERR_INVALID_ARG,
                            "batch buckets: size %d (entry %d) must be in [1, %d] and larger than "
                            "the one before",
                            b, i + 1, HSD_PIPELINE_MAX_ROWS);
        p->buckets[i] = b;
    }
    p->n_buckets = c->n_row_buckets;
    return HSD_OK;
}

enum hsd_status hsd_pipeline_load(struct hsd_pipeline **out, const struct hsd_pipeline_config *c) {
    *out = NULL;
    struct hsd_pipeline *p = calloc(1, sizeof *p);
    if (!p) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&p->res.mu, NULL);
    enum hsd_status s;
    char vae_path[4096];
    const char *vp = c->model;
    if ((s = set_buckets(p, c))) goto fail;
    if (c->backend) {
        p->be = c->backend;
        p->be_borrowed = 1;
    } else if ((s = hsd_backend_cpu_create(&p->be, c->threads))) {
        goto fail;
    }
    if ((s = hsd_backend_cpu_set_precision(p->be, c->cpu_precision))) goto fail;
    // Cheap files first, so a missing tokenizer or scheduler config fails
    // before gigabytes of weights are read.
    int single = hsd_is_file(c->model);
    int own_vae = !c->vae || !strcmp(c->vae, "full");
    if (single) {
        if ((s = load_single_file_parts(p, c->model, own_vae, c->prediction))) goto fail;
    } else {
        if ((s = hsd_clip_tokenizer_load(&p->tok, c->model))) goto fail;
        if ((s = hsd_noise_schedule_load(&p->sched, c->model))) goto fail;
        if (c->prediction != HSD_PREDICTION_AUTO)
            p->sched.prediction_type = c->prediction == HSD_PREDICTION_V ? HSD_PRED_V
                                                                         : HSD_PRED_EPSILON;
    }
    if ((s = hsd_unet_source_open(&p->src_large, c->model, NULL))) goto fail;
    if (c->edge_model && (s = hsd_unet_source_open(&p->src_edge, c->edge_model, NULL))) goto fail;
    if (c->vae && !strcmp(c->vae, "tiny")) {
        if ((s = find_tiny_vae(vae_path, sizeof vae_path, c))) goto fail;
        vp = vae_path;
    } else if (c->vae && strcmp(c->vae, "full")) {
        vp = c->vae;
    }
    s = single ? hsd_clip_text_load_ldm(&p->text, c->model, p->be)
               : hsd_clip_text_load(&p->text, c->model, p->be);
    if (s) goto fail;
    p->ctx_dim = hsd_clip_text_get_config(p->text)->hidden_size;
    s = single ? hsd_pipeline_sdxl_load_ldm(p, c->model) : hsd_pipeline_sdxl_load(p, c->model);
    if (s) goto fail;
    s = single && vp == c->model ? hsd_vae_load_ldm(&p->vae, vp, p->be)
                                 : hsd_vae_load(&p->vae, vp, p->be);
    if (s) goto fail;
    // An SDXL file's VAE: SDXL's scaling factor (diffusers' SDXL vae config).
    if (single && vp == c->model && p->text2) hsd_vae_set_scaling_factor(p->vae, 0.13025f);
    p->latent_c = hsd_vae_latent_channels(p->vae);
    if ((s = hsd_unet_create(&p->large, &p->src_large, p->be))) goto fail;
    if ((s = check_unet(p, p->large, "large", c->model))) goto fail;
    int mult = hsd_unet_size_multiple(p->large);
    if (c->edge_model) {
        if ((s = hsd_unet_create(&p->edge, &p->src_edge, p->be))) goto fail;
        if ((s = check_unet(p, p->edge, "edge", c->edge_model))) goto fail;
        int m2 = hsd_unet_size_multiple(p->edge);
        if (m2 > mult) mult = m2;
    }
    if ((s = hsd_pipeline_stages_load(p, c, &mult))) goto fail;
    p->size_multiple = mult * hsd_vae_scale(p->vae);
    if ((s = hsd_pipeline_lora_load(p, c))) goto fail;
    *out = p;
    return HSD_OK;
fail:
    hsd_pipeline_free(p);
    return s;
}

void hsd_pipeline_free(struct hsd_pipeline *p) {
    if (!p) return;
    hsd_pipeline_lora_free(p);
    hsd_pipeline_stages_free(p);
    free(p->guidance_w);
    hsd_unet_free(p->large);
    hsd_unet_free(p->edge);
    hsd_unet_source_close(&p->src_large);
    hsd_unet_source_close(&p->src_edge);
    hsd_vae_free(p->vae);
    hsd_clip_text_free(p->text);
    hsd_clip_tokenizer_free(p->tok);
    hsd_clip_text_free(p->text2);
    hsd_clip_tokenizer_free(p->tok2);
    hsd_step_scratch_free(&p->step, p->be);
    if (p->be) {
        hsd_res_scratch_free(&p->rstep, p->be);
        hsd_res_pool_free(&p->res, p->be);
    }
    pthread_mutex_destroy(&p->res.mu);
    if (!p->be_borrowed) hsd_backend_destroy(p->be);
    free(p);
}

struct hsd_unet *hsd_pipeline_unet(struct hsd_pipeline *p, int edge) {
    return edge ? p->edge : p->large;
}
struct hsd_backend *hsd_pipeline_backend(struct hsd_pipeline *p) { return p->be; }
const struct hsd_noise_schedule *hsd_pipeline_schedule(const struct hsd_pipeline *p) {
    return &p->sched;
}

int hsd_pipeline_n_calls(const struct hsd_gen_request *r) {
    // The sampler itself knows (PNDM repeats one timestep); a one-element
    // latent keeps this cheap.
    struct hsd_noise_schedule sched;
    hsd_noise_schedule_sd15(&sched);
    struct hsd_sampler s;
    struct hsd_torch_rng rng;  // ancestral samplers insist on a generator
    hsd_torch_rng_seed(&rng, 0);
    if (hsd_sampler_init(&s, r->sampler, &sched, r->steps, 1, &rng)) return 0;
    int n = hsd_sampler_n_calls(&s);
    hsd_sampler_free(&s);
    return n;
}

enum hsd_status hsd_pipeline_validate_params(const struct hsd_pipeline *p,
                                             const struct hsd_gen_request *r) {
    if (r->steps < 1 || r->steps > HSD_SAMPLER_MAX_STEPS)
        return hsd_fail(HSD_ERR_INVALID_ARG, "steps must be in [1, %d], got %d",
                        HSD_SAMPLER_MAX_STEPS, r->steps);
    if ((unsigned)r->sampler >= HSD_SAMPLER_COUNT)
        return hsd_fail(HSD_ERR_INVALID_ARG, "unknown sampler");
    if ((unsigned)r->prompt_style >= HSD_PROMPT_STYLE_COUNT)
        return hsd_fail(HSD_ERR_INVALID_ARG, "unknown prompt style");
    // The model's own schedule decides the call count (a config with
    // unsupported spacing fails here, before compute).
    struct hsd_sampler probe;
    struct hsd_torch_rng rng;  // ancestral samplers insist on a generator
    hsd_torch_rng_seed(&rng, 0);
    enum hsd_status s = hsd_sampler_init(&probe, r->sampler, &p->sched, r->steps, 1, &rng);
    if (s) return s;
    int calls = hsd_sampler_n_calls(&probe);
    hsd_sampler_free(&probe);
    if (r->split > calls)
        return hsd_fail(HSD_ERR_INVALID_ARG, "split k = %d must be in [0, %d] (U-Net calls of %d %s steps)",
                        r->split, calls, r->steps, hsd_sampler_name(r->sampler));
    if ((s = hsd_pipeline_stages_validate(p, r, calls))) return s;
    if (!p->edge && r->split >= 0 && r->split < calls)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "split k = %d needs an edge model (--edge-model) for steps k..N-1",
                        r->split);
    int m = p->size_multiple;
    if (r->width < m || r->height < m || r->width % m || r->height % m || r->width > 4096 ||
        r->height > 4096)
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "width and height must be multiples of %d (VAE scale x U-Net depth) in "
                        "[%d, 4096], got %dx%d",
                        m, m, r->width, r->height);
    if (r->batch_count < 1 || r->batch_count > 64)
        return hsd_fail(HSD_ERR_INVALID_ARG, "batch count must be in [1, 64], got %d",
                        r->batch_count);
    if (!(r->guidance_scale >= 0.0f && r->guidance_scale <= 100.0f))
        return hsd_fail(HSD_ERR_INVALID_ARG, "guidance scale must be in [0, 100]");
    if (r->clip_skip < 0 || r->clip_skip >= hsd_clip_text_get_config(p->text)->num_hidden_layers)
        return hsd_fail(HSD_ERR_INVALID_ARG, "clip skip %d out of range", r->clip_skip);
    for (int i = 0; r->lora_scales && i < p->n_loras; i++)
        if (!(fabsf(r->lora_scales[i]) <= 16.0f))
            return hsd_fail(HSD_ERR_INVALID_ARG, "LoRA '%s': scale must be in [-16, 16]",
                            p->lora_names[i]);
    // SDXL reads hidden_states[-(clip_skip + 2)] of both encoders.
    for (int i = 0; p->text2 && i < 2; i++)
        if (r->clip_skip + 1 >= hsd_clip_text_get_config(i ? p->text2 : p->text)->num_hidden_layers)
            return hsd_fail(HSD_ERR_INVALID_ARG, "clip skip %d out of range for SDXL's text "
                            "encoder %d", r->clip_skip, i + 1);
    const int sizes[4] = {r->original_width, r->original_height, r->crop_top, r->crop_left};
    for (int i = 0; i < 4; i++)
        if (sizes[i] < 0 || sizes[i] > 65536)
            return hsd_fail(HSD_ERR_INVALID_ARG,
                            "original size and crop must be in [0, 65536], got %d", sizes[i]);
    return HSD_OK;
}

enum hsd_status hsd_pipeline_validate(const struct hsd_pipeline *p, const struct hsd_gen_request *r) {
    if (!r->prompt) return hsd_fail(HSD_ERR_INVALID_ARG, "no prompt given");
    enum hsd_status s = hsd_pipeline_validate_params(p, r);
    if (s) return s;
    // Tokenizing checks the prompts' UTF-8 (the tokenizer says where it
    // breaks) and, in A1111 style, their weights and length.
    s = hsd_pipeline_check_prompt(p, r->prompt, r->prompt_style, NULL);
    if (s) return hsd_fail_context(s, "prompt: ");
    if (r->negative_prompt) {
        s = hsd_pipeline_check_prompt(p, r->negative_prompt, r->prompt_style, NULL);
        if (s) return hsd_fail_context(s, "negative prompt: ");
    }
    return HSD_OK;
}

// These SD 1.x/2.x stages make no pooled embedding or time ids: an SDXL
// pipeline encodes with hsd_pipeline_encode_sdxl and steps with
// hsd_pipeline_denoise_step.
static enum hsd_status not_sdxl(const struct hsd_pipeline *p, const char *what) {
    if (!p->text2) return HSD_OK;
    return hsd_fail(HSD_ERR_UNSUPPORTED,
                    "%s: an SD 1.x/2.x stage; SDXL models encode with both text encoders "
                    "(hsd_pipeline_encode_sdxl)",
                    what);
}

enum hsd_status hsd_pipeline_encode_text(struct hsd_pipeline *p, float *out,
                                         const char *const *prompts, int n_prompts,
                                         int clip_skip) {
    enum hsd_status st = not_sdxl(p, "encode_text");
    if (st) return st;
    int32_t *ids = malloc((size_t)n_prompts * HSD_TEXT_LEN * sizeof *ids);
    if (!ids) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    enum hsd_status s = HSD_OK;
    for (int i = 0; i < n_prompts && !s; i++) {
        int used;
        s = hsd_clip_tokenize(p->tok, prompts[i], strlen(prompts[i]), ids + i * HSD_TEXT_LEN,
                              HSD_TEXT_LEN, &used);
    }
    if (!s) s = hsd_clip_text_forward(p->text, out, ids, n_prompts, HSD_TEXT_LEN, clip_skip);
    free(ids);
    return s;
}

enum hsd_status hsd_pipeline_decode(struct hsd_pipeline *p, float *image, const float *latent,
                                    int n, int h, int w) {
    size_t count = (size_t)n * p->latent_c * h * w;
    float *z = malloc(count * sizeof *z);
    if (!z) return hsd_fail(HSD_ERR_NOMEM, "out of memory");
    // diffusers: vae.decode(latents / scaling_factor) (+ shift_factor where
    // the VAE has one; SD 1.x/2.x have none).
    float sf = hsd_vae_scaling_factor(p->vae), sh = hsd_vae_shift_factor(p->vae);
    for (size_t i = 0; i < count; i++) z[i] = latent[i] / sf + sh;
    // The U-Nets' activations are dead now (the resident path keeps its
    // last output in the arena until here): their pages go back before the
    // VAE's arena fills (peak RSS, issue 14).
    if (p->large) hsd_unet_discard_arena(p->large);
    if (p->edge) hsd_unet_discard_arena(p->edge);
    enum hsd_status s = hsd_vae_decode(p->vae, image, z, n, h, w);
    free(z);
    return s;
}

void hsd_pipeline_to_rgb(uint8_t *rgb, const float *image, int n, int H, int W) {
    size_t hw = (size_t)H * W;
    for (int b = 0; b < n; b++)
        for (int c = 0; c < 3; c++)
            for (size_t q = 0; q < hw; q++) {
                // (image / 2 + 0.5).clamp(0, 1), then (x * 255).round() in
                // float32 numpy: round half to even, as nearbyintf does.
                float v = image[((size_t)b * 3 + c) * hw + q] / 2 + 0.5f;
                v = v < 0 ? 0 : v > 1 ? 1 : v;
                rgb[((size_t)b * hw + q) * 3 + c] = (uint8_t)nearbyintf(v * 255.0f);
            }
}

enum hsd_status hsd_pipeline_init_image(struct hsd_pipeline *p, const struct hsd_gen_request *r,
                                        int index, float *latent, struct hsd_sampler *sampler) {
    int scale = hsd_vae_scale(p->vae);
    size_t lat = (size_t)p->latent_c * (r->height / scale) * (r->width / scale);
    // prepare_latents with one generator per image: torch.randn(shape,
    // generator=Generator().manual_seed(seed + i)) * init_noise_sigma; the
    // sampler keeps the generator for ancestral noise, as diffusers passes
    // the same generator to scheduler.step.
    struct hsd_torch_rng rng;
    hsd_torch_rng_seed(&rng, r->seed + (uint64_t)index);
    hsd_torch_randn(&rng, latent, lat);
    enum hsd_status s = hsd_sampler_init(sampler, r->sampler, &p->sched, r->steps, lat, &rng);
    if (s) return s;
    float sigma = hsd_sampler_init_noise_sigma(sampler);
    for (size_t j = 0; j < lat; j++) latent[j] *= sigma;
    return HSD_OK;
}

enum hsd_status hsd_pipeline_finish(struct hsd_pipeline *p, struct hsd_unet *unet, float *latent,
                                    struct hsd_sampler *sampler, const float *cond,
                                    const float *uncond, int n_ctx, float guidance_scale, int h,
                                    int w, hsd_progress_fn progress, void *user) {
    enum hsd_status st = not_sdxl(p, "finish");
    if (st) return st;
    if (!unet) unet = p->edge ? p->edge : p->large;
    struct hsd_denoise_item item = {latent, sampler, cond, uncond, guidance_scale, n_ctx, NULL};
    int total = hsd_sampler_n_calls(sampler), left = total - sampler->step;
    // Slots hold 77-token contexts; longer (A1111) ones, LCM and LCM U-Nets
    // take the per-step path (hsd_pipeline_resident_request_ok).
    if (left > 0 && hsd_pipeline_resident_ok(p, unet) &&
        hsd_pipeline_resident_request_ok(p, sampler->kind, n_ctx, NULL)) {
        // Resident: one upload, the steps on the backend, one download.
        int id;
        enum hsd_status s = hsd_pipeline_slot_acquire(p, &id, latent, sampler, cond, uncond,
                                                      guidance_scale, left, h, w);
        if (s) return s;
        const int first = sampler->step;
        for (int j = 0; j < left && !s; j++) {
            s = hsd_pipeline_resident_step(p, unet, &id, 1, h, w);
            if (!s && progress) progress(user, first + j + 1, total);
        }
        if (s) {
            hsd_pipeline_slot_release(p, id);
            return s;
        }
        return hsd_pipeline_slot_handover(p, id, latent, sampler);
    }
    while (!hsd_sampler_done(sampler)) {
        enum hsd_status s = hsd_pipeline_denoise_step(p, unet, &item, 1, h, w);
        if (s) return s;
        if (progress) progress(user, sampler->step, total);
    }
    return HSD_OK;
}

int hsd_pipeline_vae_scale(const struct hsd_pipeline *p) { return hsd_vae_scale(p->vae); }
int hsd_pipeline_latent_channels(const struct hsd_pipeline *p) { return p->latent_c; }
int hsd_pipeline_text_width(const struct hsd_pipeline *p) { return p->ctx_dim; }

enum hsd_status hsd_pipeline_tokenize(const struct hsd_pipeline *p, int32_t *ids, const char *text,
                                      size_t len) {
    int used;
    return hsd_clip_tokenize(p->tok, text, len, ids, HSD_TEXT_LEN, &used);
}

int32_t hsd_pipeline_pad_id(const struct hsd_pipeline *p) { return hsd_clip_tokenizer_pad(p->tok); }

enum hsd_status hsd_pipeline_check_ids(const struct hsd_pipeline *p, const int32_t *ids, int n,
                                       const char *what) {
    int vocab = hsd_clip_text_get_config(p->text)->vocab_size;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab)
            return hsd_fail(HSD_ERR_INVALID_ARG,
                            "%s token id %d at position %d is outside the text encoder's "
                            "vocabulary [0, %d)",
                            what, (int)ids[i], i, vocab);
    return HSD_OK;
}

enum hsd_status hsd_pipeline_encode_ids(struct hsd_pipeline *p, float *out, const int32_t *ids,
                                        int n, int clip_skip) {
    enum hsd_status st = not_sdxl(p, "encode_ids");
    if (st) return st;
    return hsd_clip_text_forward(p->text, out, ids, n, HSD_TEXT_LEN, clip_skip);
}

// SDXL's encode_prompt for one request: emb holds one pass (or two,
// negative first) of hsd_pipeline_cond_floats(): context, pooled embedding,
// time ids. Without a negative prompt and with force_zeros_for_empty_prompt
// the negative embeddings are zeros; otherwise the negative prompt ("" if
// none) is encoded from hidden_states[-2] whatever clip_skip says, as
// diffusers does. Both passes get the same time ids (no negative sizes).
static enum hsd_status encode_sdxl(struct hsd_pipeline *p, const struct hsd_gen_request *r,
                                   int cfg, float *emb) {
    const size_t ctx = (size_t)HSD_TEXT_LEN * p->ctx_dim, pd = (size_t)p->pooled_dim;
    const size_t per = hsd_pipeline_cond_floats(p);
    float *pos = emb + (cfg ? per : 0);
    enum hsd_status s = hsd_pipeline_encode_text_sdxl(p, pos, pos + ctx, &r->prompt, 1,
                                                      r->clip_skip);
    if (s) return s;
    hsd_pipeline_time_ids(r, pos + ctx + pd);
    if (!cfg) return HSD_OK;
    if (!r->negative_prompt && p->force_zeros) {
        memset(emb, 0, (ctx + pd) * sizeof *emb);
    } else {
        const char *neg = r->negative_prompt ? r->negative_prompt : "";
        if ((s = hsd_pipeline_encode_text_sdxl(p, emb, emb + ctx, &neg, 1, 0))) return s;
    }
    hsd_pipeline_time_ids(r, emb + ctx + pd);
    return HSD_OK;
}

enum hsd_status hsd_pipeline_encode_sdxl(struct hsd_pipeline *p, const struct hsd_gen_request *r,
                                         int cfg, float *emb) {
    // One prompt per encoder call (encode_sdxl): the scales on row 0; no
    // LoRA again afterwards, whatever happened, so the pipeline's next
    // request (the service's next admission) starts clean.
    enum hsd_status s = hsd_pipeline_text_lora_select(p, r->lora_scales, 1);
    if (!s) s = encode_sdxl(p, r, cfg, emb);
    hsd_pipeline_text_lora_select(p, NULL, 0);
    return s;
}

enum hsd_status hsd_pipeline_generate(struct hsd_pipeline *p, const struct hsd_gen_request *r,
                                      uint8_t *rgb, float *image, float *latent_out,
                                      struct hsd_gen_timing *timing, hsd_progress_fn progress,
                                      void *user) {
    enum hsd_status s = hsd_pipeline_validate(p, r);
    if (s) return s;
    int B = r->batch_count, scale = hsd_vae_scale(p->vae);
    int h = r->height / scale, w = r->width / scale;
    size_t lat = (size_t)p->latent_c * h * w;
    int cfg = hsd_pipeline_cfg(p, r->guidance_scale);  // diffusers: do_classifier_free_guidance
    float *emb = NULL;
    float *latents = malloc((size_t)B * lat * sizeof *latents);
    struct hsd_sampler *samplers = calloc((size_t)B, sizeof *samplers);
    struct hsd_denoise_item *items = calloc((size_t)B, sizeof *items);
    int ids[64];  // resident slots held, -1: none (batch_count <= 64)
    for (int i = 0; i < 64; i++) ids[i] = -1;
    float *img = image ? image : malloc((size_t)B * 3 * r->height * r->width * sizeof *img);
    if (!latents || !samplers || !items || !img) {
        s = hsd_fail(HSD_ERR_NOMEM, "out of memory");
        goto done;
    }
    double t0 = now_ms();
    const char *texts[2] = {r->negative_prompt ? r->negative_prompt : "", r->prompt};
    // One text-encoder batch: [negative, positive] (or the positive alone).
    int n_ctx = HSD_TEXT_LEN;
    size_t ctx;
    if (p->text2) {
        // One pass's conditioning: context, SDXL's pooled embedding, time ids.
        ctx = hsd_pipeline_cond_floats(p);
        if (r->prompt_style == HSD_PROMPT_A1111)
            s = hsd_fail(HSD_ERR_UNSUPPORTED, "--prompt-style a1111: not supported for SDXL "
                                              "models yet");
        else if (!(emb = malloc((size_t)(cfg ? 2 : 1) * ctx * sizeof *emb)))
            s = hsd_fail(HSD_ERR_NOMEM, "out of memory");
        else
            s = hsd_pipeline_encode_sdxl(p, r, cfg, emb);  // with the text-encoder LoRAs
    } else {
        s = hsd_pipeline_encode_prompts_lora(p, &emb, &n_ctx, cfg ? texts : texts + 1,
                                             cfg ? 2 : 1, r->prompt_style, r->clip_skip,
                                             r->lora_scales);
        ctx = (size_t)n_ctx * p->ctx_dim;
    }
    if (s) goto done;
    if (timing) timing->text_ms = now_ms() - t0;
    for (int i = 0; i < B; i++) {
        float *x = latents + (size_t)i * lat;
        if ((s = hsd_pipeline_init_image(p, r, i, x, &samplers[i]))) goto done;
        items[i] = (struct hsd_denoise_item){x, &samplers[i], cfg ? emb + ctx : emb,
                                             cfg ? emb : NULL, r->guidance_scale, n_ctx,
                                             r->lora_scales};
    }
    int calls = hsd_sampler_n_calls(&samplers[0]);
    // Resident on the backend for the whole run (docs/denoise_step.md), or
    // the per-step path where a U-Net cannot take backend inputs or the
    // request cannot be resident (A1111 contexts, LCM, LoRAs).
    int res = hsd_pipeline_resident_request_ok(p, r->sampler, n_ctx, r->lora_scales) &&
              hsd_pipeline_resident_ok(p, p->large) &&
              (!p->edge || hsd_pipeline_resident_ok(p, p->edge));
    for (int k = 0; k < p->n_more && res; k++) res = hsd_pipeline_resident_ok(p, p->more[k]);
    for (int i = 0; i < B && res; i++)
        if ((s = hsd_pipeline_slot_acquire(p, &ids[i], items[i].latent, &samplers[i], items[i].cond,
                                           items[i].uncond, r->guidance_scale, calls, h, w)))
            goto done;
    for (int step = 0; step < calls; step++) {
        double ts = now_ms();
        float t_step = samplers[0].timesteps[step];
        int stage;
        struct hsd_unet *u = hsd_pipeline_stage_unet(p, r, step, calls, &stage);
        s = res ? hsd_pipeline_resident_step(p, u, ids, B, h, w)
                : hsd_pipeline_denoise_step(p, u, items, B, h, w);
        if (s) goto done;
        double ms = now_ms() - ts;
        if (timing && timing->step_ms) timing->step_ms[step] = ms;
        HSD_DEBUG("step %d/%d (U-Net %d, t=%g): %.1f ms", step + 1, calls, stage + 1,
                  (double)t_step, ms);
        if (progress) progress(user, step + 1, calls);
    }
    for (int i = 0; i < B && res; i++) {
        int id = ids[i];
        ids[i] = -1;  // released by the hand-over, also when it fails
        if ((s = hsd_pipeline_slot_handover(p, id, items[i].latent, &samplers[i]))) goto done;
    }
    if (latent_out) memcpy(latent_out, latents, (size_t)B * lat * sizeof *latents);
    t0 = now_ms();
    if ((s = hsd_pipeline_decode(p, img, latents, B, h, w))) goto done;
    if (timing) timing->decode_ms = now_ms() - t0;
    if (rgb) hsd_pipeline_to_rgb(rgb, img, B, r->height, r->width);
done:
    for (int i = 0; i < 64; i++)
        if (ids[i] >= 0) hsd_pipeline_slot_release(p, ids[i]);
    if (samplers)
        for (int i = 0; i < B; i++) hsd_sampler_free(&samplers[i]);
    free(samplers);
    free(items);
    free(emb);
    free(latents);
    if (img != image) free(img);
    return s;
}
