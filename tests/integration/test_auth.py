"""Authentication and authorization per route and per live channel, through
nginx and directly: API keys (by hash), JWT (HS256 inline, RS256 PEM file,
ES256 and RS256 from a JWKS file) with exp/nbf/iss/aud, scopes and roles;
401 with WWW-Authenticate, 403 for a missing scope or role, both JSON; the
principal on the bus; --check of a bad auth section."""
import base64
import json
import os
import socket
import subprocess
import time
import uuid

import pytest
import requests
import websocket

import auth_util
from auth_util import API_KEY_READER, API_KEY_WRITER, AUDIENCE, ISSUER
from conftest import ROOT, Procs, wait_until, write_config


class SecureSystem:
    """restmapper, liveupdate and nginx of this module with auth_util's
    configuration, on spare ports, against the test stack's broker."""

    def __init__(self, stack, folder):
        self.stack = stack
        self.keys = auth_util.Keys(folder)
        self.config = os.path.join(folder, "endpoints.yaml")
        with open(self.config, "w") as f:
            f.write(auth_util.config(self.keys))
        self.mapper_port = stack.aux_port + 9
        self.live_port = stack.aux_port + 11
        self.nginx_port = stack.aux_port + 13
        self.var = os.path.join(folder, "var")
        self.procs = Procs(stack)
        self.nginx_pid = None
        env = stack.env(FPESA_HTTP_LISTEN="127.0.0.1:%d" % self.mapper_port,
                        FPESA_LIVE_LISTEN="127.0.0.1:%d" % self.live_port)
        try:
            self.mapper = self.procs.start([os.path.join(stack.bin, "restmapper"), "--config", self.config],
                                           env=env, wait_http=self.direct("/health"))
            self.live = self.procs.start([os.path.join(stack.bin, "liveupdate"), "--config", self.config],
                                         env=env, wait_http="http://127.0.0.1:%d/health" % self.live_port)
            self._start_nginx()
            wait_until(lambda: requests.get(self.direct("/health"), timeout=2).status_code == 200, timeout=20)
            wait_until(lambda: requests.get("http://127.0.0.1:%d/health" % self.live_port,
                                            timeout=2).status_code == 200, timeout=20)
        except Exception:
            self.close()
            raise

    def _start_nginx(self):
        env = self.stack.env(FPESA_STACK="test", FPESA_VAR=self.var, FPESA_NGINX_PORT=self.nginx_port,
                             FPESA_MAPPER_PORT=self.mapper_port, FPESA_MAPPERS=1,
                             FPESA_LIVE_PORT=self.live_port, FPESA_CONFIG=self.config)
        env.pop("FPESA_LOG", None)
        subprocess.run([os.path.join(ROOT, "scripts", "nginx-conf.sh")], env=env, check=True,
                       timeout=30, capture_output=True)
        prefix = os.path.join(self.var, "nginx")
        os.makedirs(os.path.join(self.var, "log"), exist_ok=True)
        subprocess.run(["/usr/sbin/nginx", "-p", prefix, "-c", os.path.join(prefix, "nginx.conf")],
                       check=True, timeout=30, capture_output=True)
        pidfile = os.path.join(prefix, "nginx.pid")
        wait_until(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), timeout=10)
        self.nginx_pid = int(open(pidfile).read())
        wait_until(lambda: requests.get(self.proxied("/health"), timeout=2).status_code == 200, timeout=20)

    def direct(self, path):
        return "http://127.0.0.1:%d%s" % (self.mapper_port, path)

    def proxied(self, path):
        return "http://127.0.0.1:%d/api/v1%s" % (self.nginx_port, path)

    def ws(self, path, via_nginx=True):
        if via_nginx:
            return "ws://127.0.0.1:%d/ws/v1%s" % (self.nginx_port, path)
        return "ws://127.0.0.1:%d%s" % (self.live_port, path)

    def close(self):
        if self.nginx_pid:
            try:
                os.kill(self.nginx_pid, 15)
            except ProcessLookupError:
                pass
            deadline = time.time() + 10
            while time.time() < deadline:
                try:
                    os.kill(self.nginx_pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
        self.procs.stop_all()


@pytest.fixture(scope="module")
def secure(stack, tmp_path_factory):
    s = SecureSystem(stack, str(tmp_path_factory.mktemp("secure")))
    try:
        yield s
    finally:
        s.close()


def creds(keys):
    """Every credential of the matrix: name -> headers."""
    bearer = lambda t: {"Authorization": "Bearer " + t}
    return {
        "none": {},
        "bad key": {"X-API-Key": "not-a-key"},
        "bad token": bearer(keys.token()[:-4] + "AAAA"),
        "expired": bearer(keys.token(exp=-120)),
        "not yet valid": bearer(keys.token(nbf=600)),
        "wrong audience": bearer(keys.token(aud="someone-else")),
        "wrong issuer": bearer(keys.token(iss="https://other.test")),
        "no exp": bearer(keys.token(exp=None)),
        "no scope": bearer(keys.token(scope="profile")),
        "reader key": {"X-API-Key": API_KEY_READER},
        "good HS256": bearer(keys.token("HS256")),
        "good RS256": bearer(keys.token("RS256")),
        "good ES256 (JWKS)": bearer(keys.token("ES256")),
        "good RS256 (JWKS)": bearer(keys.token("RS256", kid="rsa-jwks")),
        "writer key": {"X-API-Key": API_KEY_WRITER},
        "admin token": bearer(keys.token(roles=["admin"])),
    }


UNAUTH = ["bad key", "bad token", "expired", "not yet valid", "wrong audience", "wrong issuer", "no exp"]
GOOD = ["good HS256", "good RS256", "good ES256 (JWKS)", "good RS256 (JWKS)", "writer key", "admin token"]

# route -> credential -> expected status (publish answers 202 once accepted).
MATRIX = {
    "/sec/open/": dict({c: 202 for c in ["none"] + UNAUTH + GOOD}, **{"no scope": 202, "reader key": 202}),
    "/sec/any/": dict({"none": 401, "no scope": 202, "reader key": 202},
                      **{c: 401 for c in UNAUTH}, **{c: 202 for c in GOOD}),
    "/sec/write/": dict({"none": 401, "no scope": 403, "reader key": 403},
                        **{c: 401 for c in UNAUTH}, **{c: 202 for c in GOOD}),
    "/sec/jwt-only/": dict({"none": 401, "no scope": 403, "reader key": 401, "writer key": 401},
                           **{c: 401 for c in UNAUTH},
                           **{c: 403 for c in GOOD if "key" not in c and c != "admin token"},
                           **{"admin token": 202}),
}


def check(r, want, route, cred):
    assert r.status_code == want, "%s with %s: %s %s" % (route, cred, r.status_code, r.text)
    if want in (401, 403):
        body = r.json()
        assert body["error"]["code"] == want and body["error"]["description"], body
        challenge = r.headers.get("WWW-Authenticate", "")
        assert 'realm="fpesa-test"' in challenge, (route, cred, r.headers)
        if want == 403 and "Bearer" in challenge:
            assert 'error="insufficient_scope"' in challenge
    elif want == 202:
        assert "id" in r.json()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("via", ["nginx", "direct"])
def test_rest_auth_matrix(secure, via):
    table = creds(secure.keys)
    url = secure.proxied if via == "nginx" else secure.direct
    with requests.Session() as s:
        for route, row in MATRIX.items():
            for cred, want in row.items():
                r = s.post(url(route), json={"probe": cred}, headers=table[cred], timeout=10)
                check(r, want, route, cred)


def test_algorithm_confusion_and_unsigned_tokens_are_refused(secure):
    """An HS256 token keyed with the RSA public key's PEM, and an "alg":
    "none" token, find no key."""
    pem = open(secure.keys.rsa_pem_file).read()
    now = int(time.time())
    claims = {"sub": "mallory", "exp": now + 600, "aud": AUDIENCE, "iss": ISSUER, "scope": "messages:write"}

    def b64(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    import hashlib
    import hmac
    head = b64({"alg": "HS256", "typ": "JWT", "kid": "rsa1"}) + "." + b64(claims)
    sig = base64.urlsafe_b64encode(hmac.new(pem.encode(), head.encode(), hashlib.sha256).digest()).rstrip(b"=")
    confused = head + "." + sig.decode()
    unsigned = b64({"alg": "none", "typ": "JWT"}) + "." + b64(claims) + "."
    for tok in (confused, unsigned):
        r = requests.post(secure.direct("/sec/write/"), json={}, headers={"Authorization": "Bearer " + tok},
                          timeout=10)
        assert r.status_code == 401, r.text


def test_principal_reaches_the_worker_and_no_key_is_logged(secure, amqp):
    """The accepted message carries x-fpesa-principal; neither the API key
    nor the token is written to any log."""
    ch = amqp.channel()
    queue = "/sec/write/:POST"
    ch.queue_purge(queue)
    token = secure.keys.token("RS256", sub="bob", scope="messages:write extra")
    marker = uuid.uuid4().hex
    r = requests.post(secure.direct("/sec/write/"), json={"m": marker},
                      headers={"Authorization": "Bearer " + token}, timeout=10)
    assert r.status_code == 202, r.text
    r = requests.post(secure.proxied("/sec/write/"), json={"m": marker + "k"},
                      headers={"X-API-Key": API_KEY_WRITER}, timeout=10)
    assert r.status_code == 202, r.text
    seen = {}

    def got():
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method:
            seen[json.loads(body)["data"]["m"]] = json.loads(props.headers["x-fpesa-principal"])
        return len(seen) >= 2
    wait_until(got, timeout=10)
    assert seen[marker] == {"kind": "jwt", "name": "bob", "scopes": ["messages:write", "extra"], "roles": []}
    assert seen[marker + "k"]["kind"] == "api_key" and seen[marker + "k"]["name"] == "writer"
    logs = [secure.mapper.logfile, secure.live.logfile,
            os.path.join(secure.var, "log", "nginx-access.log"), os.path.join(secure.var, "log", "nginx-error.log")]
    for path in logs:
        if os.path.exists(path):
            text = open(path, errors="replace").read()
            assert API_KEY_WRITER not in text and token not in text, path


def test_plugins_read_the_principal_through_the_abi(secure):
    """A handler plugin gets the sender from fpesa_message_principal(): the
    echo plugin answers it back, for a token and for a key."""
    host = secure.procs.start([os.path.join(secure.stack.bin, "handler"), "--config", secure.config],
                              env=secure.stack.env(FPESA_PLUGIN_DIR=secure.stack.plugins))
    try:
        wait_until(lambda: "consuming handler=whoami" in open(host.logfile, errors="replace").read(),
                   timeout=30)
        token = secure.keys.token("RS256", sub="carol", scope="messages:read")
        r = requests.post(secure.proxied("/sec/whoami/"), json={"q": 1},
                          headers={"Authorization": "Bearer " + token}, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["principal"] == {"kind": "jwt", "name": "carol", "scopes": ["messages:read"],
                                         "roles": []}
        r = requests.post(secure.direct("/sec/whoami/"), json={"q": 2},
                          headers={"X-API-Key": API_KEY_WRITER}, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["principal"]["kind"] == "api_key" and r.json()["principal"]["name"] == "writer"
        assert r.json()["echo"]["data"] == {"q": 2}
        # No credentials: the route needs some, nothing reaches the worker.
        r = requests.post(secure.direct("/sec/whoami/"), json={"q": 3}, timeout=10)
        assert r.status_code == 401, r.text
    finally:
        secure.procs.stop(host)


def ws_status(url, headers=None, origin=None):
    """Sends a websocket handshake for url; returns (101, b"") when it is
    accepted, else the refusal's status and body."""
    assert url.startswith("ws://")
    hostport, _, path = url[5:].partition("/")
    host, _, port = hostport.partition(":")
    lines = ["GET /%s HTTP/1.1" % path, "Host: %s" % hostport, "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
             "Sec-WebSocket-Version: 13"] + list(headers or [])
    if origin:
        lines.append("Origin: " + origin)
    s = socket.create_connection((host, int(port)), timeout=10)
    buf = b""
    try:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while b"\r\n\r\n" not in buf:
            got = s.recv(65536)
            if not got:
                break
            buf += got
        head, _, body = buf.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status == 101:
            return 101, b""
        length = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
        want = int(length[0].split(b":")[1]) if length else None
        while want is not None and len(body) < want:
            got = s.recv(65536)
            if not got:
                break
            body += got
        if want is None:
            s.settimeout(2)
            try:
                while True:
                    got = s.recv(65536)
                    if not got:
                        break
                    body += got
            except socket.timeout:
                pass
        return status, body
    finally:
        s.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("via_nginx", [True, False])
def test_websocket_auth_matrix(secure, via_nginx):
    """The live channel of /sec/write/ needs messages:read: token in the
    query (access_token=) or an API key (api_key=)."""
    k = secure.keys
    url = secure.ws("/sec/write/", via_nginx)
    cases = [
        ("none", "", 401),
        ("bad key", "?api_key=nope", 401),
        ("expired", "?access_token=" + k.token(exp=-120), 401),
        ("wrong audience", "?access_token=" + k.token(aud="x"), 401),
        ("no scope", "?access_token=" + k.token(scope="messages:write"), 403),
        ("writer key", "?api_key=" + API_KEY_WRITER, 101),
        ("reader key", "?api_key=" + API_KEY_READER, 101),
        ("good ES256", "?access_token=" + k.token("ES256"), 101),
    ]
    for name, query, want in cases:
        st, body = ws_status(url + query)
        assert st == want, "%s: %s %r" % (name, st, body)
        if want != 101:
            assert json.loads(body)["error"]["code"] == want
    st, body = ws_status(url + "?api_key=" + API_KEY_READER, origin="http://evil.test")
    assert st == 403 and json.loads(body)["error"]["code"] == 403
    st, _ = ws_status(url + "?api_key=" + API_KEY_READER, origin="http://allowed.test")
    assert st == 101


def test_authenticated_websocket_receives_messages(secure):
    ws = websocket.create_connection(secure.ws("/sec/write/") + "?access_token=" + secure.keys.token(),
                                     timeout=10, origin="http://allowed.test")
    try:
        marker = uuid.uuid4().hex
        deadline = time.time() + 15
        while True:
            r = requests.post(secure.proxied("/sec/write/"), json={"m": marker},
                              headers={"X-API-Key": API_KEY_WRITER}, timeout=10)
            assert r.status_code == 202
            ws.settimeout(1)
            try:
                if marker in ws.recv():
                    break
            except websocket.WebSocketTimeoutException:
                pass
            assert time.time() < deadline, "no live message"
    finally:
        ws.close()


def test_websocket_handshakes_refused_in_json(secure):
    st, body = ws_status(secure.ws("/sec/write/", False) + "?api_key=" + API_KEY_READER,
                         headers=["Sec-WebSocket-Protocol: chat"])
    assert st == 400 and json.loads(body)["error"]["code"] == 400


def test_check_reports_auth_mistakes_with_positions(stack, tmp_path):
    cfg = write_config(tmp_path, """
auth:
  api_keys:
    - { name: a, sha256: "not-a-hash" }
  jwt:
    keys:
      - { alg: HS999, secret: x }
      - { alg: RS256, pem_file: missing.pem }
      - { alg: HS256 }
endpoints:
  - path: /x
    method: POST
    mode: publish
    auth: { methods: [password] }
""")
    r = subprocess.run([os.path.join(stack.bin, "restmapper"), "--check", cfg], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 1
    err = r.stderr
    assert "endpoints.yaml:4:" in err and "sha256" in err, err
    assert "endpoints.yaml:7:" in err and "HS999" in err, err
    assert "endpoints.yaml:8:" in err and "missing.pem" in err, err
    assert "endpoints.yaml:9:" in err and "secret" in err, err
    assert "endpoints.yaml:14:" in err and "password" in err, err
    # The key text itself is never echoed: a hash in the wrong place is.
    cfg2 = write_config(tmp_path, "endpoints:\n  - path: /x\n    method: POST\n    mode: publish\n"
                        "    auth: { scopes: [a] }\n", name="noauth.yaml")
    r = subprocess.run([os.path.join(stack.bin, "restmapper"), "--check", cfg2], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 1 and "noauth.yaml:5:" in r.stderr and "auth" in r.stderr, r.stderr


def sse_status(url, origin=None):
    """The status of GET url as an event stream (the body is not read)."""
    headers = {"Accept": "text/event-stream"}
    if origin:
        headers["Origin"] = origin
    with requests.get(url, headers=headers, stream=True, timeout=10) as r:
        return r.status_code, (r.json() if r.status_code != 200 else None)


@pytest.mark.parametrize("via_nginx", [True, False])
def test_sse_auth_matrix(secure, via_nginx):
    """The live channel as Server-Sent Events: the same rule as its websocket."""
    k = secure.keys
    base = ("http://127.0.0.1:%d/events/v1/sec/write/" % secure.nginx_port if via_nginx
            else "http://127.0.0.1:%d/events/v1/sec/write/" % secure.live_port)
    cases = [
        ("none", "", 401),
        ("bad key", "?api_key=nope", 401),
        ("expired", "?access_token=" + k.token(exp=-120), 401),
        ("wrong audience", "?access_token=" + k.token(aud="x"), 401),
        ("no scope", "?access_token=" + k.token(scope="messages:write"), 403),
        ("reader key", "?api_key=" + API_KEY_READER, 200),
        ("good RS256", "?access_token=" + k.token("RS256"), 200),
    ]
    for name, query, want in cases:
        st, body = sse_status(base + query)
        assert st == want, "%s: %s %r" % (name, st, body)
        if body is not None:
            assert body["error"]["code"] == want
    assert sse_status(base + "?api_key=" + API_KEY_READER, origin="http://evil.test")[0] == 403
