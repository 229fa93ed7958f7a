// Status codes and error messages: the runtime-failure tier of docs/conventions.md
// "Errors". A function that can fail returns enum hsd_status and records a
// message with hsd_fail(); the caller prints hsd_last_error(). Bugs use
// HSD_ASSERT (core/assert.h) instead.
#ifndef HSD_CORE_STATUS_H
#define HSD_CORE_STATUS_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

enum hsd_status {
    HSD_OK = 0,
    HSD_ERR_INVALID_ARG,  // caller passed a bad value (flag, dimension, ...)
    HSD_ERR_IO,           // open/read/write/mmap failed
    HSD_ERR_FORMAT,       // a file or message broke its format's rules
    HSD_ERR_UNSUPPORTED,  // valid input that this build does not handle
    HSD_ERR_NOT_FOUND,    // a named tensor, key or file is missing
    HSD_ERR_SHAPE,        // a tensor's shape contradicts config or peers
    HSD_ERR_NOMEM,        // allocation failed
    HSD_ERR_NO_DEVICE,    // no GPU (or the requested one is absent)
    HSD_ERR_DEVICE,       // a device runtime call failed
    HSD_ERR_INTERNAL,     // should not happen; report a bug
    HSD_ERR_CANCELLED,    // stopped on request (every request of a batch cancelled)
    HSD_STATUS_COUNT
};

// Short stable name ("format error") for a code.
const char *hsd_status_str(enum hsd_status s);

// Records a formatted message for this thread and returns `s`, so callers
// write `return hsd_fail(HSD_ERR_FORMAT, "%s: ...", path);`.
enum hsd_status hsd_fail(enum hsd_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
enum hsd_status hsd_vfail(enum hsd_status s, const char *fmt, va_list ap);

// Prefixes the current message with more context ("loading unet: " + old).
enum hsd_status hsd_fail_context(enum hsd_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

// The last message recorded on this thread ("" if none).
const char *hsd_last_error(void);
void hsd_clear_error(void);

#ifdef __cplusplus
}
#endif

#endif
