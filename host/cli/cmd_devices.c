// hsd devices: what the CUDA backend can use on this machine.
#include <stdio.h>

#include "cli/cli.h"
#ifdef HSD_HAVE_CUDA
#include "device.h"
#endif

int hsd_cmd_devices(int argc, char **argv) {
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "usage: hsd devices\n");
        return 2;
    }
#ifdef HSD_HAVE_CUDA
    struct hsd_cuda_probe probe;
    if (hsd_cuda_probe(&probe)) return hsd_cli_fail("devices");
    const int n = probe.count;
    if (n == 0) {
        printf("%s (CPU backend only)\n", probe.why);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        struct hsd_cuda_device_info d;
        if (hsd_cuda_device_info(i, &d)) return hsd_cli_fail("devices");
        printf("cuda:%d  %s  sm_%d%d  %d SMs  %.1f GiB\n", i, d.name, d.sm_major, d.sm_minor,
               d.sm_count, (double)d.total_mem / (1 << 30));
    }
#else
    printf("no GPU: this hsd was built without the CUDA backend (CPU backend only)\n");
#endif
    return 0;
}
