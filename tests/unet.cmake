hsd_add_test(test_unet_oracle LABELS oracle TIMEOUT 300 SOURCES unit/test_unet_oracle.c)
# The bf16 CPU mode against diffusers under CPU bf16 autocast (tests/data/unet_bf16).
hsd_add_test(test_unet_bf16_oracle LABELS oracle TIMEOUT 120 SOURCES unit/test_unet_bf16_oracle.c)
hsd_add_test(test_unet_load LABELS unit TIMEOUT 120 SOURCES unit/test_unet_load.c)
hsd_add_test(test_ldm_names LABELS unit TIMEOUT 30 SOURCES unit/test_ldm_names.c)
# Full-size SD1.5-config U-Net against diffusers (needs .venv; minutes).
add_test(NAME slow_unet_sd15 COMMAND ${CMAKE_SOURCE_DIR}/scripts/slow-unet.sh sd15
         ${CMAKE_BINARY_DIR}/slow)
set_tests_properties(slow_unet_sd15 PROPERTIES LABELS slow TIMEOUT 3600)
add_test(NAME slow_unet_bksdm_tiny COMMAND ${CMAKE_SOURCE_DIR}/scripts/slow-unet.sh bksdm_tiny
         ${CMAKE_BINARY_DIR}/slow)
set_tests_properties(slow_unet_bksdm_tiny PROPERTIES LABELS slow TIMEOUT 3600)
