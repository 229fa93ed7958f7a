# host/net: wire format, request authentication, nanomsg transport.
# Loopback only (ipc:// in a temp dir, tcp://127.0.0.1); each finishes in seconds.
find_package(Threads REQUIRED)
# ARGS: the fuzz seed corpus, written from docs/protocol.md independently of
# the C encoder; every valid_* file there must decode.
hsd_add_test(test_net_wire LABELS unit TIMEOUT 20 SOURCES unit/test_net_wire.c
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/wire)
hsd_add_test(test_net_auth LABELS unit TIMEOUT 20 SOURCES unit/test_net_auth.c LIBS Threads::Threads
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/wire)
hsd_add_test(test_net_transport LABELS unit TIMEOUT 20 SOURCES unit/test_net_transport.c
             LIBS Threads::Threads)
