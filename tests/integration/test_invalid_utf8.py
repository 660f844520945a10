"""Bytes that are not UTF-8 anywhere in a request (path, query, header names
and values, method, multipart field names), sent on a raw socket straight to
a mapper and through nginx: every one is answered with a JSON 4xx whose body
is valid UTF-8, and ordinary requests sent meanwhile through nginx all
succeed (no mapper is taken out of nginx's pool)."""
import json
import socket
import threading

import pytest
import requests

from example_system import ExampleSystem

pytestmark = pytest.mark.timeout(180)


def raw(port, data, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    finally:
        s.close()
    return out


def answer(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
    return status, headers, body


def requests_with_bad_bytes(prefix):
    p = prefix.encode()
    end = b"Host: x\r\nConnection: close\r\n\r\n"
    return {
        "path": b"GET " + p + b"/mess\xffages/ HTTP/1.1\r\n" + end,
        "path-percent": b"GET " + p + b"/messages/%ff%fe HTTP/1.1\r\n" + end,
        "query": b"GET " + p + b"/messages/?\xff=1 HTTP/1.1\r\n" + end,
        "query-value": b"GET " + p + b"/messages/?limit=\xe2\x82 HTTP/1.1\r\n" + end,
        "query-percent": b"GET " + p + b"/messages/?limit=%e2%82 HTTP/1.1\r\n" + end,
        "method": b"G\xffT " + p + b"/messages/ HTTP/1.1\r\n" + end,
        "header-name": b"GET " + p + b"/messages/ HTTP/1.1\r\nX-\xff\xfe: 1\r\n" + end,
        "header-value": b"GET " + p + b"/messages/ HTTP/1.1\r\nX-Note: caf\xe9\r\n" + end,
        "content-type": b"POST " + p + b"/messages/ HTTP/1.1\r\nContent-Type: application/\xff\r\n"
                        b"Content-Length: 2\r\n" + end + b"{}",
        "idempotency-key": b"POST " + p + b"/messages/ HTTP/1.1\r\nContent-Type: application/json\r\n"
                           b"Idempotency-Key: \xc3\r\nContent-Length: 2\r\n" + end + b"{}",
        "body": b"POST " + p + b"/messages/ HTTP/1.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 10\r\n" + end + b'{"a":"\xff\xfe"}',
    }


def check_json_4xx(name, resp):
    assert resp, "%s: no answer at all" % name
    status, headers, body = answer(resp)
    assert 400 <= status < 500, "%s: %d %r" % (name, status, body[:200])
    assert headers.get(b"Content-Type", b"").startswith(b"application/json"), (name, headers)
    doc = json.loads(body.decode("utf-8"))  # strict: fails on bytes that are not UTF-8
    assert doc["error"]["code"] == status, (name, doc)
    assert doc["error"]["description"], name


class Background:
    """Ordinary GETs through nginx for as long as the test runs, counted."""

    def __init__(self, url):
        self.url, self.stop, self.ok, self.failed = url, threading.Event(), 0, []
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        s = requests.Session()
        while not self.stop.is_set():
            try:
                r = s.get(self.url, timeout=10)
                if r.status_code == 200:
                    self.ok += 1
                else:
                    self.failed.append(r.status_code)
            except requests.RequestException as e:
                self.failed.append(repr(e))

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join(30)


@pytest.mark.parametrize("via", ["mapper", "nginx"])
def test_bad_bytes_get_a_json_4xx_and_ordinary_requests_go_on(stack, via):
    port, prefix = (stack.mapper_port, "") if via == "mapper" else (stack.nginx_port, "/api/v1")
    with Background(stack.nginx + "/api/v1/messages/?limit=1") as bg:
        for _ in range(5):
            for name, req in requests_with_bad_bytes(prefix).items():
                check_json_4xx(name, raw(port, req))
    assert not bg.failed, "ordinary requests failed meanwhile: %r" % bg.failed[:10]
    assert bg.ok > 0


def test_a_cut_character_is_never_cut_in_an_error(stack):
    # A path of 300 three-byte characters: the description quotes at most a
    # part of it, and never half of a character.
    path = ("/nope/" + "€" * 300).encode()
    status, _, body = answer(raw(stack.mapper_port,
                                 b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert status == 404
    desc = json.loads(body.decode("utf-8"))["error"]["description"]
    assert "\ufffd" not in desc and "€" in desc


@pytest.fixture(scope="module")
def ing(stack):
    def ready(s):
        return s.get("/records?next=%21").status_code == 400

    s = ExampleSystem(stack, "ingestion", [stack.aux_port + n for n in (30, 31, 32)], ready)
    yield s
    s.close()


def test_multipart_field_names_that_are_not_utf8(ing):
    boundary = b"XyZ"
    for name in [b"\xff", b"da\xe2\x82ta", b"data\xc0\xaf"]:
        body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"" + name + b"\"\r\n\r\n{}\r\n"
                b"--XyZ\r\nContent-Disposition: form-data; name=\"" + name + b"\"; filename=\"a\xff.json\"\r\n"
                b"Content-Type: application/json\r\n\r\n{}\r\n--XyZ--\r\n")
        req = (b"POST /dummy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               b"Content-Type: multipart/form-data; boundary=" + boundary + b"\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        check_json_4xx(repr(name), raw(ing.port, req))
