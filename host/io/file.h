// Reading a small text file (configs, keys) whole, with a size cap so a
// wrong path (a weights file, a device) fails clearly instead of filling
// memory.
#ifndef HSD_IO_FILE_H
#define HSD_IO_FILE_H

#include <stddef.h>

#include "core/status.h"

// *buf (malloc'd, NUL-terminated, caller frees) and *len receive the file.
// Fails with HSD_ERR_IO (cannot open/read) or HSD_ERR_FORMAT (over
// max_bytes); `what` names the file's role in messages ("config").
enum hsd_status hsd_read_small_file(const char *path, size_t max_bytes, const char *what,
                                    char **buf, size_t *len);

// Reads the file as above and hands its text to parse(ctx, text, len,
// path), for the config readers that take text (unet, clip, scheduler).
typedef enum hsd_status (*hsd_text_parse_fn)(void *ctx, const char *text, size_t len,
                                             const char *label);
enum hsd_status hsd_parse_small_file(const char *path, size_t max_bytes, const char *what,
                                     hsd_text_parse_fn parse, void *ctx);

// 1 when `p` is a regular file / a directory (following links), else 0.
int hsd_is_file(const char *p);
int hsd_is_dir(const char *p);
// 1 when snprintf's return `written` says a path did not fit `cap` bytes
// (or failed): callers fail instead of using a silently cut path.
int hsd_path_too_long(int written, size_t cap);

#endif
