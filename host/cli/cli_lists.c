// List-valued flags shared by hsd serve and hsd bench serve (cli.h).
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "pipeline/pipeline.h"

// "1,2,4,8": up to HSD_PIPELINE_MAX_BUCKETS sizes; the pipeline checks
// their order and range at load.
int hsd_cli_parse_buckets(const char *cmd, const char *arg, int *out) {
    int n = 0;
    for (const char *p = arg; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || (*end && *end != ',') || v < 1 || v > HSD_PIPELINE_MAX_ROWS ||
            n == HSD_PIPELINE_MAX_BUCKETS) {
            fprintf(stderr,
                    "hsd %s: --buckets %s: expected up to %d comma-separated sizes in [1, %d]\n",
                    cmd, arg, HSD_PIPELINE_MAX_BUCKETS, HSD_PIPELINE_MAX_ROWS);
            return -1;
        }
        out[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    return n;
}

// "512,768x512": up to 16 sizes, each WxH or S (square).
int hsd_cli_parse_sizes(const char *cmd, const char *arg, int *out) {
    int n = 0;
    for (const char *p = arg; *p;) {
        char *end;
        long w = strtol(p, &end, 10), h = w;
        if (end != p && *end == 'x') h = strtol(end + 1, &end, 10);
        if (end == p || (*end && *end != ',') || w < 1 || h < 1 || w > 4096 || h > 4096 ||
            n == 16) {
            fprintf(stderr, "hsd %s: --warmup-sizes %s: expected up to 16 comma-separated "
                            "sizes WxH or S in [1, 4096]\n", cmd, arg);
            return -1;
        }
        out[2 * n] = (int)w;
        out[2 * n + 1] = (int)h;
        n++;
        p = *end ? end + 1 : end;
    }
    return n;
}
