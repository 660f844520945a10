"""Helpers for the handler host's integration tests: a host of our own on
queues and a table of our own, publishing in the wire format, rpc calls."""
import json
import os
import subprocess
import time
import uuid

import pika

from conftest import wait_until


def unique(prefix="t"):
    return "%s%s" % (prefix, uuid.uuid4().hex[:10])


def uuid7():
    """A UUIDv7 like the mapper mints: 48 bits of Unix ms first."""
    ms = int(time.time() * 1000)
    r = uuid.uuid4().int & ((1 << 74) - 1)
    v = (ms << 80) | (0x7 << 76) | ((r >> 62) << 64) | (0b10 << 62) | (r & ((1 << 62) - 1))
    return str(uuid.UUID(int=v))


class Store:
    """A publish route, its rpc route and a table, all named for one test."""

    def __init__(self, stack, tmp_path, batch=100, prefetch=256, instances=1, extra=""):
        self.stack = stack
        self.name = unique()
        self.table = self.name
        self.path = "/%s/" % self.name
        self.post_q = self.path + ":POST"
        self.get_q = self.path + ":GET"
        self.config = str(tmp_path / ("%s.yaml" % self.name))
        with open(self.config, "w") as f:
            f.write("""bus: {url: "%(amqp)s"}
database: {url: "%(db)s"}
endpoints:
  - {path: "%(path)s", method: POST, mode: publish}
  - {path: "%(path)s", method: GET, mode: rpc}
handlers:
  - name: post
    plugin: messages_post.so
    queue: "%(post)s"
    batch: %(batch)d
    prefetch: %(prefetch)d
    config: {table: %(table)s}
  - name: get
    plugin: messages_get.so
    queue: "%(get)s"
    instances: %(instances)d
    config: {table: %(table)s}
%(extra)s""" % dict(amqp=stack.amqp_url, db=stack.database_url, path=self.path, post=self.post_q,
                     get=self.get_q, batch=batch, prefetch=prefetch, table=self.table,
                     instances=instances, extra=extra))

    def start_host(self, proc, expect=2):
        return start_host(proc, self.stack, self.config, expect)


def start_host(proc, stack, config, expect=1, args=()):
    """Starts a handler host and waits until `expect` consumers run."""
    p = proc.start([os.path.join(stack.bin, "handler"), "--config", config, *args],
                   env=stack.env(FPESA_PLUGIN_DIR=stack.plugins))

    def ready():
        if p.poll() is not None:
            raise AssertionError("handler exited %s: %s" % (p.returncode, open(p.logfile).read()))
        return open(p.logfile).read().count(" consuming ") >= expect

    wait_until(ready, timeout=60)
    return p


def run_host(stack, config, timeout=20):
    """Runs a host that is expected to refuse to start; returns (rc, stderr)."""
    r = subprocess.run([os.path.join(stack.bin, "handler"), "--config", config],
                       env=stack.env(FPESA_PLUGIN_DIR=stack.plugins), capture_output=True,
                       text=True, timeout=timeout)
    return r.returncode, r.stderr


class Bus:
    def __init__(self, stack):
        self.conn = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
        self.ch = self.conn.channel()
        self.reply_q = None

    def close(self):
        if self.conn.is_open:
            self.conn.close()

    def post(self, exchange, data, mid=None, body=None):
        mid = mid or uuid7()
        payload = body if body is not None else json.dumps({"data": data, "args": None})
        self.ch.basic_publish(exchange, "", payload,
                              pika.BasicProperties(message_id=mid, delivery_mode=2,
                                                   content_type="application/json",
                                                   timestamp=int(time.time())))
        return mid

    def rpc(self, exchange, args=None, data=None, params=None, timeout=10):
        if self.reply_q is None:
            self.reply_q = self.ch.queue_declare("", exclusive=True).method.queue
            self.ch.exchange_declare("RPC", "direct", durable=True)
            self.ch.queue_bind(self.reply_q, "RPC", routing_key=self.reply_q)
        cid = str(uuid.uuid4())
        env = {"data": data, "args": args}
        if params is not None:
            env["params"] = params
        self.ch.basic_publish(exchange, exchange, json.dumps(env),
                              pika.BasicProperties(reply_to=self.reply_q, correlation_id=cid,
                                                   content_type="application/json",
                                                   message_id=uuid7()))
        deadline = time.time() + timeout
        while time.time() < deadline:
            m, props, body = self.ch.basic_get(self.reply_q, auto_ack=True)
            if m is None:
                self.conn.sleep(0.01)
                continue
            if props.correlation_id == cid:
                return json.loads(body)
        raise AssertionError("no rpc answer from %s in %ss" % (exchange, timeout))

    def declare_publish(self, exchange):
        """What the mapper declares for a publish route, so messages wait for a worker."""
        self.ch.exchange_declare(exchange, "fanout", durable=True)
        self.ch.queue_declare(exchange, durable=True)
        self.ch.queue_bind(exchange, exchange, routing_key=exchange)

    def count(self, queue):
        return self.ch.queue_declare(queue, passive=True).method.message_count


def stored_ids(db, table, ids=None):
    with db.cursor() as c:
        if ids is None:
            c.execute("SELECT id FROM %s" % table)
        else:
            c.execute("SELECT id FROM %s WHERE id = ANY(%%s)" % table, (list(ids),))
        return [r[0] for r in c.fetchall()]


def count_rows(db, table):
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM %s" % table)
        return c.fetchone()[0]
