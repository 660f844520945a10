"""The form ingestion system (examples/ingestion/endpoints.yaml), black-box as
its clients use it: form posts with a JSON document in the field "data",
stored in the message store, and the record list paged to its end, oldest
first. Real broker and database; its own restmapper and handler host on spare
ports."""
import base64
import concurrent.futures
import json
import random
import uuid

import pytest
import requests

from conftest import wait_until
from example_system import ExampleSystem

PAGE = 50  # page_size in examples/ingestion/endpoints.yaml


def _ready(s):
    return s.get("/records?next=%21").status_code == 400


@pytest.fixture(scope="module")
def ing(stack):
    s = ExampleSystem(stack, "ingestion", [stack.aux_port + n for n in (20, 21, 22)], _ready)
    yield s
    s.close()


def stored(db, ids):
    with db.cursor() as c:
        c.execute("SELECT id, data FROM messages WHERE id = ANY(%s)", (list(ids),))
        return dict(c.fetchall())


def token(raw):
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def all_pages(ing, limit=100000):
    """Every page from the first to the one whose next is null."""
    pages, nxt = [], None
    while len(pages) < limit:
        r = ing.get("/records" + ("?next=" + nxt if nxt else ""))
        assert r.status_code == 200, r.text
        doc = r.json()
        assert set(doc) == {"results", "count", "next"}
        assert doc["count"] == len(doc["results"])
        pages.append(doc)
        nxt = doc["next"]
        if nxt is None:
            return pages
        assert doc["count"] == PAGE, "a page before the last is not full"
    pytest.fail("the list did not end")


# ---- POST /dummy ---------------------------------------------------------------------


def test_urlencoded_form_is_stored_as_its_json(ing, db):
    doc = {"sensor": "t-1", "values": [1, 2.5, None], "ok": True, "text": "é & = ?"}
    r = ing.post("/dummy", data={"data": json.dumps(doc)})
    assert r.status_code == 202, r.text
    mid = r.json()["id"]
    wait_until(lambda: stored(db, [mid]))
    assert stored(db, [mid])[mid] == doc


def test_multipart_form_is_stored_as_its_json(ing, db):
    r = ing.post("/dummy", files={"data": (None, '{"via": "multipart", "n": 7}')})
    assert r.status_code == 202, r.text
    mid = r.json()["id"]
    wait_until(lambda: stored(db, [mid]))
    assert stored(db, [mid])[mid] == {"via": "multipart", "n": 7}


def test_any_json_document_is_accepted(ing, db):
    ids = []
    for text in ('[1, 2, 3]', '"just a string"', '42', 'null'):
        r = ing.post("/dummy", data={"data": text})
        assert r.status_code == 202, (text, r.text)
        ids.append((r.json()["id"], json.loads(text)))
    wait_until(lambda: len(stored(db, [i for i, _ in ids])) == len(ids))
    got = stored(db, [i for i, _ in ids])
    assert all(got[i] == v for i, v in ids)


@pytest.mark.parametrize("form", [
    {},                                   # no field
    {"other": "{}"},                      # not the field
    {"data": "{not json"},                # invalid JSON
    {"data": ""},                         # empty
    {"data": "{\"a\": 1} trailing"},      # JSON and more
    {"data": "{}", "extra": "x"},         # an unknown field
])
def test_bad_forms_are_400(ing, form):
    r = ing.post("/dummy", data=form,
                 headers={} if form else {"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400, (form, r.status_code, r.text)
    assert r.json()["error"]["code"] == 400


def test_invalid_json_in_multipart_is_400(ing):
    r = ing.post("/dummy", files={"data": (None, "[1, 2")})
    assert r.status_code == 400, r.text


def test_a_json_body_is_not_a_form(ing):
    r = ing.post("/dummy", json={"data": "{}"})
    assert r.status_code == 415, r.text


def test_over_the_limit_is_413(ing):
    r = ing.post("/dummy", data={"data": json.dumps({"x": "a" * 70000})})
    assert r.status_code == 413, r.text


# ---- GET /records ----------------------------------------------------------------------


def test_1000_form_records_paged_oldest_first_with_ties(ing, db):
    docs = [{"n": i, "run": uuid.uuid4().hex} for i in range(1000)]
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        rs = list(ex.map(lambda d: ing.post("/dummy", data={"data": json.dumps(d)}), docs))
    assert all(r.status_code == 202 for r in rs), [r.text for r in rs if r.status_code != 202][:3]
    ids = [r.json()["id"] for r in rs]
    wait_until(lambda: len(stored(db, ids)) == 1000, timeout=30)

    # Ten timestamps, a microsecond apart, each shared by 100 records, older
    # than anything else stored, so pages of 50 end inside runs of equal
    # timestamps.
    base = "2001-01-01 00:00:00+00"
    offset = random.randrange(10 ** 6, 10 ** 12)
    with db.cursor() as c:
        c.execute("UPDATE messages m SET received_at = %s::timestamptz"
                  " + (%s + (x.k - 1) / 100) * interval '1 microsecond'"
                  " FROM (SELECT id, row_number() OVER (ORDER BY random()) AS k FROM messages"
                  "       WHERE id = ANY(%s)) x WHERE m.id = x.id", (base, offset, ids))
        c.execute("SELECT id, (extract(epoch FROM received_at) * 1000000)::bigint FROM messages"
                  " WHERE id = ANY(%s) ORDER BY received_at, id", (ids,))
        expected = c.fetchall()
        c.execute("SELECT count(*) FROM messages")
        total_before = c.fetchone()[0]
    assert len({t for _, t in expected}) == 10

    pages = all_pages(ing)
    rows = [row for p in pages for row in p["results"]]
    seen = [row["message_id"] for row in rows]
    assert len(seen) == len(set(seen)), "a record was listed twice"
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM messages")
        total_after = c.fetchone()[0]
    if total_before == total_after:  # nothing else was stored meanwhile
        assert len(seen) == total_after, "a record was skipped"
    mine = set(ids)
    listed = [row for row in rows if row["message_id"] in mine]
    assert [row["message_id"] for row in listed] == [i for i, _ in expected]
    by_id = dict(zip(ids, docs))
    assert all(row["data"] == by_id[row["message_id"]] for row in listed)
    assert set(listed[0]) == {"timestamp", "message_id", "data"}
    assert listed[0]["timestamp"].startswith("2001-")
    assert pages[-1]["next"] is None


def test_records_are_oldest_first(ing):
    first = ing.get("/records").json()["results"]
    stamps = [(r["timestamp"], r["message_id"]) for r in first]
    assert stamps == sorted(stamps)


def test_the_last_page_has_next_null(ing):
    # A position past every record: an empty last page.
    r = ing.get("/records?next=" + token("%d:~" % (10 ** 17)))
    assert r.status_code == 200, r.text
    assert r.json() == {"results": [], "count": 0, "next": None}


@pytest.mark.parametrize("bad", [
    "%21%21%21",                   # not base64url
    "abc",                          # not a token once decoded
    token("no colon here"),
    token(":an-id"),                # no time
    token("12x4:an-id"),            # not a number
    token("123:"),                  # no id
    token("123:a\x01b"),            # control character in the id
    token("99999999999999999999999:id"),  # out of range
    "A" * 301,                      # too long
    "A",                            # impossible length
])
def test_bad_token_is_400(ing, bad):
    r = ing.get("/records?next=" + bad)
    assert r.status_code == 400, (bad, r.text)
    assert r.json()["error"]["code"] == 400


def test_unknown_argument_is_400(ing):
    r = ing.get("/records?limit=5")
    assert r.status_code == 400, r.text


# ---- the broker down (last: it restarts the broker) -----------------------------------


def test_broker_down_is_503_then_recovers(ing, stack):
    stack.script("stop-rabbit")
    try:
        # (a Response is falsy when its status is an error: wrap it)
        r, = wait_until(lambda: (lambda x: [x] if x.status_code == 503 else None)(
            ing.post("/dummy", data={"data": "{}"})), timeout=15)
        assert r.json()["error"]["code"] == 503
    finally:
        stack.start_rabbit()
    wait_until(lambda: ing.post("/dummy", data={"data": '{"after": "restart"}'}).status_code == 202,
               timeout=40, interval=0.5)
    # The shared stack's mappers reconnect too, before the next tests use them.
    for port in (stack.mapper_port, stack.mapper2_port):
        wait_until(lambda: _healthy(port), timeout=60, interval=0.5)


def _healthy(port):
    try:
        return requests.get("http://127.0.0.1:%d/health" % port, timeout=2).status_code == 200
    except requests.RequestException:
        return False
