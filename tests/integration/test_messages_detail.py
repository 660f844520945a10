"""GET /messages/{id} (one stored message, its permalink's source) and the
server-side filter ?contains= of GET /messages/ (JSONB containment, keyset
paged, a GIN index), through the stack's nginx as the frontend uses them."""
import json
import uuid

import pytest
import requests

from conftest import wait_until


def api(stack, path):
    return stack.nginx + "/api/v1" + path


def post(stack, doc):
    r = requests.post(api(stack, "/messages/"), json=doc, timeout=10)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def one(stack, mid):
    return requests.get(api(stack, "/messages/" + mid), timeout=10)


def test_one_message_by_its_id(stack):
    doc = {"detail": uuid.uuid4().hex, "n": 1234567890123, "nested": {"a": [1, "x", None]}}
    mid = post(stack, doc)
    r = wait_until(lambda: (lambda r: r if r.status_code == 200 else None)(one(stack, mid)), timeout=15)
    body = r.json()
    assert set(body) == {"id", "received_at", "data"}
    assert body["id"] == mid and body["data"] == doc
    listed = requests.get(api(stack, "/messages/?limit=50"), timeout=10).json()["messages"]
    same = [m for m in listed if m["id"] == mid]
    assert same and same[0] == body, "the same message as the list shows"


def test_unknown_id_is_404_and_arguments_are_400(stack):
    r = one(stack, str(uuid.uuid4()))
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == 404
    r = requests.get(api(stack, "/messages/" + str(uuid.uuid4()) + "?limit=1"), timeout=10)
    assert r.status_code == 400, r.text


def test_contains_filters_keyset_pages(stack):
    marker = uuid.uuid4().hex
    ids = {"red": [], "blue": []}
    for i in range(13):
        colour = "red" if i % 3 else "blue"
        ids[colour].append(post(stack, {"marker": marker, "colour": colour, "i": i, "tags": ["t%d" % (i % 2)]}))
    want = json.dumps({"marker": marker, "colour": "red"})

    def page(before=None):
        params = {"limit": "3", "contains": want}
        if before:
            params["before"] = before
        r = requests.get(api(stack, "/messages/"), params=params, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def all_pages():
        got, nxt = [], None
        while True:
            p = page(nxt)
            got += p["messages"]
            nxt = p["next"]
            if nxt is None:
                return got
    got = wait_until(lambda: (lambda g: g if len(g) == len(ids["red"]) else None)(all_pages()), timeout=15)
    assert [m["id"] for m in got] == list(reversed(ids["red"])), "newest first, each once"
    assert all(m["data"]["colour"] == "red" for m in got)
    # Containment reaches into arrays and nested values.
    r = requests.get(api(stack, "/messages/"), params={"limit": "100", "contains": json.dumps({"marker": marker, "tags": ["t1"]})}, timeout=10)
    assert {m["data"]["i"] for m in r.json()["messages"]} == {i for i in range(13) if i % 2}
    r = requests.get(api(stack, "/messages/"), params={"contains": json.dumps({"marker": marker, "colour": "green"})}, timeout=10)
    assert r.status_code == 200 and r.json() == {"messages": [], "next": None}


@pytest.mark.parametrize("params", [
    {"contains": "{not json"},
    {"contains": "{\"a\": 1, \"a\": 2}"},
    {"contains": "\"text\""},
    {"contains": "{}", "offset": "0"},
])
def test_bad_filters_are_400(stack, params):
    r = requests.get(api(stack, "/messages/"), params=params, timeout=10)
    assert r.status_code == 400, (params, r.text)
    assert "error" in r.json()


def test_the_filter_has_a_gin_index(stack, db):
    with db.cursor() as c:
        c.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'messages' AND indexdef ILIKE '%gin%'")
        defs = [row[0] for row in c.fetchall()]
    assert any("jsonb_path_ops" in d for d in defs), defs
