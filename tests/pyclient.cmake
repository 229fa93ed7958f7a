# The Python edge client (clients/python, over pynng) and the Grafana
# dashboard (scripts/deploy/grafana-hsd.json), checked against this build.
# Python: the project's .venv (scripts/setup.sh installs pynng, numpy,
# promql-parser and prometheus-client from tests/oracle/requirements.txt);
# a script whose packages are missing exits 77 (skipped, never passed).
if(EXISTS ${CMAKE_SOURCE_DIR}/.venv/bin/python)
  set(HSD_PYTHON ${CMAKE_SOURCE_DIR}/.venv/bin/python)
else()
  find_program(HSD_PYTHON NAMES python3 REQUIRED)
endif()
add_executable(pyclient_wire_tool pyclient/wire_tool.c)
target_link_libraries(pyclient_wire_tool PRIVATE hsd_host)
set(HSD_PY_ENV "PYTHONPATH=${CMAKE_SOURCE_DIR}/clients/python/src" PYTHONDONTWRITEBYTECODE=1
    OMP_WAIT_POLICY=PASSIVE)

# Encoder and decoders against the C implementation, without sockets; the
# decoder also against mutated messages (a bounded fuzz run).
add_test(NAME test_pyclient_wire
         COMMAND ${HSD_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/pyclient/test_wire.py
         $<TARGET_FILE:pyclient_wire_tool> ${HSD_TEST_DATA})
set_tests_properties(test_pyclient_wire PROPERTIES LABELS unit TIMEOUT 120 SKIP_RETURN_CODE 77
                     ENVIRONMENT "${HSD_PY_ENV}")
# The client against a real `hsd serve` (tcp on 127.0.0.1): verified
# RESULT equal to the in-process reference, finished by the C edge equal to
# `hsd generate --split k`, tampered/replayed refused.
add_test(NAME test_pyclient_serve
         COMMAND ${HSD_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/pyclient/test_serve.py
         $<TARGET_FILE:hsd> $<TARGET_FILE:pyclient_wire_tool> ${HSD_TEST_DATA}
         $<TARGET_FILE:test_edge_pngcmp>)
set_tests_properties(test_pyclient_serve PROPERTIES LABELS integration TIMEOUT 180
                     SKIP_RETURN_CODE 77 ENVIRONMENT "${HSD_PY_ENV}")
# Protocol version 2 against `hsd serve` with the tiny SDXL pipeline: the
# RESULT's pooled embeddings and time ids, finished by the C edge equal to
# `hsd generate --split k`; version 1 and SD 1.x edges refused (~2 s).
add_test(NAME test_pyclient_serve_sdxl
         COMMAND ${HSD_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/pyclient/test_serve_sdxl.py
         $<TARGET_FILE:hsd> $<TARGET_FILE:pyclient_wire_tool> ${HSD_TEST_DATA}
         $<TARGET_FILE:test_edge_pngcmp>)
set_tests_properties(test_pyclient_serve_sdxl PROPERTIES LABELS integration TIMEOUT 180
                     SKIP_RETURN_CODE 77 ENVIRONMENT "${HSD_PY_ENV}")
# The optional diffusers finish (hsd_client.diffusers_finish) against the
# C edge's finish of the same handover.
add_test(NAME test_pyclient_diffusers
         COMMAND ${HSD_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/pyclient/test_diffusers_finish.py
         $<TARGET_FILE:pyclient_wire_tool> ${HSD_TEST_DATA})
set_tests_properties(test_pyclient_diffusers PROPERTIES LABELS oracle TIMEOUT 300
                     SKIP_RETURN_CODE 77 ENVIRONMENT "${HSD_PY_ENV}")
# Every metric the dashboard's PromQL queries is one `hsd serve` exports.
add_test(NAME test_grafana_dashboard
         COMMAND ${HSD_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/pyclient/test_dashboard.py
         $<TARGET_FILE:hsd> ${HSD_TEST_DATA} ${CMAKE_SOURCE_DIR}/scripts/deploy/grafana-hsd.json
         ${CMAKE_SOURCE_DIR}/scripts/deploy/check_dashboard.py)
set_tests_properties(test_grafana_dashboard PROPERTIES LABELS integration TIMEOUT 120
                     SKIP_RETURN_CODE 77 ENVIRONMENT "${HSD_PY_ENV}")
# Soak (issue 15): mixed requests (samplers, splits, cancels, unsigned,
# malformed, over-limit, replayed) against a real `hsd serve`; every request
# ends exactly once as documented; RSS and descriptors bounded after a
# warm-up. CI: 1,000 requests (~30 s); slow: 10,000 (~3 min on 2 cores).
add_test(NAME test_serve_soak
         COMMAND ${HSD_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/pyclient/test_soak.py
         $<TARGET_FILE:hsd> ${HSD_TEST_DATA} 1000)
set_tests_properties(test_serve_soak PROPERTIES LABELS integration TIMEOUT 180
                     SKIP_RETURN_CODE 77 ENVIRONMENT "${HSD_PY_ENV}")
add_test(NAME test_serve_soak_long
         COMMAND ${HSD_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/pyclient/test_soak.py
         $<TARGET_FILE:hsd> ${HSD_TEST_DATA} 10000)
set_tests_properties(test_serve_soak_long PROPERTIES LABELS slow TIMEOUT 900
                     SKIP_RETURN_CODE 77 ENVIRONMENT "${HSD_PY_ENV}")
# Issue 15, finding 5 through the service: a key over its queue share gets
# BUSY, another key is still accepted and admitted ahead of the backlog.
add_test(NAME test_pyclient_fair
         COMMAND ${HSD_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/pyclient/test_fair.py
         $<TARGET_FILE:hsd> ${HSD_TEST_DATA})
set_tests_properties(test_pyclient_fair PROPERTIES LABELS integration TIMEOUT 180
                     SKIP_RETURN_CODE 77 ENVIRONMENT "${HSD_PY_ENV}")
