"""Quorum queues: bus.queue_type, and queues an operator created beforehand.

An operator who pre-creates an endpoint queue as a quorum queue (as the
cluster page of the docs describes) must not cost any endpoint: the mapper
declares its own queues classic by default, the broker refuses the classic
declare of the quorum queue (406 PRECONDITION_FAILED), and the mapper uses
the queue as it is and serves every route. With bus.queue_type: quorum the
mapper and the handler host declare every durable endpoint queue and the
dead-letter queues as quorum queues, and again use a queue of another type
as it is.
"""
import os

import pika
import psycopg2
import pytest
import requests

from conftest import wait_until
from handlers_util import start_host, unique


def queue_types(stack):
    """{queue name: type} as the broker lists them."""
    r = stack.script("rabbitmqctl", "list_queues", "--no-table-headers", "name", "type")
    out = {}
    for line in r.stdout.splitlines():
        parts = line.rsplit("\t", 1)
        if len(parts) == 2:
            out[parts[0]] = parts[1].strip()
    return out


def delete_queues(stack, *names):
    conn = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
    try:
        ch = conn.channel()
        for n in names:
            ch.queue_delete(n)
    finally:
        conn.close()


def rpc_worker(stack, queue, stop):
    """Answers every request on queue with {"ok": true} until stop is set."""
    conn = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
    try:
        ch = conn.channel()
        while not stop.is_set():
            for method, props, _body in ch.consume(queue, inactivity_timeout=0.2):
                if method is None:
                    break
                ch.basic_publish("RPC", props.reply_to, b'{"ok": true}',
                                 pika.BasicProperties(correlation_id=props.correlation_id))
                ch.basic_ack(method.delivery_tag)
            ch.cancel()
    finally:
        conn.close()


def start_mapper(stack, proc, config, port):
    url = "http://127.0.0.1:%d" % port
    p = proc.start([os.path.join(stack.bin, "restmapper"), "--config", config],
                   env=stack.env(FPESA_HTTP_LISTEN="127.0.0.1:%d" % port), wait_http=url + "/health",
                   timeout=60)
    wait_until(lambda: requests.get(url + "/health", timeout=2).status_code == 200, timeout=30)
    return p, url


@pytest.mark.timeout(120)
def test_a_precreated_quorum_queue_costs_no_endpoint(stack, proc, tmp_path):
    import threading
    name = unique("q")
    quorum_q = "/%s/msgs:POST" % name
    other_q = "/%s/other:POST" % name
    rpc_q = "/%s/ask:POST" % name
    # The operator's declaration, before any program of ours runs.
    conn = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
    try:
        conn.channel().queue_declare(quorum_q, durable=True, arguments={"x-queue-type": "quorum"})
    finally:
        conn.close()
    cfg = tmp_path / "pre.yaml"
    cfg.write_text("""endpoints:
  - {path: "/%(n)s/msgs", method: POST, mode: publish, body: {type: object}}
  - {path: "/%(n)s/other", method: POST, mode: publish, body: {type: object}}
  - {path: "/%(n)s/ask", method: POST, mode: rpc, timeout: 5s, body: {type: object}}
""" % {"n": name})
    stop = threading.Event()
    worker = None
    try:
        _, url = start_mapper(stack, proc, str(cfg), stack.aux_port + 31)
        assert queue_types(stack).get(quorum_q) == "quorum"
        worker = threading.Thread(target=rpc_worker, args=(stack, rpc_q, stop), daemon=True)
        worker.start()
        sent = {}
        for path in ("msgs", "other"):
            for i in range(5):
                r = requests.post("%s/%s/%s" % (url, name, path), json={"i": i}, timeout=10)
                assert r.status_code == 202, r.text
                sent.setdefault(path, []).append(r.json()["id"])
        r = requests.post("%s/%s/ask" % (url, name), json={"q": 1}, timeout=10)
        assert (r.status_code, r.json()) == (200, {"ok": True})
        # Every accepted message sits in its queue once; the quorum queue is
        # still the operator's quorum queue.
        conn = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
        try:
            ch = conn.channel()
            for path, q in (("msgs", quorum_q), ("other", other_q)):
                got = []
                while True:
                    m, props, _ = ch.basic_get(q, auto_ack=True)
                    if m is None:
                        break
                    got.append(props.message_id)
                assert sorted(got) == sorted(sent[path]), path
        finally:
            conn.close()
        assert queue_types(stack).get(quorum_q) == "quorum"
    finally:
        stop.set()
        if worker:
            worker.join(10)
        delete_queues(stack, quorum_q, other_q, rpc_q)


@pytest.mark.timeout(180)
def test_queue_type_quorum_declares_endpoint_and_dead_letter_queues(stack, proc, tmp_path):
    name = unique("q")
    post_q = "/%s/:POST" % name
    classic_q = "/%s/classic:POST" % name
    # One queue the operator made classic before: used as it is.
    conn = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
    try:
        conn.channel().queue_declare(classic_q, durable=True)
    finally:
        conn.close()
    cfg = tmp_path / "quorum.yaml"
    cfg.write_text("""bus: {url: "%(amqp)s", queue_type: quorum}
database: {url: "%(db)s"}
endpoints:
  - {path: "/%(n)s/", method: POST, mode: publish, body: {type: object}}
  - {path: "/%(n)s/classic", method: POST, mode: publish, body: {type: object}}
handlers:
  - name: post
    plugin: messages_post.so
    queue: "%(q)s"
    config: {table: %(n)s}
""" % {"amqp": stack.amqp_url, "db": stack.database_url, "n": name, "q": post_q})
    try:
        start_host(proc, stack, str(cfg))
        _, url = start_mapper(stack, proc, str(cfg), stack.aux_port + 32)
        types = queue_types(stack)
        assert types.get(post_q) == "quorum"
        assert types.get(post_q + ".dlq") == "quorum"
        assert types.get(classic_q) == "classic"
        ids = []
        for i in range(20):
            r = requests.post("%s/%s/" % (url, name), json={"i": i}, timeout=10)
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        r = requests.post("%s/%s/classic" % (url, name), json={"c": 1}, timeout=10)
        assert r.status_code == 202, r.text
        db = psycopg2.connect(stack.database_url)
        db.autocommit = True
        try:
            def stored():
                with db.cursor() as cur:
                    cur.execute("SELECT id::text, count(*) FROM %s GROUP BY id" % name)
                    rows = cur.fetchall()
                return rows if len(rows) == len(ids) else None
            rows = wait_until(stored, timeout=30)
            assert sorted(r[0] for r in rows) == sorted(ids)
            assert all(r[1] == 1 for r in rows)
            with db.cursor() as cur:
                cur.execute("DROP TABLE IF EXISTS %s" % name)
        finally:
            db.close()
    finally:
        delete_queues(stack, post_q, post_q + ".dlq", classic_q)


def test_queue_type_is_checked(stack, tmp_path):
    import subprocess
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("bus: {queue_type: qorum}\nendpoints:\n  - {path: /x, method: POST, mode: publish}\n")
    r = subprocess.run([os.path.join(stack.bin, "restmapper"), "--check", str(cfg)],
                       capture_output=True, text=True, timeout=20, env=stack.env())
    assert r.returncode == 1
    assert '%s:1:19: unknown queue_type "qorum" (did you mean "quorum"?)' % cfg in r.stderr
