#include "device.h"

#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

extern "C" enum hsd_status hsd_cuda_device_count(int *count) {
    *count = 0;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    // No driver / no device are the normal state of CPU-only machines.
    if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) {
        cudaGetLastError();
        return HSD_OK;
    }
    if (e != cudaSuccess)
        return hsd_fail(HSD_ERR_DEVICE, "cudaGetDeviceCount: %s", cudaGetErrorString(e));
    *count = n;
    return HSD_OK;
}

extern "C" enum hsd_status hsd_cuda_device_info(int index, struct hsd_cuda_device_info *info) {
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, index);
    if (e != cudaSuccess)
        return hsd_fail(HSD_ERR_DEVICE, "cudaGetDeviceProperties(%d): %s", index,
                        cudaGetErrorString(e));
    memset(info, 0, sizeof *info);
    info->index = index;
    snprintf(info->name, sizeof info->name, "%s", p.name);
    info->sm_major = p.major;
    info->sm_minor = p.minor;
    info->sm_count = p.multiProcessorCount;
    info->total_mem = p.totalGlobalMem;
    return HSD_OK;
}
