"""The documentation's examples are the real thing.

* The keys documented in doc/config.rst (one ".. confval:: key" each) are
  exactly the keys the loader knows (restmapper --list-config-keys).
* Every YAML file under doc/examples/ passes restmapper --check, every YAML
  shown in the docs is one of those files (pages include them with
  literalinclude; inline YAML blocks are refused), and the complete example
  uses every key.
* The Python worker of the bus protocol page answers rpc calls through a
  restmapper started with its configuration.
* The curl examples of the REST page run against the stack through nginx and
  get the statuses they are documented with ("# expect:" in each script).
"""
import glob
import os
import re
import socket
import subprocess
import sys
import time

import pytest
import requests
import yaml

from conftest import ROOT

DOC = os.path.join(ROOT, "doc")
EXAMPLES = os.path.join(DOC, "examples")
PY = "/usr/bin/python3"


def rst_files():
    return sorted(glob.glob(os.path.join(DOC, "**", "*.rst"), recursive=True))


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def free_aux_port(stack, first=7):
    """A port of the stack's spare range (aux+first .. aux+19) nothing holds now."""
    for port in range(stack.aux_port + first, stack.aux_port + 20):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    pytest.fail("no free port in %d..%d" % (stack.aux_port + first, stack.aux_port + 19))


def restmapper(stack):
    path = os.path.join(stack.bin, "restmapper")
    assert os.access(path, os.X_OK), "%s is missing: build first (make)" % path
    return path


def documented_keys():
    keys = []
    for path in rst_files():
        keys += re.findall(r"^\.\. confval:: *(\S+) *$", read(path), re.M)
    return keys


def included_files():
    """Every file a page pulls in with literalinclude, as absolute paths."""
    out = {}
    for path in rst_files():
        for m in re.finditer(r"^ *\.\. literalinclude:: *(\S+) *$((?:\n +:[^\n]*)*)", read(path), re.M):
            target = os.path.normpath(os.path.join(os.path.dirname(path), m.group(1)))
            out.setdefault(target, []).append((path, m.group(2)))
    return out


def example_yamls():
    return sorted(glob.glob(os.path.join(EXAMPLES, "**", "*.yaml"), recursive=True))


def example_scripts(sub):
    return sorted(glob.glob(os.path.join(EXAMPLES, sub, "*.sh")))


# ---- the endpoints.yaml reference and the loader agree ------------------------


def test_reference_documents_exactly_the_loader_keys(stack):
    out = subprocess.run([restmapper(stack), "--list-config-keys"], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    known = [k for k in out.stdout.split("\n") if k]
    assert known, "restmapper --list-config-keys printed nothing"
    documented = documented_keys()
    dups = sorted({k for k in documented if documented.count(k) > 1})
    assert not dups, "keys documented twice in doc/: %s" % dups
    undocumented = sorted(set(known) - set(documented))
    unknown = sorted(set(documented) - set(known))
    assert not undocumented, "the loader knows keys doc/config.rst does not document: %s" % undocumented
    assert not unknown, "doc/config.rst documents keys the loader does not know: %s" % unknown


def test_every_reference_entry_has_type_and_example():
    text = "\n".join(read(p) for p in rst_files())
    for m in re.finditer(r"^\.\. confval:: *(\S+) *\n((?:\n| {3}.*\n)*)", text, re.M):
        body = m.group(2)
        assert ":Type:" in body, "%s has no :Type:" % m.group(1)
        assert ":Example:" in body, "%s has no :Example:" % m.group(1)
        assert ":Default:" in body or "required" in body, "%s has neither a default nor 'required'" % m.group(1)


# ---- YAML in the docs ---------------------------------------------------------


def test_no_inline_yaml_blocks_in_pages():
    """YAML shown in a page comes from doc/examples/ (checked below), never inline."""
    bad = []
    for path in rst_files():
        for n, line in enumerate(read(path).split("\n"), 1):
            if re.match(r"^ *\.\. (code-block|code|sourcecode|highlight):: *ya?ml *$", line):
                bad.append("%s:%d" % (os.path.relpath(path, ROOT), n))
    assert not bad, "inline YAML blocks (use literalinclude of doc/examples/*.yaml): %s" % bad


def test_yaml_includes_are_checked_examples():
    yamls = set(example_yamls())
    for target, uses in included_files().items():
        for page, options in uses:
            if ":language: yaml" in options or target.endswith((".yaml", ".yml")):
                assert target in yamls, "%s includes %s as YAML, which is not under doc/examples/" % (page, target)
                assert ":lines:" not in options and ":start-after:" not in options, \
                    "%s shows only part of %s: include whole checked files" % (page, target)


def test_every_example_is_shown_in_a_page():
    shown = set(included_files())
    examples = example_yamls() + glob.glob(os.path.join(EXAMPLES, "**", "*.py"), recursive=True) + \
        glob.glob(os.path.join(EXAMPLES, "**", "*.sh"), recursive=True) + \
        glob.glob(os.path.join(EXAMPLES, "**", "*.c"), recursive=True)
    missing = sorted(os.path.relpath(p, ROOT) for p in examples if p not in shown)
    assert not missing, "examples no page includes: %s" % missing


@pytest.mark.parametrize("path", example_yamls(), ids=lambda p: os.path.relpath(p, EXAMPLES))
def test_example_yaml_passes_check(stack, path):
    out = subprocess.run([restmapper(stack), "--check", path], capture_output=True, text=True,
                         timeout=10)
    assert out.returncode == 0, "restmapper --check %s:\n%s%s" % (path, out.stdout, out.stderr)
    assert out.stdout.strip().endswith(": ok")


def yaml_key_paths(node, prefix=""):
    """Dotted key paths of a parsed endpoints.yaml, lists as "[]"; schema
    and config blocks are free-form and not descended into."""
    paths = set()
    if isinstance(node, dict):
        for k, v in node.items():
            p = prefix + str(k)
            if isinstance(v, dict) and p not in ("endpoints[].body", "endpoints[].args", "endpoints[].response",
                                                      "handlers[].config"):
                paths |= yaml_key_paths(v, p + ".")
            elif isinstance(v, list) and v and all(isinstance(i, dict) for i in v):
                for item in v:
                    paths |= yaml_key_paths(item, p + "[].")
            else:
                paths.add(p)
    return paths


def test_complete_example_uses_every_documented_key():
    with open(os.path.join(EXAMPLES, "reference.yaml")) as f:
        used = yaml_key_paths(yaml.safe_load(f))
    missing = sorted(set(documented_keys()) - used)
    assert not missing, "doc/examples/reference.yaml does not use: %s" % missing


def test_check_reports_a_bad_example_with_position(stack, tmp_path):
    """The troubleshooting page's promise: a typo is reported as file:line:col."""
    text = read(os.path.join(EXAMPLES, "minimal.yaml")).replace("method: POST", "methd: POST")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    out = subprocess.run([restmapper(stack), "--check", str(bad)], capture_output=True, text=True,
                         timeout=10)
    assert out.returncode == 1
    line = [n for n, l in enumerate(text.split("\n"), 1) if "methd" in l][0]
    assert re.search(r"%s:%d:\d+: unknown key \"methd\" \(did you mean \"method\"\?\)" % (re.escape(str(bad)), line),
                     out.stdout + out.stderr), out.stdout + out.stderr


# ---- runnable examples --------------------------------------------------------


def expected_statuses(script):
    m = re.search(r"^# expect: (.*)$", read(script), re.M)
    assert m, "%s has no '# expect:' line" % script
    return m.group(1).split()


def run_script(script, base, timeout=30):
    out = subprocess.run(["/bin/sh", script], capture_output=True, text=True, timeout=timeout,
                         env=dict(os.environ, BASE=base))
    statuses = re.findall(r"^HTTP/[0-9.]+ (\d{3})", out.stdout, re.M)
    return out, statuses


def check_script(script, base):
    out, statuses = run_script(script, base)
    want = expected_statuses(script)
    detail = "%s (BASE=%s) exited %d\nstdout:\n%s\nstderr:\n%s" % (
        os.path.relpath(script, ROOT), base, out.returncode, out.stdout[-3000:], out.stderr[-2000:])
    assert out.returncode == 0, detail
    assert not out.stderr.strip(), detail
    if want == ["ok"]:
        assert out.stdout.strip(), detail
    else:
        assert statuses == want, detail
    return out


@pytest.mark.parametrize("script", example_scripts("rest"), ids=os.path.basename)
def test_rest_example_runs_against_the_stack(stack, http, script):
    # The examples read what was stored: make sure there is something.
    for i in range(3):
        r = http.post(stack.nginx + "/api/v1/messages/", json={"docs-seed": i}, timeout=10)
        assert r.status_code == 202, r.text
    check_script(script, stack.nginx + "/api/v1")


def test_rest_examples_pages_are_newest_first_without_overlap(stack, http):
    """get_messages_pages.sh: the second page continues the first."""
    for i in range(4):
        assert http.post(stack.nginx + "/api/v1/messages/", json={"page-seed": i}, timeout=10).status_code == 202
    out = check_script(os.path.join(EXAMPLES, "rest", "get_messages_pages.sh"), stack.nginx + "/api/v1")
    ids = re.findall(r'"id" ?: ?"([^"]+)"', out.stdout)
    assert len(ids) == 4 and len(set(ids)) == 4, out.stdout


def test_idempotency_example_gives_one_id(stack):
    out = check_script(os.path.join(EXAMPLES, "rest", "post_idempotent.sh"), stack.nginx + "/api/v1")
    ids = re.findall(r'"id" ?: ?"([^"]+)"', out.stdout)
    assert len(ids) == 2 and ids[0] == ids[1], out.stdout


def test_python_worker_answers_through_restmapper(stack, proc):
    port = free_aux_port(stack)
    base = "http://127.0.0.1:%d" % port
    cfg = os.path.join(EXAMPLES, "python_worker.yaml")
    env = stack.env(FPESA_HTTP_LISTEN="127.0.0.1:%d" % port)
    proc.start([restmapper(stack), "--config", cfg], env=env, wait_http=base + "/health")
    worker = proc.start([PY, os.path.join(EXAMPLES, "python_worker.py")], env=env)
    out = check_script(os.path.join(EXAMPLES, "python_worker.sh"), base)
    assert '"greeting": "Hello, Ada!"' in out.stdout
    assert '"greeting": "Hello, Grace."' in out.stdout
    assert '"nobody is not here"' in out.stdout
    assert "X-Image-Size: 4x4" in out.stdout and "X-Avatar-Of: Ada" in out.stdout
    # The binary answer is the PNG sent, byte for byte, with its content type.
    with open(os.path.join(EXAMPLES, "avatar.png"), "rb") as f:
        png = f.read()
    r = requests.put(base + "/greet/Grace/avatar", data=png, headers={"Content-Type": "image/png"},
                     timeout=10)
    assert r.status_code == 201 and r.content == png, (r.status_code, r.content[:100])
    assert r.headers["Content-Type"] == "image/png"
    assert r.headers["X-Avatar-Of"] == "Grace"
    assert worker.poll() is None, "the worker exited; log %s" % worker.logfile
    # SIGTERM ends it cleanly, as the page says.
    proc.stop(worker)
    assert worker.returncode == 0, read(worker.logfile)


def test_python_worker_is_the_file_the_page_shows():
    page = read(os.path.join(DOC, "bus-protocol.rst"))
    assert "literalinclude:: examples/python_worker.py" in page
    compile(read(os.path.join(EXAMPLES, "python_worker.py")), "python_worker.py", "exec")


def test_ws_client_example_gets_a_post_then_resumes(stack, http, proc, tmp_path):
    url = "ws://127.0.0.1:%d/ws/v1/messages/" % stack.nginx_port
    client = os.path.join(EXAMPLES, "ws_client.py")
    log = str(tmp_path / "ws.log")
    live = proc.start([PY, client, url, "--count", "1"], log=log)
    # The client is connected once liveupdate counts it; then post.
    deadline = time.time() + 10
    while time.time() < deadline:
        m = re.search(r"^liveupdate_clients (\d+)", requests.get(stack.live + "/metrics", timeout=5).text, re.M)
        if m and int(m.group(1)) > 0:
            break
        time.sleep(0.1)
    r = http.post(stack.nginx + "/api/v1/messages/", json={"ws-example": 1}, timeout=10)
    assert r.status_code == 202, r.text
    first = r.json()["id"]
    live.wait(20)
    assert live.returncode == 0, read(log)
    assert '"id": "%s"' % first in read(log), read(log)
    # Two more while nobody listens; --since the first gives exactly those.
    ids = [http.post(stack.nginx + "/api/v1/messages/", json={"ws-example": i}, timeout=10).json()["id"]
           for i in (2, 3)]
    out = subprocess.run([PY, client, url, "--since", first, "--count", "2"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    got = [l.split('"id": "')[1].split('"')[0] for l in out.stdout.split("\n") if l]
    assert got == ids, out.stdout


def test_wordcount_plugin_builds_loads_and_answers(stack, proc, tmp_path):
    src = os.path.join(EXAMPLES, "wordcount", "wordcount.c")
    plugdir = tmp_path / "plugins"
    plugdir.mkdir()
    # The same flags the Makefile gives a plugin under handlers/.
    cc = subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-fPIC", "-O2", "-Wall", "-Wextra", "-Wshadow",
                         "-Wformat=2", "-Wmissing-prototypes", "-Werror", "-I", os.path.join(ROOT, "include"),
                         "-shared", "-o", str(plugdir / "wordcount.so"), src, "-ljansson"],
                        capture_output=True, text=True, timeout=60)
    assert cc.returncode == 0, cc.stderr
    host = os.path.join(stack.bin, "handler")
    assert os.access(host, os.X_OK), "%s is missing: build first (make)" % host
    cfg = os.path.join(EXAMPLES, "wordcount.yaml")
    port = free_aux_port(stack)
    env = stack.env(FPESA_PLUGIN_DIR=str(plugdir), FPESA_HTTP_LISTEN="127.0.0.1:%d" % port)
    h = proc.start([host, "--config", cfg], env=env)
    base = "http://127.0.0.1:%d" % port
    proc.start([restmapper(stack), "--config", cfg], env=env, wait_http=base + "/health")
    out = check_script(os.path.join(EXAMPLES, "wordcount.sh"), base)
    assert '{"words":6}' in out.stdout, out.stdout
    assert h.poll() is None, read(h.logfile)
    proc.stop(h)
    assert h.returncode == 0, read(h.logfile)
    assert "ok=3" in read(h.logfile), read(h.logfile)


# ---- the cluster page ---------------------------------------------------------


def test_cluster_page_commands_exist():
    """Every scripts/cluster.sh subcommand and make target doc/cluster.rst
    names is one the script and the Makefile have; every environment
    variable it gives the programs is one the loader reads."""
    page = read(os.path.join(DOC, "cluster.rst"))
    script = read(os.path.join(ROOT, "scripts", "cluster.sh"))
    cases = set(re.findall(r"^([a-z-]+)\)", script, re.M))
    named = set(re.findall(r"scripts/cluster\.sh ([a-z-]+)", page))
    assert named and named <= cases, "cluster.sh lacks: %s" % sorted(named - cases)
    makefile = read(os.path.join(ROOT, "Makefile"))
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    made = set(re.findall(r"make ([a-z][a-z-]*)", page))
    assert made and made <= targets, "the Makefile lacks: %s" % sorted(made - targets)
    config = "".join(read(src) for src in glob.glob(os.path.join(ROOT, "common", "config*.c")))
    for var in set(re.findall(r"(FPESA_[A-Z_]+)=", page)):
        assert ('"%s"' % var) in config, var
    # What the page says make up-cluster gives the programs, the script gives.
    for var in ("FPESA_QUEUE_TYPE=quorum", "FPESA_DATABASE_READ_URL", "join_cluster",
                "pg_basebackup", "-R -S"):
        assert var in script, var
