"""What the Python tests of tests/pyclient share: ok/FAIL lines with the
closing "N passed, N failed" line (as the shell tests print), a free
loopback port, an `hsd serve` that is started, waited for and stopped, and
the C edge's finish of a RESULT compared with `hsd generate --split k`."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time


class Report:
    def __init__(self):
        self.passed = self.failed = 0

    def ok(self, msg):
        self.passed += 1
        print(f"ok   {msg}", flush=True)

    def bad(self, msg):
        self.failed += 1
        print(f"FAIL {msg}", flush=True)

    def check(self, cond, msg, detail=""):
        if cond:
            self.ok(msg)
        else:
            self.bad(msg + (f": {detail}" if detail else ""))

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed")
        sys.exit(1 if self.failed else 0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    """`hsd serve --model MODEL --bind tcp://127.0.0.1:PORT --threads 2
    [extra]` on a free port, up until the context ends. `{metrics_port}` in
    extra is replaced by a second free port. Retries with new ports when
    another process took one between the probe and the bind."""

    def __init__(self, hsd, model, extra=()):
        self.tmp = tempfile.TemporaryDirectory()
        self.log = os.path.join(self.tmp.name, "serve.log")
        for _ in range(5):
            self.endpoint = f"tcp://127.0.0.1:{free_port()}"
            self.metrics_port = free_port()
            args = [a.replace("{metrics_port}", str(self.metrics_port)) for a in extra]
            with open(self.log, "w") as log:
                self.proc = subprocess.Popen([hsd, "serve", "--model", model, "--bind",
                                              self.endpoint, "--threads", "2", *args],
                                             stdout=log, stderr=subprocess.STDOUT)
            for _ in range(300):
                if self.proc.poll() is not None or self._ready():
                    break
                time.sleep(0.1)
            if self.proc.poll() is None and self._ready():
                return
            self.stop()
        raise RuntimeError("hsd serve did not start:\n" + open(self.log).read())

    def _ready(self):
        return "ready" in open(self.log).read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # drains, as in production
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        self.tmp.cleanup()
        return False


def finish_vs_generate(tmp, hsd, tool, pngcmp, model, edge, gen_msg, res_msg, req, extra=()):
    """A RESULT (res_msg, as received) for GENERATE gen_msg finished by the
    C edge (wire_tool finish: hsd_edge_verify_result + hsd_edge_finish on
    the edge pipeline) against `hsd generate --model MODEL --edge-model
    EDGE --split k` of the same request (text prompts; `extra`: more
    generate flags, e.g. --original-size). An empty negative prompt is no
    -n: the wire cannot tell "" from none, and SDXL's
    force_zeros_for_empty_prompt zeroes only none (docs/protocol.md §5.1).
    Returns (same, detail): same is test_edge_pngcmp's verdict (pixels and
    IDAT bytes)."""
    from hsd_client import Sampler
    f = {n: os.path.join(tmp, n) for n in ("gen.bin", "res.bin", "e.png", "g.png")}
    for n, b in (("gen.bin", gen_msg), ("res.bin", res_msg)):
        with open(f[n], "wb") as out:
            out.write(b)
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    fin = subprocess.run([tool, "finish", edge, f["gen.bin"], f["res.bin"], f["e.png"]],
                         capture_output=True, text=True, timeout=120, env=env)
    gen = subprocess.run(
        [hsd, "generate", "--model", model, "--edge-model", edge, "--split", str(req.k),
         "-p", req.prompt, *(["-n", req.negative_prompt] if req.negative_prompt else []),
         "--width", str(req.width), "--height",
         str(req.height), "--seed", str(req.seed), "--steps", str(req.steps), "--sampler",
         Sampler.parse(req.sampler).cli_name, "--cfg", repr(req.cfg_scale), "--threads", "2",
         "-q", *extra, "-o", f["g.png"]], capture_output=True, text=True, timeout=120, env=env)
    if fin.returncode or gen.returncode:
        return False, (f"finish rc {fin.returncode} ({fin.stderr.strip()}), generate rc "
                       f"{gen.returncode} ({gen.stderr.strip()})")
    cmp = subprocess.run([pngcmp, f["e.png"], f["g.png"]], capture_output=True, text=True,
                         timeout=60)
    return cmp.returncode == 0, (cmp.stdout + cmp.stderr).strip()
