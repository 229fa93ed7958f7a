// Helper for tests/cli/edge_*.sh: compares two PNGs written by hsd.
//   test_edge_pngcmp A.png B.png
// Exit 0 when the decoded pixels are equal (hsd_png_read) AND the IDAT
// chunks' bytes are equal (the compressed image data: libpng is
// deterministic, so equal pixels written by hsd_png_write give equal IDAT).
// The text chunks may differ (hsd edge records the cloud's k and timings).
// Exit 1 otherwise, saying where the first difference is.
//   test_edge_pngcmp --tol N A.png B.png
// Exit 0 when every 8-bit channel differs by at most N (IDAT not compared):
// for requests batched with others, whose fp32 rounding differs (see
// tests/cli/sdxl_serve.sh). Prints the largest difference either way.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/png.h"

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = len > 0 ? malloc((size_t)len) : NULL;
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = b ? (size_t)len : 0;
    return b;
}

// Concatenated IDAT payloads; NULL on a malformed file.
static unsigned char *idat(const unsigned char *b, size_t n, size_t *out_n) {
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n < 8 || memcmp(b, sig, 8)) return NULL;
    unsigned char *out = malloc(n);
    size_t o = 0, p = 8;
    while (out && p + 12 <= n) {
        size_t len = (size_t)b[p] << 24 | (size_t)b[p + 1] << 16 | (size_t)b[p + 2] << 8 | b[p + 3];
        if (len > n - p - 12) break;
        if (!memcmp(b + p + 4, "IDAT", 4)) {
            memcpy(out + o, b + p + 8, len);
            o += len;
        }
        p += 12 + len;
    }
    if (!out || p != n || o == 0) {
        free(out);
        return NULL;
    }
    *out_n = o;
    return out;
}

int main(int argc, char **argv) {
    int tol = -1;  // -1: exact, IDAT included
    if (argc == 5 && !strcmp(argv[1], "--tol")) {
        tol = atoi(argv[2]);
        argv += 2;
        argc -= 2;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: %s [--tol N] A.png B.png\n", argv[0]);
        return 2;
    }
    uint8_t *pa = NULL, *pb = NULL;
    int wa, ha, wb, hb;
    if (hsd_png_read(argv[1], &pa, &wa, &ha, NULL, NULL) ||
        hsd_png_read(argv[2], &pb, &wb, &hb, NULL, NULL)) {
        fprintf(stderr, "pngcmp: %s\n", hsd_last_error());
        return 1;
    }
    int rc = 0;
    if (wa != wb || ha != hb) {
        printf("pngcmp: sizes differ: %dx%d vs %dx%d\n", wa, ha, wb, hb);
        rc = 1;
    } else {
        size_t n = (size_t)wa * ha * 3, diff = 0, first = 0;
        int worst = 0;
        for (size_t i = 0; i < n; i++) {
            int d = abs((int)pa[i] - (int)pb[i]);
            if (d > worst) worst = d;
            if (d && diff++ == 0) first = i;
        }
        if (tol >= 0) {
            printf("pngcmp: %zu of %zu pixel bytes differ, by at most %d (tolerance %d)\n", diff,
                   n, worst, tol);
            free(pa);
            free(pb);
            return worst <= tol ? 0 : 1;
        }
        if (diff) {
            printf("pngcmp: %zu of %zu pixel bytes differ, first at pixel (%zu, %zu)\n", diff, n,
                   first / 3 % (size_t)wa, first / 3 / (size_t)wa);
            rc = 1;
        } else {
            printf("pngcmp: pixels equal (%dx%d)\n", wa, ha);
        }
    }
    size_t na, nb, ia_n = 0, ib_n = 0;
    unsigned char *fa = slurp(argv[1], &na), *fb = slurp(argv[2], &nb);
    unsigned char *ia = fa ? idat(fa, na, &ia_n) : NULL, *ib = fb ? idat(fb, nb, &ib_n) : NULL;
    if (!ia || !ib) {
        printf("pngcmp: cannot walk the PNG chunks\n");
        rc = 1;
    } else if (ia_n != ib_n || memcmp(ia, ib, ia_n)) {
        printf("pngcmp: IDAT bytes differ (%zu vs %zu bytes)\n", ia_n, ib_n);
        rc = 1;
    } else {
        printf("pngcmp: IDAT bytes equal (%zu bytes)\n", ia_n);
    }
    free(ia);
    free(ib);
    free(fa);
    free(fb);
    free(pa);
    free(pb);
    return rc;
}
