hsd_add_test(test_sched_fsm LABELS unit TIMEOUT 30 SOURCES unit/test_sched_fsm.c LIBS hsd_sched)
hsd_add_test(test_service LABELS unit TIMEOUT 300 SOURCES unit/test_service.c LIBS hsd_sched)
hsd_add_test(test_batcher LABELS unit TIMEOUT 300 SOURCES unit/test_batcher.c LIBS hsd_sched)
add_test(NAME test_serve_restart COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/serve_restart.sh
         $<TARGET_FILE:hsd> ${HSD_TEST_DATA})
set_tests_properties(test_serve_restart PROPERTIES LABELS integration TIMEOUT 300
                     ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
# Multi-GPU serving with a GPU that dies, without a GPU: device 1 of three
# runs on faulty_backend.c, a test double of a sticky CUDA error.
hsd_add_test(test_sched_faulty LABELS unit TIMEOUT 300
             SOURCES unit/test_sched_faulty.c unit/faulty_backend.c LIBS hsd_sched)
