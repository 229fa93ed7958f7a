// PNG writer: pixels and the parameters text chunk round-trip through
// libpng; an unwritable destination fails cleanly and leaves nothing behind.
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/png.h"
#include "testutil.h"

int main(void) {
    char dir[] = "/tmp/hsd_test_png_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/a.png", dir);
    enum { W = 37, H = 21 };  // odd sizes: row strides must be right
    uint8_t rgb[W * H * 3];
    for (int i = 0; i < W * H * 3; i++) rgb[i] = (uint8_t)(i * 7 + 3);
    const char *params = "{\"prompt\":\"caf\xc3\xa9 \xe2\x98\x95\",\"seed\":42}";
    struct hsd_png_text t[1] = {{"hsd-parameters", params}};
    CHECK_OK(hsd_png_write(path, rgb, W, H, t, 1));
    uint8_t *back = NULL;
    int w = 0, h = 0;
    char *value = NULL;
    CHECK_OK(hsd_png_read(path, &back, &w, &h, "hsd-parameters", &value));
    CHECK(w == W && h == H);
    CHECK(back && !memcmp(back, rgb, sizeof rgb));
    CHECKF(value && !strcmp(value, params), "text chunk: %s", value ? value : "(none)");
    free(back);
    free(value);

    // Unwritable destination: clear error, no file and no temporary left.
    snprintf(path, sizeof path, "%s/no/such/dir/b.png", dir);
    enum hsd_status s = hsd_png_write(path, rgb, W, H, NULL, 0);
    CHECKF(s == HSD_ERR_IO && strstr(hsd_last_error(), path), "%s", hsd_last_error());
    CHECK(hsd_png_check_writable(path) == HSD_ERR_IO);
    snprintf(path, sizeof path, "%s/c.png", dir);
    CHECK_OK(hsd_png_check_writable(path));
    CHECK(access(path, F_OK) != 0);  // the check leaves nothing behind
    DIR *d = opendir(dir);
    int entries = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') entries++;
    if (d) closedir(d);
    CHECKF(entries == 1, "%d files in %s, expected only a.png", entries, dir);
    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    CHECK(system(path) == 0);
    return hsd_test_finish();
}
