# `hsd status` (host/cli/cmd_status.c), the readiness probe of
# scripts/deploy/hsd-serve.k8s.yaml: against `hsd serve` on a tcp loopback
# port (tiny test models, fresh keys), against status_fake_serve (answers a
# chosen health: degraded -> exit 3, draining -> 1, wrong secret ->
# UNAUTHENTICATED), with nothing listening (exit 1 within the timeout) and
# with bad flags (exit 2).
add_executable(status_fake_serve cli/status_fake_serve.c)
target_link_libraries(status_fake_serve PRIVATE hsd_host)
add_test(NAME test_status_cli COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/status_probe.sh
         $<TARGET_FILE:hsd> $<TARGET_FILE:status_fake_serve> ${HSD_TEST_DATA})
set_tests_properties(test_status_cli PROPERTIES LABELS integration TIMEOUT 120
                     ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
