// Timing helpers of the CPU benchmarks (bench_timing.h).
#include "bench_timing.h"

#include <stdlib.h>
#include <time.h>

double hsd_bench_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char g_flush[8 << 20];
void hsd_bench_flush_cache(void) {
    for (size_t i = 0; i < sizeof g_flush; i += 64) g_flush[i]++;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double hsd_bench_median(double *t, int n) {
    qsort(t, (size_t)n, sizeof t[0], cmp_double);
    return t[n / 2];
}
