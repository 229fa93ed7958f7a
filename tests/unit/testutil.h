// Minimal test helpers: checks report the caller's file:line and keep
// going; hsd_test_finish() prints "N passed, N failed" and returns the exit
// code (0, or 1 if anything failed). GPU tests return 77 to be skipped.
#ifndef HSD_TESTUTIL_H
#define HSD_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define HSD_TEST_SKIP 77

void hsd_test_check(int ok, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int hsd_test_finish(void);
int hsd_test_failures(void);

#define CHECK(cond) hsd_test_check((cond) != 0, __FILE__, __LINE__, "%s", #cond)
#define CHECKF(cond, ...) hsd_test_check((cond) != 0, __FILE__, __LINE__, __VA_ARGS__)
// Asserts a call returns HSD_OK, printing the library's message otherwise.
#define CHECK_OK(call)                                                         \
    do {                                                                       \
        enum hsd_status s_ = (call);                                           \
        hsd_test_check(s_ == HSD_OK, __FILE__, __LINE__, "%s -> %s: %s", #call, \
                       hsd_status_str(s_), hsd_last_error());                  \
    } while (0)

// Comparison of a result with a reference: max |a-b|, its index, and
// max |ref|. Prints the worst element.
struct hsd_cmp {
    double max_abs_err;
    double max_abs_ref;
    size_t worst;
    double worst_got, worst_ref;
    size_t n_nonfinite;
};
struct hsd_cmp hsd_compare(const float *got, const float *ref, size_t n);
// Checks max|err| <= rel_tol * max|ref| (plus no NaN/Inf) and prints a line
// with the worst element either way.
int hsd_check_close(const char *what, const float *got, const float *ref, size_t n,
                    double rel_tol, const char *file, int line);
#define CHECK_CLOSE(what, got, ref, n, tol) \
    hsd_check_close(what, got, ref, n, tol, __FILE__, __LINE__)

// `call` must fail with HSD_ERR_INVALID_ARG and leave a message (cleared).
#define CHECK_INVALID(call)                                                                  \
    do {                                                                                     \
        enum hsd_status s_ = (call);                                                         \
        CHECKF(s_ == HSD_ERR_INVALID_ARG, "%s -> %s (want invalid argument)", #call,         \
               hsd_status_str(s_));                                                          \
        CHECKF(hsd_last_error()[0] != '\0', "%s: no message", #call);                        \
        hsd_clear_error();                                                                   \
    } while (0)

// Fills with uniform values in [-scale, scale) from a fixed-seed generator.
void hsd_test_fill_uniform(float *x, size_t n, uint64_t seed, float scale);

// A golden file's tensor as floats (malloc'd; NULL, with a failed check,
// when missing): F32, or I64 / U8 converted (timesteps may be either; 8-bit
// images are U8).
struct hsd_safetensors;
struct hsd_st_tensor;
float *hsd_test_read_input(const struct hsd_safetensors *io, const char *name,
                           const struct hsd_st_tensor **t);

// The largest |got[i] - ref[i]| of an 8-bit image against its golden.
int hsd_test_rgb_worst(const uint8_t *got, const float *ref, size_t n);

// The golden "<name>.<part>" of `g` as floats (hsd_test_read_input), its
// element count in *count (0 when missing).
float *hsd_test_golden(const struct hsd_safetensors *g, const char *name, const char *part,
                       size_t *count);

struct hsd_pipeline;

// The six [negative, prompt] pairs the batched step tests share, encoded by
// p's text encoder into emb [6][2][77, C] (malloc'd; NULL on failure, with
// a failed check).
#define HSD_TEST_PROMPT_PAIRS 6
float *hsd_test_encode_prompt_pairs(struct hsd_pipeline *p);

// One 64x64 text-to-image of `r` on `p` against the goldens "<name>.latent",
// "<name>.image" and "<name>.rgb" of `g` (a tensor missing from `g` is
// skipped): latent and image within `tol` (CHECK_CLOSE), 8-bit image within
// 1/255.
struct hsd_gen_request;
void hsd_test_generate_vs_goldens(struct hsd_pipeline *p, const struct hsd_gen_request *r,
                                  const struct hsd_safetensors *g, const char *name, double tol);
#endif
