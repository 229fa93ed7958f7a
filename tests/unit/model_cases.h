// Whole-model comparisons between two backends, shared by the GPU test
// (test_backend_cuda.c: cuda:0 vs CPU) and the emulated one
// (test_models_cuda_emulated.c: the CUDA kernels in host emulation vs
// CPU): each case loads a model of tests/data on both backends, runs the
// same inputs and checks max|err| <= tol * max|ref| (CHECK_CLOSE prints the
// worst element and the relative error either way).
#ifndef HSD_TEST_MODEL_CASES_H
#define HSD_TEST_MODEL_CASES_H

#include <stddef.h>

#include "backend/backend.h"

// U-Net case `name` (tests/data/unet/NAME) on its oracle inputs: the
// reference once, the test backend `runs` times (runs >= 1; the GPU test
// runs 3: eager, graph capture, replay). Returns the test backend's outputs
// (outs[0..runs-1], malloc'd, caller frees) and their length in *count; 0
// when the case could not run (the failed checks say why).
int hsd_mc_unet(struct hsd_backend *ref, struct hsd_backend *test, const char *name, double tol,
                int runs, float **outs, size_t *count);

// U-Net case `name` with a random rank-8 LoRA (hsd_unet_lora_random)
// attached on both backends and chosen by row 0 only: against the
// reference within tol; then, on the test backend, the calls without LoRA
// before and after the LoRA call agree bitwise (with CUDA graphs: the first
// recorded, the second replayed; unet_forward.c runs LoRA calls unrecorded)
// and the rows that chose no LoRA equal theirs bitwise (the lora op leaves
// them untouched). Needs a batch of 2 or more in the case's inputs.
void hsd_mc_unet_lora(struct hsd_backend *ref, struct hsd_backend *test, const char *name,
                      double tol);

// CLIP text encoder case (tests/data/text/NAME) on random ids, n = 2, L = 77.
void hsd_mc_text(struct hsd_backend *ref, struct hsd_backend *test, const char *name, double tol);

// VAE case (tests/data/vae/NAME): decode a random h x w latent, then encode
// the reference image back (KL: posterior mean; tiny: latents).
void hsd_mc_vae(struct hsd_backend *ref, struct hsd_backend *test, const char *name, int h, int w,
                double tol);

#endif
