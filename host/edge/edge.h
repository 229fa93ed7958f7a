// The edge worker (docs/architecture.md §3, docs/protocol.md): ask a cloud `hsd serve`
// for the first k denoising steps of a request, check what comes back, and
// finish the remaining steps with the edge's own (small) U-Net and VAE.
// When no cloud answers in time, generate the whole image locally (k = 0).
//
//   hsd_edge_request           what the user asked for (text, seed, N, k, ...)
//     -> hsd_edge_build_generate / hsd_edge_encode      a signed GENERATE
//     -> hsd_edge_ask_cloud      send, wait, retry (backoff, fresh signature,
//                                fresh socket each time), verify
//     -> hsd_edge_verify_result  RESULT -> hsd_edge_handover (owned copies)
//     -> hsd_edge_finish         steps k..N-1 + VAE decode + 8-bit RGB
//   or hsd_edge_generate_local   the whole image on the edge (fallback)
//   hsd_edge_run                 all of the above for one image: what `hsd
//                                edge` and `hsd edge --http` both call
//
// The handover is exact: finishing a verified RESULT with the same U-Net
// and VAE as `hsd generate --edge-model EDGE --split k` gives the same
// pixels bit for bit, provided the cloud ran steps 0..k-1 as
// hsd_edge_reference_result() does (that function is the contract, in code).
//
// The edge model is a whole pipeline folder (tokenizer/, text_encoder/,
// unet/, vae/, scheduler/, maybe vae_tiny/), loaded with hsd_pipeline_load
// as the only model: its tokenizer and text encoder serve the local
// fallback; a cloud handover uses the cloud's text embeddings, as the
// in-process hybrid uses the large model's.
#ifndef HSD_EDGE_EDGE_H
#define HSD_EDGE_EDGE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "net/auth.h"
#include "net/transport.h"
#include "net/wire.h"
#include "pipeline/pipeline.h"
#include "sampling/sampler.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HSD_EDGE_MAX_ENDPOINTS 16

struct hsd_edge_request {
    // prompt, negative_prompt, guidance_scale, steps, sampler, width,
    // height, seed, clip_skip as in hsd generate. batch_count must be 1 and
    // split is ignored (k_min/k_max below say what the cloud runs).
    struct hsd_gen_request gen;
    int k_min, k_max;  // cloud U-Net calls, 0 <= k_min <= k_max <= steps (the
                       // wire's bound; PNDM makes steps + 1 calls in all)
    uint32_t deadline_ms;  // whole cloud part, sent as GENERATE's deadline; 0 = none
    uint8_t priority;  // 0..7
    const char *cloud_model;  // NULL or "": the service's default model
    // NULL, or polled before each edge U-Net call: once non-zero the edge
    // stops stepping and decodes the latent as it is (AUTOMATIC1111's
    // interrupt returns that partial image); hsd_edge_timing.interrupted
    // says so. The cloud part is not interrupted (its RESULT is awaited).
    const atomic_int *interrupt;
    // LoRAs: gen.lora_scales[i] (0 = off) of the edge pipeline's LoRA i,
    // which the cloud knows as lora_names[i] (hsd serve --lora NAME=FILE):
    // GENERATE lists the non-zero ones by name, and the edge finishes with
    // the same LoRAs on its own U-Net (its pipeline refused to load them if
    // they did not fit it).
    const char *const *lora_names;  // [n_loras], or NULL
    int n_loras;
};

// Checks the request against the wire's ranges and, when p is not NULL,
// the edge pipeline (prompt UTF-8, size multiples, clip skip, k <= the U-Net
// calls of its schedule). Computes nothing.
enum hsd_status hsd_edge_request_validate(const struct hsd_edge_request *r,
                                          const struct hsd_pipeline *p);

// A GENERATE for r (views into r's strings: keep r alive while m is used)
// with the given deadline (ms, 0 = none). Always asks for the text
// embeddings. with_auth sets HSD_WIRE_FLAG_AUTH (sign after encoding).
void hsd_edge_build_generate(struct hsd_wire_msg *m, const struct hsd_edge_request *r,
                             uint64_t request_id, uint32_t deadline_ms, int with_auth);

// Encodes m into a malloc'd buffer and, with a key, signs it at now_ms
// (fresh nonce). free() the buffer.
enum hsd_status hsd_edge_encode(void **buf, size_t *len, const struct hsd_wire_msg *m,
                                const struct hsd_auth_key *key, uint64_t now_ms);

// A random 64-bit request id (libsodium CSPRNG), never 0.
uint64_t hsd_edge_random_id(void);

// ---- RESULT verification ----

// What the edge needs from its own model to check a RESULT.
struct hsd_edge_expect {
    int latent_c;  // the edge U-Net's (= its VAE's) latent channels
    int emb_c;  // the edge U-Net's cross-attention width (= its text encoder's)
    int vae_scale;  // pixels per latent cell (8)
    int embedded_guidance;  // LCM U-Net: guidance is its input, RESULTs carry no uncond
    int pooled_c;  // SDXL-family edge U-Net: the pooled text-embedding width it takes (RESULT
                   // version 2 must carry it and the time ids); 0: SD 1.x/2.x
    const struct hsd_noise_schedule *sched;  // NULL: not compared; else the
        // cloud's prediction type and training timesteps must match it
};

// A verified RESULT, copied out of the message (owned; free with
// hsd_edge_handover_free).
struct hsd_edge_handover {
    int k_used;  // U-Net calls the cloud ran
    int c, h, w;  // latent shape
    float *latent;  // [c, h, w]: x_k
    struct hsd_sampler sampler;  // step == k_used
    float *cond;  // [n_ctx, emb_c] (+ SDXL: pooled [pooled_c], time ids [6]: pipeline.h's
                  // hsd_denoise_item layout)
    float *uncond;  // the same, NULL when CFG is off (guidance_scale <= 1)
    int emb_c;
    int pooled_c;  // 0: SD 1.x/2.x
    int n_ctx;  // context tokens: 77, or 77 x chunks for --prompt-style a1111
    double device_ms, queue_ms;  // as the cloud reported them
};

// Checks a decoded RESULT against the request it answers, strictly:
// request id; steps and sampler as asked; k_used within [k_min, k_max];
// latent [latent_c, height/scale, width/scale]; the sampler state
// deserializes (hsd_sampler_deserialize) and agrees (kind, n_steps, step ==
// k_used, n_latent = c*h*w, schedule); embeddings present, 77 tokens of
// emb_c (77 x 1..8 chunks in A1111 prompt style), two (cond, uncond) when
// guidance_scale > 1, at least one otherwise; for an SDXL edge (e->pooled_c
// > 0) pooled embeddings of that width and time ids equal to the request's
// (original size, crop, size), and none for any other edge.
// Any mismatch: HSD_ERR_FORMAT with a message naming the field, what came
// and what was expected. On success *out owns its buffers.
enum hsd_status hsd_edge_verify_result(struct hsd_edge_handover *out,
                                       const struct hsd_wire_msg *reply, uint64_t request_id,
                                       const struct hsd_edge_request *r,
                                       const struct hsd_edge_expect *e);
void hsd_edge_handover_free(struct hsd_edge_handover *h);

// The expectations of an edge pipeline.
void hsd_edge_expect_from(struct hsd_edge_expect *e, const struct hsd_pipeline *p);

// ---- talking to the cloud ----

struct hsd_edge_client_opts {
    const char *const *endpoints;  // 1..HSD_EDGE_MAX_ENDPOINTS
    int n_endpoints;
    const struct hsd_auth_key *key;  // NULL: unsigned requests (a service without keys)
    int timeout_ms;  // one attempt's wait for the reply; <= 0: 60000
    int retries;  // attempts after the first; < 0: 4
    int backoff_ms;  // first backoff; <= 0: 200 (doubles, capped at backoff_max_ms)
    int backoff_max_ms;  // <= 0: 10000
    const struct hsd_net_transport *tp;  // NULL: nanomsg
};

enum hsd_edge_outcome {
    HSD_EDGE_CLOUD,  // a verified handover
    HSD_EDGE_LOCAL,  // no usable answer in time: generate locally (reason says why)
};

struct hsd_edge_cloud_info {
    enum hsd_edge_outcome outcome;
    int attempts;  // GENERATEs sent
    double wait_ms;  // from the first send to the RESULT (or to giving up)
    uint64_t request_id;  // of the attempt that succeeded
    char reason[512];  // LOCAL: why (last error, "deadline passed", ...)
};

// Sends r to the cloud and waits, retrying with exponential backoff and
// jitter on a timeout and on retryable errors (BUSY, RATE_LIMITED,
// SHUTTING_DOWN, REPLAYED, BAD_CHECKSUM, INTERNAL, any error with a retry
// hint; a hint is honoured as the least wait). Every attempt uses a new
// request id, a new signature (nonce, timestamp) and a new socket: the
// transport's own resend repeats the old bytes, which a service refuses as
// REPLAYED. A timed-out attempt is CANCELled (best effort, on a socket of
// its own) before the next.
// GENERATE's deadline_ms is the time left of r->deadline_ms at each send.
//
// Returns HSD_OK with info->outcome CLOUD (and *out verified) or LOCAL (the
// deadline passed, retries ran out, or the cloud said EXPIRED). A
// non-retryable ERROR (BAD_REQUEST, UNAUTHENTICATED, BAD_MESSAGE,
// BAD_VERSION, TOO_LARGE, CANCELLED) or a RESULT that fails verification
// returns HSD_ERR_INVALID_ARG / HSD_ERR_FORMAT with the server's code and
// text or the mismatch.
enum hsd_status hsd_edge_ask_cloud(struct hsd_edge_handover *out, struct hsd_edge_cloud_info *info,
                                   const struct hsd_edge_request *r,
                                   const struct hsd_edge_client_opts *o,
                                   const struct hsd_edge_expect *e);

// ---- finishing on the edge ----

struct hsd_edge_timing {
    int calls;  // U-Net calls made on the edge
    double unet_ms, decode_ms, text_ms;
    int interrupted;  // r->interrupt stopped the steps before the last
};

// Runs the handover's remaining steps on the edge pipeline's U-Net, decodes
// with its VAE and maps to 8-bit RGB exactly as hsd_pipeline_generate does.
// rgb: [height, width, 3]. The handover's latent and sampler are advanced.
enum hsd_status hsd_edge_finish(struct hsd_pipeline *p, struct hsd_edge_handover *h,
                                const struct hsd_edge_request *r, uint8_t *rgb,
                                struct hsd_edge_timing *t, hsd_progress_fn progress, void *user);

// The local fallback: the whole request on the edge pipeline (k = 0, its
// own text encoder). rgb: [height, width, 3].
enum hsd_status hsd_edge_generate_local(struct hsd_pipeline *p, const struct hsd_edge_request *r,
                                        uint8_t *rgb, struct hsd_edge_timing *t,
                                        hsd_progress_fn progress, void *user);

// ---- one image, the whole edge flow ----

struct hsd_edge_run_info {
    struct hsd_edge_cloud_info cloud;  // outcome LOCAL: generated on the edge alone
    int k_used;  // U-Net calls the cloud ran (0 when local)
    double device_ms;  // the cloud's report (0 when local)
    struct hsd_edge_timing edge;
};

// Asks the cloud (hsd_edge_ask_cloud) and finishes its handover
// (hsd_edge_finish), or, when no cloud answered in time, generates locally
// (hsd_edge_generate_local) unless no_fallback, which fails with
// HSD_ERR_IO and the reason instead. r must be valid for p
// (hsd_edge_request_validate). rgb: [height, width, 3]. progress gets
// (U-Net calls done in all, cloud's included; calls in all).
enum hsd_status hsd_edge_run(struct hsd_pipeline *p, const struct hsd_edge_request *r,
                             const struct hsd_edge_client_opts *o, int no_fallback, uint8_t *rgb,
                             struct hsd_edge_run_info *info, hsd_progress_fn progress,
                             void *user);

// ---- the cloud's side, as a single-request reference ----

// Runs GENERATE `g` (text prompts only) on pipeline `cloud` in one process
// exactly as hsd_pipeline_generate runs image 0 of the same request up to
// split k = g->k_max: text encoder batch [negative, prompt] (or [prompt]
// alone without CFG), hsd_pipeline_init_image, k hsd_pipeline_denoise_step
// calls on the large U-Net. Fills *m with a RESULT whose views point into
// *storage (malloc'd; free() it after m is encoded). A service must produce
// the same bytes for a request run alone; tests compare against this.
enum hsd_status hsd_edge_reference_result(struct hsd_wire_msg *m, void **storage,
                                          struct hsd_pipeline *cloud, uint64_t request_id,
                                          const struct hsd_wire_generate *g);

#ifdef __cplusplus
}
#endif

#endif
