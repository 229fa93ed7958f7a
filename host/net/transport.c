// The transport-independent layer of transport.h: handles, the stop flag and
// timeout slicing, so each transport only implements one bounded wait.
#include "net/transport.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/assert.h"

struct hsd_net_server {
    const struct hsd_net_transport *tp;
    void *impl;
    atomic_int stop;
};

struct hsd_net_client {
    const struct hsd_net_transport *tp;
    void *impl;
};

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum hsd_status hsd_net_server_open(struct hsd_net_server **out, const struct hsd_net_transport *tp,
                                    const char *const *endpoints, int n,
                                    const struct hsd_net_opts *opts) {
    *out = NULL;
    if (!tp) tp = hsd_net_transport_nanomsg();
    if (n < 1) return hsd_fail(HSD_ERR_INVALID_ARG, "net: a server needs at least one endpoint");
    struct hsd_net_server *s = calloc(1, sizeof *s);
    if (!s) return hsd_fail(HSD_ERR_NOMEM, "net: out of memory");
    s->tp = tp;
    atomic_init(&s->stop, 0);
    enum hsd_status st = tp->server_open(&s->impl, endpoints, n, opts);
    if (st != HSD_OK) {
        free(s);
        return st;
    }
    *out = s;
    return HSD_OK;
}

// Waits in slices of at most HSD_NET_STOP_LATENCY_MS, so a stop request is
// seen quickly even when the caller asked to wait forever.
enum hsd_status hsd_net_server_recv(struct hsd_net_server *s, struct hsd_net_msg *msg,
                                    int timeout_ms, enum hsd_net_wait *what) {
    memset(msg, 0, sizeof *msg);
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : mono_ms() + timeout_ms;
    for (;;) {
        if (atomic_load(&s->stop)) {
            *what = HSD_NET_STOPPED;
            return HSD_OK;
        }
        int64_t left = deadline == INT64_MAX ? HSD_NET_STOP_LATENCY_MS : deadline - mono_ms();
        if (left < 0) left = 0;  // one non-blocking look: timeout 0 polls
        int slice = left > HSD_NET_STOP_LATENCY_MS ? HSD_NET_STOP_LATENCY_MS : (int)left;
        enum hsd_status st = s->tp->server_recv(s->impl, msg, slice, what);
        if (st != HSD_OK || *what != HSD_NET_TIMEOUT) {
            if (st == HSD_OK && *what == HSD_NET_GOT) msg->tp_ = s->tp;
            return st;
        }
        if (timeout_ms >= 0 && mono_ms() >= deadline) return HSD_OK;  // *what == TIMEOUT
    }
}

enum hsd_status hsd_net_server_reply(struct hsd_net_server *s, const struct hsd_net_route *to,
                                     const void *buf, size_t len) {
    return s->tp->server_reply(s->impl, to, buf, len);
}

void hsd_net_server_stop(struct hsd_net_server *s) { atomic_store(&s->stop, 1); }

void hsd_net_server_close(struct hsd_net_server *s) {
    if (!s) return;
    s->tp->server_close(s->impl);
    free(s);
}

enum hsd_status hsd_net_client_open(struct hsd_net_client **out, const struct hsd_net_transport *tp,
                                    const char *const *endpoints, int n,
                                    const struct hsd_net_opts *opts) {
    *out = NULL;
    if (!tp) tp = hsd_net_transport_nanomsg();
    if (n < 1) return hsd_fail(HSD_ERR_INVALID_ARG, "net: a client needs at least one endpoint");
    struct hsd_net_client *c = calloc(1, sizeof *c);
    if (!c) return hsd_fail(HSD_ERR_NOMEM, "net: out of memory");
    c->tp = tp;
    enum hsd_status st = tp->client_open(&c->impl, endpoints, n, opts);
    if (st != HSD_OK) {
        free(c);
        return st;
    }
    *out = c;
    return HSD_OK;
}

enum hsd_status hsd_net_client_send(struct hsd_net_client *c, const void *buf, size_t len) {
    return c->tp->client_send(c->impl, buf, len);
}

enum hsd_status hsd_net_client_recv(struct hsd_net_client *c, struct hsd_net_msg *reply,
                                    int timeout_ms, enum hsd_net_wait *what) {
    memset(reply, 0, sizeof *reply);
    // A client has no stop flag, but a transport wait may end early (another
    // event woke it): wait again for what is left.
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : mono_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline == INT64_MAX ? -1 : deadline - mono_ms();
        if (deadline != INT64_MAX && left < 0) left = 0;
        enum hsd_status st = c->tp->client_recv(c->impl, reply, (int)left, what);
        if (st != HSD_OK || *what != HSD_NET_TIMEOUT) {
            if (st == HSD_OK && *what == HSD_NET_GOT) reply->tp_ = c->tp;
            return st;
        }
        if (deadline != INT64_MAX && mono_ms() >= deadline) return HSD_OK;
    }
}

void hsd_net_client_close(struct hsd_net_client *c) {
    if (!c) return;
    c->tp->client_close(c->impl);
    free(c);
}

void hsd_net_msg_release(struct hsd_net_msg *msg) {
    if (msg->data) {
        HSD_ASSERT(msg->tp_);
        msg->tp_->msg_release(msg);
    }
    msg->data = NULL;
    msg->len = 0;
}
