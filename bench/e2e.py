#!/usr/bin/python3
"""End-to-end figures of the whole system, each beside its reference,
measured in one run on the stack scripts/bench.sh started (FPESA_* env).

  * sustained durable ingest through nginx -> mapper -> RabbitMQ ->
    messages_post -> PostgreSQL, beside the broker's raw confirmed-publish
    ceiling and the database's raw batched-insert ceiling;
  * latency from POST to row committed and from POST to websocket receipt,
    p50/p99, at half the sustained rate;
  * list latency of GET /api/v1/messages/?limit=50 through nginx;
  * CPU seconds per 10,000 messages for each process.

Everything is bounded by BENCH_SECONDS; it prints human lines and RESULT
lines for bench/results/latest.md.
"""
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pika
import psycopg2
import requests
import websocket

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SECS = int(os.environ.get("BENCH_SECONDS", "10"))
NGINX = "http://127.0.0.1:%s" % os.environ["FPESA_NGINX_PORT"]
WS = "ws://127.0.0.1:%s/ws/v1/messages/" % os.environ["FPESA_NGINX_PORT"]
AMQP = os.environ["FPESA_AMQP_URL"]
DB = os.environ["FPESA_DATABASE_URL"]
RUN = os.path.join(os.environ["FPESA_VAR"], "run")
QUEUE = "/messages/:POST"


def result(figure, value, ref="", ref_value="", ratio=""):
    print("RESULT\t%s\t%s\t%s\t%s\t%s" % (figure, value, ref, ref_value, ratio))
    sys.stdout.flush()


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def queue_depth():
    conn = pika.BlockingConnection(pika.URLParameters(AMQP))
    try:
        q = conn.channel().queue_declare(QUEUE, passive=True)
        return q.method.message_count
    finally:
        conn.close()


def row_count(db):
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM messages")
        return cur.fetchone()[0]


def cpu_seconds():
    """utime+stime of every process of the stack, by its recorded pid."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name in ("restmapper", "restmapper2", "handler", "liveupdate", "nginx", "rabbitmq",
                 "postgresql"):
        try:
            pid = int(open(os.path.join(RUN, name + ".pid")).read())
        except (OSError, ValueError):
            continue
        total = 0
        # The process and its children (beam under the rabbitmq script,
        # postgres backends under the postmaster, nginx workers).
        for p in [pid] + children(pid):
            try:
                f = open("/proc/%d/stat" % p).read().rsplit(")", 1)[1].split()
                total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
            except (OSError, IndexError, ValueError):
                pass
        out[name] = total / tick
    return out


def children(pid):
    res = []
    try:
        kids = open("/proc/%d/task/%d/children" % (pid, pid)).read().split()
    except OSError:
        return res
    for k in kids:
        res.append(int(k))
        res.extend(children(int(k)))
    return res


def wrk(url, secs, conns=32, script=None, threads=2):
    args = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % secs, "--latency"]
    if script:
        args += ["-s", script]
    out = subprocess.run(args + [url], capture_output=True, text=True, timeout=secs + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p50 = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)] if m else float("nan")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, p50, int(non2xx.group(1)) if non2xx else 0, out


POST_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"bench":true,"text":"a message of about a hundred bytes for the end to end benchmark ....."}'
"""


def raw_publish_ceiling(n):
    """Persistent publishes from one plain rabbitmq-c connection with 100
    confirms outstanding (bench/publish_baseline.c, built here if needed)."""
    build = os.environ.get("BUILD", os.path.join(ROOT, "build"))
    base = os.path.join(build, "bench", "publish_baseline")
    src = os.path.join(ROOT, "bench", "publish_baseline.c")
    if not os.path.exists(base) or os.path.getmtime(src) > os.path.getmtime(base):
        os.makedirs(os.path.dirname(base), exist_ok=True)
        subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-O2", src, "-o", base, "-lrabbitmq"],
                       check=True)
    body = json.dumps({"data": {"bench": True, "text": "x" * 80}, "args": None})
    out = subprocess.run([base, AMQP, "bench.raw", str(n), "100", body], capture_output=True,
                         text=True, timeout=SECS * 12).stdout
    m = re.search(r"rate=([\d.]+)", out)
    return float(m.group(1)) if m else float("nan")


def raw_insert_ceiling(db, n=50000, batch=500):
    with db.cursor() as cur:
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS bench_raw (LIKE messages INCLUDING ALL)")
    db.autocommit = False
    t0 = time.time()
    with db.cursor() as cur:
        for i in range(0, n, batch):
            cur.execute("INSERT INTO bench_raw (id, data) SELECT gen_random_uuid()::text::"
                        "%s, jsonb_build_object('n', g) FROM generate_series(1, %%s) g"
                        % column_type(db, "id"), (batch,))
            db.commit()
    dt = time.time() - t0
    db.autocommit = True
    return n / dt


def column_type(db, col):
    with db.cursor() as cur:
        cur.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = 'messages'::regclass AND attname = %s", (col,))
        return cur.fetchone()[0]


def sustained_ingest(db):
    lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    lua.write(POST_LUA)
    lua.close()
    rows0, cpu0 = row_count(db), cpu_seconds()
    depth0 = queue_depth()
    depths = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                depths.append((time.time(), queue_depth()))
            except Exception:
                pass
            time.sleep(1)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.time()
    rps, p50, non2xx, _ = wrk(NGINX + "/api/v1/messages/", SECS, conns=64, script=lua.name)
    stop.set()
    t.join()
    posted_for = time.time() - t0
    # Drain: the sustained rate is what reaches the table, not what the broker buffered.
    deadline = time.time() + SECS * 6
    while queue_depth() > 0 and time.time() < deadline:
        time.sleep(0.5)
    drained_for = time.time() - t0
    rows = row_count(db) - rows0
    cpu1 = cpu_seconds()
    os.unlink(lua.name)
    slope = 0.0
    if len(depths) >= 2:
        slope = (depths[-1][1] - depths[0][1]) / max(1e-9, depths[-1][0] - depths[0][0])
    stored_rate = rows / drained_for
    print("ingest: wrk POST %.0f req/s (%d non-2xx) for %.1fs; queue depth %d -> %s, slope %.0f msg/s;"
          " %d rows stored in %.1fs = %.0f rows/s" % (rps, non2xx, posted_for, depth0,
                                                      depths[-1][1] if depths else "?", slope,
                                                      rows, drained_for, stored_rate))
    sustained = min(rps, stored_rate) if slope > rps * 0.05 else rps
    per10k = {}
    for k in cpu1:
        if k in cpu0 and rows:
            per10k[k] = (cpu1[k] - cpu0[k]) * 10000.0 / rows
    return sustained, per10k


def latencies(rate, db, secs):
    """POSTs at a fixed rate; time to websocket receipt and to the row."""
    recv = {}
    ready = threading.Event()
    stop = threading.Event()

    def client():
        ws = websocket.create_connection(WS, timeout=1)
        ready.set()
        while not stop.is_set():
            try:
                f = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except Exception:
                break
            try:
                recv[json.loads(f)["id"]] = time.time()
            except (ValueError, KeyError):
                pass
        ws.close()

    t = threading.Thread(target=client, daemon=True)
    t.start()
    ready.wait(5)
    sent = {}
    s = requests.Session()
    n = int(rate * secs)
    t0 = time.time()
    for i in range(n):
        due = t0 + i / rate
        d = due - time.time()
        if d > 0:
            time.sleep(d)
        t_start = time.time()
        r = s.post(NGINX + "/api/v1/messages/", json={"lat": i}, timeout=10)
        if r.status_code == 202:
            # The websocket frame often arrives before this client has read
            # the 202 (both leave the broker at once), so latency is measured
            # from the moment the POST was sent.
            sent[r.json()["id"]] = t_start
    time.sleep(1)
    stop.set()
    t.join(3)
    ws_lat = [(recv[i] - sent[i]) * 1000 for i in sent if i in recv]
    # Row commit time: the database's clock at commit is not kept per row, so
    # poll a sample of ids right after their 202.
    row_lat = []
    sample = list(sent)[:: max(1, len(sent) // 100)]
    with db.cursor() as cur:
        for i in sample[:50]:
            t_row = time.time()
            r = s.post(NGINX + "/api/v1/messages/", json={"row": i}, timeout=10)
            if r.status_code != 202:
                continue
            mid, t1 = r.json()["id"], t_row
            while time.time() - t1 < 5:
                cur.execute("SELECT 1 FROM messages WHERE id::text = %s", (mid,))
                if cur.fetchone():
                    row_lat.append((time.time() - t1) * 1000)
                    break
                time.sleep(0.001)
            time.sleep(1.0 / rate)
    return ws_lat, row_lat


def main():
    db = psycopg2.connect(DB)
    db.autocommit = True
    raw_pub = raw_publish_ceiling(50000)
    raw_ins = raw_insert_ceiling(db)
    sustained, per10k = sustained_ingest(db)
    result("sustained durable ingest (POST/s, nginx->PostgreSQL)", "%.0f" % sustained,
           "raw confirmed publish (msg/s)", "%.0f" % raw_pub,
           "%.2f" % (sustained / raw_pub) if raw_pub == raw_pub else "")
    result("sustained durable ingest (POST/s)", "%.0f" % sustained,
           "raw batched INSERT (rows/s)", "%.0f" % raw_ins, "%.2f" % (sustained / raw_ins))
    half = max(10.0, sustained / 2)
    ws_lat, row_lat = latencies(min(half, 2000.0), db, min(SECS, 10))
    result("POST sent -> websocket receipt p50 (ms) at %.0f/s" % min(half, 2000.0), "%.2f" % pct(ws_lat, 50))
    result("POST sent -> websocket receipt p99 (ms) at %.0f/s" % min(half, 2000.0), "%.2f" % pct(ws_lat, 99))
    result("POST sent -> row visible p50 (ms)", "%.2f" % pct(row_lat, 50))
    result("POST sent -> row visible p99 (ms)", "%.2f" % pct(row_lat, 99))
    rps, p50, non2xx, _ = wrk(NGINX + "/api/v1/messages/?limit=50", min(SECS, 10), conns=16)
    nrps, np50, _, _ = wrk(NGINX + "/api/v1/health", min(SECS, 10), conns=16)
    result("GET /api/v1/messages/?limit=50 p50 (ms)", "%.2f" % p50,
           "GET /api/v1/health p50 (ms)", "%.2f" % np50, "%.2f" % (p50 / np50 if np50 else 0))
    result("GET /api/v1/messages/?limit=50 (req/s, %d non-2xx)" % non2xx, "%.0f" % rps,
           "GET /api/v1/health (req/s)", "%.0f" % nrps, "%.2f" % (rps / nrps if nrps else 0))
    for k, v in sorted(per10k.items()):
        result("CPU seconds per 10,000 messages: %s" % k, "%.2f" % v)


if __name__ == "__main__":
    main()
