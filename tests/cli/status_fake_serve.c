// A stand-in for `hsd serve` that answers STATUS_REQUESTs with a chosen
// health, for tests/cli/status_probe.sh: the real service cannot be made
// degraded or draining on demand from the command line.
//
//   status_fake_serve ENDPOINT KEYS_FILE MODE
//
// Every request is authenticated with hsd_auth_check against KEYS_FILE (as
// docs/protocol.md §5.4 says a service with a keys file must), so a wrongly
// signed request gets ERROR UNAUTHENTICATED. MODE shapes the STATUS:
//   ok        health ok, two healthy CUDA devices
//   degraded  health degraded, cuda:1 unhealthy
//   alldown   health degraded, both devices unhealthy
//   draining  health draining
//   nodevice  health ok, no devices
//   wrongid   a healthy STATUS whose request id is not the request's
//   busy      ERROR BUSY with a retry hint
// Prints "ready" on stderr once bound; runs until SIGTERM/SIGINT.
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "net/auth.h"
#include "net/transport.h"
#include "net/wire.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void reply_error(struct hsd_net_server *srv, const struct hsd_net_route *to, uint64_t id,
                        enum hsd_wire_error code, uint32_t retry, const char *text) {
    char buf[HSD_WIRE_ERROR_MAX_SIZE];
    size_t len;
    if (!hsd_wire_encode_error(buf, sizeof buf, &len, id, code, retry, "%s", text))
        hsd_net_server_reply(srv, to, buf, len);
}

static void reply_status(struct hsd_net_server *srv, const struct hsd_net_route *to, uint64_t id,
                         const char *mode) {
    struct hsd_wire_msg a = {.type = HSD_WIRE_STATUS, .request_id = id};
    struct hsd_wire_status *w = &a.u.status;
    static const char *const names[2] = {"cuda:0 H100", "cuda:1 H100"};
    w->health = HSD_WIRE_HEALTH_OK;
    w->queue_depth = 3;
    w->queue_limit = 64;
    w->active = 5;
    w->max_batch = 16;
    w->steps_per_s = 12.5f;
    w->uptime_ms = 42000;
    w->requests_done = 7;
    w->requests_failed = 1;
    w->max_message = HSD_WIRE_MAX_MESSAGE;
    w->server = (struct hsd_wire_str){"hsd-fake 0", 10};
    w->n_devices = 2;
    for (int i = 0; i < 2; i++) {
        w->devices[i].kind = HSD_WIRE_DEVICE_CUDA;
        w->devices[i].healthy = 1;
        w->devices[i].batch = (uint16_t)(4 + i);
        w->devices[i].mem_total_mib = 81559;
        w->devices[i].mem_used_mib = 20000;
        w->devices[i].name = (struct hsd_wire_str){names[i], strlen(names[i])};
    }
    if (!strcmp(mode, "degraded")) {
        w->health = HSD_WIRE_HEALTH_DEGRADED;
        w->devices[1].healthy = 0;
    } else if (!strcmp(mode, "alldown")) {
        w->health = HSD_WIRE_HEALTH_DEGRADED;
        w->devices[0].healthy = w->devices[1].healthy = 0;
    } else if (!strcmp(mode, "draining")) {
        w->health = HSD_WIRE_HEALTH_DRAINING;
    } else if (!strcmp(mode, "nodevice")) {
        w->n_devices = 0;
    } else if (!strcmp(mode, "wrongid")) {
        a.request_id = id ^ 0x5a5a5a5a5a5a5a5aull;
    }
    char buf[4096];
    size_t len;
    if (hsd_wire_encode(buf, sizeof buf, &len, &a)) {
        fprintf(stderr, "status_fake_serve: encode: %s\n", hsd_last_error());
        return;
    }
    hsd_net_server_reply(srv, to, buf, len);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: status_fake_serve ENDPOINT KEYS_FILE MODE\n");
        return 2;
    }
    const char *ep = argv[1], *mode = argv[3];
    struct hsd_auth *auth = NULL;
    struct hsd_net_server *srv = NULL;
    if (hsd_auth_load(&auth, argv[2], NULL) ||
        hsd_net_server_open(&srv, NULL, &ep, 1, NULL)) {
        fprintf(stderr, "status_fake_serve: %s\n", hsd_last_error());
        hsd_auth_free(auth);
        return 1;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    fprintf(stderr, "status_fake_serve: ready on %s (%s)\n", ep, mode);
    while (!g_stop) {
        struct hsd_net_msg msg;
        enum hsd_net_wait what;
        if (hsd_net_server_recv(srv, &msg, 100, &what) || what == HSD_NET_STOPPED) break;
        if (what != HSD_NET_GOT) continue;
        struct hsd_wire_msg m;
        enum hsd_wire_error code;
        const struct hsd_auth_key *key;
        uint32_t retry = 0;
        if (hsd_wire_decode(&m, &code, msg.data, msg.len)) {
            reply_error(srv, &msg.route, m.request_id, code, 0, hsd_last_error());
        } else if (hsd_auth_check(auth, msg.data, msg.len, hsd_auth_now_ms(), &key, &code,
                                  &retry)) {
            reply_error(srv, &msg.route, m.request_id, code, retry, hsd_last_error());
        } else if (m.type != HSD_WIRE_STATUS_REQUEST) {
            reply_error(srv, &msg.route, m.request_id, HSD_WIRE_E_BAD_MESSAGE, 0,
                        "this fake answers STATUS_REQUEST only");
        } else if (!strcmp(mode, "busy")) {
            reply_error(srv, &msg.route, m.request_id, HSD_WIRE_E_BUSY, 250, "queue full");
        } else {
            reply_status(srv, &msg.route, m.request_id, mode);
        }
        hsd_net_msg_release(&msg);
    }
    struct timespec ts = {0, 100 * 1000000L};  // let the last reply leave (no linger)
    nanosleep(&ts, NULL);
    hsd_net_server_close(srv);
    hsd_auth_free(auth);
    return 0;
}
