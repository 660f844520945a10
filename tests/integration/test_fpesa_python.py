"""Mixing with the original Python fpesa: its programs (the doubles in
fpesa_python.py) and ours on one broker vhost, in both start orders, with
messages counted end to end (stored rows, rpc answers, live frames).

Each mix runs on a vhost of its own (the original's names are fixed, and the
shared stack's vhost already holds our durable declarations)."""
import json
import os
import subprocess
import time
import uuid

import pika
import pytest

import fpesa_python as orig
from conftest import wait_until
from handlers_util import Bus, count_rows, start_host, unique

pytestmark = pytest.mark.timeout(300)


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


# ---- mixes on one vhost ----------------------------------------------------------

ORIGINAL_ARGS = """{type: object, additionalProperties: false, required: [offset, limit],
             properties: {offset: {type: string, pattern: "^[0-9]+$"},
                          limit: {type: string, pattern: "^[0-9]+$"},
                          paginationId: {type: string, pattern: "^[0-9]+$"}}}"""


@pytest.fixture
def vhost(stack):
    """A vhost of its own; yields its amqp URL."""
    name = unique("vh")
    stack.script("rabbitmqctl", "add_vhost", name)
    stack.script("rabbitmqctl", "set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    base = stack.amqp_url.rstrip("/")
    try:
        yield base + "/" + name
    finally:
        # Tidying only (the name is unique): bounded, so that a broker CLI
        # slowed by a busy machine cannot use up the test's time limit.
        try:
            stack.script("rabbitmqctl", "delete_vhost", name, check=False, timeout=60)
        except subprocess.TimeoutExpired:
            pass


class Ours:
    """Our programs, configured for one vhost with compat: fpesa-python."""

    def __init__(self, stack, proc, tmp_path, amqp_url, compat="fpesa-python", post_extra=""):
        self.stack, self.proc, self.amqp_url = stack, proc, amqp_url
        self.table = unique("mix")
        self.mapper_port = stack.aux_port + 1
        self.live_port = stack.aux_port + 2
        self.mapper = "http://127.0.0.1:%d" % self.mapper_port
        self.live = "http://127.0.0.1:%d" % self.live_port
        self.config = str(tmp_path / ("%s.yaml" % self.table))
        with open(self.config, "w") as f:
            f.write("""compat: %(compat)s
bus: {url: "%(amqp)s"}
database: {url: "%(db)s"}
endpoints:
  - {path: /messages/, method: POST, mode: publish, live: true, body: {type: object}%(pe)s}
  - {path: /messages/, method: GET, mode: rpc, timeout: 5s,
     args: %(args)s}
handlers:
  - {name: messages_post, plugin: messages_post.so, queue: "/messages/:POST",
     config: {table: %(t)s}}
  - {name: messages_get, plugin: messages_get.so, queue: "/messages/:GET", config: {table: %(t)s}}
""" % dict(compat=compat, amqp=amqp_url, db=stack.database_url, args=ORIGINAL_ARGS,
           t=self.table, pe=post_extra))

    def env(self):
        return self.stack.env(FPESA_AMQP_URL=self.amqp_url, FPESA_PLUGIN_DIR=self.stack.plugins,
                              FPESA_HTTP_LISTEN="127.0.0.1:%d" % self.mapper_port,
                              FPESA_LIVE_LISTEN="127.0.0.1:%d" % self.live_port)

    def start_host(self):
        p = self.proc.start([os.path.join(self.stack.bin, "handler"), "--config", self.config],
                            env=self.env())

        def ready():
            if p.poll() is not None:
                raise AssertionError("handler exited: %s" % open(p.logfile).read())
            return open(p.logfile).read().count(" consuming ") >= 2

        wait_until(ready, timeout=30)
        return p

    def _start_http(self, prog, base):
        p = self.proc.start([os.path.join(self.stack.bin, prog), "--config", self.config],
                            env=self.env(), wait_http=base + "/metrics", timeout=30)

        def healthy():
            if p.poll() is not None:
                raise AssertionError("%s exited: %s" % (prog, open(p.logfile).read()))
            try:
                return requests.get(base + "/health", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(healthy, timeout=30)
        return p

    def start_mapper(self):
        return self._start_http("restmapper", self.mapper)

    def start_live(self):
        return self._start_http("liveupdate", self.live)

    def rows(self, db):
        return count_rows(db, self.table)


import requests  # noqa: E402  (used by Ours)
import websocket  # noqa: E402

ORDERS = ["ours_first", "original_first"]


@pytest.mark.parametrize("order", ORDERS)
def test_original_restmapper_with_our_workers(stack, proc, tmp_path, vhost, db, order):
    ours = Ours(stack, proc, tmp_path, vhost)
    mapper = None
    try:
        if order == "ours_first":
            ours.start_host()
            mapper = orig.Restmapper(vhost)  # raises when a declaration is refused
        else:
            mapper = orig.Restmapper(vhost)
            ours.start_host()
        n = 120
        for i in range(n):
            assert mapper.post({"i": i, "from": "original"}) == (200, {})
        wait_until(lambda: ours.rows(db) >= n, timeout=30)
        time.sleep(0.2)
        assert ours.rows(db) == n
        answers = []
        status, page = mapper.get({"offset": "0", "limit": "10"})
        answers.append(status)
        assert status == 200
        assert page["total"] == n and page["paginationId"] == n
        assert page["messages"] == [{"i": i, "from": "original"} for i in range(n - 1, n - 11, -1)]
        offset = 10
        seen = list(page["messages"])
        while offset < page["total"]:
            status, nxt = mapper.get({"offset": str(offset), "limit": "10",
                                      "paginationId": str(page["paginationId"])})
            answers.append(status)
            seen += nxt["messages"]
            offset += 10
        assert answers == [200] * 12
        assert sorted(m["i"] for m in seen) == list(range(n))
    finally:
        if mapper:
            mapper.close()


@pytest.mark.parametrize("order", ORDERS)
def test_our_mapper_with_original_workers(stack, proc, tmp_path, vhost, db, order):
    ours = Ours(stack, proc, tmp_path, vhost)
    post = orig.MessagesPost(vhost, stack.database_url, table=ours.table + "_orig")
    get = orig.MessagesGet(vhost, stack.database_url, table=ours.table + "_orig")
    try:
        if order == "ours_first":
            ours.start_mapper()
            post.start()
            get.start()
        else:
            post.start()
            get.start()
            ours.start_mapper()
        n = 100
        s = requests.Session()
        for i in range(n):
            r = s.post(ours.mapper + "/messages/", json={"i": i}, timeout=10)
            assert r.status_code == 202, r.text
        wait_until(lambda: count_rows(db, ours.table + "_orig") >= n, timeout=30)
        time.sleep(0.2)
        assert count_rows(db, ours.table + "_orig") == n
        r = s.get(ours.mapper + "/messages/", params={"offset": "0", "limit": "10"}, timeout=10)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["total"] == n and page["messages"][0] == {"i": n - 1}
        r = s.get(ours.mapper + "/messages/",
                  params={"offset": "90", "limit": "10", "paginationId": page["paginationId"]},
                  timeout=10)
        assert r.status_code == 200 and r.json()["messages"][-1] == {"i": 0}
        assert get.requests == 2
        # The original worker's own refusal (limit missing) is its 500 answer.
        r = s.get(ours.mapper + "/messages/", params={"offset": "0"}, timeout=10)
        assert r.status_code == 400  # our mapper checks the original's schema first
        assert post.error is None and get.error is None
        s.close()
    finally:
        get.stop()
        post.stop()
        with db.cursor() as c:
            c.execute("DROP TABLE IF EXISTS %s_orig" % ours.table)


@pytest.mark.parametrize("order", ORDERS)
def test_original_liveupdate_on_our_mappers_exchange(stack, proc, tmp_path, vhost, order):
    ours = Ours(stack, proc, tmp_path, vhost)
    live = orig.Liveupdate(vhost)
    try:
        if order == "ours_first":
            ours.start_mapper()
            live.start()
        else:
            live.start()
            ours.start_mapper()
        n = 80
        s = requests.Session()
        for i in range(n):
            assert s.post(ours.mapper + "/messages/", json={"live": i}, timeout=10).status_code == 202
        s.close()
        wait_until(lambda: len(live.frames) >= n, timeout=30)
        time.sleep(0.2)
        assert live.received() == [{"live": i} for i in range(n)]
    finally:
        live.stop()


@pytest.mark.parametrize("order", ORDERS)
def test_our_liveupdate_on_the_originals_exchange(stack, proc, tmp_path, vhost, order):
    ours = Ours(stack, proc, tmp_path, vhost)
    mapper = None
    try:
        if order == "ours_first":
            ours.start_live()
            mapper = orig.Restmapper(vhost)
        else:
            mapper = orig.Restmapper(vhost)
            ours.start_live()
        ws = websocket.create_connection(ours.live.replace("http", "ws") + "/messages/",
                                         timeout=15)
        try:
            n = 60
            for i in range(n):
                mapper.post({"w": i})
            got = []
            while len(got) < n:
                got.append(json.loads(ws.recv())["data"])
            assert got == [{"w": i} for i in range(n)]
        finally:
            ws.close()
    finally:
        if mapper:
            mapper.close()


def test_every_program_of_both_on_one_vhost(stack, proc, tmp_path, vhost, db):
    """Both whole systems at once: the original's restmapper, workers and
    liveupdate, and ours, in one vhost; every message reaches every store,
    every live feed, and every rpc is answered."""
    ours = Ours(stack, proc, tmp_path, vhost)
    omapper = orig.Restmapper(vhost)
    olive = orig.Liveupdate(vhost).start()
    ours.start_host()
    ours.start_mapper()
    ours.start_live()
    try:
        ws = websocket.create_connection(ours.live.replace("http", "ws") + "/messages/",
                                         timeout=15)
        try:
            s = requests.Session()
            for i in range(40):
                omapper.post({"k": "o%d" % i})
                assert s.post(ours.mapper + "/messages/", json={"k": "c%d" % i},
                              timeout=10).status_code == 202
            wait_until(lambda: ours.rows(db) >= 80, timeout=30)
            wait_until(lambda: len(olive.frames) >= 80, timeout=30)
            frames = [json.loads(ws.recv())["data"]["k"] for _ in range(80)]
            assert sorted(frames) == sorted(["o%d" % i for i in range(40)] +
                                            ["c%d" % i for i in range(40)])
            assert ours.rows(db) == 80
            st, page = omapper.get({"offset": "0", "limit": "100"})
            assert st == 200 and page["total"] == 80
            r = s.get(ours.mapper + "/messages/", params={"offset": "0", "limit": "100"},
                      timeout=10)
            assert r.status_code == 200 and r.json() == page
            s.close()
        finally:
            ws.close()
    finally:
        olive.stop()
        omapper.close()


def test_without_compat_an_existing_declaration_is_used_as_it_is(stack, proc, tmp_path, vhost, db):
    """compat none: the original declared first (transient); our mapper, host
    and liveupdate still serve (a passive declare), never a 503 forever."""
    omapper = orig.Restmapper(vhost)
    try:
        ours = Ours(stack, proc, tmp_path, vhost, compat="none")
        ours.start_host()
        ours.start_mapper()
        ours.start_live()
        s = requests.Session()
        for i in range(30):
            assert s.post(ours.mapper + "/messages/", json={"n": i}, timeout=10).status_code == 202
        wait_until(lambda: ours.rows(db) >= 30, timeout=30)
        r = s.get(ours.mapper + "/messages/", params={"offset": "0", "limit": "5"}, timeout=10)
        assert r.status_code == 200 and r.json()["total"] == 30
        s.close()
    finally:
        omapper.close()


def _raw_post(url, body, ctype):
    headers = {} if ctype is None else {"Content-Type": ctype}
    # requests adds no Content-Type for bytes data, so None means none at all.
    return requests.post(url, data=body.encode(), headers=headers, timeout=10)


def test_bodies_are_json_whatever_the_content_type_in_compat(stack, proc, tmp_path, vhost, db):
    ours = Ours(stack, proc, tmp_path, vhost)
    ours.start_host()
    ours.start_mapper()
    url = ours.mapper + "/messages/"
    sent = []
    for i, ctype in enumerate(["application/json", "text/plain", "text/plain; charset=utf-8",
                               "application/x-www-form-urlencoded", None]):
        body = {"i": i, "ctype": ctype}
        r = _raw_post(url, json.dumps(body), ctype)
        assert r.status_code == 202, (ctype, r.text)
        sent.append(body)
    # Still JSON, still the schema: what is not a JSON object is refused.
    r = _raw_post(url, "a=1&b=2", "application/x-www-form-urlencoded")
    assert r.status_code == 400 and r.json()["error"]["code"] == 400
    r = _raw_post(url, "[1, 2]", "text/plain")
    assert r.status_code == 400 and r.json()["error"]["code"] == 400
    wait_until(lambda: ours.rows(db) >= len(sent), timeout=30)
    with db.cursor() as c:
        c.execute("SELECT data FROM %s ORDER BY pos" % ours.table)
        assert [r[0] for r in c.fetchall()] == sent


def test_without_compat_other_content_types_stay_415(stack, proc, tmp_path, vhost):
    ours = Ours(stack, proc, tmp_path, vhost, compat="none")
    ours.start_mapper()
    for ctype in ["text/plain", "application/x-www-form-urlencoded", None]:
        r = _raw_post(ours.mapper + "/messages/", '{"a": 1}', ctype)
        assert r.status_code == 415, ctype


def test_the_originals_200_empty_answer_as_an_option(stack, proc, tmp_path, vhost, db):
    ours = Ours(stack, proc, tmp_path, vhost, post_extra=", status: 200, response: {}")
    ours.start_host()
    ours.start_mapper()
    r = requests.post(ours.mapper + "/messages/", json={"x": 1}, timeout=10)
    assert r.status_code == 200 and r.json() == {}
    wait_until(lambda: ours.rows(db) == 1, timeout=30)


# ---- the live channel in the original's form, and the original frontend ---------


def test_original_live_channel_binary_data_only_frames(stack, proc, tmp_path, vhost):
    ours = Ours(stack, proc, tmp_path, vhost)
    ours.start_mapper()
    ours.start_live()
    base = ours.live.replace("http", "ws")
    # Both spellings of the original's path: through nginx ("/") and direct.
    originals = [websocket.create_connection(base + "/", timeout=15),
                 websocket.create_connection(base + "/ws/v1/", timeout=15)]
    ours_ws = websocket.create_connection(base + "/messages/", timeout=15)
    try:
        s = requests.Session()
        sent = [{"n": i, "s": "x%d" % i, "l": [1, 2, {"t": True, "f": None}]} for i in range(50)]
        for body in sent:
            assert s.post(ours.mapper + "/messages/", json=body, timeout=10).status_code == 202
        s.close()
        for ws in originals:
            for body in sent:
                opcode, data = ws.recv_data()
                assert opcode == websocket.ABNF.OPCODE_BINARY
                # Byte for byte what the original's json.dumps(data) sends.
                assert data == json.dumps(body).encode()
        # Our own channel is unchanged: text frames with the envelope.
        for body in sent:
            opcode, data = ours_ws.recv_data()
            assert opcode == websocket.ABNF.OPCODE_TEXT
            assert json.loads(data)["data"] == body
    finally:
        for ws in originals + [ours_ws]:
            ws.close()


def test_no_original_channel_without_compat(stack, proc, tmp_path, vhost):
    ours = Ours(stack, proc, tmp_path, vhost, compat="none")
    ours.start_live()
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(ours.live.replace("http", "ws") + "/ws/v1/", timeout=10)
    assert e.value.status_code == 404


def _start_nginx(stack, tmp_path, ours):
    """nginx as the stack runs it, in front of ours; returns (host, stop)."""
    port = stack.aux_port + 3
    var = tmp_path / "nginx-var"
    env = stack.env(FPESA_VAR=str(var), FPESA_NGINX_PORT=str(port), FPESA_MAPPERS="1",
                    FPESA_MAPPER_PORT=str(ours.mapper_port), FPESA_LIVE_PORT=str(ours.live_port),
                    FPESA_CONFIG=ours.config)
    subprocess.run([os.path.join(stack.root, "scripts", "nginx-conf.sh")], env=env, check=True,
                   capture_output=True, timeout=30)
    prefix = str(var / "nginx")
    conf = os.path.join(prefix, "nginx.conf")
    subprocess.run(["/usr/sbin/nginx", "-p", prefix, "-c", conf], env=env, check=True,
                   capture_output=True, timeout=30)

    def stop():
        subprocess.run(["/usr/sbin/nginx", "-p", prefix, "-c", conf, "-s", "stop"], env=env,
                       capture_output=True, timeout=30)
        pidfile = os.path.join(prefix, "nginx.pid")
        deadline = time.time() + 15
        while os.path.exists(pidfile) and time.time() < deadline:
            time.sleep(0.1)

    return "127.0.0.1:%d" % port, stop


def test_the_original_frontend_works_unchanged_against_ours(stack, proc, tmp_path, vhost, db):
    """Index.vue's live feed, Dev.vue's forms and Saved.vue's paging, as the
    original frontend speaks them, through nginx to our compat system."""
    ours = Ours(stack, proc, tmp_path, vhost)
    ours.start_host()
    ours.start_mapper()
    ours.start_live()
    host, stop_nginx = _start_nginx(stack, tmp_path, ours)
    fe = orig.Frontend(host)
    try:
        ws = wait_until(lambda: _try(fe.open_live), timeout=30)
        try:
            default = '{"this": "has", "to": "be", "a": "valid", "json": "object"}'
            status, text = fe.post_single(default)
            assert status == 202, text
            for i in range(100):
                assert fe.post_multiple(i) == 202
            shown = [fe.on_socket_message(ws)[0] for _ in range(101)]
            assert shown == [json.loads(default)] + [{"multiple": True, "i": i}
                                                      for i in range(100)]
        finally:
            ws.close()
        wait_until(lambda: ours.rows(db) >= 101, timeout=30)
        # Saved.vue: the first load has no paginationId, the next ones carry
        # the integer it got; messages arriving meanwhile do not move pages.
        assert fe.load() == 200 and fe.error == ""
        assert isinstance(fe.pagination_id, int)
        assert fe.total == 101 and len(fe.messages) == 10
        seen = list(fe.messages)
        first_pid = fe.pagination_id
        for i in range(5):
            assert fe.post_multiple(1000 + i) == 202
        wait_until(lambda: ours.rows(db) >= 106, timeout=30)
        while fe.next_enabled():
            assert fe.turn_page(+1) == 200, fe.error
            assert fe.pagination_id == first_pid and fe.total == 101
            seen += fe.messages
        assert len(seen) == 101
        assert seen[0] == {"multiple": True, "i": 99} and seen[-1] == json.loads(default)
        assert fe.turn_page(-1) == 200 and fe.messages == seen[90:100]
    finally:
        fe.close()
        stop_nginx()


def _try(fn):
    try:
        return fn()
    except (OSError, websocket.WebSocketException):
        return None
