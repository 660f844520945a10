"""Shared fixtures for the integration tests.

scripts/test.sh starts one whole stack (RabbitMQ, PostgreSQL, handler host,
two restmapper instances, liveupdate, nginx) and exports where everything is
through FPESA_* variables (see scripts/env.sh). Tests talk to that stack; a
test that needs a program with another configuration starts it itself on one
of the spare ports (FPESA_AUX_PORT and up) with the `proc` fixture.
"""
import json
import os
import socket
import subprocess
import threading
import time
import uuid

import pika
import psycopg2
import pytest
import requests

ROOT = os.environ.get("FPESA_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))


def _port(name, default):
    return int(os.environ.get(name, default))


class Stack:
    root = ROOT
    build = BUILD
    bin = os.path.join(BUILD, "bin")
    plugins = os.path.join(BUILD, "plugins")
    test_plugins = os.path.join(BUILD, "tests", "plugins")
    config = os.environ.get("FPESA_CONFIG", os.path.join(ROOT, "endpoints.yaml"))
    var = os.environ.get("FPESA_VAR", os.path.join(ROOT, "var", "test"))
    amqp_port = _port("FPESA_AMQP_PORT", 21600)
    pg_port = _port("FPESA_PG_PORT", 21603)
    mapper_port = _port("FPESA_MAPPER_PORT", 21604)
    mapper2_port = _port("FPESA_MAPPER2_PORT", 21605)
    live_port = _port("FPESA_LIVE_PORT", 21606)
    handler_port = _port("FPESA_HANDLER_PORT", 21607)
    nginx_port = _port("FPESA_NGINX_PORT", 21608)
    aux_port = _port("FPESA_AUX_PORT", 21610)
    amqp_url = os.environ.get("FPESA_AMQP_URL", "amqp://guest:guest@127.0.0.1:%d/" % amqp_port)
    database_url = os.environ.get("FPESA_DATABASE_URL",
                                  "postgresql://fpesa@127.0.0.1:%d/fpesa" % pg_port)

    @property
    def mapper(self):
        return "http://127.0.0.1:%d" % self.mapper_port

    @property
    def nginx(self):
        return "http://127.0.0.1:%d" % self.nginx_port

    @property
    def live(self):
        return "http://127.0.0.1:%d" % self.live_port

    @property
    def handler(self):
        """The stack's handler host: /health and /metrics."""
        return "http://127.0.0.1:%d" % self.handler_port

    def env(self, **extra):
        """The environment our programs get, plus overrides."""
        e = dict(os.environ)
        e.update({k: str(v) for k, v in extra.items()})
        return e

    def script(self, *args, check=True, timeout=600):
        """Runs scripts/stack.sh with this stack's environment (e.g. stop-rabbit)."""
        return subprocess.run([os.path.join(ROOT, "scripts", "stack.sh"), *args],
                              env=self.env(), check=check, capture_output=True, text=True,
                              timeout=timeout)

    def start_rabbit(self, attempts=4):
        """Starts the stack's broker again after a test stopped it. The AMQP
        port lies in the kernel's ephemeral range, so another program's
        outgoing connection may hold it for a while (TIME_WAIT); the broker
        then cannot listen yet, and starting it again a little later works."""
        for _ in range(attempts):
            r = self.script("start-rabbit", check=False)
            if r.returncode == 0:
                return
            time.sleep(20)
        raise AssertionError("RabbitMQ did not start again: %s" % (r.stdout + r.stderr)[-2000:])

    def _listening(self, port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return True
        except OSError:
            return False

    def ensure_servers(self):
        """Starts the broker and the database again when a test that stopped
        one of them failed before it could start it itself. Only a stack
        scripts/test.sh started (FPESA_STACK=test) is touched."""
        if os.environ.get("FPESA_STACK") != "test":
            return
        if not self._listening(self.amqp_port):
            self.start_rabbit()
        if not self._listening(self.pg_port):
            self.script("start-pg", check=False)


@pytest.fixture(scope="session")
def stack():
    return Stack()


@pytest.fixture
def http():
    s = requests.Session()
    yield s
    s.close()


@pytest.fixture
def amqp(stack):
    """A blocking pika connection to the stack's broker."""
    conn = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
    yield conn
    if conn.is_open:
        conn.close()


@pytest.fixture
def db(stack):
    """An autocommit psycopg2 connection to the stack's database."""
    conn = psycopg2.connect(stack.database_url)
    conn.autocommit = True
    yield conn
    conn.close()


class Procs:
    def __init__(self, stack):
        self.stack = stack
        self.procs = []

    def start(self, args, env=None, log=None, wait_http=None, timeout=15):
        """Starts args in the background; when wait_http is a URL, waits until it answers."""
        logf = open(log or os.path.join(self.stack.var, "log", "test-%s.log" % uuid.uuid4().hex[:8]), "ab")
        p = subprocess.Popen(args, env=env or self.stack.env(), stdout=logf, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        p.logfile = logf.name
        self.procs.append(p)
        if wait_http:
            deadline = time.time() + timeout
            while time.time() < deadline:
                if p.poll() is not None:
                    raise RuntimeError("%s exited with %s; log %s" % (args[0], p.returncode, logf.name))
                try:
                    requests.get(wait_http, timeout=1)
                    return p
                except requests.RequestException:
                    time.sleep(0.1)
            raise RuntimeError("%s did not answer %s in %ss" % (args[0], wait_http, timeout))
        return p

    def stop(self, p, sig=15, timeout=10):
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p)


@pytest.fixture
def proc(stack):
    """Starts extra programs for one test and stops them afterwards."""
    ps = Procs(stack)
    yield ps
    ps.stop_all()


def wait_until(pred, timeout=10.0, interval=0.05, what=None):
    """Polls pred until it returns something truthy; returns it, or fails the
    test (with what(), when given, saying what was seen instead)."""
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() > deadline:
            pytest.fail("condition not met within %.1fs%s" % (timeout, "; " + what() if what else ""))
        time.sleep(interval)


def metric(url, name):
    """The value of one sample (name with its labels, as printed) on url's
    /metrics."""
    text = requests.get(url + "/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no metric %s on %s/metrics" % (name, url))


def write_config(tmp_path, text, name="endpoints.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def jdump(o):
    return json.dumps(o, separators=(",", ":"))


def stack_healthy(stack, timeout=60.0):
    """Waits until the stack's restmappers and liveupdate answer /health with
    200 (after a test restarted the broker they reconnect with backoff)."""
    urls = [stack.mapper + "/health", "http://127.0.0.1:%d/health" % stack.mapper2_port,
            stack.live + "/health"]
    deadline = time.time() + timeout
    pending = list(urls)
    while pending and time.time() < deadline:
        still = []
        for u in pending:
            try:
                if requests.get(u, timeout=1).status_code != 200:
                    still.append(u)
            except requests.RequestException:
                still.append(u)
        pending = still
        if pending:
            time.sleep(0.2)
    return not pending


@pytest.fixture(scope="module", autouse=True)
def _healthy_stack_per_module(stack):
    """Every test file starts with a healthy stack, whatever the file before
    it did to the broker or the database."""
    stack.ensure_servers()
    assert stack_healthy(stack), "the test stack is not healthy before this test file"
    yield


@pytest.fixture(autouse=True)
def _servers_back_after_each_test(stack):
    """A test that stops the broker or the database and then fails does not
    take the tests after it down with it."""
    yield
    stack.ensure_servers()


@pytest.fixture(autouse=True)
def _no_thread_left_running():
    """A test stops every thread it starts (or makes it a daemon): a
    non-daemon thread still running when the test is over would keep pytest
    from exiting after the last test, so it is an error of that test."""
    before = set(threading.enumerate())
    yield
    left = [t for t in threading.enumerate()
            if t not in before and not t.daemon and t.is_alive()]
    deadline = time.time() + 10
    for t in left:
        t.join(max(0.1, deadline - time.time()))
    left = [t.name for t in left if t.is_alive()]
    assert not left, "the test left non-daemon threads running: %s" % left


def pytest_terminal_summary(terminalreporter):
    """The fault tests' table (sent, 202, 503s, stored once/missing/
    duplicated, max latency, hung), one row per fault that ran."""
    from loadgen import FAULT_ROWS, fault_table
    if FAULT_ROWS:
        terminalreporter.write_sep("=", "faults under a counting load")
        terminalreporter.write_line(fault_table())
