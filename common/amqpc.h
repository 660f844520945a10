/* The bus client the three programs share: connecting to RabbitMQ, and the
 * small steps every one of them needs around rabbitmq-c.
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
 * Threading: an amqp connection belongs to one thread; these functions keep
 * no state of their own beyond what the caller passes in. */
#ifndef FPESA_COMMON_AMQPC_H
#define FPESA_COMMON_AMQPC_H

#include <amqp.h>
#include <stdbool.h>
#include <stddef.h>

/* Frame size every program negotiates. */
#define AMQPC_FRAME_MAX 131072
/* Bound of the TCP connect and of the AMQP handshake. */
#define AMQPC_CONNECT_TIMEOUT_MS 2000
/* Bound of every synchronous method (declare, bind, qos, consume, ...). */
#define AMQPC_RPC_TIMEOUT_MS 2000

/* Where and how to connect. Everything is borrowed. */
struct amqpc_params {
    const char *urls;     /* one amqp:// URL, or several comma separated */
    int heartbeat;        /* seconds, 0 for none */
    const char *who;      /* names the program in the broker's connection list and the logs */
    unsigned *next_index; /* in/out: which URL of the list to try first; may be NULL */
};

/* Opens a connection to the first URL of the list that answers, logs in and
 * opens no channel. Returns the new connection (amqpc_close or
 * amqp_destroy_connection) or NULL, with one line per URL tried in the log
 * (URLs are logged without their password). */
amqp_connection_state_t amqpc_connect(const struct amqpc_params *p);

/* Closes conn gracefully (graceful) or just drops it, and frees it. NULL is
 * fine. */
void amqpc_close(amqp_connection_state_t conn, bool graceful);

/* The text of a reply, for the logs: "ok", a library error, or the broker's
 * "connection closed by broker: 320 CONNECTION_FORCED - ..." /
 * "channel closed by broker: 404 NOT_FOUND - ...". Returns buf. */
const char *amqpc_reply_text(amqp_rpc_reply_t r, char *buf, size_t len);

/* 0 when the last synchronous method on conn succeeded; else logs
 * "bus <what> failed name=<name>: <reason>" at level warn and returns -1. */
int amqpc_check(amqp_connection_state_t conn, const char *what, const char *name);

/* Declares a durable exchange of type on channel. One that exists with
 * other arguments (the broker closes the channel with 406) is used as it is:
 * the channel is reopened. 0 or -1 (logged). */
int amqpc_declare_exchange(amqp_connection_state_t conn, int channel, const char *name,
                           const char *type);

/* Declares a durable queue on channel, likewise tolerant of an existing one
 * with other arguments. 0 or -1 (logged). */
int amqpc_declare_queue(amqp_connection_state_t conn, int channel, const char *name);

/* The same with durability chosen: the original Python fpesa declares its
 * exchanges and queues transient (compat: fpesa-python). */
int amqpc_declare_exchange_as(amqp_connection_state_t conn, int channel, const char *name,
                              const char *type, bool durable);
int amqpc_declare_queue_as(amqp_connection_state_t conn, int channel, const char *name,
                           bool durable);

/* The same with a queue type: queue_type "quorum" declares a durable queue
 * with x-queue-type=quorum (replicated over the cluster's nodes); NULL, or a
 * queue that is not durable (quorum queues are durable by nature), declares
 * a classic one without the argument. A queue that exists as another type,
 * or with other arguments, is used as it is: a cluster whose operator
 * created the queues one way keeps serving every endpoint. 0 or -1 (logged). */
int amqpc_declare_queue_typed(amqp_connection_state_t conn, int channel, const char *name,
                              bool durable, const char *queue_type);

/* Binds queue to exchange with key. 0 or -1 (logged). */
int amqpc_bind(amqp_connection_state_t conn, int channel, const char *queue, const char *exchange,
               const char *key);

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
