"""liveupdate reading streams (liveupdate.source: stream), counted.

Two liveupdate instances read the same stream per channel, so they hand
out the same messages in the same order: a client that resumes on the
other instance (as after a restart behind nginx) continues exactly where it
was. A lost broker is a hole in the live stream as with a private queue (a
stream may lack what was published while its node recovered): the clients
are closed and resume from the store, exactly.

Each test runs its own handler host and its own liveupdates on aux ports
(helpers of test_live_resume), and deletes its streams afterwards.
"""
import json
import time

import pika
import pytest
import websocket

from conftest import wait_until
from handlers_util import start_host, uuid7
from test_live_resume import (Counter, Publisher, WsCounter, broker_restart_exact, check_exact,
                              start_live, write_system)

pytestmark = pytest.mark.timeout(300)


def start_stream_live(stack, proc, cfg, port):
    """A liveupdate reading streams, on port; returns (process, base URL)."""
    return start_live(stack, proc, cfg, port=port, FPESA_LIVE_SOURCE="stream")


def delete_stream(stack, path):
    try:
        conn = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
        try:
            conn.channel().queue_delete(path + ":POST:live")
        finally:
            conn.close()
    except Exception as e:  # the test's own result matters more than this cleanup
        print("could not delete the stream of %s: %s" % (path, e))


class Switcher(Counter):
    """A websocket client that moves between the instances every `every`
    seconds, each time resuming with ?since=<last id> on the other one."""

    def __init__(self, bases, path, every=0.3):
        super().__init__(bases[0], path)
        self.bases = bases
        self.every = every
        self.switches = 0

    def run(self):
        k = 0
        while not self.stop.is_set():
            url = self.bases[k % len(self.bases)].replace("http://", "ws://") + self.path
            if self.got:
                url += "?since=" + self.got[-1]
            try:
                ws = websocket.create_connection(url, timeout=10)
                ws.settimeout(0.1)
            except Exception:
                time.sleep(0.05)
                continue
            t0 = time.time()
            try:
                while not self.stop.is_set() and time.time() - t0 < self.every:
                    try:
                        op, frame = ws.recv_data_frame(True)
                    except websocket.WebSocketTimeoutException:
                        continue
                    if op == websocket.ABNF.OPCODE_CLOSE:
                        break
                    if op == websocket.ABNF.OPCODE_TEXT:
                        self.got.append(json.loads(frame.data)["id"])
            except Exception:
                pass
            finally:
                ws.close()
            k += 1
            self.switches += 1


def test_a_client_moving_between_two_instances_gets_every_message_once_in_one_order(
        stack, proc, tmp_path):
    cfg, path = write_system(stack, tmp_path)
    start_host(proc, stack, cfg, expect=3)
    _, a = start_stream_live(stack, proc, cfg, stack.aux_port + 8)
    _, b = start_stream_live(stack, proc, cfg, stack.aux_port + 9)
    # Two publishers on two connections: their messages interleave, and
    # only the stream makes the interleaving the same for both instances.
    pubs = [Publisher(stack, path, rate=200), Publisher(stack, path, rate=200)]
    watch_a, watch_b = WsCounter(a, path), WsCounter(b, path)
    mover = Switcher([a, b], path)
    clients = [watch_a, watch_b, mover]
    try:
        for c in (watch_a, watch_b):
            c.start()
        wait_until(lambda: watch_a.connects and watch_b.connects, timeout=20,
                   what=lambda: "both watchers connected")
        mover.start()
        for p in pubs:
            p.start()
        wait_until(lambda: mover.switches >= 20, timeout=60, what=lambda: "20 moves between instances")
        for p in pubs:
            p.finish()
        sent = pubs[0].sent + pubs[1].sent
        check_exact([watch_a, watch_b, mover], sent)
        order = [i for i in watch_a.got if i in set(sent)]
        assert [i for i in watch_b.got if i in set(sent)] == order, "the instances' orders differ"
        assert [i for i in mover.got if i in set(sent)] == order, "the moving client's order differs"
        print("sent=%d moves=%d" % (len(sent), mover.switches))
    finally:
        for p in pubs:
            p.finish()
        for c in clients:
            c.finish()
        delete_stream(stack, path)


def test_broker_restart_every_message_exactly_once(stack, proc, tmp_path):
    broker_restart_exact(stack, proc, tmp_path, cleanup=lambda path: delete_stream(stack, path),
                         FPESA_LIVE_SOURCE="stream")


def test_a_stream_declared_by_an_operator_with_other_retention_is_used_as_it_is(
        stack, proc, tmp_path):
    cfg, path = write_system(stack, tmp_path)
    conn = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
    try:
        ch = conn.channel()
        ch.queue_declare(path + ":POST:live", durable=True,
                         arguments={"x-queue-type": "stream", "x-max-length-bytes": 1000000})
    finally:
        conn.close()
    try:
        start_host(proc, stack, cfg, expect=3)
        _, base = start_stream_live(stack, proc, cfg, stack.aux_port + 8)
        ws = websocket.create_connection(base.replace("http://", "ws://") + path, timeout=15)
        try:
            mid = uuid7()
            c2 = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
            try:
                c2.channel().basic_publish(path + ":POST", "",
                                           json.dumps({"data": {"k": 1}, "args": None}),
                                           pika.BasicProperties(message_id=mid))
            finally:
                c2.close()
            got = None
            deadline = time.time() + 15
            while time.time() < deadline and got is None:
                op, frame = ws.recv_data_frame(True)
                if op == websocket.ABNF.OPCODE_TEXT:
                    got = json.loads(frame.data)
            assert got and got["id"] == mid and got["data"] == {"k": 1}
        finally:
            ws.close()
    finally:
        delete_stream(stack, path)
