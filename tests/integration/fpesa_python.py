"""Test doubles of the original Python fpesa (BenediktSeidl/fpesa), written
from a reading of its source: what each of its programs declares on the
broker, in which order and with which flags, and the messages it sends and
expects. They speak through Debian's pika (blocking), where the original used
aio_pika for the restmapper and liveupdate and pika for the workers; the
broker sees the same methods with the same arguments.

What the original does, program by program:

restmapper (aiohttp; one channel per endpoint, prefetch 1)
  POST /messages/   exchange "/messages/:POST" fanout, NOT durable;
                    queue "/messages/:POST" durable, bound to it (aio_pika
                    binds with the queue's name as routing key);
                    publishes {"data": body, "args": null} with NO properties
                    (no message_id, content_type, timestamp, delivery_mode);
                    answers 200 {}.
  GET /messages/    exchange "/messages/:GET" direct, NOT durable; queue
                    "/messages/:GET" NOT durable, bound with its name;
                    exchange "RPC" direct, NOT durable; an exclusive
                    server-named reply queue bound to "RPC" with its name.
                    Requests carry reply_to and correlation_id (uuid4 hex)
                    and {"data": null, "args": {query as strings}}. An answer
                    holding "error" becomes a 500.
                    Its args schema requires offset and limit (digits) and
                    allows paginationId (digits).
messages_post worker (pika)
                    declares the queue "/messages/:POST" durable (nothing
                    else), stores body["data"] in table "message" (id serial,
                    inserted timestamp, message jsonb), acks after commit.
messages_get worker (pika)
                    declares the queue "/messages/:GET" NOT durable; answers
                    on exchange "RPC" with routing key reply_to and the
                    request's correlation_id:
                    {"paginationId", "offset", "limit", "total", "messages"}
                    with limit clipped to 100, paginationId the newest id
                    (0 for an empty table), total the rows with
                    id <= paginationId, messages the stored objects newest
                    first; any failure {"error": {"code": 500, ...}}.
liveupdate (websockets + aio_pika)
                    exchange "/messages/:POST" fanout NOT durable, queue
                    "liveupdate" durable bound to it; every message is sent
                    to every websocket as a BINARY frame holding
                    json.dumps(body["data"]) and nothing else; any path is
                    served (the frontend uses /ws/v1/ through nginx).
frontend (Vue 2)    Index.vue: new WebSocket('ws://' + host + '/ws/v1/'),
                    reads each frame as a Blob (FileReader.readAsText) and
                    JSON.parse()s it. Saved.vue: GET /api/v1/messages/ with
                    offset, limit (10) and paginationId (left out while
                    undefined), keeps paginationId from the answer, pages
                    while offset + limit < total.
"""
import json
import threading
import time
import uuid

import pika
import psycopg2
import requests
import websocket

POST = "/messages/:POST"
GET = "/messages/:GET"


def _connect(amqp_url):
    return pika.BlockingConnection(pika.URLParameters(amqp_url))


class Restmapper:
    """The original restmapper's bus side: its declarations at start-up
    (raised as pika exceptions when the broker refuses them, which stops the
    original from starting) and what it sends per request."""

    def __init__(self, amqp_url):
        self.conn = _connect(amqp_url)
        try:
            # FireAndForgetAdapter.init, on the POST endpoint's channel.
            self.post_ch = self.conn.channel()
            self.post_ch.basic_qos(prefetch_count=1)
            self.post_ch.exchange_declare(POST, "fanout")
            self.post_ch.queue_declare(POST, durable=True)
            self.post_ch.queue_bind(POST, POST, routing_key=POST)
            # RequestResponseAdapter.init, on the GET endpoint's channel.
            self.get_ch = self.conn.channel()
            self.get_ch.basic_qos(prefetch_count=1)
            self.get_ch.exchange_declare(GET, "direct")
            self.get_ch.queue_declare(GET)
            self.get_ch.queue_bind(GET, GET, routing_key=GET)
            self.get_ch.exchange_declare("RPC", "direct")
            self.reply_queue = self.get_ch.queue_declare("", exclusive=True).method.queue
            self.get_ch.queue_bind(self.reply_queue, "RPC", routing_key=self.reply_queue)
        except Exception:
            self.close()
            raise
        self.answers = {}
        self.get_ch.basic_consume(self.reply_queue, self._on_answer)

    def _on_answer(self, ch, method, props, body):
        self.answers[props.correlation_id] = body
        ch.basic_ack(method.delivery_tag)

    def post(self, data):
        """POST /messages/ with a JSON body: the original's answer (200, {})."""
        self.post_ch.basic_publish(POST, "", json.dumps({"data": data, "args": None}).encode())
        return 200, {}

    def get(self, args, timeout=15.0):
        """GET /messages/?args: (status, answer) as the original would give
        them; (504, None) when no answer came (the original would wait
        forever)."""
        corr = uuid.uuid4().hex
        self.get_ch.basic_publish(GET, GET, json.dumps({"data": None, "args": args}).encode(),
                                  pika.BasicProperties(reply_to=self.reply_queue,
                                                       correlation_id=corr))
        deadline = time.time() + timeout
        while corr not in self.answers and time.time() < deadline:
            self.conn.process_data_events(time_limit=0.1)
        body = self.answers.pop(corr, None)
        if body is None:
            return 504, None
        result = json.loads(body.decode())
        return (500 if "error" in result else 200), result

    def close(self):
        if self.conn.is_open:
            self.conn.close()


class _Worker:
    """A program of the original running its consume loop in a daemon
    thread. start() returns once it declared and consumes, or raises what
    the broker answered to its declarations."""

    def __init__(self, amqp_url):
        self.amqp_url = amqp_url
        self.error = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = None

    def declare(self, ch):
        raise NotImplementedError

    def on_message(self, ch, method, props, body):
        raise NotImplementedError

    def _run(self):
        conn = None
        try:
            conn = _connect(self.amqp_url)
            ch = conn.channel()
            self.declare(ch)
            ch.basic_consume(self.queue, self.on_message)
            self._ready.set()
            while not self._stop.is_set():
                conn.process_data_events(time_limit=0.1)
        except Exception as e:  # reported by start() or seen in .error
            self.error = e
            self._ready.set()
        finally:
            if conn is not None and conn.is_open:
                try:
                    conn.close()
                except Exception:
                    pass

    def start(self, timeout=15.0):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("%s did not start" % type(self).__name__)
        if self.error:
            raise self.error
        return self

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(10)


class MessagesPost(_Worker):
    """The original messages_post worker, storing into its own table
    (default "message", as the original)."""

    queue = POST

    def __init__(self, amqp_url, database_url, table="message"):
        super().__init__(amqp_url)
        self.table = table
        self.db = psycopg2.connect(database_url)
        with self.db, self.db.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS %s (id serial PRIMARY KEY,"
                        " inserted timestamp DEFAULT now(), message jsonb)" % table)

    def declare(self, ch):
        ch.queue_declare(POST, durable=True)

    def on_message(self, ch, method, props, body):
        with self.db, self.db.cursor() as cur:
            cur.execute("INSERT INTO %s (message) VALUES (%%s)" % self.table,
                        (json.dumps(json.loads(body.decode())["data"]),))
        ch.basic_ack(method.delivery_tag)

    def stop(self):
        super().stop()
        self.db.close()


class MessagesGet(_Worker):
    """The original messages_get worker over the same table."""

    queue = GET

    def __init__(self, amqp_url, database_url, table="message"):
        super().__init__(amqp_url)
        self.table = table
        self.db = psycopg2.connect(database_url)
        self.db.autocommit = True
        self.requests = 0

    def declare(self, ch):
        ch.queue_declare(GET)

    def answer(self, args):
        t = self.table
        pid = args.get("paginationId")
        pid = int(pid) if pid is not None else None
        offset = int(args["offset"])
        limit = min(100, int(args["limit"]))
        with self.db.cursor() as cur:
            cur.execute("SELECT count(*) FROM %s" % t)
            if cur.fetchone()[0] == 0:
                return {"paginationId": 0, "offset": offset, "limit": limit, "total": 0,
                        "messages": []}
            if pid is None:
                cur.execute("SELECT id FROM %s ORDER BY id DESC LIMIT 1" % t)
                pid = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM %s WHERE id <= %%s" % t, (pid,))
            total = cur.fetchone()[0]
            cur.execute("SELECT message FROM %s WHERE id <= %%s ORDER BY id DESC"
                        " OFFSET %%s LIMIT %%s" % t, (pid, offset, limit))
            messages = [r[0] for r in cur.fetchall()]
        return {"paginationId": pid, "offset": offset, "limit": limit, "total": total,
                "messages": messages}

    def on_message(self, ch, method, props, body):
        self.requests += 1
        try:
            response = self.answer(json.loads(body.decode())["args"])
        except Exception:
            response = {"error": {"code": 500, "description": "Internal server error"}}
        ch.basic_publish("RPC", props.reply_to, json.dumps(response),
                         pika.BasicProperties(correlation_id=props.correlation_id))
        ch.basic_ack(method.delivery_tag)

    def stop(self):
        super().stop()
        self.db.close()


class Liveupdate(_Worker):
    """The original liveupdate's bus side; frames holds what it sends to
    every websocket (binary, the message's data as JSON)."""

    queue = "liveupdate"

    def __init__(self, amqp_url):
        super().__init__(amqp_url)
        self.frames = []
        self._lock = threading.Lock()

    def declare(self, ch):
        ch.exchange_declare(POST, "fanout")
        ch.queue_declare("liveupdate", durable=True)
        ch.queue_bind("liveupdate", POST, routing_key="liveupdate")

    def on_message(self, ch, method, props, body):
        frame = json.dumps(json.loads(body.decode())["data"]).encode()
        with self._lock:
            self.frames.append(frame)
        ch.basic_ack(method.delivery_tag)

    def received(self):
        with self._lock:
            return [json.loads(f.decode()) for f in self.frames]


class Frontend:
    """The original Vue 2 frontend's protocol, from its components, for a
    page served at host (location.host): nginx in front of the API under
    /api/v1/ and the live feed under /ws/v1/."""

    def __init__(self, host):
        self.host = host
        self.http = requests.Session()
        # Saved.vue's data().
        self.messages, self.pagination_id, self.offset, self.limit, self.total = [], None, 0, 10, 0
        self.error = ""

    # ---- Index.vue
    def open_live(self, timeout=15):
        """new WebSocket('ws://' + location.host + '/ws/v1/')"""
        return websocket.create_connection("ws://%s/ws/v1/" % self.host, timeout=timeout)

    @staticmethod
    def on_socket_message(ws):
        """onSocketMessage: the frame is read as a Blob (FileReader.readAsText,
        which only a binary frame gives; a text frame arrives as a string and
        readAsText throws) and JSON.parse()d: that is the message shown."""
        opcode, data = ws.recv_data()
        if opcode != websocket.ABNF.OPCODE_BINARY:
            raise AssertionError("a text frame: readAsText(string) throws in Index.vue")
        return json.loads(data.decode("utf-8")), data

    # ---- Saved.vue
    def load(self):
        """load(): GET /api/v1/messages/ with offset, limit and paginationId;
        vue-resource leaves out a parameter whose value is undefined."""
        params = {"offset": self.offset, "limit": self.limit}
        if self.pagination_id is not None:
            params["paginationId"] = self.pagination_id
        r = self.http.get("http://%s/api/v1/messages/" % self.host, params=params, timeout=15)
        if r.status_code // 100 == 2:
            data = r.json()
            self.messages = data["messages"]
            self.offset = data["offset"]
            self.limit = data["limit"]
            self.pagination_id = data["paginationId"]
            self.total = data["total"]
            self.error = ""
        else:
            self.error = r.text
        return r.status_code

    def turn_page(self, direction):
        self.offset += direction * self.limit
        return self.load()

    def next_enabled(self):
        """The >> button is disabled unless offset + limit < total."""
        return self.offset + self.limit < self.total

    # ---- Dev.vue
    def post_single(self, text):
        """messagesPostSingle: the textarea's text as the body; vue-resource's
        default POST header says application/json;charset=utf-8."""
        r = self.http.post("http://%s/api/v1/messages/" % self.host, data=text.encode(),
                           headers={"Content-Type": "application/json;charset=utf-8"},
                           timeout=15)
        return r.status_code, r.text

    def post_multiple(self, i):
        """messagesPostMultiple: {'multiple': true, 'i': i}, JSON-encoded."""
        r = self.http.post("http://%s/api/v1/messages/" % self.host,
                           json={"multiple": True, "i": i}, timeout=15)
        return r.status_code

    def close(self):
        self.http.close()
