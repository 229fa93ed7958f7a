// --lora argument parsing (cli/cli_lora.h).
#include "cli/cli_lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int room(const char *cmd, const struct hsd_cli_loras *l) {
    if (l->n < HSD_PIPELINE_MAX_LORAS) return 0;
    fprintf(stderr, "hsd %s: at most %d --lora\n", cmd, HSD_PIPELINE_MAX_LORAS);
    return -1;
}

// FILE[:SCALE] of arg into slot l->n (name set by the caller).
static int file_scale(const char *cmd, struct hsd_cli_loras *l, char *arg) {
    float scale = 1.0f;
    char *colon = strrchr(arg, ':');
    if (colon && colon[1]) {
        char *end;
        float v = strtof(colon + 1, &end);
        if (!*end) {
            if (!isfinite(v) || fabsf(v) > 16.0f) {
                fprintf(stderr, "hsd %s: --lora %s: the scale must be in [-16, 16]\n", cmd, arg);
                return -1;
            }
            scale = v;
            *colon = 0;
        }
    }
    if (!*arg) {
        fprintf(stderr, "hsd %s: --lora needs a FILE\n", cmd);
        return -1;
    }
    l->spec[l->n].path = arg;
    l->scale[l->n] = scale;
    return 0;
}

int hsd_cli_lora_file(const char *cmd, struct hsd_cli_loras *l, char *arg) {
    if (room(cmd, l) || file_scale(cmd, l, arg)) return -1;
    snprintf(l->names[l->n], sizeof l->names[0], "lora%d", l->n);
    l->spec[l->n].name = l->names[l->n];
    l->n++;
    return 0;
}

int hsd_cli_lora_named(const char *cmd, struct hsd_cli_loras *l, char *arg, int with_scale) {
    if (room(cmd, l)) return -1;
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1] || eq - arg > 63) {
        fprintf(stderr, "hsd %s: --lora expects NAME=FILE%s (a name of 1..63 bytes), got '%s'\n",
                cmd, with_scale ? "[:SCALE]" : "", arg);
        return -1;
    }
    *eq = 0;
    if (with_scale) {
        if (file_scale(cmd, l, eq + 1)) return -1;
    } else {
        l->spec[l->n].path = eq + 1;
        l->scale[l->n] = 1.0f;
    }
    l->spec[l->n].name = arg;
    l->n++;
    return 0;
}
