// Step-op test cases from real sampler states, shared by the CPU test
// (test_step_ops.c) and the kernel test (test_cuda_step.c).
//
// Each item is one of the five samplers (eps and v prediction, DDIM with
// clip_sample), advanced by the host sampler through 0..6 steps with
// random model outputs so its history is live (PNDM's warm-up calls 0 and
// 1, its 2nd/3rd/4th-order calls with and without the ets shift;
// DPM-Solver++ first and second order and the final lower-order step), then
// planned (hsd_sampler_plan_step). CFG on for every `cfg_every`-th item
// (0: none), U-Net rows handed out in a scrambled order. Alongside: what
// the host sampler makes of each item (hsd_sampler_scale_model_input, and
// hsd_sampler_step on the guided output with diffusers' CFG formula
// written out here), the truth for the CPU backend's ops.
#ifndef HSD_TEST_STEP_CASES_H
#define HSD_TEST_STEP_CASES_H

#include <stddef.h>

#include "backend/step_ops.h"

struct step_case {
    int n, rows;
    size_t count;
    struct hsd_step_row *table;  // [n]
    float *x, *slots;            // [n, count], [n, HSD_STEP_SLOTS, count]
    float *mo;                   // [rows, count], fp16-exact values in [-3, 3)
    float *eps_host, *x_host;    // [n, count]
    float *in_host;              // [n, count] scale_model_input of each item's x
};

void step_case_make(struct step_case *c, int n, size_t count, int cfg_every, unsigned seed);
void step_case_free(struct step_case *c);

// Bitwise equality of n floats, as a test check naming op/version/case;
// prints the first difference.
void step_check_exact(const char *op, const char *version, const char *name, const float *got,
                      const float *ref, size_t n);

#endif
