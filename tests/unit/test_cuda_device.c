// The CUDA device query: no GPU, no driver or a driver too old are reported
// as zero devices with the reason (hsd_cuda_probe), and the test is skipped
// (77) after checking the reason is consistent; with a GPU every device's
// facts are sane.
#include <stdio.h>

#include "device.h"
#include "testutil.h"

int main(void) {
    int n = -1;
    struct hsd_cuda_probe probe;
    CHECK_OK(hsd_cuda_device_count(&n));
    CHECK_OK(hsd_cuda_probe(&probe));
    CHECK(probe.count == n && probe.runtime_version > 0);
    CHECK((probe.state == HSD_CUDA_AVAILABLE) == (n > 0));
    // No driver is told apart from an old one by the driver's version.
    CHECK((probe.state == HSD_CUDA_NO_DRIVER) == (probe.driver_version == 0));
    printf("probe: %s\n", probe.why);
    if (n == 0) {
        printf("%s: skipped\n", probe.why);
        return hsd_test_failures() ? hsd_test_finish() : HSD_TEST_SKIP;
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
