// PyTorch's CPU generator: mt19937 seeded as torch.Generator("cpu")
// .manual_seed(seed), and torch.randn's float32 normal sampling, so a seed
// gives users the same initial latent (and ancestral noise) as diffusers.
#ifndef HSD_SAMPLING_TORCH_RNG_H
#define HSD_SAMPLING_TORCH_RNG_H

#include <stddef.h>
#include <stdint.h>

// Which of torch's CPU normal kernels to reproduce for tensors of >= 16
// elements (smaller ones use the same scalar double path on every machine).
// torch picks by the CPU at run time, so one seed gives different latents on
// different machines: HSD_TORCH_NORMAL_AVX2 is what torch does on every
// x86-64 CPU with AVX2 (AVX-512 machines run the same kernel: measured with
// ATEN_CPU_CAPABILITY=avx2/avx512, torch 2.15); HSD_TORCH_NORMAL_LIBM is its
// portable kernel (ATEN_CPU_CAPABILITY=default, aarch64), which calls
// logf/cosf/sinf and so matches torch only with the same libm (glibc).
enum hsd_torch_normal_flavor { HSD_TORCH_NORMAL_AVX2, HSD_TORCH_NORMAL_LIBM, HSD_TORCH_NORMAL_COUNT };

struct hsd_torch_rng {
    uint32_t mt[624];
    int index;              // next word of mt[] to temper, 0..624 (624: twist first)
    // torch's cached second Box-Muller value for scalar draws (used when a
    // tensor has fewer than 16 elements); has_next_* = 0/1.
    int has_next_double;
    double next_double;
    int has_next_float;
    float next_float;
    int flavor;             // enum hsd_torch_normal_flavor; seeding sets AVX2
};

// Whole-state reset, as manual_seed: mt19937 init_genrand with the low 32
// bits of `seed` (torch keeps the 64-bit value only for initial_seed()),
// both cached normals dropped, flavor = HSD_TORCH_NORMAL_AVX2.
void hsd_torch_rng_seed(struct hsd_torch_rng *r, uint64_t seed);
// The next raw 32-bit mt19937 output (CPUGeneratorImpl::random).
uint32_t hsd_torch_rng_u32(struct hsd_torch_rng *r);
// Same values as torch.randn(n, generator=g, dtype=torch.float32) on CPU,
// advancing the generator the same way.
void hsd_torch_randn(struct hsd_torch_rng *r, float *out, size_t n);

#endif
