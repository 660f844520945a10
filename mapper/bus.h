/* The restmapper's side of RabbitMQ: one thread that owns the AMQP
 * connection (rabbitmq-c is not thread-safe), keeps many confirmed publishes
 * in flight on one channel, runs rpc calls over an exclusive reply queue, and
 * reconnects with backoff when the broker goes away.
 *
 * HTTP threads hand it work with mbus_publish()/mbus_rpc(), which never
 * block on the network; the outcome arrives later through an mbus_done_fn
 * called on the bus thread. The HTTP side stores the outcome in its request
 * and resumes the suspended connection (MHD_resume_connection is safe to call
 * from another thread).
 */
#ifndef FPESA_MAPPER_BUS_H
#define FPESA_MAPPER_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfg;
struct mbus;

/* The outcome of one publish or rpc.
 *  publish: status 202 once the broker confirmed (ack); 503 "not accepted"
 *           (outcome MBUS_NOT_ACCEPTED) when it was never sent: no
 *           connection, or the broker blocks publishers (connection.blocked,
 *           a resource alarm: answered at once); 503 "outcome unknown"
 *           (MBUS_UNKNOWN) when it was sent but not confirmed: a nack, the
 *           connection lost with the confirm outstanding, or no confirm
 *           within bus.confirm_timeout. body NULL.
 *  rpc:     status from the worker's answer (200, or error.code of an
 *           {"error": {...}} answer), 504 when the timeout passed (the
 *           request carries it as its AMQP expiration, so the broker drops a
 *           request no worker took in time), 503 when the broker is
 *           unavailable or blocking (outcome as for a publish); body is the answer as received (the
 *           bytes of the reply message) or NULL for 503/504. A JSON answer
 *           that does not parse, or one over 16 MiB, is a 502 whose body is
 *           our own {"error": {"code": 502, ...}}; an answer whose
 *           content_type is not JSON is passed on as a 200 unparsed.
 * An rpc answer may set the status itself with an AMQP header
 * "x-fpesa-status" (an integer, or a string of digits, 100 to 599), which
 * wins over the rules above, and HTTP response headers with AMQP headers
 * "x-fpesa-header-<Name>" (string values): those come in http_headers as
 * "Name: value\n" lines (names and values without CR, LF or NUL; at most 2 KiB
 * in all), NULL when there are none.
 * body/content_type/http_headers are borrowed for the duration of the call only.
 * seconds: confirm or rpc round trip as measured by the bus thread. */
/* What a 503 of a publish (or rpc) means for the message. */
enum mbus_outcome {
    MBUS_ANSWERED = 0,     /* not a 503 of ours: the status says it all */
    MBUS_NOT_ACCEPTED = 1, /* surely not taken: never sent (no connection, the broker
                              blocks publishers, stopping) */
    MBUS_UNKNOWN = 2,      /* sent, but the confirm never came (connection lost,
                              confirm deadline, nack): it may have been taken */
};

struct mbus_result {
    int status;
    enum mbus_outcome outcome; /* with status 503 */
    bool blocked;              /* with MBUS_NOT_ACCEPTED: the broker blocks publishers */
    const char *body;
    size_t body_len;
    const char *content_type;
    double seconds;
    const char *http_headers;
};

typedef void (*mbus_done_fn)(void *ctx, const struct mbus_result *result);

/* One AMQP header of a message: a name and a string value (sent as a
 * long string, field kind 'S'). */
struct mbus_header {
    const char *name;
    const char *value;
};

/* One message to send. All pointers are borrowed: mbus_publish/mbus_rpc copy
 * what they need before returning. */
struct mbus_msg {
    const char *exchange;   /* "<path>:<METHOD>" */
    const char *message_id; /* UUIDv7 or the Idempotency-Key */
    const char *body;       /* the JSON envelope {"data","args","params"}, or the bytes of a file */
    size_t body_len;
    const char *content_type;          /* "application/json", or the file's media type */
    int64_t timestamp;                 /* seconds since the epoch, the AMQP timestamp property */
    const struct mbus_header *headers; /* n_headers AMQP headers, or NULL */
    size_t n_headers;
};

/* SIGHUP: declares the exchange and queue of every endpoint of cfg
 * (borrowed; must outlive the bus or the next reload) on the live
 * connection, then uses cfg from then on (a lost connection declares it
 * again). Waits for the bus thread. Returns -1 when the broker refused a
 * declaration (the bus reconnects with the configuration it had) or the
 * bus is not running. */
int mbus_reload(struct mbus *bus, const struct cfg *cfg);

/* Creates the bus for cfg (borrowed; must outlive the bus). Does not connect
 * yet. Returns NULL on allocation failure. */
struct mbus *mbus_new(const struct cfg *cfg);

/* Starts the bus thread, which connects, declares every endpoint's exchange
 * (fanout + durable queue of the same name for publish, direct for rpc, and
 * the RPC exchange with this instance's exclusive reply queue) and keeps the
 * connection up. Returns 0, or -1 when the thread cannot be started. */
int mbus_start(struct mbus *bus);

/* Queues a persistent publish. done(ctx, result) is called exactly once, on
 * the bus thread, possibly before mbus_publish returns only if it returns 0.
 * Returns 0 when queued; -1 when the bus is stopping (done is not called). */
int mbus_publish(struct mbus *bus, const struct mbus_msg *msg, mbus_done_fn done, void *ctx);

/* Queues an rpc call with reply_to and a fresh correlation_id; done is called
 * exactly once with the answer, 504 after timeout_ms, or 503. A late answer is
 * dropped. Returns 0 when queued; -1 when the bus is stopping. */
int mbus_rpc(struct mbus *bus, const struct mbus_msg *msg, long timeout_ms, mbus_done_fn done,
             void *ctx);

/* The HTTP status an rpc answer (body[0..len), borrowed) stands for: 200,
 * or error.code (400 to 599) of an {"error": {...}} answer, when it is JSON
 * (content_type names json); 502 when such an answer is not valid JSON. The
 * answer is read as text, never parsed into doubles, so any valid JSON is
 * relayed as it is. Pure; thread-safe. */
int mbus_answer_status(const char *body, size_t len, const char *content_type);

/* True while the connection is up and the topology declared. Thread-safe. */
bool mbus_is_connected(const struct mbus *bus);

/* True while the broker blocks this connection's publishes (it sent
 * connection.blocked: a memory or disk alarm). Thread-safe. */
bool mbus_is_blocked(const struct mbus *bus);

/* Counters for /metrics; thread-safe snapshot. */
struct mbus_stats {
    uint64_t publishes_in_flight;
    uint64_t rpcs_in_flight;
    uint64_t reconnects;
    uint64_t confirms;
    uint64_t nacks;
    uint64_t rpc_timeouts;
    uint64_t late_replies;
    uint64_t confirm_timeouts; /* publishes answered 503 "outcome unknown" at the deadline */
    uint64_t blocked_refusals; /* publishes and rpcs answered 503 while blocked */
};
void mbus_stats(const struct mbus *bus, struct mbus_stats *out);

/* Stops the bus: answers every pending call with 503 (after giving in-flight
 * confirms and rpc answers up to drain_ms to arrive), closes the connection
 * and joins the thread. */
void mbus_stop(struct mbus *bus, long drain_ms);

/* Frees a stopped bus. NULL is fine. */
void mbus_free(struct mbus *bus);

#endif
