hsd_add_test(test_pipeline LABELS oracle TIMEOUT 600 SOURCES unit/test_pipeline.c)
# The same checks on the tiny SDXL pipelines (tests/oracle/make_sdxl_pipeline_cases.py).
add_test(NAME test_pipeline_sdxl COMMAND test_pipeline pipeline_sdxl)
set_tests_properties(test_pipeline_sdxl PROPERTIES LABELS oracle TIMEOUT 300
                     ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
# Batch buckets: padding a U-Net call never changes a real row (CPU; the
# emulated CUDA variant is in cuda.cmake).
hsd_add_test(test_denoise_buckets LABELS unit TIMEOUT 120 SOURCES unit/test_denoise_buckets.c)
# Requests resident on the backend: bit-identical to the per-step path, zero
# transfers in a steady-state step (the emulated CUDA variant is in cuda.cmake).
hsd_add_test(test_resident_step LABELS unit TIMEOUT 120 SOURCES unit/test_resident_step.c)
hsd_add_test(test_png LABELS unit TIMEOUT 30 SOURCES unit/test_png.c)
add_test(NAME test_generate_cli COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/generate_errors.sh
         $<TARGET_FILE:hsd> ${HSD_TEST_DATA})
set_tests_properties(test_generate_cli PROPERTIES LABELS integration TIMEOUT 120
                     ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
# SD 1.x single-file checkpoints vs the diffusers folders they come from
# (written at test time by tests/oracle/make_single_file.py, checked there
# with diffusers' converters): generate, hybrid, serve + edge, inspect, errors.
if(EXISTS ${CMAKE_SOURCE_DIR}/.venv/bin/python)
  set(HSD_SF_PYTHON ${CMAKE_SOURCE_DIR}/.venv/bin/python)
else()
  find_program(HSD_SF_PYTHON NAMES python3 REQUIRED)
endif()
add_test(NAME test_single_file COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/single_file.sh
         $<TARGET_FILE:hsd> $<TARGET_FILE:test_edge_pngcmp> ${HSD_SF_PYTHON}
         ${CMAKE_CURRENT_SOURCE_DIR}/oracle)
set_tests_properties(test_single_file PROPERTIES LABELS "oracle;integration" TIMEOUT 240
                     SKIP_RETURN_CODE 77 ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
# SDXL single files (issue 11 item 5): file == folder == diffusers, hybrid
# with a U-Net-only edge file, inspect's variants and parameter counts
# (tests/oracle/make_sdxl_single_file.py writes them at test time).
add_test(NAME test_sdxl_single_file COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/sdxl_single_file.sh
         $<TARGET_FILE:hsd> $<TARGET_FILE:test_edge_pngcmp> ${HSD_SF_PYTHON}
         ${CMAKE_CURRENT_SOURCE_DIR}/oracle)
set_tests_properties(test_sdxl_single_file PROPERTIES LABELS "oracle;integration" TIMEOUT 180
                     SKIP_RETURN_CODE 77 ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
# LoRA (issue 12): diffusers load_lora_weights goldens in both file formats,
# per-row LoRA sets in one U-Net call, a LoRA that does not fit refused.
hsd_add_test(test_lora LABELS oracle TIMEOUT 300 SOURCES unit/test_lora.c)
# The same on the tiny SDXL pipeline: kohya (SGM names, lora_te1/te2) and PEFT
# (unet, text_encoder, text_encoder_2) vs StableDiffusionXLPipeline.load_lora_weights.
add_test(NAME test_lora_sdxl COMMAND test_lora lora_sdxl pipeline_sdxl)
set_tests_properties(test_lora_sdxl PROPERTIES LABELS oracle TIMEOUT 300
                     ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
hsd_add_test(test_lora_unit LABELS unit TIMEOUT 60 SOURCES unit/test_lora_unit.c)
# LCM (issue 12): LCMScheduler + LCM-shaped U-Nets (guidance embedding), 4 and
# 8 steps, the 4 + 4 hybrid split, LCM-LoRA, against diffusers goldens.
hsd_add_test(test_lcm LABELS oracle TIMEOUT 300 SOURCES unit/test_lcm.c)
# More than two U-Nets in one schedule (issue 12 item 6).
hsd_add_test(test_stages LABELS unit TIMEOUT 120 SOURCES unit/test_stages.c)
# --prompt-style a1111 end to end: generate vs diffusers (tests/data/prompt),
# edge through a real serve == generate, errors.
add_test(NAME test_prompt_a1111_cli COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/prompt_a1111.sh
         $<TARGET_FILE:hsd> $<TARGET_FILE:test_edge_pngcmp> ${HSD_SF_PYTHON} ${HSD_TEST_DATA})
set_tests_properties(test_prompt_a1111_cli PROPERTIES LABELS integration TIMEOUT 120
                     ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
