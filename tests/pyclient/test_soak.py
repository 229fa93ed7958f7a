#!/usr/bin/env python3
"""Soak (issue 15): N mixed requests against one real `hsd serve` on
127.0.0.1 (the tiny pipeline, --threads 1), from W client threads at once,
while the service's RSS and open descriptors are sampled.

The mix: good GENERATEs over all five samplers, fixed splits k = 0..N and
split ranges, two latent sizes, CFG on and off; GENERATEs cancelled from a
second socket; STATUS; and bad requests, each with the ERROR that
docs/protocol.md §4/§5.3 documents for it: unsigned and wrongly signed
(UNAUTHENTICATED), garbage bytes and truncated frames (BAD_MESSAGE), a
flipped byte (BAD_CHECKSUM), the same signed bytes twice (REPLAYED), over
the key's default limits and out-of-range fields (BAD_REQUEST).

Every request must end exactly once: one reply, of the kind its request
documents (a verified RESULT, CANCELLED, a STATUS, or the named ERROR).
RATE_LIMITED (the control bucket, 600/min by default) and BUSY are
documented answers too and are counted, not failed; a missing reply
(NoReply), a reply to another request id or an unexpected code fails.
Growth of RSS and descriptors after a warm-up fails beyond the bounds
explained at RSS_BOUND and FD_BOUND. Prints every outcome with its count.

  test_soak.py HSD TEST_DATA N [WORKERS]
"""

import collections
import os
import random
import struct
import sys
import tempfile
import threading
import time

try:
    import hsd_client as hc
    from hsd_client import auth, wire
except ImportError as e:
    print(f"SKIP: {e} (scripts/setup.sh installs tests/oracle/requirements.txt)")
    sys.exit(77)

from harness import Report, Serve

hsd, data, n_total = sys.argv[1], sys.argv[2], int(sys.argv[3])
workers = int(sys.argv[4]) if len(sys.argv) > 4 else 6
model = os.path.join(data, "pipeline", "large")
report = Report()

# The first 20 % of requests are warm-up: the allocator's arenas (one per
# thread that allocates: the socket loop, the batcher, the text encoder),
# the per-bucket activation arenas of both latent sizes and nanomsg's
# per-connection state reach their steady size there.
WARMUP = 0.2
# RSS after the warm-up may grow by at most 16 MiB: twice what the warm-up
# itself added in the recorded runs (165 -> 173 MiB, bench/RESULTS.md
# "Issue 15"); after it the working set only repeats, but glibc keeps freed
# chunks in its per-thread arenas and trims them lazily, so a few MiB move
# with the batch mix. A leak of 2 KiB per request exceeds the bound within
# the 8,000 requests after the warm-up of the slow run (20 KiB per request
# in the 1,000-request CI run).
RSS_BOUND = 16 << 20
# Descriptors: one per open client connection plus fixed ones. At most
# 2 x WORKERS connections are open at any time (a GENERATE and its CANCEL),
# so after the run, with every client closed, the count must be back
# within 2 of where it was before the first request (nanomsg may still be
# closing a socket or two).
FD_BOUND = 2

tmp = tempfile.TemporaryDirectory()
keys = os.path.join(tmp.name, "keys")
with open(keys, "w") as f:
    # Default limits (docs/protocol.md §4 "Default limits") except the
    # control bucket: the mix sends ~10 % STATUS/CANCEL; RATE_LIMITED is
    # still counted when it happens.
    # (hsd_client's keys-file reader does not know the ctl_ options, so the
    # client's key is built from the secret.)
    secret = os.urandom(32)
    f.write(f"soak {secret.hex()} ctl_rate_per_min=6000 ctl_burst=200\n")
os.chmod(keys, 0o600)
key = hc.Key("soak", secret)
wrong = hc.Key("soak", os.urandom(32))
ghost = hc.Key("ghost", os.urandom(32))
SAMPLERS = ["dpmpp-2m", "ddim", "euler", "euler-a", "pndm"]
R = hc.GenerateRequest

outcomes = collections.Counter()  # (kind, outcome) -> count
failures = []
lock = threading.Lock()


def record(kind, outcome, ok, detail=""):
    with lock:
        outcomes[(kind, outcome)] += 1
        if not ok:
            failures.append(f"{kind}: {outcome} {detail}")


def good_request(rng):
    steps = rng.randint(2, 4)
    sampler = rng.choice(SAMPLERS)
    split = dict(k_range=(0, steps)) if rng.random() < 0.2 else dict(k=rng.randint(0, steps))
    return R(prompt=rng.choice(["a red fox", "a lighthouse at dusk", "soak"]),
             negative_prompt=rng.choice(["", "blurry"]), seed=rng.randrange(2**32),
             width=rng.choice([64, 128]), height=64, steps=steps, sampler=sampler,
             cfg_scale=rng.choice([1.0, 7.5]), **split)


def raw(ep, msg):
    return hc.Client(ep, key, timeout_ms=60000).exchange(bytes(msg))


def expect_error(kind, reply, rid, want):
    if isinstance(reply, hc.Error) and reply.name in ("RATE_LIMITED", "BUSY"):
        record(kind, reply.name, True)
    elif isinstance(reply, hc.Error) and reply.name == want and \
            (rid is None or reply.request_id == rid):
        record(kind, want, True)
    else:
        record(kind, type(reply).__name__ + "/" + getattr(reply, "name", ""), False,
               f"wanted {want}: {reply}")


def signed_generate(req, rid, poke=None):
    m = wire.encode_generate(req, rid, True)
    if poke:
        poke(m)
    auth.sign(m, key)
    return m


def one(ep, rng, kind):
    rid = hc.random_request_id()
    if kind == "generate":
        req = good_request(rng)
        try:
            res = hc.Client(ep, key, timeout_ms=60000).generate(req, request_id=rid)
            record(kind, "RESULT", res.request_id == rid)
        except hc.ServerError as e:
            record(kind, e.name, e.name in ("BUSY", "RATE_LIMITED"), str(e))
    elif kind == "cancel":
        # 150 steps (the default max_steps) at 64x64: far longer than the
        # CANCEL's round trip, so it is normally cancelled mid-run.
        req = R(prompt="cancel me", seed=rid & 0xFFFF, width=64, height=64, steps=150, k=150)
        out = {}

        def run():
            try:
                out["r"] = hc.Client(ep, key, timeout_ms=120000).generate(req, request_id=rid)
            except hc.HsdError as e:
                out["r"] = e
        th = threading.Thread(target=run)
        th.start()
        acked = False
        time.sleep(rng.uniform(0.0, 0.1))
        while th.is_alive() and not acked:
            try:
                acked = hc.Client(ep, key, timeout_ms=60000).cancel(rid)
            except hc.ServerError as e:
                if e.name != "RATE_LIMITED":
                    raise
            if not acked:
                time.sleep(0.02)  # not admitted yet
        th.join()
        r = out.get("r")
        if isinstance(r, hc.ServerError) and r.name == "CANCELLED":
            record(kind, "CANCELLED", acked, "CANCELLED without an acknowledged CANCEL")
        elif isinstance(r, hc.Result):
            record(kind, "RESULT (finished before the CANCEL)", not acked,
                   "RESULT after an acknowledged CANCEL")
        elif isinstance(r, hc.ServerError) and r.name == "BUSY":
            record(kind, "BUSY", True)
        else:
            record(kind, repr(r), False)
    elif kind == "status":
        st = hc.Client(ep, key, timeout_ms=60000).status()
        record(kind, "STATUS", st.health in ("ok", "degraded"), st.health)
    elif kind == "unsigned":
        m = wire.encode_generate(good_request(rng), rid, False)
        expect_error(kind, raw(ep, m), rid, "UNAUTHENTICATED")
    elif kind == "wrong secret":
        m = wire.encode_generate(good_request(rng), rid, True)
        auth.sign(m, rng.choice([wrong, ghost]))
        expect_error(kind, raw(ep, m), rid, "UNAUTHENTICATED")
    elif kind == "garbage":
        m = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
        expect_error(kind, raw(ep, m), None, "BAD_MESSAGE")
    elif kind == "truncated":
        m = signed_generate(good_request(rng), rid)
        expect_error(kind, raw(ep, m[:rng.randint(wire.HEADER_SIZE, len(m) - 1)]), None,
                     "BAD_MESSAGE")
    elif kind == "flipped byte":
        m = signed_generate(good_request(rng), rid)
        # In the payload: a flip in the auth block's key id is refused
        # before the checksum runs (UNAUTHENTICATED, docs/protocol.md §8).
        m[rng.randint(wire.HEADER_SIZE, len(m) - wire.AUTH_SIZE - 1)] ^= 1 << rng.randint(0, 7)
        expect_error(kind, raw(ep, m), rid, "BAD_CHECKSUM")
    elif kind == "replayed":
        m = auth.sign(wire.encode_status_request(rid, True), key)
        first = raw(ep, m)
        record(kind, "first copy: STATUS", isinstance(first, hc.Status), str(first))
        expect_error(kind, raw(ep, m), rid, "REPLAYED")
    elif kind == "over limits":
        big = rng.choice([dict(width=4096, height=4096, steps=1000),
                          dict(width=1032, height=1024, steps=20),
                          dict(width=64, height=64, steps=151)])
        req = R(prompt="too big", k=1, **big)
        expect_error(kind, raw(ep, signed_generate(req, rid)), rid, "BAD_REQUEST")
    elif kind == "out of range":
        # Fields the Python encoder refuses to write, poked into the payload
        # (§5.1 offsets) before signing: k_max > steps, an unknown sampler,
        # clip skip deeper than the text encoder.
        req = R(prompt="x", width=64, height=64, steps=3, k=1)
        pokes = [lambda m: struct.pack_into("<HH", m, wire.HEADER_SIZE + 14, 1, 9),
                 lambda m: struct.pack_into("<B", m, wire.HEADER_SIZE + 18, 9)]
        if rng.random() < 0.34:
            req = R(prompt="x", width=64, height=64, steps=3, k=1, clip_skip=20)
            pokes = [None]
        expect_error(kind, raw(ep, signed_generate(req, rid, rng.choice(pokes))), rid,
                     "BAD_REQUEST")
    else:
        raise AssertionError(kind)


MIX = [("generate", 50), ("cancel", 3), ("status", 5), ("unsigned", 5), ("wrong secret", 5),
       ("garbage", 5), ("truncated", 5), ("flipped byte", 5), ("replayed", 4),
       ("over limits", 5), ("out of range", 8)]


def proc_sample(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) << 10
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


with Serve(hsd, model, ["--keys", keys, "--threads", "1", "--queue-limit", "64"]) as srv:
    pid, ep = srv.proc.pid, srv.endpoint
    done = [0]
    samples = []  # (requests done, rss, fds)
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            rss, fds = proc_sample(pid)
            samples.append((done[0], rss, fds))
            stop.wait(0.2)

    def worker(w):
        rng = random.Random(1000 + w)
        kinds, weights = zip(*MIX)
        while True:
            with lock:
                if done[0] >= n_total:
                    return
                done[0] += 1
            kind = rng.choices(kinds, weights)[0]
            try:
                one(ep, rng, kind)
            except hc.HsdError as e:
                record(kind, type(e).__name__, False, str(e))

    base_rss, base_fds = proc_sample(pid)
    t0 = time.monotonic()
    threading.Thread(target=sampler, daemon=True).start()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    time.sleep(1.0)  # connections closed by the clients leave the service
    for _ in range(30):
        end_rss, end_fds = proc_sample(pid)
        samples.append((n_total, end_rss, end_fds))
        time.sleep(0.1)
    stop.set()
    alive = srv.proc.poll() is None
    st = hc.Client(ep, key, timeout_ms=20000).status() if alive else None
    log = open(srv.log).read()

n_req = sum(outcomes.values())
print(f"{n_total} requests ({n_req} replies counted, a replay pair counts twice) from "
      f"{workers} threads in {secs:.1f} s ({n_total / secs:.0f}/s; loaded shared machine):")
for (kind, outcome), c in sorted(outcomes.items()):
    print(f"  {kind:14s} {outcome:40s} {c}")
check = report.check
check(not failures, f"every request ended exactly once as documented ({len(failures)} not)",
      "; ".join(failures[:10]))
check(alive and "Assertion" not in log and "ERROR: AddressSanitizer" not in log,
      "the service is up and logged no abort", log[-2000:])
warm = [s for s in samples if s[0] <= WARMUP * n_total]
after = [s for s in samples if s[0] > WARMUP * n_total]
if warm and after:
    w_rss, w_fds = max(s[1] for s in warm), warm[-1][2]
    a_rss = max(s[1] for s in after)
    print(f"RSS: {base_rss >> 20} MiB at the start, {w_rss >> 20} MiB peak in the warm-up, "
          f"{a_rss >> 20} MiB peak after it, {end_rss >> 20} MiB at the end; descriptors: "
          f"{base_fds} at the start, {w_fds} after the warm-up, "
          f"{max(s[2] for s in after)} peak, {end_fds} at the end ({len(samples)} samples)")
    check(a_rss - w_rss <= RSS_BOUND,
          f"RSS after the warm-up grew {(a_rss - w_rss) / 2**20:.1f} MiB (bound "
          f"{RSS_BOUND >> 20} MiB)")
    check(end_fds <= base_fds + FD_BOUND,
          f"descriptors back to {end_fds} after the run ({base_fds} at the start, bound "
          f"+{FD_BOUND})")
else:
    report.bad(f"too few RSS samples ({len(samples)}) to judge growth")
results = sum(c for (k, o), c in outcomes.items() if o.startswith("RESULT"))
if st:
    # requests_done counts RESULTs only (scheduler/service.c handle_status).
    check(st.requests_done == results,
          f"the service counted {st.requests_done} RESULTs, the clients received {results}")
report.finish()
