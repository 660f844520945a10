"""SIGHUP reloads every program, as nginx does: under a steady load through
nginx, the stack's programs are sent SIGHUP (make reload) while the file
changes (a route added, a schema changed, a handler added and one changed,
a live channel added, then the file broken). No request fails, the new
routes answer, a websocket client stays connected throughout, and the broken
file is refused with positions in every program's log while the previous
configuration keeps serving."""
import json
import os
import re
import subprocess
import threading

import pytest
import requests
import websocket

from conftest import stack_healthy, wait_until

PROGRAMS = ("handler", "restmapper", "restmapper2", "liveupdate")

# A publish route with a live channel, and an rpc route answered by a second
# instance of the echo plugin: both are new to the running programs.
ADDED_ENDPOINTS = """endpoints:
  - path: /reload-probe/
    method: POST
    mode: publish
    live: true
    body:
      type: object
      required: [x]

  - path: /reload-echo/
    method: POST
    mode: rpc
    timeout: 5s
    body:
      type: object

"""

ADDED_HANDLER = """handlers:
  - name: reload_echo
    plugin: echo.so
    queue: "/reload-echo/:POST"
"""


def log_path(stack, name):
    return os.path.join(stack.var, "log", name + ".log")


def log_count(stack, name, needle):
    try:
        with open(log_path(stack, name), errors="replace") as f:
            return f.read().count(needle)
    except OSError:
        return 0


def log_text(stack, name):
    with open(log_path(stack, name), errors="replace") as f:
        return f.read()


def script(stack, *args, config=None, timeout=240):
    env = stack.env(FPESA_CONFIG=config) if config else stack.env()
    r = subprocess.run([os.path.join(stack.root, "scripts", "stack.sh"), *args], env=env,
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r


def make_reload(stack):
    r = subprocess.run(["make", "--no-print-directory", "-C", stack.root, "reload"], env=stack.env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in PROGRAMS:
        assert "%s reloading" % name in r.stdout, r.stdout


def reload_and_wait(stack, needle):
    """make reload, then waits until every program logged needle once more."""
    before = {n: log_count(stack, n, needle) for n in PROGRAMS}
    make_reload(stack)
    for n in PROGRAMS:
        wait_until(lambda: log_count(stack, n, needle) > before[n], timeout=60)


class Load:
    """Clients posting and reading through nginx until stopped; every answer
    is counted, every non-2xx kept."""

    def __init__(self, stack, clients=4):
        self.stack = stack
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.bad = []
        self.extra = []  # (method, path, body): routes added while running
        self.threads = [threading.Thread(target=self.client, args=(k,), daemon=True)
                        for k in range(clients)]

    def client(self, k):
        s = requests.Session()
        base = self.stack.nginx + "/api/v1"
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                with self.lock:
                    extra = list(self.extra)
                if extra and i % 4 == 0:
                    method, path, body = extra[i // 4 % len(extra)]
                    r = s.request(method, base + path, json=body, timeout=30)
                elif i % 3 == 0:
                    r = s.get(base + "/messages/?limit=1", timeout=30)
                elif i % 5 == 0:
                    r = s.post(base + "/echo/w%d" % k, json={"i": i}, timeout=30)
                else:
                    r = s.post(base + "/messages/", json={"reload": k, "i": i}, timeout=30)
                with self.lock:
                    if 200 <= r.status_code < 300:
                        self.ok += 1
                    else:
                        self.bad.append((r.request.method, r.request.path_url, r.status_code,
                                         r.text[:200]))
            except requests.RequestException as e:
                with self.lock:
                    self.bad.append(("exception", repr(e)[:200]))
        s.close()

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def count(self):
        with self.lock:
            return self.ok


class Reader:
    """Reads a websocket until stopped, keeping the ids it got and how it ended."""

    def __init__(self, url):
        self.ws = websocket.create_connection(url, timeout=30)
        self.ws.settimeout(1)
        self.ids = set()
        self.ended = None
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            try:
                frame = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except Exception as e:  # the connection ended
                self.ended = repr(e)[:200]
                return
            try:
                mid = json.loads(frame).get("id")
            except (ValueError, AttributeError):
                continue
            with self.lock:
                self.ids.add(mid)

    def got(self, mid):
        with self.lock:
            return mid in self.ids

    def close(self):
        self.stop.set()
        self.thread.join(30)
        self.ws.close()


@pytest.mark.timeout(600)
def test_reload_under_load_fails_nothing(stack, tmp_path):
    with open(stack.config) as f:
        original = f.read()
    config = str(tmp_path / "endpoints.yaml")
    with open(config, "w") as f:
        f.write(original)
    # The programs run on a copy of the file from here on (a rolling restart,
    # itself without a failure), so that the test may edit it.
    script(stack, "restart", config=config)
    load = Load(stack)
    ws = None
    try:
        ws = Reader("ws://127.0.0.1:%d/ws/v1/messages/" % stack.nginx_port)
        load.start()
        wait_until(lambda: load.count() >= 50, timeout=60)

        # 1. A route, an rpc route with a new handler, a live channel, and a
        #    changed handler (one more messages_get instance: its instances
        #    start anew beside the old ones, which drain).
        text = original.replace("endpoints:\n", ADDED_ENDPOINTS, 1)
        text = text.replace("handlers:\n", ADDED_HANDLER, 1)
        text = re.sub(r'(queue: "/messages/:GET"\n    instances: )2', r"\g<1>3", text, count=1)
        assert text.count("instances: 3") == 1
        with open(config, "w") as f:
            f.write(text)
        reload_and_wait(stack, "reloaded file=")
        assert "started=2 draining=1" in log_text(stack, "handler").split("reloaded file=")[-1]
        for port in (stack.mapper_port, stack.mapper2_port):
            r = requests.post("http://127.0.0.1:%d/reload-probe/" % port, json={"x": 1}, timeout=10)
            assert r.status_code == 202, r.text
        r = requests.post(stack.nginx + "/api/v1/reload-echo/", json={"hello": 1}, timeout=30)
        assert r.status_code == 200, r.text
        # The websocket client of a channel that still exists is still
        # connected and gets what is posted now.
        r = requests.post(stack.nginx + "/api/v1/messages/", json={"after": "reload"}, timeout=10)
        mid = r.json()["id"]
        wait_until(lambda: ws.got(mid), timeout=30)
        # The new live channel serves.
        probe = Reader("ws://127.0.0.1:%d/ws/v1/reload-probe/" % stack.nginx_port)
        try:
            pid = requests.post(stack.nginx + "/api/v1/reload-probe/", json={"x": 2},
                                timeout=10).json()["id"]
            wait_until(lambda: probe.got(pid), timeout=30)
        finally:
            probe.close()
        with load.lock:
            load.extra.append(("POST", "/reload-probe/", {"x": 3, "y": 3}))
            load.extra.append(("POST", "/reload-echo/", {"e": 1}))
        n = load.count()
        wait_until(lambda: load.count() >= n + 100, timeout=60)

        # 2. A changed schema: the probe now requires y as well.
        text2 = text.replace("required: [x]", "required: [x, y]", 1)
        with open(config, "w") as f:
            f.write(text2)
        reload_and_wait(stack, "reloaded file=")
        r = requests.post(stack.nginx + "/api/v1/reload-probe/", json={"x": 1}, timeout=10)
        assert r.status_code == 400 and "y" in r.json()["error"]["description"], r.text
        n = load.count()
        wait_until(lambda: load.count() >= n + 100, timeout=60)

        # 3. A broken file: refused by every program, with positions; the
        #    previous configuration keeps serving.
        broken = text2.replace("    mode: rpc\n    timeout: 5s\n", "    mode: rcp\n    timeout: 5s\n", 1)
        line = broken.splitlines().index("    mode: rcp") + 1
        with open(config, "w") as f:
            f.write(broken)
        reload_and_wait(stack, "reload refused; the running configuration stays")
        want = "reload refused: %s:%d:11: unknown mode" % (config, line)
        for name in PROGRAMS:
            assert want in log_text(stack, name), (name, want)
        r = requests.post(stack.nginx + "/api/v1/reload-probe/", json={"x": 1, "y": 2}, timeout=10)
        assert r.status_code == 202, r.text
        r = requests.post(stack.nginx + "/api/v1/reload-echo/", json={"still": 1}, timeout=30)
        assert r.status_code == 200, r.text
        n = load.count()
        wait_until(lambda: load.count() >= n + 100, timeout=60)
        # Still the same websocket connection, still fed.
        mid = requests.post(stack.nginx + "/api/v1/messages/", json={"after": "broken"},
                            timeout=10).json()["id"]
        wait_until(lambda: ws.got(mid), timeout=30)
        assert ws.ended is None, ws.ended
    finally:
        load.finish()
        if ws is not None:
            ws.close()
        # Back to the stack's own file.
        script(stack, "restart")
    print("reload under load: 2xx=%d other=%d" % (load.ok, len(load.bad)))
    assert load.bad == [], load.bad[:10]
    assert load.ok >= 350
    assert stack_healthy(stack)
