// The CUDA device query: no GPU (or no driver) is reported as zero devices,
// and the test is skipped (77); with a GPU every device's facts are sane.
#include <stdio.h>

#include "device.h"
#include "testutil.h"

int main(void) {
    int n = -1;
    CHECK_OK(hsd_cuda_device_count(&n));
    if (n == 0) {
        printf("no GPU: skipped\n");
        return HSD_TEST_SKIP;
    }
    for (int i = 0; i < n; i++) {
        struct hsd_cuda_device_info d;
        CHECK_OK(hsd_cuda_device_info(i, &d));
        printf("cuda:%d %s sm_%d%d %d SMs %.1f GiB\n", i, d.name, d.sm_major, d.sm_minor,
               d.sm_count, (double)d.total_mem / (1 << 30));
        CHECK(d.sm_major >= 7 && d.sm_count > 0 && d.total_mem > 0 && d.name[0]);
    }
    return hsd_test_finish();
}
