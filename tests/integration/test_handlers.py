"""The handler host and the message store, against the real broker and database.

Each test runs a host of its own on queues and a table of its own (see
handlers_util.Store), so it neither competes with the stack's host nor sees
other tests' rows. The tests that go through the mapper use the stack's."""
import json
import os
import signal
import subprocess
import threading
import time

import pytest
import requests

from conftest import wait_until
from handlers_util import Bus, Store, count_rows, run_host, start_host, stored_ids, unique, uuid7


@pytest.fixture
def bus(stack):
    b = Bus(stack)
    yield b
    b.close()


# ---- refusing broken plugins ----------------------------------------------------


def _one_handler_config(tmp_path, stack, plugin, config=""):
    p = tmp_path / ("%s.yaml" % unique())
    p.write_text("""bus: {url: "%s"}
database: {url: "%s"}
handlers:
  - {name: broken, plugin: "%s", queue: "%s"%s}
""" % (stack.amqp_url, stack.database_url, plugin, unique("/q"), config))
    return str(p)


@pytest.mark.parametrize("name,needles", [
    ("no_symbol", ["no entry symbol fpesa_handler_v1", "undefined symbol"]),
    ("wrong_abi", ["wrong ABI version", "expected 1", "found 99"]),
    ("short_table", ["too small", "found 8"]),
    ("failing_init", ["init failed", "this plugin always refuses to start"]),
])
def test_broken_plugin_is_refused(stack, tmp_path, name, needles):
    path = os.path.join(stack.test_plugins, name + ".so")
    assert os.path.exists(path), "build the test plugins first (make)"
    rc, err = run_host(stack, _one_handler_config(tmp_path, stack, path))
    assert rc == 1, err
    assert path in err
    for n in needles:
        assert n in err, err


def test_missing_plugin_file_is_refused(stack, tmp_path):
    path = os.path.join(stack.test_plugins, "not_there.so")
    rc, err = run_host(stack, _one_handler_config(tmp_path, stack, path))
    assert rc == 1
    assert "plugin %s: cannot open the file: No such file or directory" % path in err


def test_bad_table_name_fails_init(stack, tmp_path):
    rc, err = run_host(stack, _one_handler_config(tmp_path, stack, "messages_post.so",
                                                  ", config: {table: \"x; drop\"}"))
    assert rc == 1
    assert "not a plain identifier" in err


@pytest.mark.parametrize("args", [["--only", "nope"], ["nope"]])
def test_only_unknown_name_is_refused(stack, tmp_path, args):
    cfg = _one_handler_config(tmp_path, stack, "echo.so")
    r = subprocess.run([os.path.join(stack.bin, "handler"), "--config", cfg, *args],
                       env=stack.env(FPESA_PLUGIN_DIR=stack.plugins), capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 1 and 'no handler named "nope"' in r.stderr


def test_only_runs_the_named_handler(stack, tmp_path, proc, bus):
    """A broken handler beside the named one does not matter: only NAME is loaded."""
    q = unique("/o") + ":POST"
    cfg = tmp_path / "only.yaml"
    cfg.write_text("""bus: {url: "%s"}
endpoints:
  - {path: "%s", method: POST, mode: rpc}
handlers:
  - {name: broken, plugin: "%s", queue: "%s"}
  - {name: echo, plugin: echo.so, queue: "%s"}
""" % (stack.amqp_url, q[:-len(":POST")], os.path.join(stack.test_plugins, "wrong_abi.so"),
           unique("/q"), q))
    start_host(proc, stack, str(cfg), args=("echo",))
    assert bus.rpc(q, data={"k": 1})["echo"]["data"] == {"k": 1}


# ---- the store ------------------------------------------------------------------


def test_messages_stored_once_poison_dead_lettered(stack, tmp_path, proc, bus, db):
    s = Store(stack, tmp_path, batch=50)
    host = s.start_host(proc)
    ids = [bus.post(s.post_q, {"n": i}) for i in range(100)]
    # The same message twice (as a redelivery or a retried publish would).
    bus.post(s.post_q, {"n": 5}, mid=ids[5])
    poison = [bus.post(s.post_q, None, body="{not json"),
              bus.post(s.post_q, None, body=json.dumps({"args": None})),  # no "data"
              bus.post(s.post_q, None, body=json.dumps({"data": "\\u0000"}).replace("\\\\", "\\"))]
    later = [bus.post(s.post_q, {"after_poison": i}) for i in range(20)]
    wait_until(lambda: count_rows(db, s.table) >= 120, timeout=20)
    time.sleep(0.3)
    got = stored_ids(db, s.table)
    assert sorted(got) == sorted(ids + later)
    wait_until(lambda: bus.count(s.post_q + ".dlq") == len(poison))
    dead = []
    for _ in poison:
        m, props, body = bus.ch.basic_get(s.post_q + ".dlq", auto_ack=True)
        dead.append(props.message_id)
    assert sorted(dead) == sorted(poison)
    with db.cursor() as c:
        c.execute("SELECT data FROM %s WHERE id = %%s" % s.table, (ids[7],))
        assert c.fetchone()[0] == {"n": 7}
        c.execute("SELECT version FROM schema_migrations WHERE name = %s", (s.table,))
        assert [r[0] for r in c.fetchall()] == [1, 2]
    proc.stop(host)
    assert host.returncode == 0


def test_received_at_comes_from_the_uuid7(stack, tmp_path, proc, bus, db):
    s = Store(stack, tmp_path)
    s.start_host(proc)
    mid = "018f3a2b-4c5d-7abc-8def-0123456789ab"
    bus.post(s.post_q, {"x": 1}, mid=mid)
    key = bus.post(s.post_q, {"x": 2}, mid="client-key-1")
    wait_until(lambda: count_rows(db, s.table) == 2)
    with db.cursor() as c:
        c.execute("SELECT (extract(epoch FROM received_at) * 1000)::bigint FROM %s WHERE id = %%s"
                  % s.table, (mid,))
        assert c.fetchone()[0] == 0x018f3a2b4c5d
        c.execute("SELECT received_at > now() - interval '1 minute' FROM %s WHERE id = %%s"
                  % s.table, (key,))
        assert c.fetchone()[0]


def test_migration_is_versioned_and_concurrent_safe(stack, tmp_path, proc, db):
    s = Store(stack, tmp_path)
    hosts = [start_host(proc, stack, s.config, expect=2) for _ in range(3)]
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM schema_migrations WHERE name = %s", (s.table,))
        assert c.fetchone()[0] == 2
    for h in hosts:
        proc.stop(h)
        assert h.returncode == 0


def _fill(bus, db, s, n):
    ids = [bus.post(s.post_q, {"n": i}) for i in range(n)]
    wait_until(lambda: count_rows(db, s.table) >= n, timeout=30)
    return ids


def _keep_posting(bus_factory, s, stop, out):
    b = bus_factory()
    try:
        while not stop.is_set():
            out.append(b.post(s.post_q, {"late": True}))
            time.sleep(0.002)
    finally:
        b.close()


def test_keyset_pages_no_dup_no_gap_while_arriving(stack, tmp_path, proc, bus, db):
    s = Store(stack, tmp_path, batch=20)
    s.start_host(proc)
    first = _fill(bus, db, s, 1000)
    stop, late = threading.Event(), []
    t = threading.Thread(target=_keep_posting, args=(lambda: Bus(stack), s, stop, late), daemon=True)
    t.start()
    try:
        seen, cursor, pages = [], None, 0
        while True:
            args = {"limit": "37"}
            if cursor:
                args["before"] = cursor
            page = bus.rpc(s.get_q, args)
            assert set(page) == {"messages", "next"}
            seen += [m["id"] for m in page["messages"]]
            pages += 1
            cursor = page["next"]
            if cursor is None:
                break
            time.sleep(0.005)
    finally:
        stop.set()
        t.join()
    assert len(seen) == len(set(seen)), "duplicates"
    assert set(first) <= set(seen), "gap: %d missing" % len(set(first) - set(seen))
    # Newest first: the 1000 in reverse order of posting (one publisher, one batch order).
    assert [i for i in seen if i in set(first)] == list(reversed(first))
    assert pages >= 1000 // 37
    assert len(late) > 0


def test_offset_contract_frozen_while_arriving(stack, tmp_path, proc, bus, db):
    s = Store(stack, tmp_path, batch=20)
    s.start_host(proc)
    first = _fill(bus, db, s, 1000)
    stop, late = threading.Event(), []
    t = threading.Thread(target=_keep_posting, args=(lambda: Bus(stack), s, stop, late), daemon=True)
    t.start()
    try:
        page = bus.rpc(s.get_q, {"offset": "0", "limit": "500"})
        assert page["limit"] == 100  # clipped
        pid, total = page["paginationId"], page["total"]
        assert total >= 1000
        seen = [m["id"] for m in page["messages"]]
        offset = 100
        while offset < total:
            time.sleep(0.01)
            page = bus.rpc(s.get_q, {"offset": str(offset), "limit": "100", "paginationId": pid})
            assert page["paginationId"] == pid and page["total"] == total
            assert page["offset"] == offset
            seen += [m["id"] for m in page["messages"]]
            offset += 100
    finally:
        stop.set()
        t.join()
    assert len(seen) == total
    assert len(seen) == len(set(seen))
    assert set(first) <= set(seen)
    # A page past the end is empty, not an error.
    past = bus.rpc(s.get_q, {"offset": str(total + 10), "paginationId": pid})
    assert past["messages"] == [] and past["total"] == total


def test_after_resumes_oldest_first(stack, tmp_path, proc, bus, db):
    s = Store(stack, tmp_path)
    s.start_host(proc)
    ids = _fill(bus, db, s, 30)
    page = bus.rpc(s.get_q, {"after": ids[9], "limit": "10"})
    assert [m["id"] for m in page["messages"]] == ids[10:20]
    assert page["next"] == ids[19]
    page = bus.rpc(s.get_q, {"after": page["next"], "limit": "10"})
    assert [m["id"] for m in page["messages"]] == ids[20:30]
    page = bus.rpc(s.get_q, {"after": ids[29]})
    assert page == {"messages": [], "next": None}
    err = bus.rpc(s.get_q, {"after": "no-such-id"})
    assert err["error"]["code"] == 404


@pytest.mark.parametrize("args,needle", [
    ({"limit": "0"}, "limit"),
    ({"limit": "abc"}, "limit"),
    ({"before": "not-a-cursor"}, "before"),
    ({"before": "YjExOQ", "offset": "3"}, "cannot be combined"),
    ({"paginationId": "YjExOQ"}, "paginationId"),
    ({"frobnicate": "1"}, "unknown argument"),
])
def test_bad_arguments_answer_400(stack, tmp_path, proc, bus, args, needle):
    s = Store(stack, tmp_path)
    s.start_host(proc)
    a = bus.rpc(s.get_q, args)
    assert a["error"]["code"] == 400
    assert needle in a["error"]["description"]
    # The host keeps serving.
    assert bus.rpc(s.get_q, {"limit": "1"}) == {"messages": [], "next": None}


def test_limits_default_and_clip(stack, tmp_path, proc, bus, db):
    s = Store(stack, tmp_path, batch=200)
    s.start_host(proc)
    _fill(bus, db, s, 1100)
    assert len(bus.rpc(s.get_q, None)["messages"]) == 50
    assert len(bus.rpc(s.get_q, {"limit": "5000"})["messages"]) == 1000
    assert len(bus.rpc(s.get_q, {"offset": "0"})["messages"]) == 50


def test_kill9_mid_batch_loses_nothing(stack, tmp_path, proc, bus, db):
    s = Store(stack, tmp_path, batch=100, prefetch=500)
    bus.declare_publish(s.post_q)
    ids = [bus.post(s.post_q, {"n": i}) for i in range(8000)]
    host = s.start_host(proc)
    wait_until(lambda: count_rows(db, s.table) > 0, timeout=20)
    host.send_signal(signal.SIGKILL)
    host.wait()
    stored_at_kill = count_rows(db, s.table)
    assert stored_at_kill < 8000, "the host drained everything before the kill; use more messages"
    s.start_host(proc)
    wait_until(lambda: count_rows(db, s.table) >= 8000, timeout=60)
    time.sleep(0.5)
    assert count_rows(db, s.table) == 8000
    assert sorted(stored_ids(db, s.table)) == sorted(ids)
    wait_until(lambda: bus.count(s.post_q) == 0)


def test_sigterm_finishes_the_batch_and_exits_0(stack, tmp_path, proc, bus, db):
    s = Store(stack, tmp_path, batch=500, prefetch=1000)
    bus.declare_publish(s.post_q)
    ids = [bus.post(s.post_q, {"n": i}) for i in range(5000)]
    host = s.start_host(proc)
    wait_until(lambda: count_rows(db, s.table) > 0, timeout=20)
    proc.stop(host)
    assert host.returncode == 0
    stored = count_rows(db, s.table)
    # Whatever was stored was acked, and the rest is still queued.
    wait_until(lambda: bus.count(s.post_q) + stored == 5000)
    s.start_host(proc)
    wait_until(lambda: count_rows(db, s.table) == 5000, timeout=60)
    assert sorted(stored_ids(db, s.table)) == sorted(ids)


def test_database_restart_loses_and_doubles_nothing(stack, tmp_path, proc, bus, db):
    s = Store(stack, tmp_path, batch=50)
    s.start_host(proc)
    before = _fill(bus, db, s, 100)
    db.close()
    stack.script("stop-pg")
    try:
        during = [bus.post(s.post_q, {"during": i}) for i in range(300)]
        # The rpc side answers 503 while the database is away.
        a = bus.rpc(s.get_q, {"limit": "5"})
        assert a["error"]["code"] == 503
        time.sleep(1.5)
    finally:
        stack.script("start-pg")
    import psycopg2
    conn = psycopg2.connect(stack.database_url)
    conn.autocommit = True
    try:
        wait_until(lambda: count_rows(conn, s.table) >= 400, timeout=60)
        time.sleep(0.5)
        assert sorted(stored_ids(conn, s.table)) == sorted(before + during)
    finally:
        conn.close()
    wait_until(lambda: "messages" in bus.rpc(s.get_q, {"limit": "5"}), timeout=20)


def test_broker_restart_reconnects(stack, tmp_path, proc, bus, db):
    s = Store(stack, tmp_path)
    host = s.start_host(proc)
    _fill(bus, db, s, 10)
    bus.close()
    stack.script("stop-rabbit")
    stack.start_rabbit()
    b2 = Bus(stack)
    try:
        # Our own queues are durable: the host redeclares them on reconnect.
        wait_until(lambda: open(host.logfile).read().count(" consuming ") >= 4, timeout=60)
        more = [b2.post(s.post_q, {"again": i}) for i in range(10)]
        wait_until(lambda: count_rows(db, s.table) == 20, timeout=30)
        assert set(more) <= set(stored_ids(db, s.table))
    finally:
        b2.close()


# ---- echo: a route and its worker from the YAML alone ------------------------------


def test_echo_over_the_bus(stack, tmp_path, proc, bus):
    q = "/%s/{word}:POST" % unique()
    cfg = tmp_path / "echo.yaml"
    cfg.write_text("""bus: {url: "%s"}
endpoints:
  - {path: "%s", method: POST, mode: rpc}
handlers:
  - {name: echo, plugin: echo.so, queue: "%s"}
""" % (stack.amqp_url, q[:-len(":POST")], q))
    start_host(proc, stack, str(cfg))
    a = bus.rpc(q, data={"a": [1, 2]}, params={"word": "hi"})
    assert a == {"echo": {"data": {"a": [1, 2]}, "args": None, "params": {"word": "hi"}}}


def test_c_plugin_reads_the_headers_of_a_binary_message(stack, tmp_path, proc):
    """A raw (non-JSON) body travels with the rest of the request in x-fpesa-*
    AMQP headers; a C plugin (echo) reads them from struct fpesa_message
    through the mapper, as a worker in another language would."""
    from test_body_kinds import png_bytes
    prefix = "/%s" % unique()
    queue = prefix + "/{album}:POST"
    port = stack.aux_port + 9
    cfg = tmp_path / "headers.yaml"
    cfg.write_text("""bus: {url: "%s"}
endpoints:
  - path: "%s/{album}"
    method: POST
    mode: rpc
    timeout: 30s
    content_types: [image/png]
    args:
      type: object
      properties: {tag: {type: string}}
handlers:
  - {name: echo, plugin: echo.so, queue: "%s"}
""" % (stack.amqp_url, prefix, queue))
    start_host(proc, stack, str(cfg))
    url = "http://127.0.0.1:%d" % port
    proc.start([os.path.join(stack.bin, "restmapper"), "--config", str(cfg)],
               env=stack.env(FPESA_HTTP_LISTEN="127.0.0.1:%d" % port), wait_http=url + "/health",
               timeout=60)
    wait_until(lambda: requests.get(url + "/health", timeout=5).status_code == 200, timeout=60)
    png = png_bytes()
    r = requests.post(url + prefix + "/holiday?tag=sea%20side", data=png,
                      headers={"Content-Type": "image/png"}, timeout=40)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["echo"] == {"content_type": "image/png", "length": len(png)}
    headers = doc["headers"]
    assert json.loads(headers["x-fpesa-args"]) == {"tag": "sea side"}
    assert json.loads(headers["x-fpesa-params"]) == {"album": "holiday"}


def _mapper_up(stack, timeout=30.0):
    """The stack's restmapper answers /health with 200; after an earlier
    test restarted the broker it may still be reconnecting, so wait."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(stack.mapper + "/health", timeout=1).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False


def test_echo_through_the_mapper(stack, http):
    assert _mapper_up(stack), "the stack's restmapper is not healthy"
    r = http.post(stack.mapper + "/echo/hello", json={"x": 1}, timeout=5)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["echo"]["data"] == {"x": 1}
    assert body["echo"]["params"] == {"word": "hello"}


def test_post_through_the_mapper_is_stored_once(stack, http, db):
    assert _mapper_up(stack), "the stack's restmapper is not healthy"
    ids = []
    for i in range(20):
        r = http.post(stack.mapper + "/messages/", json={"through": "mapper", "i": i}, timeout=5)
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    wait_until(lambda: len(stored_ids(db, "messages", ids)) == 20, timeout=20)
    assert sorted(stored_ids(db, "messages", ids)) == sorted(ids)
    r = http.get(stack.mapper + "/messages/", params={"limit": "20"}, timeout=5)
    assert r.status_code == 200, r.text
    assert {m["id"] for m in r.json()["messages"]} >= set(ids[-1:])
    r = http.get(stack.mapper + "/messages/", params={"before": "garbage"}, timeout=5)
    assert r.status_code == 400


def test_each_plugin_links_only_what_it_uses(stack):
    """The build gives each plugin its own link line: echo needs jansson and
    nothing of PostgreSQL, libvips or libcurl; the store plugins need libpq."""

    def libs(plugin):
        out = subprocess.run(["ldd", os.path.join(stack.plugins, plugin)], capture_output=True,
                             text=True, timeout=30, check=True).stdout
        return {line.split()[0] for line in out.splitlines() if line.strip()}

    echo = libs("echo.so")
    assert any(n.startswith("libjansson") for n in echo), echo
    assert not [n for n in echo if n.startswith(("libpq", "libvips", "libcurl"))], echo
    assert any(n.startswith("libpq") for n in libs("messages_post.so"))
