"""The scaled-out system under faults: `make faults CLUSTER=1`.

scripts/cluster.sh starts a 3-node RabbitMQ cluster (quorum queues), a
PostgreSQL primary with a streaming replica, two handler hosts, two
restmappers, two liveupdates and nginx, on ports FPESA_PORT_BASE+60 and up.
A counted load of POSTs with unique Idempotency-Keys runs through nginx
across each fault, and two websocket clients (through nginx, resuming with
?since= after a lost connection, wherever nginx sends them) watch the live
feed:

  (a) the RabbitMQ node that leads the quorum queue "/messages/:POST" is
      killed with kill -9 and started again,
  (b) each RabbitMQ node is stopped and started in turn,
  (c) one restmapper, one liveupdate and one handler host are killed -9,
  (d) the PostgreSQL replica is stopped while pages are read, and started.

Every id answered 202 must be stored exactly once and reach every live
client exactly once; nothing may hang. The table printed at the end gives
the counts per fault, and a note per fault the 503s and the longest time
without a 202.

Its name does not start with test_, so the integration suite leaves it out:
FPESA_SUITES=cluster scripts/test.sh runs it in its short form, and
`make faults CLUSTER=1` at full length (FPESA_FAULTS_FULL=1,
scripts/faults.sh).
"""
import json
import os
import subprocess
import threading
import time

import pytest
import requests
import websocket

from conftest import ROOT, wait_until
from loadgen import FAULT_NOTES, Load, fault_row, wait_stored

FULL = os.environ.get("FPESA_FAULTS_FULL") == "1"
# The full form (make faults CLUSTER=1) sends faster and keeps the load
# running longer after each fault than make test's short form.
RATE = 200 if FULL else 120
AFTER_S = 15.0 if FULL else 3.0
THREADS = 6
MESSAGES_Q = "/messages/:POST"


def cl(stack, *args, timeout=900, check=True):
    r = subprocess.run([os.path.join(ROOT, "scripts", "cluster.sh"), *args], env=stack.env(),
                       capture_output=True, text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, "cluster.sh %s: %s" % (" ".join(args), (r.stdout + r.stderr)[-3000:])
    return r


@pytest.fixture(scope="module")
def cluster(stack):
    try:
        cl(stack, "start", timeout=1200)
        env = dict(line.split("=", 1) for line in cl(stack, "env").stdout.splitlines())
        print(cl(stack, "status").stdout)
        yield env
    finally:
        cl(stack, "stop", timeout=600, check=False)


class LiveClient:
    """A websocket client of the live feed through nginx; after a lost
    connection it reconnects with ?since=<last id>."""

    def __init__(self, url):
        self.url = url
        self.got = []
        self.reconnects = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.connected = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        last = None
        self.reconnect_at = []  # len(got) at each reconnect, to place duplicates
        while not self.stop.is_set():
            try:
                ws = websocket.create_connection(self.url + ("?since=" + last if last else ""),
                                                 timeout=2)
            except Exception:
                time.sleep(0.2)
                continue
            if self.connected.is_set():
                self.reconnects += 1
                with self.lock:
                    self.reconnect_at.append(len(self.got))
            self.connected.set()
            try:
                while not self.stop.is_set():
                    try:
                        frame = ws.recv()
                    except websocket.WebSocketTimeoutException:
                        continue
                    if not frame:
                        break
                    msg = json.loads(frame)
                    if "id" not in msg:
                        continue
                    with self.lock:
                        self.got.append(msg["id"])
                    last = msg["id"]
            except Exception:
                pass
            finally:
                try:
                    ws.close()
                except Exception:
                    pass

    def start(self):
        self.thread.start()
        return self

    def close(self):
        self.stop.set()
        self.thread.join(10)


class Reader:
    """GET /messages/?limit=20 in a loop through nginx, counting statuses."""

    def __init__(self, url):
        self.url = url
        self.status = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        s = requests.Session()
        while not self.stop.is_set():
            try:
                r = s.get(self.url, timeout=10)
                k = r.status_code
            except requests.RequestException:
                k = "error"
            self.status[k] = self.status.get(k, 0) + 1
            time.sleep(0.05)
        s.close()

    def start(self):
        self.thread.start()
        return self

    def close(self):
        self.stop.set()
        self.thread.join(15)


ALL_ACCEPTED = []


def run_fault(stack, cluster, name, fault, after_s=AFTER_S):
    url = cluster["CLUSTER_NGINX"] + "/api/v1/messages/"
    load = Load(url, 10 ** 7, threads=THREADS, rate=RATE, deadline_s=900, timeout_s=30).start()
    try:
        wait_until(lambda: load.sent() > RATE * 2, timeout=60)
        fault(load)
        load.sleep(after_s)
    finally:
        load.stop()
    counts = wait_stored(cluster["CLUSTER_PRIMARY"], load.accepted, timeout_s=180)
    fault_row("cluster: " + name, load, counts)
    n503 = load.rejected.get(503, 0)
    FAULT_NOTES.append("cluster: %s: %d answered 503, longest time without a 202 %.2fs, %s"
                       % (name, n503, load.longest_gap(), load.summary()))
    print(FAULT_NOTES[-1])
    ALL_ACCEPTED.extend(load.accepted)
    assert load.hangs == 0, load.summary()
    assert not load.bad, "answers that were neither 202 nor a JSON error: %r" % load.bad[:5]
    assert load.accepted, load.summary()
    missing = [i for i in load.accepted if i not in counts]
    doubled = [i for i, c in counts.items() if c != 1]
    assert not missing, "%d accepted ids are not stored, e.g. %s" % (len(missing), missing[:3])
    assert not doubled, "ids stored more than once: %s" % doubled[:3]
    return load


def wait_accepting(load, timeout=120):
    """Waits until the load gets 202s again after a fault."""
    n = len(load.accepted)
    wait_until(lambda: len(load.accepted) > n + RATE, timeout=timeout)


@pytest.mark.timeout(3600)
def test_cluster_faults(stack, cluster):
    live_url = cluster["CLUSTER_NGINX"].replace("http://", "ws://") + "/ws/v1/messages/"
    clients = [LiveClient(live_url).start() for _ in range(2)]
    reader = None
    try:
        for c in clients:
            assert c.connected.wait(60), "a websocket client could not connect"
        probe = requests.post(cluster["CLUSTER_NGINX"] + "/api/v1/messages/", json={"probe": 1},
                              timeout=30)
        assert probe.status_code == 202, probe.text
        for c in clients:
            wait_until(lambda: probe.json()["id"] in c.got, timeout=60)

        # (a) the node leading the messages queue, kill -9.
        leader = cl(stack, "leader", MESSAGES_Q).stdout.strip()
        assert leader in ("1", "2", "3"), "no leader found for %s" % MESSAGES_Q

        def kill_leader(load):
            cl(stack, "kill-node", leader)
            wait_accepting(load)
            cl(stack, "start-node", leader)
        run_fault(stack, cluster, "leader node %s kill -9" % leader, kill_leader)

        # (b) every node restarted in turn.
        def rolling(load):
            for n in ("1", "2", "3"):
                cl(stack, "stop-node", n)
                wait_accepting(load)
                cl(stack, "start-node", n)
                wait_accepting(load)
        run_fault(stack, cluster, "rolling node restart", rolling)

        # (c) one of each program, kill -9, then started again.
        def programs(load):
            for name in ("mapper1", "live1", "handler1"):
                cl(stack, "kill", name)
                wait_accepting(load)
            cl(stack, "start-apps")
        run_fault(stack, cluster, "mapper1, live1, handler1 kill -9", programs)

        # (d) the replica stopped while pages are read.
        reader = Reader(cluster["CLUSTER_NGINX"] + "/api/v1/messages/?limit=20").start()

        def replica(load):
            cl(stack, "stop-replica")
            wait_accepting(load)
            time.sleep(2)
            cl(stack, "start-replica")
        run_fault(stack, cluster, "replica stopped", replica)
        reader.close()
        FAULT_NOTES.append("cluster: pages read while the replica was away: %s" % reader.status)

        # Every accepted message reached every live client exactly once.
        want = set(ALL_ACCEPTED)
        for k, c in enumerate(clients):
            try:
                wait_until(lambda: want <= set(c.got), timeout=120)
            finally:
                with c.lock:
                    mine = [i for i in c.got if i in want]
                FAULT_NOTES.append(
                    "cluster: live client %d: %d of %d accepted messages received, %d duplicates, "
                    "%d reconnects" % (k + 1, len(set(mine)), len(want), len(mine) - len(set(mine)),
                                       c.reconnects))
            if len(mine) != len(set(mine)):
                first = {}
                where = []
                for pos, i in enumerate(c.got):
                    if i in first:
                        where.append((i, first[i], pos))
                    first.setdefault(i, pos)
                FAULT_NOTES.append("cluster: live client %d duplicates (id, first, again): %s; "
                                   "reconnected at %s" % (k + 1, where[:10], c.reconnect_at))
                print(FAULT_NOTES[-1])
            assert len(mine) == len(set(mine)), "live client %d got duplicates" % (k + 1)
    finally:
        for c in clients:
            c.close()
        if reader:
            reader.close()
