#include "core/status.h"

#include <stdio.h>
#include <string.h>

// One message per thread, like errno: worker threads that fail a request do
// not overwrite each other's text.
static _Thread_local char g_msg[1024];

static const char *const k_names[HSD_STATUS_COUNT] = {
    [HSD_OK] = "ok",
    [HSD_ERR_INVALID_ARG] = "invalid argument",
    [HSD_ERR_IO] = "I/O error",
    [HSD_ERR_FORMAT] = "format error",
    [HSD_ERR_UNSUPPORTED] = "unsupported",
    [HSD_ERR_NOT_FOUND] = "not found",
    [HSD_ERR_SHAPE] = "shape mismatch",
    [HSD_ERR_NOMEM] = "out of memory",
    [HSD_ERR_NO_DEVICE] = "no device",
    [HSD_ERR_DEVICE] = "device error",
    [HSD_ERR_INTERNAL] = "internal error",
    [HSD_ERR_CANCELLED] = "cancelled",
};

const char *hsd_status_str(enum hsd_status s) {
    if ((int)s < 0 || s >= HSD_STATUS_COUNT) return "unknown status";
    return k_names[s];
}

enum hsd_status hsd_vfail(enum hsd_status s, const char *fmt, va_list ap) {
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    return s;
}

enum hsd_status hsd_fail(enum hsd_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    hsd_vfail(s, fmt, ap);
    va_end(ap);
    return s;
}

enum hsd_status hsd_fail_context(enum hsd_status s, const char *fmt, ...) {
    char prefix[512], old[sizeof g_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_msg, sizeof old);
    // Truncation is fine here: the message is for people, capped at 1 KB.
    size_t pl = strnlen(prefix, sizeof prefix - 1);
    memcpy(g_msg, prefix, pl);
    size_t room = sizeof g_msg - 1 - pl;
    size_t ol = strnlen(old, room);
    memcpy(g_msg + pl, old, ol);
    g_msg[pl + ol] = '\0';
    return s;
}

const char *hsd_last_error(void) { return g_msg; }

void hsd_clear_error(void) { g_msg[0] = '\0'; }
