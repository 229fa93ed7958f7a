// Device buffers: see memory.h.
#include "memory.h"

#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/dtype.h"

extern "C" enum hsd_status hsd_cuda_alloc(void **p, size_t bytes) {
    *p = NULL;
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 16);
    if (e != cudaSuccess) {
        *p = NULL;
        return hsd_fail(HSD_ERR_NOMEM, "cudaMalloc(%zu): %s", bytes, cudaGetErrorString(e));
    }
    return HSD_OK;
}

extern "C" void hsd_cuda_free(void *p) {
    if (p) cudaFree(p);
}

extern "C" enum hsd_status hsd_cuda_upload_f16(void *dst, const float *src, size_t count) {
    if (!count) return HSD_OK;
    uint16_t *tmp = (uint16_t *)malloc(count * sizeof *tmp);
    if (!tmp) return hsd_fail(HSD_ERR_NOMEM, "upload_f16: %zu values", count);
    for (size_t i = 0; i < count; i++) tmp[i] = hsd_f32_to_f16(src[i]);
    cudaError_t e = cudaMemcpy(dst, tmp, count * sizeof *tmp, cudaMemcpyHostToDevice);
    free(tmp);
    if (e != cudaSuccess) return hsd_fail(HSD_ERR_DEVICE, "upload_f16: %s", cudaGetErrorString(e));
    return HSD_OK;
}

extern "C" enum hsd_status hsd_cuda_download_f16(float *dst, const void *src, size_t count) {
    if (!count) return HSD_OK;
    uint16_t *tmp = (uint16_t *)malloc(count * sizeof *tmp);
    if (!tmp) return hsd_fail(HSD_ERR_NOMEM, "download_f16: %zu values", count);
    cudaError_t e = cudaMemcpy(tmp, src, count * sizeof *tmp, cudaMemcpyDeviceToHost);
    if (e == cudaSuccess)
        for (size_t i = 0; i < count; i++) dst[i] = hsd_f16_to_f32(tmp[i]);
    free(tmp);
    if (e != cudaSuccess) return hsd_fail(HSD_ERR_DEVICE, "download_f16: %s", cudaGetErrorString(e));
    return HSD_OK;
}

extern "C" enum hsd_status hsd_cuda_upload_f32(void *dst, const float *src, size_t count) {
    if (!count) return HSD_OK;
    cudaError_t e = cudaMemcpy(dst, src, count * sizeof(float), cudaMemcpyHostToDevice);
    if (e != cudaSuccess) return hsd_fail(HSD_ERR_DEVICE, "upload_f32: %s", cudaGetErrorString(e));
    return HSD_OK;
}

extern "C" enum hsd_status hsd_cuda_download_f32(float *dst, const void *src, size_t count) {
    if (!count) return HSD_OK;
    cudaError_t e = cudaMemcpy(dst, src, count * sizeof(float), cudaMemcpyDeviceToHost);
    if (e != cudaSuccess) return hsd_fail(HSD_ERR_DEVICE, "download_f32: %s", cudaGetErrorString(e));
    return HSD_OK;
}

extern "C" enum hsd_status hsd_cuda_poison_f16(void *dst, size_t count) {
    cudaError_t e = cudaMemset(dst, 0xFF, count * 2);  // 0xFFFF: an fp16 NaN
    if (e != cudaSuccess) return hsd_fail(HSD_ERR_DEVICE, "poison: %s", cudaGetErrorString(e));
    return HSD_OK;
}

extern "C" enum hsd_status hsd_cuda_sync(void) {
    cudaError_t e = cudaDeviceSynchronize();
    if (e == cudaSuccess) e = cudaGetLastError();
    if (e != cudaSuccess) return hsd_fail(HSD_ERR_DEVICE, "device: %s", cudaGetErrorString(e));
    return HSD_OK;
}

extern "C" int hsd_cuda_arch(void) {
    int dev = 0, major = 0, minor = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return major * 10 + minor;
}

#ifdef HSD_CUDA_EMULATE
extern "C" void hsd_cuda_emu_set_dry_run(int on) { hsd_emu::g_dry = on != 0; }
#endif

extern "C" int hsd_cuda_emulated(void) {
#ifdef HSD_CUDA_EMULATE
    return 1;
#else
    return 0;
#endif
}
