// Message transport between edge clients and the cloud service: a small
// table of functions (docs/conventions.md: like nanomsg's nn_transport and ggml's
// backend interface) with one implementation today, nanomsg
// (transport_nn.c), and opaque handles on top that add what every transport
// needs the same way (stop flag, timeout slicing).
//
// Shape (docs/architecture.md §5):
// - The server receives requests from many clients and replies LATER, in
//   any order, from any thread: each received message carries a `route`
//   (for nanomsg: the SP backtrace header of a raw REP socket) that the
//   reply must quote. Routes are plain values: copy them into the request
//   record; they stay valid after the message is released.
// - A client has at most ONE request in flight (nanomsg REQ semantics:
//   sending again abandons the previous request). Open one client per
//   concurrent request; a client may connect to several endpoints and the
//   transport load-balances between them. A request is written once a
//   peer is connected and resent after resend_ivl_ms; replies to anything
//   but the current request are dropped (transport_nn.c says why this is
//   not nanomsg's own REQ socket).
// - Every receive takes a timeout; hsd_net_server_stop() makes blocked
//   receivers return HSD_NET_STOPPED within HSD_NET_STOP_LATENCY_MS.
//
// Endpoints: "tcp://host:port" (bind: "tcp://*:port" or an interface
// address), "ipc:///path/to/socket". nanomsg has no TLS: see docs/tls.md.
#ifndef HSD_NET_TRANSPORT_H
#define HSD_NET_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HSD_NET_MAX_ROUTE 128  // bytes of a route (nanomsg: 4 per hop, <= 9 hops by default)
#define HSD_NET_STOP_LATENCY_MS 100  // receivers check the stop flag this often

// Where a reply goes. Opaque bytes; copy freely.
struct hsd_net_route {
    uint32_t len;
    uint8_t hdr[HSD_NET_MAX_ROUTE];
};

struct hsd_net_transport;

// A received message. data/len stay valid until hsd_net_msg_release().
struct hsd_net_msg {
    void *data;
    size_t len;
    struct hsd_net_route route;  // server side only
    const struct hsd_net_transport *tp_;  // private
};

enum hsd_net_wait {
    HSD_NET_GOT,  // a message arrived
    HSD_NET_TIMEOUT,  // timeout_ms passed without one
    HSD_NET_STOPPED,  // hsd_net_server_stop() (or nn_term()) was called
};

struct hsd_net_opts {
    int max_msg;  // largest message accepted (NN_RCVMAXSIZE); 0: HSD_WIRE_MAX_MESSAGE.
        // A larger one makes nanomsg drop that connection (the peer
        // reconnects); it never reaches the application.
    int send_timeout_ms;  // NN_SNDTIMEO; 0: 5000; < 0: block forever
    int resend_ivl_ms;  // client: resend an unanswered request after this; 0: 60000.
        // For a server that lost the request (its connection dropped, it
        // restarted). Set it above the longest expected service time, or
        // the server computes duplicates.
    int reconnect_ivl_ms;  // NN_RECONNECT_IVL; 0: 100
    int reconnect_ivl_max_ms;  // NN_RECONNECT_IVL_MAX (exponential backoff cap); 0: 2000
};

// The transport table. Implementations fill every slot; `srv`/`cli` are
// their private state. recv waits at most timeout_ms (>= 0) once; the
// opaque layer below loops and checks the stop flag.
struct hsd_net_transport {
    const char *name;
    enum hsd_status (*server_open)(void **srv, const char *const *endpoints, int n,
                                   const struct hsd_net_opts *o);
    enum hsd_status (*server_recv)(void *srv, struct hsd_net_msg *msg, int timeout_ms,
                                   enum hsd_net_wait *what);
    enum hsd_status (*server_reply)(void *srv, const struct hsd_net_route *to, const void *buf,
                                    size_t len);
    void (*server_close)(void *srv);
    enum hsd_status (*client_open)(void **cli, const char *const *endpoints, int n,
                                   const struct hsd_net_opts *o);
    enum hsd_status (*client_send)(void *cli, const void *buf, size_t len);
    enum hsd_status (*client_recv)(void *cli, struct hsd_net_msg *msg, int timeout_ms,
                                   enum hsd_net_wait *what);
    void (*client_close)(void *cli);
    void (*msg_release)(struct hsd_net_msg *msg);
};

// nanomsg 1.x: raw REP server (AF_SP_RAW, NN_REP), raw REQ clients (AF_SP_RAW, NN_REQ).
const struct hsd_net_transport *hsd_net_transport_nanomsg(void);

// ---- server ----
struct hsd_net_server;

// Binds every endpoint (tp NULL: nanomsg). Fails, naming the endpoint and
// the transport's error, if any bind fails (e.g. address in use).
enum hsd_status hsd_net_server_open(struct hsd_net_server **out, const struct hsd_net_transport *tp,
                                    const char *const *endpoints, int n,
                                    const struct hsd_net_opts *opts);
// Waits up to timeout_ms (< 0: until stopped) for a request. Several threads
// may receive at once. On HSD_NET_GOT release the message when done with its
// bytes; reply to msg->route whenever the answer is ready.
enum hsd_status hsd_net_server_recv(struct hsd_net_server *s, struct hsd_net_msg *msg,
                                    int timeout_ms, enum hsd_net_wait *what);
// Sends one reply to a route, from any thread. Succeeds even when the client
// has gone (the reply is then dropped by the transport: nanomsg gives no
// disconnect notice). Reply exactly once per request.
enum hsd_status hsd_net_server_reply(struct hsd_net_server *s, const struct hsd_net_route *to,
                                     const void *buf, size_t len);
// Makes current and future receives return HSD_NET_STOPPED; replies still go
// out until close. Async-signal-safe (an atomic store).
void hsd_net_server_stop(struct hsd_net_server *s);
// Closes the sockets. No thread may be inside recv/reply. Replies not yet
// written to the network may be lost (nanomsg does not implement NN_LINGER):
// wait briefly after the last reply before closing.
void hsd_net_server_close(struct hsd_net_server *s);

// ---- client ----
struct hsd_net_client;

// Connects to every endpoint (tp NULL: nanomsg). Connections are made in the
// background and retried; an absent server is not an error here.
enum hsd_status hsd_net_client_open(struct hsd_net_client **out, const struct hsd_net_transport *tp,
                                    const char *const *endpoints, int n,
                                    const struct hsd_net_opts *opts);
// Sends a request (abandoning any earlier one still unanswered).
enum hsd_status hsd_net_client_send(struct hsd_net_client *c, const void *buf, size_t len);
// Waits up to timeout_ms (< 0: forever) for the reply to the last request.
enum hsd_status hsd_net_client_recv(struct hsd_net_client *c, struct hsd_net_msg *reply,
                                    int timeout_ms, enum hsd_net_wait *what);
void hsd_net_client_close(struct hsd_net_client *c);

// Frees a received message's bytes (no-op on an empty message).
void hsd_net_msg_release(struct hsd_net_msg *msg);

#ifdef __cplusplus
}
#endif

#endif
