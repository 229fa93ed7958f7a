// The cloud service behind `hsd serve`: nanomsg front end (decode, auth,
// dedupe, CANCEL, STATUS), the batcher, RESULT/ERROR replies, Prometheus
// metrics over HTTP, graceful shutdown (docs/architecture.md §3, §5, §6).
#ifndef HSD_SCHED_SERVICE_H
#define HSD_SCHED_SERVICE_H

#include <signal.h>

#include "batcher.h"
#include "net/wire.h"

struct hsd_service_opts {
    const char *const *endpoints;  // tcp://host:port, ipc:///path
    int n_endpoints;
    const char *keys_file;         // NULL: no authentication (only with allow_no_auth)
    int allow_no_auth;
    int metrics_port;              // 0: no HTTP metrics
    int grace_ms;                  // shutdown: time to finish in-flight work
    struct hsd_sched_opts sched;   // on_done/user are set by the service
    struct hsd_sched **sched_out;  // optional: receives the batcher (for stats) while running
    int warmup;                    // 1: hsd_pipeline_warmup on every device before serving
    const int *warmup_sizes;       // width, height pairs; NULL: the model's native size
    int n_warmup_sizes;
    double *recv_us_out;           // optional: at exit, the receive thread's median time per
                                   // accepted GENERATE in µs (precheck to submit), or 0
};

// Serves until *stop becomes non-zero (a signal handler sets it), then
// shuts down gracefully: new requests get SHUTTING_DOWN, in-flight ones
// finish within grace_ms or get an explicit ERROR. `devices` pipelines
// (one worker each) must hold the same models.
enum hsd_status hsd_service_run(struct hsd_pipeline *const *devices, int n_devices,
                                const struct hsd_service_opts *opts,
                                volatile sig_atomic_t *stop);

// Whether GENERATE `m` fits model `p` and the edge U-Net it describes
// (request_fit.c): HSD_ERR_INVALID_ARG with a message naming the field
// (a BAD_REQUEST before any compute) otherwise.
enum hsd_status hsd_service_check_fit(const struct hsd_pipeline *p, const struct hsd_wire_msg *m);

// The metrics text (Prometheus exposition format) for the current stats:
// the pool's aggregates, then one series per device (`devs`, n_devs of them,
// from hsd_sched_get_device_stats) labelled {device="<backend description>",
// index="<pool slot>"}. NULL when out of memory; the caller frees it.
char *hsd_service_metrics_text(const struct hsd_sched_stats *st,
                               const struct hsd_sched_device_stats *devs, int n_devs,
                               const uint64_t *errors_by_code, int n_codes);

#endif
