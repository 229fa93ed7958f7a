// List-valued flags shared by hsd serve and hsd bench serve (cli.h).
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "pipeline/pipeline.h"

int hsd_cli_parse_int_list(const char *cmd, const char *flag, const char *arg, int *out,
                           int max_n, int lo, int hi) {
    int n = 0;
    for (const char *p = arg; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || (*end && *end != ',') || v < lo || v > hi || n == max_n) {
            fprintf(stderr, "hsd %s: %s %s: expected up to %d comma-separated integers in "
                            "[%d, %d]\n", cmd, flag, arg, max_n, lo, hi);
            return -1;
        }
        out[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (n == 0) fprintf(stderr, "hsd %s: %s: expected at least one integer\n", cmd, flag);
    return n ? n : -1;
}

// "1,2,4,8": up to HSD_PIPELINE_MAX_BUCKETS sizes; the pipeline checks
// their order and range at load.
int hsd_cli_parse_buckets(const char *cmd, const char *arg, int *out) {
    return hsd_cli_parse_int_list(cmd, "--buckets", arg, out, HSD_PIPELINE_MAX_BUCKETS, 1,
                                  HSD_PIPELINE_MAX_ROWS);
}

int hsd_cli_parse_micro(const char *cmd, int original, const char *arg, int max,
                        struct hsd_gen_request *r) {
    // WxH / TOP,LEFT: two integers in [0, max], one separator.
    int a, b, n = -1;
    const char *fmt = original ? "%d x %d%n" : "%d , %d%n";
    if (sscanf(arg, fmt, &a, &b, &n) != 2 || arg[n] || a < 0 || b < 0 || a > max || b > max ||
        (original && (!a || !b))) {
        fprintf(stderr, "hsd %s: %s expects %s (each 0..%d), got '%s'\n", cmd,
                original ? "--original-size" : "--crop", original ? "WIDTHxHEIGHT" : "TOP,LEFT",
                max, arg);
        return -1;
    }
    if (original) r->original_width = a, r->original_height = b;
    else r->crop_top = a, r->crop_left = b;
    return 0;
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
