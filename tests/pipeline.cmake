hsd_add_test(test_pipeline LABELS oracle TIMEOUT 600 SOURCES unit/test_pipeline.c)
# Batch buckets: padding a U-Net call never changes a real row (CPU; the
# emulated CUDA variant is in cuda.cmake).
hsd_add_test(test_denoise_buckets LABELS unit TIMEOUT 120 SOURCES unit/test_denoise_buckets.c)
hsd_add_test(test_png LABELS unit TIMEOUT 30 SOURCES unit/test_png.c)
add_test(NAME test_generate_cli COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/generate_errors.sh
         $<TARGET_FILE:hsd> ${HSD_TEST_DATA})
set_tests_properties(test_generate_cli PROPERTIES LABELS integration TIMEOUT 120
                     ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
