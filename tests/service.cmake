hsd_add_test(test_sched_fsm LABELS unit TIMEOUT 30 SOURCES unit/test_sched_fsm.c LIBS hsd_sched)
hsd_add_test(test_service LABELS unit TIMEOUT 300 SOURCES unit/test_service.c LIBS hsd_sched)
# A GENERATE the model or the edge's U-Net cannot take: refused before compute.
hsd_add_test(test_request_fit LABELS unit TIMEOUT 60 SOURCES unit/test_request_fit.c LIBS hsd_sched)
hsd_add_test(test_batcher LABELS unit TIMEOUT 300 SOURCES unit/test_batcher.c LIBS hsd_sched)
add_test(NAME test_serve_restart COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/serve_restart.sh
         $<TARGET_FILE:hsd> ${HSD_TEST_DATA})
set_tests_properties(test_serve_restart PROPERTIES LABELS integration TIMEOUT 300
                     ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
# Multi-GPU serving with a GPU that dies, without a GPU: device 1 of three
# runs on faulty_backend.c, a test double of a sticky CUDA error.
hsd_add_test(test_sched_faulty LABELS unit TIMEOUT 300
             SOURCES unit/test_sched_faulty.c unit/faulty_backend.c LIBS hsd_sched)
# Issue 15, finding 1: `hsd edge` under a service SIGKILLed and restarted
# in a loop, attempt timeouts short enough to cancel requests still being
# computed: zero aborts, zero failed edges. CI: 3 rounds x 6 edges (~10 s);
# slow: 50 rounds x 12 edges (~2 min).
add_test(NAME test_serve_kill_loop COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/serve_kill_loop.sh
         $<TARGET_FILE:hsd> ${HSD_TEST_DATA} 3 6)
set_tests_properties(test_serve_kill_loop PROPERTIES LABELS integration TIMEOUT 120
                     ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
add_test(NAME test_serve_kill_loop_long COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/serve_kill_loop.sh
         $<TARGET_FILE:hsd> ${HSD_TEST_DATA} 50 12)
set_tests_properties(test_serve_kill_loop_long PROPERTIES LABELS slow TIMEOUT 900
                     ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
# Issue 15, finding 6: 400 half-open requests on --metrics-port of a service
# under `ulimit -n 256`; an edge client is still served, /metrics recovers.
add_test(NAME test_serve_slowloris COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/serve_slowloris.sh
         $<TARGET_FILE:hsd> ${HSD_TEST_DATA})
set_tests_properties(test_serve_slowloris PROPERTIES LABELS integration TIMEOUT 90
                     ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
# Issue 15, finding 2: 240 unauthenticated connections announcing 60 MiB or
# 33 KB and stalling, against a service under ulimit -v: it stays up and
# serves, RSS grows < 64 MiB.
add_test(NAME test_serve_stalled COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/serve_stalled.sh
         $<TARGET_FILE:hsd> ${HSD_TEST_DATA})
set_tests_properties(test_serve_stalled PROPERTIES LABELS integration TIMEOUT 90
                     ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
# Issue 15, finding 7: on_done before hsd_sched_submit returns (made certain
# by wrapping it at link time); a use-after-free that the sanitizer job sees.
hsd_add_test(test_service_submit_race LABELS unit TIMEOUT 120
             SOURCES unit/test_service_submit_race.c unit/wire_roundtrip.c LIBS hsd_sched)
target_link_options(test_service_submit_race PRIVATE -Wl,--wrap=hsd_sched_submit)
# Issue 10, item 5: one decode per message, one tokenization per text side,
# none on the receive thread (counted through link-time wraps).
hsd_add_test(test_service_parse_once LABELS unit TIMEOUT 60
             SOURCES unit/test_service_parse_once.c unit/wire_roundtrip.c
             LIBS hsd_sched)
target_link_options(test_service_parse_once PRIVATE -Wl,--wrap=hsd_net_server_recv
                    -Wl,--wrap=hsd_wire_decode -Wl,--wrap=hsd_wire_decode_frame
                    -Wl,--wrap=hsd_wire_peek_generate -Wl,--wrap=hsd_clip_tokenize)
# Fail-over (docs/scaling.md §2): 3 nodes, 24 edges given all of them, one
# node SIGKILLed and one drained with SIGTERM under load; every request ends
# exactly once (cloud RESULT or local fallback). ~35 s.
add_test(NAME test_serve_failover COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/serve_failover.sh
         $<TARGET_FILE:hsd> ${HSD_TEST_DATA} 24)
set_tests_properties(test_serve_failover PROPERTIES LABELS integration TIMEOUT 180
                     ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
# Issue 10, item 3: warm-up plans every (bucket, size) at start; requests
# of those shapes leave hsd_plans_total flat. ~15 s.
add_test(NAME test_serve_warmup COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/serve_warmup.sh
         $<TARGET_FILE:hsd> ${HSD_TEST_DATA})
set_tests_properties(test_serve_warmup PROPERTIES LABELS integration TIMEOUT 120
                     ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
# LoRA sets chosen per request, batched together (issue 12); GENERATE's LoRA list.
hsd_add_test(test_lora_batch LABELS unit TIMEOUT 120 SOURCES unit/test_lora_batch.c LIBS hsd_sched)
# Issue 15, finding 5: sizes and keys take turns; per-key queue share;
# deadlines and cancellations answered inside a running U-Net call.
hsd_add_test(test_sched_fair LABELS unit TIMEOUT 300 SOURCES unit/test_sched_fair.c
             LIBS hsd_sched)
