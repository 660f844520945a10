/* The bus client the three programs share: the only code that speaks to
 * rabbitmq-c. The programs see the project's types alone: an opaque
 * connection, messages to publish (struct amqpc_out), deliveries
 * (struct amqpc_envelope), header values (struct amqpc_value) and the
 * events a connection reports (struct amqpc_event).
 *
 * Connecting is bounded in every step (TCP connect, AMQP handshake, each
 * synchronous method), so that a broker that is frozen rather than down
 * costs a caller seconds, not minutes. bus.url may hold several URLs,
 * comma separated: they are tried in turn, starting after the one used last,
 * so that a program moves to a live node when its node dies. Every
 * connection negotiates the configured heartbeat (a broker that stops
 * answering is noticed after two intervals) and announces the
 * "connection.blocked" capability, without which RabbitMQ never tells a
 * publisher that it stopped reading its connection because of a resource
 * alarm.
 *
 * The connection and declaration steps are here (amqpc.c); publishing,
 * consuming and reading events are in amqpc_msg.c.
 *
 * Threading: a connection belongs to one thread; these functions keep no
 * state of their own beyond what the caller passes in. */
#ifndef FPESA_COMMON_AMQPC_H
#define FPESA_COMMON_AMQPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Frame size every program negotiates. */
#define AMQPC_FRAME_MAX 131072
/* Bound of the TCP connect and of the AMQP handshake. */
#define AMQPC_CONNECT_TIMEOUT_MS 2000
/* Bound of every synchronous method (declare, bind, qos, consume, ...). */
#define AMQPC_RPC_TIMEOUT_MS 2000

/* A connection to the broker (opaque). */
struct amqpc_conn;

/* Where and how to connect. Everything is borrowed. */
struct amqpc_params {
    const char *urls;     /* one amqp:// URL, or several comma separated */
    int heartbeat;        /* seconds, 0 for none */
    const char *who;      /* names the program in the broker's connection list and the logs */
    unsigned *next_index; /* in/out: which URL of the list to try first; may be NULL */
};

/* Opens a connection to the first URL of the list that answers, logs in and
 * opens no channel. Returns the new connection (amqpc_close) or NULL, with
 * one line per URL tried in the log (URLs are logged without their
 * password). */
struct amqpc_conn *amqpc_connect(const struct amqpc_params *p);

/* Closes conn gracefully (graceful) or just drops it, and frees it. NULL is
 * fine. */
void amqpc_close(struct amqpc_conn *conn, bool graceful);

/* Opens channel. 0 or -1 (logged: "bus channel.open failed name=<name>"). */
int amqpc_channel_open(struct amqpc_conn *conn, int channel, const char *name);

/* Closes channel (normal reply); errors are left to the next call. */
void amqpc_channel_close(struct amqpc_conn *conn, int channel);

/* Puts channel in publisher confirm mode: from then on every publish on it
 * is answered by an AMQPC_EV_ACK or AMQPC_EV_NACK event, delivery tags
 * counting from 1. 0 or -1 (logged). */
int amqpc_confirm_select(struct amqpc_conn *conn, int channel, const char *name);

/* basic.qos: at most prefetch unacknowledged deliveries on channel. 0 or -1
 * (logged). */
int amqpc_qos(struct amqpc_conn *conn, int channel, unsigned prefetch, const char *name);

/* basic.consume of queue on channel with consumer_tag (NULL: the broker
 * names it); no_ack: deliveries count as settled when sent; exclusive: the
 * only consumer of the queue. 0 or -1 (logged). */
int amqpc_consume(struct amqpc_conn *conn, int channel, const char *queue, const char *consumer_tag,
                  bool no_ack, bool exclusive);

/* Declares a server-named, exclusive, auto-delete queue on channel and
 * writes its name to out (len bytes). 0 or -1 (logged; also when the name
 * does not fit). */
int amqpc_declare_private_queue(struct amqpc_conn *conn, int channel, char *out, size_t len);

/* Declares a durable exchange of type on channel. One that exists with
 * other arguments (the broker closes the channel with 406) is used as it is:
 * the channel is reopened. 0 or -1 (logged). */
int amqpc_declare_exchange(struct amqpc_conn *conn, int channel, const char *name,
                           const char *type);

/* Declares a durable queue on channel, likewise tolerant of an existing one
 * with other arguments. 0 or -1 (logged). */
int amqpc_declare_queue(struct amqpc_conn *conn, int channel, const char *name);

/* The same with durability chosen: the original Python fpesa declares its
 * exchanges and queues transient (compat: fpesa-python). */
int amqpc_declare_exchange_as(struct amqpc_conn *conn, int channel, const char *name,
                              const char *type, bool durable);
int amqpc_declare_queue_as(struct amqpc_conn *conn, int channel, const char *name, bool durable);

/* The same with a queue type: queue_type "quorum" declares a durable queue
 * with x-queue-type=quorum (replicated over the cluster's nodes); NULL, or a
 * queue that is not durable (quorum queues are durable by nature), declares
 * a classic one without the argument. A queue that exists as another type,
 * or with other arguments, is used as it is: a cluster whose operator
 * created the queues one way keeps serving every endpoint. 0 or -1 (logged). */
int amqpc_declare_queue_typed(struct amqpc_conn *conn, int channel, const char *name, bool durable,
                              const char *queue_type);

/* Declares a stream (a durable queue with x-queue-type=stream: an
 * append-only log that every consumer reads from an offset of its own, in
 * the one order the log has, replicated over the cluster's nodes) with its
 * retention: max_bytes (x-max-length-bytes; 0: none) and max_age (x-max-age,
 * e.g. "1h"; NULL: none). One that exists with other arguments is used as
 * it is. 0 or -1 (logged). */
int amqpc_declare_stream(struct amqpc_conn *conn, int channel, const char *name, int64_t max_bytes,
                         const char *max_age);

/* basic.consume of a stream from what is published from now on
 * (x-stream-offset "next"). Deliveries must be acknowledged (the channel
 * needs a prefetch, amqpc_qos). 0 or -1 (logged). */
int amqpc_consume_stream(struct amqpc_conn *conn, int channel, const char *queue,
                         const char *consumer_tag);

/* Binds queue to exchange with key (NULL: ""). 0 or -1 (logged). */
int amqpc_bind(struct amqpc_conn *conn, int channel, const char *queue, const char *exchange,
               const char *key);

/* ---- values and messages --------------------------------------------------- */

/* Bytes that are not NUL-terminated; p NULL means absent. */
struct amqpc_str {
    const char *p;
    size_t len;
};

/* A header table or array as received (opaque view, valid as long as the
 * delivery or event it came from); n entries. */
struct amqpc_table {
    const void *impl;
    size_t n;
};

/* The kinds of header value the wire has, folded into what the programs
 * tell apart. */
enum amqpc_kind {
    AMQPC_V_VOID,      /* no value */
    AMQPC_V_BOOL,      /* b */
    AMQPC_V_INT,       /* i: every signed kind, and the unsigned ones up to 32 bits */
    AMQPC_V_UINT,      /* u: an unsigned 64 bit integer */
    AMQPC_V_TIMESTAMP, /* i: seconds since the epoch */
    AMQPC_V_FLOAT,     /* f: a float or a double */
    AMQPC_V_STRING,    /* s: a long string (field kind 'S') */
    AMQPC_V_BYTES,     /* s: a byte array ('x') */
    AMQPC_V_TABLE,     /* t: read with amqpc_table_get (received only) */
    AMQPC_V_ARRAY,     /* t: read with amqpc_array_get (received only) */
    AMQPC_V_OTHER,     /* a decimal, or a kind the library does not know */
};

struct amqpc_value {
    enum amqpc_kind kind;
    union {
        bool b;
        int64_t i;
        uint64_t u;
        double f;
        struct amqpc_str s;
        struct amqpc_table t;
    } v;
};

/* Entry i (< t->n) of a received table: its name and value, borrowed from
 * the table. */
void amqpc_table_get(const struct amqpc_table *t, size_t i, struct amqpc_str *name,
                     struct amqpc_value *value);

/* Element i (< a->n) of a received array. */
void amqpc_array_get(const struct amqpc_table *a, size_t i, struct amqpc_value *value);

/* A header to send: a NUL-terminated name and a value of kind BOOL, INT
 * (sent as a 32 bit integer when it fits, else 64), UINT, TIMESTAMP, FLOAT
 * (a double), STRING or BYTES; other kinds are sent as void. */
struct amqpc_header {
    const char *name;
    struct amqpc_value value;
};

/* A string header value (s borrowed, NUL-terminated). */
struct amqpc_value amqpc_string(const char *s);

/* The properties of a received message. Strings are borrowed from the
 * delivery; p NULL when the property is absent. */
struct amqpc_props {
    struct amqpc_str content_type, message_id, correlation_id, reply_to, expiration;
    int delivery_mode; /* 1 transient, 2 persistent, 0 absent */
    bool has_timestamp;
    uint64_t timestamp;
    struct amqpc_table headers; /* n 0 when there are none */
};

/* A delivery read whole by amqpc_next_envelope. Everything is borrowed from
 * it until amqpc_envelope_free. */
struct amqpc_envelope {
    int channel;
    uint64_t delivery_tag;
    bool redelivered;
    struct amqpc_str exchange, routing_key, consumer_tag;
    const char *body; /* body_len bytes, not NUL-terminated */
    size_t body_len;
    struct amqpc_props props;
    void *impl; /* the library's, owned */
};

/* Frees what amqpc_next_envelope put in env (not env itself). Idempotent. */
void amqpc_envelope_free(struct amqpc_envelope *env);

/* A message to publish. Strings are NUL-terminated and borrowed for the
 * call; a NULL property is not sent. */
struct amqpc_out {
    const char *exchange;
    const char *routing_key; /* NULL: "" */
    const void *body;
    size_t body_len;
    bool mandatory; /* unroutable: the broker returns it (AMQPC_EV_RETURN) */
    /* Properties copied from a delivery before those below, its headers
     * too (all but those named in drop, n_drop of them, and those the
     * headers below replace); NULL for none. */
    const struct amqpc_envelope *base;
    const char *const *drop;
    size_t n_drop;
    const char *content_type, *message_id, *correlation_id, *reply_to, *expiration;
    int delivery_mode; /* 0: not sent (or the base's) */
    bool has_timestamp;
    uint64_t timestamp;
    const struct amqpc_header *headers; /* n_headers of them */
    size_t n_headers;
};

/* Headers a publish sends without allocating (the base's included). */
#define AMQPC_HEADERS_MAX 64

/* Sends m on channel. Returns 0, or a negative library status: the
 * connection is then unusable (amqpc_status_text names it). */
int amqpc_publish(struct amqpc_conn *conn, int channel, const struct amqpc_out *m);

/* basic.ack of tag (and of every earlier one with multiple), basic.nack
 * (requeue: back to the queue, else dropped or dead-lettered by the
 * broker; a single tag's nack is what basic.reject does). 0, or a negative
 * library status. */
int amqpc_ack(struct amqpc_conn *conn, int channel, uint64_t tag, bool multiple);
int amqpc_nack(struct amqpc_conn *conn, int channel, uint64_t tag, bool multiple, bool requeue);

/* A library status (a negative return of the functions above) as text. */
const char *amqpc_status_text(int status);

/* ---- events ---------------------------------------------------------------- */

enum amqpc_event_kind {
    AMQPC_EV_TIMEOUT,   /* nothing within the timeout */
    AMQPC_EV_ENVELOPE,  /* amqpc_next_envelope: a whole delivery */
    AMQPC_EV_DELIVER,   /* amqpc_next_event: basic.deliver; HEADER and BODY follow */
    AMQPC_EV_RETURN,    /* basic.return of a mandatory publish; HEADER and BODY follow */
    AMQPC_EV_HEADER,    /* the content header of the delivery or return: body_size, props */
    AMQPC_EV_BODY,      /* a piece of its body: body */
    AMQPC_EV_ACK,       /* publisher confirm: tag, multiple */
    AMQPC_EV_NACK,      /* publisher confirm refused: tag, multiple */
    AMQPC_EV_CANCEL,    /* the broker cancelled a consumer */
    AMQPC_EV_BLOCKED,   /* connection.blocked: text is the broker's reason */
    AMQPC_EV_UNBLOCKED, /* connection.unblocked */
    AMQPC_EV_OTHER,     /* a heartbeat, or a method nobody waits for */
    AMQPC_EV_CLOSED,    /* the broker closed the channel or the connection (text; close-ok
                           was sent): the connection is unusable */
    AMQPC_EV_ERROR,     /* the library lost the connection (text) */
};

/* One event. Strings and props are borrowed until the next call on the
 * connection. */
struct amqpc_event {
    enum amqpc_event_kind kind;
    int channel;
    uint64_t tag; /* ACK, NACK; DELIVER: the delivery tag */
    bool multiple;
    uint64_t body_size;       /* HEADER */
    struct amqpc_props props; /* HEADER */
    struct amqpc_str body;    /* BODY */
    char text[256];           /* BLOCKED, CLOSED, ERROR */
};

/* Reads the next frame, waiting at most timeout_us microseconds (at least
 * one: a zero wait would hide a missed heartbeat from the library's own
 * check), and reports it as one event: the hot path of a program that
 * assembles deliveries itself (bodies are never copied here). */
void amqpc_next_event(struct amqpc_conn *conn, long timeout_us, struct amqpc_event *ev);

/* Waits at most timeout_ms for the next whole delivery (ENVELOPE, env then
 * holds it: amqpc_envelope_free) or another event (TIMEOUT, ACK, NACK,
 * CANCEL, BLOCKED, UNBLOCKED, OTHER, CLOSED, ERROR; RETURN without its
 * content, which is skipped). */
enum amqpc_event_kind amqpc_next_envelope(struct amqpc_conn *conn, long timeout_ms,
                                          struct amqpc_envelope *env, struct amqpc_event *ev);

/* True when frames or bytes wait in the library's buffers: poll() on the
 * socket would not see them. */
bool amqpc_buffered(struct amqpc_conn *conn);

/* The socket, for poll(). */
int amqpc_fd(struct amqpc_conn *conn);

/* Gives the library's per-frame memory back once no event is in hand. */
void amqpc_release_buffers(struct amqpc_conn *conn);

/* Sends a heartbeat frame: the library sends them only from its own calls,
 * and a program that sleeps longer than two intervals with the connection
 * up would be dropped by the broker. */
void amqpc_heartbeat(struct amqpc_conn *conn);

/* Reconnection backoff: doubles from min_ms to max_ms, with jitter (a value
 * in [d/2, d]) so that many programs do not reconnect in step. */
struct amqpc_backoff {
    long min_ms, max_ms, cur_ms;
    unsigned seed;
};
void amqpc_backoff_init(struct amqpc_backoff *b, long min_ms, long max_ms);
long amqpc_backoff_next(struct amqpc_backoff *b);
void amqpc_backoff_reset(struct amqpc_backoff *b);

#endif
