"""messages_get reading from a streaming replica (read_url).

The test makes a real replica of the stack's PostgreSQL (pg_basebackup -R)
on a spare port, and pauses its replay (pg_wal_replay_pause) to make it lag
on purpose: a first page is read on the replica as it is (the lag shows),
while a page that continues from a cursor beyond what the replica has
replayed is answered with every row the primary has, never skipping one.
"""
import base64
import glob
import os
import shutil
import subprocess
import uuid

import psycopg2
import pytest

from conftest import wait_until
from handlers_util import Bus, start_host, unique

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]


def cursor(seq):
    """The keyset cursor of seq, as messages_get writes it."""
    return base64.urlsafe_b64encode(b"b%d" % seq).rstrip(b"=").decode()


def token(usec, mid):
    """The records_get page token of a row, as records_get writes it."""
    return base64.urlsafe_b64encode(b"%d:%s" % (usec, mid.encode())).rstrip(b"=").decode()


def as_pg(*args, timeout=120):
    return subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def replica(stack):
    """A streaming replica of the stack's database on a spare port; its URL."""
    port = stack.aux_port + 33
    d = "/tmp/fpesa-replica-%s" % uuid.uuid4().hex[:10]
    os.makedirs(d)
    shutil.chown(d, "postgres", "postgres")
    os.chmod(d, 0o700)
    started = False
    try:
        r = as_pg(os.path.join(PG_BIN, "pg_basebackup"), "-h", "127.0.0.1", "-p", str(stack.pg_port),
                  "-U", "fpesa", "-D", d + "/data", "-R", "-X", "stream")
        assert r.returncode == 0, r.stderr
        r = as_pg(os.path.join(PG_BIN, "pg_ctl"), "-D", d + "/data", "-l", d + "/log", "-w", "-t", "60",
                  "-o", "-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=200" % (port, d),
                  "start")
        started = r.returncode == 0
        assert started, r.stderr + open(d + "/log").read()[-2000:]
        yield "postgresql://fpesa@127.0.0.1:%d/fpesa" % port
    finally:
        if started:
            as_pg(os.path.join(PG_BIN, "pg_ctl"), "-D", d + "/data", "-m", "fast", "-w", "stop")
        shutil.rmtree(d, ignore_errors=True)


def count(dsn, table):
    c = psycopg2.connect(dsn)
    c.autocommit = True
    try:
        with c.cursor() as cur:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
            if not cur.fetchone()[0]:
                return -1
            cur.execute("SELECT count(*) FROM %s" % table)
            return cur.fetchone()[0]
    finally:
        c.close()


@pytest.mark.timeout(240)
def test_pages_from_a_lagging_replica_skip_nothing(stack, proc, tmp_path, replica):
    name = unique("r")
    path = "/%s/" % name
    cfg = tmp_path / "replica.yaml"
    cfg.write_text("""bus: {url: "%(amqp)s"}
database: {url: "%(db)s", read_url: "%(replica)s"}
endpoints:
  - {path: "%(path)s", method: POST, mode: publish}
  - {path: "%(path)s", method: GET, mode: rpc}
  - {path: "%(path)srecords", method: GET, mode: rpc}
handlers:
  - {name: post, plugin: messages_post.so, queue: "%(path)s:POST", config: {table: %(t)s}}
  - {name: get, plugin: messages_get.so, queue: "%(path)s:GET", config: {table: %(t)s}}
  - name: records
    plugin: records_get.so
    queue: "%(path)srecords:GET"
    config: {table: %(t)s, page_size: 100}
""" % {"amqp": stack.amqp_url, "db": stack.database_url, "replica": replica, "path": path, "t": name})
    host = start_host(proc, stack, str(cfg), expect=3)
    records_q = path + "records:GET"
    bus = Bus(stack)
    rdb = psycopg2.connect(replica)
    rdb.autocommit = True
    try:
        first = [bus.post(path + ":POST", {"i": i}) for i in range(30)]
        wait_until(lambda: count(stack.database_url, name) == 30, timeout=60)
        wait_until(lambda: count(replica, name) == 30, timeout=60)
        wait_until(lambda: open(host.logfile).read().count("replica connected") >= 2, timeout=30)

        # A walk over every page while nothing lags: all 30, once each.
        seen, before = [], None
        while True:
            args = {"limit": "7"}
            if before:
                args["before"] = before
            a = bus.rpc(path + ":GET", args=args)
            seen += [m["id"] for m in a["messages"]]
            before = a["next"]
            if not before:
                break
        assert sorted(seen) == sorted(first)

        # The replica stops replaying; five more messages reach the primary.
        with rdb.cursor() as cur:
            cur.execute("SELECT pg_wal_replay_pause()")
        late = [bus.post(path + ":POST", {"late": i}) for i in range(5)]
        wait_until(lambda: count(stack.database_url, name) == 35, timeout=60)
        assert count(replica, name) == 30

        # A first page is the replica's, as it is: the lag shows there.
        a = bus.rpc(path + ":GET", args={"limit": "50"})
        assert not set(late) & {m["id"] for m in a["messages"]}
        assert len(a["messages"]) == 30

        # A page continuing from a cursor the primary gave out (past every
        # row) has them all: it waited for the replica, then read the primary.
        c = psycopg2.connect(stack.database_url)
        try:
            with c.cursor() as cur:
                cur.execute("SELECT max(seq) FROM %s" % name)
                top = cur.fetchone()[0]
        finally:
            c.close()
        a = bus.rpc(path + ":GET", args={"limit": "50", "before": cursor(top + 1)}, timeout=20)
        ids = [m["id"] for m in a["messages"]]
        assert set(late) <= set(ids) and len(ids) == 35 == len(set(ids))

        # records_get likewise: its first page is the replica's, and a page
        # going on from the oldest row has every newer row the primary has.
        a = bus.rpc(records_q, args=None)
        assert a["count"] == 30 and not set(late) & {r["message_id"] for r in a["results"]}
        c = psycopg2.connect(stack.database_url)
        try:
            with c.cursor() as cur:
                cur.execute("SELECT (extract(epoch FROM received_at) * 1000000)::bigint, id::text"
                            " FROM %s ORDER BY received_at, id LIMIT 1" % name)
                usec, oldest = cur.fetchone()
        finally:
            c.close()
        a = bus.rpc(records_q, args={"next": token(usec, oldest)}, timeout=20)
        got = [r["message_id"] for r in a["results"]]
        assert set(late) <= set(got) and len(got) == 34 == len(set(got)), a

        with rdb.cursor() as cur:
            cur.execute("SELECT pg_wal_replay_resume()")
        wait_until(lambda: count(replica, name) == 35, timeout=60)
        a = bus.rpc(path + ":GET", args={"limit": "50"})
        assert len(a["messages"]) == 35
    finally:
        try:
            with rdb.cursor() as cur:
                cur.execute("SELECT pg_wal_replay_resume()")
        except psycopg2.Error:
            pass
        rdb.close()
        bus.close()
        proc.stop(host)
        c = psycopg2.connect(stack.database_url)
        c.autocommit = True
        with c.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS %s CASCADE" % name)
        c.close()
