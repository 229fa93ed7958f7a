// VAEs behind one interface: AutoencoderKL (diffusers
// models/autoencoders/autoencoder_kl.py; SD's full VAE, mid-block attention
// included) and AutoencoderTiny (TAESD). The kind comes from config.json's
// "_class_name".
#ifndef HSD_MODELS_VAE_H
#define HSD_MODELS_VAE_H

#include "backend/backend.h"
#include "core/status.h"

enum hsd_vae_kind { HSD_VAE_KL, HSD_VAE_TINY };

struct hsd_vae;

// `path`: a pipeline root (reads vae/), or a vae folder (config.json +
// diffusion_pytorch_model.safetensors). Strict like the U-Net loader.
enum hsd_status hsd_vae_load(struct hsd_vae **out, const char *path, struct hsd_backend *be);
// A VAE from config.json text (need not be NUL-terminated; `label` names it
// in messages) with random weights, as the U-Net presets have: for shape
// queries and benchmarks without files.
enum hsd_status hsd_vae_create(struct hsd_vae **out, const char *config_json, size_t len,
                               const char *label, struct hsd_backend *be);
// The AutoencoderKL of an SD single-file checkpoint (first_stage_model.*,
// io/weights.h), config inferred from its shapes (models/vae_kl_infer.c).
enum hsd_status hsd_vae_load_ldm(struct hsd_vae **out, const char *path, struct hsd_backend *be);
void hsd_vae_free(struct hsd_vae *v);
enum hsd_vae_kind hsd_vae_get_kind(const struct hsd_vae *v);
int hsd_vae_latent_channels(const struct hsd_vae *v);
// config scaling_factor and shift_factor; absent keys take the class
// defaults of diffusers: AutoencoderKL 0.18215 and 0 (shift_factor None),
// AutoencoderTiny 1.0 and 0.
float hsd_vae_scaling_factor(const struct hsd_vae *v);
// A single file's VAE cannot show its scaling factor: the family's
// (SDXL's 0.13025, diffusers' SDXL vae/config.json) is set by the caller.
void hsd_vae_set_scaling_factor(struct hsd_vae *v, float f);
float hsd_vae_shift_factor(const struct hsd_vae *v);
// Pixels per latent pixel along each axis (8 for SD VAEs).
int hsd_vae_scale(const struct hsd_vae *v);

// vae.decode(latent).sample: image [n, 3, s*h, s*w] NCHW in about [-1, 1],
// not clamped; latent [n, C, h, w] NCHW as the module receives it (the
// pipeline divides by the scaling factor first).
enum hsd_status hsd_vae_decode(struct hsd_vae *v, float *image, const float *latent, int n,
                               int h, int w);
// vae.encode(image): KL -> latent_dist.mode() (the posterior mean); Tiny ->
// .latents. image [n, 3, H, W] NCHW in [-1, 1], H and W multiples of scale.
enum hsd_status hsd_vae_encode(struct hsd_vae *v, float *latent, const float *image, int n,
                               int H, int W);

// Debug/test hook: called after named stages with the backend NHWC map
// [n, h, w, c] (KL: "dec.conv_in", "dec.mid", "enc.mid"; Tiny:
// "dec.clamp"), as tests/oracle/make_vae_cases.py records them.
typedef void (*hsd_vae_probe_fn)(void *user, const char *name, const void *buf, int n, int h,
                                 int w, int c);
void hsd_vae_set_probe(struct hsd_vae *v, hsd_vae_probe_fn fn, void *user);

#endif
