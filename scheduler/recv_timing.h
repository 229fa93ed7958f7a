// The receive thread's own time per accepted GENERATE (precheck, decode,
// auth, validation, submit): one thread takes every message, so this is the
// service's admission ceiling. Measured for issue 10 item 5 (bench/RESULTS.md
// "Receive thread"); read by `hsd bench serve` through hsd_service_opts.
#ifndef HSD_SCHED_RECV_TIMING_H
#define HSD_SCHED_RECV_TIMING_H

#include <stdint.h>

#define HSD_RECV_TIMING_SAMPLES 4096  // the last this many; enough for a stable median

struct hsd_recv_timing {
    float us[HSD_RECV_TIMING_SAMPLES];
    uint64_t n;  // samples ever added
};

double hsd_recv_timing_now_us(void);  // CLOCK_MONOTONIC
void hsd_recv_timing_add(struct hsd_recv_timing *t, double us);
// The median of the kept samples (0 without any).
double hsd_recv_timing_median(const struct hsd_recv_timing *t);
// Logs the count and median on stderr when there were samples; stores the
// median in *out when out is not NULL.
void hsd_recv_timing_report(const struct hsd_recv_timing *t, double *out);

#endif
