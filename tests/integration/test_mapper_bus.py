"""restmapper's bus side against the real broker, seen as a client and as a
worker written against the original fpesa protocol would see it.

Each test starts a restmapper of its own (MBUS_CONFIG, its own exchanges) on
an aux port. The tests that stop the broker run last in this file and wait
for the stack's own programs to reconnect before they return.
"""
import concurrent.futures
import json
import os
import re
import threading
import time
import uuid

import pika
import pytest
import requests

from conftest import metric, wait_until, write_config

MBUS_CONFIG = """
bus:
  heartbeat: 5
endpoints:
  - path: /mbus/items/{kind}
    method: POST
    mode: publish
    body: {type: object}
    args:
      type: object
      properties:
        tag: {type: string}
  - path: /mbus/durable
    method: POST
    mode: publish
    body: {type: object}
  - path: /mbus/rpc
    method: POST
    mode: rpc
    timeout: 3s
    body: {type: object}
  - path: /mbus/short
    method: POST
    mode: rpc
    timeout: 500ms
    body: {type: object}
  - path: /mbus/waits
    method: POST
    mode: rpc
    timeout: 120s
    body: {type: object}
"""

ITEMS_Q = "/mbus/items/{kind}:POST"
DURABLE_Q = "/mbus/durable:POST"
RPC_Q = "/mbus/rpc:POST"
SHORT_Q = "/mbus/short:POST"
WAITS_Q = "/mbus/waits:POST"
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def purge(stack, *queues):
    conn = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
    try:
        ch = conn.channel()
        for q in queues:
            ch.queue_purge(q)
    finally:
        conn.close()


@pytest.fixture
def mapper(stack, proc, tmp_path):
    """A restmapper with MBUS_CONFIG on an aux port, its queues empty."""
    port = stack.aux_port + 7
    url = "http://127.0.0.1:%d" % port
    p = proc.start([os.path.join(stack.bin, "restmapper"), "--config", write_config(tmp_path, MBUS_CONFIG)],
                   env=stack.env(FPESA_HTTP_LISTEN="127.0.0.1:%d" % port), wait_http=url + "/health")
    wait_until(lambda: requests.get(url + "/health", timeout=2).status_code == 200, timeout=20)
    purge(stack, ITEMS_Q, DURABLE_Q, RPC_Q, SHORT_Q, WAITS_Q)
    p.url = url
    return p


def queued(stack, queue):
    """How many messages wait on queue."""
    conn = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
    try:
        return conn.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        conn.close()


class Worker:
    """An rpc worker as the original Python fpesa wrote them: it consumes the
    endpoint's queue and publishes each answer to exchange "RPC" with routing
    key = reply_to and the request's correlation_id."""

    def __init__(self, stack, queue, answer):
        self.stack, self.queue, self.answer = stack, queue, answer
        self.requests = []
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        try:
            conn = pika.BlockingConnection(pika.URLParameters(self.stack.amqp_url))
            ch = conn.channel()
            held = []  # (due time, reply_to, props, body) for delayed answers

            def on_message(channel, method, props, body):
                req = json.loads(body)
                self.requests.append((props, req))
                out, delay = self.answer(req)
                payload = out if isinstance(out, bytes) else json.dumps(out).encode()
                held.append((time.time() + delay, props.reply_to, props.correlation_id, payload))

            ch.basic_consume(self.queue, on_message, auto_ack=True)
            self.ready.set()
            while not self.stop.is_set():
                conn.process_data_events(time_limit=0.01)
                now = time.time()
                for item in [h for h in held if h[0] <= now]:
                    held.remove(item)
                    _, reply_to, corr, payload = item
                    ch.basic_publish("RPC", reply_to, payload,
                                     pika.BasicProperties(correlation_id=corr,
                                                          content_type="application/json"))
            conn.close()
        except Exception as e:  # reported by __exit__
            self.error = e
            self.ready.set()

    def __enter__(self):
        self.thread.start()
        self.ready.wait(10)
        assert self.error is None, self.error
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        assert self.error is None, self.error


def get_all(stack, queue, expect=None, timeout=10):
    """Every message on queue as (properties, body), waiting up to timeout for expect of them."""
    conn = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
    out = []
    try:
        ch = conn.channel()
        deadline = time.time() + timeout
        while True:
            method, props, body = ch.basic_get(queue, auto_ack=True)
            if method:
                out.append((props, body))
                continue
            if expect is None or len(out) >= expect or time.time() > deadline:
                return out
            time.sleep(0.05)
    finally:
        conn.close()


# ---- publish -----------------------------------------------------------------

def test_publish_envelope_and_properties(mapper, stack, http):
    before = int(time.time())
    r = http.post(mapper.url + "/mbus/items/book?tag=x%20y", json={"title": "Dune", "n": [1, 2]})
    assert r.status_code == 202, r.text
    mid = r.json()["id"]
    assert UUID7.match(mid), mid
    [(props, body)] = get_all(stack, ITEMS_Q, expect=1)
    assert json.loads(body) == {"data": {"title": "Dune", "n": [1, 2]}, "args": {"tag": "x y"},
                                "params": {"kind": "book"}}
    assert props.message_id == mid
    assert props.delivery_mode == 2
    assert props.content_type == "application/json"
    assert before - 1 <= props.timestamp <= int(time.time()) + 1


def test_idempotency_key_becomes_the_message_id(mapper, stack, http):
    key = "order-%s" % uuid.uuid4().hex
    r = http.post(mapper.url + "/mbus/durable", json={"a": 1}, headers={"Idempotency-Key": key})
    assert r.status_code == 202, r.text
    assert r.json()["id"] == key
    [(props, body)] = get_all(stack, DURABLE_Q, expect=1)
    assert props.message_id == key
    assert json.loads(body) == {"data": {"a": 1}, "args": None}


def test_many_concurrent_publishes_are_all_stored_once(mapper, stack):
    n = 300

    def post(i):
        with requests.Session() as s:
            return s.post(mapper.url + "/mbus/durable", json={"i": i}, timeout=20)

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        rs = list(pool.map(post, range(n)))
    assert [r.status_code for r in rs] == [202] * n
    ids = {r.json()["id"] for r in rs}
    assert len(ids) == n
    got = get_all(stack, DURABLE_Q, expect=n)
    assert sorted(p.message_id for p, _ in got) == sorted(ids)
    assert sorted(json.loads(b)["data"]["i"] for _, b in got) == list(range(n))


# ---- rpc -----------------------------------------------------------------------

def test_rpc_with_an_original_protocol_worker(mapper, stack, http):
    with Worker(stack, RPC_Q, lambda req: ({"echo": req["data"]}, 0)) as w:
        r = http.post(mapper.url + "/mbus/rpc", json={"q": "hello"}, timeout=10)
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("application/json")
        assert r.json() == {"echo": {"q": "hello"}}
        props, req = w.requests[0]
        assert req == {"data": {"q": "hello"}, "args": None}
        assert props.reply_to and props.correlation_id
        assert UUID7.match(props.message_id)
        assert props.content_type == "application/json"


def test_rpc_error_answer_maps_to_its_status(mapper, stack, http):
    def answer(req):
        code = req["data"]["code"]
        return {"error": {"code": code, "description": "as asked"}}, 0

    with Worker(stack, RPC_Q, answer):
        r = http.post(mapper.url + "/mbus/rpc", json={"code": 409}, timeout=10)
        assert r.status_code == 409
        assert r.json() == {"error": {"code": 409, "description": "as asked"}}
        # A code outside 400..599 is not an HTTP error status: the answer is a 200.
        r = http.post(mapper.url + "/mbus/rpc", json={"code": 200}, timeout=10)
        assert r.status_code == 200
        assert r.json()["error"]["code"] == 200


def test_rpc_answer_that_is_not_json_is_502(mapper, stack, http):
    with Worker(stack, RPC_Q, lambda req: (b"{not json", 0)):
        r = http.post(mapper.url + "/mbus/rpc", json={}, timeout=10)
        assert r.status_code == 502
        assert r.json()["error"]["code"] == 502


def test_rpc_timeout_is_504_and_the_late_answer_is_dropped(mapper, stack, http):
    def answer(req):
        if req["data"].get("slow"):
            return {"late": True}, 1.5
        return {"echo": req["data"]}, 0

    late0 = metric(mapper.url, "fpesa_bus_late_replies_total")
    timeouts0 = metric(mapper.url, "fpesa_bus_rpc_timeouts_total")
    with Worker(stack, SHORT_Q, answer) as w:
        r = http.post(mapper.url + "/mbus/short", json={"slow": True}, timeout=10)
        assert r.status_code == 504, r.text
        assert r.json()["error"]["code"] == 504
        assert metric(mapper.url, "fpesa_bus_rpc_timeouts_total") == timeouts0 + 1
        wait_until(lambda: metric(mapper.url, "fpesa_bus_late_replies_total") == late0 + 1, timeout=10)
        r = http.post(mapper.url + "/mbus/short", json={"n": 2}, timeout=10)
        assert r.status_code == 200
        assert r.json() == {"echo": {"n": 2}}
        assert len(w.requests) == 2


def test_100_concurrent_rpcs_each_get_their_own_answer(mapper, stack):
    with Worker(stack, RPC_Q, lambda req: ({"echo": req["data"], "worker": "w"}, 0)):
        def call(i):
            with requests.Session() as s:
                return i, s.post(mapper.url + "/mbus/rpc", json={"i": i, "tag": uuid.uuid4().hex}, timeout=20)

        barrier_pool = concurrent.futures.ThreadPoolExecutor(100)
        try:
            rs = list(barrier_pool.map(call, range(100)))
        finally:
            barrier_pool.shutdown()
    for i, r in rs:
        assert r.status_code == 200, r.text
        assert r.json()["echo"]["i"] == i
    assert len({r.json()["echo"]["tag"] for _, r in rs}) == 100


def test_rpc_answers_from_two_workers_on_one_queue(mapper, stack):
    """Competing workers on the endpoint queue: each answer still reaches its own caller."""
    with Worker(stack, RPC_Q, lambda req: ({"echo": req["data"], "by": 1}, 0)), \
            Worker(stack, RPC_Q, lambda req: ({"echo": req["data"], "by": 2}, 0.01)):
        def call(i):
            with requests.Session() as s:
                return i, s.post(mapper.url + "/mbus/rpc", json={"i": i}, timeout=20)

        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            rs = list(pool.map(call, range(60)))
    assert all(r.status_code == 200 and r.json()["echo"]["i"] == i for i, r in rs)


# ---- the broker goes away (last: they restart the stack's broker) --------------

FULL_CONFIG = """
bus:
  heartbeat: 5
endpoints:
  - {path: /mbusfull/, method: POST, mode: publish, body: {type: object}}
  - {path: /mbusok/, method: POST, mode: publish, body: {type: object}}
"""


def test_a_streak_of_refused_publishes_makes_the_mapper_start_over(stack, proc, tmp_path):
    """A queue that refuses every publish (an operator's x-overflow
    reject-publish queue, full): each request to it is answered 503; after
    50 refusals in a row over 2 s the mapper starts over on a new
    connection (a cluster node has been seen refusing a channel's every
    publish for minutes), and a route whose queue accepts keeps working."""
    conn = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
    try:
        ch = conn.channel()
        ch.queue_delete("/mbusfull/:POST")
        ch.queue_declare("/mbusfull/:POST", durable=True,
                         arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    finally:
        conn.close()
    port = stack.aux_port + 7
    url = "http://127.0.0.1:%d" % port
    try:
        proc.start([os.path.join(stack.bin, "restmapper"), "--config",
                    write_config(tmp_path, FULL_CONFIG)],
                   env=stack.env(FPESA_HTTP_LISTEN="127.0.0.1:%d" % port), wait_http=url + "/health")
        wait_until(lambda: requests.get(url + "/health", timeout=2).status_code == 200, timeout=20)
        before = metric(url, "fpesa_bus_reconnects_total")
        statuses = {}
        deadline = time.time() + 60
        while metric(url, "fpesa_bus_reconnects_total") == before and time.time() < deadline:
            r = requests.post(url + "/mbusfull/", json={"n": 1}, timeout=10)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            time.sleep(0.02)
        assert metric(url, "fpesa_bus_reconnects_total") > before, (statuses, r.text)
        assert set(statuses) == {503}, statuses
        assert statuses[503] >= 50
        wait_until(lambda: requests.get(url + "/health", timeout=2).status_code == 200, timeout=20,
                   what=lambda: "the mapper connected again")
        ok = requests.post(url + "/mbusok/", json={"n": 2}, timeout=10)
        assert ok.status_code == 202, ok.text
    finally:
        conn = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
        try:
            conn.channel().queue_delete("/mbusfull/:POST")
        finally:
            conn.close()


def wait_stack_mappers(stack):
    """The stack's own restmappers reconnect before the next test uses them."""
    for port in (stack.mapper_port, stack.mapper2_port):
        url = "http://127.0.0.1:%d/health" % port
        try:
            requests.get(url, timeout=2)
        except requests.RequestException:
            continue  # not part of this run
        wait_until(lambda: requests.get(url, timeout=2).status_code == 200, timeout=60, interval=0.2)


def test_zz_broker_loss_never_gives_202_for_a_lost_message(mapper, stack):
    """Clients keep publishing (each with its own Idempotency-Key) while the
    broker stops and starts again. Every 202 must be in the durable queue
    afterwards; while the broker is down the answer is 503; an rpc waiting
    when it goes away is a 503; afterwards everything works again."""
    stop = threading.Event()
    accepted, refused, other = [], [], []
    lock = threading.Lock()

    def publisher(w):
        with requests.Session() as s:
            i = 0
            while not stop.is_set():
                key = "w%d-%d-%s" % (w, i, uuid.uuid4().hex[:8])
                i += 1
                try:
                    r = s.post(mapper.url + "/mbus/durable", json={"k": key},
                               headers={"Idempotency-Key": key}, timeout=20)
                    code = r.status_code
                except requests.RequestException:
                    code = None
                with lock:
                    (accepted if code == 202 else refused if code == 503 else other).append((key, code))

    rpc_result = {}

    def rpc_call():
        # /mbus/waits has a timeout far longer than stopping the broker takes
        # on a busy machine: the only answer this request can get is the 503
        # for the lost connection, never its own 504.
        try:
            rpc_result["r"] = requests.post(mapper.url + "/mbus/waits", json={"nobody": "answers"},
                                            timeout=150)
        except requests.RequestException as e:
            rpc_result["e"] = e

    threads = [threading.Thread(target=publisher, args=(w,), daemon=True) for w in range(6)]
    rpc_t = threading.Thread(target=rpc_call, daemon=True)
    rabbit_stopped = False
    try:
        for t in threads:
            t.start()
        wait_until(lambda: len(accepted) >= 200, timeout=60)
        rpc_t.start()
        # The request is on its way to a worker (none answers) before the
        # broker goes.
        wait_until(lambda: queued(stack, WAITS_Q) == 1, timeout=30)
        rabbit_stopped = True
        stack.script("stop-rabbit")
        wait_until(lambda: requests.get(mapper.url + "/health", timeout=5).status_code == 503, timeout=60)
        n_refused = len(refused)
        wait_until(lambda: len(refused) > n_refused + 20, timeout=60)
        h = requests.get(mapper.url + "/health", timeout=5)
        assert h.status_code == 503
        rpc_t.join(60)
        assert "r" in rpc_result, rpc_result.get("e")
        assert rpc_result["r"].status_code == 503, rpc_result["r"].text
        stack.start_rabbit()
        rabbit_stopped = False
        wait_until(lambda: requests.get(mapper.url + "/health", timeout=5).status_code == 200,
                   timeout=90, interval=0.2)
        n_accepted = len(accepted)
        wait_until(lambda: len(accepted) > n_accepted + 50, timeout=60)
    finally:
        stop.set()
        if rabbit_stopped:
            stack.start_rabbit()
        for t in threads:
            t.join(30)
        if rpc_t.ident:
            rpc_t.join(30)
    print("accepted=%d refused=%d" % (len(accepted), len(refused)))
    assert not other, other[:5]
    assert metric(mapper.url, "fpesa_bus_reconnects_total") >= 1
    stored = {p.message_id for p, _ in get_all(stack, DURABLE_Q, expect=len(accepted), timeout=30)}
    lost = [k for k, _ in accepted if k not in stored]
    assert not lost, "%d of %d accepted messages are not in the queue: %s" % (len(lost), len(accepted), lost[:5])
    wait_stack_mappers(stack)
