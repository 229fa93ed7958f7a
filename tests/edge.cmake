# host/edge: the edge worker's library (request, RESULT verification,
# retries, finishing) and `hsd edge` against a loopback cloud.

find_package(Threads REQUIRED)
hsd_add_test(test_edge_verify LABELS unit TIMEOUT 120 SOURCES unit/test_edge_verify.c)
hsd_add_test(test_edge_finish LABELS oracle TIMEOUT 600 SOURCES unit/test_edge_finish.c)
hsd_add_test(test_edge_client LABELS unit TIMEOUT 120 SOURCES unit/test_edge_client.c
             LIBS Threads::Threads)

# `hsd edge` against `hsd serve` (ipc:// in a temp dir) vs `hsd generate
# --split k`: pixels and IDAT bytes equal; local fallback; wrong key; bad
# arguments. test_edge_pngcmp is its PNG comparison helper.
add_executable(test_edge_pngcmp unit/test_edge_pngcmp.c)
target_link_libraries(test_edge_pngcmp PRIVATE hsd_host)
add_test(NAME test_edge_cli COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/edge_vs_generate.sh
         $<TARGET_FILE:hsd> $<TARGET_FILE:test_edge_pngcmp> ${HSD_TEST_DATA})
set_tests_properties(test_edge_cli PROPERTIES LABELS integration TIMEOUT 180
                     ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")

# Hybrid SDXL across the network (issue 11 item 6): `hsd edge` with the
# oracle's small SDXL U-Net against `hsd serve` with its SDXL pipeline ==
# `hsd generate --split k` (bitwise alone, within 1/255 batched), the time
# ids matter, bad pairs refused naming the field. ~30 s on 2 cores.
add_test(NAME test_sdxl_serve COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/sdxl_serve.sh
         $<TARGET_FILE:hsd> $<TARGET_FILE:test_edge_pngcmp> ${HSD_TEST_DATA})
set_tests_properties(test_sdxl_serve PROPERTIES LABELS integration TIMEOUT 180
                     ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")

# `hsd edge --http` (the AUTOMATIC1111 API and the page) against `hsd serve`
# on loopback: tests/cli/edge_http.sh starts both and runs the `webuiapi`
# client (tests/cli/edge_http_webuiapi.py: images equal `hsd generate
# --split k`, progress, interrupt, bad requests, local fallback, full queue)
# or headless Chromium on the page (tests/cli/edge_http_page.py; screenshots
# in the build folder's artifacts/). Python packages: tests/oracle/requirements.txt.
foreach(part api page)
  add_test(NAME test_edge_http_${part}
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/edge_http.sh $<TARGET_FILE:hsd>
                   ${HSD_TEST_DATA} ${CMAKE_SOURCE_DIR}/.venv/bin/python
                   ${CMAKE_BINARY_DIR}/artifacts ${part})
  set_tests_properties(test_edge_http_${part} PROPERTIES LABELS integration TIMEOUT 180
                       ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
endforeach()
hsd_add_test(test_a1111_request LABELS unit TIMEOUT 30 SOURCES unit/test_a1111_request.c)
# LoRAs per request through hsd serve + hsd edge vs hsd generate --lora (issue 12).
add_test(NAME test_lora_serve COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/lora_serve.sh
         $<TARGET_FILE:hsd> $<TARGET_FILE:test_edge_pngcmp> ${HSD_TEST_DATA})
set_tests_properties(test_lora_serve PROPERTIES LABELS integration TIMEOUT 120
                     ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
# SDXL LoRAs per request: hsd edge (small SDXL U-Net) + hsd serve vs hsd
# generate --split k --lora, a batch mixing LoRA and none, the edge's refusal.
add_test(NAME test_sdxl_lora_serve COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/sdxl_lora_serve.sh
         $<TARGET_FILE:hsd> $<TARGET_FILE:test_edge_pngcmp> ${HSD_TEST_DATA}
         ${CMAKE_SOURCE_DIR}/.venv/bin/python)
set_tests_properties(test_sdxl_lora_serve PROPERTIES LABELS integration TIMEOUT 120
                     SKIP_RETURN_CODE 77 ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
# SDXL through hsd edge --http (the A1111 API) with <lora:NAME:SCALE>, images
# equal to hsd generate --split k.
add_test(NAME test_sdxl_edge_http COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/sdxl_edge_http.sh
         $<TARGET_FILE:hsd> $<TARGET_FILE:test_edge_pngcmp> ${HSD_TEST_DATA}
         ${CMAKE_SOURCE_DIR}/.venv/bin/python)
set_tests_properties(test_sdxl_edge_http PROPERTIES LABELS integration TIMEOUT 120
                     SKIP_RETURN_CODE 77 ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
# LCM and <lora:NAME:SCALE> through hsd edge --http (the A1111 API) against
# hsd serve, images equal to hsd generate; 422s for bad names and scales.
add_test(NAME test_edge_http_lora COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/edge_http_lora.sh
         $<TARGET_FILE:hsd> $<TARGET_FILE:test_edge_pngcmp> ${HSD_TEST_DATA}
         ${CMAKE_SOURCE_DIR}/.venv/bin/python)
set_tests_properties(test_edge_http_lora PROPERTIES LABELS integration TIMEOUT 120
                     ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
# The LCM hybrid split (4 + 4) through hsd serve + hsd edge (issue 12).
add_test(NAME test_lcm_serve COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/lcm_serve.sh
         $<TARGET_FILE:hsd> $<TARGET_FILE:test_edge_pngcmp> ${HSD_TEST_DATA})
set_tests_properties(test_lcm_serve PROPERTIES LABELS integration TIMEOUT 120
                     ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
