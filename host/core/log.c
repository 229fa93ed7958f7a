#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// -1 = not yet read from the environment.
static atomic_int g_level = -1;

static enum hsd_log_level level_from_env(void) {
    const char *e = getenv("HSD_LOG");
    if (!e) return HSD_LOG_WARN;
    if (!strcmp(e, "error")) return HSD_LOG_ERROR;
    if (!strcmp(e, "info")) return HSD_LOG_INFO;
    if (!strcmp(e, "debug")) return HSD_LOG_DEBUG;
    return HSD_LOG_WARN;
}

void hsd_log_set_level(enum hsd_log_level level) { atomic_store(&g_level, (int)level); }

enum hsd_log_level hsd_log_get_level(void) {
    int l = atomic_load(&g_level);
    if (l < 0) {
        l = (int)level_from_env();
        atomic_store(&g_level, l);
    }
    return (enum hsd_log_level)l;
}

void hsd_log(enum hsd_log_level level, const char *fmt, ...) {
    static const char *const tags[] = {"error", "warn", "info", "debug"};
    if (level > hsd_log_get_level()) return;
    // One fprintf per line so lines from different threads do not interleave.
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "hsd %s: %s\n", tags[level], buf);
}
