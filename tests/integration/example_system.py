"""An example system (examples/<name>/endpoints.yaml) on spare ports: its own
restmapper and handler host, pointed at the test stack's broker and database."""
import os
import time

import requests
from requests.adapters import HTTPAdapter

from conftest import ROOT, Procs


class ExampleSystem:
    def __init__(self, stack, name, ports, ready, hosts=None):
        """ready(system) returns True once an rpc goes through. hosts: lists
        of handler names, one handler host process each (default: one host
        for every handler), kept in self.hosts."""
        self.stack = stack
        self.name = name
        self.procs = Procs(stack)
        self.config = os.path.join(ROOT, "examples", name, "endpoints.yaml")
        self.env = stack.env(FPESA_PLUGIN_DIR=stack.plugins, FPESA_AMQP_URL=stack.amqp_url,
                             FPESA_DATABASE_URL=stack.database_url, FPESA_CONFIG=self.config)
        os.makedirs(os.path.join(stack.var, "log"), exist_ok=True)
        self.session = requests.Session()
        self.session.mount("http://", HTTPAdapter(pool_maxsize=32))
        try:
            self.hosts = [self.start_host(names) for names in (hosts or [[]])]
            self._start_mapper(ports)
            self._wait(ready)
        except Exception:
            self.close()
            raise

    def log(self, what):
        return os.path.join(self.stack.var, "log", "%s-%s.log" % (self.name, what))

    def start_host(self, names=()):
        args = [os.path.join(self.stack.bin, "handler"), "--config", self.config]
        for n in names:
            args += ["--only", n]
        return self.procs.start(args, env=self.env, log=self.log("handler"))

    def _start_mapper(self, ports):
        # Spare ports are in the ephemeral range: a client connection may hold
        # one for a while, so take the first that binds.
        for port in ports:
            self.port = port
            try:
                self.mapper = self.procs.start(
                    [os.path.join(self.stack.bin, "restmapper"), "--config", self.config],
                    env=dict(self.env, FPESA_HTTP_LISTEN="127.0.0.1:%d" % port),
                    wait_http=self.url("/health"), log=self.log("mapper"))
                return
            except RuntimeError:
                if port == ports[-1]:
                    raise

    def _wait(self, ready, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if ready(self):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError("the %s system did not answer in %ss" % (self.name, timeout))

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def get(self, path, **kw):
        kw.setdefault("timeout", 10)
        return self.session.get(self.url(path), **kw)

    def post(self, path, **kw):
        kw.setdefault("timeout", 10)
        return self.session.post(self.url(path), **kw)

    def close(self):
        self.session.close()
        self.procs.stop_all()


class NginxSystem:
    """A whole system as its users reach it: scripts/stack.sh start apps with
    the example's file, its own var/ folder and ports (nginx, one mapper,
    liveupdate when the file has a live endpoint), on the test stack's broker
    and database. Requests go through its nginx under /api/v1/."""

    def __init__(self, stack, name, slot, config=None):
        first = stack.aux_port + 26 + 3 * slot
        var = os.path.join(stack.var, "sys-" + name)
        self.stack = stack
        self.name = name
        self.base = "http://127.0.0.1:%d" % first
        self.env = stack.env(
            FPESA_STACK="sys-" + name, FPESA_VAR=var, FPESA_PG_DIR=os.path.join(var, "no-pg"),
            FPESA_CONFIG=config or os.path.join(ROOT, "examples", name, "endpoints.yaml"),
            FPESA_NGINX_PORT=first, FPESA_MAPPER_PORT=first + 1,
            FPESA_HTTP_LISTEN="127.0.0.1:%d" % (first + 1), FPESA_MAPPERS=1,
            FPESA_LIVE_PORT=first + 2, FPESA_LIVE_LISTEN="127.0.0.1:%d" % (first + 2),
            # The handler host's /health and /metrics, apart from the stack's.
            FPESA_HANDLER_PORT=stack.aux_port + 40 + slot)
        self.session = requests.Session()
        self._script("stop", "apps")
        r = self._script("start", "apps")
        if r.returncode != 0:
            self._script("stop", "apps")
            raise RuntimeError("the %s system did not start: %s%s" % (name, r.stdout, r.stderr))

    def _script(self, *args):
        import subprocess
        return subprocess.run([os.path.join(ROOT, "scripts", "stack.sh"), *args], env=self.env,
                              capture_output=True, text=True, timeout=120)

    def url(self, path):
        return self.base + "/api/v1" + path

    def get(self, path, **kw):
        kw.setdefault("timeout", 10)
        return self.session.get(self.url(path), **kw)

    def post(self, path, **kw):
        kw.setdefault("timeout", 30)
        return self.session.post(self.url(path), **kw)

    def close(self):
        self.session.close()
        self._script("stop", "apps")
