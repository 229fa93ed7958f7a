// torch.Generator("cpu").manual_seed + torch.randn(float32) against the
// goldens of tests/oracle/make_sampler_cases.py (tests/data/sampling/
// torch_rng.json): every value must be bit-identical, for both of torch's
// CPU normal kernels, large tensors by an FNV-1a hash of all bits.
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sampling/torch_rng.h"
#include "testutil.h"

static uint32_t bits_of(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

static uint64_t fnv1a64(const float *x, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        uint32_t b = bits_of(x[i]);
        for (int k = 0; k < 4; k++) {
            h ^= (b >> (8 * k)) & 0xff;
            h *= 0x100000001b3ull;
        }
    }
    return h;
}

static uint64_t seed_of(json_t *v) { return strtoull(json_string_value(v), NULL, 10); }

// Compares out[0..n) with the uint32 array `want` (starting at out[off]);
// returns the number of differing values and reports the first.
static int compare_bits(const char *what, const float *out, size_t off, json_t *want) {
    int bad = 0;
    for (size_t i = 0; i < json_array_size(want); i++) {
        uint32_t w = (uint32_t)json_integer_value(json_array_get(want, i));
        uint32_t g = bits_of(out[off + i]);
        if (g != w) {
            if (!bad) {
                fprintf(stderr, "%s: [%zu] got %08x (%.9g) want %08x\n", what, off + i, g,
                        (double)out[off + i], w);
            }
            bad++;
        }
    }
    return bad;
}

static void test_seeding(void) {
    // manual_seed keeps the low 32 bits: 2**32 + 7 draws like 7.
    struct hsd_torch_rng a, b;
    hsd_torch_rng_seed(&a, (1ull << 32) + 7);
    hsd_torch_rng_seed(&b, 7);
    int same = 1;
    for (int i = 0; i < 2000; i++) same &= hsd_torch_rng_u32(&a) == hsd_torch_rng_u32(&b);
    CHECK(same);
    // std::mt19937 reference: the 10000th output for the default seed 5489.
    hsd_torch_rng_seed(&a, 5489);
    uint32_t v = 0;
    for (int i = 0; i < 10000; i++) v = hsd_torch_rng_u32(&a);
    CHECKF(v == 4123659995u, "mt19937(5489) 10000th = %u", v);
    // n = 0 draws nothing.
    hsd_torch_rng_seed(&a, 1);
    hsd_torch_rng_seed(&b, 1);
    hsd_torch_randn(&a, NULL, 0);
    CHECK(hsd_torch_rng_u32(&a) == hsd_torch_rng_u32(&b));
}

static int flavor_of(const char *name) {
    return strcmp(name, "libm") == 0 ? HSD_TORCH_NORMAL_LIBM : HSD_TORCH_NORMAL_AVX2;
}

static void test_flavor(json_t *fl) {
    const char *name = json_string_value(json_object_get(fl, "flavor"));
    const int flavor = flavor_of(name);
    printf("flavor %s (oracle ran torch with cpu capability %s)\n", name,
           json_string_value(json_object_get(fl, "cpu_capability")));
    size_t i;
    json_t *c;
    int n_cases = 0, n_bad = 0;
    json_array_foreach(json_object_get(fl, "cases"), i, c) {
        uint64_t seed = seed_of(json_object_get(c, "seed"));
        size_t n = (size_t)json_integer_value(json_object_get(c, "n"));
        float *out = malloc(n * sizeof *out);
        struct hsd_torch_rng r;
        hsd_torch_rng_seed(&r, seed);
        r.flavor = flavor;
        hsd_torch_randn(&r, out, n);
        char what[96];
        snprintf(what, sizeof what, "%s seed %llu randn(%zu)", name, (unsigned long long)seed, n);
        int bad = compare_bits(what, out, 0, json_object_get(c, "bits"));
        CHECKF(bad == 0, "%s: %d values differ", what, bad);
        n_cases++;
        n_bad += bad != 0;
        free(out);
    }
    json_array_foreach(json_object_get(fl, "big"), i, c) {
        uint64_t seed = seed_of(json_object_get(c, "seed"));
        size_t n = (size_t)json_integer_value(json_object_get(c, "n"));
        float *out = malloc(n * sizeof *out);
        struct hsd_torch_rng r;
        hsd_torch_rng_seed(&r, seed);
        r.flavor = flavor;
        hsd_torch_randn(&r, out, n);
        char what[96], hash[17];
        snprintf(what, sizeof what, "%s seed %llu randn(%zu)", name, (unsigned long long)seed, n);
        snprintf(hash, sizeof hash, "%016llx", (unsigned long long)fnv1a64(out, n));
        int bad = compare_bits(what, out, 0, json_object_get(c, "first")) +
                  compare_bits(what, out, n - 64, json_object_get(c, "last"));
        const char *want = json_string_value(json_object_get(c, "fnv1a64"));
        CHECKF(bad == 0 && strcmp(hash, want) == 0, "%s: hash %s want %s, %d of first/last differ",
               what, hash, want, bad);
        n_cases++;
        n_bad += bad != 0 || strcmp(hash, want) != 0;
        free(out);
    }
    json_array_foreach(json_object_get(fl, "sequences"), i, c) {
        struct hsd_torch_rng r;
        hsd_torch_rng_seed(&r, seed_of(json_object_get(c, "seed")));
        r.flavor = flavor;
        size_t k;
        json_t *op;
        json_array_foreach(json_object_get(c, "ops"), k, op) {
            const char *kind = json_string_value(json_object_get(op, "op"));
            if (strcmp(kind, "seed") == 0) {
                hsd_torch_rng_seed(&r, seed_of(json_object_get(op, "seed")));
                r.flavor = flavor;
                continue;
            }
            size_t n = (size_t)json_integer_value(json_object_get(op, "n"));
            float out[256];
            hsd_torch_randn(&r, out, n);
            char what[96];
            snprintf(what, sizeof what, "%s sequence op %zu randn(%zu)", name, k, n);
            int bad = compare_bits(what, out, 0, json_object_get(op, "bits"));
            CHECKF(bad == 0, "%s: %d values differ", what, bad);
            n_cases++;
            n_bad += bad != 0;
        }
    }
    printf("flavor %s: %d cases, %d with differences (exact bit equality)\n", name, n_cases, n_bad);
}

int main(void) {
    test_seeding();
    json_error_t err;
    json_t *root = json_load_file(HSD_TEST_DATA "/sampling/torch_rng.json", 0, &err);
    CHECKF(root != NULL, "torch_rng.json: %s (run tests/oracle/regen.sh)", err.text);
    if (root) {
        size_t i;
        json_t *fl;
        json_array_foreach(json_object_get(root, "flavors"), i, fl) test_flavor(fl);
        json_decref(root);
    }
    return hsd_test_finish();
}
