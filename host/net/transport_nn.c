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
// Client: a raw REQ socket, nn_socket(AF_SP_RAW, NN_REQ), that does what a
// REQ socket does itself: it stamps each request with a 4-byte request id
// (top bit set, sent as the SP_HDR control message), keeps the request until
// it is written (send waits briefly for a connected peer, then recv writes
// it once one appears), resends it after NN_REQ_RESEND_IVL (resend_ivl_ms), and drops
// every reply whose id is not the current request's.
//
// Why not a cooked NN_REQ socket: in nanomsg 1.1.5 (unchanged through
// 1.2.1) a REQ socket that receives a reply with a stale request id frees
// the message but keeps a reference to its chunk; the next nn_recv then
// fails `nn_getl(...) == NN_CHUNK_TAG` (chunk.c:231) and aborts the
// process, or nn_close frees the chunk a second time. A stale reply is
// ordinary here: an edge that gave up on a GENERATE used to send its CANCEL
// on the same socket, and the GENERATE's late RESULT/ERROR then arrived
// there (issue 15, finding 1; tests/cli/serve_kill_loop.sh aborted before
// this change). The raw socket's receive path (xreq.c) only splits the
// header off; the id check is ours and never touches nanomsg's chunks.
// What the raw client does not copy: REQ's immediate resend when the
// connection a request went out on drops (raw sockets do not say which
// pipe dropped). A request lost with its connection is retried after
// resend_ivl_ms or by the caller's own retry (hsd edge: a new attempt).
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
#include <sodium.h>
#include <string.h>
#include <time.h>

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

// One bounded wait for `events` (NN_POLLIN, NN_POLLOUT). 1: one is ready
// (*revents says which); 0: timeout; -1: stopped (nn_term or closed); -2:
// error (message recorded).
static int wait_ev(int sock, short events, int timeout_ms, short *revents) {
    struct nn_pollfd pfd = {.fd = sock, .events = events, .revents = 0};
    int rc = nn_poll(&pfd, 1, timeout_ms);
    *revents = 0;
    if (rc < 0) {
        int e = nn_errno();
        if (e == EINTR) return 0;
        if (e == ETERM || e == EBADF) return -1;
        nn_err("poll", NULL);
        return -2;
    }
    *revents = pfd.revents;
    return rc > 0 && (pfd.revents & events) ? 1 : 0;
}

static int wait_in(int sock, int timeout_ms) {
    short rev;
    return wait_ev(sock, NN_POLLIN, timeout_ms, &rev);
}

// One iovec and a control buffer of clen bytes, the message header shape
// every raw-socket send and receive here uses.
static void msghdr_init(struct nn_msghdr *h, struct nn_iovec *iov, void *ctrl, size_t clen) {
    memset(h, 0, sizeof *h);
    h->msg_iov = iov;
    h->msg_iovlen = 1;
    h->msg_control = ctrl;
    h->msg_controllen = clen;
}

// Takes one waiting message and its SP header without blocking: its length
// (>= 0), or -1 when there is none to return (*what, *st say what to
// return: TIMEOUT when another receiver took it or nanomsg dropped it,
// STOPPED, or an error). ctrl: CTRL_CAP bytes, size_t-aligned.
static int recv_with_hdr(int sock, void **body, size_t *ctrl, enum hsd_net_wait *what,
                         enum hsd_status *st) {
    *body = NULL;
    *st = HSD_OK;
    // Zeroed: if nanomsg finds the buffer too small it writes nothing.
    memset(ctrl, 0, CTRL_CAP);
    struct nn_iovec iov = {.iov_base = body, .iov_len = NN_MSG};
    struct nn_msghdr h;
    msghdr_init(&h, &iov, ctrl, CTRL_CAP);
    int rc = nn_recvmsg(sock, &h, NN_DONTWAIT);
    if (rc >= 0) return rc;
    int err = nn_errno();
    // Another receiver took it, or the raw socket dropped a malformed message.
    if (err == EAGAIN || err == EINTR) return -1;
    if (err == ETERM || err == EBADF) *what = HSD_NET_STOPPED;
    else *st = nn_err("recvmsg", NULL);
    return -1;
}

// Sends buf with an SP header (the SP_HDR control message) on a raw socket.
static int send_with_hdr(int sock, const uint8_t *hdr, size_t hlen, const void *buf, size_t len,
                         int flags) {
    size_t ctrl[CTRL_CAP / sizeof(size_t)] = {0};
    size_t clen = NN_CMSG_SPACE(sizeof(size_t) + hlen);
    HSD_ASSERT(clen <= sizeof ctrl);
    struct nn_cmsghdr ch = {.cmsg_len = clen, .cmsg_level = PROTO_SP, .cmsg_type = SP_HDR};
    memcpy(ctrl, &ch, sizeof ch);
    unsigned char *data = NN_CMSG_DATA((struct nn_cmsghdr *)ctrl);
    memcpy(data, &hlen, sizeof hlen);
    memcpy(data + sizeof hlen, hdr, hlen);
    struct nn_iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct nn_msghdr h;
    msghdr_init(&h, &iov, ctrl, clen);
    return nn_sendmsg(sock, &h, flags);
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

    void *body;
    size_t ctrl[CTRL_CAP / sizeof(size_t)];
    int rc = recv_with_hdr(e->sock, &body, ctrl, what, &st);
    if (rc < 0) return st;
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
    for (;;) {
        int rc = send_with_hdr(e->sock, to->hdr, to->len, buf, len, 0);
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

#define SEND_CONNECT_WAIT_MS 100  // send's wait for a connection; recv waits for the rest

// A client's state: the socket and the one request in flight.
struct nn_cli {
    int sock;
    uint32_t next_id;  // low 31 bits of the next request id
    uint32_t id;  // current request's id (top bit set); 0: none in flight
    void *req;  // its bytes (malloc'd), kept for the first write and resends
    size_t len;
    int written;  // 1 once nanomsg took the current bytes
    int64_t written_ms;  // when
    int resend_ivl_ms;
};

static int64_t cli_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum hsd_status cli_open(void **out, const char *const *endpoints, int n,
                                const struct hsd_net_opts *in) {
    struct hsd_net_opts o;
    opts_defaults(&o, in);
    int sock = nn_socket(AF_SP_RAW, NN_REQ);
    if (sock < 0) return nn_err("socket", "(AF_SP_RAW, NN_REQ)");
    enum hsd_status s = common_opts(sock, &o);
    for (int i = 0; i < n && s == HSD_OK; i++)
        if (nn_connect(sock, endpoints[i]) < 0) s = nn_err("connect", endpoints[i]);
    struct nn_cli *c = s == HSD_OK ? calloc(1, sizeof *c) : NULL;
    if (s == HSD_OK && !c) s = hsd_fail(HSD_ERR_NOMEM, "net: out of memory");
    if (s != HSD_OK) {
        close_sock(sock);
        return s;
    }
    c->sock = sock;
    // Ids only need to differ from the socket's earlier ones (the service
    // keys requests by the wire's 64-bit id, not this one); a random start
    // keeps two sockets' ids apart in logs.
    c->next_id = randombytes_random();
    c->resend_ivl_ms = o.resend_ivl_ms;
    *out = c;
    return HSD_OK;
}

// Writes the current request with its SP header (flags: 0 or NN_DONTWAIT).
// 1: written; 0: no peer took it (EAGAIN, ETIMEDOUT); -1: error recorded.
static int cli_write(struct nn_cli *c, int flags) {
    // The SP request id is big-endian on the wire (nanomsg nn_putl).
    uint8_t hdr[4];
    for (int i = 0; i < 4; i++) hdr[i] = (uint8_t)(c->id >> (24 - 8 * i));
    for (;;) {
        if (send_with_hdr(c->sock, hdr, sizeof hdr, c->req, c->len, flags) >= 0) {
            c->written = 1;
            c->written_ms = cli_now_ms();
            return 1;
        }
        int err = nn_errno();
        if (err == EINTR) continue;
        if (err == EAGAIN || err == ETIMEDOUT) return 0;
        nn_err("send", NULL);
        return -1;
    }
}

static enum hsd_status cli_send(void *impl, const void *buf, size_t len) {
    struct nn_cli *c = impl;
    void *copy = malloc(len ? len : 1);
    if (!copy) return hsd_fail(HSD_ERR_NOMEM, "net: out of memory");
    memcpy(copy, buf, len);
    free(c->req);  // abandons the previous request: its reply will not match
    c->req = copy;
    c->len = len;
    c->id = 0x80000000u | (c->next_id++ & 0x7fffffffu);
    c->written = 0;
    // A fresh socket connects in the background: give it a moment, so the
    // request is usually out before send returns. If no peer is there yet,
    // the request stays here and recv writes it once one is (as a REQ
    // socket holds it), so waiting never costs more than recv's timeout.
    short rev;
    (void)wait_ev(c->sock, NN_POLLOUT, SEND_CONNECT_WAIT_MS, &rev);
    return cli_write(c, NN_DONTWAIT) < 0 ? HSD_ERR_IO : HSD_OK;
}

// The request id of a received reply (its SP_HDR), 0 when it has none.
static uint32_t reply_id(const void *ctrl) {
    struct nn_cmsghdr ch;
    memcpy(&ch, ctrl, sizeof ch);
    if (ch.cmsg_level != PROTO_SP || ch.cmsg_type != SP_HDR ||
        ch.cmsg_len < NN_CMSG_SPACE(0) + sizeof(size_t) + 4 || ch.cmsg_len > CTRL_CAP)
        return 0;
    const unsigned char *data = NN_CMSG_DATA((struct nn_cmsghdr *)ctrl);
    size_t sp;
    memcpy(&sp, data, sizeof sp);
    if (sp != 4) return 0;
    data += sizeof sp;
    return (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 | data[3];
}

// One bounded wait: writes the request when a peer appears, resends it when
// resend_ivl_ms passed, takes replies and keeps the one that matches.
static enum hsd_status cli_recv(void *impl, struct hsd_net_msg *msg, int timeout_ms,
                                enum hsd_net_wait *what) {
    struct nn_cli *c = impl;
    *what = HSD_NET_TIMEOUT;
    if (!c->id) return hsd_fail(HSD_ERR_INVALID_ARG, "nanomsg recv: no request was sent");
    if (c->written && cli_now_ms() - c->written_ms >= c->resend_ivl_ms) c->written = 0;
    if (!c->written && cli_write(c, NN_DONTWAIT) < 0) return HSD_ERR_IO;
    int wait = timeout_ms;
    if (c->written) {
        int64_t to_resend = c->written_ms + c->resend_ivl_ms - cli_now_ms();
        if (wait < 0 || to_resend < wait) wait = to_resend < 0 ? 0 : (int)to_resend;
    }
    short rev;
    int w = wait_ev(c->sock, (short)(NN_POLLIN | (c->written ? 0 : NN_POLLOUT)), wait, &rev);
    if (w == -1) *what = HSD_NET_STOPPED;
    if (w == -2) return HSD_ERR_IO;
    if (w != 1 || !(rev & NN_POLLIN)) return HSD_OK;  // the caller's loop writes/waits again
    void *body;
    size_t ctrl[CTRL_CAP / sizeof(size_t)];
    enum hsd_status st;
    int n = recv_with_hdr(c->sock, &body, ctrl, what, &st);
    if (n < 0) return st;
    if (reply_id(ctrl) != c->id) {
        // A reply to an abandoned request (or a duplicate of one already
        // taken): what REQ drops too, here without its chunk bug.
        nn_freemsg(body);
        return HSD_OK;
    }
    c->id = 0;  // exactly one reply per request, as REQ
    free(c->req);
    c->req = NULL;
    msg->data = body;
    msg->len = (size_t)n;
    *what = HSD_NET_GOT;
    return HSD_OK;
}

static void cli_close(void *impl) {
    struct nn_cli *c = impl;
    close_sock(c->sock);
    free(c->req);
    free(c);
}

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
