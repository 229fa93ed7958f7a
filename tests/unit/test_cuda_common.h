// Helpers of the CUDA kernel tests (test_cuda_attention/conv2d/norm/eltwise):
// GPU presence and skip, seeds, fp16 rounding, device buffers, the error
// metric and the optional PyTorch fp16 error table.
//
// Error metric (docs/conventions.md "Tests"): every case compares the kernel's fp16
// output with the CPU backend run in fp32 on the same fp16-rounded inputs,
// and reports max |err|, max |ref| and NMSE = sum (got-ref)^2 / sum ref^2.
// A case passes when nothing is NaN/Inf (outputs are poisoned with NaN
// before the call, so an unwritten element fails) and both of the test's
// own bounds hold (max|err| <= tol * max|ref|, NMSE <= nmse_tol; each test
// file justifies its numbers), and, when the PyTorch table is present for
// that case, max|err| <= 2x PyTorch's fp16 max|err| on the same shape
// (the criterion; flash-attention's test rule).
//
// PyTorch table: HSD_TORCH_FP16_ERR_JSON names a JSON-lines file written by
// bench/torch_fp16_error.py on the GPU machine, one line per case:
//   {"op": "attention", "case": "self_n2_h8_t4096_d40", "max_abs": ..., "nmse": ..., "max_ref": ...}
// Case names are built the same way here and there.
#ifndef HSD_TEST_CUDA_COMMON_H
#define HSD_TEST_CUDA_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "registry.h"

// Returns 1 when a GPU is present (prints device, seed, torch table), else
// prints "no GPU: skipped" and returns 0: the test then returns
// HSD_TEST_SKIP. With --reference-only on the command line and no GPU it
// returns 2: the test builds every case's inputs and CPU reference (so the
// shapes, names and reference paths are exercised on CPU-only machines)
// and launches nothing. Creates the CPU reference backend (tc_cpu()).
int tc_init(const char *test_name, int argc, char **argv);
// 1 when kernels run (a GPU is present, or the emulation), 0 in
// --reference-only mode.
int tc_gpu(void);
// Emulated build (hsd_cuda_emu, cuda/emulate.cuh): kernels run on the CPU,
// slowly. Returns 1 (and prints why) when a case's `work` (the test's own
// cost measure, roughly the emulated warp-steps) is over the emulation
// budget (HSD_EMU_MAX_WORK, default 3e7), so the test skips that case;
// always 0 on a GPU.
int tc_skip_in_emulation(const char *op, const char *case_name, double work);
// Reference-only mode: checks the reference is finite and prints it.
void tc_reference_only(const char *op, const char *case_name, const float *ref, size_t n,
                       double seconds);
double tc_seconds(void);  // monotonic clock
struct hsd_backend *tc_cpu(void);
// Releases what tc_init made; returns hsd_test_finish().
int tc_finish(void);
// Compute capability of the device (major*10 + minor).
int tc_arch(void);

// Host buffer of n values uniform in [lo, hi), rounded to fp16 (so the CPU
// reference sees exactly what the GPU sees). Fresh values per call from the
// run's seed (HSD_TEST_SEED, else time-based; printed by tc_init).
float *tc_host_uniform(size_t n, float lo, float hi);
float *tc_host_alloc(size_t n);  // uninitialised host floats
// Device fp16 copy of a host array (the values must already be fp16-exact).
void *tc_dev_f16(const float *host, size_t n);
void *tc_dev_f32(const float *host, size_t n);     // device fp32 copy
void *tc_dev_poisoned_f16(size_t n);               // n fp16 NaNs
void tc_download_f16(float *dst, const void *dev, size_t n);
void tc_download_f32(float *dst, const void *dev, size_t n);
// CPU backend buffer holding a host array (the CPU backend's memory is host
// memory, so this is a copy through its upload op).
float *tc_cpu_buf(const float *host, size_t n);
float *tc_cpu_out(size_t n);  // NaN-filled
// Frees every buffer made by the tc_ allocators since the last call (call
// after each case).
void tc_free_all(void);

struct tc_err {
    double max_abs, max_ref, nmse;
    size_t worst, nonfinite;
    double worst_got, worst_ref;
};
struct tc_err tc_error(const float *got, const float *ref, size_t n);

// Checks and prints one (op, version, case): see the rule above. Returns 1
// on pass. A launch status other than HSD_OK is a failure, except
// HSD_ERR_UNSUPPORTED from a non-reference version, which is printed as
// "unsupported" and counted separately (the registry then runs the
// reference version for that shape; the production entry point is tested
// on every case through hsd_cuda_<op>()).
int tc_check(const char *op, const char *version, const char *case_name, const float *got,
             const float *ref, size_t n, double tol, double nmse_tol);
void tc_note_unsupported(const char *op, const char *version, const char *case_name);

#endif
