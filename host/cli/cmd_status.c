// hsd status: ask one or more `hsd serve` nodes for their STATUS
// (docs/protocol.md §5.4, §5.5) and turn the answer into an exit status a
// Kubernetes exec probe or a script can act on.
//
// Each --endpoint gets its own REQ socket and its own signed
// STATUS_REQUEST (built and signed with the edge's library functions, the
// same HMAC as GENERATE), all sent at once and awaited against one shared
// deadline, so the whole run takes at most --timeout-ms whatever the number
// of endpoints. One socket per endpoint, not one socket connected to all of
// them as `hsd edge` does: nanomsg would then hand the request to just one
// of the nodes, and the answer could not say which node it describes.
//
// Verdict per endpoint, worst one wins for the exit status:
//   HEALTHY    health ok, every device healthy                      exit 0
//   DEGRADED   some device unhealthy, at least one healthy          exit 3
//   UNHEALTHY  draining, no device or no healthy device, an ERROR
//              reply, no reply in time, a reply that does not match  exit 1
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "edge/edge.h"
#include "net/auth.h"
#include "net/transport.h"
#include "net/wire.h"

#define STATUS_MAX_ENDPOINTS HSD_EDGE_MAX_ENDPOINTS
#define STATUS_DEFAULT_TIMEOUT_MS 3000

// Exit statuses (also the verdicts' order: a larger "badness" wins).
enum verdict { V_HEALTHY = 0, V_DEGRADED = 3, V_UNHEALTHY = 1 };

static int badness(enum verdict v) { return v == V_HEALTHY ? 0 : v == V_DEGRADED ? 1 : 2; }

static const char *verdict_name(enum verdict v) {
    return v == V_HEALTHY ? "healthy" : v == V_DEGRADED ? "degraded" : "unhealthy";
}

static const char *health_name(uint8_t h) {
    switch (h) {
    case HSD_WIRE_HEALTH_OK: return "ok";
    case HSD_WIRE_HEALTH_DEGRADED: return "degraded";
    case HSD_WIRE_HEALTH_DRAINING: return "draining";
    default: return "unknown";
    }
}

static const char *kind_name(uint8_t k) {
    return k == HSD_WIRE_DEVICE_CPU ? "cpu" : k == HSD_WIRE_DEVICE_CUDA ? "cuda" : "unknown";
}

// One endpoint's conversation.
struct probe {
    const char *endpoint;
    struct hsd_net_client *cli;
    uint64_t request_id;
    double sent_ms;  // monotonic
    double rtt_ms;  // send to reply; < 0 without a reply
    enum verdict verdict;
    int answered;  // some reply came back (maybe undecodable or an ERROR)
    int have_status;  // m holds a decoded STATUS
    struct hsd_net_msg reply;  // m's views point into reply.data
    struct hsd_wire_msg m;
    const char *error_code;  // wire error name of an ERROR reply, else NULL
    char error[640];  // why it is not healthy ("" when healthy)
};

static void usage(FILE *f) {
    fprintf(f,
            "usage: hsd status --endpoint ENDPOINT [--endpoint ENDPOINT ...]\n"
            "                  --key-file FILE --key-id ID [--timeout-ms T] [--json]\n\n"
            "Asks each `hsd serve` for its STATUS (a request signed with HMAC-SHA256, as\n"
            "`hsd edge` signs GENERATE) and prints its health, queue and active request\n"
            "counts and one line per device (name, kind, healthy). Made to be run by a\n"
            "Kubernetes readiness probe (exec) or a monitoring script.\n\n"
            "  --endpoint ENDPOINT  tcp://HOST:PORT or ipc:///PATH of an `hsd serve`; repeat to\n"
            "                       ask several nodes (each is asked on its own, at once, at\n"
            "                       most %d)\n"
            "  --key-file FILE      keys file (host/net/auth.h format: `key_id hex_secret ...`)\n"
            "  --key-id ID          which key (line) of the keys file to sign with\n"
            "  --timeout-ms T       wait at most T ms for all replies, 1..3600000 (default %d)\n"
            "  --json               print one JSON object instead of text\n"
            "  -h, --help           this text\n\n"
            "Exit status (with several endpoints, the worst of them):\n"
            "  0  HEALTHY: the service answered, health ok, every device healthy\n"
            "  3  DEGRADED: it answered, some device is unhealthy but at least one serves\n"
            "  1  UNHEALTHY or unreachable: no reply within the timeout, an ERROR reply\n"
            "     (e.g. UNAUTHENTICATED), draining (shutting down), no healthy device, a\n"
            "     reply that does not match the request; or the keys file or key is bad\n"
            "  2  usage error (bad or missing flags)\n"
            "A readiness probe that should keep a degraded node in rotation accepts 0 and 3.\n",
            STATUS_MAX_ENDPOINTS, STATUS_DEFAULT_TIMEOUT_MS);
}

static double mono_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

// tcp://HOST:PORT (HOST not empty nor "*", PORT 1..65535) or ipc://PATH.
// Says what is wrong in why[cap].
static int endpoint_ok(const char *e, char *why, size_t cap) {
    if (!strncmp(e, "ipc://", 6)) {
        if (e[6]) return 1;
        snprintf(why, cap, "ipc:// needs a socket path (ipc:///run/hsd.ipc)");
        return 0;
    }
    if (strncmp(e, "tcp://", 6)) {
        snprintf(why, cap, "expects tcp://HOST:PORT or ipc:///PATH");
        return 0;
    }
    const char *host = e + 6, *colon = strrchr(host, ':');
    if (!colon || colon == host) {
        snprintf(why, cap, "expects tcp://HOST:PORT (host and port)");
        return 0;
    }
    if (colon - host == 1 && host[0] == '*') {
        snprintf(why, cap, "'*' is for binding; connect to an address (tcp://127.0.0.1:PORT)");
        return 0;
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end || port < 1 || port > 65535) {
        snprintf(why, cap, "port must be a number in [1, 65535]");
        return 0;
    }
    return 1;
}

// Opens a socket to p->endpoint and sends a signed STATUS_REQUEST.
static void probe_send(struct probe *p, const struct hsd_auth_key *key, int timeout_ms) {
    struct hsd_net_opts no = {
        .send_timeout_ms = timeout_ms,
        // Past the whole wait: REQ must not resend the signed bytes itself
        // (a copy with the same nonce is a replay to a service that checks).
        .resend_ivl_ms = timeout_ms + 60000,
    };
    if (hsd_net_client_open(&p->cli, NULL, &p->endpoint, 1, &no)) {
        snprintf(p->error, sizeof p->error, "cannot open a socket: %s", hsd_last_error());
        return;
    }
    // Version 1: STATUS is the same in every version, so a probe reads
    // services of before version 2 too (docs/protocol.md §6).
    struct hsd_wire_msg m = {.version = 1, .type = HSD_WIRE_STATUS_REQUEST,
                             .flags = HSD_WIRE_FLAG_AUTH,
                             .request_id = hsd_edge_random_id()};
    void *buf = NULL;
    size_t len;
    if (hsd_edge_encode(&buf, &len, &m, key, hsd_auth_now_ms())) {
        snprintf(p->error, sizeof p->error, "cannot build the request: %s", hsd_last_error());
        return;
    }
    p->request_id = m.request_id;
    p->sent_ms = mono_ms();
    if (hsd_net_client_send(p->cli, buf, len))
        snprintf(p->error, sizeof p->error, "send failed: %s", hsd_last_error());
    free(buf);
}

// Waits for p's reply until the monotonic time `deadline` and sets its verdict.
static void probe_wait(struct probe *p, double deadline, int timeout_ms) {
    p->verdict = V_UNHEALTHY;
    p->rtt_ms = -1;
    if (p->error[0]) return;  // never sent
    double left = deadline - mono_ms();
    enum hsd_net_wait what = HSD_NET_TIMEOUT;
    if (hsd_net_client_recv(p->cli, &p->reply, left > 0 ? (int)left : 0, &what)) {
        snprintf(p->error, sizeof p->error, "receive failed: %s", hsd_last_error());
        return;
    }
    if (what != HSD_NET_GOT) {
        snprintf(p->error, sizeof p->error,
                 "no reply within %d ms (is `hsd serve` running and listening there?)",
                 timeout_ms);
        return;
    }
    p->rtt_ms = mono_ms() - p->sent_ms;
    p->answered = 1;
    enum hsd_wire_error code;
    if (hsd_wire_decode(&p->m, &code, p->reply.data, p->reply.len)) {
        snprintf(p->error, sizeof p->error, "undecodable reply (%s): %s",
                 hsd_wire_error_name(code), hsd_last_error());
        return;
    }
    // An ERROR for a request the service could not parse carries id 0
    // (docs/protocol.md §6); nanomsg's REQ already matched it to ours.
    int id_zero_error = p->m.type == HSD_WIRE_ERROR && p->m.request_id == 0;
    if (p->m.request_id != p->request_id && !id_zero_error) {
        snprintf(p->error, sizeof p->error,
                 "reply is for request %016" PRIx64 ", not ours (%016" PRIx64 ")",
                 p->m.request_id, p->request_id);
        return;
    }
    if (p->m.type == HSD_WIRE_ERROR) {
        const struct hsd_wire_error_msg *e = &p->m.u.error;
        p->error_code = hsd_wire_error_name(e->code);
        snprintf(p->error, sizeof p->error, "the service refused the request: %s (%u)%s%.*s",
                 p->error_code, e->code, e->text.n ? ": " : "", (int)e->text.n, e->text.p);
        return;
    }
    if (p->m.type != HSD_WIRE_STATUS) {
        snprintf(p->error, sizeof p->error, "expected a STATUS reply, got %s",
                 hsd_wire_type_name(p->m.type));
        return;
    }
    p->have_status = 1;
    const struct hsd_wire_status *s = &p->m.u.status;
    int healthy = 0;
    for (int i = 0; i < s->n_devices; i++) healthy += s->devices[i].healthy;
    if (s->health == HSD_WIRE_HEALTH_DRAINING) {
        snprintf(p->error, sizeof p->error, "the service is draining (shutting down)");
    } else if (s->n_devices == 0) {
        snprintf(p->error, sizeof p->error, "the service reports no devices");
    } else if (healthy == 0) {
        snprintf(p->error, sizeof p->error, "no healthy device (0 of %u)", s->n_devices);
    } else if (healthy < s->n_devices || s->health == HSD_WIRE_HEALTH_DEGRADED) {
        p->verdict = V_DEGRADED;
        snprintf(p->error, sizeof p->error, "%d of %u devices healthy", healthy,
                 s->n_devices);
    } else {
        p->verdict = V_HEALTHY;
    }
}

// An answered STATUS as a block of lines on stdout. Endpoints that gave no
// STATUS are reported on stderr only (main loop).
static void print_text(const struct probe *p) {
    if (!p->have_status) return;
    const struct hsd_wire_status *s = &p->m.u.status;
    const char *verdict = p->verdict == V_HEALTHY    ? "HEALTHY"
                          : p->verdict == V_DEGRADED ? "DEGRADED"
                                                     : "UNHEALTHY";
    printf("%s: %s (health %s; %.*s, up %.1f s, answered in %.1f ms)\n", p->endpoint, verdict,
           health_name(s->health), (int)s->server.n, s->server.p, s->uptime_ms / 1e3, p->rtt_ms);
    if (p->verdict != V_HEALTHY) printf("  reason: %s\n", p->error);
    printf("  queue: %" PRIu32 " waiting (limit %" PRIu32 "), %" PRIu32 " active, max batch "
           "%" PRIu32 "\n", s->queue_depth, s->queue_limit, s->active, s->max_batch);
    printf("  requests: %" PRIu64 " done, %" PRIu64 " failed; %.2f U-Net steps/s\n",
           s->requests_done, s->requests_failed, (double)s->steps_per_s);
    printf("  devices: %u\n", s->n_devices);
    for (int i = 0; i < s->n_devices; i++) {
        const struct hsd_wire_device *d = &s->devices[i];
        printf("    device %d: %.*s (%s, %s, batch %u, memory %" PRIu32 "/%" PRIu32 " MiB)\n", i,
               (int)d->name.n, d->name.p, kind_name(d->kind), d->healthy ? "healthy" : "UNHEALTHY",
               d->batch, d->mem_used_mib, d->mem_total_mib);
    }
}

static json_t *str_json(struct hsd_wire_str s) { return json_stringn(s.p, s.n); }

static json_t *probe_json(const struct probe *p) {
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "endpoint", json_string(p->endpoint));
    json_object_set_new(o, "status", json_string(verdict_name(p->verdict)));
    json_object_set_new(o, "answered", json_boolean(p->answered));
    if (p->rtt_ms >= 0) json_object_set_new(o, "round_trip_ms", json_real(p->rtt_ms));
    if (p->error[0]) json_object_set_new(o, "reason", json_string(p->error));
    if (p->error_code) json_object_set_new(o, "error_code", json_string(p->error_code));
    if (!p->have_status) return o;
    const struct hsd_wire_status *s = &p->m.u.status;
    json_object_set_new(o, "health", json_string(health_name(s->health)));
    json_object_set_new(o, "server", str_json(s->server));
    json_object_set_new(o, "uptime_ms", json_integer((json_int_t)s->uptime_ms));
    json_object_set_new(o, "queue_depth", json_integer(s->queue_depth));
    json_object_set_new(o, "queue_limit", json_integer(s->queue_limit));
    json_object_set_new(o, "active", json_integer(s->active));
    json_object_set_new(o, "max_batch", json_integer(s->max_batch));
    json_object_set_new(o, "steps_per_s", json_real(s->steps_per_s));
    json_object_set_new(o, "requests_done", json_integer((json_int_t)s->requests_done));
    json_object_set_new(o, "requests_failed", json_integer((json_int_t)s->requests_failed));
    json_object_set_new(o, "max_message", json_integer(s->max_message));
    json_t *devs = json_array();
    for (int i = 0; devs && i < s->n_devices; i++) {
        const struct hsd_wire_device *d = &s->devices[i];
        json_t *dj = json_object();
        if (!dj) break;
        json_object_set_new(dj, "name", str_json(d->name));
        json_object_set_new(dj, "kind", json_string(kind_name(d->kind)));
        json_object_set_new(dj, "healthy", json_boolean(d->healthy));
        json_object_set_new(dj, "batch", json_integer(d->batch));
        json_object_set_new(dj, "mem_used_mib", json_integer(d->mem_used_mib));
        json_object_set_new(dj, "mem_total_mib", json_integer(d->mem_total_mib));
        json_array_append_new(devs, dj);
    }
    json_object_set_new(o, "devices", devs);
    return o;
}

// One object: {"status", "exit_code", "endpoints": [per endpoint]}. Returns 0
// when it could not be built (out of memory).
static int print_json(const struct probe *probes, int n, enum verdict worst) {
    json_t *root = json_object(), *arr = json_array();
    int ok = root && arr;
    for (int i = 0; ok && i < n; i++) {
        json_t *pj = probe_json(&probes[i]);
        ok = pj && json_array_append_new(arr, pj) == 0;
    }
    char *text = NULL;
    if (ok) {
        json_object_set_new(root, "status", json_string(verdict_name(worst)));
        json_object_set_new(root, "exit_code", json_integer(worst));
        json_object_set(root, "endpoints", arr);
        text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    }
    json_decref(arr);
    json_decref(root);
    if (!text) return 0;
    printf("%s\n", text);
    free(text);
    return 1;
}

int hsd_cmd_status(int argc, char **argv) {
    const char *endpoints[STATUS_MAX_ENDPOINTS];
    int n_endpoints = 0, timeout_ms = STATUS_DEFAULT_TIMEOUT_MS, json = 0;
    const char *key_file = NULL, *key_id = NULL;
    static const struct option opts[] = {
        {"endpoint", required_argument, 0, 'e'}, {"key-file", required_argument, 0, 'K'},
        {"key-id", required_argument, 0, 'I'},   {"timeout-ms", required_argument, 0, 'T'},
        {"json", no_argument, 0, 'j'},           {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    char why[128];
    optind = 1;
    opterr = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'e':
            if (!endpoint_ok(optarg, why, sizeof why)) {
                fprintf(stderr, "hsd status: --endpoint '%s': %s\n", optarg, why);
                return 2;
            }
            if (n_endpoints == STATUS_MAX_ENDPOINTS) {
                fprintf(stderr, "hsd status: at most %d --endpoint flags\n",
                        STATUS_MAX_ENDPOINTS);
                return 2;
            }
            endpoints[n_endpoints++] = optarg;
            break;
        case 'K': key_file = optarg; break;
        case 'I':
            if (!hsd_wire_key_id_ok(optarg, strlen(optarg))) {
                fprintf(stderr, "hsd status: --key-id '%s': key ids are 1..31 characters of "
                                "[A-Za-z0-9._-]\n", optarg);
                return 2;
            }
            key_id = optarg;
            break;
        case 'T':
            if ((timeout_ms = hsd_cli_parse_int("status", "--timeout-ms", optarg, 1, 3600000)) < 0)
                return 2;
            break;
        case 'j': json = 1; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "hsd status: see `hsd status --help`\n");
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "hsd status: unexpected argument '%s' (every option is a --flag)\n",
                argv[optind]);
        return 2;
    }
    if (!n_endpoints || !key_file || !key_id) {
        fprintf(stderr, "hsd status: missing%s%s%s (see `hsd status --help`)\n",
                n_endpoints ? "" : " --endpoint", key_file ? "" : " --key-file",
                key_id ? "" : " --key-id");
        return 2;
    }

    struct hsd_auth *keys = NULL;
    if (hsd_auth_load(&keys, key_file, NULL)) return hsd_cli_fail("status");
    const struct hsd_auth_key *key = hsd_auth_find(keys, key_id);
    if (!key) {
        fprintf(stderr, "hsd status: %s has no key '%s'\n", key_file, key_id);
        hsd_auth_free(keys);
        return 1;
    }

    struct probe probes[STATUS_MAX_ENDPOINTS];
    memset(probes, 0, sizeof probes);
    // Everything goes out first; then one shared deadline for the replies
    // (nanomsg queues a reply on its socket while we wait on another).
    for (int i = 0; i < n_endpoints; i++) {
        probes[i].endpoint = endpoints[i];
        probe_send(&probes[i], key, timeout_ms);
    }
    double deadline = mono_ms() + timeout_ms;
    enum verdict worst = V_HEALTHY;
    for (int i = 0; i < n_endpoints; i++) {
        probe_wait(&probes[i], deadline, timeout_ms);
        if (badness(probes[i].verdict) > badness(worst)) worst = probes[i].verdict;
    }

    int rc = worst;
    // Why an endpoint is not healthy goes to stderr (a probe's log); in text
    // mode an answered STATUS also says it in its block on stdout.
    for (int i = 0; i < n_endpoints; i++)
        if (probes[i].verdict != V_HEALTHY)
            fprintf(stderr, "hsd status: %s: %s: %s\n", probes[i].endpoint,
                    probes[i].verdict == V_DEGRADED ? "DEGRADED" : "UNHEALTHY", probes[i].error);
    if (json) {
        if (!print_json(probes, n_endpoints, worst)) {
            fprintf(stderr, "hsd status: out of memory building the JSON output\n");
            rc = 1;
        }
    } else {
        for (int i = 0; i < n_endpoints; i++) print_text(&probes[i]);
    }
    fflush(stdout);
    for (int i = 0; i < n_endpoints; i++) {
        hsd_net_msg_release(&probes[i].reply);
        hsd_net_client_close(probes[i].cli);
    }
    hsd_auth_free(keys);
    return rc;
}
