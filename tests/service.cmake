hsd_add_test(test_sched_fsm LABELS unit TIMEOUT 30 SOURCES unit/test_sched_fsm.c LIBS hsd_sched)
hsd_add_test(test_service LABELS unit TIMEOUT 300 SOURCES unit/test_service.c LIBS hsd_sched)
hsd_add_test(test_batcher LABELS unit TIMEOUT 300 SOURCES unit/test_batcher.c LIBS hsd_sched)
