"""Fault tests: a counted load of POSTs with unique ids runs through each
fault; afterwards every id answered 202 must be in the table exactly once,
and every request that was not answered 202 must have failed with a JSON
error, not a hang.

These run last (the file name sorts last) because they stop and start the
stack's servers. `make test` runs them short; `make faults` sets
FPESA_FAULTS_FULL=1 for longer loads.
"""
import json
import os
import signal
import threading
import time

import pytest
import websocket

from conftest import stack_healthy, wait_until
from loadgen import FAULT_NOTES, Load, fault_row, wait_stored

FULL = os.environ.get("FPESA_FAULTS_FULL") == "1"
TOTAL = 20000 if FULL else 1500
THREADS = 8
# Requests per second: a load lasts TOTAL / RATE seconds (80 s full, 10 s
# short), long enough to span each fault.
RATE = 250 if FULL else 150


def run_with_fault(stack, db, fault, url=None, settle_s=1.0, name=None, total=None, marked=None,
                   check=None):
    """Runs a counted load of total POSTs (TOTAL by default) through fault(load),
    records its table row under name and checks that every id answered 202
    is stored exactly once, that no id answered 503 "not accepted" is
    stored, and that nothing hung. check(load), when given, runs after the
    load and before the store is read."""
    total = total or TOTAL
    load = Load(url or stack.nginx + "/api/v1/messages/", total, threads=THREADS,
                marked=marked, rate=RATE).start()
    try:
        # Let some load through before the fault, and keep it running across it.
        wait_until(lambda: load.sent() > total // 5 or not any(t.is_alive() for t in load._workers),
                   timeout=120)
        fault(load)
        load.join()
    finally:
        load.stop()
    time.sleep(settle_s)
    print(load.summary())
    assert not any(t.is_alive() for t in load._workers), "a load worker did not end: " + load.summary()
    if check:
        check(load)
    counts = wait_stored(stack.database_url, load.accepted, timeout_s=120)
    refused = wait_stored(stack.database_url, load.not_accepted, timeout_s=0.1) \
        if load.not_accepted else {}
    fault_row(name or fault.__name__, load, counts)
    assert load.hangs == 0, load.summary()
    assert not load.bad, "answers that were neither 202 nor a JSON error: %r" % load.bad[:5]
    assert load.accepted, "nothing was accepted: " + load.summary()
    missing = [i for i in load.accepted if i not in counts]
    doubled = [i for i, c in counts.items() if c != 1]
    assert not missing, "%d accepted ids are not stored, e.g. %s" % (len(missing), missing[:3])
    assert not doubled, "ids stored more than once: %s" % doubled[:3]
    assert not refused, "ids answered 503 (not accepted) were stored: %s" % list(refused)[:3]
    return load


def ensure_apps(stack):
    r = stack.script("start", "apps", check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def pid_of(stack, name):
    with open(os.path.join(stack.var, "run", name + ".pid")) as f:
        return int(f.read().strip())


def test_rabbitmq_restart_mid_load(stack, db):
    def fault(load):
        stack.script("stop-rabbit")
        time.sleep(2)
        stack.start_rabbit()
    try:
        run_with_fault(stack, db, fault, name="broker restart")
    finally:
        stack.script("start-rabbit", check=False)
        ensure_apps(stack)


def test_postgresql_restart_mid_load(stack, db):
    def fault(load):
        stack.script("stop-pg")
        time.sleep(2)
        stack.script("start-pg")
    try:
        run_with_fault(stack, db, fault, name="PostgreSQL restart")
    finally:
        stack.script("start-pg", check=False)


def test_handler_host_killed_mid_batch(stack, db):
    def fault(load):
        os.kill(pid_of(stack, "handler"), signal.SIGKILL)
        time.sleep(1)
        ensure_apps(stack)
    try:
        run_with_fault(stack, db, fault, name="handler host kill -9")
    finally:
        ensure_apps(stack)


def test_mapper_instance_killed_behind_nginx(stack, db):
    def fault(load):
        os.kill(pid_of(stack, "restmapper2"), signal.SIGKILL)
    try:
        load = run_with_fault(stack, db, fault, name="restmapper kill -9")
        # The surviving instance kept serving: most requests were accepted.
        assert len(load.accepted) > TOTAL // 2, load.summary()
    finally:
        ensure_apps(stack)


def test_liveupdate_restart_resume_with_since(stack, http):
    """A websocket client that reconnects with since=<last id> after a
    liveupdate restart sees every accepted message exactly once."""
    ws_url = "ws://127.0.0.1:%d/ws/v1/messages/" % stack.nginx_port
    got, seen_lock = [], threading.Lock()
    stop = threading.Event()
    connected = threading.Event()

    def client():
        last = None
        while not stop.is_set():
            url = ws_url + ("?since=" + last if last else "")
            try:
                ws = websocket.create_connection(url, timeout=2)
            except Exception:
                time.sleep(0.2)
                continue
            connected.set()
            try:
                while not stop.is_set():
                    try:
                        frame = ws.recv()
                    except websocket.WebSocketTimeoutException:
                        continue
                    if not frame:
                        break
                    msg = json.loads(frame)
                    if "id" not in msg:
                        continue
                    with seen_lock:
                        got.append(msg["id"])
                    last = msg["id"]
            except Exception:
                pass
            finally:
                try:
                    ws.close()
                except Exception:
                    pass

    t = threading.Thread(target=client, daemon=True)
    t.start()
    accepted = []
    n = 400 if FULL else 120
    try:
        assert connected.wait(60), "the websocket client could not connect"
        # The client sees new messages before the counted ones are sent.
        probe = http.post(stack.nginx + "/api/v1/messages/", json={"probe": True}, timeout=30)
        assert probe.status_code == 202, probe.text
        wait_until(lambda: probe.json()["id"] in got, timeout=60)
        for i in range(n):
            r = http.post(stack.nginx + "/api/v1/messages/", json={"live": i}, timeout=60)
            if r.status_code == 202:
                accepted.append(r.json()["id"])
            if i == n // 2:
                stack.script("stop-one", "liveupdate")
                ensure_apps(stack)
            time.sleep(0.01)
        wait_until(lambda: set(accepted) <= set(got), timeout=60)
    finally:
        stop.set()
        t.join(5)
        ensure_apps(stack)
    mine = [i for i in got if i in set(accepted)]
    assert len(mine) == len(set(mine)), "duplicates at the seam"
    assert set(mine) == set(accepted)


# ---- the database's state is never blamed on a message ----------------------

FAULT_S = 15 if FULL else 3


def pg_set_read_only(db, on):
    """The whole server read-only for every session, as a hot standby after
    a failover answers (SQLSTATE 25006 on every write)."""
    with db.cursor() as cur:
        if on:
            cur.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        else:
            cur.execute("ALTER SYSTEM RESET default_transaction_read_only")
        cur.execute("SELECT pg_reload_conf()")


def test_postgresql_read_only(stack, db):
    def fault(load):
        pg_set_read_only(db, True)
        try:
            load.sleep(FAULT_S)
        finally:
            pg_set_read_only(db, False)
    try:
        run_with_fault(stack, db, fault, name="PostgreSQL read-only %ds" % FAULT_S)
        assert log_has(os.path.join(stack.var, "log", "handler.log"), "read-only transaction"), \
            "the fault did not happen"
    finally:
        pg_set_read_only(db, False)


APP_ROLE = "fpesa_faults_app"


def log_has(path, text):
    try:
        with open(path, errors="replace") as f:
            return text in f.read()
    except OSError:
        return False


def test_postgresql_privileges_revoked_and_restored(stack, db, proc):
    """The stack's handler host is replaced by one that connects as a role
    without superuser rights; INSERT on the table is revoked mid-load and
    granted again later (SQLSTATE 42501 meanwhile)."""
    with db.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,))
        if not cur.fetchone():
            cur.execute("CREATE ROLE %s LOGIN" % APP_ROLE)
        cur.execute("GRANT USAGE, CREATE ON SCHEMA public TO %s" % APP_ROLE)
        cur.execute("GRANT SELECT, INSERT ON messages, schema_migrations TO %s" % APP_ROLE)
        # The same host answers the Idempotency-Key claims of the load.
        cur.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO %s" % APP_ROLE)
    url = stack.database_url.replace("postgresql://fpesa@", "postgresql://%s@" % APP_ROLE)
    assert url != stack.database_url
    stack.script("stop-one", "handler")
    try:
        host = proc.start([os.path.join(stack.bin, "handler"), "--config", stack.config,
                           "--only", "messages_post", "--only", "idempotency"],
                          env=stack.env(FPESA_DATABASE_URL=url))
        wait_until(lambda: log_has(host.logfile, "consuming handler=messages_post"), timeout=30)

        def fault(load):
            with db.cursor() as cur:
                cur.execute("REVOKE INSERT ON messages FROM %s" % APP_ROLE)
            try:
                load.sleep(FAULT_S)
            finally:
                with db.cursor() as cur:
                    cur.execute("GRANT INSERT ON messages TO %s" % APP_ROLE)
        run_with_fault(stack, db, fault, name="PostgreSQL privileges revoked %ds" % FAULT_S)
        assert log_has(host.logfile, "permission denied"), "the fault did not happen"
    finally:
        with db.cursor() as cur:
            cur.execute("GRANT INSERT ON messages TO %s" % APP_ROLE)
        proc.stop_all()
        ensure_apps(stack)


# ---- a crashing plugin costs only its own handler ---------------------------

CRASHY_Q = "fpesa-faults-crashy"


def test_plugin_segfault_on_one_message(stack, db, proc, amqp, tmp_path):
    """A host runs messages_post and a plugin that segfaults on one marked
    message among the load, both fed by the same fanout exchange. The
    crashing instance is restarted, the poison ends in its dead-letter queue
    after crash_limit crashes with the reason in its headers, messages_post
    never stops, and every accepted message is stored once."""
    ch = amqp.channel()
    ch.queue_declare(CRASHY_Q, durable=True)
    ch.queue_bind(CRASHY_Q, "/messages/:POST", routing_key=CRASHY_Q)
    ch.queue_purge(CRASHY_Q)
    for name in (CRASHY_Q + ".dlq",):
        ch.queue_declare(name, durable=True)
        ch.queue_purge(name)
    config = tmp_path / "crashy.yaml"
    config.write_text("""bus: {url: "%s"}
database: {url: "%s"}
endpoints:
  - {path: /messages/, method: POST, mode: publish}
handlers:
  - {name: messages_post, plugin: messages_post.so, queue: "/messages/:POST", batch: 500,
     prefetch: 1000}
  - {name: crashy, plugin: "%s", queue: "%s", batch: 50, prefetch: 200, crash_limit: 3}
  - {name: idempotency, plugin: idempotency.so, queue: fpesa.idempotency}
""" % (stack.amqp_url, stack.database_url, os.path.join(stack.test_plugins, "crashy.so"),
       CRASHY_Q))
    total = 10000 if FULL else TOTAL
    metrics_url = "http://127.0.0.1:%d/metrics" % (stack.aux_port + 15)
    stack.script("stop-one", "handler")
    try:
        host = proc.start([os.path.join(stack.bin, "handler"), "--config", str(config)],
                          env=stack.env(FPESA_PLUGIN_DIR=stack.plugins,
                                        FPESA_HANDLER_LISTEN="127.0.0.1:%d" % (stack.aux_port + 15)))
        wait_until(lambda: log_has(host.logfile, "consuming handler=crashy") and
                   log_has(host.logfile, "consuming handler=messages_post"), timeout=30)

        def fault(load):
            pass  # the marked message is the fault

        load = run_with_fault(stack, db, fault, total=total, marked={total // 2: {"crash": "segv"}},
                              name="plugin segfault on 1 of %d" % total)
        poison = load.marked_ids.get(total // 2)
        assert poison in load.accepted, "the marked message was not accepted: " + load.summary()

        def dead():
            m = ch.basic_get(CRASHY_Q + ".dlq", auto_ack=True)
            return m if m[0] else None
        method, props, body = wait_until(dead, timeout=90)
        assert props.message_id == poison
        assert props.headers["x-fpesa-crashes"] == 3, props.headers
        assert "crashed 3 times" in props.headers["x-fpesa-death-reason"], props.headers
        assert ch.basic_get(CRASHY_Q + ".dlq", auto_ack=True)[0] is None, "more than one dead"
        # Everything else went through the crashing handler too.
        wait_until(lambda: ch.queue_declare(CRASHY_Q, passive=True).method.message_count == 0,
                   timeout=60)
        log = open(host.logfile, errors="replace").read()
        assert "instance crashed handler=crashy" in log and "signal=SIGSEGV" in log
        assert poison in log.split("instance crashed handler=crashy", 1)[1]
        assert "instance crashed handler=messages_post" not in log
        assert host.poll() is None, "the host itself died"
        # The host's metrics count across its instances (child processes),
        # the crashed ones included.
        import requests

        def sample(family, handler):
            text = requests.get(metrics_url, timeout=10).text
            want = '%s{handler="%s"} ' % (family, handler)
            return next(float(l[len(want):]) for l in text.splitlines() if l.startswith(want))
        wait_until(lambda: sample("fpesa_handler_messages_acked_total", "messages_post") >=
                   len(load.accepted), timeout=60)
        print("crashy: restarts=%d dead-lettered=%d acked=%d" % (
            sample("fpesa_handler_crash_restarts_total", "crashy"),
            sample("fpesa_handler_messages_dead_lettered_total", "crashy"),
            sample("fpesa_handler_messages_acked_total", "crashy")))
        assert sample("fpesa_handler_crash_restarts_total", "crashy") >= 3
        assert sample("fpesa_handler_crash_restarts_total", "messages_post") == 0
        assert sample("fpesa_handler_messages_dead_lettered_total", "crashy") == 1
    finally:
        proc.stop_all()
        try:
            ch.queue_unbind(CRASHY_Q, "/messages/:POST", routing_key=CRASHY_Q)
            ch.queue_delete(CRASHY_Q)
            ch.queue_delete(CRASHY_Q + ".dlq")
        except Exception:
            pass
        ensure_apps(stack)


# ---- the broker: blocked, frozen, killed --------------------------------------

BROKER_S = 45 if FULL else 5
FROZEN_S = 20 if FULL else 5


def beam_pid(stack):
    with open(os.path.join(stack.var, "rabbitmq", "rabbit.pid")) as f:
        return int(f.read().strip())


def rabbitmqctl(stack, *args):
    r = stack.script("rabbitmqctl", *args, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


class HealthWatch:
    """Polls the restmapper's /health during a fault and keeps what it saw."""

    def __init__(self, url):
        self.url, self.seen, self.stop = url, set(), threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import requests
        while not self.stop.is_set():
            try:
                r = requests.get(self.url, timeout=2)
                self.seen.add((r.status_code, r.json().get("status")))
            except Exception:
                self.seen.add(("error", None))
            self.stop.wait(0.2)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join(5)


@pytest.mark.timeout(600)
def test_broker_memory_alarm(stack, db):
    """The broker blocks publishers (connection.blocked): restmapper answers
    503 "not accepted" with Retry-After at once and /health says blocked."""
    refusals = []

    def fault(load):
        with HealthWatch(stack.mapper + "/health") as h:
            rabbitmqctl(stack, "set_vm_memory_high_watermark", "0.00001")
            try:
                # Generous: on a busy machine the CLI that sets the watermark
                # can take tens of seconds. The broker blocks a connection
                # when it publishes, so the load runs until the end of the
                # fault (it is stopped below), however long the CLI took.
                wait_until(lambda: (503, "blocked") in h.seen, timeout=120,
                           what=lambda: "health answers seen: %r; load: %s"
                           % (sorted(h.seen, key=repr), load.summary()))
                load.sleep(BROKER_S)
            finally:
                rabbitmqctl(stack, "set_vm_memory_high_watermark", "0.4")
            wait_until(lambda: stack_healthy(stack, timeout=1), timeout=60)
        refusals.append(h.seen)
        load.sleep(2)  # some load after the alarm cleared
        load.stop()
    try:
        # Bounded by the count and by the stop above, whichever comes first.
        load = run_with_fault(stack, db, fault, name="broker memory alarm %ds" % BROKER_S,
                              total=RATE * 400)
        assert load.not_accepted, "no publish was refused while blocked: " + load.summary()
    finally:
        stack.script("rabbitmqctl", "set_vm_memory_high_watermark", "0.4", check=False)


def test_broker_frozen(stack, db):
    """SIGSTOP: publishes are answered within the confirm deadline (503
    outcome unknown) and the connection is dropped after two heartbeats."""
    pid = beam_pid(stack)

    def fault(load):
        os.kill(pid, signal.SIGSTOP)
        try:
            load.sleep(FROZEN_S)
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_until(lambda: stack_healthy(stack, timeout=1), timeout=60)
    try:
        run_with_fault(stack, db, fault, name="broker SIGSTOP %ds" % FROZEN_S)
    finally:
        os.kill(pid, signal.SIGCONT)


def test_broker_kill_9(stack, db):
    def fault(load):
        os.kill(beam_pid(stack), signal.SIGKILL)
        wait_until(lambda: stack.script("status").stdout.find("rabbitmq ") < 0, timeout=30)
        load.sleep(1)
        stack.script("start-rabbit")
        wait_until(lambda: stack_healthy(stack, timeout=1), timeout=60)
    try:
        run_with_fault(stack, db, fault, name="broker kill -9")
    finally:
        stack.script("start-rabbit", check=False)
        ensure_apps(stack)


# ---- rpc requests expire with their timeout ---------------------------------

def late_replies(url):
    import requests
    text = requests.get(url + "/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("fpesa_bus_late_replies_total "):
            return int(float(line.split()[1]))
    raise AssertionError("no fpesa_bus_late_replies_total in /metrics")


def test_rpc_worker_away_past_the_timeout(stack, db, amqp):
    """The handler host is away while rpc requests time out (504): none of
    them runs when it comes back (their AMQP expiration was the timeout), and
    a counting load of POSTs queued meanwhile is stored once."""
    import requests
    mappers = [stack.mapper, "http://127.0.0.1:%d" % stack.mapper2_port]
    before = [late_replies(m) for m in mappers]
    n_rpc = 20 if FULL else 8
    answers = []

    def fault(load):
        stack.script("stop-one", "handler")
        s = requests.Session()
        for i in range(n_rpc):
            r = s.post(stack.mapper + "/echo/late%d" % i, json={"i": i}, timeout=15)
            answers.append(r.status_code)
        s.close()
        ch = amqp.channel()
        # Expired requests are dropped by the broker, not delivered later.
        wait_until(lambda: ch.queue_declare("/echo/{word}:POST", passive=True)
                   .method.message_count == 0, timeout=30)
        ensure_apps(stack)
    try:
        run_with_fault(stack, db, fault, name="rpc worker away past the timeout")
        assert answers == [504] * n_rpc, answers
        # The returning worker answers a fresh request, and nothing late.
        wait_until(lambda: requests.post(stack.mapper + "/echo/back", json={},
                                         timeout=15).status_code == 200, timeout=30)
        after = [late_replies(m) for m in mappers]
        assert after == before, "requests answered 504 were run later: %s -> %s" % (before, after)
        FAULT_NOTES.append("rpc worker away: %d requests answered 504, run later: %d"
                           % (n_rpc, sum(after) - sum(before)))
    finally:
        ensure_apps(stack)
