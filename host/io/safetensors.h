// Strict safetensors reader (mmap) and writer.
//
// Format (huggingface/safetensors README): 8-byte little-endian header size
// N, then N bytes of UTF-8 JSON `{"name": {"dtype": "F32", "shape": [..],
// "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}`, then the
// byte buffer. Offsets are relative to the buffer start.
//
// The reader enforces every rule of the format and fails with a message that
// names the file, the tensor and the rule: header size capped (100 MB) and
// inside the file, JSON valid UTF-8 with no duplicate keys, known dtype
// strings, shape entries non-negative integers, byte size ==
// product(shape) * dtype size (overflow-checked), offsets in bounds, and the
// tensors, sorted by offset, tile the buffer exactly: no gap, no overlap, and
// the buffer ends at the end of the file.
#ifndef HSD_IO_SAFETENSORS_H
#define HSD_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/status.h"

#define HSD_ST_MAX_DIMS 8
// Same cap as the reference implementation: larger headers are refused.
#define HSD_ST_MAX_HEADER (100u * 1000u * 1000u)

struct hsd_st_tensor {
    const char *name;           // NUL-terminated, owned by the file object
    enum hsd_dtype dtype;
    int ndim;
    int64_t shape[HSD_ST_MAX_DIMS];
    int64_t numel;              // product(shape); 1 for a scalar (ndim 0)
    const void *data;           // inside the mapping; possibly unaligned
    size_t nbytes;
};

struct hsd_safetensors;

enum hsd_status hsd_safetensors_open(struct hsd_safetensors **out, const char *path);
// Parses a buffer the caller keeps alive (used by the fuzz target and tests);
// `label` stands in for the file name in messages.
enum hsd_status hsd_safetensors_parse(struct hsd_safetensors **out, const void *buf,
                                      size_t len, const char *label);
void hsd_safetensors_close(struct hsd_safetensors *st);
// Tells the kernel the mapped bytes of `t` were copied or converted and
// are not needed resident (madvise MADV_DONTNEED on its whole pages): they
// stop counting to RSS, and are read again from the file if touched. No-op
// for a parsed caller's buffer.
void hsd_safetensors_drop(const struct hsd_safetensors *st, const struct hsd_st_tensor *t);

const char *hsd_safetensors_path(const struct hsd_safetensors *st);
size_t hsd_safetensors_count(const struct hsd_safetensors *st);
// Tensors sorted by name, for stable listings.
const struct hsd_st_tensor *hsd_safetensors_at(const struct hsd_safetensors *st, size_t i);
// NULL if absent (O(log n)).
const struct hsd_st_tensor *hsd_safetensors_find(const struct hsd_safetensors *st,
                                                 const char *name);
// Value of a string entry of "__metadata__", or NULL.
const char *hsd_safetensors_metadata(const struct hsd_safetensors *st, const char *key);

// Reads tensor `name` as float32 into `dst` (numel floats). Fails with
// HSD_ERR_NOT_FOUND if absent and HSD_ERR_UNSUPPORTED ("unsupported dtype")
// unless the tensor is F32, F16 or BF16.
enum hsd_status hsd_safetensors_read_f32(const struct hsd_safetensors *st,
                                         const char *name, float *dst, size_t numel);

// Writer: collects tensors (data referenced, not copied, until write) and
// writes the file atomically (temporary file + rename), so a failed write
// never leaves a half-written file at `path`.
struct hsd_st_writer;
enum hsd_status hsd_st_writer_create(struct hsd_st_writer **out);
enum hsd_status hsd_st_writer_add(struct hsd_st_writer *w, const char *name,
                                  enum hsd_dtype dtype, int ndim, const int64_t *shape,
                                  const void *data);
enum hsd_status hsd_st_writer_set_metadata(struct hsd_st_writer *w, const char *key,
                                           const char *value);
enum hsd_status hsd_st_writer_write(struct hsd_st_writer *w, const char *path);
void hsd_st_writer_free(struct hsd_st_writer *w);

#endif
