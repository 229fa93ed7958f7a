# CUDA kernel tests (cuda/): every registry version against the CPU backend
# on SD shapes and odd ones. Label gpu: without a GPU each prints
# "no GPU: skipped" (or names the missing or too old driver) and exits 77,
# which ctest reports as skipped.
#
# Label unit (run everywhere nvcc is, no GPU needed):
# - test_cuda_*_emulated: the same test programs linked against
#   hsd_cuda_emu, the kernel files compiled a second time as host C++ over
#   the CUDA emulation of cuda/emulate.cuh (blocks of real threads,
#   ldmatrix/mma.sync fragments per the PTX ISA). They run the real
#   launchers and kernels on the cases small enough to emulate and skip
#   the rest: kernel logic checked on every CI run, hardware not.
# - test_models_cuda_emulated: every model on those kernels (an emulated
#   CUDA backend, tests/unit/emu_backend.h) against the CPU backend.
# - test_cuda_model_shapes_emulated / test_cuda_real_widths_emulated: the
#   real models' op shapes against the registry and the kernels (below).
# - test_cuda_registry: the registry's table invariants.
# - test_cuda_no_spills: the spill gate over the built hsd_cuda
#   (scripts/check-cuda-spills.sh).
if(HSD_HAVE_CUDA)
  foreach(t attention conv2d norm eltwise step lora)
    hsd_add_test(test_cuda_${t} LABELS gpu TIMEOUT 900
                 SOURCES unit/test_cuda_${t}.c unit/test_cuda_common.c LIBS hsd_cuda)
  endforeach()
  target_sources(test_cuda_step PRIVATE unit/step_cases.c)
  # The SD VAE's one 512-wide attention head (t = 4096 and 16384; the CPU
  # reference of t = 16384 is the slow part: ~1 min on 16 cores).
  hsd_add_test(test_cuda_attention_vae LABELS gpu TIMEOUT 900 ARGS --vae
               SOURCES unit/test_cuda_attention.c unit/test_cuda_common.c LIBS hsd_cuda)
  hsd_add_test(test_cuda_registry LABELS unit TIMEOUT 30
               SOURCES unit/test_cuda_registry.c LIBS hsd_cuda)
  add_test(NAME test_cuda_no_spills
           COMMAND ${CMAKE_SOURCE_DIR}/scripts/check-cuda-spills.sh $<TARGET_FILE:hsd_cuda>)
  set_tests_properties(test_cuda_no_spills PROPERTIES LABELS unit TIMEOUT 600
                       SKIP_RETURN_CODE 77)

endif()

# The emulation switches fibers with x86-64 code (cuda/emulate.cuh), so it
# is built only there; an aarch64 machine with nvcc (Jetson, GH200) builds
# the CUDA backend and its GPU tests without it.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(HSD_CUDA_EMULATION_DEFAULT ON)
else()
  set(HSD_CUDA_EMULATION_DEFAULT OFF)
endif()
option(HSD_CUDA_EMULATION "build the CUDA kernels' host emulation and its tests (x86-64 only)"
       ${HSD_CUDA_EMULATION_DEFAULT})
if(HSD_CUDA_EMULATION AND NOT HSD_CUDA_EMULATION_DEFAULT)
  message(FATAL_ERROR "HSD_CUDA_EMULATION needs an x86-64 host (cuda/emulate.cuh), "
                      "not ${CMAKE_SYSTEM_PROCESSOR}")
endif()
if(HSD_HAVE_CUDA AND NOT HSD_CUDA_EMULATION)
  message(STATUS "hsd: CUDA kernel emulation not built (HSD_CUDA_EMULATION=OFF; host ${CMAKE_SYSTEM_PROCESSOR}, it needs x86-64)")
endif()

if(HSD_HAVE_CUDA AND HSD_CUDA_EMULATION)
  # hsd_cuda_emu: every cuda/*.cu (but sm_90a-only files) as host C++.
  enable_language(CXX)
  find_package(Threads REQUIRED)
  file(GLOB HSD_CUDA_EMU_INPUTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/cuda/*.cu)
  list(FILTER HSD_CUDA_EMU_INPUTS EXCLUDE REGEX "_sm90a\\.cu$")
  set(HSD_CUDA_EMU_SOURCES)
  foreach(f ${HSD_CUDA_EMU_INPUTS})
    get_filename_component(base ${f} NAME_WE)
    set(src ${CMAKE_CURRENT_BINARY_DIR}/cuda_emu/${base}_emu.cpp)
    file(CONFIGURE OUTPUT ${src} CONTENT "#include \"${f}\"\n")
    list(APPEND HSD_CUDA_EMU_SOURCES ${src})
  endforeach()
  add_library(hsd_cuda_emu STATIC ${HSD_CUDA_EMU_SOURCES})
  target_include_directories(hsd_cuda_emu PUBLIC ${CMAKE_SOURCE_DIR}/cuda ${CUDAToolkit_INCLUDE_DIRS})
  target_compile_definitions(hsd_cuda_emu PUBLIC HSD_CUDA_EMULATE=1)
  target_compile_options(hsd_cuda_emu PRIVATE -include ${CMAKE_SOURCE_DIR}/cuda/emulate.cuh
                         -Wall -Wextra -Wno-unused-parameter -Wno-unknown-pragmas
                         # CUDA code reinterprets fp16 arrays as uint4 freely (nvcc allows
                         # it); the host compiler must not optimise on type-based aliasing.
                         -fno-strict-aliasing
                         # One rounding per operation, as the device code's __fmul_rn/...
                         # (host/backend/step_math.h): the step kernels are bit-exact.
                         -ffp-contract=off)
  if(HSD_WERROR)
    target_compile_options(hsd_cuda_emu PRIVATE -Werror)
  endif()
  set_target_properties(hsd_cuda_emu PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON)
  target_link_libraries(hsd_cuda_emu PUBLIC hsd_host Threads::Threads)
  foreach(t attention conv2d norm eltwise step lora)
    hsd_add_test(test_cuda_${t}_emulated LABELS unit TIMEOUT 900
                 SOURCES unit/test_cuda_${t}.c unit/test_cuda_common.c LIBS hsd_cuda_emu)
  endforeach()
  target_sources(test_cuda_step_emulated PRIVATE unit/step_cases.c)
  hsd_add_test(test_cuda_attention_vae_emulated LABELS unit TIMEOUT 300 ARGS --vae
               SOURCES unit/test_cuda_attention.c unit/test_cuda_common.c LIBS hsd_cuda_emu)
  # The whole models on the emulated kernels (tests/unit/emu_backend.h, a
  # test double of the CUDA backend's numerics) against the CPU backend.
  # About 31 s Release, 175 s Debug + ASan/UBSan (the emulated kernels at
  # -O0), on 2 cores: the timeout is for sanitizer builds. The LoRA U-Net
  # case (hsd_mc_unet_lora: the lora op inside a model) adds ~25 s Release.
  hsd_add_test(test_models_cuda_emulated LABELS unit TIMEOUT 600
               SOURCES unit/test_models_cuda_emulated.c unit/emu_backend.c unit/model_cases.c
               LIBS hsd_cuda_emu)
  # A multi-step hybrid generation (five samplers, CFG on/off, different
  # splits, one batch) through hsd_pipeline_denoise_step and the step ops on
  # the emulated backend against the CPU backend.
  hsd_add_test(test_denoise_cuda_emulated LABELS unit TIMEOUT 300
               SOURCES unit/test_denoise_cuda_emulated.c unit/emu_backend.c LIBS hsd_cuda_emu)
  hsd_add_test(test_denoise_buckets_emulated LABELS unit TIMEOUT 300
               SOURCES unit/test_denoise_buckets.c unit/emu_backend.c LIBS hsd_cuda_emu)
  target_compile_definitions(test_denoise_buckets_emulated PRIVATE HSD_TEST_EMU=1)
  # The same requests resident on the emulated backend (gather/scatter
  # kernels, no transfer in a steady-state step) against the CPU backend.
  # ~60 s of CPU; 600: a loaded 2-core CI machine ran it in 272 s of wall time.
  hsd_add_test(test_resident_step_emulated LABELS unit TIMEOUT 600
               SOURCES unit/test_resident_step.c unit/emu_backend.c LIBS hsd_cuda_emu)
  target_compile_definitions(test_resident_step_emulated PRIVATE HSD_TEST_EMU=1)
  # The real models' op shapes (tests/unit/test_cuda_model_shapes.c): every
  # model preset at full size on a shape-recording backend, each shape asked
  # of the registry in the emulation's dry-run mode (none may be refused),
  # then the shape classes at real widths on tiny sizes against the CPU:
  # in CI one class per op plus those off the production version (2.5 s
  # Release); every class (104) under label slow (347 s Release on 2 busy
  # cores, the 1280-wide convs most of it).
  hsd_add_test(test_cuda_model_shapes_emulated LABELS unit TIMEOUT 300 ARGS --ci
               SOURCES unit/test_cuda_model_shapes.c unit/shape_backend.c unit/emu_backend.c
               LIBS hsd_cuda_emu)
  hsd_add_test(test_cuda_real_widths_emulated LABELS slow TIMEOUT 3600
               SOURCES unit/test_cuda_model_shapes.c unit/shape_backend.c unit/emu_backend.c
               LIBS hsd_cuda_emu)
endif()
