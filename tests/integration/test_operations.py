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
@pytest.mark.parametrize("which", ["mapper", "mapper2", "live", "handler"])
def test_metrics_pass_promtool(stack, which):
    base = {"mapper": stack.mapper, "mapper2": "http://127.0.0.1:%d" % stack.mapper2_port,
            "live": stack.live, "handler": stack.handler}[which]
    if which == "handler":
        assert requests.post(stack.mapper + "/messages/", json={"promtool": 1}, timeout=10).status_code == 202
    elif which != "live":
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


def handler_sample(text, family, handler):
    """The value of family{handler="..."} in an exposition, or None."""
    want = '%s{handler="%s"} ' % (family, handler)
    for line in text.splitlines():
        if line.startswith(want):
            return float(line[len(want):])
    return None


@pytest.mark.timeout(120)
def test_handler_host_health_and_metrics(stack):
    """The stack's handler host answers /health for every handler and counts,
    across its instances (child processes), what each handler consumed and
    acknowledged, and how long its batches took."""
    from conftest import wait_until
    h = requests.get(stack.handler + "/health", timeout=10)
    assert h.status_code == 200 and h.json()["status"] == "ok", h.text
    handlers = h.json()["handlers"]
    assert handlers["messages_post"]["running"] == handlers["messages_post"]["instances"] >= 1
    # messages_get runs two instances: both count into one family.
    assert handlers["messages_get"]["instances"] == 2

    def metrics():
        return requests.get(stack.handler + "/metrics", timeout=10).text

    before = metrics()
    acked0 = handler_sample(before, "fpesa_handler_messages_acked_total", "messages_post")
    count0 = handler_sample(before, "fpesa_handler_batch_duration_seconds_count", "messages_post")
    gets0 = handler_sample(before, "fpesa_handler_messages_acked_total", "messages_get")
    assert acked0 is not None and count0 is not None and gets0 is not None
    n = 20
    for i in range(n):
        assert requests.post(stack.mapper + "/messages/", json={"counted": i}, timeout=10).status_code == 202
    for _ in range(6):
        assert requests.get(stack.mapper + "/messages/?limit=1", timeout=10).status_code == 200
    wait_until(lambda: (handler_sample(metrics(), "fpesa_handler_messages_acked_total",
                                      "messages_post") or 0) >= acked0 + n, timeout=60)
    wait_until(lambda: (handler_sample(metrics(), "fpesa_handler_messages_acked_total",
                                      "messages_get") or 0) >= gets0 + 6, timeout=60)
    after = metrics()
    assert handler_sample(after, "fpesa_handler_messages_consumed_total", "messages_post") >= acked0 + n
    assert handler_sample(after, "fpesa_handler_batch_duration_seconds_count", "messages_post") > count0
    assert handler_sample(after, "fpesa_handler_instances_running", "messages_get") == 2
    print("messages_post acked %d -> %d" % (acked0, handler_sample(after, "fpesa_handler_messages_acked_total",
                                                                   "messages_post")))
    # Anything but the two paths is a JSON 404.
    r = requests.get(stack.handler + "/nope", timeout=10)
    assert r.status_code == 404 and r.json()["error"]["code"] == 404


def test_handler_host_port_taken_is_an_error(stack):
    """A second handler host asked for the stack's handler port stops at once."""
    r = subprocess.run([os.path.join(stack.bin, "handler"), "--config", stack.config, "echo"],
                       env=stack.env(FPESA_HANDLER_LISTEN="127.0.0.1:%d" % stack.handler_port),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "cannot listen on 127.0.0.1:%d: the port is taken by another process" % stack.handler_port in r.stderr, r.stderr


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
    assert any("fpesa_handler_" in e for e in exprs)
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
    for base in (stack.mapper, stack.live, stack.handler):
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


# ---- --version, --help, environment checks -----------------------------------

def version_h():
    import re
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "common", "version.h")) as f:
        return re.search(r'#define FPESA_VERSION "([^"]+)"', f.read()).group(1)


@pytest.mark.parametrize("prog", ["restmapper", "liveupdate", "handler"])
def test_version_and_help(stack, prog):
    exe = os.path.join(stack.bin, prog)
    r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith("%s (fpesa) %s" % (prog, version_h())), r.stdout
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    for word in ("usage: " + prog, "--config", "--check", "--version", "FPESA_LOG_LEVEL"):
        assert word in r.stdout, (word, r.stdout)
    r = subprocess.run([exe, "--no-such-option"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "usage: " + prog in r.stderr


@pytest.mark.parametrize("prog,var,value", [
    ("restmapper", "FPESA_LOG_LEVEL", "verbose"),
    ("liveupdate", "FPESA_LOG_LEVEL", "3"),
    ("handler", "FPESA_LOG_LEVEL", "infoo"),
    ("restmapper", "FPESA_DRAIN_MS", "10s"),
    ("restmapper", "FPESA_DRAIN_MS", "-1"),
    ("restmapper", "FPESA_DRAIN_MS", "99999999999"),
])
def test_bad_environment_is_refused(stack, prog, var, value):
    """A bad value of a tuning variable stops the start with a message naming
    it, before anything listens or connects."""
    r = subprocess.run([os.path.join(stack.bin, prog), "--config", stack.config],
                       env=stack.env(**{var: value, "FPESA_HTTP_LISTEN": "127.0.0.1:%d" % (stack.aux_port + 4),
                                        "FPESA_LIVE_LISTEN": "127.0.0.1:%d" % (stack.aux_port + 4)}),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith('%s: bad value "%s"' % (var, value)), r.stderr


# ---- make install and the .deb -------------------------------------------------

def make(stack, *args, **kw):
    return subprocess.run(["make", "--no-print-directory", "-C", stack.root, "BUILD=" + stack.build, *args],
                          capture_output=True, text=True, timeout=kw.pop("timeout", 600), **kw)


def check_installed_tree(stack, proc, root, tmp_path, port):
    """An installed tree (under root, with prefix /usr) has everything and runs."""
    usr = os.path.join(root, "usr")
    for f in ["bin/fpesa-restmapper", "bin/fpesa-liveupdate", "bin/fpesa-handler",
              "lib/fpesa/plugins/messages_post.so", "lib/fpesa/plugins/messages_get.so",
              "include/fpesa/handler.h", "lib/pkgconfig/fpesa-handler.pc",
              "share/man/man8/fpesa-restmapper.8", "share/man/man8/fpesa-handler.8",
              "share/man/man8/fpesa-liveupdate.8", "share/man/man5/fpesa-endpoints.yaml.5"]:
        assert os.path.isfile(os.path.join(usr, f)), f
    for unit in ["fpesa-restmapper@.service", "fpesa-liveupdate.service", "fpesa-handler.service"]:
        assert os.path.isfile(os.path.join(root, "lib", "systemd", "system", unit)), unit
    conf = os.path.join(root, "etc", "fpesa", "endpoints.yaml")
    for prog in ("restmapper", "liveupdate", "handler"):
        exe = os.path.join(usr, "bin", "fpesa-" + prog)
        r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and version_h() in r.stdout, r.stdout + r.stderr
        r = subprocess.run([exe, "--check", conf], capture_output=True, text=True, timeout=60,
                           env=stack.env(FPESA_PLUGIN_DIR=""))
        assert r.returncode == 0 and r.stdout.strip() == conf + ": ok", r.stdout + r.stderr
    # A manual page renders.
    r = subprocess.run(["man", "-l", os.path.join(usr, "share/man/man8/fpesa-restmapper.8")],
                       capture_output=True, text=True, timeout=30, env=dict(os.environ, MANWIDTH="80"))
    assert r.returncode == 0 and "FPESA_DRAIN_MS" in r.stdout
    # A plugin author builds against the installed header through pkg-config.
    env = dict(os.environ, PKG_CONFIG_SYSROOT_DIR=root, PKG_CONFIG_LIBDIR=os.path.join(usr, "lib", "pkgconfig"))
    cflags = subprocess.run(["pkg-config", "--cflags", "fpesa-handler"], capture_output=True, text=True,
                            env=env, timeout=30)
    assert cflags.returncode == 0 and os.path.join(usr, "include") in cflags.stdout, cflags.stdout + cflags.stderr
    so = str(tmp_path / "wordcount.so")
    cc = subprocess.run(["cc", "-shared", "-fPIC", "-std=c11", "-Wall", "-Werror", *cflags.stdout.split(),
                         "-o", so, os.path.join(stack.root, "doc", "examples", "wordcount", "wordcount.c"),
                         "-ljansson"], capture_output=True, text=True, timeout=120)
    assert cc.returncode == 0, cc.stderr
    # The installed restmapper serves, against the stack's broker.
    proc.start([os.path.join(usr, "bin", "fpesa-restmapper"), "--config", conf],
               env=stack.env(FPESA_HTTP_LISTEN="127.0.0.1:%d" % port),
               wait_http="http://127.0.0.1:%d/health" % port, timeout=30)
    r = requests.post("http://127.0.0.1:%d/messages/" % port, json={"installed": True}, timeout=10)
    assert r.status_code == 202, r.text


@pytest.mark.timeout(900)
def test_make_install(stack, proc, tmp_path):
    dest = str(tmp_path / "dest")
    r = make(stack, "install", "PREFIX=/usr", "DESTDIR=" + dest)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    check_installed_tree(stack, proc, dest, tmp_path, stack.aux_port + 5)
    # The units are valid for systemd once their paths exist: install under
    # a prefix of its own (no DESTDIR) and verify them there.
    pfx = str(tmp_path / "pfx")
    r = make(stack, "install", "PREFIX=" + pfx)
    assert r.returncode == 0, r.stderr[-3000:]
    units = os.path.join(pfx, "lib", "systemd", "system")
    inst = str(tmp_path / "fpesa-restmapper@8081.service")
    shutil.copy(os.path.join(units, "fpesa-restmapper@.service"), inst)
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "verify", "--man=no", inst,
                            os.path.join(units, "fpesa-liveupdate.service"),
                            os.path.join(units, "fpesa-handler.service")],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
    # make uninstall leaves no file of ours behind.
    r = make(stack, "uninstall", "PREFIX=/usr", "DESTDIR=" + dest)
    assert r.returncode == 0, r.stderr
    left = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(dest, "usr")) for f in fs]
    assert left == [], left


@pytest.mark.timeout(900)
def test_deb_installs_runs_and_removes(stack, proc, tmp_path):
    import glob
    r = make(stack, "deb")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    debs = glob.glob(os.path.join(stack.build, "fpesa_%s_*.deb" % version_h()))
    assert len(debs) == 1, debs
    deb = debs[0]
    fields = subprocess.run(["dpkg-deb", "--field", deb, "Package", "Version", "Depends"],
                            capture_output=True, text=True, timeout=30).stdout
    assert "Package: fpesa" in fields and "libmicrohttpd" in fields and "librabbitmq" in fields, fields
    # Every dependency is satisfiable here: apt would install it as it is.
    r = subprocess.run(["apt-get", "-s", "-o", "Debug::NoLocking=1", "install", deb],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "Inst fpesa" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    # Installed with dpkg into a throwaway root (its own package database;
    # the libraries come from this system, hence --force-depends).
    root = str(tmp_path / "root")
    for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"):
        os.makedirs(os.path.join(root, d))
    open(os.path.join(root, "var/lib/dpkg/status"), "w").close()
    r = subprocess.run(["dpkg", "--root=" + root, "--force-depends", "--force-not-root", "-i", deb],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    check_installed_tree(stack, proc, root, tmp_path, stack.aux_port + 6)
    r = subprocess.run(["dpkg", "--root=" + root, "--force-depends", "--purge", "fpesa"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    left = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
            if not os.path.join(d, f).startswith(os.path.join(root, "var"))]
    assert left == [], left


# ---- --check equals a start ------------------------------------------------------

def run_prog(stack, prog, *args, env=None, timeout=60):
    return subprocess.run([os.path.join(stack.bin, prog), *args], capture_output=True, text=True,
                          timeout=timeout, env=env or stack.env())


def line_of(text, needle, nth=1):
    """1-based line number of the nth line of text containing needle."""
    hits = [i + 1 for i, l in enumerate(text.splitlines()) if needle in l]
    return hits[nth - 1]


def test_handler_check_validates_plugin_config_like_a_start(stack, tmp_path):
    """examples/timers with role: creat: --check and a start both refuse it,
    with the position of the bad value."""
    from conftest import write_config
    with open(os.path.join(EXAMPLES, "timers", "endpoints.yaml")) as f:
        text = f.read()
    assert run_prog(stack, "handler", "--check", os.path.join(EXAMPLES, "timers", "endpoints.yaml")).returncode == 0
    bad_text = text.replace("role: create", "role: creat", 1)
    bad = write_config(tmp_path, bad_text)
    line = line_of(bad_text, "role: creat")
    col = bad_text.splitlines()[line - 1].index("creat") + 1
    want = "%s:%d:%d: handlers[0].config/role: enum:" % (bad, line, col)
    r = run_prog(stack, "handler", "--check", bad)
    assert r.returncode == 1 and want in r.stderr, r.stderr
    assert "timer_service.so" in r.stderr
    # A start refuses it the same way, before consuming anything.
    r = run_prog(stack, "handler", "--config", bad, timeout=60)
    assert r.returncode == 1 and want in r.stderr, r.stderr
    # A type mistake deeper down and an unknown key are found too.
    bad_text = text.replace("max_attempts: 5", "max_attempts: five", 1)
    bad = write_config(tmp_path, bad_text, "b.yaml")
    r = run_prog(stack, "handler", "--check", bad)
    assert r.returncode == 1 and ":%d:" % line_of(bad_text, "max_attempts: five") in r.stderr, r.stderr
    assert "config/max_attempts: type:" in r.stderr
    bad_text = text.replace("role: get", "role: get\n      rol: get", 1)
    bad = write_config(tmp_path, bad_text, "c.yaml")
    r = run_prog(stack, "handler", "--check", bad)
    assert r.returncode == 1 and "additionalProperties" in r.stderr, r.stderr


@pytest.mark.parametrize("plugin,why", [
    ("nope.so", "cannot open"),
    ("@wrong_abi.so", "wrong ABI version: expected 1, found"),
    ("@no_symbol.so", "no entry symbol fpesa_handler_v1"),
])
def test_handler_check_loads_every_plugin(stack, tmp_path, plugin, why):
    from conftest import write_config
    with open(stack.config) as f:
        text = f.read()
    path = plugin if not plugin.startswith("@") else os.path.join(stack.test_plugins, plugin[1:])
    bad_text = text.replace("plugin: echo.so", "plugin: " + path, 1)
    bad = write_config(tmp_path, bad_text)
    line = line_of(bad_text, "- name: echo")
    r = run_prog(stack, "handler", "--check", bad)
    assert r.returncode == 1, r.stdout
    import yaml
    index = [h["name"] for h in yaml.safe_load(bad_text)["handlers"]].index("echo")
    assert "%s:%d:5: handlers[%d] (echo): plugin " % (bad, line, index) in r.stderr and why in r.stderr, r.stderr
    # restmapper's --check is about its own side and still passes.
    assert run_prog(stack, "restmapper", "--check", bad).returncode == 0


def test_liveupdate_check_refuses_what_a_start_refuses(stack):
    timers = os.path.join(EXAMPLES, "timers", "endpoints.yaml")
    r = run_prog(stack, "liveupdate", "--check", timers)
    assert r.returncode == 1 and "no endpoint has live: true" in r.stderr, r.stderr
    r = run_prog(stack, "liveupdate", "--config", timers,
                 env=stack.env(FPESA_LIVE_LISTEN="127.0.0.1:%d" % (stack.aux_port + 7)))
    assert r.returncode == 1
    r = run_prog(stack, "liveupdate", "--check", stack.config)
    assert r.returncode == 0 and r.stdout.strip() == stack.config + ": ok"


# ---- ready before serving, rolling restarts -------------------------------------

def test_taken_port_is_an_error_at_start(stack):
    """A second restmapper on a port in use fails at once; it never shares it."""
    r = subprocess.run([os.path.join(stack.bin, "restmapper"), "--config", stack.config],
                       env=stack.env(FPESA_HTTP_LISTEN="127.0.0.1:%d" % stack.mapper_port),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "cannot listen on 127.0.0.1:%d: the port is taken by another process" % stack.mapper_port in r.stderr, r.stderr


def test_not_listening_before_the_broker_is_ready(stack, proc):
    """Without its broker a restmapper refuses connections (a proxy then uses
    another instance) instead of answering 503; it serves once it connects."""
    import socket
    port = stack.aux_port + 8
    dead = stack.aux_port + 9  # nothing listens there
    p = proc.start([os.path.join(stack.bin, "restmapper"), "--config", stack.config],
                   env=stack.env(FPESA_HTTP_LISTEN="127.0.0.1:%d" % port,
                                 FPESA_AMQP_URL="amqp://guest:guest@127.0.0.1:%d/" % dead))
    from conftest import wait_until
    wait_until(lambda: "bus connect failed" in open(p.logfile).read(), timeout=30)
    with pytest.raises(requests.ConnectionError):
        requests.get("http://127.0.0.1:%d/health" % port, timeout=5)
    # The port is held all along: another instance cannot take it.
    s = socket.socket()
    try:
        with pytest.raises(OSError):
            s.bind(("127.0.0.1", port))
            s.listen(1)
    finally:
        s.close()
    proc.stop(p)
    assert p.returncode == 0, "a stop before serving is a clean stop"
    # With its broker it serves at once.
    proc.start([os.path.join(stack.bin, "restmapper"), "--config", stack.config],
               env=stack.env(FPESA_HTTP_LISTEN="127.0.0.1:%d" % port),
               wait_http="http://127.0.0.1:%d/health" % port, timeout=30)
    assert requests.get("http://127.0.0.1:%d/health" % port, timeout=5).status_code == 200


@pytest.mark.timeout(300)
def test_make_restart_under_load_has_no_failure(stack):
    """make restart restarts every program in turn while clients keep posting
    and reading through nginx: every answer is a 2xx, and every program has
    a new pid afterwards."""
    import threading
    from conftest import stack_healthy
    run = os.path.join(stack.var, "run")

    def pids():
        out = {}
        for n in ("handler", "restmapper", "restmapper2", "liveupdate"):
            try:
                with open(os.path.join(run, n + ".pid")) as f:
                    out[n] = f.read().strip()
            except OSError:
                pass
        return out

    before = pids()
    stop = threading.Event()
    counts = {"ok": 0}
    bad = []
    lock = threading.Lock()

    def client(k):
        s = requests.Session()
        i = 0
        while not stop.is_set():
            i += 1
            try:
                if i % 3:
                    r = s.post(stack.nginx + "/api/v1/messages/", json={"restart": k, "i": i}, timeout=30)
                else:
                    r = s.get(stack.nginx + "/api/v1/messages/?limit=1", timeout=30)
                with lock:
                    if 200 <= r.status_code < 300:
                        counts["ok"] += 1
                    else:
                        bad.append((r.status_code, r.text[:200]))
            except requests.RequestException as e:
                with lock:
                    bad.append(("exception", repr(e)[:200]))
        s.close()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(4)]
    for t in threads:
        t.start()
    try:
        from conftest import wait_until
        wait_until(lambda: counts["ok"] >= 50, timeout=60)
        r = subprocess.run(["make", "--no-print-directory", "-C", stack.root, "restart"],
                           env=stack.env(), capture_output=True, text=True, timeout=240)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        n = counts["ok"]
        wait_until(lambda: counts["ok"] >= n + 50, timeout=60)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    after = pids()
    print("answered 2xx=%d other=%d" % (counts["ok"], len(bad)))
    assert bad == [], bad[:10]
    for name, pid in before.items():
        assert after.get(name) and after[name] != pid, "%s was not restarted" % name
    assert stack_healthy(stack)
