"""The restmapper as an HTTP client sees it: every status code, keep-alive,
CORS, the operational routes, and the envelope a request becomes on the bus.

Tests against the stack's own restmapper use the repository's endpoints.yaml;
tests that need other endpoints start a restmapper of their own on an aux port.
The broker restart test runs last in this file: it stops the stack's RabbitMQ.
"""
import http.client as httpclient
import json
import os
import signal
import socket
import threading
import time
import uuid

import pika
import pytest
import requests

from conftest import wait_until, write_config

JSON = {"Content-Type": "application/json"}


# ---- helpers ---------------------------------------------------------------

def error_of(r, status):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == status
    assert isinstance(body["error"]["description"], str) and body["error"]["description"]
    return body["error"]


def raw_exchange(port, data, timeout=5.0):
    """Sends bytes on a new connection; returns (status, headers, body) of the
    first answer, reading until the server closes or the body is complete."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        buf = b""
        while True:
            try:
                got = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not got:
                break
            buf += got
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if sep:
                length = [int(l.split(b":", 1)[1]) for l in head.split(b"\r\n")
                          if l.lower().startswith(b"content-length:")]
                if length and len(rest) >= length[0]:
                    break
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        headers = {l.split(b":", 1)[0].strip().lower().decode(): l.split(b":", 1)[1].strip().decode()
                   for l in lines[1:] if b":" in l}
        return status, headers, body
    finally:
        s.close()


AUX_CONFIG = """
http:
  max_body: 1KiB
  cors:
    origins: ["http://good.example"]
endpoints:
  - path: /itest/{kind}/items
    method: POST
    mode: publish
    summary: Envelope test
    body:
      type: object
      required: [name]
      properties:
        name: {type: string}
        size: {type: integer, minimum: 0}
    args:
      type: object
      additionalProperties: false
      properties:
        tag: {type: string}
  - path: /itest/plain
    method: PUT
    mode: publish
    status: 201
    validation_status: 422
    content_types: [application/json, text/plain]
    body: {}
  - path: /itest/rpc
    method: POST
    mode: rpc
    timeout: 1500ms
    body: {type: object}
  - path: /itest/slow
    method: GET
    mode: rpc
    timeout: 2s
"""


@pytest.fixture
def aux(stack, proc, tmp_path):
    """A restmapper of this test's own on an aux port, with AUX_CONFIG."""
    port = stack.aux_port + 3
    cfg = write_config(tmp_path, AUX_CONFIG)
    url = "http://127.0.0.1:%d" % port
    p = proc.start([os.path.join(stack.bin, "restmapper"), "--config", cfg],
                   env=stack.env(FPESA_HTTP_LISTEN="127.0.0.1:%d" % port),
                   wait_http=url + "/health")
    wait_until(lambda: requests.get(url + "/health", timeout=2).status_code == 200, timeout=20)
    p.url = url
    p.port = port
    return p


def get_message(amqp, queue, timeout=10):
    ch = amqp.channel()
    deadline = time.time() + timeout
    while time.time() < deadline:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method:
            return props, body
        time.sleep(0.05)
    pytest.fail("no message on %s" % queue)


# ---- the stack's restmapper ------------------------------------------------

def test_health(stack, http):
    r = http.get(stack.mapper + "/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "broker": "connected"}


def test_unknown_route_is_404(stack, http):
    e = error_of(http.get(stack.mapper + "/no/such/route"), 404)
    assert "/no/such/route" in e["description"]
    error_of(http.post(stack.mapper + "/messages", json={}), 404)


def test_wrong_method_is_405_with_allow(stack, http):
    r = http.delete(stack.mapper + "/messages/")
    error_of(r, 405)
    assert set(m.strip() for m in r.headers["Allow"].split(",")) == {"GET", "POST"}
    r = http.post(stack.mapper + "/health", data=b"")
    error_of(r, 405)
    assert r.headers["Allow"] == "GET"


def test_malformed_json_is_400(stack, http):
    e = error_of(http.post(stack.mapper + "/messages/", data=b'{"a":', headers=JSON), 400)
    assert "JSON" in e["description"]


def test_duplicate_keys_are_400(stack, http):
    e = error_of(http.post(stack.mapper + "/messages/", data=b'{"a":1,"a":2}', headers=JSON), 400)
    assert "duplicate" in e["description"]


def test_invalid_utf8_is_400(stack, http):
    error_of(http.post(stack.mapper + "/messages/", data=b'{"a":"\xc3\x28"}', headers=JSON), 400)
    error_of(http.post(stack.mapper + "/messages/", data=b'{"a":"\xed\xa0\x80"}', headers=JSON), 400)


def test_body_schema_violation_is_400(stack, http):
    e = error_of(http.post(stack.mapper + "/messages/", json=[1, 2]), 400)
    assert e["keyword"] == "type"
    assert "type" in e["description"]


def test_query_schema_violation_names_path_and_keyword(stack, http):
    e = error_of(http.get(stack.mapper + "/messages/?limit=abc"), 400)
    assert e["path"] == "/limit"
    assert e["keyword"] == "pattern"
    assert "/limit" in e["description"] and "pattern" in e["description"]


def test_malformed_query_is_400(stack, http):
    # requests would re-encode a bad escape; http.client sends it as written.
    conn = httpclient.HTTPConnection("127.0.0.1", stack.mapper_port, timeout=10)
    try:
        for target in ("/messages/?limit=%zz", "/messages/?limit=%C3%28", "/messages/?=1"):
            conn.request("GET", target)
            r = conn.getresponse()
            body = json.loads(r.read())
            assert r.status == 400, (target, r.status, body)
            assert body["error"]["code"] == 400
    finally:
        conn.close()
    e = error_of(http.get(stack.mapper + "/messages/?limit=1&limit=2"), 400)
    assert "limit" in e["description"]


def test_query_on_an_endpoint_without_args_is_400(stack, http):
    error_of(http.post(stack.mapper + "/messages/?x=1", json={"a": 1}), 400)


def test_wrong_content_type_is_415(stack, http):
    error_of(http.post(stack.mapper + "/messages/", data=b"{}", headers={"Content-Type": "text/plain"}), 415)
    error_of(http.post(stack.mapper + "/messages/", data=b"{}"), 415)  # none at all


def test_content_type_parameters_are_tolerated(stack, http):
    r = http.post(stack.mapper + "/messages/", data=b'{"charset":"ok"}',
                  headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 202, r.text


def test_body_over_the_limit_is_413(stack):
    body = b'{"a":"' + b"x" * (70 * 1024) + b'"}'
    req = (b"POST /messages/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n" % len(body)) + body
    status, headers, body = raw_exchange(stack.mapper_port, req)
    assert status == 413
    assert json.loads(body)["error"]["code"] == 413


def test_chunked_body_over_the_limit_is_413(stack):
    """No Content-Length: the limit applies to what has arrived."""
    chunk = b"x" * 8192
    req = (b"POST /messages/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n" + b'6\r\n{"a":"\r\n' +
           b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(10)) + b"0\r\n\r\n")
    status, _, body = raw_exchange(stack.mapper_port, req)
    assert status == 413
    assert json.loads(body)["error"]["code"] == 413


def test_publish_is_202_with_a_uuid7(stack, http):
    r = http.post(stack.mapper + "/messages/", json={"hello": "world"})
    assert r.status_code == 202, r.text
    mid = uuid.UUID(r.json()["id"])
    assert mid.version == 7
    assert (mid.int >> 80) / 1000.0 == pytest.approx(time.time(), abs=60)


def test_bad_idempotency_key_is_400(stack, http):
    e = error_of(http.post(stack.mapper + "/messages/", json={"a": 1},
                           headers={"Idempotency-Key": "k" * 201}), 400)
    assert "Idempotency-Key" in e["description"]


def test_keep_alive(stack):
    """Several requests, including refusals and a publish, on one connection."""
    conn = httpclient.HTTPConnection("127.0.0.1", stack.mapper_port, timeout=10)
    try:
        conn.connect()
        sock = conn.sock
        for method, path, body, want in [("GET", "/health", None, 200), ("GET", "/nope", None, 404),
                                         ("POST", "/messages/", b'{"k":1}', 202),
                                         ("DELETE", "/messages/", None, 405),
                                         ("POST", "/messages/", b'{"k":', 400),
                                         ("GET", "/health", None, 200)]:
            conn.request(method, path, body=body, headers=JSON if body else {})
            r = conn.getresponse()
            r.read()
            assert r.status == want, (method, path, r.status)
            assert (r.getheader("Connection") or "").lower() != "close"
            assert conn.sock is sock, "the connection was not kept alive after %s %s" % (method, path)
    finally:
        conn.close()


def test_metrics(stack, http):
    http.get(stack.mapper + "/health")
    http.post(stack.mapper + "/messages/", json={"m": 1})
    http.get(stack.mapper + "/nope")
    r = http.get(stack.mapper + "/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    t = r.text
    for needle in ['fpesa_http_requests_total{method="GET",route="/health",status="2xx"}',
                   'fpesa_http_requests_total{method="POST",route="/messages/",status="2xx"}',
                   'route="(unmatched)",status="4xx"',
                   'fpesa_http_request_duration_seconds_bucket{method="POST",route="/messages/",le="+Inf"}',
                   "fpesa_bus_confirm_seconds_count", "fpesa_bus_rpc_seconds_bucket",
                   "fpesa_http_requests_in_flight", "fpesa_bus_connected 1",
                   "fpesa_bus_confirms_total"]:
        assert needle in t, needle
    confirms = [l for l in t.splitlines() if l.startswith("fpesa_bus_confirm_seconds_count")]
    assert int(confirms[0].split()[-1]) >= 1
    for line in t.splitlines():
        if line and not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])


def test_openapi(stack, http):
    import yaml
    with open(stack.config) as f:
        cfg = yaml.safe_load(f)
    r = http.get(stack.mapper + "/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    for ep in cfg["endpoints"]:
        op = doc["paths"][ep["path"]][ep["method"].lower()]
        assert "responses" in op
        if ep.get("summary"):
            assert op["summary"] == ep["summary"]
        if ep.get("body") is not None:
            assert op["requestBody"]["content"]["application/json"]["schema"] == ep["body"]
        names = {(p["name"], p["in"]) for p in op.get("parameters", [])}
        for prop in (ep.get("args") or {}).get("properties", {}):
            assert (prop, "query") in names
        for seg in ep["path"].split("/"):
            if seg.startswith("{"):
                assert (seg[1:-1], "path") in names
    assert "/health" in doc["paths"] and "/metrics" in doc["paths"]
    assert "Error" in doc["components"]["schemas"]


def test_cors_only_configured_origins_and_headers(stack, http):
    """The default file allows the local frontend's origins, not any; the
    allowed request headers are the API's own, never an echo."""
    r = http.get(stack.mapper + "/health", headers={"Origin": "http://anywhere.example"})
    assert "Access-Control-Allow-Origin" not in r.headers
    r = http.options(stack.mapper + "/messages/", headers={
        "Origin": "http://localhost:8888", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-evil"})
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:8888"
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    allowed = r.headers["Access-Control-Allow-Headers"].lower()
    assert "content-type" in allowed and "authorization" in allowed and "x-evil" not in allowed
    error_of(http.options(stack.mapper + "/nope", headers={"Origin": "http://x"}), 404)


# ---- a restmapper of the test's own ----------------------------------------

def test_envelope_and_properties_on_the_bus(aux, amqp, http):
    queue = "/itest/{kind}/items:POST"
    amqp.channel().queue_purge(queue)
    key = "itest-" + uuid.uuid4().hex
    before = int(time.time())
    r = http.post(aux.url + "/itest/caf%C3%A9%20x/items?tag=a%2Bb+c", json={"name": "n", "size": 3},
                  headers={"Idempotency-Key": key})
    assert r.status_code == 202, r.text
    assert r.json() == {"id": key}
    props, body = get_message(amqp, queue)
    assert json.loads(body) == {"data": {"name": "n", "size": 3}, "args": {"tag": "a+b c"},
                                "params": {"kind": "caf\u00e9 x"}}
    assert props.message_id == key
    assert props.content_type == "application/json"
    assert props.delivery_mode == 2
    assert before - 1 <= props.timestamp <= time.time() + 1


def test_envelope_without_query_has_null_args_and_a_uuid7(aux, amqp, http):
    queue = "/itest/{kind}/items:POST"
    amqp.channel().queue_purge(queue)
    r = http.post(aux.url + "/itest/k/items", json={"name": "n"})
    assert r.status_code == 202, r.text
    props, body = get_message(amqp, queue)
    assert json.loads(body) == {"data": {"name": "n"}, "args": None, "params": {"kind": "k"}}
    assert props.message_id == r.json()["id"]
    assert uuid.UUID(props.message_id).version == 7


def test_body_schema_violation_names_path_and_keyword(aux, http):
    e = error_of(http.post(aux.url + "/itest/k/items", json={"name": 5}), 400)
    assert e["path"] == "/name" and e["keyword"] == "type"
    assert "/name" in e["description"] and "type" in e["description"]
    e = error_of(http.post(aux.url + "/itest/k/items", json={"name": "x", "size": -1}), 400)
    assert e["path"] == "/size" and e["keyword"] == "minimum"
    e = error_of(http.post(aux.url + "/itest/k/items", json={}), 400)
    assert e["keyword"] == "required"
    e = error_of(http.post(aux.url + "/itest/k/items?other=1", json={"name": "x"}), 400)
    assert e["keyword"] == "additionalProperties"


def test_configured_status_validation_status_and_content_types(aux, amqp, http):
    amqp.channel().queue_purge("/itest/plain:PUT")
    r = http.put(aux.url + "/itest/plain", data=b'"text"', headers={"Content-Type": "text/plain"})
    assert r.status_code == 201, r.text
    props, body = get_message(amqp, "/itest/plain:PUT")
    assert json.loads(body) == {"data": "text", "args": None}
    error_of(http.put(aux.url + "/itest/plain", data=b"{}", headers={"Content-Type": "text/html"}), 415)
    # A body that is not JSON is answered with the endpoint's validation_status.
    error_of(http.put(aux.url + "/itest/plain", data=b"nope", headers={"Content-Type": "text/plain"}), 422)


def test_endpoint_without_body_schema_refuses_a_body(aux, http):
    error_of(http.get(aux.url + "/itest/slow", data=b"{}", headers=JSON), 400)


def test_configured_body_limit(aux, http):
    error_of(http.post(aux.url + "/itest/k/items", json={"name": "x" * 2000}), 413)
    assert http.post(aux.url + "/itest/k/items", json={"name": "x" * 900}).status_code == 202


def test_cors_listed_origins(aux, http):
    r = http.get(aux.url + "/health", headers={"Origin": "http://good.example"})
    assert r.headers.get("Access-Control-Allow-Origin") == "http://good.example"
    assert "Origin" in r.headers.get("Vary", "")
    r = http.get(aux.url + "/health", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers
    r = http.options(aux.url + "/itest/k/items", headers={"Origin": "http://good.example",
                                                          "Access-Control-Request-Method": "POST"})
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == "http://good.example"


def rpc_worker(stack, queue, answer, stop, handled):
    """Answers each request on queue with answer(request_body) -> (body, props)."""
    conn = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
    ch = conn.channel()
    try:
        while not stop.is_set():
            method, props, body = ch.basic_get(queue, auto_ack=True)
            if not method:
                time.sleep(0.01)
                continue
            handled.append((props, body))
            out = answer(json.loads(body))
            ch.basic_publish("RPC", props.reply_to, json.dumps(out).encode(),
                             pika.BasicProperties(correlation_id=props.correlation_id,
                                                  content_type="application/json"))
    finally:
        conn.close()


def test_rpc_answer_and_error_status(aux, stack, http):
    stop, handled = threading.Event(), []

    def answer(req):
        if req["data"].get("fail"):
            return {"error": {"code": 409, "description": "conflict"}}
        return {"echo": req["data"]}

    t = threading.Thread(target=rpc_worker, args=(stack, "/itest/rpc:POST", answer, stop, handled),
                         daemon=True)
    t.start()
    try:
        r = http.post(aux.url + "/itest/rpc", json={"v": 1})
        assert r.status_code == 200, r.text
        assert r.json() == {"echo": {"v": 1}}
        r = http.post(aux.url + "/itest/rpc", json={"fail": True})
        assert r.status_code == 409
        assert r.json()["error"]["code"] == 409
        assert handled[0][0].message_id and handled[0][0].reply_to and handled[0][0].correlation_id
    finally:
        stop.set()
        t.join()


def test_rpc_timeout_is_504(aux, http):
    start = time.time()
    e = error_of(http.post(aux.url + "/itest/rpc", json={"nobody": "answers"}, timeout=10), 504)
    assert "1500" in e["description"]
    assert time.time() - start < 9


def test_sigterm_drains_in_flight_requests(stack, proc, tmp_path):
    """A request waiting for the bus when SIGTERM arrives still gets its
    answer (here the rpc timeout), and the process exits 0."""
    port = stack.aux_port + 4
    url = "http://127.0.0.1:%d" % port
    p = proc.start([os.path.join(stack.bin, "restmapper"), "--config", write_config(tmp_path, AUX_CONFIG)],
                   env=stack.env(FPESA_HTTP_LISTEN="127.0.0.1:%d" % port), wait_http=url + "/health")
    wait_until(lambda: requests.get(url + "/health", timeout=2).status_code == 200, timeout=20)
    result = {}

    def call():
        try:
            result["r"] = requests.get(url + "/itest/slow", timeout=15)
        except requests.RequestException as e:
            result["e"] = e

    conn = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
    try:
        ch = conn.channel()
        ch.queue_purge("/itest/slow:GET")
        t = threading.Thread(target=call, daemon=True)
        t.start()
        # The request is in flight (published, waiting for its answer) when
        # the signal comes.
        wait_until(lambda: "r" in result or "e" in result
                   or ch.queue_declare("/itest/slow:GET", passive=True).method.message_count > 0,
                   timeout=30, interval=0.02)
    finally:
        conn.close()
    p.send_signal(signal.SIGTERM)
    t.join(20)
    assert "r" in result, result.get("e")
    assert result["r"].status_code == 504
    assert p.wait(15) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/health", timeout=2)


def test_bad_config_exits_1_before_listening(stack, tmp_path):
    import subprocess
    cfg = write_config(tmp_path, "endpoints:\n  - path: /x\n    methd: GET\n")
    r = subprocess.run([os.path.join(stack.bin, "restmapper"), "--config", cfg],
                       env=stack.env(FPESA_HTTP_LISTEN="127.0.0.1:%d" % (stack.aux_port + 5)),
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
    assert "methd" in r.stderr


def test_list_config_keys(stack):
    import subprocess
    r = subprocess.run([os.path.join(stack.bin, "restmapper"), "--list-config-keys"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0
    keys = r.stdout.split()
    assert "endpoints[].path" in keys and "http.max_body" in keys


# ---- last: the broker goes away and comes back -------------------------------

def test_zz_broker_down_is_503_then_recovers(stack, http):
    try:
        stack.script("stop-rabbit")
        wait_until(lambda: http.get(stack.mapper + "/health").status_code == 503, timeout=30)
        h = http.get(stack.mapper + "/health")
        assert h.status_code == 503 and h.json()["broker"] == "disconnected"
        assert h.headers.get("Retry-After") == "1"
        r = http.post(stack.mapper + "/messages/", json={"while": "down"}, timeout=15)
        error_of(r, 503)
        assert r.headers.get("Retry-After") == "1", "a 503 says when to come back"
        m = http.get(stack.mapper + "/metrics").text
        assert "fpesa_bus_connected 0" in m
    finally:
        stack.start_rabbit()
    wait_until(lambda: http.get(stack.mapper + "/health").status_code == 200, timeout=60, interval=0.2)
    r = http.post(stack.mapper + "/messages/", json={"after": "restart"}, timeout=15)
    assert r.status_code == 202, r.text
