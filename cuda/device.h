// Device query for the CUDA backend. Works (and says "no GPU") on machines
// with the CUDA runtime but no driver or no device.
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

// Number of usable devices in *count (0 when there is no GPU or no driver:
// that is not an error). Other runtime failures return HSD_ERR_DEVICE.
enum hsd_status hsd_cuda_device_count(int *count);
enum hsd_status hsd_cuda_device_info(int index, struct hsd_cuda_device_info *info);

#ifdef __cplusplus
}
#endif
#endif
