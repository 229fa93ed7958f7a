// The Prometheus exposition (text format 0.0.4) of the service's counters:
// hsd_service_metrics_text() (service.h). Served by metrics_http.c.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/plan_stats.h"
#include "net/wire.h"
#include "service.h"

// A growing text buffer for the exposition; `failed` once out of memory.
struct text {
    char *b;
    size_t n, cap;
    int failed;
};

static void emit(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(struct text *t, const char *fmt, ...) {
    while (!t->failed) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(t->b + t->n, t->cap - t->n, fmt, ap);
        va_end(ap);
        if (k < 0) {
            t->failed = 1;
            return;
        }
        if ((size_t)k < t->cap - t->n) {
            t->n += (size_t)k;
            return;
        }
        size_t cap = t->cap * 2;
        while (cap - t->n <= (size_t)k) cap *= 2;
        char *b = realloc(t->b, cap);
        if (!b) {
            t->failed = 1;
            return;
        }
        t->b = b;
        t->cap = cap;
    }
}

// A label value as the Prometheus text format wants it: backslash, double
// quote and line feed escaped as \\, \" and \n; everything else as is
// (UTF-8 allowed).
static void emit_label(struct text *t, const char *v) {
    for (; *v; v++) {
        if (*v == '\\') emit(t, "\\\\");
        else if (*v == '"') emit(t, "\\\"");
        else if (*v == '\n') emit(t, "\\n");
        else emit(t, "%c", *v);
    }
}

// The series of a per-device family: name{device="desc",index="i"} and a
// space; the caller writes the value. The index keeps series apart when
// descriptions repeat (two CPU workers are both "cpu (8 threads)").
static void emit_device(struct text *t, const char *metric, int i,
                        const struct hsd_sched_device_stats *d) {
    emit(t, "%s{device=\"", metric);
    emit_label(t, d->desc);
    emit(t, "\",index=\"%d\"} ", i);
}

char *hsd_service_metrics_text(const struct hsd_sched_stats *st,
                               const struct hsd_sched_device_stats *devs, int n_devs,
                               const uint64_t *errors, int n_codes) {
    struct text t = {.b = malloc(8192), .cap = 8192};
    if (!t.b) return NULL;
    t.b[0] = '\0';
#define EMIT(...) emit(&t, __VA_ARGS__)
    EMIT("# HELP hsd_queue_depth Requests waiting for admission.\n# TYPE hsd_queue_depth gauge\n"
         "hsd_queue_depth %d\n", st->queued);
    EMIT("# HELP hsd_active_requests Admitted requests being denoised.\n"
         "# TYPE hsd_active_requests gauge\nhsd_active_requests %d\n", st->active);
    EMIT("# HELP hsd_devices_healthy Devices serving.\n# TYPE hsd_devices_healthy gauge\n"
         "hsd_devices_healthy %d\n", st->healthy_devices);
    EMIT("# HELP hsd_requests_total Finished requests by outcome.\n# TYPE hsd_requests_total counter\n"
         "hsd_requests_total{outcome=\"done\"} %llu\nhsd_requests_total{outcome=\"failed\"} %llu\n"
         "hsd_requests_total{outcome=\"cancelled\"} %llu\nhsd_requests_total{outcome=\"expired\"} %llu\n"
         "hsd_requests_total{outcome=\"busy\"} %llu\n",
         (unsigned long long)st->done, (unsigned long long)st->failed,
         (unsigned long long)st->cancelled, (unsigned long long)st->expired,
         (unsigned long long)st->busy_refusals);
    EMIT("# HELP hsd_key_quota_refusals_total BUSY answers because the key already had its "
         "share of the queue waiting.\n# TYPE hsd_key_quota_refusals_total counter\n"
         "hsd_key_quota_refusals_total %llu\n",
         (unsigned long long)st->tenant_refusals);
    EMIT("# HELP hsd_aborted_calls_total U-Net calls stopped early: every request in them was "
         "cancelled or expired.\n# TYPE hsd_aborted_calls_total counter\n"
         "hsd_aborted_calls_total %llu\n",
         (unsigned long long)st->aborted_calls);
    static const char *const le[8] = {"1", "2", "4", "8", "16", "32", "64", "+Inf"};
    EMIT("# HELP hsd_batch_rows U-Net batch sizes (rows; a CFG request is 2).\n"
         "# TYPE hsd_batch_rows histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < 8; i++) {
        cum += st->batch_hist[i];
        EMIT("hsd_batch_rows_bucket{le=\"%s\"} %llu\n", le[i], (unsigned long long)cum);
    }
    EMIT("hsd_batch_rows_count %llu\n", (unsigned long long)st->batches);
    EMIT("# HELP hsd_time_to_result_seconds Seconds from admission to the RESULT, per finished "
         "request.\n# TYPE hsd_time_to_result_seconds histogram\n");
    cum = 0;
    for (int i = 0; i < HSD_SCHED_RESULT_BUCKETS; i++) {
        cum += st->result_hist[i];
        if (i < HSD_SCHED_RESULT_BUCKETS - 1)
            EMIT("hsd_time_to_result_seconds_bucket{le=\"%g\"} %llu\n", hsd_sched_result_le_s[i],
                 (unsigned long long)cum);
        else
            EMIT("hsd_time_to_result_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    EMIT("hsd_time_to_result_seconds_sum %.6f\nhsd_time_to_result_seconds_count %llu\n",
         st->result_s_sum, (unsigned long long)cum);
    double secs = st->uptime_ms / 1e3;
    EMIT("# HELP hsd_unet_steps_per_second Image-steps per second since start.\n"
         "# TYPE hsd_unet_steps_per_second gauge\nhsd_unet_steps_per_second %.3f\n",
         secs > 0 ? st->image_steps / secs : 0.0);
    EMIT("# HELP hsd_device_ms_per_request Mean device milliseconds per finished request.\n"
         "# TYPE hsd_device_ms_per_request gauge\nhsd_device_ms_per_request %.3f\n",
         st->done ? st->device_ms_done / (double)st->done : 0.0);
    EMIT("# HELP hsd_device_busy_ratio Share of wall time the devices computed.\n"
         "# TYPE hsd_device_busy_ratio gauge\nhsd_device_busy_ratio %.4f\n",
         st->uptime_ms > 0 && st->devices ? st->busy_ms / (st->uptime_ms * st->devices) : 0.0);
    EMIT("# HELP hsd_errors_total ERROR replies by code.\n# TYPE hsd_errors_total counter\n");
    for (int c = 1; c < n_codes; c++)
        EMIT("hsd_errors_total{code=\"%s\"} %llu\n", hsd_wire_error_name((uint16_t)c),
             (unsigned long long)errors[c]);
    // One-off work of new batch shapes (core/plan_stats.h), process-wide:
    // flat after a warm-up unless requests bring shapes it did not cover.
    EMIT("# HELP hsd_plans_total U-Net planning passes, arena growths, CUDA graph captures, "
         "conv timings and cuBLASLt plans.\n# TYPE hsd_plans_total counter\n");
    for (int k = 0; k < HSD_PLAN_KINDS; k++)
        EMIT("hsd_plans_total{kind=\"%s\"} %llu\n", hsd_plan_kind_name((enum hsd_plan_kind)k),
             (unsigned long long)hsd_plan_stats_get((enum hsd_plan_kind)k));
    // Per device (docs/architecture.md §6 "Device pool"): which ones serve, and what
    // each did. Counters keep their values after a device failed.
    EMIT("# HELP hsd_device_healthy 1 while the device serves; 0 once a device error took it "
         "out of the pool.\n# TYPE hsd_device_healthy gauge\n");
    for (int i = 0; i < n_devs; i++) {
        emit_device(&t, "hsd_device_healthy", i, &devs[i]);
        EMIT("%d\n", devs[i].healthy ? 1 : 0);
    }
    EMIT("# HELP hsd_device_batches_total U-Net calls that succeeded, per device.\n"
         "# TYPE hsd_device_batches_total counter\n");
    for (int i = 0; i < n_devs; i++) {
        emit_device(&t, "hsd_device_batches_total", i, &devs[i]);
        EMIT("%llu\n", (unsigned long long)devs[i].batches);
    }
    EMIT("# HELP hsd_device_image_steps_total Requests x U-Net calls, per device.\n"
         "# TYPE hsd_device_image_steps_total counter\n");
    for (int i = 0; i < n_devs; i++) {
        emit_device(&t, "hsd_device_image_steps_total", i, &devs[i]);
        EMIT("%llu\n", (unsigned long long)devs[i].image_steps);
    }
    EMIT("# HELP hsd_device_busy_ms_total Milliseconds the device computed (text encoding and "
         "U-Net).\n# TYPE hsd_device_busy_ms_total counter\n");
    for (int i = 0; i < n_devs; i++) {
        emit_device(&t, "hsd_device_busy_ms_total", i, &devs[i]);
        EMIT("%.3f\n", devs[i].busy_ms);
    }
    EMIT("# HELP hsd_device_failures_total Text-encoder or U-Net calls that failed, per device.\n"
         "# TYPE hsd_device_failures_total counter\n");
    for (int i = 0; i < n_devs; i++) {
        emit_device(&t, "hsd_device_failures_total", i, &devs[i]);
        EMIT("%llu\n", (unsigned long long)devs[i].failures);
    }
#undef EMIT
    if (t.failed) {
        free(t.b);
        return NULL;
    }
    return t.b;
}

