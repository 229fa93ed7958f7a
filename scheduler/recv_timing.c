#include "recv_timing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double hsd_recv_timing_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

void hsd_recv_timing_add(struct hsd_recv_timing *t, double us) {
    t->us[t->n++ % HSD_RECV_TIMING_SAMPLES] = (float)us;
}

static int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

double hsd_recv_timing_median(const struct hsd_recv_timing *t) {
    size_t n = t->n < HSD_RECV_TIMING_SAMPLES ? (size_t)t->n : HSD_RECV_TIMING_SAMPLES;
    if (!n) return 0.0;
    float *v = malloc(n * sizeof *v);
    if (!v) return 0.0;
    memcpy(v, t->us, n * sizeof *v);
    qsort(v, n, sizeof *v, cmp_f);
    double m = n % 2 ? v[n / 2] : 0.5 * ((double)v[n / 2 - 1] + v[n / 2]);
    free(v);
    return m;
}

void hsd_recv_timing_report(const struct hsd_recv_timing *t, double *out) {
    double m = hsd_recv_timing_median(t);
    if (t->n)
        fprintf(stderr, "hsd serve: receive thread: %llu GENERATE past auth, median %.1f us each\n",
                (unsigned long long)t->n, m);
    if (out) *out = m;
}
