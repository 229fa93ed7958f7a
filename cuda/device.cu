#include "device.h"

#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

namespace {

// The oldest Linux driver branch each CUDA major runs on (minor-version
// compatibility; CUDA Toolkit release notes, "CUDA Driver" table: 12.x
// needs >= 525.60.13, 13.x >= 580.65.06).
const char *min_driver(int runtime_version) {
    switch (runtime_version / 1000) {
    case 12: return "525.60.13";
    case 13: return "580.65.06";
    default: return "the one its release notes name";
    }
}

}  // namespace

extern "C" enum hsd_status hsd_cuda_probe(struct hsd_cuda_probe *p) {
    memset(p, 0, sizeof *p);
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    cudaGetLastError();  // the count's error is not sticky; clear it for later calls
    if (cudaDriverGetVersion(&p->driver_version) != cudaSuccess) p->driver_version = 0;
    if (cudaRuntimeGetVersion(&p->runtime_version) != cudaSuccess) p->runtime_version = 0;
    const int rt = p->runtime_version, drv = p->driver_version;
    if (e == cudaSuccess && n > 0) {
        p->state = HSD_CUDA_AVAILABLE;
        p->count = n;
        snprintf(p->why, sizeof p->why, "%d GPU(s); driver supports CUDA %d.%d, runtime %d.%d", n,
                 drv / 1000, drv % 1000 / 10, rt / 1000, rt % 1000 / 10);
    } else if (e == cudaSuccess || e == cudaErrorNoDevice) {
        p->state = HSD_CUDA_NO_GPU;
        snprintf(p->why, sizeof p->why,
                 "no GPU: the NVIDIA driver (CUDA %d.%d) sees no device (check "
                 "CUDA_VISIBLE_DEVICES and the container's GPU request)",
                 drv / 1000, drv % 1000 / 10);
    } else if (e == cudaErrorInsufficientDriver && drv == 0) {
        p->state = HSD_CUDA_NO_DRIVER;
        snprintf(p->why, sizeof p->why,
                 "no NVIDIA driver (libcuda.so.1 not found): the CUDA %d.%d runtime of this build "
                 "needs a driver >= %s",
                 rt / 1000, rt % 1000 / 10, min_driver(rt));
    } else if (e == cudaErrorInsufficientDriver) {
        p->state = HSD_CUDA_DRIVER_TOO_OLD;
        snprintf(p->why, sizeof p->why,
                 "NVIDIA driver too old: it supports CUDA %d.%d, this build's runtime is CUDA "
                 "%d.%d (needs a driver >= %s; or build against the machine's toolkit)",
                 drv / 1000, drv % 1000 / 10, rt / 1000, rt % 1000 / 10, min_driver(rt));
    } else if (e == cudaErrorSystemDriverMismatch || e == cudaErrorCompatNotSupportedOnDevice) {
        p->state = HSD_CUDA_DRIVER_MISMATCH;
        snprintf(p->why, sizeof p->why,
                 "CUDA driver/runtime mismatch (%s): driver CUDA %d.%d, runtime %d.%d (a "
                 "forward-compatibility package that does not match the kernel driver, or a GPU "
                 "it does not support)",
                 cudaGetErrorString(e), drv / 1000, drv % 1000 / 10, rt / 1000, rt % 1000 / 10);
    } else {
        return hsd_fail(HSD_ERR_DEVICE, "cudaGetDeviceCount: %s", cudaGetErrorString(e));
    }
    return HSD_OK;
}

extern "C" enum hsd_status hsd_cuda_device_count(int *count) {
    struct hsd_cuda_probe p;
    *count = 0;
    enum hsd_status s = hsd_cuda_probe(&p);
    if (s == HSD_OK) *count = p.count;
    return s;
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
