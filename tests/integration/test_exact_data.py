"""Every accepted message stays exact and readable.

A few hundred generated JSON documents (numbers of every shape: beyond 64
bits, beyond any double, tiny, negative zero, long fractions; unicode,
escapes, nesting) are POSTed through nginx and read back through the
websocket, GET with keyset and with offset pagination, and the stored row;
every value is compared as an arbitrary-precision decimal. The same for
examples/ingestion's /records.
"""
import concurrent.futures
import json
import random
import time
import urllib.parse
from decimal import Decimal

import pytest
import requests
import websocket

from conftest import wait_until
from example_system import ExampleSystem

pytestmark = pytest.mark.timeout(300)

N_DOCS = 300


def exact(text):
    """The value of JSON text with every number exact."""
    return json.loads(text, parse_float=Decimal, parse_int=int)


# ---- generated documents ---------------------------------------------------------------

def gen_number(rnd):
    digits = lambda n: "".join(rnd.choice("0123456789") for _ in range(n))
    nz = lambda: rnd.choice("123456789")
    sign = rnd.choice(["", "-"])
    shape = rnd.randrange(12)
    if shape == 0:  # beyond 64 bits
        return sign + nz() + digits(rnd.randrange(19, 60))
    if shape == 1:  # beyond any double
        return sign + nz() + rnd.choice(["", "." + digits(rnd.randrange(1, 5))]) + rnd.choice("eE") + \
            rnd.choice(["", "+"]) + str(rnd.randrange(309, 700))
    if shape == 2:  # below any double
        return sign + nz() + "e-" + str(rnd.randrange(325, 700))
    if shape == 3:  # negative zero
        return rnd.choice(["-0", "-0.0", "-0e5", "-0.000E-3"])
    if shape == 4:  # long fractions
        return sign + rnd.choice(["0", nz()]) + "." + digits(rnd.randrange(18, 80))
    if shape == 5:  # what the issue saw change
        return rnd.choice(["1e19", "-1e19", "1.5e300", "0.1", "1e-400", "123456789012345678901234567890",
                           "9223372036854775807", "9223372036854775808", "-9223372036854775809",
                           "18446744073709551616", "4.9e-324", "1.7976931348623157e308", "2e308"])
    if shape == 6:
        return sign + nz() + digits(rnd.randrange(0, 15)) + "." + digits(rnd.randrange(1, 16)) + \
            "e" + rnd.choice(["-", "+", ""]) + str(rnd.randrange(0, 400))
    if shape == 7:
        return sign + str(rnd.randrange(0, 10 ** 6))
    return sign + str(rnd.randrange(0, 1000)) + "." + digits(rnd.randrange(1, 6))


def gen_string(rnd):
    pieces = ["plain", "é", "日本語", "\U0001F600", "\\u00e9", "\\ud83d\\ude00", "\\n\\t\\\"\\\\",
              "\\/", "\u2028", "a b", "\\u001f", "ZWJ\u200d", "\u00ff\u0100"]
    return '"' + "".join(rnd.choice(pieces) for _ in range(rnd.randrange(0, 5))) + '"'


def gen_value(rnd, depth):
    k = rnd.randrange(10 if depth < 6 else 6)
    if k < 3:
        return gen_number(rnd)
    if k == 3:
        return gen_string(rnd)
    if k == 4:
        return rnd.choice(["true", "false", "null"])
    if k == 5:
        return rnd.choice(["[]", "{}", "[[[]]]", '{"":{}}'])
    if k < 8:
        items = [gen_value(rnd, depth + 1) for _ in range(rnd.randrange(0, 5))]
        return "[" + rnd.choice([",", ", ", " ,\n "]).join(items) + "]"
    return gen_object(rnd, depth + 1, rnd.randrange(0, 5))


def gen_object(rnd, depth, n, first=None):
    keys, members = set(), []
    if first:
        members.append(first)
    for i in range(n):
        key = gen_string(rnd)[:-1] + "k%d" % i + '"'  # distinct keys
        members.append(key + rnd.choice([":", " : "]) + gen_value(rnd, depth))
    return "{" + ",".join(members) + "}"


def gen_docs(seed, n):
    rnd = random.Random(seed)
    docs = []
    for i in range(n):
        if i % 50 == 0:  # a deep one now and then
            inner = gen_number(rnd)
            for _ in range(60):
                inner = "[" + inner + "]"
            doc = '{"seq": %d, "deep": %s}' % (i, inner)
        else:
            doc = gen_object(rnd, 0, rnd.randrange(1, 8), first='"seq": %d' % i)
        docs.append(doc)
    return docs


# ---- reading back ----------------------------------------------------------------------

def keyset_pages(http, base, want, limit=100):
    """Follows "next" from the newest page until every id of want was seen."""
    seen, url = {}, base + "/api/v1/messages/?limit=%d" % limit
    for _ in range(10000):
        r = http.get(url, timeout=30)
        assert r.status_code == 200, r.text[:300]
        doc = exact(r.text)
        for m in doc["messages"]:
            if m["id"] in want:
                seen[m["id"]] = m["data"]
        if len(seen) == len(want) or doc["next"] is None:
            return seen
        url = base + "/api/v1/messages/?limit=%d&before=%s" % (limit, doc["next"])
    pytest.fail("keyset pagination did not end")


def offset_pages(http, base, want, limit=100):
    seen, offset, pid = {}, 0, None
    while True:
        q = {"offset": str(offset), "limit": str(limit)}
        if pid:
            q["paginationId"] = pid
        r = http.get(base + "/api/v1/messages/?" + urllib.parse.urlencode(q), timeout=30)
        assert r.status_code == 200, r.text[:300]
        doc = exact(r.text)
        pid = doc["paginationId"]
        for m in doc["messages"]:
            if m["id"] in want:
                seen[m["id"]] = m["data"]
        offset += limit
        if len(seen) == len(want) or offset >= doc["total"]:
            return seen


def post_all(http_post, docs):
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        return list(ex.map(http_post, docs))


def test_generated_documents_read_back_exactly_everywhere(stack, db):
    docs = gen_docs(1301, N_DOCS)
    expected = [exact(d) for d in docs]
    ws = websocket.create_connection(stack.nginx.replace("http://", "ws://") + "/ws/v1/messages/",
                                     timeout=30)
    frames = {}
    try:
        session = requests.Session()

        def post(doc):
            return session.post(stack.nginx + "/api/v1/messages/", data=doc.encode(),
                                headers={"Content-Type": "application/json"}, timeout=30)

        answers = post_all(post, docs)
        for doc, r in zip(docs, answers):
            assert r.status_code == 202, "%s -> %s %s" % (doc[:200], r.status_code, r.text)
        ids = {r.json()["id"]: e for r, e in zip(answers, expected)}

        deadline = time.time() + 120
        while len(frames) < len(ids) and time.time() < deadline:
            f = exact(ws.recv())
            if f["id"] in ids:
                frames[f["id"]] = f["data"]
    finally:
        ws.close()
    assert len(frames) == len(ids), "%d of %d live frames arrived" % (len(frames), len(ids))

    def stored_rows():
        with db.cursor() as c:
            c.execute("SELECT id, data::text FROM messages WHERE id = ANY(%s)", (list(ids),))
            return {i: exact(t) for i, t in c.fetchall()}

    rows = wait_until(lambda: (lambda r: r if len(r) == len(ids) else None)(stored_rows()),
                      timeout=120)
    http = requests.Session()
    keyset = keyset_pages(http, stack.nginx, ids)
    offset = offset_pages(http, stack.nginx, ids)
    for mid, want in ids.items():
        assert frames[mid] == want, "live frame differs for %s" % mid
        assert rows[mid] == want, "stored row differs for %s" % mid
        assert keyset[mid] == want, "keyset page differs for %s" % mid
        assert offset[mid] == want, "offset page differs for %s" % mid


@pytest.mark.parametrize("body", ['{"x": 1e19}', '{"x": -1e19}', '{"x": 1.5e300}',
                                  '{"x": 123456789012345678901234567890}', '{"x": 1e-400}'])
def test_a_big_number_never_breaks_a_page(stack, http, body):
    r = http.post(stack.nginx + "/api/v1/messages/", data=body,
                  headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 202, r.text
    mid = r.json()["id"]

    def page():
        p = http.get(stack.nginx + "/api/v1/messages/?limit=200", timeout=10)
        assert p.status_code == 200, p.text[:300]
        return [m for m in exact(p.text)["messages"] if m["id"] == mid]

    got = wait_until(page, timeout=30)
    assert got[0]["data"] == exact(body)
    p = http.get(stack.nginx + "/api/v1/messages/?offset=0&limit=100", timeout=10)
    assert p.status_code == 200, p.text[:300]


@pytest.mark.parametrize("body,status,says", [
    ('{"x": 1e131072}', 400, "out of range"),
    ('{"x": 1e-16384}', 400, "out of range"),
    ('{"x": "\\u0000"}', 400, "\\u0000"),
    ('{"x": "\\ud800"}', 400, "surrogate"),
    ('{"x": 1, "x": 2}', 400, "duplicate"),
    ('{"x": 01}', 400, "leading zero"),
    ('{"x": [' + ",".join(["1e100000"] * 2) + ']}', 413, "written out in full"),
])
def test_what_no_store_can_keep_is_refused_before_it_is_accepted(stack, http, body, status, says):
    r = http.post(stack.nginx + "/api/v1/messages/", data=body.encode(),
                  headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == status, r.text
    assert says in r.json()["error"]["description"]


def test_the_json_schema_compares_big_numbers_exactly(stack, proc, tmp_path):
    cfg = tmp_path / "endpoints.yaml"
    cfg.write_text("""
http: { listen: 127.0.0.1:%d }
endpoints:
  - path: /n
    method: POST
    mode: publish
    body:
      type: object
      properties:
        big: { type: integer, minimum: 1e19 }
        tiny: { type: number, exclusiveMinimum: 0, multipleOf: 0.5 }
""" % (stack.aux_port + 3))
    base = "http://127.0.0.1:%d" % (stack.aux_port + 3)
    proc.start([stack.bin + "/restmapper", "--config", str(cfg)],
               env=stack.env(FPESA_HTTP_LISTEN="127.0.0.1:%d" % (stack.aux_port + 3)),
               wait_http=base + "/health")
    wait_until(lambda: requests.get(base + "/health", timeout=2).status_code == 200, timeout=20)

    def post(body):
        return requests.post(base + "/n", data=body, headers={"Content-Type": "application/json"},
                             timeout=10)

    # 9999999999999999999 is below 1e19, though a double rounds it to 1e19.
    assert post('{"big": 10000000000000000001}').status_code == 202
    assert post('{"big": 1e400}').status_code == 202
    r = post('{"big": 9999999999999999999}')
    assert r.status_code == 400 and r.json()["error"]["keyword"] == "minimum", r.text
    r = post('{"big": 10000000000000000000.5}')
    assert r.status_code == 400 and r.json()["error"]["keyword"] == "type", r.text
    r = post('{"tiny": 1e-400}')
    assert r.status_code == 400 and r.json()["error"]["keyword"] == "multipleOf", r.text
    r = post('{"tiny": -1e-400}')
    assert r.status_code == 400 and r.json()["error"]["keyword"] == "exclusiveMinimum", r.text
    assert post('{"tiny": 5e400}').status_code == 202


# ---- examples/ingestion ----------------------------------------------------------------

@pytest.fixture(scope="module")
def ing(stack):
    def ready(s):
        return s.get("/records?next=%21").status_code == 400

    s = ExampleSystem(stack, "ingestion", [stack.aux_port + n for n in (23, 24, 25)], ready)
    yield s
    s.close()


def test_ingestion_records_read_back_exactly(ing, db):
    docs = gen_docs(1302, 200)
    answers = post_all(lambda d: ing.post("/dummy", data={"data": d}), docs)
    for d, r in zip(docs, answers):
        assert r.status_code == 202, "%s -> %s" % (d[:200], r.text)
    ids = {r.json()["id"]: exact(d) for r, d in zip(answers, docs)}

    def all_stored():
        with db.cursor() as c:
            c.execute("SELECT count(*) FROM messages WHERE id = ANY(%s)", (list(ids),))
            return c.fetchone()[0] == len(ids)

    wait_until(all_stored, timeout=120)
    seen, nxt = {}, None
    for _ in range(100000):
        r = ing.get("/records" + ("?next=" + nxt if nxt else ""))
        assert r.status_code == 200, r.text[:300]
        doc = exact(r.text)
        for rec in doc["results"]:
            if rec["message_id"] in ids:
                seen[rec["message_id"]] = rec["data"]
        nxt = doc["next"]
        if nxt is None:
            break
    assert len(seen) == len(ids)
    for mid, want in ids.items():
        assert seen[mid] == want, "record differs for %s" % mid
