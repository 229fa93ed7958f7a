# Warnings, sanitizers and CPU tuning shared by every target. Host-compiler
# flags go to C sources only; nvcc gets its own spelling in cuda/.
add_compile_options("$<$<COMPILE_LANGUAGE:C>:-Wall;-Wextra;-Wshadow;-Wstrict-prototypes;-Wno-unused-parameter>")
if(HSD_WERROR)
  add_compile_options($<$<COMPILE_LANGUAGE:C>:-Werror>)
endif()
if(HSD_SANITIZE)
  add_compile_options("$<$<COMPILE_LANGUAGE:C>:-fsanitize=address,undefined;-fno-omit-frame-pointer;-fno-sanitize-recover=undefined>")
  add_link_options(-fsanitize=address,undefined)
endif()
if(HSD_NATIVE AND NOT HSD_FUZZ)
  # The CPU backend's hot loops are auto-vectorised; -march=native lets them
  # use AVX2/AVX-512 where the machine has them. Turn off for portable builds.
  add_compile_options($<$<COMPILE_LANGUAGE:C>:-march=native>)
endif()
add_compile_options($<$<COMPILE_LANGUAGE:C>:-D_GNU_SOURCE>)
if(HSD_FUZZ)
  # libFuzzer builds (scripts/fuzz.sh): every target gets coverage
  # instrumentation and sanitizers, so the library code the harnesses reach
  # steers the fuzzer and its bugs abort (no UBSan recovery). The libFuzzer
  # main itself is linked per harness in tests/fuzz.cmake (-fsanitize=fuzzer).
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "HSD_FUZZ=ON needs clang: configure with CC=clang-14")
  endif()
  add_compile_options($<$<COMPILE_LANGUAGE:C>:-fsanitize=fuzzer-no-link,address,undefined>
                      $<$<COMPILE_LANGUAGE:C>:-fno-sanitize-recover=undefined>
                      $<$<COMPILE_LANGUAGE:C>:-fno-omit-frame-pointer>)
  add_link_options(-fsanitize=address,undefined)
endif()
