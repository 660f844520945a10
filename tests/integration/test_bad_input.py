"""The bad-input sweep: malformed HTTP sent to nginx and to the mapper
directly. Each must get a 4xx answer or a closed connection, the mapper's
memory must stay bounded, and it must keep serving."""
import json
import os
import socket
import time

import pytest
import requests


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def mapper_pid(stack):
    with open(os.path.join(stack.var, "run", "restmapper.pid")) as f:
        return int(f.read())


def raw(port, data, read_timeout=5.0, chunks=None, delay=0.0):
    """Sends bytes on a fresh connection; returns the status line's code, or
    None when the server closed the connection without an answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    try:
        parts = chunks or [data]
        for p in parts:
            try:
                s.sendall(p)
            except (BrokenPipeError, ConnectionResetError):
                break
            if delay:
                time.sleep(delay)
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        buf = b""
        try:
            while b"\r\n" not in buf:
                got = s.recv(4096)
                if not got:
                    break
                buf += got
        except (socket.timeout, ConnectionResetError):
            pass
        if not buf.startswith(b"HTTP/1."):
            return None
        return int(buf.split(b" ", 2)[1])
    finally:
        s.close()


def post(port, path, body, ctype=b"application/json", extra=b""):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: " + ctype +
            b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n" + extra +
            b"Connection: close\r\n\r\n" + body)


def targets(stack):
    return [(stack.mapper_port, b"/messages/"), (stack.nginx_port, b"/api/v1/messages/")]


def is_refused(code):
    return code is None or 400 <= code < 500


CASES = {
    "truncated request line": lambda p, path: b"POST " + path,
    "truncated headers": lambda p, path: b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Le",
    "truncated body": lambda p, path: (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                       b"application/json\r\nContent-Length: 100\r\n\r\n{\"a\":"),
    "garbage": lambda p, path: b"\x00\xff\xfe garbage \r\n\r\n",
    "huge header": lambda p, path: (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200000 +
                                    b"\r\n\r\n"),
    "many headers": lambda p, path: (b"GET /health HTTP/1.1\r\nHost: x\r\n" +
                                     b"".join(b"X-H%d: v\r\n" % i for i in range(5000)) + b"\r\n"),
    "body over the limit": lambda p, path: post(p, path, b'{"a":"' + b"x" * 300000 + b'"}'),
    "content-length lies big": lambda p, path: (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n"
                                                b"Content-Type: application/json\r\n"
                                                b"Content-Length: 99999999999\r\n\r\n{}"),
    "invalid utf-8": lambda p, path: post(p, path, b'{"a":"\xc3\x28\xff"}'),
    "deeply nested json": lambda p, path: post(p, path, b"[" * 20000 + b"]" * 20000),
    "deeply nested object": lambda p, path: post(p, path, b'{"a":' * 5000 + b"1" + b"}" * 5000),
    "not json": lambda p, path: post(p, path, b"hello"),
    "wrong content type": lambda p, path: post(p, path, b"{}", ctype=b"text/plain"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_requests_are_refused(stack, name):
    for port, path in targets(stack):
        code = raw(port, CASES[name](port, path))
        assert is_refused(code), "%s on port %d got %r" % (name, port, code)
    assert requests.get(stack.mapper + "/health", timeout=5).status_code == 200


def test_ten_thousand_keys_object_is_answered(stack):
    """A 10,000-key object within the size limit is a valid message or a
    clear refusal, never a crash or a hang."""
    body = json.dumps({"k%d" % i: i for i in range(10000)}).encode()
    code = raw(stack.mapper_port, post(stack.mapper_port, b"/messages/", body))
    assert code in (202, 400, 413), code
    assert requests.get(stack.mapper + "/health", timeout=5).status_code == 200


def test_slowloris_does_not_starve_others_and_memory_stays_bounded(stack):
    pid = mapper_pid(stack)
    before = rss_kib(pid)
    socks = []
    try:
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", stack.mapper_port), timeout=5)
            s.sendall(b"POST /messages/ HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        for _ in range(3):
            for s in socks:
                try:
                    s.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    pass
            # Others are still served while the slow ones dribble.
            r = requests.post(stack.mapper + "/messages/", json={"fast": True}, timeout=5)
            assert r.status_code == 202
            time.sleep(0.2)
        # Big bodies refused many times over do not accumulate.
        for _ in range(200):
            raw(stack.mapper_port, post(stack.mapper_port, b"/messages/", b'{"a":"' + b"x" * 300000 + b'"}'))
    finally:
        for s in socks:
            s.close()
    after = rss_kib(pid)
    assert after - before < 64 * 1024, "restmapper grew from %d KiB to %d KiB" % (before, after)
    assert requests.get(stack.mapper + "/health", timeout=5).status_code == 200
