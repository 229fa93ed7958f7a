"""The page of `hsd edge --http` in headless Chromium (Debian's chromium),
driven over the Chrome DevTools protocol (websocket-client): load /, fill in
the form, submit; the DOM must show the progress bar moving (0 < value < 1,
fed by /sdapi/v1/progress) and then the image with its parameters.
Screenshots of both moments are kept in ARTIFACTS. Run by
tests/cli/edge_http.sh: edge_http_page.py PORT ARTIFACTS"""
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket

port, art = int(sys.argv[1]), sys.argv[2]
chrome = shutil.which("chromium") or shutil.which("chromium-browser")
if not chrome:
    print("FAIL chromium is not installed (scripts/setup.sh installs Debian's chromium)")
    print("0 passed, 1 failed")
    sys.exit(1)

passed = failed = 0


def check(ok, what):
    global passed, failed
    passed, failed = passed + bool(ok), failed + (not ok)
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    return ok


profile = tempfile.mkdtemp(prefix="hsd-chromium-")
proc = subprocess.Popen(
    [chrome, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
     "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
     "--disable-component-update", "--disable-sync", "--window-size=900,1100",
     "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
     f"--user-data-dir={profile}", "about:blank"],
    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
try:
    devtools = None
    t0 = time.time()
    while time.time() - t0 < 30:  # "DevTools listening on ws://127.0.0.1:PORT/..."
        line = proc.stderr.readline()
        m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
        if m:
            devtools = int(m.group(1))
            break
        if not line and proc.poll() is not None:
            break
    if not check(devtools, f"chromium started ({chrome})"):
        raise SystemExit
    targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{devtools}/json/list"))
    page = next(t for t in targets if t["type"] == "page")
    ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30)
    ids = iter(range(1, 1 << 30))

    def cdp(method, **params):
        i = next(ids)
        ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            msg = json.loads(ws.recv())
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def js(expr):
        r = cdp("Runtime.evaluate", expression=expr, returnByValue=True)
        return r.get("result", {}).get("value")

    def wait(expr, secs):
        end = time.time() + secs
        while time.time() < end:
            if js(expr):
                return True
            time.sleep(0.05)
        return False

    def shot(name):
        data = cdp("Page.captureScreenshot", format="png")["data"]
        path = os.path.join(art, name)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    cdp("Page.enable")
    cdp("Page.navigate", url=f"http://127.0.0.1:{port}/")
    # As many as the daemon lists (GET /sdapi/v1/samplers), none made up by the page.
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/sdapi/v1/samplers", timeout=10) as r:
        n_samplers = len(json.load(r))
    check(n_samplers > 0 and
          wait("document.readyState === 'complete' && !!document.getElementById('generate')", 20)
          and wait(f"document.getElementById('sampler').options.length === {n_samplers}", 10),
          f"the page loads and lists the daemon's {n_samplers} samplers")
    steps = 150
    js(f"""(() => {{
        const set = (id, v) => {{ document.getElementById(id).value = v; }};
        set('prompt', 'a lighthouse at dusk'); set('negative', 'blurry');
        set('sampler', 'Euler'); set('steps', {steps}); set('width', 64); set('height', 64);
        set('seed', 5);
        document.getElementById('generate').click();
    }})()""")
    state = """JSON.stringify({state: document.body.dataset.state || '',
        barHidden: document.getElementById('bar').hidden,
        bar: document.getElementById('bar').value,
        status: document.getElementById('status').textContent,
        img: document.getElementById('result').hidden ? '' :
             document.getElementById('result').src.slice(0, 22),
        width: document.getElementById('result').naturalWidth,
        params: document.getElementById('params').textContent,
        error: document.getElementById('error').textContent})"""
    mid = None
    end = time.time() + 120
    while time.time() < end:
        s = json.loads(js(state))
        if s["state"] == "running" and not s["barHidden"] and 0 < s["bar"] < 1 and not mid:
            mid = s
            mid["shot"] = shot("edge_http_page_progress.png")
        if s["state"] in ("done", "error") and (s["state"] == "error" or s["width"]):
            break
        time.sleep(0.05)
    check(mid is not None, f"the progress bar shows a run in progress: {mid}")
    check(s["state"] == "done" and s["img"] == "data:image/png;base64," and s["width"] == 64
          and f"Steps: {steps}" in s["params"] and "Seed: 5" in s["params"]
          and "Hybrid: cloud k=" in s["params"] and s["bar"] == 1 and not s["error"],
          f"then the image and its parameters: {dict(s, params=s['params'][:200])}")
    check(os.path.getsize(shot("edge_http_page_done.png")) > 0,
          f"screenshots kept in {art}")
    ws.close()
finally:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    shutil.rmtree(profile, ignore_errors=True)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
