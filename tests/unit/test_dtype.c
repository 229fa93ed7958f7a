// fp16/bf16 <-> fp32 conversion: every half and every bf16 value survives a
// round trip, and values exactly between two neighbours round to the even
// one (IEEE 754 roundTiesToEven), including into subnormals and to infinity.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/dtype.h"
#include "testutil.h"

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int f16_is_nan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }

static void test_f16_round_trip(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = hsd_f16_to_f32((uint16_t)h);
        if (f16_is_nan((uint16_t)h)) {
            // NaN payloads need not survive; NaN-ness must.
            if (!isnan(f) || !f16_is_nan(hsd_f32_to_f16(f))) bad++;
            continue;
        }
        uint16_t back = hsd_f32_to_f16(f);
        if (back != h && bad++ < 5)
            fprintf(stderr, "f16 0x%04x -> %g -> 0x%04x\n", h, (double)f, back);
    }
    CHECKF(bad == 0, "%d half values did not round-trip", bad);
    // Known values.
    CHECK(hsd_f16_to_f32(0x3c00) == 1.0f);
    CHECK(hsd_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(hsd_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    CHECK(isinf(hsd_f16_to_f32(0xfc00)) && hsd_f16_to_f32(0xfc00) < 0);
    CHECK(hsd_f32_to_f16(-0.0f) == 0x8000);
}

// For each pair of adjacent finite halves (lo, lo+1): the exact midpoint
// rounds to whichever is even, and one float ulp either side rounds to the
// nearer one. Midpoints need 12 significant bits, so they are exact floats.
static void test_f16_ties(void) {
    int bad = 0;
    for (uint32_t sign = 0; sign <= 0x8000; sign += 0x8000) {
        for (uint32_t lo = 0; lo < 0x7bff; lo++) {
            uint16_t a = (uint16_t)(sign | lo), b = (uint16_t)(sign | (lo + 1));
            double fa = hsd_f16_to_f32(a), fb = hsd_f16_to_f32(b);
            float mid = (float)((fa + fb) / 2);
            uint16_t even = (lo & 1) ? b : a;
            uint16_t got = hsd_f32_to_f16(mid);
            uint16_t below = hsd_f32_to_f16(nextafterf(mid, (float)fa));
            uint16_t above = hsd_f32_to_f16(nextafterf(mid, (float)fb));
            if ((got != even || below != a || above != b) && bad++ < 5)
                fprintf(stderr, "f16 tie 0x%04x/0x%04x: mid %.9g -> 0x%04x (want 0x%04x), "
                        "below 0x%04x, above 0x%04x\n", a, b, (double)mid, got, even, below, above);
        }
    }
    CHECKF(bad == 0, "%d f16 tie cases wrong", bad);
    // Between 65504 (0x7bff, odd) and 65536 (the next step, not a half):
    // the tie 65520 rounds to even, which is infinity.
    CHECK(hsd_f32_to_f16(65520.0f) == 0x7c00);
    CHECK(hsd_f32_to_f16(nextafterf(65520.0f, 0.0f)) == 0x7bff);
    CHECK(hsd_f32_to_f16(-65520.0f) == 0xfc00);
    CHECK(hsd_f32_to_f16(1e30f) == 0x7c00);
    // Half the smallest subnormal (2^-25) ties to 0 (even); just above -> 1.
    CHECK(hsd_f32_to_f16(ldexpf(1.0f, -25)) == 0x0000);
    CHECK(hsd_f32_to_f16(nextafterf(ldexpf(1.0f, -25), 1.0f)) == 0x0001);
    CHECK(hsd_f32_to_f16(ldexpf(3.0f, -25)) == 0x0002);  // 1.5 ulp ties to 2
    CHECK(hsd_f32_to_f16(1e-30f) == 0x0000);
}

static void test_bf16(void) {
    int bad = 0;
    for (uint32_t b = 0; b < 65536; b++) {
        float f = hsd_bf16_to_f32((uint16_t)b);
        uint32_t u;
        memcpy(&u, &f, 4);
        if (u != b << 16) bad++;  // bf16 is the top half of a float, exactly
        if (isnan(f)) {
            if (!isnan(hsd_bf16_to_f32(hsd_f32_to_bf16(f)))) bad++;
            continue;
        }
        if (hsd_f32_to_bf16(f) != b && bad++ < 5)
            fprintf(stderr, "bf16 0x%04x -> 0x%04x\n", b, hsd_f32_to_bf16(f));
    }
    CHECKF(bad == 0, "%d bf16 values did not round-trip", bad);
    // Ties: the float halfway between bf16 values lo and lo+1 has low bits
    // 0x8000. Covers 0x7f7f/0x7f80 (max finite -> inf ties to even = inf).
    bad = 0;
    for (uint32_t sign = 0; sign <= 0x8000; sign += 0x8000) {
        for (uint32_t lo = 0; lo < 0x7f80; lo++) {
            uint32_t a = sign | lo;
            uint32_t even = (lo & 1) ? a + 1 : a;
            uint32_t mid = (a << 16) | 0x8000;
            if (hsd_f32_to_bf16(bits_f32(mid)) != even ||
                hsd_f32_to_bf16(bits_f32(mid - 1)) != a ||
                hsd_f32_to_bf16(bits_f32(mid + 1)) != a + 1) {
                if (bad++ < 5) fprintf(stderr, "bf16 tie 0x%04x wrong\n", a);
            }
        }
    }
    CHECKF(bad == 0, "%d bf16 tie cases wrong", bad);
    CHECK(isnan(hsd_bf16_to_f32(hsd_f32_to_bf16(NAN))));
    // A NaN whose payload sits only in the dropped bits must stay NaN.
    CHECK(isnan(hsd_bf16_to_f32(hsd_f32_to_bf16(bits_f32(0x7f800001u)))));
}

static void test_names(void) {
    for (int t = 1; t < HSD_DTYPE_COUNT; t++) {
        const char *n = hsd_dtype_name((enum hsd_dtype)t);
        CHECK(hsd_dtype_parse(n, strlen(n)) == (enum hsd_dtype)t);
        CHECK(hsd_dtype_size((enum hsd_dtype)t) > 0);
    }
    CHECK(hsd_dtype_parse("F3", 2) == HSD_DTYPE_INVALID);
    CHECK(hsd_dtype_parse("F32", 2) == HSD_DTYPE_INVALID);  // length, not NUL, ends it
    CHECK(hsd_dtype_parse("f32", 3) == HSD_DTYPE_INVALID);
    CHECK(hsd_dtype_size(HSD_DTYPE_INVALID) == 0);
}

static void test_convert(void) {
    // Unaligned little-endian source: the converter must not assume alignment.
    unsigned char raw[1 + 8] = {0, 0x00, 0x3c, 0x00, 0xc1, 0x80, 0x3f, 0x20, 0xc0};
    float out[2];
    CHECK(hsd_convert_to_f32(out, raw + 1, HSD_F16, 2) == 0);
    CHECK(out[0] == 1.0f && out[1] == -2.5f);
    CHECK(hsd_convert_to_f32(out, raw + 5, HSD_BF16, 2) == 0);
    CHECK(out[0] == 1.0f && out[1] == -2.5f);
    CHECK(hsd_convert_to_f32(out, raw, HSD_I64, 1) == -1);
}

int main(void) {
    test_f16_round_trip();
    test_f16_ties();
    test_bf16();
    test_names();
    test_convert();
    return hsd_test_finish();
}
