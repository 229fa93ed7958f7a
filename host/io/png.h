// PNG output through libpng: 8-bit RGB with text chunks (the generation
// parameters), written atomically (temporary file + rename) so a failed or
// interrupted write never leaves a partial image at the destination.
#ifndef HSD_IO_PNG_H
#define HSD_IO_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

struct hsd_png_text {
    const char *key;    // Latin-1 keyword, 1..79 bytes
    const char *value;  // stored as UTF-8 in an iTXt chunk
};

// rgb: [h, w, 3] bytes, row-major.
enum hsd_status hsd_png_write(const char *path, const uint8_t *rgb, int w, int h,
                              const struct hsd_png_text *text, int n_text);

// The same PNG in memory: *png is malloc'd (*len bytes; free() it).
enum hsd_status hsd_png_encode(uint8_t **png, size_t *len, const uint8_t *rgb, int w, int h,
                               const struct hsd_png_text *text, int n_text);

// Checks that `path` can be created (its folder exists and is writable)
// without leaving anything behind: callers validate outputs before compute.
enum hsd_status hsd_png_check_writable(const char *path);

// Reads an 8-bit RGB PNG (for tests): *rgb is malloc'd [h, w, 3]; the value
// of text chunk `key` (if any, else NULL) is malloc'd into *value.
enum hsd_status hsd_png_read(const char *path, uint8_t **rgb, int *w, int *h, const char *key,
                             char **value);

#endif
