#!/usr/bin/env python3
"""Issue 15, finding 5, through a real `hsd serve` (tcp on 127.0.0.1): one
key floods, another key is still served.

`hsd serve --queue-limit 4 --key-queue-limit 2 --max-active 1`. Key
flood-1 holds the only active slot with a long request and fills its share
of the queue (2 waiting); its next request gets BUSY naming the key's
share, while key other-2 is accepted. When flood-1's running request is
cancelled, other-2 is admitted before flood-1's backlog (keys take turns)
and gets its RESULT while flood-1's requests are still waiting or running;
under the old first-come policy it waited for two 1000-step requests.

  test_fair.py HSD TEST_DATA
"""

import os
import sys
import tempfile
import threading
import time

try:
    import hsd_client as hc
except ImportError as e:
    print(f"SKIP: {e} (scripts/setup.sh installs tests/oracle/requirements.txt)")
    sys.exit(77)

from harness import Report, Serve

hsd, data = sys.argv[1:3]
model = os.path.join(data, "pipeline", "large")
tmp = tempfile.TemporaryDirectory()
report = Report()
check = report.check

keys = os.path.join(tmp.name, "keys")
with open(keys, "w") as f:
    f.write(f"flood-1 {os.urandom(32).hex()} max_steps=1000\nother-2 {os.urandom(32).hex()}\n")
os.chmod(keys, 0o600)
flood_key = hc.Key.from_file(keys, "flood-1")
other_key = hc.Key.from_file(keys, "other-2")
R = hc.GenerateRequest
LONG = R(prompt="a long one", width=64, height=64, steps=1000, k=1000)
outcome = {}


def run(name, key, req, rid):
    try:
        outcome[name] = hc.Client(ep, key, timeout_ms=120000).generate(req, request_id=rid)
    except hc.HsdError as e:
        outcome[name] = e


def wait_status(cond, secs=60):
    for _ in range(int(secs * 10)):
        st = hc.Client(ep, other_key, timeout_ms=20000).status()
        if cond(st):
            return st
        time.sleep(0.1)
    return st


with Serve(hsd, model, ["--keys", keys, "--queue-limit", "4", "--key-queue-limit", "2",
                        "--max-active", "1"]) as srv:
    ep = srv.endpoint
    rids = {n: hc.random_request_id() for n in ("run", "q1", "q2")}
    threads = [threading.Thread(target=run, args=("run", flood_key, LONG, rids["run"]))]
    threads[0].start()
    wait_status(lambda st: st.active == 1)
    for n in ("q1", "q2"):
        threads.append(threading.Thread(target=run, args=(n, flood_key, LONG, rids[n])))
        threads[-1].start()
    st = wait_status(lambda st: st.queue_depth == 2)
    check(st.active == 1 and st.queue_depth == 2,
          f"flood-1: 1 running, {st.queue_depth} waiting (its share of a queue of "
          f"{st.queue_limit})", st)
    try:
        r = hc.Client(ep, flood_key, timeout_ms=20000).generate(LONG)
        report.bad(f"flood-1 over its share: accepted ({r})")
    except hc.ServerError as e:
        check(e.name == "BUSY" and "share" in e.text,
              f"flood-1 over its share: {e.name}, {e.text!r}", e)

    other = threading.Thread(target=run, args=(
        "other", other_key, R(prompt="a cat", width=64, height=64, steps=2, k=2),
        hc.random_request_id()))
    other.start()
    wait_status(lambda st: st.queue_depth == 3)
    t0 = time.monotonic()
    check(hc.Client(ep, flood_key, timeout_ms=20000).cancel(rids["run"]),
          "CANCEL of flood-1's running request: acknowledged")
    other.join(timeout=60)
    waited = time.monotonic() - t0
    r = outcome.get("other")
    st = hc.Client(ep, other_key, timeout_ms=20000).status()
    check(isinstance(r, hc.Result) and r.k_used == 2,
          f"other-2: RESULT {waited:.1f} s after the cancel, ahead of flood-1's backlog "
          f"(still {st.queue_depth} waiting, {st.active} running)", r)
    check(st.queue_depth + st.active == 2,
          "flood-1's two queued requests were not served first", st)
    for n in ("q1", "q2"):
        hc.Client(ep, flood_key, timeout_ms=20000).cancel(rids[n])
    for th in threads:
        th.join(timeout=60)
    ended = {n: getattr(outcome.get(n), "name", outcome.get(n)) for n in ("run", "q1", "q2")}
    check(all(v == "CANCELLED" for v in ended.values()), f"flood-1's requests ended {ended}")

report.finish()
