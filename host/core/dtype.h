// Element types as named by the safetensors format, with their sizes and
// fp16/bf16 <-> fp32 conversion.
#ifndef HSD_CORE_DTYPE_H
#define HSD_CORE_DTYPE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum hsd_dtype {
    HSD_DTYPE_INVALID = 0,
    HSD_F64, HSD_F32, HSD_F16, HSD_BF16,
    HSD_I64, HSD_I32, HSD_I16, HSD_I8,
    HSD_U64, HSD_U32, HSD_U16, HSD_U8,
    HSD_BOOL, HSD_F8_E4M3, HSD_F8_E5M2,
    HSD_DTYPE_COUNT
};

// Bytes per element (0 for HSD_DTYPE_INVALID).
size_t hsd_dtype_size(enum hsd_dtype t);
// The safetensors spelling ("F32", "BF16", ...).
const char *hsd_dtype_name(enum hsd_dtype t);
// Parses a safetensors dtype string of `len` bytes; HSD_DTYPE_INVALID if unknown.
enum hsd_dtype hsd_dtype_parse(const char *s, size_t len);

float hsd_f16_to_f32(uint16_t h);
uint16_t hsd_f32_to_f16(float f);   // round to nearest even
float hsd_bf16_to_f32(uint16_t b);
uint16_t hsd_f32_to_bf16(float f);  // round to nearest even

// Converts n elements of F32/F16/BF16 (little-endian, possibly unaligned)
// to float. Returns 0 on success, -1 if `t` is not one of those three.
int hsd_convert_to_f32(float *dst, const void *src, enum hsd_dtype t, size_t n);

#ifdef __cplusplus
}
#endif

#endif
