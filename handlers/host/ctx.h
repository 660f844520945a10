/* The inside of struct fpesa_ctx, shared by consumer.c and services.c. */
#ifndef HOST_CTX_H
#define HOST_CTX_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "amqpc.h"
#include "consumer.h"
#include "stats.h"
#include "supervise.h"

struct fpesa_ctx {
    const struct cfg *cfg;
    const struct cfg_handler *h;
    const struct plugin *plugin;
    int instance;
    void *state; /* the plugin's, from init */
    bool has_state;
    char *config_json;       /* h->config as JSON text, "{}" when absent */
    char *dlq;               /* "<queue>.dlq" */
    struct amqpc_conn *conn; /* while connected; only the consumer thread uses it */
    unsigned url_index;      /* which URL of bus.url to try first */
    bool in_batch;           /* reply/publish allowed */
    bool is_rpc;             /* the queue is an rpc endpoint's: callers wait, batches do not */
    pthread_t thread;
    bool started;
    pthread_t run_thread; /* the plugin's run(), when it has one */
    bool run_started;
    pthread_mutex_t cache_lock;
    char **cache; /* strings returned by the config service */
    size_t n_cache;
    uint64_t n_ok, n_retry, n_reject;
    struct sup_table *crashes; /* the handler's crash records (supervise.h), or NULL */
    struct sup_slot *slot;     /* this instance's batch in hand, or NULL */
    struct hstats *stats;      /* the handler's shared counters (stats.h), or NULL */
};

#endif
