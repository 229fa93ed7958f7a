# GPU tests: built when the CUDA backend is; without a GPU they exit 77 and
# ctest reports them as skipped (SKIP_RETURN_CODE), never as passed.
if(HSD_HAVE_CUDA)
  hsd_add_test(test_cuda_device LABELS gpu TIMEOUT 60 SOURCES unit/test_cuda_device.c
               LIBS hsd_cuda)
endif()

# The CUDA backend end to end: U-Nets, text encoders, VAEs and a hybrid
# generation on cuda:0 against the CPU backend; graph replays; the NCCL
# broadcast with two or more GPUs.
if(HSD_HAVE_CUDA)
  hsd_add_test(test_backend_cuda LABELS gpu TIMEOUT 900
               SOURCES unit/test_backend_cuda.c unit/model_cases.c
               LIBS hsd_backends hsd_cuda)
endif()

# Requests resident on cuda:0 (tests/unit/test_resident_step.c): against the
# CPU backend, zero transfers in a steady-state step, whole-step graphs.
if(HSD_HAVE_CUDA)
  hsd_add_test(test_resident_step_cuda LABELS gpu TIMEOUT 300
               SOURCES unit/test_resident_step.c LIBS hsd_cuda)
  target_compile_definitions(test_resident_step_cuda PRIVATE HSD_TEST_CUDA=1)
endif()
