// Device buffers for tests, benchmarks and (later) the CUDA backend's
// upload/download: allocation, fp32 <-> fp16 transfers (rounded on the host
// with core/dtype.h's round-to-nearest-even), NaN poisoning. Synchronous:
// these are set-up paths, not the step loop. C-callable.
#ifndef HSD_CUDA_MEMORY_H
#define HSD_CUDA_MEMORY_H

#include <stddef.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum hsd_status hsd_cuda_alloc(void **p, size_t bytes);  // cudaMalloc; *p = NULL on failure
void hsd_cuda_free(void *p);
// count fp32 host values -> count fp16 device values (dst must hold 2*count bytes).
enum hsd_status hsd_cuda_upload_f16(void *dst, const float *src, size_t count);
enum hsd_status hsd_cuda_download_f16(float *dst, const void *src, size_t count);
enum hsd_status hsd_cuda_upload_f32(void *dst, const float *src, size_t count);
enum hsd_status hsd_cuda_download_f32(float *dst, const void *src, size_t count);
// Fills count fp16 values with NaN (0xFFFF), so unwritten outputs fail a check.
enum hsd_status hsd_cuda_poison_f16(void *dst, size_t count);
// Waits for the device and reports any asynchronous kernel error.
enum hsd_status hsd_cuda_sync(void);
// Compute capability of the current device as major*10 + minor, 0 without one.
int hsd_cuda_arch(void);
// 1 in the host-emulation build of the kernels (cuda/emulate.cuh), else 0.
int hsd_cuda_emulated(void);
// Emulation build only (hsd_cuda_emu; not defined in hsd_cuda): on = 1 makes
// every launch check its limits and run nothing, so launchers can be asked
// about full-size shapes with buffers that do not exist (the shape query of
// tests/unit/test_cuda_model_shapes.c).
void hsd_cuda_emu_set_dry_run(int on);

#ifdef __cplusplus
}
#endif
#endif
