// The AUTOMATIC1111 web UI's API as its clients speak it, on the request
// side: JSON bodies of POST /sdapi/v1/txt2img and /sdapi/v1/options turned
// into an edge request (edge/edge.h) and daemon settings, and A1111's
// sampler names mapped to ours. Pure functions of the bytes (no I/O, no
// randomness), so the fuzzer (tests/fuzz/fuzz_a1111_request.c) runs them
// on anything. Field names and defaults follow A1111's
// StableDiffusionProcessingTxt2Img API model (modules/api/models.py) and
// webuiapi 0.9.17's payload; docs/edge-http.md lists what is honoured.
#ifndef HSD_EDGE_A1111_REQUEST_H
#define HSD_EDGE_A1111_REQUEST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "edge/edge.h"

#define HSD_A1111_MAX_IMAGES 64  // batch_size * n_iter of one request
#define HSD_A1111_TITLE_MAX 256
#define HSD_A1111_MAX_VAES 3  // the --vae given, "full", "tiny"
#define HSD_A1111_LORA_NAME_MAX 64  // as the pipeline's LoRA names

// The daemon's settings (GET/POST /sdapi/v1/options); a request's
// override_settings apply on top of them for that request only.
struct hsd_a1111_settings {
    char model_title[HSD_A1111_TITLE_MAX];  // the one model: sd_model_checkpoint
    // sd_vae: the decoder to use ("full", "tiny" or the --vae folder), one
    // of vaes[]; vaes[0] is the one hsd started with ("Automatic").
    char vae[HSD_A1111_TITLE_MAX];
    char vaes[HSD_A1111_MAX_VAES][HSD_A1111_TITLE_MAX];
    int n_vaes;
    int clip_skip;  // ours (0 = last layer); A1111's CLIP_stop_at_last_layers - 1
    int k_min, k_max;  // cloud U-Net calls (hsd_split: "K" or "KMIN:KMAX")
    int prompt_style;  // enum hsd_prompt_style: the daemon's --prompt-style (a1111: the
                       // emphasis and long prompts A1111 clients write)
    int sdxl;  // the model is SDXL: width and height default to 1024, its native
               // size (A1111's 512 would be a quarter of what SDXL was trained on)
    // The LoRAs of hsd edge --lora NAME=FILE, in the pipeline's order: what
    // a prompt's <lora:NAME:SCALE> may name.
    char loras[HSD_PIPELINE_MAX_LORAS][HSD_A1111_LORA_NAME_MAX];
    int n_loras;
};

// One txt2img request, parsed. Strings are owned (free with
// hsd_a1111_txt2img_free).
struct hsd_a1111_txt2img {
    struct hsd_edge_request r;  // gen.prompt/negative_prompt point at the owned copies
                                // (the prompt without its <lora:...> tags);
                                // gen.seed is meaningless when seed_random;
                                // gen.lora_scales at lora_scales when a tag chose one
    char *prompt_written;       // the prompt as received, tags included (A1111's infotext)
    float lora_scales[HSD_PIPELINE_MAX_LORAS];  // per settings.loras[i]; 0 = off
    int seed_random;  // seed -1: the caller draws one
    int batch_size, n_iter;  // images = batch_size * n_iter, seeds seed + i
    const char *sampler_name;  // A1111's name of the sampler (static)
    json_t *parameters;  // the request object as received (A1111 echoes it)
};

// Parses and checks body (len bytes, not NUL-terminated) against settings
// s. Returns 0 and fills *out, or an HTTP status (422 for malformed JSON,
// wrong types, out-of-range values, unknown sampler or scheduler, features
// hsd does not have) with a message in msg. Size and model-dependent
// checks are the edge's (hsd_edge_request_validate), done by the caller.
int hsd_a1111_parse_txt2img(struct hsd_a1111_txt2img *out, const char *body, size_t len,
                            const struct hsd_a1111_settings *s, char *msg, size_t cap);
void hsd_a1111_txt2img_free(struct hsd_a1111_txt2img *t);

// Removes A1111's extra-network tags from prompt, in place (the prompt
// stays NUL-terminated and only shrinks), adding each <lora:NAME:SCALE>'s
// scale to scale[i] of s->loras[i] == NAME (scale has s->n_loras entries,
// zeroed by the caller). Returns 0, or 422 with a message for an unknown
// LoRA name, a multiplier that is not a number or leaves [-16, 16],
// separate text-encoder and U-Net multipliers, named arguments, or another
// kind of extra network (a1111_extra_networks.c).
int hsd_a1111_extra_networks(char *prompt, const struct hsd_a1111_settings *s, float *scale,
                             char *msg, size_t cap);

// POST /sdapi/v1/options: applies the body's known keys to a copy of *s
// and, only when all are valid, stores it in *s. Returns 0 or 422 (msg).
// Unknown keys are accepted and ignored, as A1111 stores options it has no
// use for.
int hsd_a1111_parse_options(struct hsd_a1111_settings *s, const char *body, size_t len, char *msg,
                            size_t cap);

// The samplers under A1111's names (GET /sdapi/v1/samplers): a JSON array
// of {name, aliases, options}.
json_t *hsd_a1111_samplers_json(void);

#endif
