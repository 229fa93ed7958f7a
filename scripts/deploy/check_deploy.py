#!/usr/bin/env python3
"""Structural checks of the deployment files that no generic linter knows.

    check_deploy.py MANIFEST DOCKERFILE SETUP_SH [HSD]

The Kubernetes manifest (hsd-serve.k8s.yaml) must hold a Deployment, a
Service and a PodDisruptionBudget that agree with each other and with what
`hsd serve` and `hsd status` accept; the Dockerfile must build the way the
project builds (scripts/setup.sh's libraries, -DHSD_CUDA=ON) and run hsd
serve as a non-root user on mounted models. With HSD (a built hsd binary),
every flag the files pass to `hsd serve` / `hsd status` must appear in that
command's --help, so a renamed flag fails here rather than in a cluster.

Prints one line per check ("ok   ..." / "FAIL ...") and "N passed, N failed";
exits 1 when a check failed, 2 when the files cannot be read at all.
"""
import json
import re
import shlex
import subprocess
import sys

try:
    import yaml
except ImportError:  # pragma: no cover - reported, not hidden
    print("FAIL PyYAML is not installed (scripts/setup.sh installs it into .venv)")
    print("0 passed, 1 failed")
    sys.exit(1)

results = []


def check(cond, what, detail=""):
    results.append(bool(cond))
    print(("ok   " if cond else "FAIL ") + what + ("" if cond or not detail else f": {detail}"))
    return bool(cond)


def flag_value(args, flag):
    """Value after `flag` in an argv list (or `flag=value`); None if absent."""
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def flags_of(args):
    return sorted({a.split("=", 1)[0] for a in args if a.startswith("--")})


def help_flags(hsd, cmd):
    """Flags an hsd subcommand documents in --help (None without a binary)."""
    if not hsd:
        return None
    out = subprocess.run([hsd, cmd, "--help"], capture_output=True, text=True, timeout=30)
    return set(re.findall(r"--[a-z][a-z0-9-]*", out.stdout + out.stderr))


def port_of(ports, ref):
    """containerPort a probe/Service refers to, by name or number."""
    for p in ports:
        if ref == p.get("name") or ref == p.get("containerPort"):
            return p.get("containerPort")
    return None


def check_manifest(path, hsd):
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    kinds = {d.get("kind"): d for d in docs}
    check(len(kinds) == len(docs), "manifest: one object of each kind",
          str([d.get("kind") for d in docs]))
    for kind, api in (("Deployment", "apps/v1"), ("Service", "v1"),
                      ("PodDisruptionBudget", "policy/v1")):
        check(kind in kinds and kinds[kind].get("apiVersion") == api,
              f"manifest: a {kind} ({api})")
    dep, svc, pdb = kinds.get("Deployment"), kinds.get("Service"), kinds.get("PodDisruptionBudget")
    if not dep:
        return
    spec = dep["spec"]
    tmpl = spec["template"]
    labels = tmpl["metadata"]["labels"]
    sel = spec["selector"]["matchLabels"]
    check(sel.items() <= labels.items(), "Deployment: selector matches the pod labels")
    pod = tmpl["spec"]
    (c,) = pod["containers"]
    args = [str(a) for a in c.get("args", [])]
    check(not c.get("command"),
          "container: no command override (the image's ENTRYPOINT is hsd serve)")
    check(flag_value(args, "--backend") == "cuda:all", "hsd serve args: --backend cuda:all")

    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    vols = {v["name"]: v for v in pod.get("volumes", [])}

    def volume_for(file_path):
        """(mount, volume) whose mountPath contains file_path."""
        best = None
        for mp, m in mounts.items():
            if file_path == mp or file_path.startswith(mp.rstrip("/") + "/"):
                if best is None or len(mp) > len(best[0]):
                    best = (mp, m)
        return (best[1], vols.get(best[1]["name"])) if best else (None, None)

    model = flag_value(args, "--model")
    m, v = volume_for(model or "/nonexistent")
    check(m and v and "persistentVolumeClaim" in v and m.get("readOnly") is True
          and v["persistentVolumeClaim"].get("readOnly") is True,
          f"--model {model}: on a PersistentVolumeClaim mounted read-only")
    keys = flag_value(args, "--keys")
    km, kv = volume_for(keys or "/nonexistent")
    check(km and kv and "secret" in kv and km.get("readOnly") is True,
          f"--keys {keys}: a file of a Secret mounted read-only")
    if kv and "secret" in kv:
        items = {i["path"]: i["key"] for i in kv["secret"].get("items", [])}
        rel = keys[len(km["mountPath"].rstrip("/")) + 1:]
        check(not items or rel in items, f"Secret items provide {rel}")

    ports = c.get("ports", [])
    bind = flag_value(args, "--bind") or ""
    bm = re.fullmatch(r"tcp://(.+):(\d+)", bind)
    check(bm and bm.group(1) in ("0.0.0.0", "*"),
          f"--bind {bind}: tcp on every interface (pod IP and loopback)")
    bind_port = int(bm.group(2)) if bm else None
    check(port_of(ports, bind_port), f"containerPort {bind_port} declared for --bind")
    mport = flag_value(args, "--metrics-port")
    mport = int(mport) if mport and mport.isdigit() else None
    check(mport and port_of(ports, mport), f"--metrics-port {mport} declared as a containerPort")

    res = c.get("resources", {})
    req = res.get("requests", {}).get("nvidia.com/gpu")
    lim = res.get("limits", {}).get("nvidia.com/gpu")
    check(req is not None and req == lim and int(req) >= 1,
          f"nvidia.com/gpu requested = limit ({req}/{lim})")

    rp = c.get("readinessProbe", {})
    cmd = " ".join(rp.get("exec", {}).get("command", []))
    words = shlex.split(cmd.replace(";", " ; ")) if cmd else []
    check("hsd" in cmd and "status" in words, "readinessProbe: exec `hsd status`", cmd)
    st_ep = flag_value(words, "--endpoint") or ""
    check(bind_port and re.fullmatch(rf"tcp://(127\.0\.0\.1|localhost):{bind_port}", st_ep),
          f"readinessProbe: its own loopback endpoint ({st_ep})")
    check(flag_value(words, "--key-file") == keys and flag_value(words, "--key-id"),
          "readinessProbe: signs with a key of the mounted keys file")
    to = flag_value(words, "--timeout-ms")
    check(to and int(to) < 1000 * int(rp.get("timeoutSeconds", 1)),
          f"readinessProbe: --timeout-ms {to} < timeoutSeconds {rp.get('timeoutSeconds', 1)}")

    for name in ("livenessProbe", "startupProbe"):
        hg = c.get(name, {}).get("httpGet", {})
        check(hg.get("path") == "/metrics" and mport and port_of(ports, hg.get("port")) == mport,
              f"{name}: GET /metrics on the --metrics-port port")

    grace = flag_value(args, "--grace-ms")
    grace = int(grace) if grace else 30000  # hsd serve's default
    pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    pre_s = int(pre[-1]) if pre and "sleep" in pre[0] and str(pre[-1]).isdigit() else 0
    tgps = pod.get("terminationGracePeriodSeconds", 30)
    check(tgps * 1000 > grace + pre_s * 1000,
          f"terminationGracePeriodSeconds {tgps} s > preStop {pre_s} s + --grace-ms {grace}")

    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0, "pod runs as non-root")
    check(csc.get("allowPrivilegeEscalation") is False, "no privilege escalation")

    want = help_flags(hsd, "serve")
    if want is not None:
        unknown = [f for f in flags_of(args) if f not in want]
        check(not unknown, "every hsd serve flag is in `hsd serve --help`", str(unknown))
        want = help_flags(hsd, "status")
        unknown = [f for f in flags_of(words) if f not in want]
        check(not unknown, "every hsd status flag is in `hsd status --help`", str(unknown))

    if svc:
        s = svc["spec"]
        check(s.get("selector", {}).items() <= labels.items(), "Service: selector matches the pods")
        targets = {port_of(ports, p.get("targetPort", p.get("port"))) for p in s.get("ports", [])}
        check(bind_port in targets and mport in targets,
              "Service: exposes the nanomsg and metrics ports", str(targets))
    if pdb:
        p = pdb["spec"]
        check(p.get("selector", {}).get("matchLabels", {}).items() <= labels.items(),
              "PodDisruptionBudget: selector matches the pods")
        check(("maxUnavailable" in p) != ("minAvailable" in p),
              "PodDisruptionBudget: exactly one of maxUnavailable / minAvailable")


def dockerfile_instructions(path):
    """(INSTRUCTION, text) pairs, continuation lines joined, comments dropped."""
    out, cur = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            s = line.strip()
            if s.startswith("#") or not s:
                continue
            if s.endswith("\\"):
                cur.append(s[:-1].strip())
                continue
            cur.append(s)
            text = " ".join(x for x in cur if x)
            cur = []
            word = text.split(None, 1)
            out.append((word[0].upper(), word[1] if len(word) > 1 else ""))
    return out


def check_dockerfile(path, setup_sh, hsd):
    ins = dockerfile_instructions(path)
    froms = [t for i, t in ins if i == "FROM"]
    check(len(froms) >= 2, "Dockerfile: multi-stage (build + runtime)", str(froms))
    check(all(re.search(r"nvidia/cuda:", f) for f in froms),
          "Dockerfile: stages on nvidia/cuda images")
    check(re.search(r"-devel-", froms[0]) and re.search(r"-runtime-", froms[-1]),
          "Dockerfile: devel image builds, runtime image runs", str(froms))
    untagged = [f for f in froms
                if re.search(r":latest\b", f) or f.split()[0].endswith("nvidia/cuda")]
    check(not untagged, "Dockerfile: base images carry a tag, not latest", str(untagged))
    runs = " ".join(t for i, t in ins if i == "RUN")
    check("-DHSD_CUDA=ON" in runs, "Dockerfile: cmake with -DHSD_CUDA=ON")
    check("-DHSD_NATIVE=OFF" in runs, "Dockerfile: no -march=native in a portable image")
    # Every library scripts/setup.sh installs for the build (the -dev
    # packages, less the fuzzing toolchain's) is installed in the build stage.
    with open(setup_sh, encoding="utf-8") as f:
        m = re.search(r"pkgs=\((.*?)\)", f.read(), re.S)
    devs = [p for p in (m.group(1).split() if m else []) if p.endswith("-dev")
            and not re.match(r"lib(clang|omp)", p)]
    missing = [p for p in devs if p not in runs]
    check(devs and not missing, "Dockerfile: installs scripts/setup.sh's -dev packages",
          str(missing))
    check(not re.search(r"\b(curl|wget)\b", runs) and
          not any(i == "ADD" and "://" in t for i, t in ins),
          "Dockerfile: downloads nothing (models are mounted)")
    apt = [t for i, t in ins if i == "RUN" and "apt-get install" in t]
    check(all("--no-install-recommends" in t and "rm -rf /var/lib/apt/lists" in t for t in apt),
          "Dockerfile: apt installs without recommends and cleans its lists")
    # Runtime stage: from the last FROM on.
    last = max(k for k, (i, _) in enumerate(ins) if i == "FROM")
    rt = ins[last:]
    users = [t for i, t in rt if i == "USER"]
    check(users and users[-1].split(":")[0] not in ("0", "root"),
          "Dockerfile: runtime runs as non-root", str(users))
    check(any(i == "COPY" and "--from=" in t and "hsd" in t for i, t in rt),
          "Dockerfile: runtime stage copies only the built hsd")
    ep = [t for i, t in rt if i == "ENTRYPOINT"]
    check(ep and ep[-1].startswith("[") and re.search(r'hsd",\s*"serve"', ep[-1]),
          "Dockerfile: ENTRYPOINT [... hsd, serve] (exec form: hsd gets SIGTERM)", str(ep))
    check(any(i == "VOLUME" for i, _ in rt), "Dockerfile: models at a VOLUME path")
    cmd = [t for i, t in rt if i == "CMD"]
    want = help_flags(hsd, "serve")
    if cmd and want is not None:
        cargs = json.loads(cmd[-1])
        unknown = [f for f in flags_of(cargs) if f not in want]
        check(not unknown, "Dockerfile: CMD flags are in `hsd serve --help`", str(unknown))
        check(flag_value(cargs, "--backend") == "cuda:all",
              "Dockerfile: CMD serves --backend cuda:all")


def main():
    if len(sys.argv) not in (4, 5):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    manifest, dockerfile, setup_sh = sys.argv[1:4]
    hsd = sys.argv[4] if len(sys.argv) == 5 else None
    try:
        check_manifest(manifest, hsd)
        check_dockerfile(dockerfile, setup_sh, hsd)
    except (OSError, yaml.YAMLError, KeyError, ValueError, TypeError) as e:
        check(False, "reading the deployment files", f"{type(e).__name__}: {e}")
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
