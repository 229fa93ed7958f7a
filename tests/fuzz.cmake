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
  hsd_add_fuzzer(fuzz_wire wire)
  hsd_add_fuzzer(fuzz_sampler_state sampler_state)
  hsd_add_fuzzer(fuzz_tokenizer tokenizer)
  hsd_add_fuzzer(fuzz_edge_result edge_result)
  hsd_add_fuzzer(fuzz_a1111_request a1111_request)
  hsd_add_fuzzer(fuzz_ldm_names ldm_names)
  hsd_add_fuzzer(fuzz_prompt_emphasis prompt_emphasis)
  hsd_add_fuzzer(fuzz_weights_index weights_index)
  hsd_add_fuzzer(fuzz_lora_keys lora_keys)
  # The tokenizer harness needs OpenAI's vocab (same cache variable as
  # tests/text.cmake, which is included after this file).
  set(HSD_CLIP_BPE_GZ "${CMAKE_SOURCE_DIR}/host/text/data/clip_bpe_simple_vocab_16e6.txt.gz"
      CACHE FILEPATH "OpenAI's bpe_simple_vocab_16e6.txt.gz (tokenizer test and fuzzer)")
  target_compile_definitions(fuzz_tokenizer PRIVATE HSD_CLIP_BPE_GZ="${HSD_CLIP_BPE_GZ}")
  target_compile_definitions(fuzz_prompt_emphasis PRIVATE HSD_CLIP_BPE_GZ="${HSD_CLIP_BPE_GZ}")
endif()
