"""Mixing with the original Python fpesa: its programs (the doubles in
fpesa_python.py) and ours on one broker vhost, in both start orders, with
messages counted end to end (stored rows, rpc answers, live frames).

Each mix runs on a vhost of its own (the original's names are fixed, and the
shared stack's vhost already holds our durable declarations)."""
import json
import os
import time
import uuid

import pika
import pytest

import fpesa_python as orig
from conftest import wait_until
from handlers_util import Bus, count_rows, start_host, unique

pytestmark = pytest.mark.timeout(180)


def store_config(tmp_path, stack, name, get_compat=None, amqp_url=None, top=""):
    """Our handler host for one test: a publish and an rpc route named
    /<name>/ over the table <name>."""
    path = "/%s/" % name
    get_cfg = "{table: %s%s}" % (name, ", compat: %s" % get_compat if get_compat else "")
    text = """%(top)sbus: {url: "%(amqp)s"}
database: {url: "%(db)s"}
endpoints:
  - {path: "%(path)s", method: POST, mode: publish}
  - {path: "%(path)s", method: GET, mode: rpc}
handlers:
  - {name: post, plugin: messages_post.so, queue: "%(path)s:POST", config: {table: %(t)s}}
  - {name: get, plugin: messages_get.so, queue: "%(path)s:GET", config: %(get)s}
""" % dict(top=top, amqp=amqp_url or stack.amqp_url, db=stack.database_url, path=path, t=name,
           get=get_cfg)
    p = tmp_path / ("%s.yaml" % name)
    p.write_text(text)
    return str(p)


def publish_bare(ch, exchange, data):
    """What the original restmapper sends: the envelope and no properties."""
    ch.basic_publish(exchange, "", json.dumps({"data": data, "args": None}).encode())


# ---- messages without message_id -------------------------------------------------


def test_messages_without_message_id_are_stored_with_a_minted_uuid7(stack, tmp_path, proc, db):
    name = unique("np")
    start_host(proc, stack, store_config(tmp_path, stack, name), expect=2)
    bus = Bus(stack)
    try:
        for i in range(50):
            publish_bare(bus.ch, "/%s/:POST" % name, {"n": i})
        wait_until(lambda: count_rows(db, name) >= 50, timeout=30)
        with db.cursor() as c:
            c.execute("SELECT id, data, received_at FROM %s ORDER BY seq" % name)
            rows = c.fetchall()
        assert [r[1] for r in rows] == [{"n": i} for i in range(50)]
        ids = [r[0] for r in rows]
        assert len(set(ids)) == 50
        for i in ids:
            u = uuid.UUID(i)
            assert u.version == 7
        # Nothing was dead-lettered.
        assert bus.count("/%s/:POST.dlq" % name) == 0
        # The same message again is another message: without an id it cannot
        # be told from the first (documented).
        publish_bare(bus.ch, "/%s/:POST" % name, {"n": 0})
        wait_until(lambda: count_rows(db, name) == 51, timeout=30)
    finally:
        bus.close()


def test_store_positions_have_no_gap_with_redeliveries(stack, tmp_path, proc, db):
    """pos, which offset pages seek on, is 1..N whatever was redelivered,
    within a batch or across batches, and whoever inserted the row."""
    name = unique("pos")
    start_host(proc, stack, store_config(tmp_path, stack, name), expect=2)
    bus = Bus(stack)
    try:
        q = "/%s/:POST" % name
        ids = [bus.post(q, {"n": i}) for i in range(200)]
        for i in range(0, 200, 7):
            bus.post(q, {"n": i}, mid=ids[i])
        for i in range(50):
            publish_bare(bus.ch, q, {"bare": i})
        wait_until(lambda: count_rows(db, name) >= 250, timeout=30)
        with db.cursor() as c:
            # A writer other than messages_post gets its pos from the trigger.
            c.execute("INSERT INTO %s (id, data) VALUES ('by-hand', '{}')" % name)
        for i in range(0, 200, 3):
            bus.post(q, {"n": i}, mid=ids[i])
        bus.post(q, {"last": True})
        wait_until(lambda: count_rows(db, name) >= 252, timeout=30)
        with db.cursor() as c:
            c.execute("SELECT count(*), min(pos), max(pos), count(DISTINCT pos) FROM %s" % name)
            assert c.fetchone() == (252, 1, 252, 252)
            c.execute("SELECT pos FROM %s ORDER BY seq" % name)
            assert [r[0] for r in c.fetchall()] == list(range(1, 253))
    finally:
        bus.close()


# ---- the offset contract in the original's shape ---------------------------------


def _fill_both(db, table, double_table, n):
    """n messages into our store (through the trigger that numbers them) and
    into the original's table, in the same order."""
    with db.cursor() as c:
        c.execute("CREATE TABLE %s (id serial PRIMARY KEY, inserted timestamp DEFAULT now(),"
                  " message jsonb)" % double_table)
        for i in range(n):
            data = json.dumps({"n": i, "text": "m%d" % i})
            c.execute("INSERT INTO %s (id, data) VALUES (%%s, %%s)" % table,
                      (str(uuid.uuid4()), data))
            c.execute("INSERT INTO %s (message) VALUES (%%s)" % double_table, (data,))


def test_offset_pages_equal_the_originals_answers(stack, tmp_path, proc, db):
    name = unique("off")
    start_host(proc, stack, store_config(tmp_path, stack, name, get_compat="fpesa-python"),
               expect=2)
    bus = Bus(stack)
    double = orig.MessagesGet(stack.amqp_url, stack.database_url, table=name + "_orig")
    try:
        get_q = "/%s/:GET" % name
        # An empty store: paginationId 0, as the original answers.
        with db.cursor() as c:
            c.execute("CREATE TABLE %s_orig (id serial PRIMARY KEY,"
                      " inserted timestamp DEFAULT now(), message jsonb)" % name)
        empty = {"offset": "0", "limit": "10"}
        assert bus.rpc(get_q, empty) == double.answer(empty)
        assert bus.rpc(get_q, empty) == {"paginationId": 0, "offset": 0, "limit": 10, "total": 0,
                                         "messages": []}
        with db.cursor() as c:
            c.execute("DROP TABLE %s_orig" % name)
        _fill_both(db, name, name + "_orig", 257)
        first = bus.rpc(get_q, {"offset": "0", "limit": "10"})
        assert list(first) == ["paginationId", "offset", "limit", "total", "messages"]
        assert isinstance(first["paginationId"], int)
        pid = str(first["paginationId"])
        cases = [{"offset": "0", "limit": "10"}, {"offset": "10", "limit": "10"},
                 {"offset": "250", "limit": "10"}, {"offset": "300", "limit": "10"},
                 {"offset": "0", "limit": "500"}, {"offset": "5", "limit": "3",
                                                   "paginationId": pid},
                 {"offset": "0", "limit": "7", "paginationId": "100"},
                 {"offset": "95", "limit": "10", "paginationId": "100"},
                 {"offset": "0", "limit": "10", "paginationId": "99999"}]
        for args in cases:
            assert bus.rpc(get_q, args) == double.answer(args), args
        # Messages that arrive later do not move a frozen view.
        with db.cursor() as c:
            for i in range(5):
                c.execute("INSERT INTO %s (id, data) VALUES (%%s, %%s)" % name,
                          (str(uuid.uuid4()), json.dumps({"late": i})))
        again = bus.rpc(get_q, {"offset": "0", "limit": "10", "paginationId": pid})
        assert again == first
        assert bus.rpc(get_q, {"offset": "0", "limit": "1"})["messages"] == [{"late": 4}]
        # Walking every page the way Saved.vue does sees each message once.
        seen, offset, total = [], 0, None
        page = bus.rpc(get_q, {"offset": "0", "limit": "10"})
        pid, total = page["paginationId"], page["total"]
        while True:
            seen += page["messages"]
            offset += 10
            if not offset < total:
                break
            page = bus.rpc(get_q, {"offset": str(offset), "limit": "10", "paginationId": str(pid)})
        assert len(seen) == total == 262
        assert seen[0] == {"late": 4} and seen[-1] == {"n": 0, "text": "m0"}
    finally:
        double.db.close()
        bus.close()


def test_offset_pages_in_our_shape_take_a_numeric_pagination_id(stack, tmp_path, proc, db):
    name = unique("ofs")
    start_host(proc, stack, store_config(tmp_path, stack, name), expect=2)
    bus = Bus(stack)
    try:
        with db.cursor() as c:
            for i in range(30):
                c.execute("INSERT INTO %s (id, data) VALUES (%%s, %%s)" % name,
                          (str(uuid.uuid4()), json.dumps({"n": i})))
        get_q = "/%s/:GET" % name
        page = bus.rpc(get_q, {"offset": "0", "limit": "5"})
        assert isinstance(page["paginationId"], str) and page["total"] == 30
        assert [m["data"] for m in page["messages"]] == [{"n": i} for i in range(29, 24, -1)]
        by_number = bus.rpc(get_q, {"offset": "2", "limit": "5", "paginationId": "20"})
        assert by_number["total"] == 20
        assert [m["data"] for m in by_number["messages"]] == [{"n": i} for i in range(17, 12, -1)]
    finally:
        bus.close()
