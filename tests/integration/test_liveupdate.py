"""liveupdate against the real broker: live delivery, channels, resume with
since, slow clients, bad input, shutdown and a broker restart.

Tests that need their own configuration start their own liveupdate on the
aux ports. Resume is exercised against a small stored-messages responder in
this file (it answers the rpc wire protocol on a channel of the test's own),
so these tests do not depend on the database; the stack's own /messages/
channel is exercised through the stack's liveupdate and, when the stack runs
it, through the mapper.
"""
import json
import os
import re
import socket
import threading
import time
import uuid

import pika
import pytest
import requests
import websocket

from conftest import wait_until

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)$")


def live_bin(stack):
    return os.path.join(stack.bin, "liveupdate")


def aux(stack, n):
    return stack.aux_port + n


def publish(amqp_url, exchange, data, mid=None, declare=True):
    """Publishes one message in the mapper's wire format; returns its id."""
    mid = mid or str(uuid.uuid4())
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ch = conn.channel()
        if declare:
            ch.exchange_declare(exchange, "fanout", durable=True)
        ch.basic_publish(exchange, "", json.dumps({"data": data, "args": None}),
                         pika.BasicProperties(message_id=mid, timestamp=int(time.time()),
                                              content_type="application/json", delivery_mode=2))
    finally:
        conn.close()
    return mid


class Publisher:
    """One connection publishing many messages quickly."""

    def __init__(self, amqp_url, exchange):
        self.conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self.ch = self.conn.channel()
        self.ch.exchange_declare(exchange, "fanout", durable=True)
        self.exchange = exchange

    def send(self, data, mid=None):
        mid = mid or str(uuid.uuid4())
        self.ch.basic_publish(self.exchange, "", json.dumps({"data": data, "args": None}),
                              pika.BasicProperties(message_id=mid, timestamp=int(time.time()),
                                                   content_type="application/json",
                                                   delivery_mode=2))
        return mid

    def close(self):
        self.conn.close()


def start_live(stack, proc, tmp_path, port, endpoints, **live):
    """Starts a liveupdate of our own with these endpoints on port."""
    opts = {"listen": "127.0.0.1:%d" % port}
    opts.update(live)
    text = "bus:\n  url: %s\nliveupdate:\n" % stack.amqp_url
    text += "".join("  %s: %s\n" % (k, v) for k, v in opts.items())
    text += "endpoints:\n" + endpoints
    path = tmp_path / ("live-%d.yaml" % port)
    path.write_text(text)
    env = stack.env(FPESA_LIVE_LISTEN="127.0.0.1:%d" % port)
    p = proc.start([live_bin(stack), "--config", str(path)], env=env,
                   wait_http="http://127.0.0.1:%d/metrics" % port)
    base = "http://127.0.0.1:%d" % port
    wait_until(lambda: requests.get(base + "/health", timeout=2).status_code == 200, timeout=15)
    return p, base


def ws_url(base, path, since=None):
    u = base.replace("http://", "ws://") + path
    return u + ("?since=" + since if since else "")


def recv_json(ws):
    return json.loads(ws.recv())


def close_frame(ws, timeout=15):
    """Reads until the server's close frame; returns (code, reason)."""
    deadline = time.time() + timeout
    ws.settimeout(timeout)
    while time.time() < deadline:
        op, frame = ws.recv_data_frame(True)
        if op == websocket.ABNF.OPCODE_CLOSE:
            data = frame.data
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            return code, data[2:].decode()
    pytest.fail("no close frame")


class Store:
    """A stored-messages responder for one channel: it keeps every message of
    the channel's fanout exchange and answers the GET rpc with
    {"messages": [...]} oldest first after args.after, like messages_get."""

    def __init__(self, amqp_url, path, delay=0.0, answer=True):
        self.url = amqp_url
        self.post = path + ":POST"
        self.get = path + ":GET"
        self.delay = delay
        self.answer = answer
        self.msgs = []
        self.requests = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()
        assert self.ready.wait(10), "store responder did not start"

    def run(self):
        while not self.stop.is_set():
            try:
                self.serve()
            except Exception:
                time.sleep(0.3)

    def serve(self):
        conn = pika.BlockingConnection(pika.URLParameters(self.url))
        ch = conn.channel()
        ch.exchange_declare(self.post, "fanout", durable=True)
        ch.exchange_declare(self.get, "direct", durable=True)
        store_q = "store " + self.post
        ch.queue_declare(store_q, durable=True)
        ch.queue_bind(store_q, self.post)
        ch.queue_declare(self.get, durable=True)
        ch.queue_bind(self.get, self.get, routing_key=self.get)

        def on_post(c, m, props, body):
            d = json.loads(body)
            with self.lock:
                if props.message_id not in {x["id"] for x in self.msgs}:
                    self.msgs.append({"id": props.message_id, "received_at": "2026-01-01T00:00:00Z",
                                      "data": d["data"]})
            c.basic_ack(m.delivery_tag)

        def on_get(c, m, props, body):
            req = json.loads(body)
            self.requests.append(req)
            c.basic_ack(m.delivery_tag)
            if not self.answer:
                return
            if self.delay:
                time.sleep(self.delay)
            args = req.get("args") or {}
            after, limit = args.get("after"), int(args.get("limit", "100"))
            with self.lock:
                ids = [x["id"] for x in self.msgs]
                if after not in ids:  # as messages_get answers
                    reply = {"error": {"code": 404,
                                       "description": "after: no stored message has this id"}}
                else:
                    start = ids.index(after) + 1
                    reply = {"messages": self.msgs[start:start + limit], "next": None}
            c.basic_publish("RPC", props.reply_to, json.dumps(reply),
                            pika.BasicProperties(correlation_id=props.correlation_id,
                                                 content_type="application/json"))

        ch.basic_consume(store_q, on_post)
        ch.basic_consume(self.get, on_get)
        self.ready.set()
        while not self.stop.is_set():
            conn.process_data_events(time_limit=0.1)
        conn.close()

    def ids(self):
        with self.lock:
            return [x["id"] for x in self.msgs]

    def close(self):
        self.stop.set()
        self.t.join(5)
        try:
            conn = pika.BlockingConnection(pika.URLParameters(self.url))
            ch = conn.channel()
            ch.queue_delete("store " + self.post)
            ch.queue_delete(self.get)
            conn.close()
        except Exception:
            pass


def seq_ids(prefix, n, start=0):
    """Ids that sort like UUIDv7s: by time of minting."""
    return ["%s-%08d" % (prefix, i) for i in range(start, start + n)]


RESUMABLE = """  - path: {p}
    method: POST
    mode: publish
    live: true
  - path: {p}
    method: GET
    mode: rpc
    timeout: {t}
"""


# ---- the stack's own liveupdate ---------------------------------------------


def test_post_appears_on_socket(stack, http):
    ws = websocket.create_connection(ws_url(stack.live, "/messages/"), timeout=10)
    try:
        body = {"hello": "live", "n": 1, "nested": {"a": [1, 2]}}
        mid = None
        try:
            r = http.post(stack.mapper + "/messages/", json=body, timeout=5)
            if r.status_code == 202:
                mid = r.json()["id"]
        except requests.RequestException:
            pass
        if mid is None:  # no mapper in this stack: publish as it would
            mid = publish(stack.amqp_url, "/messages/:POST", body)
        deadline = time.time() + 10
        while True:
            msg = recv_json(ws)
            if msg["id"] == mid:
                break
            assert time.time() < deadline
        assert msg["channel"] == "/messages/"
        assert msg["data"] == body
        assert ISO.match(msg["received_at"]), msg["received_at"]
        assert set(msg) == {"id", "channel", "received_at", "data"}
    finally:
        ws.close()


def test_unknown_channel_is_404_before_upgrade(stack):
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(ws_url(stack.live, "/nope/"), timeout=5)
    assert e.value.status_code == 404


def test_plain_http_to_a_channel_is_426(stack, http):
    r = http.get(stack.live + "/messages/", timeout=5)
    assert r.status_code == 426
    assert r.headers.get("Upgrade", "").lower() == "websocket"
    assert "websocket" in r.json()["error"]["description"]
    r = http.get(stack.live + "/nope", timeout=5)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == 404


def test_health_and_metrics(stack, http):
    r = http.get(stack.live + "/health", timeout=5)
    assert r.status_code == 200
    assert r.json()["broker"] == "connected"
    ws = websocket.create_connection(ws_url(stack.live, "/messages/"), timeout=5)
    try:
        m = http.get(stack.live + "/metrics", timeout=5).text
        clients = int(re.search(r"^liveupdate_clients (\d+)$", m, re.M).group(1))
        assert clients >= 1
        for name in ("liveupdate_messages_in_total", "liveupdate_frames_out_total",
                     "liveupdate_slow_client_drops_total", "liveupdate_queue_depth_max",
                     "liveupdate_broker_up 1"):
            assert name in m
    finally:
        ws.close()


def test_malformed_since_is_400(stack):
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(ws_url(stack.live, "/messages/") + "?since=", timeout=5)
    assert e.value.status_code == 400


def test_oversized_frame_closes_with_1009_and_data_frames_are_ignored(stack):
    ws = websocket.create_connection(ws_url(stack.live, "/messages/"), timeout=5)
    try:
        ws.send("small frames from clients are ignored")
        ws.ping(b"p")
        op, _ = ws.recv_data_frame(True)
        assert op == websocket.ABNF.OPCODE_PONG  # still open after the data frame
        ws.send("x" * (64 * 1024))
        code, reason = close_frame(ws)
        assert code == 1009
    finally:
        ws.close()


# ---- liveupdate instances of our own ----------------------------------------


def test_two_channels_stay_separate(stack, proc, tmp_path):
    eps = ("  - {path: /alpha/, method: POST, mode: publish, live: true}\n"
           "  - {path: /beta/, method: POST, mode: publish, live: true}\n"
           "  - {path: /gamma/, method: POST, mode: publish}\n")
    _, base = start_live(stack, proc, tmp_path, aux(stack, 0), eps)
    a = websocket.create_connection(ws_url(base, "/alpha/"), timeout=5)
    b = websocket.create_connection(ws_url(base, "/beta/"), timeout=5)
    try:
        with pytest.raises(websocket.WebSocketBadStatusException) as e:
            websocket.create_connection(ws_url(base, "/gamma/"), timeout=5)
        assert e.value.status_code == 404  # not live: not a channel
        pa = [publish(stack.amqp_url, "/alpha/:POST", {"to": "alpha", "i": i}) for i in range(3)]
        pb = [publish(stack.amqp_url, "/beta/:POST", {"to": "beta", "i": i}) for i in range(3)]
        ga = [recv_json(a) for _ in range(3)]
        gb = [recv_json(b) for _ in range(3)]
        assert [m["id"] for m in ga] == pa and all(m["channel"] == "/alpha/" for m in ga)
        assert [m["id"] for m in gb] == pb and all(m["channel"] == "/beta/" for m in gb)
        a.settimeout(0.5)
        with pytest.raises(websocket.WebSocketTimeoutException):
            a.recv()
    finally:
        a.close()
        b.close()


def test_resume_within_the_window_needs_no_store(stack, proc, tmp_path):
    path = "/window-%s/" % uuid.uuid4().hex[:6]
    store = Store(stack.amqp_url, path)
    _, base = start_live(stack, proc, tmp_path, aux(stack, 1), RESUMABLE.format(p=path, t="5s"))
    pub = Publisher(stack.amqp_url, path + ":POST")
    try:
        ids = seq_ids("w", 300)
        ws = websocket.create_connection(ws_url(base, path), timeout=10)
        for i in ids[:10]:
            pub.send({"i": i}, i)
        seen = [recv_json(ws)["id"] for _ in range(10)]
        ws.close()
        for i in ids[10:]:
            pub.send({"i": i}, i)
        ws = websocket.create_connection(ws_url(base, path, since=seen[-1]), timeout=10)
        assert [recv_json(ws)["id"] for _ in range(290)] == ids[10:]
        ws.settimeout(1)
        with pytest.raises(websocket.WebSocketTimeoutException):
            ws.recv()  # and nothing twice
        ws.close()
        assert store.requests == []  # the window had it all
        m = requests.get(base + "/metrics", timeout=5).text
        assert re.search(r"^liveupdate_window_resumes_total 1$", m, re.M)
    finally:
        pub.close()
        store.close()


def test_resume_from_the_store_merges_with_live_at_the_seam(stack, proc, tmp_path):
    path = "/resume-%s/" % uuid.uuid4().hex[:6]
    # The store answers slowly, so live messages arrive while the replay is
    # pending: the seam must neither repeat nor lose any of them.
    store = Store(stack.amqp_url, path, delay=0.7)
    eps = RESUMABLE.format(p=path, t="5s")
    p, base = start_live(stack, proc, tmp_path, aux(stack, 1), eps)
    pub = Publisher(stack.amqp_url, path + ":POST")
    try:
        ids = seq_ids("a", 260)
        ws = websocket.create_connection(ws_url(base, path), timeout=10)
        for i in ids[:10]:
            pub.send({"i": i}, i)
        seen = [recv_json(ws)["id"] for _ in range(10)]
        assert seen == ids[:10]
        ws.close()
        proc.stop(p)  # a new instance: nothing in its window
        for i in ids[10:250]:  # missed while away: more than two pages
            pub.send({"i": i}, i)
        wait_until(lambda: len(store.ids()) >= 250)
        _, base = start_live(stack, proc, tmp_path, aux(stack, 1), eps)
        ws = websocket.create_connection(ws_url(base, path, since=seen[-1]), timeout=10)
        for i in ids[250:]:  # live while the replay is pending
            pub.send({"i": i}, i)
        got = [recv_json(ws)["id"] for _ in range(250)]
        assert got == ids[10:]
        ws.settimeout(1)
        with pytest.raises(websocket.WebSocketTimeoutException):
            ws.recv()  # and nothing twice
        more = seq_ids("b", 3)
        for i in more:
            pub.send({"i": i}, i)
        assert [recv_json(ws)["id"] for _ in range(3)] == more
        assert len(store.requests) >= 3  # paged
        assert store.requests[0]["args"]["after"] == seen[-1]
        ws.close()
    finally:
        pub.close()
        store.close()


def test_resume_pages_past_resume_limit(stack, proc, tmp_path):
    """resume_limit no longer cuts a replay short: it pages on to the end."""
    path = "/cap-%s/" % uuid.uuid4().hex[:6]
    store = Store(stack.amqp_url, path)
    pub = Publisher(stack.amqp_url, path + ":POST")
    try:
        ids = seq_ids("c", 250)
        for i in ids:
            pub.send({"i": i}, i)
        wait_until(lambda: len(store.ids()) >= 250)
        _, base = start_live(stack, proc, tmp_path, aux(stack, 2),
                             RESUMABLE.format(p=path, t="5s"), resume_limit=30)
        ws = websocket.create_connection(ws_url(base, path, since=ids[0]), timeout=10)
        got = [recv_json(ws)["id"] for _ in range(249)]
        assert got == ids[1:]
        ws.close()
    finally:
        pub.close()
        store.close()


def test_resume_without_an_answer_closes_with_1011(stack, proc, tmp_path):
    path = "/mute-%s/" % uuid.uuid4().hex[:6]
    store = Store(stack.amqp_url, path, answer=False)
    _, base = start_live(stack, proc, tmp_path, aux(stack, 3), RESUMABLE.format(p=path, t="1s"))
    try:
        ws = websocket.create_connection(ws_url(base, path, since="x-1"), timeout=10)
        code, reason = close_frame(ws)
        assert code == 1011 and "since" in reason
        assert store.requests and store.requests[0] == {"data": None,
                                                        "args": {"after": "x-1", "limit": "100"}}
    finally:
        store.close()


def test_slow_client_is_closed_with_1008_and_fast_client_gets_everything(stack, proc, tmp_path):
    eps = "  - {path: /slow/, method: POST, mode: publish, live: true}\n"
    _, base = start_live(stack, proc, tmp_path, aux(stack, 4), eps, client_queue=64)
    slow = websocket.create_connection(ws_url(base, "/slow/"), timeout=20,
                                       sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    fast = websocket.create_connection(ws_url(base, "/slow/"), timeout=20)
    got = []

    def read_fast():
        try:
            while len(got) < N:
                got.append(recv_json(fast)["id"])
        except Exception:
            pass

    def dropped():
        m = requests.get(base + "/metrics", timeout=10).text
        return re.search(r"^liveupdate_slow_client_drops_total [1-9]", m, re.M)

    closed = {}

    def read_slow():
        # The server gives a dropped client a few seconds to take its close
        # frame; the slow client reads it as soon as it is dropped, however
        # long the publishing takes on a busy machine.
        try:
            deadline = time.time() + 120
            while not dropped() and time.time() < deadline:
                time.sleep(0.05)
            closed["frame"] = close_frame(slow, timeout=60)
        except BaseException as e:  # reported by the assertion below
            closed["error"] = repr(e)

    N = 300
    t = threading.Thread(target=read_fast, daemon=True)
    t.start()
    ts = threading.Thread(target=read_slow, daemon=True)
    ts.start()
    pub = Publisher(stack.amqp_url, "/slow/:POST")
    try:
        blob = "y" * 32768
        sent = []
        for i in range(N):  # paced so that a reader that keeps up never falls behind
            sent.append(pub.send({"blob": blob, "i": i}))
            time.sleep(0.005)
        t.join(120)
        assert got == sent
        ts.join(180)
        assert "frame" in closed, closed.get("error", "the slow client saw no close frame")
        code, reason = closed["frame"]
        assert code == 1008 and "since" in reason
        m = requests.get(base + "/metrics", timeout=5).text
        assert re.search(r"^liveupdate_slow_client_drops_total [1-9]", m, re.M)
    finally:
        pub.close()
        slow.close()
        fast.close()


def test_sigterm_closes_clients_with_1001(stack, proc, tmp_path):
    eps = "  - {path: /term/, method: POST, mode: publish, live: true}\n"
    p, base = start_live(stack, proc, tmp_path, aux(stack, 5), eps)
    ws = websocket.create_connection(ws_url(base, "/term/"), timeout=10)
    p.terminate()
    code, _ = close_frame(ws)
    assert code == 1001
    assert p.wait(10) == 0


def test_half_open_connection_is_reaped(stack, proc, tmp_path):
    eps = "  - {path: /idle/, method: POST, mode: publish, live: true}\n"
    _, base = start_live(stack, proc, tmp_path, aux(stack, 6), eps, ping_interval=1)
    # A raw handshake, then silence: pings are never answered.
    s = socket.create_connection(("127.0.0.1", aux(stack, 6)), timeout=20)
    s.sendall(b"GET /idle/ HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert b" 101 " in s.recv(4096)

    def clients():
        m = requests.get(base + "/metrics", timeout=5).text
        return int(re.search(r"^liveupdate_clients (\d+)$", m, re.M).group(1))

    assert clients() == 1
    wait_until(lambda: clients() == 0, timeout=20)
    s.close()


def test_broker_restart_clients_told_and_resume_gets_everything(stack, proc, tmp_path):
    path = "/restart-%s/" % uuid.uuid4().hex[:6]
    store = Store(stack.amqp_url, path)
    _, base = start_live(stack, proc, tmp_path, aux(stack, 7), RESUMABLE.format(p=path, t="5s"))
    stop = threading.Event()
    codes = []
    clients = [{"got": [], "last": None} for _ in range(3)]
    connected = threading.Event()

    def client(state):
        while not stop.is_set():
            try:
                ws = websocket.create_connection(ws_url(base, path, since=state["last"]), timeout=1)
            except Exception:
                time.sleep(0.2)
                continue
            connected.set()
            try:
                while not stop.is_set():
                    try:
                        op, frame = ws.recv_data_frame(True)
                    except websocket.WebSocketTimeoutException:
                        continue
                    if op == websocket.ABNF.OPCODE_CLOSE:
                        codes.append(int.from_bytes(frame.data[:2], "big"))
                        break
                    if op == websocket.ABNF.OPCODE_TEXT:
                        mid = json.loads(frame.data)["id"]
                        state["got"].append(mid)
                        state["last"] = mid
            except Exception:
                pass
            finally:
                ws.close()

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in clients]
    for t in threads:
        t.start()
    assert connected.wait(10)
    sent, counter = [], [0]
    pub_stop = threading.Event()

    def publisher():
        pub = None
        while not pub_stop.is_set():
            try:
                if pub is None:
                    pub = Publisher(stack.amqp_url, path + ":POST")
                    pub.ch.confirm_delivery()
                mid = "r-%08d" % counter[0]
                pub.send({"i": counter[0]}, mid)  # returns after the broker's confirm
                sent.append(mid)
                counter[0] += 1
                time.sleep(0.01)
            except Exception:
                pub = None
                time.sleep(0.3)

    pt = threading.Thread(target=publisher, daemon=True)
    pt.start()
    try:
        wait_until(lambda: len(sent) > 30, timeout=10)
        stack.script("stop-rabbit")
        wait_until(lambda: requests.get(base + "/health", timeout=2).status_code == 503, timeout=20)
        stack.start_rabbit()
        wait_until(lambda: requests.get(base + "/health", timeout=2).status_code == 200, timeout=60)
        n = len(sent)
        wait_until(lambda: len(sent) > n + 30, timeout=30)
        pub_stop.set()
        pt.join(10)
        want = set(sent)
        wait_until(lambda: all(want <= set(c["got"]) for c in clients), timeout=30)
        assert 1014 in codes  # told to resume
        for c in clients:
            mine = [i for i in c["got"] if i in want]
            assert len(mine) == len(set(mine)), "duplicates"
    finally:
        pub_stop.set()
        stop.set()
        for t in threads:
            t.join(5)
        store.close()


def test_parametrized_route_frames_carry_params_and_one_resource_can_be_followed(stack, proc,
                                                                                tmp_path):
    eps = "  - {path: \"/orders/{id}\", method: PUT, mode: publish, live: true}\n"
    _, base = start_live(stack, proc, tmp_path, aux(stack, 0), eps)
    one = websocket.create_connection(ws_url(base, "/orders/42"), timeout=10)
    every = websocket.create_connection(ws_url(base, "/orders/%7Bid%7D"), timeout=10)
    status, sse = None, None
    try:
        sse = requests.get(base + "/events/v1/orders/42", stream=True, timeout=10)
        status = sse.status_code
        assert status == 200
        conn = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
        try:
            ch = conn.channel()
            ch.exchange_declare("/orders/{id}:PUT", "fanout", durable=True)
            sent = []
            for i, order in enumerate(["7", "42", "7", "42", "9"]):
                mid = "o-%d" % i
                ch.basic_publish("/orders/{id}:PUT", "", json.dumps(
                    {"data": {"qty": i}, "args": None, "params": {"id": order}}),
                    pika.BasicProperties(message_id=mid))
                sent.append((mid, order))
        finally:
            conn.close()
        got = [recv_json(every) for _ in range(5)]
        assert [(m["id"], m["params"]["id"]) for m in got] == sent
        assert all(m["channel"] == "/orders/{id}" for m in got)
        assert got[1]["path"] == "/orders/42" and got[4]["path"] == "/orders/9"
        mine = [recv_json(one) for _ in range(2)]
        assert [m["id"] for m in mine] == ["o-1", "o-3"]
        assert mine[0] == {"id": "o-1", "channel": "/orders/{id}", "path": "/orders/42",
                           "params": {"id": "42"}, "received_at": mine[0]["received_at"],
                           "data": {"qty": 1}}
        one.settimeout(1)
        with pytest.raises(websocket.WebSocketTimeoutException):
            one.recv()  # nothing of the other orders
        events = []
        for line in sse.iter_lines(chunk_size=1, decode_unicode=True):
            if line.startswith("id: "):
                events.append(line[4:])
            if len(events) == 2:
                break
        assert events == ["o-1", "o-3"]
    finally:
        one.close()
        every.close()
        if sse is not None:
            sse.close()
