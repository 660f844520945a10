"""Scheduler figures for bench/timers.sh: N timers due within the same second,
called back on a local receiver; prints the lateness of the calls (p50, p99,
max, from each timer's due time to the receiver reading its request) and the
webhooks per second from the first due time to the last call.

    timers_bench.py DATABASE_URL RECEIVER_PORT N

The timers are written straight into the table (what POST /timer stores),
so the figures are the scheduler's own, not the create path's."""
import asyncio
import json
import sys
import time
import uuid

import psycopg2

DB, PORT, N = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
TAG = uuid.uuid4().hex[:8]
received = {}


class Hook(asyncio.Protocol):
    """A minimal HTTP/1.1 keep-alive server: every request is a POST with a
    Content-Length, answered 204."""

    def connection_made(self, transport):
        self.t = transport
        self.buf = b""

    def data_received(self, data):
        now = time.time()
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1").lower()
            length = 0
            for line in head.split("\r\n"):
                if line.startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4:end + 4 + length]
            self.buf = self.buf[end + 4 + length:]
            try:
                tid = json.loads(body)["id"]
                received.setdefault(tid, []).append(now)
            except (ValueError, KeyError, TypeError):
                pass
            self.t.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")


def pct(xs, p):
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


async def main():
    loop = asyncio.get_running_loop()
    # The spare port first; any free one when something holds it.
    try:
        server = await loop.create_server(Hook, "127.0.0.1", PORT, backlog=4096)
    except OSError:
        server = await loop.create_server(Hook, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    conn = psycopg2.connect(DB)
    conn.autocommit = True
    cur = conn.cursor()
    url = "http://127.0.0.1:%d/bench/%s" % (port, TAG)
    # Due within one whole second, 3 to 4 seconds from now, spread over it.
    cur.execute("SELECT ceil(extract(epoch FROM now())) + 3")
    second = float(cur.fetchone()[0])
    cur.execute(
        "INSERT INTO timers (id, url, due_at, next_try_at)"
        " SELECT gen_random_uuid(), %s, to_timestamp(%s + (i %% 1000) / 1000.0),"
        "  to_timestamp(%s + (i %% 1000) / 1000.0) FROM generate_series(1, %s) i",
        (url, second, second, N))
    cur.execute("NOTIFY fpesa_timers")
    cur.execute("SELECT id::text, extract(epoch FROM due_at)::float8 FROM timers WHERE url = %s", (url,))
    due = dict(cur.fetchall())
    deadline = time.time() + 120
    while len(received) < N and time.time() < deadline:
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # doubles, if any, arrive by now
    server.close()
    late = sorted(received[i][0] - due[i] for i in received if i in due)
    doubled = sum(1 for v in received.values() if len(v) > 1)
    cur.execute("SELECT state, count(*) FROM timers WHERE url = %s GROUP BY state", (url,))
    states = dict(cur.fetchall())
    cur.execute("DELETE FROM timers WHERE url = %s", (url,))
    conn.close()
    if not late:
        print("timers: no webhook arrived")
        return 1
    last = max(v[0] for v in received.values())
    rate = len(late) / max(1e-6, last - min(due.values()))
    print("timers: %d due within one second, %d called back, %d called twice, states %s"
          % (N, len(late), doubled, states))
    print("timers: lateness p50 %.0f ms, p99 %.0f ms, max %.0f ms"
          % (pct(late, 50) * 1000, pct(late, 99) * 1000, late[-1] * 1000))
    print("timers: %.0f webhooks/s (first due time to last call)" % rate)
    print("RESULT\ttimers lateness p50 (ms)\t%.0f\t-\t-\t-" % (pct(late, 50) * 1000))
    print("RESULT\ttimers lateness p99 (ms)\t%.0f\t-\t-\t-" % (pct(late, 99) * 1000))
    print("RESULT\ttimers webhooks/s\t%.0f\t-\t-\t-" % rate)
    return 0 if len(late) == N and doubled == 0 else 1


sys.exit(asyncio.run(main()))
