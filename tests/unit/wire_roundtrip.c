#include "wire_roundtrip.h"

#include "net/transport.h"
#include "net/wire.h"

int hsd_test_roundtrip(const char *ep, const void *buf, size_t len, int timeout_ms, uint64_t *rid,
                       uint16_t *err_code) {
    int type = -1;
    *rid = 0;
    if (err_code) *err_code = 0;
    struct hsd_net_client *c = NULL;
    if (hsd_net_client_open(&c, NULL, (const char *const[]){ep}, 1, NULL) != HSD_OK) return -1;
    struct hsd_net_msg r;
    enum hsd_net_wait w = HSD_NET_TIMEOUT;
    if (buf && hsd_net_client_send(c, buf, len) == HSD_OK &&
        hsd_net_client_recv(c, &r, timeout_ms, &w) == HSD_OK && w == HSD_NET_GOT) {
        struct hsd_wire_msg d;
        enum hsd_wire_error code;
        if (hsd_wire_decode(&d, &code, r.data, r.len) == HSD_OK) {
            type = d.type;
            *rid = d.request_id;
            if (err_code && d.type == HSD_WIRE_ERROR) *err_code = d.u.error.code;
        }
        hsd_net_msg_release(&r);
    }
    hsd_net_client_close(c);
    return type;
}
