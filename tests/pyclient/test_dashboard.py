#!/usr/bin/env python3
"""scripts/deploy/grafana-hsd.json against a fresh `hsd serve`: its
/metrics (127.0.0.1, the tiny test model) is scraped once and
scripts/deploy/check_dashboard.py checks that every PromQL expression of
the dashboard parses and selects metrics and labels the scrape has (and,
as a self-test, that a misspelled metric would fail).

  test_dashboard.py HSD TEST_DATA DASHBOARD CHECK_DASHBOARD
"""

import os
import subprocess
import sys
import tempfile
import urllib.request

from harness import Serve

hsd, data, dashboard, checker = sys.argv[1:5]
with tempfile.TemporaryDirectory() as tmp, \
        Serve(hsd, os.path.join(data, "pipeline", "large"),
              ["--no-auth", "--metrics-port", "{metrics_port}"]) as srv:
    url = f"http://127.0.0.1:{srv.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as r:
        body = r.read()
    scrape = os.path.join(tmp, "metrics.txt")
    with open(scrape, "wb") as f:
        f.write(body)
    print(f"scraped {url}: {len(body)} bytes", flush=True)
    sys.exit(subprocess.run([sys.executable, checker, dashboard, "--metrics", scrape],
                            timeout=120).returncode)
