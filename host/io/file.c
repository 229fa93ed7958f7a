#include "io/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum hsd_status hsd_read_small_file(const char *path, size_t max_bytes, const char *what,
                                    char **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return hsd_fail(HSD_ERR_IO, "%s: cannot open %s: %s", path, what, strerror(errno));
    char *b = malloc(max_bytes + 1);
    if (!b) {
        fclose(f);
        return hsd_fail(HSD_ERR_NOMEM, "%s: no memory to read the %s", path, what);
    }
    size_t n = fread(b, 1, max_bytes, f);
    int err = ferror(f), more = !err && fgetc(f) != EOF;
    fclose(f);
    if (err || more) {
        free(b);
        if (err) return hsd_fail(HSD_ERR_IO, "%s: reading the %s failed", path, what);
        return hsd_fail(HSD_ERR_FORMAT, "%s: larger than %zu bytes, not a %s", path, max_bytes,
                        what);
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return HSD_OK;
}

enum hsd_status hsd_parse_small_file(const char *path, size_t max_bytes, const char *what,
                                     hsd_text_parse_fn parse, void *ctx) {
    char *text;
    size_t len;
    enum hsd_status s = hsd_read_small_file(path, max_bytes, what, &text, &len);
    if (s) return s;
    s = parse(ctx, text, len, path);
    free(text);
    return s;
}

int hsd_is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int hsd_is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int hsd_path_too_long(int written, size_t cap) { return written < 0 || (size_t)written >= cap; }
