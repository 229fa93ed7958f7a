// Asking the cloud: one GENERATE at a time, retried with backoff, each
// attempt freshly signed on a fresh socket (docs/protocol.md §1, §4, §5.3).
//
// Why a new socket per attempt: the transport resends the request's bytes
// on its own after resend_ivl_ms (host/net/transport_nn.c). A resent
// copy carries the old nonce, which a service refuses as REPLAYED, so the
// edge never lets the transport retry for it: the resend timer is set past the
// attempt's wait, and each retry is a new request id, a new signature and
// a new socket. A REPLAYED answer (an old copy resent) is
// retried like BUSY.
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "edge/edge.h"

#define CANCEL_WAIT_MS 200  // best-effort CANCEL of a timed-out attempt

static double mono_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void sleep_ms(double ms) {
    if (ms <= 0) return;
    struct timespec t = {(time_t)(ms / 1e3), (long)((ms - (time_t)(ms / 1e3) * 1e3) * 1e6)};
    while (nanosleep(&t, &t) != 0) {
    }
}

// Exponential backoff with jitter: attempt a (0-based retry index) waits a
// uniform time in [d/2, d], d = min(max, base * 2^a) (AWS "equal jitter":
// spreads clients apart, never hammers at once). A server hint is the least
// wait, plus up to 10% so clients told the same hint do not return together.
static double backoff_ms(int a, uint32_t hint, int base, int max) {
    double d = base;
    for (int i = 0; i < a && d < max; i++) d *= 2;
    if (d > max) d = max;
    double w = d / 2 + (d / 2) * (randombytes_uniform(1u << 20) / (double)(1u << 20));
    if (hint > 0) {
        double h = hint + hint * 0.1 * (randombytes_uniform(1u << 20) / (double)(1u << 20));
        if (h > w) w = h;
    }
    return w;
}

// Codes worth another attempt (the protocol's "client action" column).
static int retryable(uint16_t code, uint32_t retry_after_ms) {
    switch (code) {
    case HSD_WIRE_E_BUSY:
    case HSD_WIRE_E_RATE_LIMITED:
    case HSD_WIRE_E_SHUTTING_DOWN:
    case HSD_WIRE_E_REPLAYED:  // REQ's own resend of old bytes: re-sign
    case HSD_WIRE_E_BAD_CHECKSUM:  // corrupted in transit
    case HSD_WIRE_E_INTERNAL:  // "resend later"
        return 1;
    default:
        return hsd_wire_error_retryable(code, retry_after_ms);
    }
}

struct attempt {
    const struct hsd_edge_request *r;
    const struct hsd_edge_client_opts *o;
    uint64_t id;
    uint32_t deadline_ms;  // sent in the GENERATE
    int wait_ms;  // for the reply
    double end;  // monotonic ms of the whole deadline; < 0: none
};

enum attempt_result {
    GOT_RESULT,  // *out verified
    RETRY,  // retryable failure; reason set, *hint maybe
    GO_LOCAL,  // EXPIRED
    FAIL,  // non-retryable: status returned
};

// Best effort: tell the service to drop a request we stopped waiting for.
// Sent on a socket of its own (docs/protocol.md §1): the GENERATE's socket
// may still get that request's late RESULT or ERROR. With several endpoints
// the CANCEL may reach another service, which then answers "unknown".
static void cancel(const struct attempt *a, double wait) {
    if (wait <= 0) return;
    struct hsd_wire_msg m = {.type = HSD_WIRE_CANCEL,
                             .flags = a->o->key ? HSD_WIRE_FLAG_AUTH : 0,
                             .request_id = hsd_edge_random_id()};
    m.u.cancel.target = a->id;
    void *buf = NULL;
    size_t len;
    if (hsd_edge_encode(&buf, &len, &m, a->o->key, hsd_auth_now_ms())) return;
    struct hsd_net_opts no = {.send_timeout_ms = (int)wait + 1, .resend_ivl_ms = (int)wait + 60000};
    struct hsd_net_client *c = NULL;
    enum hsd_net_wait what;
    struct hsd_net_msg reply;
    if (hsd_net_client_open(&c, a->o->tp, a->o->endpoints, a->o->n_endpoints, &no) == HSD_OK &&
        hsd_net_client_send(c, buf, len) == HSD_OK &&
        hsd_net_client_recv(c, &reply, (int)wait, &what) == HSD_OK && what == HSD_NET_GOT) {
        HSD_INFO("edge: CANCEL of request %016llx answered", (unsigned long long)a->id);
        hsd_net_msg_release(&reply);
    }
    hsd_net_client_close(c);
    free(buf);
}

static enum attempt_result attempt(struct hsd_edge_handover *out, const struct attempt *a,
                                   const struct hsd_edge_expect *e, char *reason, size_t cap,
                                   uint32_t *hint, enum hsd_status *st) {
    const struct hsd_edge_client_opts *o = a->o;
    *hint = 0;
    struct hsd_wire_msg m;
    hsd_edge_build_generate(&m, a->r, a->id, a->deadline_ms, o->key != NULL);
    // What the edge U-Net takes: the service refuses a model that does not
    // fit it before any compute (docs/protocol.md §5.1).
    m.u.generate.edge_ctx_c = (uint16_t)e->emb_c;
    m.u.generate.edge_pooled_c = (uint16_t)e->pooled_c;
    void *buf = NULL;
    size_t len;
    if ((*st = hsd_edge_encode(&buf, &len, &m, o->key, hsd_auth_now_ms()))) return FAIL;
    struct hsd_net_opts no = {
        .send_timeout_ms = a->wait_ms < 5000 ? (a->wait_ms > 0 ? a->wait_ms : 1) : 5000,
        // Past this attempt's wait: REQ must not resend these bytes itself.
        .resend_ivl_ms = a->wait_ms + 60000,
    };
    struct hsd_net_client *c = NULL;
    if ((*st = hsd_net_client_open(&c, o->tp, o->endpoints, o->n_endpoints, &no))) {
        free(buf);
        return FAIL;  // a malformed endpoint: retrying cannot help
    }
    enum attempt_result res = RETRY;
    struct hsd_net_msg reply = {0};
    enum hsd_net_wait what = HSD_NET_TIMEOUT;
    if (hsd_net_client_send(c, buf, len)) {
        snprintf(reason, cap, "send failed: %s", hsd_last_error());
        goto done;
    }
    if (hsd_net_client_recv(c, &reply, a->wait_ms, &what)) {
        snprintf(reason, cap, "receive failed: %s", hsd_last_error());
        goto done;
    }
    if (what != HSD_NET_GOT) {
        snprintf(reason, cap, "no reply within %d ms", a->wait_ms);
        // Never past the deadline: the service stops at it anyway.
        double w = CANCEL_WAIT_MS;
        if (a->end >= 0 && a->end - mono_ms() < w) w = a->end - mono_ms();
        cancel(a, w);
        goto done;
    }
    struct hsd_wire_msg rm;
    enum hsd_wire_error code;
    if (hsd_wire_decode(&rm, &code, reply.data, reply.len)) {
        // Corrupt or foreign bytes (the checksum failed, or not our
        // protocol): another attempt may reach a healthy service.
        snprintf(reason, cap, "undecodable reply: %s", hsd_last_error());
        goto done;
    }
    if (rm.type == HSD_WIRE_ERROR) {
        const struct hsd_wire_error_msg *em = &rm.u.error;
        snprintf(reason, cap, "%s (%u)%s%.*s", hsd_wire_error_name(em->code), em->code,
                 em->text.n ? ": " : "", (int)em->text.n, em->text.p);
        if (em->code == HSD_WIRE_E_EXPIRED) {
            res = GO_LOCAL;
        } else if (retryable(em->code, em->retry_after_ms)) {
            *hint = em->retry_after_ms;
        } else {
            *st = hsd_fail(HSD_ERR_INVALID_ARG, "the cloud refused the request: %s", reason);
            res = FAIL;
        }
        goto done;
    }
    if ((*st = hsd_edge_verify_result(out, &rm, a->id, a->r, e))) {
        res = FAIL;
        goto done;
    }
    res = GOT_RESULT;
done:
    hsd_net_msg_release(&reply);
    hsd_net_client_close(c);
    free(buf);
    return res;
}

enum hsd_status hsd_edge_ask_cloud(struct hsd_edge_handover *out, struct hsd_edge_cloud_info *info,
                                   const struct hsd_edge_request *r,
                                   const struct hsd_edge_client_opts *o,
                                   const struct hsd_edge_expect *e) {
    memset(out, 0, sizeof *out);
    memset(info, 0, sizeof *info);
    info->outcome = HSD_EDGE_LOCAL;
    if (o->n_endpoints < 1 || o->n_endpoints > HSD_EDGE_MAX_ENDPOINTS)
        return hsd_fail(HSD_ERR_INVALID_ARG, "edge: 1..%d cloud endpoints, got %d",
                        HSD_EDGE_MAX_ENDPOINTS, o->n_endpoints);
    if (sodium_init() < 0) return hsd_fail(HSD_ERR_INTERNAL, "libsodium failed to initialise");
    enum hsd_status st = hsd_edge_request_validate(r, NULL);
    if (st) return st;
    int timeout = o->timeout_ms > 0 ? o->timeout_ms : 60000;
    int retries = o->retries >= 0 ? o->retries : 4;
    int base = o->backoff_ms > 0 ? o->backoff_ms : 200;
    int bmax = o->backoff_max_ms > 0 ? o->backoff_max_ms : 10000;
    double t0 = mono_ms();
    double end = r->deadline_ms ? t0 + r->deadline_ms : -1;
    char reason[sizeof info->reason - 64] = "";
    uint32_t hint = 0;
    for (int i = 0; i <= retries; i++) {
        if (i > 0) {
            double w = backoff_ms(i - 1, hint, base, bmax);
            if (end >= 0 && mono_ms() + w >= end) {
                snprintf(info->reason, sizeof info->reason,
                         "deadline of %u ms would pass before the next attempt (last: %s)",
                         r->deadline_ms, reason);
                goto local;
            }
            HSD_INFO("edge: attempt %d failed (%s); retrying in %.0f ms", i, reason, w);
            sleep_ms(w);
        }
        double now = mono_ms(), left = end >= 0 ? end - now : -1;
        if (end >= 0 && left < 1) {
            snprintf(info->reason, sizeof info->reason, "deadline of %u ms passed (last: %s)",
                     r->deadline_ms, reason[0] ? reason : "none");
            goto local;
        }
        struct attempt a = {.r = r, .o = o, .id = hsd_edge_random_id(),
                            .deadline_ms = end >= 0 ? (uint32_t)left : 0,
                            .wait_ms = end >= 0 && left < timeout ? (int)left : timeout,
                            .end = end};
        if (end >= 0 && a.deadline_ms == 0) a.deadline_ms = 1;
        info->attempts++;
        enum attempt_result ar = attempt(out, &a, e, reason, sizeof reason, &hint, &st);
        switch (ar) {
        case GOT_RESULT:
            info->outcome = HSD_EDGE_CLOUD;
            info->request_id = a.id;
            info->wait_ms = mono_ms() - t0;
            return HSD_OK;
        case FAIL:
            info->wait_ms = mono_ms() - t0;
            return st;
        case GO_LOCAL:
            snprintf(info->reason, sizeof info->reason, "the cloud gave up: %s", reason);
            goto local;
        case RETRY:
            break;
        }
    }
    snprintf(info->reason, sizeof info->reason, "%d attempt(s) failed, last: %s", info->attempts,
             reason);
local:
    info->outcome = HSD_EDGE_LOCAL;
    info->wait_ms = mono_ms() - t0;
    return HSD_OK;
}
