"""Helpers for the timers tests: the timers system (examples/timers/endpoints.yaml)
on spare ports, and an HTTP receiver for its webhooks."""
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from conftest import Procs

TIMERS_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "timers",
                             "endpoints.yaml")


class Receiver:
    """Records every POST it gets as (time, path, body). A path listed in
    `fail` answers 500 that many times before it answers 204."""

    def __init__(self, port):
        self.calls = []
        self.fail = {}
        self.lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                t = time.time()
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = None
                with outer.lock:
                    outer.calls.append((t, self.path, doc))
                    left = outer.fail.get(self.path, 0)
                    if left:
                        outer.fail[self.path] = left - 1
                status = 500 if left else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            # Many webhooks arrive at once: a backlog of 5 would drop some.
            request_queue_size = 1024

        # Spare ports are in the ephemeral range: when a client connection
        # holds this one, any free port does as well.
        try:
            self.server = Server(("127.0.0.1", port), H)
        except OSError:
            self.server = Server(("127.0.0.1", 0), H)
        port = self.server.server_address[1]
        self.server.daemon_threads = True
        self.port = port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def calls_to(self, path):
        with self.lock:
            return [c for c in self.calls if c[1] == path]

    def ids(self, prefix):
        """{timer id: [receive times]} of the calls under prefix."""
        out = {}
        with self.lock:
            for t, path, doc in self.calls:
                if path.startswith(prefix) and isinstance(doc, dict):
                    out.setdefault(doc.get("id"), []).append(t)
        return out

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Timers:
    """The timers system on spare ports: a restmapper, a host for the create
    and get handlers and a host for the schedulers (so a test can kill it)."""

    def __init__(self, stack, ports):
        self.stack = stack
        self.procs = Procs(stack)
        try:
            self._start(ports)
        except Exception:
            self.procs.stop_all()
            raise

    def _start(self, ports):
        stack = self.stack
        self.config = os.path.abspath(TIMERS_CONFIG)
        self.env = stack.env(FPESA_PLUGIN_DIR=stack.plugins, FPESA_AMQP_URL=stack.amqp_url,
                             FPESA_DATABASE_URL=stack.database_url, FPESA_CONFIG=self.config)
        os.makedirs(os.path.join(stack.var, "log"), exist_ok=True)
        self.handler = os.path.join(stack.bin, "handler")
        self.api = self.procs.start([self.handler, "--config", self.config, "--only", "timer_create",
                                     "--only", "timer_get", "--only", "idempotency"], env=self.env,
                                    log=os.path.join(stack.var, "log", "timers-api.log"))
        self.scheduler = None
        self.start_scheduler()
        # Spare ports are in the ephemeral range: a busy machine's client
        # connection may hold one for a while, so take the first that binds.
        for port in ports:
            self.port = port
            try:
                self.mapper = self.procs.start(
                    [os.path.join(stack.bin, "restmapper"), "--config", self.config],
                    env=dict(self.env, FPESA_HTTP_LISTEN="127.0.0.1:%d" % port),
                    wait_http=self.url("/health"),
                    log=os.path.join(stack.var, "log", "timers-mapper.log"))
                break
            except RuntimeError:
                if port == ports[-1]:
                    raise
        self.session = requests.Session()
        self.wait_ready()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def start_scheduler(self):
        self.scheduler = self.procs.start([self.handler, "--config", self.config, "--only",
                                           "timer_scheduler"], env=self.env,
                                          log=os.path.join(self.stack.var, "log", "timers-scheduler.log"))
        return self.scheduler

    def wait_ready(self, timeout=20):
        """Until an rpc goes through (the handler host is consuming)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                r = self.session.get(self.url("/timer/00000000-0000-0000-0000-000000000000"), timeout=5)
                if r.status_code == 404:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError("the timers system did not answer in %ss" % timeout)

    def create(self, url, hours=0, minutes=0, seconds=1, **extra):
        body = {"hours": hours, "minutes": minutes, "seconds": seconds, "url": url}
        body.update(extra)
        return self.session.post(self.url("/timer"), json=body, timeout=10)

    def get(self, timer_id):
        return self.session.get(self.url("/timer/%s" % timer_id), timeout=10)

    def close(self):
        self.session.close()
        self.procs.stop_all()
