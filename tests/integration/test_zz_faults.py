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

from conftest import wait_until
from loadgen import Load, wait_stored

FULL = os.environ.get("FPESA_FAULTS_FULL") == "1"
TOTAL = 20000 if FULL else 1500
THREADS = 8


def run_with_fault(stack, db, fault, url=None):
    load = Load(url or stack.nginx + "/api/v1/messages/", TOTAL, threads=THREADS).start()
    try:
        # Let some load through before the fault, and keep it running across it.
        wait_until(lambda: load.sent() > TOTAL // 5 or not any(t.is_alive() for t in load._workers),
                   timeout=120)
        fault()
        load.join()
    finally:
        load.stop()
    print(load.summary())
    assert not any(t.is_alive() for t in load._workers), "a load worker did not end: " + load.summary()
    assert load.hangs == 0, load.summary()
    assert not load.bad, "answers that were neither 202 nor a JSON error: %r" % load.bad[:5]
    assert load.accepted, "nothing was accepted: " + load.summary()
    counts = wait_stored(stack.database_url, load.accepted, timeout_s=90)
    missing = [i for i in load.accepted if i not in counts]
    doubled = [i for i, c in counts.items() if c != 1]
    assert not missing, "%d accepted ids are not stored, e.g. %s" % (len(missing), missing[:3])
    assert not doubled, "ids stored more than once: %s" % doubled[:3]
    return load


def ensure_apps(stack):
    r = stack.script("start", "apps", check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def pid_of(stack, name):
    with open(os.path.join(stack.var, "run", name + ".pid")) as f:
        return int(f.read().strip())


def test_rabbitmq_restart_mid_load(stack, db):
    def fault():
        stack.script("stop-rabbit")
        time.sleep(2)
        stack.start_rabbit()
    try:
        run_with_fault(stack, db, fault)
    finally:
        stack.script("start-rabbit", check=False)
        ensure_apps(stack)


def test_postgresql_restart_mid_load(stack, db):
    def fault():
        stack.script("stop-pg")
        time.sleep(2)
        stack.script("start-pg")
    try:
        run_with_fault(stack, db, fault)
    finally:
        stack.script("start-pg", check=False)


def test_handler_host_killed_mid_batch(stack, db):
    def fault():
        os.kill(pid_of(stack, "handler"), signal.SIGKILL)
        time.sleep(1)
        ensure_apps(stack)
    try:
        run_with_fault(stack, db, fault)
    finally:
        ensure_apps(stack)


def test_mapper_instance_killed_behind_nginx(stack, db):
    def fault():
        os.kill(pid_of(stack, "restmapper2"), signal.SIGKILL)
    try:
        load = run_with_fault(stack, db, fault)
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
