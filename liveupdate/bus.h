/* liveupdate's side of RabbitMQ: one thread that owns the AMQP connection
 * (rabbitmq-c is not thread-safe).
 *
 * It declares the fanout exchange of every live endpoint (durable, so start
 * order does not matter), binds one exclusive, auto-delete, server-named queue
 * to all of them (liveupdate.source: queue) or reads a stream per exchange,
 * "<exchange>:live", bound to it (source: stream: every instance then sees
 * the same order, so a client resumes exactly on any of them), and turns
 * each delivery into one shared
 * frame (buf.h) that it pushes to the inbox before waking the service thread. It also sends the
 * resume requests to the stored-messages rpc and hands the answers back the
 * same way. The connection is re-established with exponential backoff; loss
 * and recovery are reported as events so clients can be told.
 */
#ifndef LIVE_BUS_H
#define LIVE_BUS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct live_bus;

/* Called by the bus thread after it pushed events; must be thread-safe. */
typedef void live_wake_fn(void *arg);

struct live_bus_params {
    const char *url;                  /* borrowed; amqp://user:pass@host:port/vhost */
    int heartbeat;                    /* seconds */
    size_t n_exchanges;               /* live fanout exchanges to bind */
    const char *const *exchanges;     /* borrowed, n_exchanges names */
    const int *exchange_channel;      /* channel index of each exchange */
    const char *const *channel_paths; /* borrowed: path of each channel index */
    size_t n_rpc_exchanges;           /* rpc exchanges the resume requests go to */
    const char *const *rpc_exchanges; /* borrowed; declared direct at connect */
    size_t pre;                       /* headroom for each frame (LWS_PRE) */
    bool transient;                   /* declare exchanges not durable (compat fpesa-python) */
    int original_channel;     /* channel that also gets every live message in the original fpesa's
                                 form (binary, data only), or -1 */
    bool stream;              /* read streams, not a private queue */
    int64_t stream_max_bytes; /* the streams' retention (0: none) */
    int stream_max_age_s;     /* (0: none) */
    struct live_inbox *inbox; /* borrowed; where events go */
    live_wake_fn *wake;
    void *wake_arg;
};

/* Counters the bus thread updates; read by /metrics and /health. */
struct live_bus_stats {
    atomic_ullong messages_in;  /* deliveries received */
    atomic_ullong bad_messages; /* deliveries that were not a JSON envelope */
    atomic_ullong reconnects;   /* connections established after the first */
    atomic_ullong rpc_sent;     /* resume requests published */
    atomic_ullong rpc_answers;  /* resume answers received */
    atomic_int connected;       /* 1 while the broker connection is up */
};

/* Starts the bus thread. params and everything it points to are borrowed
 * and must outlive the bus. Returns a new bus (stop with live_bus_stop) or
 * NULL when the thread cannot be created. Connection problems are not errors
 * here: the thread keeps retrying. */
struct live_bus *live_bus_start(const struct live_bus_params *params);

/* Stops the thread, closes the connection, frees the bus. NULL is fine. */
void live_bus_stop(struct live_bus *bus);

/* The counters (borrowed, valid until live_bus_stop). */
struct live_bus_stats *live_bus_stats(struct live_bus *bus);

/* Asks the bus thread to publish a resume request for a client: body
 * {"data":null,"args":{"after":after,"limit":"<limit>"}} to exchange (routing
 * key the same), answered later by a LIVE_EV_REPLAY event carrying client,
 * page and the messages for channel. Strings are copied. Returns 0, or -1
 * when out of memory or the broker is down (the caller answers the client). */
/* A reload's new live exchange (borrowed; copied): from the bus thread's
 * next turn it is declared and bound to this instance's queue, and its
 * messages go to channel (whose path must already be in the channel_paths
 * array given at the start); rpc_exchange (or NULL) is the channel's resume
 * route, declared too. Any thread. Returns -1 when out of memory. */
int live_bus_add(struct live_bus *bus, const char *exchange, int channel, const char *rpc_exchange);

int live_bus_request_replay(struct live_bus *bus, uint64_t client, int page, int channel,
                            const char *exchange, const char *after, long limit);

#endif
