// Timing helpers shared by the CPU benchmarks (bench/bench_cpu_ops.c,
// bench/onednn_vs_hsd.c): a monotonic clock, a cache flush between timed
// calls, the median of a sample.
#ifndef HSD_BENCH_TIMING_H
#define HSD_BENCH_TIMING_H

// Seconds on CLOCK_MONOTONIC.
double hsd_bench_now_s(void);
// Touches every line of an 8 MiB buffer (more than the L2 of the CPUs we
// time, and much of an L3 slice), so the next timed call starts with its
// operands mostly out of cache, as in a model where other layers ran between.
void hsd_bench_flush_cache(void);
// The median of t[0..n) (sorts t in place; the upper middle one for even n).
double hsd_bench_median(double *t, int n);

#endif
