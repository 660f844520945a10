"""The timers system (examples/timers/endpoints.yaml), black-box as a client of a
timer service: create, query, receive the callbacks on time, exactly once,
through failures and a killed scheduler. Real broker, database, restmapper and
handler host, started on spare ports with the timers configuration."""
import concurrent.futures
import signal
import time
import uuid

import pytest

from conftest import wait_until
from timers_util import Receiver, Timers


@pytest.fixture(scope="module")
def timers(stack):
    t = Timers(stack, [stack.aux_port + n for n in (14, 16, 17, 18)])
    yield t
    t.close()


@pytest.fixture(scope="module")
def receiver(stack):
    r = Receiver(stack.aux_port + 15)
    yield r
    r.close()


def prefix():
    return "/hook/%s/" % uuid.uuid4().hex[:10]


def all_fired(db, ids):
    """Every timer of ids is recorded as fired. The scheduler records a
    timer after its webhook answered, and never calls a fired one again, so
    from then on the receiver has every call it will ever get for them."""
    return all(v[1] == "fired" for v in due_times(db, ids).values()) and len(due_times(db, ids)) == len(ids)


def due_times(db, ids):
    with db.cursor() as c:
        c.execute("SELECT id::text, extract(epoch FROM due_at)::float8, state, attempts, last_status"
                  " FROM timers WHERE id = ANY(%s::uuid[])", (list(ids),))
        return {r[0]: r[1:] for r in c.fetchall()}


# ---- the API ----------------------------------------------------------------------


def test_create_answers_id_and_time_left(timers, receiver):
    r = timers.create(receiver.url(prefix() + "one"), hours=1, minutes=2, seconds=3)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert set(doc) == {"id", "time_left"}
    assert doc["time_left"] == 3723
    uuid.UUID(doc["id"])
    g = timers.get(doc["id"])
    assert g.status_code == 200
    assert g.json()["id"] == doc["id"]
    assert 3720 <= g.json()["time_left"] <= 3723


def test_time_left_over_a_day(timers, receiver):
    r = timers.create(receiver.url(prefix()), hours=49, minutes=30, seconds=7)
    assert r.status_code == 200, r.text
    total = 49 * 3600 + 30 * 60 + 7
    assert r.json()["time_left"] == total
    g = timers.get(r.json()["id"]).json()
    assert total - 5 <= g["time_left"] <= total


@pytest.mark.parametrize("body", [
    {"hours": 0, "minutes": 0, "seconds": 0, "url": "http://127.0.0.1/x"},    # zero delay
    {"hours": 0, "minutes": 0, "seconds": -1, "url": "http://127.0.0.1/x"},   # negative
    {"hours": 0, "minutes": 0, "seconds": 1.5, "url": "http://127.0.0.1/x"},  # not an integer
    {"hours": "1", "minutes": 0, "seconds": 0, "url": "http://127.0.0.1/x"},  # a string
    {"minutes": 0, "seconds": 5, "url": "http://127.0.0.1/x"},                # missing part
    {"hours": 0, "minutes": 0, "seconds": 5},                                 # missing url
    {"hours": 0, "minutes": 0, "seconds": 5, "url": "ftp://127.0.0.1/x"},     # scheme
    {"hours": 0, "minutes": 0, "seconds": 5, "url": "/relative"},             # not absolute
    {"hours": 0, "minutes": 0, "seconds": 5, "url": "http://127.0.0.1/x", "extra": 1},
    {"hours": 720, "minutes": 0, "seconds": 1, "url": "http://127.0.0.1/x"},  # over 30 days
    {"hours": 0, "minutes": 0, "seconds": 5, "url": "http://example.com/x"},  # host not allowed
    [1, 2],
])
def test_bad_bodies_get_422(timers, body):
    r = timers.session.post(timers.url("/timer"), json=body, timeout=10)
    assert r.status_code == 422, (body, r.status_code, r.text)
    err = r.json()["error"]
    assert err["code"] == 422 and err["description"]


def test_malformed_json_is_not_a_timer(timers):
    r = timers.session.post(timers.url("/timer"), data=b"{not json",
                            headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code in (400, 422)
    assert "error" in r.json()


def test_get_unknown_is_404_malformed_is_400(timers):
    r = timers.get(str(uuid.uuid4()))
    assert r.status_code == 404 and r.json()["error"]["code"] == 404
    for bad in ("nope", "1234", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", "%27%3B--"):
        r = timers.get(bad)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error"]["code"] == 400


def test_idempotency_key_names_one_timer(timers, receiver):
    key = "client-key-%s" % uuid.uuid4().hex
    body = {"hours": 0, "minutes": 10, "seconds": 0, "url": receiver.url(prefix())}
    a = timers.session.post(timers.url("/timer"), json=body, headers={"Idempotency-Key": key}, timeout=10)
    b = timers.session.post(timers.url("/timer"), json=body, headers={"Idempotency-Key": key}, timeout=10)
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    assert a.json()["id"] == b.json()["id"]


# ---- firing -------------------------------------------------------------------------


def test_200_timers_fire_on_time_exactly_once(timers, receiver, db):
    p = prefix()
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        rs = list(ex.map(lambda i: timers.create(receiver.url(p + str(i)), seconds=1 + i % 5),
                         range(200)))
    assert all(r.status_code == 200 for r in rs), [r.text for r in rs if r.status_code != 200][:3]
    ids = {r.json()["id"] for r in rs}
    assert len(ids) == 200
    wait_until(lambda: len(receiver.ids(p)) >= 200, timeout=60)
    wait_until(lambda: all_fired(db, ids), timeout=60)
    got = receiver.ids(p)
    assert set(got) == ids
    assert all(len(v) == 1 for v in got.values()), {k: v for k, v in got.items() if len(v) > 1}
    due = due_times(db, ids)
    late = sorted(got[i][0] - due[i][0] for i in ids)
    assert late[0] >= -0.05, "a webhook came before its due time: %.3fs" % late[0]
    # On time means woken by the due time, not by the scheduler's idle poll
    # (30 s); the bound leaves room for a machine under load.
    assert late[-1] < 10.0, "the latest webhook came %.3fs after its due time" % late[-1]
    for i in list(ids)[:5]:
        assert timers.get(i).json()["time_left"] == 0


def test_failing_receiver_is_retried_then_fired(timers, receiver, db):
    path = prefix() + "flaky"
    receiver.fail[path] = 2
    r = timers.create(receiver.url(path), seconds=1)
    assert r.status_code == 200, r.text
    tid = r.json()["id"]
    # Retries after 1 s and 2 s (retry_base_ms 1000, doubling).
    wait_until(lambda: due_times(db, [tid])[tid][1] != "pending", timeout=60)
    calls = receiver.calls_to(path)
    assert len(calls) == 3, calls
    assert all(c[2] == {"id": tid} for c in calls)
    assert calls[1][0] - calls[0][0] >= 0.9 and calls[2][0] - calls[1][0] >= 1.9
    state, attempts, last_status = due_times(db, [tid])[tid][1:]
    assert (state, attempts, last_status) == ("fired", 3, 204)


def test_unreachable_receiver_gives_up_and_is_recorded(timers, db):
    # Nothing listens on this port: every attempt fails to connect.
    r = timers.create("http://127.0.0.1:9/never", seconds=1)
    tid = r.json()["id"]
    with db.cursor() as c:
        # Speed the retries up: the outcome, not the backoff, is under test.
        c.execute("UPDATE timers SET attempts = 4 WHERE id = %s", (tid,))
    wait_until(lambda: due_times(db, [tid])[tid][1] != "pending", timeout=60)
    state, attempts, _ = due_times(db, [tid])[tid][1:]
    assert state == "failed" and attempts == 5


def test_scheduler_killed_and_restarted_loses_and_doubles_nothing(timers, receiver, db):
    early, late = prefix(), prefix()
    rs = [timers.create(receiver.url(early + str(i)), seconds=1) for i in range(20)]
    assert all(r.status_code == 200 for r in rs), [r.text for r in rs if r.status_code != 200][:3]
    early_ids = {r.json()["id"] for r in rs}
    # Once the early ones have fired and are recorded, nothing is in flight.
    # The scheduler is frozen from then on, so however slowly the machine
    # creates the late ones, none can fire before the kill: it is killed
    # hard while they wait, and kept down past their due times.
    wait_until(lambda: len(receiver.ids(early)) >= 20 and all_fired(db, early_ids), timeout=60)
    timers.scheduler.send_signal(signal.SIGSTOP)
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            rs = list(ex.map(lambda i: timers.create(receiver.url(late + str(i)), seconds=1 + i % 3),
                             range(60)))
    finally:
        timers.scheduler.send_signal(signal.SIGKILL)
        timers.scheduler.wait()
    assert all(r.status_code == 200 for r in rs), [r.text for r in rs if r.status_code != 200][:3]
    late_ids = {r.json()["id"] for r in rs}
    killed_at = time.time()
    due = due_times(db, late_ids)
    wait_until(lambda: time.time() > max(d[0] for d in due.values()) + 1.0, timeout=30)
    assert len(receiver.ids(late)) == 0, "a webhook was called while the scheduler was down"
    timers.start_scheduler()
    restarted = time.time()
    wait_until(lambda: len(receiver.ids(late)) >= 60, timeout=60)
    wait_until(lambda: all_fired(db, late_ids), timeout=60)
    got_early, got_late = receiver.ids(early), receiver.ids(late)
    assert set(got_early) == early_ids and set(got_late) == late_ids
    assert all(len(v) == 1 for v in list(got_early.values()) + list(got_late.values()))
    assert killed_at < restarted
    # Overdue timers fire as the scheduler starts, not at its idle poll (30 s
    # later); the bound leaves room for a slow start on a loaded machine.
    assert max(v[0] for v in got_late.values()) - restarted < 20.0


def test_competing_schedulers_fire_each_timer_once(timers, receiver, db):
    # A second scheduler process beside the first: four instances compete
    # for the same rows.
    first = timers.scheduler
    extra = timers.start_scheduler()
    try:
        p = prefix()
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            rs = list(ex.map(lambda i: timers.create(receiver.url(p + str(i)), seconds=1 + i % 2),
                             range(300)))
        ids = {r.json()["id"] for r in rs}
        wait_until(lambda: len(receiver.ids(p)) >= 300, timeout=60)
        wait_until(lambda: all_fired(db, ids), timeout=60)
        got = receiver.ids(p)
        assert set(got) == ids
        assert all(len(v) == 1 for v in got.values())
    finally:
        timers.procs.stop(extra)
        timers.scheduler = first
