# GPU tests: built when the CUDA backend is; without a GPU they exit 77 and
# ctest reports them as skipped (SKIP_RETURN_CODE), never as passed.
if(HSD_HAVE_CUDA)
  hsd_add_test(test_cuda_device LABELS gpu TIMEOUT 60 SOURCES unit/test_cuda_device.c
               LIBS hsd_cuda)
endif()
