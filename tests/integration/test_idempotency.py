"""The Idempotency-Key contract, through both mappers: the same key with the
same request is answered the same 202 and id and stored once; the same key
with another request is refused 409 with a JSON error, and nothing of it is
stored or pushed to live clients, however concurrent the requests. Timers
(examples/timers) follow the same rule."""
import concurrent.futures
import json
import threading
import time
import uuid

import pytest
import requests
import websocket

from conftest import wait_until
from timers_util import Receiver, Timers

pytestmark = pytest.mark.timeout(180)

HDRS = {"Content-Type": "application/json"}


def post(url, body, key, session=None):
    s = session or requests
    return s.post(url + "/messages/", data=body, headers=dict(HDRS, **{"Idempotency-Key": key}),
                  timeout=15)


def stored(db, key):
    with db.cursor() as c:
        c.execute("SELECT data FROM messages WHERE id = %s", (key,))
        return [r[0] for r in c.fetchall()]


def mappers(stack):
    return [stack.mapper, "http://127.0.0.1:%d" % stack.mapper2_port]


def test_same_key_same_body_is_the_same_answer(stack, db):
    key = "same-%s" % uuid.uuid4()
    body = '{"n": 1, "big": 123456789012345678901234567890}'
    a, b = [post(m, body, key) for m in mappers(stack)]
    assert a.status_code == b.status_code == 202, (a.text, b.text)
    assert a.json() == b.json() == {"id": key}
    wait_until(lambda: stored(db, key), timeout=30)
    assert stored(db, key) == [{"n": 1, "big": 123456789012345678901234567890}]


def test_same_key_other_body_is_refused_and_never_pushed(stack, db):
    key = "other-%s" % uuid.uuid4()
    ws = websocket.create_connection(stack.nginx.replace("http://", "ws://") + "/ws/v1/messages/",
                                     timeout=30)
    try:
        a = post(stack.nginx + "/api/v1", '{"v": "first"}', key)
        b = post(stack.nginx + "/api/v1", '{"v": "second"}', key)
        assert a.status_code == 202, a.text
        assert b.status_code == 409, b.text
        err = b.json()["error"]
        assert err["code"] == 409 and "Idempotency-Key" in err["description"]
        # A sentinel sent after both: once its frame is in, every frame of
        # the two requests before it is in too.
        sentinel = requests.post(stack.nginx + "/api/v1/messages/", data='{"sentinel": true}',
                                 headers=HDRS, timeout=15).json()["id"]
        frames = []
        deadline = time.time() + 60
        while time.time() < deadline:
            f = json.loads(ws.recv())
            if f["id"] == key:
                frames.append(f["data"])
            if f["id"] == sentinel:
                break
        else:
            pytest.fail("the sentinel's frame did not arrive")
    finally:
        ws.close()
    assert frames == [{"v": "first"}]
    wait_until(lambda: stored(db, key), timeout=30)
    time.sleep(0.5)
    assert stored(db, key) == [{"v": "first"}]


def test_concurrent_requests_with_one_key_through_two_mappers(stack, db):
    key = "race-%s" % uuid.uuid4()
    bodies = ['{"side": "a"}', '{"side": "b"}']
    n = 16
    start = threading.Barrier(n)

    def one(i):
        s = requests.Session()
        start.wait(timeout=30)
        # Each body goes to both mappers.
        return i % 2, post(mappers(stack)[(i // 2) % 2], bodies[i % 2], key, s)

    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        results = list(ex.map(one, range(n)))
    accepted = {side for side, r in results if r.status_code == 202}
    refused = {side for side, r in results if r.status_code == 409}
    assert all(r.status_code in (202, 409) for _, r in results), [r.text for _, r in results]
    assert len(accepted) == 1, "both bodies were accepted under one key"
    assert refused == {0, 1} - accepted
    assert all(r.json() == {"id": key} for _, r in results if r.status_code == 202)
    winner = json.loads(bodies[accepted.pop()])
    wait_until(lambda: stored(db, key), timeout=30)
    time.sleep(0.5)
    assert stored(db, key) == [winner]


def test_a_key_is_new_again_once_its_time_is_over(stack, db):
    key = "ttl-%s" % uuid.uuid4()
    assert post(stack.mapper, '{"t": 1}', key).status_code == 202
    assert post(stack.mapper, '{"t": 2}', key).status_code == 409
    with db.cursor() as c:  # as if a day had passed
        c.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'"
                  " WHERE key = %s", (key,))
    assert post(stack.mapper, '{"t": 2}', key).status_code == 202
    assert post(stack.mapper, '{"t": 1}', key).status_code == 409


@pytest.fixture(scope="module")
def timers(stack):
    t = Timers(stack, [stack.aux_port + n for n in (26, 27, 28)])
    yield t
    t.close()


@pytest.fixture(scope="module")
def receiver(stack):
    r = Receiver(stack.aux_port + 29)
    yield r
    r.close()


def test_timers_follow_the_same_rule(timers, receiver, db):
    key = str(uuid.uuid4())
    body = {"hours": 0, "minutes": 10, "seconds": 0, "url": receiver.url("/idem")}
    h = {"Idempotency-Key": key}
    a = timers.session.post(timers.url("/timer"), json=body, headers=h, timeout=10)
    b = timers.session.post(timers.url("/timer"), json=body, headers=h, timeout=10)
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    assert a.json()["id"] == b.json()["id"] == key
    other = dict(body, minutes=1)
    c = timers.session.post(timers.url("/timer"), json=other, headers=h, timeout=10)
    assert c.status_code == 409, c.text
    assert "Idempotency-Key" in c.json()["error"]["description"]
    left = timers.get(key).json()["time_left"]
    assert left > 60, "the refused request changed the timer: %s s left" % left
