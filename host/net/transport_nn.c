// The nanomsg transport (nanomsg 1.1.5, Debian libnanomsg-dev).
//
// Server: a raw REP socket, nn_socket(AF_SP_RAW, NN_REP). A full REP socket
// serves one request at a time (it must reply before the next recv); the raw
// one hands every request up at once with its SP backtrace, and a reply goes
// back to whoever sent the request if it carries that backtrace again. How
// nanomsg exposes it (src/nn.c nn_recvmsg/nn_sendmsg, nn_cmsg(3)):
//   - nn_recvmsg() with msg_control set returns one control message
//     {cmsg_level PROTO_SP, cmsg_type SP_HDR} whose data is a size_t length
//     followed by the header bytes: a 4-byte pipe key chosen by the raw REP
//     socket, then one 4-byte id per device hop, ending with the REQ
//     socket's request id (top bit set).
//   - nn_sendmsg() with the same SP_HDR control message routes the reply:
//     xrep strips the pipe key, finds the pipe, sends the rest as the SP
//     header. Unknown pipe (client gone) or a pipe whose outbound queue is
//     busy: the reply is dropped silently and nn_sendmsg still succeeds
//     (src/protocols/reqrep/xrep.c nn_xrep_send).
//   - If the control buffer is too small for the header, nanomsg returns no
//     control data at all; we pass a buffer with room for HSD_NET_MAX_ROUTE
//     and drop requests whose header is longer (more hops than NN_MAXTTL's
//     default of 8 allows anyway).
// Client: a REQ socket. It stamps a request id, resends after
// NN_REQ_RESEND_IVL or at once when the connection it used drops
// (src/protocols/reqrep/req.c, NN_REQ_ACTION_PIPE_RM), and discards replies
// whose id is not the current request's.
//
// NN_RCVMAXSIZE is set on every socket: its default is 1 MiB and a larger
// message makes nanomsg close the connection without telling anyone.
//
// Waking blocked receivers: every wait is an nn_poll() with a bounded
// timeout (transport.c slices long waits and checks a stop flag). nn_term()
// would also work (blocked calls return EBADF/ETERM, mapped to
// HSD_NET_STOPPED here) but it is process-wide: it kills every nanomsg
// socket, clients included.
#include <errno.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <nanomsg/tcp.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/log.h"
#include "net/transport.h"
#include "net/wire.h"

struct nn_end {
    int sock;
};

// Room for the SP_HDR control message with the longest route we accept:
// header + size_t + route, rounded as NN_CMSG_SPACE does, plus slack for
// nanomsg's other properties (msg.hdrs), which it truncates to fit.
#define CTRL_CAP 512
_Static_assert(CTRL_CAP >= 2 * sizeof(struct nn_cmsghdr) + sizeof(size_t) + HSD_NET_MAX_ROUTE + 64,
               "control buffer too small for the longest route");

static enum hsd_status nn_err(const char *what, const char *arg) {
    int e = nn_errno();
    return hsd_fail(HSD_ERR_IO, "nanomsg %s%s%s: %s", what, arg ? " " : "", arg ? arg : "",
                    nn_strerror(e));
}

static enum hsd_status set_int(int sock, int level, int opt, int v, const char *name) {
    if (nn_setsockopt(sock, level, opt, &v, sizeof v) < 0) return nn_err("setsockopt", name);
    return HSD_OK;
}

static void opts_defaults(struct hsd_net_opts *o, const struct hsd_net_opts *in) {
    memset(o, 0, sizeof *o);
    if (in) *o = *in;
    if (o->max_msg <= 0) o->max_msg = (int)HSD_WIRE_MAX_MESSAGE;
    if (o->send_timeout_ms == 0) o->send_timeout_ms = 5000;
    if (o->resend_ivl_ms <= 0) o->resend_ivl_ms = 60000;
    if (o->reconnect_ivl_ms <= 0) o->reconnect_ivl_ms = 100;
    if (o->reconnect_ivl_max_ms <= 0) o->reconnect_ivl_max_ms = 2000;
}

static enum hsd_status common_opts(int sock, const struct hsd_net_opts *o) {
    enum hsd_status s;
    if ((s = set_int(sock, NN_SOL_SOCKET, NN_RCVMAXSIZE, o->max_msg, "NN_RCVMAXSIZE")) != HSD_OK)
        return s;
    if ((s = set_int(sock, NN_SOL_SOCKET, NN_SNDTIMEO,
                     o->send_timeout_ms < 0 ? -1 : o->send_timeout_ms, "NN_SNDTIMEO")) != HSD_OK)
        return s;
    if ((s = set_int(sock, NN_SOL_SOCKET, NN_RECONNECT_IVL, o->reconnect_ivl_ms,
                     "NN_RECONNECT_IVL")) != HSD_OK)
        return s;
    if ((s = set_int(sock, NN_SOL_SOCKET, NN_RECONNECT_IVL_MAX, o->reconnect_ivl_max_ms,
                     "NN_RECONNECT_IVL_MAX")) != HSD_OK)
        return s;
    // Requests and replies are whole messages: Nagle only adds latency.
    return set_int(sock, NN_TCP, NN_TCP_NODELAY, 1, "NN_TCP_NODELAY");
}

static void close_sock(int sock) {
    // EINTR: "the socket is not fully closed yet; call again" (nn_close(3)).
    while (nn_close(sock) < 0 && nn_errno() == EINTR) {
    }
}

// One bounded wait for readability. 1: readable; 0: timeout; -1: stopped
// (nn_term or closed); -2: error (message recorded).
static int wait_in(int sock, int timeout_ms) {
    struct nn_pollfd pfd = {.fd = sock, .events = NN_POLLIN, .revents = 0};
    int rc = nn_poll(&pfd, 1, timeout_ms);
    if (rc < 0) {
        int e = nn_errno();
        if (e == EINTR) return 0;
        if (e == ETERM || e == EBADF) return -1;
        nn_err("poll", NULL);
        return -2;
    }
    return rc > 0 && (pfd.revents & NN_POLLIN) ? 1 : 0;
}

// The start of srv_recv/cli_recv: 1 when a message is waiting; else 0 with
// *what (TIMEOUT or STOPPED) and *st (HSD_OK, or HSD_ERR_IO when the poll
// failed) to return.
static int recv_ready(int sock, int timeout_ms, enum hsd_net_wait *what, enum hsd_status *st) {
    *what = HSD_NET_TIMEOUT;
    *st = HSD_OK;
    int w = wait_in(sock, timeout_ms);
    if (w == -1) *what = HSD_NET_STOPPED;
    if (w == -2) *st = HSD_ERR_IO;
    return w == 1;
}

// The end of srv_open/cli_open: on failure `s` closes the socket; else
// the socket becomes the transport's state.
static enum hsd_status end_open(void **out, int sock, enum hsd_status s) {
    struct nn_end *e = s == HSD_OK ? malloc(sizeof *e) : NULL;
    if (s == HSD_OK && !e) s = hsd_fail(HSD_ERR_NOMEM, "net: out of memory");
    if (s != HSD_OK) {
        close_sock(sock);
        return s;
    }
    e->sock = sock;
    *out = e;
    return HSD_OK;
}

// ---------------------------------------------------------------------------
// Server

static enum hsd_status srv_open(void **out, const char *const *endpoints, int n,
                                const struct hsd_net_opts *in) {
    struct hsd_net_opts o;
    opts_defaults(&o, in);
    int sock = nn_socket(AF_SP_RAW, NN_REP);
    if (sock < 0) return nn_err("socket", "(AF_SP_RAW, NN_REP)");
    enum hsd_status s = common_opts(sock, &o);
    for (int i = 0; i < n && s == HSD_OK; i++)
        if (nn_bind(sock, endpoints[i]) < 0) s = nn_err("bind", endpoints[i]);
    return end_open(out, sock, s);
}

// Pulls the SP_HDR property out of a control buffer nanomsg filled.
static int route_from_ctrl(struct hsd_net_route *r, const void *ctrl) {
    struct nn_cmsghdr ch;
    memcpy(&ch, ctrl, sizeof ch);
    if (ch.cmsg_level != PROTO_SP || ch.cmsg_type != SP_HDR) return 0;
    if (ch.cmsg_len < NN_CMSG_SPACE(0) + sizeof(size_t) || ch.cmsg_len > CTRL_CAP) return 0;
    const unsigned char *data = NN_CMSG_DATA((struct nn_cmsghdr *)ctrl);
    size_t sp;
    memcpy(&sp, data, sizeof sp);
    // Pipe key + request id at least; whole 4-byte ids; fits our route.
    if (sp < 8 || sp % 4 != 0 || sp > HSD_NET_MAX_ROUTE ||
        sp > ch.cmsg_len - NN_CMSG_SPACE(0) - sizeof(size_t))
        return 0;
    r->len = (uint32_t)sp;
    memcpy(r->hdr, data + sizeof(size_t), sp);
    return 1;
}

static enum hsd_status srv_recv(void *impl, struct hsd_net_msg *msg, int timeout_ms,
                                enum hsd_net_wait *what) {
    struct nn_end *e = impl;
    enum hsd_status st;
    if (!recv_ready(e->sock, timeout_ms, what, &st)) return st;

    void *body = NULL;
    // size_t-aligned, zeroed: if nanomsg finds it too small it writes nothing.
    size_t ctrl[CTRL_CAP / sizeof(size_t)] = {0};
    struct nn_iovec iov = {.iov_base = &body, .iov_len = NN_MSG};
    struct nn_msghdr h;
    memset(&h, 0, sizeof h);
    h.msg_iov = &iov;
    h.msg_iovlen = 1;
    h.msg_control = ctrl;
    h.msg_controllen = sizeof ctrl;
    int rc = nn_recvmsg(e->sock, &h, NN_DONTWAIT);
    if (rc < 0) {
        int err = nn_errno();
        // Another receiver took it, or xrep dropped a malformed request.
        if (err == EAGAIN || err == EINTR) return HSD_OK;
        if (err == ETERM || err == EBADF) {
            *what = HSD_NET_STOPPED;
            return HSD_OK;
        }
        return nn_err("recvmsg", NULL);
    }
    if (!route_from_ctrl(&msg->route, ctrl)) {
        // Nothing to reply to: drop it, as nanomsg drops malformed requests.
        HSD_WARN("net: dropped a %d-byte request without a usable SP header", rc);
        nn_freemsg(body);
        return HSD_OK;
    }
    msg->data = body;
    msg->len = (size_t)rc;
    *what = HSD_NET_GOT;
    return HSD_OK;
}

static enum hsd_status srv_reply(void *impl, const struct hsd_net_route *to, const void *buf,
                                 size_t len) {
    struct nn_end *e = impl;
    if (to->len < 8 || to->len > HSD_NET_MAX_ROUTE)
        return hsd_fail(HSD_ERR_INVALID_ARG, "net: reply route of %u bytes is not a received route",
                        to->len);
    size_t ctrl[CTRL_CAP / sizeof(size_t)] = {0};
    size_t clen = NN_CMSG_SPACE(sizeof(size_t) + to->len);
    HSD_ASSERT(clen <= sizeof ctrl);
    struct nn_cmsghdr ch = {.cmsg_len = clen, .cmsg_level = PROTO_SP, .cmsg_type = SP_HDR};
    memcpy(ctrl, &ch, sizeof ch);
    unsigned char *data = NN_CMSG_DATA((struct nn_cmsghdr *)ctrl);
    size_t sp = to->len;
    memcpy(data, &sp, sizeof sp);
    memcpy(data + sizeof sp, to->hdr, to->len);

    struct nn_iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct nn_msghdr h;
    memset(&h, 0, sizeof h);
    h.msg_iov = &iov;
    h.msg_iovlen = 1;
    h.msg_control = ctrl;
    h.msg_controllen = clen;
    for (;;) {
        int rc = nn_sendmsg(e->sock, &h, 0);
        if (rc >= 0) return HSD_OK;
        if (nn_errno() != EINTR) return nn_err("sendmsg", "(reply)");
    }
}

static void srv_close(void *impl) {
    struct nn_end *e = impl;
    close_sock(e->sock);
    free(e);
}

// ---------------------------------------------------------------------------
// Client

static enum hsd_status cli_open(void **out, const char *const *endpoints, int n,
                                const struct hsd_net_opts *in) {
    struct hsd_net_opts o;
    opts_defaults(&o, in);
    int sock = nn_socket(AF_SP, NN_REQ);
    if (sock < 0) return nn_err("socket", "(AF_SP, NN_REQ)");
    enum hsd_status s = common_opts(sock, &o);
    if (s == HSD_OK)
        s = set_int(sock, NN_REQ, NN_REQ_RESEND_IVL, o.resend_ivl_ms, "NN_REQ_RESEND_IVL");
    for (int i = 0; i < n && s == HSD_OK; i++)
        if (nn_connect(sock, endpoints[i]) < 0) s = nn_err("connect", endpoints[i]);
    return end_open(out, sock, s);
}

static enum hsd_status cli_send(void *impl, const void *buf, size_t len) {
    struct nn_end *e = impl;
    for (;;) {
        int rc = nn_send(e->sock, buf, len, 0);
        if (rc >= 0) return HSD_OK;
        int err = nn_errno();
        if (err == EINTR) continue;
        if (err == ETIMEDOUT) return hsd_fail(HSD_ERR_IO, "nanomsg send: timed out (NN_SNDTIMEO)");
        return nn_err("send", NULL);
    }
}

static enum hsd_status cli_recv(void *impl, struct hsd_net_msg *msg, int timeout_ms,
                                enum hsd_net_wait *what) {
    struct nn_end *e = impl;
    enum hsd_status st;
    if (!recv_ready(e->sock, timeout_ms, what, &st)) return st;
    void *body = NULL;
    int rc = nn_recv(e->sock, &body, NN_MSG, NN_DONTWAIT);
    if (rc < 0) {
        int err = nn_errno();
        if (err == EAGAIN || err == EINTR) return HSD_OK;
        if (err == ETERM || err == EBADF) {
            *what = HSD_NET_STOPPED;
            return HSD_OK;
        }
        if (err == EFSM) return hsd_fail(HSD_ERR_INVALID_ARG, "nanomsg recv: no request was sent");
        return nn_err("recv", NULL);
    }
    msg->data = body;
    msg->len = (size_t)rc;
    *what = HSD_NET_GOT;
    return HSD_OK;
}

static void cli_close(void *impl) { srv_close(impl); }

static void msg_release(struct hsd_net_msg *msg) {
    if (msg->data) nn_freemsg(msg->data);
}

static const struct hsd_net_transport k_nanomsg = {
    .name = "nanomsg",
    .server_open = srv_open,
    .server_recv = srv_recv,
    .server_reply = srv_reply,
    .server_close = srv_close,
    .client_open = cli_open,
    .client_send = cli_send,
    .client_recv = cli_recv,
    .client_close = cli_close,
    .msg_release = msg_release,
};

const struct hsd_net_transport *hsd_net_transport_nanomsg(void) { return &k_nanomsg; }
