"""Operating the programs: metrics a Prometheus server accepts, the API
documents, --version/--help, install and packaging, environment checks."""
import os
import shutil
import subprocess

import pytest
import requests

PROMTOOL = shutil.which("promtool")


def promtool_check(text):
    """Runs `promtool check metrics` on an exposition; returns its complaints."""
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    return r.returncode, (r.stdout + r.stderr).strip()


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian's prometheus package) is missing")
@pytest.mark.parametrize("which", ["mapper", "mapper2", "live"])
def test_metrics_pass_promtool(stack, which):
    base = {"mapper": stack.mapper, "mapper2": "http://127.0.0.1:%d" % stack.mapper2_port,
            "live": stack.live}[which]
    if which != "live":
        # Traffic first, so that every family has samples: a publish, an rpc,
        # an unmatched route.
        assert requests.post(base + "/messages/", json={"promtool": 1}, timeout=10).status_code == 202
        assert requests.get(base + "/messages/?limit=1", timeout=10).status_code == 200
        assert requests.get(base + "/no/such/route", timeout=10).status_code == 404
    r = requests.get(base + "/metrics", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    rc, out = promtool_check(r.text)
    assert rc == 0 and out == "", out
    # Every family that has samples has HELP and TYPE.
    helps = {l.split()[2] for l in r.text.splitlines() if l.startswith("# HELP ")}
    types = {l.split()[2] for l in r.text.splitlines() if l.startswith("# TYPE ")}
    assert helps == types and len(helps) >= 8


DASHBOARD = os.path.join(os.path.dirname(__file__), "..", "..", "doc", "grafana-dashboard.json")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian's prometheus package) is missing")
def test_grafana_dashboard_queries(stack, tmp_path):
    """Every query of the shipped dashboard is valid PromQL (promtool parses it
    as a recording rule) and names only metric families the programs export."""
    import json
    import re
    with open(DASHBOARD) as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 15
    rules = ["groups:", "  - name: dashboard", "    rules:"]
    for i, e in enumerate(exprs):
        e = e.replace("$__rate_interval", "1m").replace("$instance", ".*")
        rules.append("      - record: fpesa:dashboard_query_%d" % i)
        rules.append("        expr: %s" % json.dumps(e))
    path = tmp_path / "rules.yml"
    path.write_text("\n".join(rules) + "\n")
    r = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    exported = set()
    for base in (stack.mapper, stack.live):
        for line in requests.get(base + "/metrics", timeout=10).text.splitlines():
            if line.startswith("# TYPE "):
                exported.add(line.split()[2])
    named = set()
    for e in exprs:
        for m in re.findall(r"\b((?:fpesa|liveupdate)_[a-z_]+)", e):
            named.add(re.sub(r"_(bucket|sum|count)$", "", m))
    assert named and named <= exported, sorted(named - exported)
