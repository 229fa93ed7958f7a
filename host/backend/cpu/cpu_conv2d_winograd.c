// conv2d version 2: Winograd minimal filtering F(m x m, 3 x 3), stride 1
// (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
// arXiv 1509.09308, section 4; the transform matrices B^T, G, A^T below are
// that paper's for F(2,3) and F(4,3), which compute the cross-correlation
// torch.nn.functional.conv2d computes).
//
// Output tiles of m x m pixels each read an (m+2) x (m+2) input patch. Per
// tile and channel the patch d becomes V = B^T d B, per filter g it is
// U = G g G^T, and the a*a = (m+2)^2 elementwise products summed over input
// channels are a*a independent GEMMs [tiles, ci] x [ci, co]; the output tile
// is A^T M A (+ bias + residual). Multiplies per output pixel: a^2 / m^2 * ci
// per output channel instead of 9 ci: 4x fewer for F(4,3), 2.25x for F(2,3).
//
// Work split: U is made once per call into the scratch block, for a block
// of output channels at a time when all of them would pass the cap (see
// k_max_filter_bytes; no cache across calls: at 36 floats per 9 taps it
// would be 16x the fp16 weight memory, and issue 14's peak-RSS targets
// rule that out); then each thread takes chunks of tiles and runs input
// transform, the a*a GEMMs (OpenBLAS inside a parallel region runs
// single-threaded on the calling thread) and the output transform on its
// own buffers, one OpenMP region per block instead of one per im2col chunk.
//
// Accuracy: transforms run in fp32. F(4,3)'s B^T entries up to 5 and A^T
// entries up to 8 amplify the rounding of the GEMM terms: against the
// direct fp32 conv, max error / max |output| is ~1e-5 at SD channel
// counts for F(4,3), ~1e-6 for F(2,3) (tests/unit/test_cpu_winograd.c
// measures and bounds it); the diffusers parity tests keep their bounds.
//
// Test: ctest -R cpu_winograd. Time: bench_cpu_ops conv2d (both versions).
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/assert.h"
#include "core/status.h"

// Channels per vector block of the transforms: a tile's a*a*CB floats
// (9 KB at a = 6) stay in L1 across the two 1-D passes.
enum { CB = 64, AMAX = 6 };

// Per-thread buffer target (V and M of a chunk of tiles): about this
// CPU's 1 MB L2 plus its L3 share, so the output transform reads M from
// cache. Not tuned beyond that; at least 64 tiles, so that each GEMM has
// enough rows to amortise OpenBLAS packing its [co, ci] operand.
static const size_t k_chunk_bytes = (size_t)2 << 20;
static const size_t k_min_chunk_tiles = 64;

// ---- 1-D transforms, vectorised over nc channels ---------------------------
// Each takes a values per channel (rows of a [a][CB] block, stride CB)
// and writes the transformed ones likewise.

// B^T d for F(2,3): [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
static inline void bt_f23(float (*restrict r)[CB], const float (*restrict d)[CB], int nc) {
    for (int c = 0; c < nc; c++) {
        const float d0 = d[0][c], d1 = d[1][c], d2 = d[2][c], d3 = d[3][c];
        r[0][c] = d0 - d2;
        r[1][c] = d1 + d2;
        r[2][c] = d2 - d1;
        r[3][c] = d1 - d3;
    }
}

// A^T m for F(2,3): [1 1 1 0; 0 1 -1 -1].
static inline void at_f23(float (*restrict y)[CB], const float (*restrict m)[CB], int nc) {
    for (int c = 0; c < nc; c++) {
        const float m0 = m[0][c], m1 = m[1][c], m2 = m[2][c], m3 = m[3][c];
        y[0][c] = m0 + m1 + m2;
        y[1][c] = m1 - m2 - m3;
    }
}

// B^T d for F(4,3): [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
// 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1].
static inline void bt_f43(float (*restrict r)[CB], const float (*restrict d)[CB], int nc) {
    for (int c = 0; c < nc; c++) {
        const float d0 = d[0][c], d1 = d[1][c], d2 = d[2][c], d3 = d[3][c], d4 = d[4][c],
                    d5 = d[5][c];
        const float p = d4 - 4.0f * d2, q = d3 - 4.0f * d1;  // shared by rows 1, 2
        const float s = d4 - d2, t = 2.0f * (d3 - d1);       // shared by rows 3, 4
        r[0][c] = 4.0f * d0 - 5.0f * d2 + d4;
        r[1][c] = p + q;
        r[2][c] = p - q;
        r[3][c] = s + t;
        r[4][c] = s - t;
        r[5][c] = 4.0f * d1 - 5.0f * d3 + d5;
    }
}

// A^T m for F(4,3): [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0;
// 0 1 -1 8 -8 1].
static inline void at_f43(float (*restrict y)[CB], const float (*restrict m)[CB], int nc) {
    for (int c = 0; c < nc; c++) {
        const float m0 = m[0][c], m5 = m[5][c];
        const float a = m[1][c] + m[2][c], b = m[1][c] - m[2][c];
        const float e = m[3][c] + m[4][c], f = m[3][c] - m[4][c];
        y[0][c] = m0 + a + e;
        y[1][c] = b + 2.0f * f;
        y[2][c] = a + 4.0f * e;
        y[3][c] = b + 8.0f * f + m5;
    }
}

// ---- filter transform ------------------------------------------------------

// G (g0, g1, g2) for one channel's 3 taps (a row or a column of the
// filter): F(2,3) G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]; F(4,3) G =
// [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6;
// 0 0 1].
static inline void g3_f23(float u[4], float g0, float g1, float g2) {
    u[0] = g0;
    u[1] = 0.5f * (g0 + g1 + g2);
    u[2] = 0.5f * (g0 - g1 + g2);
    u[3] = g2;
}
static inline void g3_f43(float u[6], float g0, float g1, float g2) {
    const float e = g0 + g2;
    u[0] = 0.25f * g0;
    u[1] = (e + g1) * (-1.0f / 6.0f);
    u[2] = (e - g1) * (-1.0f / 6.0f);
    u[3] = g0 * (1.0f / 24.0f) + g1 * (1.0f / 12.0f) + g2 * (1.0f / 6.0f);
    u[4] = g0 * (1.0f / 24.0f) - g1 * (1.0f / 12.0f) + g2 * (1.0f / 6.0f);
    u[5] = g2;
}

// U[xi][o][c] = (G g_oc G^T)[xi] for row o of a block of cob output
// channels, from the channel's weights as fp32 [9, ci] (tap-major: the
// backend's conv layout), in blocks of CB channels: t = G g per filter
// column into an L1 block, then each row of t times G^T straight into U.
// Every loop runs over c with unit strides and named temporaries, which
// gcc vectorises. It replaced a version that staged 64-channel blocks
// through small memcpys (perf: 2.9% of an SD1.5 batch-2 forward in them).
static void filter_row(float *restrict U, const float *restrict row, int o, int ci, int cob,
                       int m) {
    const int a = m + 2;
    const size_t plane = (size_t)cob * ci;
    float t[3][AMAX][CB];  // t[j][i] = row i of G (column j of the filter)
    for (int c0 = 0; c0 < ci; c0 += CB) {
        const int nc = ci - c0 < CB ? ci - c0 : CB;
        for (int j = 0; j < 3; j++) {
            const float *restrict g0 = row + (size_t)j * ci + c0;
            const float *restrict g1 = g0 + 3 * (size_t)ci, *restrict g2 = g0 + 6 * (size_t)ci;
            float u[AMAX];
            for (int c = 0; c < nc; c++) {
                if (m == 2) g3_f23(u, g0[c], g1[c], g2[c]);
                else g3_f43(u, g0[c], g1[c], g2[c]);
                t[j][0][c] = u[0], t[j][1][c] = u[1], t[j][2][c] = u[2], t[j][3][c] = u[3];
                if (m == 4) t[j][4][c] = u[4], t[j][5][c] = u[5];
            }
        }
        for (int i = 0; i < a; i++) {
            float *restrict d = U + (size_t)(i * a) * plane + (size_t)o * ci + c0;
            float u[AMAX];
            if (m == 2) {
                for (int c = 0; c < nc; c++) {
                    g3_f23(u, t[0][i][c], t[1][i][c], t[2][i][c]);
                    d[c] = u[0], d[plane + c] = u[1], d[2 * plane + c] = u[2],
                    d[3 * plane + c] = u[3];
                }
            } else {
                for (int c = 0; c < nc; c++) {
                    g3_f43(u, t[0][i][c], t[1][i][c], t[2][i][c]);
                    d[c] = u[0], d[plane + c] = u[1], d[2 * plane + c] = u[2],
                    d[3 * plane + c] = u[3], d[4 * plane + c] = u[4], d[5 * plane + c] = u[5];
                }
            }
        }
    }
}

// ---- tiles -----------------------------------------------------------------

struct wino_geom {
    const struct hsd_conv2d_params *p;
    int m, a, ho, wo, th, tw;  // tile rows/cols per image
};

// V[xi][tl][c] (xi-plane stride vs floats, row stride ci) for tile t.
static void input_tile(float *restrict V, size_t vs, int tl, size_t t, const struct wino_geom *g) {
    const struct hsd_conv2d_params *p = g->p;
    const int a = g->a, ci = p->ci;
    const size_t per_img = (size_t)g->th * g->tw;
    const size_t b = t / per_img, r = t % per_img;
    const int iy0 = (int)(r / (size_t)g->tw) * g->m - p->pad;
    const int ix0 = (int)(r % (size_t)g->tw) * g->m - p->pad;
    const float *img = (const float *)p->in + b * (size_t)p->h * p->w * ci;
    float d[AMAX][AMAX][CB], s[AMAX][AMAX][CB], col[AMAX][CB], out[AMAX][CB];
    for (int c0 = 0; c0 < ci; c0 += CB) {
        const int nc = ci - c0 < CB ? ci - c0 : CB;
        for (int i = 0; i < a; i++) {
            const int iy = iy0 + i;
            for (int j = 0; j < a; j++) {
                const int ix = ix0 + j;
                if (iy < 0 || iy >= p->h || ix < 0 || ix >= p->w)
                    memset(d[i][j], 0, (size_t)nc * sizeof(float));
                else
                    memcpy(d[i][j], img + ((size_t)iy * p->w + ix) * ci + c0,
                           (size_t)nc * sizeof(float));
            }
        }
        // Columns: s[.][j] = B^T d[.][j]; then rows: V[i][.] = B^T s[i][.].
        for (int j = 0; j < a; j++) {
            for (int i = 0; i < a; i++) memcpy(col[i], d[i][j], (size_t)nc * sizeof(float));
            if (a == 4) bt_f23(out, (const float(*)[CB])col, nc);
            else bt_f43(out, (const float(*)[CB])col, nc);
            for (int i = 0; i < a; i++) memcpy(s[i][j], out[i], (size_t)nc * sizeof(float));
        }
        for (int i = 0; i < a; i++) {
            if (a == 4) bt_f23(out, (const float(*)[CB])s[i], nc);
            else bt_f43(out, (const float(*)[CB])s[i], nc);
            for (int j = 0; j < a; j++)
                memcpy(V + (size_t)(i * a + j) * vs + (size_t)tl * ci + c0, out[j],
                       (size_t)nc * sizeof(float));
        }
    }
}

// out tile t = A^T M A + bias (+ residual), pixels inside the output only,
// for output channels [o0, o0 + nco) (M holds those: row stride nco).
static void output_tile(const float *restrict M, size_t ms, int tl, size_t t, int o0, int nco,
                        const struct wino_geom *g) {
    const struct hsd_conv2d_params *p = g->p;
    const int a = g->a, m = g->m, co = p->co;
    const size_t per_img = (size_t)g->th * g->tw;
    const size_t b = t / per_img, r = t % per_img;
    const int oy0 = (int)(r / (size_t)g->tw) * m, ox0 = (int)(r % (size_t)g->tw) * m;
    float *img = (float *)p->out + b * (size_t)g->ho * g->wo * co;
    const float *res = p->residual ? (const float *)p->residual + b * (size_t)g->ho * g->wo * co
                                   : NULL;
    const float *bias = p->bias;
    float mm[AMAX][AMAX][CB], s[4][AMAX][CB], col[AMAX][CB], y[4][CB];
    for (int c0 = 0; c0 < nco; c0 += CB) {
        const int nc = nco - c0 < CB ? nco - c0 : CB;
        for (int i = 0; i < a; i++)
            for (int j = 0; j < a; j++)
                memcpy(mm[i][j], M + (size_t)(i * a + j) * ms + (size_t)tl * nco + c0,
                       (size_t)nc * sizeof(float));
        // Columns: s[.][j] = A^T mm[.][j]; then rows: y = A^T s[i][.].
        for (int j = 0; j < a; j++) {
            for (int i = 0; i < a; i++) memcpy(col[i], mm[i][j], (size_t)nc * sizeof(float));
            if (a == 4) at_f23(y, (const float(*)[CB])col, nc);
            else at_f43(y, (const float(*)[CB])col, nc);
            for (int i = 0; i < m; i++) memcpy(s[i][j], y[i], (size_t)nc * sizeof(float));
        }
        for (int i = 0; i < m && oy0 + i < g->ho; i++) {
            if (a == 4) at_f23(y, (const float(*)[CB])s[i], nc);
            else at_f43(y, (const float(*)[CB])s[i], nc);
            for (int j = 0; j < m && ox0 + j < g->wo; j++) {
                const size_t at = ((size_t)(oy0 + i) * g->wo + ox0 + j) * co + o0 + c0;
                float *restrict o = img + at;
                // residual may be `out` itself: each element is read before
                // it is written, by the same thread.
                const float *rr = res ? res + at : NULL;
                for (int c = 0; c < nc; c++) {
                    float v = y[j][c];
                    if (bias) v += bias[o0 + c0 + c];
                    if (rr) v += rr[c];
                    o[c] = v;
                }
            }
        }
    }
}

// ---- the op ----------------------------------------------------------------

int hsd_cpu_conv2d_winograd_applies(const struct hsd_conv2d_params *p) {
    return p->kh == 3 && p->kw == 3 && p->stride == 1;
}

// The op table's rule, measured with bench_cpu_ops (1 and 2 threads, a
// shared 2-core AVX2 EPYC, so only differences of 1.3x and more were taken
// as real): F(4,3) beat im2col by 1.4-2.7x from 64 tiles up (SD1.5 U-Net
// 64x64 and 32x32 maps at batch 1 and 2, SD VAE and TAESD decoders at
// 64-512 channels) and lost below (16x16 and 8x8 maps at 1280 channels:
// 1.1-1.8x slower; GEMMs of 8-32 rows re-read the 236 MB of transformed
// filters). F(2,3) never beat F(4,3) by that margin where both beat
// im2col. Where F(4,3) has too few tiles, F(2,3) (4x the tiles, 16 instead
// of 36 transformed values per filter) takes the 16x16 maps at batch >= 2
// (128 tiles): bench_cpu_ops 2 conv2d, SD1.5 batch 2, 1280 -> 1280 at 16x16
// 307 -> 168 ms and 2560 -> 1280 367 -> 323 ms against im2col (load 4);
// below 128 tiles it lost (64 tiles, batch 1 16x16: 215 vs 171 ms; 32
// tiles, batch 2 8x8: 115 vs 80 ms). Since the vectorised filter
// transform and the `whole` GEMM split (quiet machine, 2 threads): 64
// tiles win as well (batch 1, 1280 -> 1280 at 16x16: 35.1 ms against
// im2col's 43.6), 32 tiles tie with fp32 weights (batch 2 at 8x8: 25.2
// vs 24.0 ms). Weights kept fp16 (every model loaded from a file) tip
// the 8x8 maps too: im2col widens all of a 1280 x 11520 weight per call
// (59 MB written, then read again by the sgemm), Winograd one filter row
// at a time into L1. SD1.5 from fp16 files, 8x8 convs per forward
// (hsd bench unet, per-op timers), im2col -> F(2,3): batch 2 (32 tiles)
// 554 -> 414 ms, batch 1 (16 tiles) 350 -> 322 ms. So F(2,3) starts at
// 16 tiles.
static const size_t k_min_tiles = 64;
static const size_t k_min_tiles_f23 = 16;

// The transformed filters of one block of output channels live in the
// scratch block while that block's GEMMs run; a conv whose filters would
// take more (36 x co x ci floats: the SD1.5 up_blocks[2] concat convs
// 1920/1280/960 -> 640 take 88-177 MB) runs in blocks of output channels,
// each re-transforming the input tiles (a2 * ci adds per tile against the
// block's a2 * ci * cob multiply-adds), so the scratch stays below what
// the peak-RSS targets of issue 14 leave.
static const size_t k_max_filter_bytes = (size_t)64 << 20;

// Up to this much V + M for all tiles at once, the threads split the a*a
// GEMMs between them instead of splitting the tiles into chunks (`whole`
// in the op below): each transformed filter is then packed by OpenBLAS
// once rather than once per chunk, which is what small maps with many
// channels pay for. bench_cpu_ops 2 conv2d, quiet 2-core AVX2 EPYC, batch
// 2, chunks -> whole: 1280 -> 1280 at 16x16 (F(2,3)) 59 -> 55 ms, 320 ->
// 320 at 64x64 39.5 -> 32.2 ms, 1920 -> 640 at 32x32 121.7 -> 114.1 ms;
// 960 -> 320 at 64x64 (94 MB) went 100 -> 85 ms with a 128 MB cap, not
// taken: the scratch block lives as long as the backend, and the edge's
// peak-RSS target (issue 14) has less than 100 MB to spare.
static const size_t k_whole_bytes = (size_t)64 << 20;

static size_t tile_count(const struct hsd_conv2d_params *p, int m) {
    const size_t ho = (size_t)(p->h + 2 * p->pad + p->pad_bottom - 2);
    const size_t wo = (size_t)(p->w + 2 * p->pad + p->pad_right - 2);
    return (size_t)p->n * ((ho + m - 1) / m) * ((wo + m - 1) / m);
}

int hsd_cpu_conv2d_winograd_pick(const struct hsd_conv2d_params *p) {
    if (!hsd_cpu_conv2d_winograd_applies(p)) return 0;
    if (tile_count(p, 4) >= k_min_tiles) return 4;
    if (tile_count(p, 2) >= k_min_tiles_f23) return 2;
    return 0;
}

size_t hsd_cpu_winograd_chunk_tiles(int m, int ci, int co) {
    const size_t a2 = (size_t)(m + 2) * (m + 2);
    size_t tc = k_chunk_bytes / (a2 * (size_t)(ci + co) * sizeof(float));
    return tc < k_min_chunk_tiles ? k_min_chunk_tiles : tc;
}

int hsd_cpu_winograd_block_co(int m, int ci, int co, size_t max_filter_bytes) {
    const size_t a2 = (size_t)(m + 2) * (m + 2);
    const size_t per_co = a2 * (size_t)ci * sizeof(float);
    size_t fit = max_filter_bytes / per_co;
    if (fit < 16) fit = 16;  // GEMMs narrower than this waste the kernel's width
    if (fit >= (size_t)co) return co;
    // Equal blocks, rounded up to 16 channels (the block may pass the cap
    // by < 16 rows of filters: <= 1.7 MB at ci = 1920).
    const size_t nblk = ((size_t)co + fit - 1) / fit;
    size_t cob = ((size_t)co + nblk - 1) / nblk;
    cob = (cob + 15) / 16 * 16;
    return cob < (size_t)co ? (int)cob : co;
}

enum hsd_status hsd_cpu_conv2d_v2_winograd(struct hsd_backend *be,
                                           const struct hsd_conv2d_params *p, int m) {
    return hsd_cpu_conv2d_v2_winograd_blocked(be, p, m, k_max_filter_bytes, k_whole_bytes);
}

enum hsd_status hsd_cpu_conv2d_v2_winograd_blocked(struct hsd_backend *be,
                                                   const struct hsd_conv2d_params *p, int m,
                                                   size_t max_filter_bytes,
                                                   size_t max_whole_bytes) {
    HSD_ASSERT(hsd_cpu_conv2d_winograd_applies(p) && (m == 2 || m == 4));
    struct wino_geom g = {.p = p, .m = m, .a = m + 2};
    g.ho = p->h + 2 * p->pad + p->pad_bottom - 2;
    g.wo = p->w + 2 * p->pad + p->pad_right - 2;
    g.th = (g.ho + m - 1) / m;
    g.tw = (g.wo + m - 1) / m;
    const size_t tiles = (size_t)p->n * g.th * g.tw;
    const size_t a2 = (size_t)g.a * g.a, ci = (size_t)p->ci;
    if (ci > (size_t)INT32_MAX / 2 || (size_t)p->co > (size_t)INT32_MAX / 2)
        return hsd_fail(HSD_ERR_UNSUPPORTED, "conv2d: %zu -> %d channels exceed BLAS int", ci,
                        p->co);
    const int cob = hsd_cpu_winograd_block_co(m, p->ci, p->co, max_filter_bytes);
    size_t tc = hsd_cpu_winograd_chunk_tiles(m, p->ci, cob);
    if (tc > tiles) tc = tiles;
    const int threads = be->threads;
    const size_t u_floats = a2 * (size_t)cob * ci, per_thread = a2 * tc * (ci + (size_t)cob);
    const size_t whole_floats = a2 * tiles * (ci + (size_t)cob);
    const int whole = whole_floats * sizeof(float) <= max_whole_bytes;
    size_t work = whole ? whole_floats : (size_t)threads * per_thread;
    if (work < (size_t)threads * 18 * ci) work = (size_t)threads * 18 * ci;  // weight rows
    float *U = hsd_cpu_scratch(be, (u_floats + work) * sizeof(float));
    if (!U) return hsd_fail_context(HSD_ERR_NOMEM, "conv2d (winograd): ");

    // Filters: a weight kept in file precision (cpu_weights.c) converts row
    // by row in its [ci, 9] file order; a plain fp32 one is [co, 3, 3, ci].
    struct hsd_cpu_weight wv;
    const int view = hsd_cpu_weight_find(be, p->weight, &wv);
    if (view && (wv.rows != p->co || wv.k != p->ci * 9 || wv.taps != 9))
        return hsd_fail(HSD_ERR_INVALID_ARG,
                        "conv2d: weight is [%d, %d] with %d taps, the call wants [%d, %d] with "
                        "3x3 taps",
                        wv.rows, wv.k, wv.taps, p->co, p->ci * 9);
    const size_t chunks = (tiles + tc - 1) / tc;
    for (int o0 = 0; o0 < p->co; o0 += cob) {
        const int nco = p->co - o0 < cob ? p->co - o0 : cob;
        float *rows = U + u_floats;  // two weight rows per thread, before the tiles use it
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int o = o0; o < o0 + nco; o++) {
            const float *row = (const float *)p->weight + (size_t)o * 9 * ci;
            if (view) {
                // [ci, 9] in the file: widened, then transposed to [9, ci].
                float *file = rows + (size_t)omp_get_thread_num() * 18 * ci, *tr = file + 9 * ci;
                hsd_cpu_weight_row(file, &wv, o);
                for (size_t c = 0; c < ci; c++)
                    for (size_t k = 0; k < 9; k++) tr[k * ci + c] = file[c * 9 + k];
                row = tr;
            }
            filter_row(U, row, o - o0, p->ci, nco, m);
        }

        if (whole) {
            // All tiles at once: V and M are shared, the a*a GEMMs go to
            // the threads whole ([tiles, ci] x [ci, nco] each), so every
            // transformed filter is packed by OpenBLAS once, not once per
            // chunk of tiles.
            float *V = U + u_floats, *M = V + a2 * tiles * ci;
#pragma omp parallel num_threads(threads)
            {
#pragma omp for schedule(static)
                for (size_t t = 0; t < tiles; t++) input_tile(V, tiles * ci, (int)t, t, &g);
#pragma omp for schedule(dynamic, 1)
                for (size_t x = 0; x < a2; x++)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)tiles, nco, p->ci,
                                1.0f, V + x * tiles * ci, p->ci, U + x * (size_t)nco * ci, p->ci,
                                0.0f, M + x * tiles * nco, nco);
#pragma omp for schedule(static)
                for (size_t t = 0; t < tiles; t++)
                    output_tile(M, tiles * nco, (int)t, t, o0, nco, &g);
            }
            continue;
        }
#pragma omp parallel num_threads(threads)
        {
            float *V = U + u_floats + (size_t)omp_get_thread_num() * per_thread;
            float *M = V + a2 * tc * ci;
#pragma omp for schedule(dynamic, 1)
            for (size_t k = 0; k < chunks; k++) {
                const size_t t0 = k * tc, tn = tiles - t0 < tc ? tiles - t0 : tc;
                for (size_t t = 0; t < tn; t++) input_tile(V, tn * ci, (int)t, t0 + t, &g);
                for (size_t x = 0; x < a2; x++)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)tn, nco, p->ci,
                                1.0f, V + x * tn * ci, p->ci, U + x * (size_t)nco * ci, p->ci,
                                0.0f, M + x * tn * nco, nco);
                for (size_t t = 0; t < tn; t++)
                    output_tile(M, tn * nco, (int)t, t0 + t, o0, nco, &g);
            }
        }
    }
    return HSD_OK;
}
