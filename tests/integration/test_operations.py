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


APIDOCS = os.path.join(os.path.dirname(__file__), "..", "apidocs")
EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def validate_doc(kind, doc, tmp_path):
    """Runs the npm parser of kind (openapi or asyncapi) on doc; returns its output."""
    import json
    path = tmp_path / ("%s-%d.json" % (kind, os.getpid()))
    path.write_text(json.dumps(doc))
    r = subprocess.run(["node", os.path.join(APIDOCS, "validate.mjs"), kind, str(path)],
                       cwd=APIDOCS, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def check_documents(base, config, tmp_path):
    """Both documents of the restmapper at base are valid and cover config."""
    import yaml
    with open(config) as f:
        cfg = yaml.safe_load(f)
    oa = requests.get(base + "/openapi.json", timeout=10).json()
    aa = requests.get(base + "/asyncapi.json", timeout=10).json()
    assert "valid openapi 3.1" in validate_doc("openapi", oa, tmp_path)
    assert "valid asyncapi 3.0.0" in validate_doc("asyncapi", aa, tmp_path)
    assert oa["servers"][0]["url"] == (cfg.get("http") or {}).get("public_prefix", "/api/v1").rstrip("/")
    assert "/asyncapi.json" in oa["paths"]
    # Every exchange and queue of the file is in the AsyncAPI document, with
    # the type the broker has.
    exchanges, queues, ws = {}, set(), set()
    for ch in aa["channels"].values():
        b = ch.get("bindings", {})
        if "amqp" in b and b["amqp"]["is"] == "routingKey":
            exchanges[b["amqp"]["exchange"]["name"]] = b["amqp"]["exchange"]["type"]
        elif "amqp" in b:
            queues.add(b["amqp"]["queue"].get("name"))
        if "ws" in b:
            ws.add(ch["address"])
    for ep in cfg["endpoints"]:
        name = "%s:%s" % (ep["path"], ep["method"].upper())
        assert exchanges.get(name) == ("direct" if ep["mode"] == "rpc" else "fanout"), name
        assert name in queues, name
        if ep.get("live"):
            assert ep["path"] in ws, ep["path"]
    if any(ep["mode"] == "rpc" for ep in cfg["endpoints"]):
        assert exchanges.get("RPC") == "direct"
    for h in cfg.get("handlers") or []:
        assert h["queue"] in queues and h["queue"] + ".dlq" in queues, h["queue"]
    # No credentials of bus.url leak into the document.
    assert "guest" not in json_text(aa)
    return oa, aa


def json_text(o):
    import json
    return json.dumps(o)


@pytest.mark.timeout(300)
def test_api_documents_of_the_stack(stack, tmp_path):
    oa, aa = check_documents(stack.mapper, stack.config, tmp_path)
    assert aa["servers"]["broker"]["host"] == "127.0.0.1:%d" % stack.amqp_port
    # Both are reachable through nginx under the public prefix as well.
    for name in ("openapi.json", "asyncapi.json"):
        r = requests.get(stack.nginx + "/api/v1/" + name, timeout=10)
        assert r.status_code == 200 and r.json()["info"]
    # The copy in the documentation is this document (but for the servers,
    # which follow the environment).
    import json
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "doc", "examples", "asyncapi.json")) as f:
        documented = json.load(f)
    assert documented["servers"]["broker"]["host"] == "127.0.0.1:5672"
    documented.pop("servers")
    aa.pop("servers")
    assert documented == aa, "doc/examples/asyncapi.json is out of date"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("example", sorted(os.listdir(EXAMPLES)))
def test_api_documents_of_the_examples(stack, proc, tmp_path, example):
    config = os.path.join(EXAMPLES, example, "endpoints.yaml")
    port = stack.aux_port + 1
    proc.start([os.path.join(stack.bin, "restmapper"), "--config", config],
               env=stack.env(FPESA_HTTP_LISTEN="127.0.0.1:%d" % port),
               wait_http="http://127.0.0.1:%d/health" % port, timeout=30)
    check_documents("http://127.0.0.1:%d" % port, config, tmp_path)


def test_public_prefix(stack, proc, tmp_path):
    from conftest import write_config
    with open(stack.config) as f:
        text = f.read()
    good = write_config(tmp_path, text.replace("  max_body: 64KiB\n",
                                               "  max_body: 64KiB\n  public_prefix: https://api.example.com/v2/\n"))
    port = stack.aux_port + 2
    proc.start([os.path.join(stack.bin, "restmapper"), "--config", good],
               env=stack.env(FPESA_HTTP_LISTEN="127.0.0.1:%d" % port),
               wait_http="http://127.0.0.1:%d/health" % port, timeout=30)
    doc = requests.get("http://127.0.0.1:%d/openapi.json" % port, timeout=10).json()
    assert doc["servers"][0]["url"] == "https://api.example.com/v2"
    bad = write_config(tmp_path, text.replace("  max_body: 64KiB\n",
                                              "  max_body: 64KiB\n  public_prefix: api v1\n"), "bad.yaml")
    r = subprocess.run([os.path.join(stack.bin, "restmapper"), "--check", bad], capture_output=True,
                       text=True, timeout=30)
    line = text.splitlines().index("  max_body: 64KiB") + 2
    assert r.returncode == 1
    assert "bad.yaml:%d:18: bad \"public_prefix\"" % line in r.stderr, r.stderr
