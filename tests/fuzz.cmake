# libFuzzer targets (HSD_FUZZ=ON, clang only; scripts/fuzz.sh drives them).
# cmake/warnings.cmake compiles everything with -fsanitize=fuzzer-no-link so
# the library code the harnesses call is coverage-instrumented; the harness
# executables add the libFuzzer main with -fsanitize=fuzzer.
if(HSD_FUZZ)
  function(hsd_add_fuzzer name)
    add_executable(${name} fuzz/${name}.c)
    target_link_libraries(${name} PRIVATE hsd_host)
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
    # Replays the committed seed corpus once (-runs=0 runs each file, no
    # mutation): a cheap regression check inside ctest -L fuzz.
    add_test(NAME ${name}_corpus
             COMMAND ${name} -runs=0 ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${ARGV1})
    set_tests_properties(${name}_corpus PROPERTIES LABELS fuzz TIMEOUT 120)
  endfunction()
  hsd_add_fuzzer(fuzz_safetensors safetensors)
  hsd_add_fuzzer(fuzz_unet_config unet_config)
endif()
