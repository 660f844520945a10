"""Rate limits per route (endpoints[].rate_limit): a burst is taken, the
next request is refused with 429, Retry-After, RateLimit and
RateLimit-Policy, and after Retry-After seconds the bucket has refilled."""
import os
import time

import pytest
import requests

import auth_util
from conftest import wait_until, write_config

CONFIG = """
auth:
  api_keys:
    - { name: one, sha256: "%s" }
    - { name: two, sha256: "%s" }
endpoints:
  - path: /rl/client/
    method: POST
    mode: publish
    body: { type: object }
    auth: { anonymous: true }
    rate_limit: { requests: 1, per: 4s, burst: 3, by: client }
  - path: /rl/principal/
    method: POST
    mode: publish
    body: { type: object }
    rate_limit: { requests: 1, per: 1m, burst: 2, by: principal }
  - path: /rl/route/
    method: POST
    mode: publish
    body: { type: object }
    auth: { anonymous: true }
    rate_limit: { requests: 5, per: 1m, by: route }
""" % (auth_util.sha256("k-one"), auth_util.sha256("k-two"))


@pytest.fixture
def limited(stack, proc, tmp_path):
    port = stack.aux_port + 14
    url = "http://127.0.0.1:%d" % port
    p = proc.start([os.path.join(stack.bin, "restmapper"), "--config", write_config(tmp_path, CONFIG)],
                   env=stack.env(FPESA_HTTP_LISTEN="127.0.0.1:%d" % port), wait_http=url + "/health")
    wait_until(lambda: requests.get(url + "/health", timeout=2).status_code == 200, timeout=20)
    p.url = url
    return p


def post(url, **headers):
    return requests.post(url, json={"t": time.time()}, headers=headers, timeout=10)


def test_burst_then_429_with_headers_then_refill(limited):
    url = limited.url + "/rl/client/"
    got = [post(url, **{"X-Real-IP": "192.0.2.1"}) for _ in range(3)]
    assert [r.status_code for r in got] == [202, 202, 202], [r.text for r in got]
    assert got[0].headers["RateLimit-Policy"] == "3;w=4"
    assert got[0].headers["RateLimit"].startswith("limit=3, remaining=2")
    assert "remaining=0" in got[2].headers["RateLimit"]
    r = post(url, **{"X-Real-IP": "192.0.2.1"})
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == 429
    retry = int(r.headers["Retry-After"])
    assert 1 <= retry <= 4
    assert "remaining=0" in r.headers["RateLimit"]
    # Another client has its own bucket.
    assert post(url, **{"X-Real-IP": "192.0.2.2"}).status_code == 202
    # Honouring Retry-After is enough: one token is back by then.
    time.sleep(retry)
    r = post(url, **{"X-Real-IP": "192.0.2.1"})
    assert r.status_code == 202, r.text
    # One token came back, not the whole burst.
    r = post(url, **{"X-Real-IP": "192.0.2.1"})
    assert r.status_code == 429, r.text


def test_limit_per_principal(limited):
    url = limited.url + "/rl/principal/"
    assert [post(url, **{"X-API-Key": "k-one"}).status_code for _ in range(3)] == [202, 202, 429]
    # The same address with another key is another bucket.
    assert post(url, **{"X-API-Key": "k-two"}).status_code == 202
    # Refused credentials are answered 401 before any token is taken.
    assert post(url, **{"X-API-Key": "nope"}).status_code == 401


def test_limit_per_route_counts_everyone(limited):
    url = limited.url + "/rl/route/"
    codes = [post(url, **{"X-Real-IP": "198.51.100.%d" % i}).status_code for i in range(8)]
    assert codes.count(202) == 5 and codes[5:] == [429, 429, 429], codes
