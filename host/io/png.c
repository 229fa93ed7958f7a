#include "io/png.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// libpng reports errors by longjmp; this handler keeps its message so the
// caller's status says what went wrong.
struct png_err {
    char msg[256];
};

static void on_error(png_structp png, png_const_charp msg) {
    struct png_err *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

// A growing in-memory PNG (hsd_png_encode).
struct membuf {
    uint8_t *p;
    size_t n, cap;
};

static void mem_write(png_structp png, png_bytep data, size_t len) {
    struct membuf *m = png_get_io_ptr(png);
    if (m->n + len > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->n + len) cap *= 2;
        uint8_t *q = realloc(m->p, cap);
        if (!q) png_error(png, "out of memory");
        m->p = q;
        m->cap = cap;
    }
    memcpy(m->p + m->n, data, len);
    m->n += len;
}

static void mem_flush(png_structp png) { (void)png; }

// To a file (f) or to memory (mem); `path` names the destination in errors.
static enum hsd_status write_png(FILE *f, struct membuf *mem, const char *path, const uint8_t *rgb,
                                 int w, int h, const struct hsd_png_text *text, int n_text) {
    struct png_err err = {{0}};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, on_error, on_warning);
    if (!png) return hsd_fail(HSD_ERR_NOMEM, "%s: cannot create PNG writer", path);
    png_infop info = png_create_info_struct(png);
    png_textp chunks = NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(chunks);
        return hsd_fail(HSD_ERR_IO, "%s: writing PNG failed: %s", path,
                        err.msg[0] ? err.msg : "out of memory");
    }
    if (mem)
        png_set_write_fn(png, mem, mem_write, mem_flush);
    else
        png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (n_text > 0) {
        chunks = calloc((size_t)n_text, sizeof *chunks);
        if (!chunks) png_error(png, "out of memory");
        for (int i = 0; i < n_text; i++) {
            // iTXt: UTF-8 values (prompts are UTF-8), uncompressed.
            chunks[i].compression = PNG_ITXT_COMPRESSION_NONE;
            chunks[i].key = (png_charp)text[i].key;
            chunks[i].text = (png_charp)text[i].value;
            chunks[i].itxt_length = strlen(text[i].value);
            chunks[i].lang = NULL;
            chunks[i].lang_key = NULL;
        }
        png_set_text(png, info, chunks, n_text);
    }
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, rgb + (size_t)y * w * 3);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(chunks);
    return HSD_OK;
}

static int make_tmp_path(char *buf, size_t cap, const char *path) {
    int n = snprintf(buf, cap, "%s.tmp.%ld", path, (long)getpid());
    return n > 0 && (size_t)n < cap;
}

enum hsd_status hsd_png_write(const char *path, const uint8_t *rgb, int w, int h,
                              const struct hsd_png_text *text, int n_text) {
    if (w <= 0 || h <= 0 || w > (1 << 20) || h > (1 << 20))
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: bad image size %dx%d", path, w, h);
    char tmp[4200];
    if (!make_tmp_path(tmp, sizeof tmp, path))
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return hsd_fail(HSD_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    enum hsd_status s = write_png(f, NULL, path, rgb, w, h, text, n_text);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        if (!s) s = hsd_fail(HSD_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    if (fclose(f) != 0 && !s) s = hsd_fail(HSD_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    if (!s && rename(tmp, path) != 0)
        s = hsd_fail(HSD_ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno));
    if (s) unlink(tmp);
    return s;
}

enum hsd_status hsd_png_encode(uint8_t **png, size_t *len, const uint8_t *rgb, int w, int h,
                               const struct hsd_png_text *text, int n_text) {
    *png = NULL;
    *len = 0;
    if (w <= 0 || h <= 0 || w > (1 << 20) || h > (1 << 20))
        return hsd_fail(HSD_ERR_INVALID_ARG, "PNG in memory: bad image size %dx%d", w, h);
    struct membuf m = {0};
    enum hsd_status s = write_png(NULL, &m, "PNG in memory", rgb, w, h, text, n_text);
    if (s) {
        free(m.p);
        return s;
    }
    *png = m.p;
    *len = m.n;
    return HSD_OK;
}

enum hsd_status hsd_png_check_writable(const char *path) {
    char tmp[4200];
    if (!make_tmp_path(tmp, sizeof tmp, path))
        return hsd_fail(HSD_ERR_INVALID_ARG, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return hsd_fail(HSD_ERR_IO, "%s: cannot write the output: %s", path, strerror(errno));
    fclose(f);
    unlink(tmp);
    return HSD_OK;
}

enum hsd_status hsd_png_read(const char *path, uint8_t **rgb, int *w, int *h, const char *key,
                             char **value) {
    *rgb = NULL;
    if (value) *value = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return hsd_fail(HSD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct png_err err = {{0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile buf = NULL;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        free(buf);
        if (value) {
            free(*value);
            *value = NULL;
        }
        return hsd_fail(HSD_ERR_FORMAT, "%s: not a readable PNG: %s", path, err.msg);
    }
    png_init_io(png, f);
    png_read_info(png, info);
    if (png_get_bit_depth(png, info) != 8 || png_get_color_type(png, info) != PNG_COLOR_TYPE_RGB)
        png_error(png, "expected 8-bit RGB");
    *w = (int)png_get_image_width(png, info);
    *h = (int)png_get_image_height(png, info);
    buf = malloc((size_t)*w * *h * 3);
    if (!buf) png_error(png, "out of memory");
    for (int y = 0; y < *h; y++) png_read_row(png, buf + (size_t)y * *w * 3, NULL);
    png_read_end(png, info);
    if (key && value) {
        png_textp t;
        int n = 0;
        png_get_text(png, info, &t, &n);
        for (int i = 0; i < n; i++)
            if (!strcmp(t[i].key, key)) *value = strdup(t[i].text);
    }
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    *rgb = buf;
    return HSD_OK;
}
