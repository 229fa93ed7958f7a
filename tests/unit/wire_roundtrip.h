// Tests that talk to an in-process `hsd serve`: one request, one reply.
#ifndef HSD_TEST_WIRE_ROUNDTRIP_H
#define HSD_TEST_WIRE_ROUNDTRIP_H

#include <stddef.h>
#include <stdint.h>

// Sends an encoded request to `ep` on a fresh REQ client and waits up to
// timeout_ms for the reply. Returns the reply's type (HSD_WIRE_RESULT, ...)
// or -1 when none decodable came; *rid gets its request id and *err_code
// (may be NULL) its ERROR code (0 otherwise).
int hsd_test_roundtrip(const char *ep, const void *buf, size_t len, int timeout_ms, uint64_t *rid,
                       uint16_t *err_code);

#endif
