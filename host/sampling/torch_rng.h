// PyTorch's CPU generator: mt19937 seeded as torch.Generator("cpu")
// .manual_seed(seed), and torch.randn's float32 normal sampling, so a seed
// gives users the same initial latent (and ancestral noise) as diffusers.
#ifndef HSD_SAMPLING_TORCH_RNG_H
#define HSD_SAMPLING_TORCH_RNG_H

#include <stddef.h>
#include <stdint.h>

struct hsd_torch_rng {
    uint32_t mt[624];
    int index;
    // torch's cached second Box-Muller value for scalar draws (used when a
    // tensor has fewer than 16 elements); has_next_* = 0/1.
    int has_next_double;
    double next_double;
    int has_next_float;
    float next_float;
};

void hsd_torch_rng_seed(struct hsd_torch_rng *r, uint64_t seed);
// Same values as torch.randn(n, generator=g, dtype=torch.float32) on CPU,
// advancing the generator the same way.
void hsd_torch_randn(struct hsd_torch_rng *r, float *out, size_t n);

#endif
