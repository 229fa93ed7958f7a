// torch.Generator("cpu") + torch.randn(float32), bit for bit.
//
// References (torch 2.15 headers shipped in the wheel, include/ATen/...):
//   core/MT19937RNGEngine.h        mt19937_engine (seeding, twist, tempering)
//   CPUGeneratorImpl.h/.cpp        random() = one draw, random64() = hi<<32|lo
//   core/TransformationHelper.h    uniform_real: (bits & (2^digits-1)) * 2^-digits
//   core/DistributionsHelper.h     normal_distribution<double> (scalar path)
//   native/cpu/DistributionTemplates.h  normal_kernel / normal_fill /
//                                  NormalFill16 (vectorised path, n >= 16)
//   native/cpu/avx_mathfun.h       log256_ps, sincos256_ps (AVX2 kernel)
//
// The AVX2 kernel is reproduced in scalar C. torch compiles it with GCC,
// -mavx2 -mfma and FP contraction on, so some mul+add pairs of avx_mathfun
// became FMAs; which ones was found by testing every combination against
// torch on 320k values (tests/unit/test_torch_rng.c then checks the goldens
// bit for bit). Products that are exact either way (z*0.5, e*0.693359375,
// y*DP1, y*DP2) are written as FMAs too, the way GCC contracts them.
#include "sampling/torch_rng.h"

#include <math.h>
#include <string.h>

// No contraction here: every rounding below is deliberate (clang contracts
// a*b+c by default; GCC does not in ISO C mode, which the build uses).
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

enum { MT_N = 624, MT_M = 397 };

void hsd_torch_rng_seed(struct hsd_torch_rng *r, uint64_t seed) {
    memset(r, 0, sizeof *r);
    // torch at::mt19937_engine::init_with_uint32: state_[0] = seed & 0xffffffff
    r->mt[0] = (uint32_t)(seed & 0xffffffffu);
    for (uint32_t j = 1; j < MT_N; j++) {
        r->mt[j] = 1812433253u * (r->mt[j - 1] ^ (r->mt[j - 1] >> 30)) + j;
    }
    // torch sets left_ = 1, next_ = 0: the first draw twists. index = 624
    // is the same state in the usual formulation.
    r->index = MT_N;
    r->has_next_double = 0;
    r->has_next_float = 0;
    r->flavor = HSD_TORCH_NORMAL_AVX2;
}

static uint32_t twist(uint32_t u, uint32_t v) {
    uint32_t mix = (u & 0x80000000u) | (v & 0x7fffffffu);
    return (mix >> 1) ^ ((v & 1u) ? 0x9908b0dfu : 0u);
}

// torch mt19937_engine::next_state
static void next_state(uint32_t *mt) {
    int j = 0;
    for (; j < MT_N - MT_M; j++) mt[j] = mt[j + MT_M] ^ twist(mt[j], mt[j + 1]);
    for (; j < MT_N - 1; j++) mt[j] = mt[j + MT_M - MT_N] ^ twist(mt[j], mt[j + 1]);
    mt[MT_N - 1] = mt[MT_M - 1] ^ twist(mt[MT_N - 1], mt[0]);
}

uint32_t hsd_torch_rng_u32(struct hsd_torch_rng *r) {
    if (r->index >= MT_N || r->index < 0) {
        next_state(r->mt);
        r->index = 0;
    }
    uint32_t y = r->mt[r->index++];
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= (y >> 18);
    return y;
}

// uniform_real_distribution<float>(0, 1): 24 random bits from one draw.
static float uniform_f32(struct hsd_torch_rng *r) {
    return (float)(hsd_torch_rng_u32(r) & 0xffffffu) * (1.0f / 16777216.0f);
}

// uniform_real_distribution<double>(0, 1): 53 bits of random64(), whose
// first draw is the high word (CPUGeneratorImpl::random64).
static double uniform_f64(struct hsd_torch_rng *r) {
    uint64_t hi = hsd_torch_rng_u32(r);
    uint64_t lo = hsd_torch_rng_u32(r);
    uint64_t v = (hi << 32) | lo;
    return (double)(v & ((UINT64_C(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

// at::normal_distribution<double>(0, 1) with the generator's cached second
// value (DistributionsHelper.h): r*cos is returned, r*sin cached.
static double normal_f64(struct hsd_torch_rng *r) {
    if (r->has_next_double) {
        // Cleared so a serialized generator has one form per state.
        const double v = r->next_double;
        r->has_next_double = 0;
        r->next_double = 0.0;
        return v;
    }
    const double u1 = uniform_f64(r);
    const double u2 = uniform_f64(r);
    const double rad = sqrt(-2.0 * log1p(-u2));
    const double theta = 2.0 * 3.14159265358979323846 * u1;
    r->next_double = rad * sin(theta);
    r->has_next_double = 1;
    return rad * cos(theta);
}

static float f32_from_bits(uint32_t b) {
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static uint32_t bits_from_f32(float f) {
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

// avx_mathfun.h log256_ps, one lane. The argument is in (0, 1] here.
static float cephes_logf(float x) {
    x = fmaxf(x, f32_from_bits(0x00800000u));  // min_norm_pos: cut off denormals
    uint32_t bits = bits_from_f32(x);
    int32_t imm0 = (int32_t)(bits >> 23) - 0x7f;
    x = f32_from_bits((bits & ~0x7f800000u) | bits_from_f32(0.5f));
    float e = (float)imm0 + 1.0f;
    const int below = x < 0.707106781186547524f;  // cephes_SQRTHF
    float tmp = below ? x : 0.0f;
    x = x - 1.0f;
    e = e - (below ? 1.0f : 0.0f);
    x = x + tmp;
    const float z = x * x;
    float y = 7.0376836292E-2f;
    y = fmaf(y, x, -1.1514610310E-1f);
    y = fmaf(y, x, 1.1676998740E-1f);
    y = fmaf(y, x, -1.2420140846E-1f);
    y = fmaf(y, x, +1.4249322787E-1f);
    y = fmaf(y, x, -1.6668057665E-1f);
    y = fmaf(y, x, +2.0000714765E-1f);
    y = fmaf(y, x, -2.4999993993E-1f);
    y = fmaf(y, x, +3.3333331174E-1f);
    y = y * x;
    y = fmaf(y, z, e * -2.12194440e-4f);  // y*z + e*q1: GCC fused y*z
    y = fmaf(-z, 0.5f, y);
    x = x + y;
    x = fmaf(e, 0.693359375f, x);
    return x;
}

// avx_mathfun.h sincos256_ps, one lane (the argument is in [0, 2*pi)).
static void cephes_sincosf(float xin, float *s_out, float *c_out) {
    uint32_t sign_sin = bits_from_f32(xin) & 0x80000000u;
    float x = fabsf(xin);
    float y = x * 1.27323954473516f;  // cephes_FOPI = 4/pi
    int32_t j = (int32_t)y;           // _mm256_cvttps_epi32: truncation
    j = (j + 1) & ~1;
    y = (float)j;
    const uint32_t swap_sign_sin = ((uint32_t)j & 4u) << 29;
    const int poly_mask = ((uint32_t)j & 2u) == 0;
    x = fmaf(y, -0.78515625f, x);
    x = fmaf(y, -2.4187564849853515625e-4f, x);
    x = fmaf(y, -3.77489497744594108e-8f, x);
    const uint32_t sign_cos = (~(uint32_t)(j - 2) & 4u) << 29;
    sign_sin ^= swap_sign_sin;
    const float z = x * x;
    float yc = 2.443315711809948E-005f;
    yc = fmaf(yc, z, -1.388731625493765E-003f);
    yc = fmaf(yc, z, 4.166664568298827E-002f);
    yc = yc * z;
    yc = fmaf(yc, z, -(z * 0.5f));  // y*z - z*0.5: GCC fused y*z
    yc = yc + 1.0f;
    float ys = -1.9515295891E-4f;
    ys = fmaf(ys, z, 8.3321608736E-3f);
    ys = fmaf(ys, z, -1.6666654611E-1f);
    ys = ys * z;
    ys = fmaf(ys, x, x);
    // The blend is done with and/andnot and two adds in the original;
    // adding +0.0 turns a -0.0 into +0.0, kept here for exactness.
    const float ysin2 = poly_mask ? ys : 0.0f;
    const float ysin1 = poly_mask ? 0.0f : yc;
    ys = ys - ysin2;
    yc = yc - ysin1;
    const float s = ysin1 + ysin2;
    const float c = yc + ys;
    *s_out = f32_from_bits(bits_from_f32(s) ^ sign_sin);
    *c_out = f32_from_bits(bits_from_f32(c) ^ sign_cos);
}

// NormalFill16: Box-Muller on 16 uniforms, pairing j with j + 8, in place.
static void normal_fill_16(float *data, int flavor) {
    if (flavor == HSD_TORCH_NORMAL_LIBM) {
        // torch generic NormalFill16 (float opmath): logf/cosf/sinf; theta
        // is computed in double (c10::pi<double>) and rounded to float.
        for (int j = 0; j < 8; j++) {
            const float u1 = 1.0f - data[j];
            const float u2 = data[j + 8];
            const float radius = sqrtf(-2.0f * logf(u1));
            const float theta = (float)(2.0f * 3.14159265358979323846 * (double)u2);
            data[j] = radius * cosf(theta);
            data[j + 8] = radius * sinf(theta);
        }
        return;
    }
    // AVX2 kernel: two_pi_ = _mm256_set1_ps(2.0f * c10::pi<double>).
    const float two_pi = (float)(2.0 * 3.14159265358979323846);
    for (int j = 0; j < 8; j++) {
        const float u1 = 1.0f - data[j];
        const float u2 = data[j + 8];
        const float radius = sqrtf(-2.0f * cephes_logf(u1));
        const float theta = two_pi * u2;
        float s, c;
        cephes_sincosf(theta, &s, &c);
        // fmadd(n, std=1, mean=0) is exact.
        data[j] = radius * c;
        data[j + 8] = radius * s;
    }
}

void hsd_torch_randn(struct hsd_torch_rng *r, float *out, size_t n) {
    if (n < 16) {
        // normal_kernel's serial path: at::normal_distribution<double>, then
        // static_cast<float> (the cache persists between calls).
        for (size_t i = 0; i < n; i++) out[i] = (float)normal_f64(r);
        return;
    }
    // normal_fill: all n uniforms first, then Box-Muller per 16.
    for (size_t i = 0; i < n; i++) out[i] = uniform_f32(r);
    for (size_t i = 0; i + 16 <= n; i += 16) normal_fill_16(out + i, r->flavor);
    if (n % 16 != 0) {
        // "Recompute the last 16 values": 16 fresh uniforms overwrite the
        // tail, so the generator advances by n + 16 draws in total.
        float *tail = out + n - 16;
        for (int i = 0; i < 16; i++) tail[i] = uniform_f32(r);
        normal_fill_16(tail, r->flavor);
    }
}
