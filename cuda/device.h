// Device query for the CUDA backend. Works on machines with the CUDA
// runtime but no driver or no device, and says which of the two it is.
#ifndef HSD_CUDA_DEVICE_H
#define HSD_CUDA_DEVICE_H

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct hsd_cuda_device_info {
    int index;
    char name[256];
    int sm_major, sm_minor;
    int sm_count;
    size_t total_mem;
};

// Why there are (no) devices, from cudaGetDeviceCount's error code and
// cudaDriverGetVersion (0 when no driver is installed: the runtime then
// answers cudaErrorInsufficientDriver too, so the version tells the cases
// apart).
enum hsd_cuda_availability {
    HSD_CUDA_AVAILABLE,        // count > 0
    HSD_CUDA_NO_GPU,           // a driver, no device (cudaErrorNoDevice)
    HSD_CUDA_NO_DRIVER,        // no NVIDIA driver (libcuda.so.1) at all
    HSD_CUDA_DRIVER_TOO_OLD,   // the driver's CUDA version < the runtime's
    HSD_CUDA_DRIVER_MISMATCH,  // forward-compatibility failure (cudaErrorSystemDriverMismatch,
                               // cudaErrorCompatNotSupportedOnDevice)
};

struct hsd_cuda_probe {
    enum hsd_cuda_availability state;
    int count;             // usable devices (0 unless AVAILABLE)
    int driver_version;    // CUDA version the driver supports, 1000*major + 10*minor; 0: none
    int runtime_version;   // this build's CUDA runtime, same encoding
    char why[320];         // one line for messages: what was found and what to do
};

// Fills *p. HSD_OK for every state above; HSD_ERR_DEVICE for another
// runtime failure (the message names the CUDA error).
enum hsd_status hsd_cuda_probe(struct hsd_cuda_probe *p);
// Number of usable devices in *count (0 when there is no GPU or no usable
// driver: that is not an error; hsd_cuda_probe says why). Other runtime
// failures return HSD_ERR_DEVICE.
enum hsd_status hsd_cuda_device_count(int *count);
enum hsd_status hsd_cuda_device_info(int index, struct hsd_cuda_device_info *info);

#ifdef __cplusplus
}
#endif
#endif
