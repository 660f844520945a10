"""A counted, bounded load of POSTs with unique ids, for the fault tests.

Every request carries its own Idempotency-Key (a fresh UUID), which becomes
the message id, so afterwards the database can be asked about each id that
was answered 202. A request that is not answered 202 may fail, but it must
fail with a JSON error and not hang.
"""
import json
import threading
import time
import uuid

import psycopg2
import requests


class Load:
    def __init__(self, url, total, threads=8, deadline_s=120.0, timeout_s=30.0, marked=None,
                 rate=None):
        self.url = url
        # At most rate requests per second in all (None: as fast as answered),
        # so that a load of a known length spans its fault.
        self.rate = rate
        self.t0 = time.monotonic()
        # {n: extra body members}: request number n carries them (a poison
        # message for a test plugin, say); its id lands in marked_ids[n].
        self.marked = marked or {}
        self.marked_ids = {}
        self.total = total
        self.threads = threads
        self.deadline = time.time() + deadline_s
        self.timeout_s = timeout_s
        self.lock = threading.Lock()
        self.next = 0
        self.accepted = []      # ids answered 202
        self.rejected = {}      # status -> count, for answers that were JSON errors
        self.bad = []           # answers that were neither 202 nor a JSON error
        self.hangs = 0          # requests that got no answer within timeout_s
        self.conn_errors = 0    # refused/reset connections (no HTTP answer at all)
        self.not_accepted = []  # ids answered 503 that were surely not accepted
        self.unknown = []       # ids answered 503 "outcome unknown" (retry with the same key)
        self.max_latency = 0.0  # seconds, over every answered request
        self.accept_times = []  # time.monotonic() of every 202, for the longest gap
        self._workers = []

    def _take(self):
        with self.lock:
            if self.next >= self.total or time.time() > self.deadline:
                return None
            self.next += 1
            n = self.next
        if self.rate:
            due = self.t0 + n / self.rate
            left = due - time.monotonic()
            if left > 0:
                time.sleep(left)
        return n

    def _run(self):
        s = requests.Session()
        while True:
            n = self._take()
            if n is None:
                break
            mid = str(uuid.uuid4())
            body = {"n": n, "key": mid, "pad": "x" * 64}
            if self.marked and n in self.marked:
                body.update(self.marked[n])
                self.marked_ids[n] = mid
            t0 = time.monotonic()
            try:
                # Compact, as a marker a test plugin looks for is written
                # (the mapper passes the client's bytes on unchanged).
                r = s.post(self.url, data=json.dumps(body, separators=(",", ":")),
                           headers={"Content-Type": "application/json", "Idempotency-Key": mid},
                           timeout=self.timeout_s)
            except requests.Timeout:
                with self.lock:
                    self.hangs += 1
                    self.unknown.append(mid)
                    self.max_latency = max(self.max_latency, time.monotonic() - t0)
                continue
            except requests.ConnectionError:
                with self.lock:
                    self.conn_errors += 1
                s.close()
                s = requests.Session()
                time.sleep(0.05)
                continue
            with self.lock:
                self.max_latency = max(self.max_latency, time.monotonic() - t0)
            if r.status_code == 202:
                try:
                    rid = r.json()["id"]
                except (ValueError, KeyError):
                    rid = None
                with self.lock:
                    if rid == mid:
                        self.accepted.append(mid)
                        self.accept_times.append(time.monotonic())
                    else:
                        self.bad.append((r.status_code, r.text[:200]))
                continue
            try:
                err = r.json()["error"]
                ok = isinstance(err, dict) and err.get("code") == r.status_code
            except (ValueError, KeyError, TypeError):
                ok = False
            with self.lock:
                if ok:
                    self.rejected[r.status_code] = self.rejected.get(r.status_code, 0) + 1
                    if r.status_code == 503:
                        if err.get("outcome") == "unknown":
                            self.unknown.append(mid)
                        else:
                            self.not_accepted.append(mid)
                else:
                    self.bad.append((r.status_code, r.text[:200]))
            if r.status_code >= 500:
                time.sleep(0.02)
        s.close()

    def start(self):
        self.t0 = time.monotonic()
        for _ in range(self.threads):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def sent(self):
        with self.lock:
            return self.next

    def join(self, timeout_s=None):
        """Waits for the workers (each ends within the load's deadline plus
        one request's timeout, or timeout_s when given)."""
        end = time.time() + (timeout_s if timeout_s is not None
                             else max(0.0, self.deadline - time.time()) + self.timeout_s + 30)
        for t in self._workers:
            t.join(max(0.1, end - time.time()))
        return self

    def sleep(self, seconds):
        """Waits seconds, or less when every request was sent already."""
        end = time.time() + seconds
        while time.time() < end and any(t.is_alive() for t in self._workers):
            time.sleep(0.05)

    def stop(self):
        """No new request is started; the ones in flight finish."""
        with self.lock:
            self.total = min(self.total, self.next)
        return self.join(self.timeout_s + 30)

    def longest_gap(self):
        """The longest time in seconds between two 202s (how long a failover
        kept every request from being accepted)."""
        with self.lock:
            t = sorted(self.accept_times)
        return max((b - a for a, b in zip(t, t[1:])), default=0.0)

    def summary(self):
        return ("sent=%d accepted=%d rejected=%s bad=%d hangs=%d conn_errors=%d"
                % (self.next, len(self.accepted), self.rejected, len(self.bad), self.hangs,
                   self.conn_errors))


def stored_counts(db, ids):
    """How many rows each id has in the messages table."""
    with db.cursor() as cur:
        cur.execute("SELECT id::text, count(*) FROM messages WHERE id::text = ANY(%s) GROUP BY id",
                    (list(ids),))
        return dict(cur.fetchall())


def wait_stored(dsn, ids, timeout_s=60.0):
    """Waits until every id is stored; returns {id: count} of the last look.
    Connects afresh for each look, so a database restart does not end it."""
    deadline = time.time() + timeout_s
    counts = {}
    while time.time() < deadline:
        try:
            db = psycopg2.connect(dsn)
            try:
                counts = stored_counts(db, ids)
            finally:
                db.close()
        except psycopg2.OperationalError:
            time.sleep(0.5)
            continue
        if len(counts) == len(set(ids)):
            return counts
        time.sleep(0.5)
    return counts


# One row per fault, printed as a table at the end of the session
# (conftest.py's pytest_terminal_summary).
FAULT_ROWS = []
FAULT_NOTES = []  # one line each, printed under the table
FAULT_COLUMNS = ("fault", "sent", "202", "503 not accepted", "503 outcome unknown", "stored once",
                 "missing", "duplicated", "max latency s", "hung")


def fault_row(name, load, counts):
    """Records the table row of one fault from its load and the store's
    counts ({id: rows}) of the ids answered 202."""
    once = sum(1 for i in load.accepted if counts.get(i) == 1)
    missing = sum(1 for i in load.accepted if i not in counts)
    doubled = sum(1 for i in load.accepted if counts.get(i, 0) > 1)
    row = (name, load.next, len(load.accepted), len(load.not_accepted), len(load.unknown), once,
           missing, doubled, "%.2f" % load.max_latency, load.hangs)
    FAULT_ROWS.append(row)
    return row


def fault_table():
    """The recorded rows as a text table."""
    rows = [FAULT_COLUMNS] + [tuple(str(c) for c in r) for r in FAULT_ROWS]
    widths = [max(len(r[i]) for r in rows) for i in range(len(FAULT_COLUMNS))]
    lines = []
    for k, r in enumerate(rows):
        lines.append(" | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                for i, (c, w) in enumerate(zip(r, widths))))
        if k == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines + FAULT_NOTES)
