#!/usr/bin/env python3
"""Checks the Grafana dashboard against what `hsd serve` exports:

  check_dashboard.py DASHBOARD.json --metrics URL_OR_FILE

(a /metrics URL such as http://127.0.0.1:9100/metrics, or a saved scrape;
tests/pyclient/test_dashboard.py runs it on a fresh `hsd serve`).

1. Every PromQL expression in the dashboard (panel targets, template
   variable queries) parses (promql-parser, the Rust PromQL parser's Python
   binding), after Grafana's variables are replaced by placeholders.
2. Every metric those expressions select is in the scrape (parsed with
   prometheus-client's text parser, which also checks the exposition is well-formed), and every
   label they match on (other than the instance and job labels that
   Prometheus adds) is a label of that metric.
3. The panels the issue asks for are there: queue depth, active requests,
   batch sizes, steps/s, device busy, p99 time to RESULT, errors by code.
4. Self-test: the same check on a copy of the dashboard with one metric
   misspelled, and on one with an expression broken, must fail, so a pass
   means the check looked.

Exit 0: all good; 1: a check failed; 77: promql-parser or prometheus-client
missing (skipped; scripts/setup.sh installs them).
"""

import argparse
import copy
import json
import re
import sys
import urllib.request

try:
    import promql_parser
    from prometheus_client.parser import text_string_to_metric_families
except ImportError as e:
    print(f"SKIP: {e} (scripts/setup.sh installs tests/oracle/requirements.txt)")
    sys.exit(77)

# Labels Prometheus attaches to every scraped series (target labels).
TARGET_LABELS = {"instance", "job"}
# What each required panel must query (issue 13 item 5): a metric name, and
# a pattern the expression must match.
REQUIRED = {
    "queue depth": ("hsd_queue_depth", r""),
    "active requests": ("hsd_active_requests", r""),
    "batch sizes": ("hsd_batch_rows_bucket", r"histogram_quantile"),
    "steps/s": ("hsd_device_image_steps_total", r"rate\("),
    "device busy": ("hsd_device_busy_ms_total", r"rate\("),
    "p99 time to RESULT": ("hsd_time_to_result_seconds_bucket", r"histogram_quantile\(0\.99"),
    "errors by code": ("hsd_errors_total", r"by \(code\)"),
}


def expressions(dash):
    """(where, PromQL) for every panel target and template query."""
    out = []

    def panels(ps, path):
        for p in ps:
            where = f"{path}panel {p.get('id')} '{p.get('title', '')}'"
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((f"{where} target {t.get('refId')}", t["expr"]))
            panels(p.get("panels", []), where + " / ")

    panels(dash.get("panels", []), "")
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if v.get("type") == "query" and q:
            out.append((f"variable ${v['name']}", q))
    return out


def substitute(expr):
    """Grafana's variables -> something PromQL parses: intervals become 5m,
    other variables (used inside label matcher strings) a placeholder."""
    expr = re.sub(r"\$\{?__(rate_interval|interval|range)(?::\w+)?\}?", "5m", expr)
    return re.sub(r"\$\{[^}]*\}|\$[A-Za-z_]\w*", "placeholder", expr)


def selectors(expr):
    """[(metric, {label: op})] of every vector selector in a PromQL string.
    Grafana's label_values(metric, label) is not PromQL: its metric part is."""
    m = re.fullmatch(r"\s*label_values\(\s*(.*?)\s*,\s*(\w+)\s*\)\s*", expr)
    if m:
        return [(n, {**labels, m.group(2): "label_values"}) for n, labels in selectors(m.group(1))]
    ast = promql_parser.parse(substitute(expr))
    found = []

    def visit(node):
        # `sum by (code) (...)`: the grouping labels must exist too; they are
        # checked as if matched on every selector inside the aggregation.
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None and \
                node.modifier.type == promql_parser.AggModifierType.By:
            for name, labels in selectors(str(node.expr)):
                found.append((name, {**labels, **{x: "by" for x in node.modifier.labels}}))
            # (walk goes on into them as well: recorded twice, checked twice)
        if isinstance(node, promql_parser.VectorSelector):
            labels = {x.name: str(x.op) for x in node.matchers.matchers}
            name = node.name or next((x.value for x in node.matchers.matchers
                                      if x.name == "__name__"), None)
            labels.pop("__name__", None)
            found.append((name, labels))
        return True

    promql_parser.walk(ast, pre_visit=visit)
    return found


def exported(text):
    """{sample name: set of label names} from a /metrics body."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, set()).update(s.labels)
    return out


def check(dash, metrics, quiet=False):
    """The failures of checks 1-3 (empty: all good)."""
    fails = []
    queried = []
    for where, expr in expressions(dash):
        try:
            sels = selectors(expr)
        except Exception as e:  # noqa: BLE001 - the parser's error types are its own
            fails.append(f"{where}: PromQL does not parse: {e}: {expr}")
            continue
        if not sels:
            fails.append(f"{where}: selects no metric: {expr}")
        for name, labels in sels:
            queried.append((name, expr))
            if name not in metrics:
                close = [m for m in metrics if m.split("_")[:2] == (name or "").split("_")[:2]]
                fails.append(f"{where}: metric {name} is not exported by hsd serve"
                             + (f" (similar: {', '.join(sorted(close)[:4])})" if close else ""))
                continue
            for label in set(labels) - TARGET_LABELS:
                if label not in metrics[name]:
                    fails.append(f"{where}: {name} has no label '{label}' "
                                 f"(has: {', '.join(sorted(metrics[name])) or 'none'})")
            if not quiet:
                print(f"ok   {where}: {name} exported")
    for what, (metric, pattern) in REQUIRED.items():
        if not any(n == metric and re.search(pattern, e) for n, e in queried):
            fails.append(f"no panel shows {what} (a query of {metric} matching /{pattern}/)")
    ids = [p.get("id") for p in dash.get("panels", [])]
    if len(ids) != len(set(ids)):
        fails.append(f"panel ids repeat: {ids}")
    return fails


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dashboard")
    ap.add_argument("--metrics", required=True, help="a /metrics URL or a saved scrape")
    a = ap.parse_args()
    dash = json.load(open(a.dashboard))
    src = a.metrics
    if "://" in src:
        with urllib.request.urlopen(src, timeout=10) as r:
            text = r.read().decode("utf-8")
    else:
        text = open(src, encoding="utf-8").read()
    metrics = exported(text)
    print(f"scraped {src}: {len(metrics)} sample names")
    fails = check(dash, metrics)
    n_expr = len(expressions(dash))

    # Self-test: a misspelled metric and a broken expression must be caught.
    typo = copy.deepcopy(dash)
    victim = next(t for p in typo["panels"] for t in p.get("targets", []))
    name = selectors(victim["expr"])[0][0]
    victim["expr"] = victim["expr"].replace(name, name + "s", 1)
    caught = [f for f in check(typo, metrics, quiet=True) if f"{name}s is not exported" in f]
    if not caught:
        fails.append(f"self-test: a misspelled metric ({name}s) was not caught")
    else:
        print(f"ok   self-test: misspelled metric caught: {caught[0]}")
    broken = copy.deepcopy(dash)
    victim = next(t for p in broken["panels"] for t in p.get("targets", []))
    victim["expr"] = victim["expr"] + " by"
    caught = [f for f in check(broken, metrics, quiet=True) if "does not parse" in f]
    if not caught:
        fails.append("self-test: an unparsable expression was not caught")
    else:
        print(f"ok   self-test: broken expression caught: {caught[0][:120]}")

    for f in fails:
        print(f"FAIL {f}")
    print(f"{n_expr} expressions checked; {len(fails)} failed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
