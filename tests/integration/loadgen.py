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
    def __init__(self, url, total, threads=8, deadline_s=120.0, timeout_s=30.0):
        self.url = url
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
        self._workers = []

    def _take(self):
        with self.lock:
            if self.next >= self.total or time.time() > self.deadline:
                return None
            self.next += 1
            return self.next

    def _run(self):
        s = requests.Session()
        while True:
            n = self._take()
            if n is None:
                break
            mid = str(uuid.uuid4())
            body = {"n": n, "key": mid, "pad": "x" * 64}
            try:
                r = s.post(self.url, data=json.dumps(body),
                           headers={"Content-Type": "application/json", "Idempotency-Key": mid},
                           timeout=self.timeout_s)
            except requests.Timeout:
                with self.lock:
                    self.hangs += 1
                continue
            except requests.ConnectionError:
                with self.lock:
                    self.conn_errors += 1
                s.close()
                s = requests.Session()
                time.sleep(0.05)
                continue
            if r.status_code == 202:
                try:
                    rid = r.json()["id"]
                except (ValueError, KeyError):
                    rid = None
                with self.lock:
                    if rid == mid:
                        self.accepted.append(mid)
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
                else:
                    self.bad.append((r.status_code, r.text[:200]))
            if r.status_code >= 500:
                time.sleep(0.02)
        s.close()

    def start(self):
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

    def stop(self):
        """No new request is started; the ones in flight finish."""
        with self.lock:
            self.total = min(self.total, self.next)
        return self.join(self.timeout_s + 30)

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
