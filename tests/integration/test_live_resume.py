"""Exact resume of the live feed, counted: a publisher sends ~250 msg/s of
confirmed messages while liveupdate is killed and restarted (or the broker
is), and counting clients -- websocket and Server-Sent Events -- reconnect
the way the docs say (?since=<last id>, Last-Event-ID). Afterwards every
client must hold every confirmed message exactly once.

Each test runs its own handler host (messages_post + messages_get on a table
of its own, with the batch_wait under test) and its own liveupdate on an aux
port, so the stack's servers are not disturbed.
"""
import json
import os
import signal
import socket
import threading
import time

import pika
import pytest
import requests
import websocket

from conftest import metric, wait_until
from handlers_util import start_host, unique, uuid7

pytestmark = pytest.mark.timeout(240)


def live_port(stack):
    return stack.aux_port + 8


def write_system(stack, tmp_path, batch_wait=None, client_queue=None, post_instances=1):
    """A live route with a store of its own, written by post_instances
    instances (with several, the store's order differs from the live order
    around each batch); returns (config path, route path)."""
    name = unique("lr")
    path = "/%s/" % name
    live = "liveupdate:\n  listen: 127.0.0.1:%d\n  ping_interval: 2\n" % live_port(stack)
    if client_queue:
        live += "  client_queue: %d\n" % client_queue
    text = """bus: {url: "%(amqp)s"}
database: {url: "%(db)s"}
%(live)sendpoints:
  - {path: "%(path)s", method: POST, mode: publish, live: true}
  - {path: "%(path)s", method: GET, mode: rpc, timeout: 5s}
handlers:
  - name: post
    plugin: messages_post.so
    queue: "%(path)s:POST"
    instances: %(posts)d
    batch: 200
    prefetch: 400
%(bw)s    config: {table: %(table)s}
  - name: get
    plugin: messages_get.so
    queue: "%(path)s:GET"
    instances: 2
    config: {table: %(table)s}
""" % dict(amqp=stack.amqp_url, db=stack.database_url, live=live, path=path, table=name,
           posts=post_instances, bw=("    batch_wait: %s\n" % batch_wait) if batch_wait else "")
    cfg = tmp_path / ("%s.yaml" % name)
    cfg.write_text(text)
    return str(cfg), path


def start_live(stack, proc, cfg, port=None, **env):
    """A liveupdate on port (default live_port), with env added to the
    stack's; returns (process, base URL)."""
    port = port or live_port(stack)
    p = proc.start([os.path.join(stack.bin, "liveupdate"), "--config", cfg],
                   env=stack.env(FPESA_LIVE_LISTEN="127.0.0.1:%d" % port, **env),
                   wait_http="http://127.0.0.1:%d/metrics" % port, timeout=30)
    base = "http://127.0.0.1:%d" % port
    wait_until(lambda: requests.get(base + "/health", timeout=2).status_code == 200, timeout=30)
    return p, base


class Publisher(threading.Thread):
    """Publishes confirmed messages at about `rate` per second, in the
    mapper's wire format with UUIDv7 ids; `sent` holds the confirmed ids."""

    def __init__(self, stack, path, rate=250):
        super().__init__(daemon=True)
        self.url = stack.amqp_url
        self.exchange = path + ":POST"
        self.rate = rate
        self.sent = []
        self.attempted = set()  # also those whose confirm never came
        self.stop = threading.Event()

    def run(self):
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = pika.BlockingConnection(pika.URLParameters(self.url))
                    ch = conn.channel()
                    ch.exchange_declare(self.exchange, "fanout", durable=True)
                    ch.confirm_delivery()
                t0 = time.time()
                batch = []
                for _ in range(max(1, self.rate // 50)):
                    mid = uuid7()
                    self.attempted.add(mid)
                    ch.basic_publish(self.exchange, "",
                                     json.dumps({"data": {"n": len(self.sent)}, "args": None}),
                                     pika.BasicProperties(message_id=mid, delivery_mode=2,
                                                          content_type="application/json",
                                                          timestamp=int(time.time())))
                    batch.append(mid)  # confirmed: basic_publish returned
                self.sent.extend(batch)
                time.sleep(max(0.0, 0.02 - (time.time() - t0)))
            except Exception:
                conn = None
                time.sleep(0.2)
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def finish(self):
        self.stop.set()
        self.join(10)


class Counter(threading.Thread):
    """A client that counts every message it receives and reconnects as the
    docs say: from its last id, or without one after 4404 (a gap)."""

    def __init__(self, base, path):
        super().__init__(daemon=True)
        self.base = base
        self.path = path
        self.got = []
        self.last = None
        self.closes = []
        self.gaps = 0
        self.connects = 0
        self.resumes = []  # (messages received before, since) per connection
        self.stop = threading.Event()

    def finish(self):
        self.stop.set()
        self.join(10)

    def counts(self):
        c = {}
        for i in list(self.got):
            c[i] = c.get(i, 0) + 1
        return c


class WsCounter(Counter):
    def run(self):
        while not self.stop.is_set():
            url = self.base.replace("http://", "ws://") + self.path
            if self.last:
                url += "?since=" + self.last
            try:
                ws = websocket.create_connection(url, timeout=1)
            except Exception:
                time.sleep(0.05)
                continue
            self.connects += 1
            self.resumes.append((len(self.got), self.last))
            try:
                while not self.stop.is_set():
                    try:
                        op, frame = ws.recv_data_frame(True)
                    except websocket.WebSocketTimeoutException:
                        continue
                    if op == websocket.ABNF.OPCODE_CLOSE:
                        code = int.from_bytes(frame.data[:2], "big") if frame.data else None
                        self.closes.append(code)
                        if code == 4404:
                            self.gaps += 1
                            self.last = None
                        break
                    if op == websocket.ABNF.OPCODE_TEXT:
                        mid = json.loads(frame.data)["id"]
                        self.got.append(mid)
                        self.last = mid
            except Exception:
                pass
            finally:
                ws.close()


def sse_events(sock, on_event, stop):
    """Reads an event stream's body from sock (after the headers) and calls
    on_event(fields) per event, until the stream ends or stop is set."""
    buf = b""
    while not stop.is_set():
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return
        if not data:
            return
        buf += data
        while b"\n\n" in buf:
            raw, buf = buf.split(b"\n\n", 1)
            fields = {}
            for line in raw.decode().split("\n"):
                if not line or line.startswith(":"):
                    continue
                k, _, v = line.partition(":")
                v = v[1:] if v.startswith(" ") else v
                fields[k] = fields[k] + "\n" + v if k in fields else v
            if fields:
                on_event(fields)


def sse_open(base, path, last=None, since=None, timeout=1.0):
    """Opens GET /events/v1<path>; returns (status, headers text, socket,
    bytes of body already read)."""
    host, port = base.replace("http://", "").split(":")
    s = socket.create_connection((host, int(port)), timeout=timeout)
    req = "GET /events/v1%s%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n" % (
        path, "?since=" + since if since else "", host)
    if last:
        req += "Last-Event-ID: %s\r\n" % last
    s.sendall((req + "\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(4096)
        if not d:
            break
        head += d
    h, _, rest = head.partition(b"\r\n\r\n")
    status = int(h.split(b" ")[1]) if h else 0
    return status, h.decode(errors="replace"), s, rest


class PushbackSocket:
    """A socket whose first recv returns bytes already read."""

    def __init__(self, sock, first):
        self.sock = sock
        self.first = first

    def recv(self, n):
        if self.first:
            d, self.first = self.first, b""
            return d
        return self.sock.recv(n)


class SseCounter(Counter):
    def run(self):
        while not self.stop.is_set():
            try:
                status, _, s, rest = sse_open(self.base, self.path, last=self.last)
            except Exception:
                time.sleep(0.05)
                continue
            if status != 200:
                s.close()
                time.sleep(0.1)
                continue
            self.connects += 1
            self.resumes.append((len(self.got), self.last))

            def on_event(f):
                if f.get("event") == "gap":
                    self.gaps += 1
                elif "data" in f:
                    self.got.append(f["id"])
                    self.last = f["id"]

            try:
                sse_events(PushbackSocket(s, rest), on_event, self.stop)
            except Exception:
                pass
            finally:
                s.close()
            self.closes.append("eof")


def check_exact(clients, sent, attempted=()):
    """Every confirmed id exactly once; also allowed: ids whose publish was
    attempted but not confirmed (the broker died before the confirm)."""
    want = set(sent)
    assert len(want) == len(sent)
    where = {i: n for n, i in enumerate(sent)}

    def seen():
        # Per client: how many are missing, the first and last of them (by
        # position in sent), and where each connection resumed from.
        out = []
        for c in clients:
            got = set(c.got)
            miss = [where[i] for i in sent if i not in got]
            out.append("%s missing %d %s resumes %s" % (
                type(c).__name__, len(miss), miss[:1] + miss[-1:],
                [(n, where.get(i, i)) for n, i in c.resumes]))
        return "; ".join(out)

    wait_until(lambda: all(want <= set(c.got) for c in clients), timeout=60, interval=0.2,
               what=seen)
    for c in clients:
        counts = c.counts()
        missing = [i for i in sent if counts.get(i, 0) == 0]
        doubled = [i for i, n in counts.items() if n > 1]
        extra = [i for i in counts if i not in want and i not in attempted]
        assert not missing, "%s lost %d of %d, e.g. %s" % (type(c).__name__, len(missing),
                                                           len(sent), missing[:3])
        assert not doubled, "%s got %d twice, e.g. %s" % (type(c).__name__, len(doubled),
                                                          doubled[:3])
        assert not extra, "%s got ids nobody sent: %s" % (type(c).__name__, extra[:3])
        assert c.gaps == 0


def run_outage(stack, proc, tmp_path, outage_s, batch_wait):
    cfg, path = write_system(stack, tmp_path, batch_wait=batch_wait)
    start_host(proc, stack, cfg, expect=3)
    live, base = start_live(stack, proc, cfg)
    clients = [WsCounter(base, path), WsCounter(base, path), SseCounter(base, path)]
    pub = Publisher(stack, path)
    try:
        for c in clients:
            c.start()
        wait_until(lambda: all(c.connects for c in clients), timeout=20)
        pub.start()
        wait_until(lambda: all(len(c.got) > 200 for c in clients), timeout=30)
        live.send_signal(signal.SIGKILL)
        live.wait(10)
        time.sleep(outage_s)
        start_live(stack, proc, cfg)
        n = len(pub.sent)
        wait_until(lambda: len(pub.sent) > n + 500, timeout=30)  # two more seconds or so
        pub.finish()
        print("sent=%d outage=%ss batch_wait=%s reconnects=%s" % (
            len(pub.sent), outage_s, batch_wait, [c.connects for c in clients]))
        check_exact(clients, pub.sent)
        assert all(c.connects >= 2 for c in clients)  # each went through the outage
    finally:
        pub.finish()
        for c in clients:
            c.finish()


@pytest.mark.parametrize("outage_s", [0.3, 3, 10])
@pytest.mark.parametrize("batch_wait", [None, "1s"])
def test_liveupdate_killed_every_message_exactly_once(stack, proc, tmp_path, outage_s, batch_wait):
    run_outage(stack, proc, tmp_path, outage_s, batch_wait)


def broker_restart_exact(stack, proc, tmp_path, cleanup=None, **live_env):
    """The broker restarted under a publisher: each client is closed (1014)
    and resumes from before the loss, and holds every confirmed message
    exactly once, although two store writers insert in another order than
    the live one. cleanup(path) runs at the end, whatever happened."""
    cfg, path = write_system(stack, tmp_path, batch_wait="1s", post_instances=2)
    start_host(proc, stack, cfg, expect=4)
    live, base = start_live(stack, proc, cfg, **live_env)
    clients = [WsCounter(base, path), SseCounter(base, path)]
    pub = Publisher(stack, path)
    try:
        for c in clients:
            c.start()
        wait_until(lambda: all(c.connects for c in clients), timeout=20)
        pub.start()
        wait_until(lambda: all(len(c.got) > 200 for c in clients), timeout=30)
        stack.script("stop-rabbit")
        wait_until(lambda: requests.get(base + "/health", timeout=2).status_code == 503,
                   timeout=30)
        stack.script("start-rabbit")
        wait_until(lambda: requests.get(base + "/health", timeout=2).status_code == 200,
                   timeout=90)
        n = len(pub.sent)
        wait_until(lambda: len(pub.sent) > n + 500, timeout=60)
        pub.finish()
        check_exact(clients, pub.sent, pub.attempted)
        assert 1014 in clients[0].closes
        assert metric(base, "liveupdate_loss_resumes_total") >= len(clients)
    finally:
        pub.finish()
        for c in clients:
            c.finish()
        if cleanup:
            cleanup(path)


def test_broker_restart_every_message_exactly_once(stack, proc, tmp_path):
    broker_restart_exact(stack, proc, tmp_path)


def test_resume_from_far_back_pages_past_any_limit_then_joins_live(stack, proc, tmp_path):
    """3,000 stored messages behind, live ones arriving meanwhile."""
    cfg, path = write_system(stack, tmp_path, batch_wait="1s")
    start_host(proc, stack, cfg, expect=3)
    _, base = start_live(stack, proc, cfg)
    pub = Publisher(stack, path, rate=1500)
    first = None
    try:
        pub.start()
        wait_until(lambda: len(pub.sent) > 3000, timeout=60)
        pub.rate = 250
        first = pub.sent[0]
        clients = [WsCounter(base, path), SseCounter(base, path)]
        for c in clients:
            c.last = first  # as if each had read only the first message
            c.start()
        n = len(pub.sent)
        wait_until(lambda: len(pub.sent) > n + 500, timeout=30)
        pub.finish()
        check_exact(clients, pub.sent[1:])
        for c in clients:
            c.finish()
        m = requests.get(base + "/metrics", timeout=5).text
        assert "liveupdate_replayed_messages_total" in m
    finally:
        pub.finish()


def test_unknown_since_closes_4404_and_sse_marks_a_gap_then_live(stack, proc, tmp_path):
    cfg, path = write_system(stack, tmp_path)
    start_host(proc, stack, cfg, expect=3)
    _, base = start_live(stack, proc, cfg)
    ws = websocket.create_connection(base.replace("http://", "ws://") + path +
                                     "?since=never-stored-1", timeout=15)
    try:
        t0 = time.time()
        op, frame = ws.recv_data_frame(True)
        while op in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
            op, frame = ws.recv_data_frame(True)
        assert op == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(frame.data[:2], "big") == 4404
        assert b"unknown position" in frame.data[2:]
        assert time.time() - t0 < 10
    finally:
        ws.close()
    status, head, s, rest = sse_open(base, path, last="never-stored-2", timeout=15)
    stop = threading.Event()
    try:
        assert status == 200 and "text/event-stream" in head
        events = []
        t = threading.Thread(target=sse_events, args=(PushbackSocket(s, rest), events.append, stop),
                             daemon=True)
        t.start()
        wait_until(lambda: any(e.get("event") == "gap" for e in events), timeout=15)
        mid = uuid7()
        conn = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
        try:
            conn.channel().basic_publish(path + ":POST", "",
                                         json.dumps({"data": {"after": "gap"}, "args": None}),
                                         pika.BasicProperties(message_id=mid))
        finally:
            conn.close()
        wait_until(lambda: any(e.get("id") == mid for e in events), timeout=15)
        got = [e for e in events if e.get("id") == mid][0]
        assert json.loads(got["data"])["data"] == {"after": "gap"}
    finally:
        stop.set()
        s.close()
    m = requests.get(base + "/metrics", timeout=5).text
    assert "liveupdate_unknown_positions_total 2" in m


def test_since_committed_a_moment_later_is_not_unknown(stack, proc, tmp_path):
    """A client may hold an id pushed live before its commit (batch_wait)."""
    cfg, path = write_system(stack, tmp_path, batch_wait="1s")
    start_host(proc, stack, cfg, expect=3)
    live, base = start_live(stack, proc, cfg)
    ws = websocket.create_connection(base.replace("http://", "ws://") + path, timeout=10)
    conn = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
    ch = conn.channel()
    try:
        ids = [uuid7() for _ in range(3)]
        ch.basic_publish(path + ":POST", "", json.dumps({"data": 1, "args": None}),
                         pika.BasicProperties(message_id=ids[0], delivery_mode=2))
        assert json.loads(ws.recv())["id"] == ids[0]
        ws.close()
        # Another instance (here: this one restarted) has never seen it live.
        live.send_signal(signal.SIGKILL)
        live.wait(10)
        _, base = start_live(stack, proc, cfg)
        for mid in ids[1:]:
            ch.basic_publish(path + ":POST", "", json.dumps({"data": 1, "args": None}),
                             pika.BasicProperties(message_id=mid, delivery_mode=2))
        ws = websocket.create_connection(base.replace("http://", "ws://") + path + "?since=" +
                                         ids[0], timeout=10)
        assert [json.loads(ws.recv())["id"] for _ in range(2)] == ids[1:]
    finally:
        ws.close()
        conn.close()


def test_overlong_and_malformed_positions_are_400(stack, proc, tmp_path):
    cfg, path = write_system(stack, tmp_path)
    _, base = start_live(stack, proc, cfg)
    wsbase = base.replace("http://", "ws://") + path
    for q in ("?since=" + "a" * 201, "?since=", "?since=%01x"):
        with pytest.raises(websocket.WebSocketBadStatusException) as e:
            websocket.create_connection(wsbase + q, timeout=5)
        assert e.value.status_code == 400, q
    assert websocket.create_connection(wsbase + "?since=" + "a" * 200, timeout=5).close() is None
    for last, since in (("x" * 201, None), (None, "y" * 500), ("bad id", None)):
        status, head, s, body = sse_open(base, path, last=last, since=since, timeout=5)
        s.close()
        assert status == 400, (last, since)
    r = requests.get(base + "/events/v1" + path, headers={"Last-Event-ID": "x" * 300}, timeout=5)
    assert r.status_code == 400
    assert "longer than any message id" in r.json()["error"]["description"]
    r = requests.get(base + "/events/v1/nope/", timeout=5)
    assert r.status_code == 404
