// --prediction v|epsilon, shared by hsd generate, serve and edge (cli.h):
// SD 2.x 768-v and 2.x-base single files have the same weights' shapes.
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "pipeline/pipeline.h"

int hsd_cli_parse_prediction(const char *cmd, const char *v, int *out) {
    if (!strcmp(v, "v") || !strcmp(v, "v_prediction")) *out = HSD_PREDICTION_V;
    else if (!strcmp(v, "epsilon") || !strcmp(v, "eps")) *out = HSD_PREDICTION_EPSILON;
    else {
        fprintf(stderr, "hsd %s: --prediction takes v or epsilon, got '%s'\n", cmd, v);
        return -1;
    }
    return 0;
}
