#include "core/dtype.h"

#include <string.h>

static const struct {
    const char *name;
    size_t size;
} k_dtypes[HSD_DTYPE_COUNT] = {
    [HSD_DTYPE_INVALID] = {"INVALID", 0},
    [HSD_F64] = {"F64", 8},   [HSD_F32] = {"F32", 4},
    [HSD_F16] = {"F16", 2},   [HSD_BF16] = {"BF16", 2},
    [HSD_I64] = {"I64", 8},   [HSD_I32] = {"I32", 4},
    [HSD_I16] = {"I16", 2},   [HSD_I8] = {"I8", 1},
    [HSD_U64] = {"U64", 8},   [HSD_U32] = {"U32", 4},
    [HSD_U16] = {"U16", 2},   [HSD_U8] = {"U8", 1},
    [HSD_BOOL] = {"BOOL", 1}, [HSD_F8_E4M3] = {"F8_E4M3", 1},
    [HSD_F8_E5M2] = {"F8_E5M2", 1},
};

size_t hsd_dtype_size(enum hsd_dtype t) {
    return (t > 0 && t < HSD_DTYPE_COUNT) ? k_dtypes[t].size : 0;
}

const char *hsd_dtype_name(enum hsd_dtype t) {
    return (t > 0 && t < HSD_DTYPE_COUNT) ? k_dtypes[t].name : "INVALID";
}

enum hsd_dtype hsd_dtype_parse(const char *s, size_t len) {
    for (int t = 1; t < HSD_DTYPE_COUNT; t++) {
        const char *n = k_dtypes[t].name;
        if (strlen(n) == len && memcmp(n, s, len) == 0) return (enum hsd_dtype)t;
    }
    return HSD_DTYPE_INVALID;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// IEEE half -> single, exact (subnormals, inf and NaN included).
float hsd_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0) {
        if (man == 0) return bits_f32(sign);
        // Subnormal: value = man * 2^-24, exact in float.
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | (man << 13));
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t hsd_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) return sign | 0x7c00 | (a > 0x7f800000u ? 0x200 : 0);
    if (a >= 0x477ff000u) return sign | 0x7c00;  // rounds to inf
    if (a < 0x38800000u) {
        // Result is subnormal (or zero): scale so the half ulp (2^-24) is 1.
        float v = bits_f32(a) * 16777216.0f;
        // nearbyint-style round half to even via the float adder.
        float r = (v + 8388608.0f) - 8388608.0f;
        return sign | (uint16_t)r;
    }
    uint32_t man = a & 0x7fffffu;
    uint32_t exp = (a >> 23) - 112;
    uint32_t h = (exp << 10) | (man >> 13);
    uint32_t rest = man & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1))) h++;
    return sign | (uint16_t)h;
}

float hsd_bf16_to_f32(uint16_t b) { return bits_f32((uint32_t)b << 16); }

uint16_t hsd_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

int hsd_convert_to_f32(float *dst, const void *src, enum hsd_dtype t, size_t n) {
    const unsigned char *p = src;
    switch (t) {
    case HSD_F32:
        memcpy(dst, src, n * 4);
        return 0;
    case HSD_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
            dst[i] = hsd_f16_to_f32(h);
        }
        return 0;
    case HSD_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
            dst[i] = hsd_bf16_to_f32(h);
        }
        return 0;
    default:
        return -1;
    }
}
