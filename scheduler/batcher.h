// Step-level continuous batching over a pool of devices (docs/architecture.md §6).
//
// Requests wait in a bounded queue (priority, then the tenant admitted
// least recently, then FIFO; each tenant may hold at most
// tenant_queue_limit of the queue). A device worker admits a few at a time
// (their prompts encoded in one text-encoder call, latents and sampler
// states made as hsd_pipeline_init_image does), then repeatedly takes the
// active requests of one latent size — the size served least recently, so
// sizes take turns — each at its own step, and runs ONE U-Net call for all
// of them (CFG pairs in the same batch) through hsd_pipeline_denoise_step.
// Requests join and leave between steps; a request leaves at its split k,
// and the scheduler hands its latent, sampler state and text embeddings to
// the on_done callback, which the service turns into a RESULT. Every
// request ends in exactly one on_done.
//
// Cancellations and deadlines are watched by a reaper thread every 20 ms,
// also for requests inside a running U-Net call: such a request is answered
// at once (CANCELLED or EXPIRED) and its row's output is dropped when the
// call ends; a call all of whose requests were answered stops before its
// next backend op (HSD_ERR_CANCELLED from the forward pass).
#ifndef HSD_SCHED_BATCHER_H
#define HSD_SCHED_BATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "pipeline/pipeline.h"
#include "request_state.h"

// Why a request did not reach DONE (the service maps these to ERROR codes).
enum hsd_sched_error {
    HSD_SCHED_OK,
    HSD_SCHED_E_BAD_REQUEST,   // failed validation against the loaded models
    HSD_SCHED_E_CANCELLED,
    HSD_SCHED_E_EXPIRED,
    HSD_SCHED_E_INTERNAL,      // compute failed (no healthy device left, ...)
    HSD_SCHED_E_SHUTDOWN,      // the service stopped before finishing it
};

// Room for a tenant name (the service uses the request's key id).
#define HSD_SCHED_TENANT_SIZE 32

struct hsd_sched_params {
    struct hsd_gen_request gen;   // prompt strings are copied at submit
    int prompt_is_ids, neg_is_ids; // 1: that side's ids below instead of its gen text
    int32_t prompt_ids[HSD_TEXT_LEN], neg_ids[HSD_TEXT_LEN];  // text is tokenized at admission
    int k_min, k_max;             // U-Net calls on the cloud; k_min == k_max: fixed
    uint32_t deadline_ms;         // from submit; 0 = none
    int priority;                 // higher first
    // LoRA scales by the pipeline's LoRA index (hsd_pipeline_lora_index), 0 =
    // off; used when has_lora (gen.lora_scales is pointed here at submit).
    int has_lora;
    float lora_scales[HSD_PIPELINE_MAX_LORAS];
    char tenant[HSD_SCHED_TENANT_SIZE];  // who sent it ("" is a tenant too): quotas, fairness
};

struct hsd_sched_result {
    enum hsd_req_state state;     // DONE, FAILED, CANCELLED or EXPIRED
    enum hsd_sched_error error;
    const char *error_text;       // "" when DONE
    int k_used;                   // U-Net calls done in the cloud
    const float *latent;          // [c, h, w]
    int c, h, w;
    const struct hsd_sampler *sampler;
    const float *cond, *uncond;   // [n_ctx, emb_c] (+ SDXL's pooled [pooled_c] and time ids
                                  // [HSD_SDXL_N_TIME_IDS] after it); uncond NULL without CFG
    int emb_c;
    int pooled_c;                 // SDXL's pooled embedding width; 0: SD 1.x/2.x
    int n_ctx;                    // context tokens: 77, or 77 x chunks (A1111 prompts)
    double device_ms;             // this request's share of its batches' time
    double queue_ms;              // submit -> admission
};

struct hsd_sched;
struct hsd_sched_req;

// Called once per request, from a worker thread, without scheduler locks
// held; the result's pointers are valid only during the call.
typedef void (*hsd_sched_done_fn)(void *user, uint64_t id, void *client,
                                  const struct hsd_sched_result *res);

struct hsd_sched_opts {
    int max_batch_rows;           // U-Net batch limit (a CFG request takes 2 rows)
    int queue_limit;              // QUEUED requests beyond this: submit says busy
    int max_active;               // admitted requests held at once
    int admit_batch;              // prompts encoded per text-encoder call
    int adaptive_threshold;       // queue depth from which [k_min, k_max] requests leave at k_min
    int tenant_queue_limit;       // QUEUED requests of one tenant beyond this: busy (0: no quota)
    hsd_sched_done_fn on_done;
    void *user;
};

// Upper bounds (seconds) of the time-to-RESULT buckets: from a tiny model on
// a CPU (~0.1 s) to SD 1.x at 1024 px under load (minutes); +Inf follows.
#define HSD_SCHED_RESULT_BUCKETS 12
extern const double hsd_sched_result_le_s[HSD_SCHED_RESULT_BUCKETS - 1];

struct hsd_sched_stats {
    int queued, active, devices, healthy_devices;
    uint64_t submitted, done, failed, cancelled, expired, busy_refusals;
    uint64_t tenant_refusals;              // of busy_refusals: a tenant over its queue quota
    uint64_t aborted_calls;                // U-Net calls stopped: all their requests answered
    uint64_t batches, image_steps;         // U-Net calls, and rows x calls / rows per image
    uint64_t batch_hist[8];                // rows: 1, 2, 3-4, 5-8, 9-16, 17-32, 33-64, >64
    double device_ms_total, device_ms_done;  // all batches; summed over DONE requests
    double busy_ms;                        // wall time workers spent in compute
    double uptime_ms;
    // Time to RESULT of DONE requests, submit to finish (the latency an
    // edge waits for, less the network): counts per bucket, not cumulative;
    // bucket i holds times <= hsd_sched_result_le_s[i], the last one the rest.
    uint64_t result_hist[HSD_SCHED_RESULT_BUCKETS];
    double result_s_sum;                   // seconds, summed over those requests
};

// One device of the pool (docs/architecture.md §6 "Device pool"): what STATUS and the
// per-device metrics report.
struct hsd_sched_device_stats {
    char name[64];                // as given to hsd_sched_add_device ("gpu:0")
    char desc[128];               // its backend's description ("cuda:0 NVIDIA H100 ...")
    enum hsd_backend_kind kind;   // of its backend
    int healthy;                  // 0 once a device error took it out of the pool
    int batch;                    // requests in the call it is computing now (0: idle)
    uint64_t batches;             // U-Net calls that succeeded
    uint64_t image_steps;         // requests x those calls
    uint64_t failures;            // text-encoder or U-Net calls that failed
    uint64_t aborted_calls;       // U-Net calls stopped: every request answered during them
    double busy_ms;               // wall time in compute (text encoding and U-Net)
    size_t mem_used, mem_total;   // device memory, bytes (0, 0: the backend does not say)
    char error[256];              // why it was marked unhealthy ("" while healthy)
};

enum hsd_status hsd_sched_create(struct hsd_sched **out, const struct hsd_sched_opts *opts);
// Adds a device (one worker thread) running `p`; every device must hold the
// same models. `name` appears in stats and logs, next to the description of
// the pipeline's backend. A device whose text-encoder or U-Net call fails
// with HSD_ERR_DEVICE (a sticky CUDA error: the device is lost for the
// process) is marked unhealthy for good; the requests of that call go back
// to the queue for the others. When no healthy device is left, every
// request left fails with HSD_SCHED_E_INTERNAL and submit refuses new ones.
enum hsd_status hsd_sched_add_device(struct hsd_sched *s, struct hsd_pipeline *p,
                                     const char *name);
// Queues a request. HSD_ERR_INVALID_ARG: it fails validation (message says
// why); HSD_ERR_UNSUPPORTED with *busy = 1: the queue is full (retry later,
// *retry_after_ms is a hint); on HSD_OK, *id identifies it and on_done will
// be called exactly once with `client`.
enum hsd_status hsd_sched_submit(struct hsd_sched *s, const struct hsd_sched_params *prm,
                                 void *client, uint64_t *id, int *busy,
                                 uint32_t *retry_after_ms);
// Cancels a request not yet finished (no-op otherwise); returns 1 if found.
int hsd_sched_cancel(struct hsd_sched *s, uint64_t id);
void hsd_sched_get_stats(struct hsd_sched *s, struct hsd_sched_stats *st);
// Devices added so far, and a snapshot of device i (0 <= i < count; else
// HSD_ERR_INVALID_ARG).
int hsd_sched_device_count(struct hsd_sched *s);
enum hsd_status hsd_sched_get_device_stats(struct hsd_sched *s, int i,
                                           struct hsd_sched_device_stats *out);
// Stops admitting; waits up to grace_ms for active requests to finish,
// then fails everything left with HSD_SCHED_E_SHUTDOWN; joins the workers.
void hsd_sched_shutdown(struct hsd_sched *s, int grace_ms);
void hsd_sched_destroy(struct hsd_sched *s);

// Test hook: make a device fail its next `n` U-Net calls with a device error
// (its batch is re-queued on the healthy devices and it is marked unhealthy).
void hsd_sched_inject_device_failure(struct hsd_sched *s, int device, int n);

#endif
