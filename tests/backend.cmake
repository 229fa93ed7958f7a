# CPU backend (host/backend/cpu): op-by-op checks against naive double
# references, and the op benchmark (an executable, not a test: run it by hand,
# `build/tests/bench_cpu_ops`, it prints GFLOP/s and % of the FMA peak).
hsd_add_test(test_cpu_ops LABELS unit TIMEOUT 120 SOURCES unit/test_cpu_ops.c)
hsd_add_test(test_cpu_weight_view LABELS unit TIMEOUT 60 SOURCES unit/test_cpu_weight_view.c)
# conv2d's Winograd version against its im2col version (SD and odd shapes).
hsd_add_test(test_cpu_winograd LABELS unit TIMEOUT 120 SOURCES unit/test_cpu_winograd.c)
# The bf16 compute mode (--cpu-precision bf16) against fp32 and bf16-operand references.
hsd_add_test(test_cpu_bf16 LABELS unit TIMEOUT 120 SOURCES unit/test_cpu_bf16.c)
# The same through the cblas_sbgemm path: the executable exports a plain-C
# cblas_sbgemm that the backend's dlsym finds (this OpenBLAS has none).
hsd_add_test(test_cpu_bf16_sbgemm LABELS unit TIMEOUT 120 SOURCES unit/test_cpu_bf16.c)
target_compile_definitions(test_cpu_bf16_sbgemm PRIVATE HSD_TEST_FAKE_SBGEMM)
set_target_properties(test_cpu_bf16_sbgemm PROPERTIES ENABLE_EXPORTS ON)
# The step ops (scale_model_input, CFG, sampler step) against the samplers.
hsd_add_test(test_step_ops LABELS unit TIMEOUT 60 SOURCES unit/test_step_ops.c unit/step_cases.c)

add_executable(bench_cpu_ops ${CMAKE_SOURCE_DIR}/bench/bench_cpu_ops.c)
target_link_libraries(bench_cpu_ops PRIVATE hsd_host hsd_bench_timing)

# --backend parsing and opening, CPU pipeline sets (no GPU needed).
hsd_add_test(test_backend_spec LABELS unit TIMEOUT 120 SOURCES unit/test_backend_spec.c
             LIBS hsd_backends)
