#!/usr/bin/python3
"""Durable ingest on one node and on the cluster, each beside a raw
publisher into the same topology, in one run.

On the stack scripts/bench.sh started (one RabbitMQ node, one PostgreSQL),
then on the cluster scripts/cluster.sh starts for this run (three RabbitMQ
nodes with quorum queues, a primary with a streaming replica, two of each
program; ports FPESA_PORT_BASE+60 and up), it measures:

  * system: wrk POSTs through nginx for BENCH_SECONDS, then the time until
    the store has every accepted message: stored messages per second;
  * raw: bench/publish_baseline (rabbitmq-c, 100 confirms outstanding) into
    the mapper's own exchange and queue, with the same handler hosts storing
    the messages: stored messages per second.

It prints RESULT lines: each system figure beside its raw publisher, and the
cluster's figures beside one node's; and for each run the CPU time every
program (and the load generator) spent per stored message, from /proc: on
a box where every part shares the cores, the raw publisher's total over the
system's is about the ratio the system can reach there.
"""
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

import pika
import psycopg2

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
SECS = int(os.environ.get("BENCH_SECONDS", "10"))
QUEUE = "/messages/:POST"
POST_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"bench":true,"text":"a message of about a hundred bytes for the end to end benchmark ....."}'
"""


def result(figure, value, ref="", ref_value="", ratio=""):
    print("RESULT\t%s\t%s\t%s\t%s\t%s" % (figure, value, ref, ref_value, ratio), flush=True)


def rows(dsn):
    c = psycopg2.connect(dsn)
    try:
        with c.cursor() as cur:
            cur.execute("SELECT count(*) FROM messages")
            return cur.fetchone()[0]
    finally:
        c.close()


def depth(amqp):
    conn = pika.BlockingConnection(pika.URLParameters(amqp))
    try:
        return conn.channel().queue_declare(QUEUE, passive=True).method.message_count
    finally:
        conn.close()


def drained(amqp, dsn, target, t0, limit):
    """Waits until the store holds target rows (or limit seconds pass);
    returns the seconds since t0."""
    deadline = time.time() + limit
    while time.time() < deadline:
        if rows(dsn) >= target:
            break
        time.sleep(0.2)
    return time.time() - t0


# Programs by their process name, as the CPU figures name them.
GROUPS = {"beam.smp": "broker", "postgres": "database", "nginx": "nginx",
          "restmapper": "restmapper", "handler": "handler host", "liveupdate": "liveupdate"}
TICK = os.sysconf("SC_CLK_TCK")


def cpu_now():
    """CPU seconds so far per program group (every process of that name on
    the box), and of this script's finished children (the load generator)."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                st = f.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        group = GROUPS.get(comm)
        if group:
            fields = st[st.rindex(")") + 2:].split()
            out[group] = out.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / TICK
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    out["load generator"] = ru.ru_utime + ru.ru_stime
    return out


def cpu_per_message(label, before, stored):
    """Prints the CPU µs per stored message of each group since before;
    returns the total."""
    after = cpu_now()
    per = {g: (after.get(g, 0.0) - before.get(g, 0.0)) * 1e6 / max(stored, 1) for g in after}
    total = sum(per.values())
    print("%s: CPU per stored message (µs): %s; total %.0f" % (
        label, ", ".join("%s %.0f" % (g, v) for g, v in sorted(per.items(), key=lambda x: -x[1])
                         if v >= 0.5), total), flush=True)
    return total


def wrk_post(url):
    lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    lua.write(POST_LUA)
    lua.close()
    try:
        out = subprocess.run(["wrk", "-t2", "-c64", "-d%ds" % SECS, "-s", lua.name, url],
                             capture_output=True, text=True, timeout=SECS + 60).stdout
    finally:
        os.unlink(lua.name)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return total - (int(non2xx.group(1)) if non2xx else 0), total


def system_rate(nginx, amqp, dsn):
    """Returns (stored msg/s, CPU µs per stored message)."""
    r0 = rows(dsn)
    cpu0 = cpu_now()
    t0 = time.time()
    ok, total = wrk_post(nginx + "/api/v1/messages/")
    secs = drained(amqp, dsn, r0 + ok, t0, SECS * 6)
    stored = rows(dsn) - r0
    print("system: %d POSTs (%d accepted), %d stored in %.1fs" % (total, ok, stored, secs), flush=True)
    return stored / secs, cpu_per_message("system", cpu0, stored)


def raw_rate(amqp, dsn, n):
    build = os.environ.get("BUILD", os.path.join(ROOT, "build"))
    exe = os.path.join(build, "bench", "publish_baseline")
    src = os.path.join(ROOT, "bench", "publish_baseline.c")
    if not os.path.exists(exe) or os.path.getmtime(src) > os.path.getmtime(exe):
        os.makedirs(os.path.dirname(exe), exist_ok=True)
        subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-O2", src, "-o", exe, "-lrabbitmq"],
                       check=True)
    body = json.dumps({"data": {"bench": True, "text": "x" * 80}, "args": None})
    r0 = rows(dsn)
    cpu0 = cpu_now()
    t0 = time.time()
    out = subprocess.run([exe, amqp.split(",")[0], QUEUE, str(n), "100", body], capture_output=True,
                         text=True, timeout=SECS * 30, env=dict(os.environ, BASELINE_EXISTING="1"))
    secs = drained(amqp, dsn, r0 + n, t0, SECS * 6)
    stored = rows(dsn) - r0
    print("raw: %s; %d stored in %.1fs" % (out.stdout.strip() or out.stderr.strip(), stored, secs),
          flush=True)
    return stored / secs, cpu_per_message("raw", cpu0, stored)


def cluster(*args, timeout=900):
    return subprocess.run([os.path.join(ROOT, "scripts", "cluster.sh"), *args], capture_output=True,
                          text=True, timeout=timeout)


def measure(label, nginx, amqp, dsn):
    system, system_cpu = system_rate(nginx, amqp, dsn)
    raw, raw_cpu = raw_rate(amqp, dsn, max(2000, int(system * SECS)))
    result("%s: durable ingest through nginx (stored msg/s)" % label, "%.0f" % system,
           "%s: raw confirmed publisher, same queue and consumers (stored msg/s)" % label,
           "%.0f" % raw, "%.2f" % (system / raw if raw else 0))
    result("%s: raw publisher's CPU per stored message (µs)" % label, "%.0f" % raw_cpu,
           "%s: system's CPU per stored message (µs)" % label, "%.0f" % system_cpu,
           "%.2f" % (raw_cpu / system_cpu if system_cpu else 0))
    return system, raw


def main():
    one = measure("one node", "http://127.0.0.1:%s" % os.environ["FPESA_NGINX_PORT"],
                  os.environ["FPESA_AMQP_URL"], os.environ["FPESA_DATABASE_URL"])
    # The cluster needs the cores: the single-node stack's programs stay idle.
    r = cluster("start", timeout=1500)
    try:
        if r.returncode != 0:
            print("cluster did not start:\n" + (r.stdout + r.stderr)[-3000:])
            return 1
        env = dict(l.split("=", 1) for l in cluster("env").stdout.splitlines() if "=" in l)
        three = measure("cluster", env["CLUSTER_NGINX"], env["CLUSTER_AMQP_URLS"],
                        env["CLUSTER_PRIMARY"])
    finally:
        cluster("stop", timeout=600)
    result("cluster durable ingest (stored msg/s)", "%.0f" % three[0],
           "one node durable ingest (stored msg/s)", "%.0f" % one[0],
           "%.2f" % (three[0] / one[0] if one[0] else 0))
    result("cluster raw publisher (stored msg/s)", "%.0f" % three[1],
           "one node raw publisher (stored msg/s)", "%.0f" % one[1],
           "%.2f" % (three[1] / one[1] if one[1] else 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
