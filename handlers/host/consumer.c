/* The consumer thread: connect, declare, consume, batch, settle, reconnect. */
#include "consumer.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include "amqpc.h"
#include "ctx.h"
#include "headers.h"
#include "log.h"

#define CHANNEL 1
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define POLL_MS 250

static atomic_int stop_flag;

/* Becomes readable when the host stops: the stop_fd of plugins' run(). */
static int stop_pipe[2] = {-1, -1};
static pthread_once_t stop_pipe_once = PTHREAD_ONCE_INIT;

static void stop_pipe_init(void) {
    if (pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        int saved = errno;
        LOG(LOG_ERROR, "cannot create the stop pipe: %s", strerror(saved));
        stop_pipe[0] = stop_pipe[1] = -1;
    }
}

void consumer_request_stop(void) {
    atomic_store(&stop_flag, 1);
    if (stop_pipe[1] >= 0) {
        /* One byte wakes every reader: nobody ever reads it. */
        ssize_t w = write(stop_pipe[1], "x", 1);
        (void)w;
    }
}

static bool stopping(void) {
    return atomic_load(&stop_flag) != 0;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps ms, waking early when asked to stop. */
static void nap(long ms) {
    while (ms > 0 && !stopping()) {
        long step = ms < 50 ? ms : 50;
        struct timespec ts = {0, step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

static char *dup_bytes(struct amqpc_str b) {
    char *s = malloc(b.len + 1);
    if (!s)
        return NULL;
    if (b.len)
        memcpy(s, b.p, b.len);
    s[b.len] = '\0';
    return s;
}

/* Naps like nap(), with the connection up: the library sends heartbeats
 * only from its own calls, and a backoff longer than two heartbeat
 * intervals would make the broker drop the connection. */
static void nap_alive(struct fpesa_ctx *c, long ms) {
    while (ms > 0 && !stopping()) {
        long step = ms < 1000 ? ms : 1000;

        nap(step);
        ms -= step;
        if (c->conn)
            amqpc_heartbeat(c->conn);
    }
}

/* ---- life cycle ------------------------------------------------------------ */

struct fpesa_ctx *consumer_new(const struct cfg *cfg, const struct cfg_handler *h,
                               const struct plugin *p, int instance, char *err, size_t errlen) {
    struct fpesa_ctx *c = calloc(1, sizeof(*c));
    size_t n;

    if (!c) {
        snprintf(err, errlen, "handler %s: out of memory", h->name);
        return NULL;
    }
    c->cfg = cfg;
    c->h = h;
    c->plugin = p;
    c->instance = instance;
    pthread_mutex_init(&c->cache_lock, NULL);
    c->config_json = h->config ? json_dumps(h->config, JSON_COMPACT) : strdup("{}");
    n = strlen(h->queue) + 5;
    c->dlq = malloc(n);
    if (!c->config_json || !c->dlq) {
        snprintf(err, errlen, "handler %s: out of memory", h->name);
        goto out_free;
    }
    snprintf(c->dlq, n, "%s.dlq", h->queue);
    if (p->table->init(&host_services, c, c->config_json, &c->state) != 0) {
        snprintf(err, errlen,
                 "plugin %s: init failed for handler %s (instance %d); see the lines above",
                 p->path, h->name, instance);
        goto out_free;
    }
    c->has_state = true;
    return c;

out_free:
    consumer_free(c);
    return NULL;
}

void consumer_free(struct fpesa_ctx *c) {
    if (!c)
        return;
    if (c->has_state && c->plugin->table->fini)
        c->plugin->table->fini(c->state);
    for (size_t i = 0; i < c->n_cache; i++)
        free(c->cache[i]);
    free(c->cache);
    pthread_mutex_destroy(&c->cache_lock);
    free(c->config_json);
    free(c->dlq);
    free(c);
}

/* ---- broker ---------------------------------------------------------------- */

static int declare_exchange_as(struct fpesa_ctx *c, const char *name, const char *type,
                               bool durable) {
    return amqpc_declare_exchange_as(c->conn, CHANNEL, name, type, durable);
}

static int declare_exchange(struct fpesa_ctx *c, const char *name, const char *type) {
    return declare_exchange_as(c, name, type, true);
}

/* Durable queues get bus.queue_type (quorum in a cluster); the mapper
 * declares the endpoint queues the same way, so either may come first. */
static int declare_queue_as(struct fpesa_ctx *c, const char *name, bool durable) {
    return amqpc_declare_queue_typed(c->conn, CHANNEL, name, durable, cfg_queue_type_arg(c->cfg));
}

static int declare_queue(struct fpesa_ctx *c, const char *name) {
    return declare_queue_as(c, name, true);
}

static int bind_queue(struct fpesa_ctx *c, const char *queue, const char *exchange,
                      const char *key) {
    return amqpc_bind(c->conn, CHANNEL, queue, exchange, key);
}

int consumer_declare(struct fpesa_ctx *c, const char *exchange, const char *type,
                     const char *queue) {
    if (!c || !c->conn || (!exchange && !queue))
        return -1;
    if (exchange && declare_exchange(c, exchange, type ? type : "fanout") < 0)
        return -1;
    if (queue && declare_queue(c, queue) < 0)
        return -1;
    if (exchange && queue && bind_queue(c, queue, exchange, queue) < 0)
        return -1;
    return 0;
}

/* The topology of the wire protocol, so the host may start before the
 * mapper: the endpoint's exchange and its queue of the same name, the RPC
 * exchange answers go to, and the dead-letter exchange and queue (ours
 * alone, always durable). Under compat fpesa-python the wire protocol's
 * names get the original's flags (transient exchanges and rpc queues). */
static int declare_all(struct fpesa_ctx *c) {
    const char *q = c->h->queue;
    const struct cfg_endpoint *ep = NULL;
    bool durable = cfg_declare_durable(c->cfg);

    for (size_t i = 0; i < c->cfg->n_endpoints; i++)
        if (strcmp(c->cfg->endpoints[i].exchange, q) == 0)
            ep = &c->cfg->endpoints[i];
    c->is_rpc = ep && ep->mode == CFG_MODE_RPC;
    if (declare_queue_as(c, q, durable || !c->is_rpc) < 0)
        return -1;
    if (ep) {
        const char *type = ep->mode == CFG_MODE_RPC ? "direct" : "fanout";
        if (declare_exchange_as(c, q, type, durable) < 0 || bind_queue(c, q, q, q) < 0)
            return -1;
    }
    if (declare_exchange_as(c, "RPC", "direct", durable) < 0)
        return -1;
    if (declare_exchange(c, c->dlq, "fanout") < 0 || declare_queue(c, c->dlq) < 0 ||
        bind_queue(c, c->dlq, c->dlq, q) < 0)
        return -1;
    return 0;
}

static void disconnect(struct fpesa_ctx *c) {
    if (!c->conn)
        return;
    amqpc_channel_close(c->conn, CHANNEL);
    amqpc_close(c->conn, true);
    c->conn = NULL;
}

static int connect_bus(struct fpesa_ctx *c) {
    int prefetch = c->h->prefetch; /* the loader sets 256 */
    struct amqpc_params p = {
        .urls = c->cfg->bus.url,
        .heartbeat = c->cfg->bus.heartbeat,
        .who = c->h->name,
        .next_index = &c->url_index,
    };

    c->conn = amqpc_connect(&p);
    if (!c->conn)
        return -1;
    if (amqpc_channel_open(c->conn, CHANNEL, c->h->name) < 0 || declare_all(c) < 0 ||
        amqpc_qos(c->conn, CHANNEL, (unsigned)prefetch, c->h->name) < 0 ||
        amqpc_consume(c->conn, CHANNEL, c->h->queue, NULL, false, false) < 0)
        goto out_conn;
    LOG(LOG_INFO, "consuming handler=%s instance=%d queue=%s prefetch=%d batch=%d", c->h->name,
        c->instance, c->h->queue, prefetch, c->h->batch);
    return 0;

out_conn:
    amqpc_close(c->conn, false);
    c->conn = NULL;
    return -1;
}

/* ---- consuming ------------------------------------------------------------- */

enum { GOT = 0, TIMEOUT = 1, BROKEN = -1 };

/* Waits up to ms for one delivery. */
static int consume_one(struct fpesa_ctx *c, struct amqpc_envelope *env, long ms) {
    struct amqpc_event ev;

    switch (amqpc_next_envelope(c->conn, ms, env, &ev)) {
    case AMQPC_EV_ENVELOPE:
        return GOT;
    case AMQPC_EV_CLOSED:
    case AMQPC_EV_CANCEL:
        /* A close or a cancel ends this connection; anything else but an
         * error is ignored. */
        LOG(LOG_WARN, "bus closed the consumer handler=%s reason=\"%s\"", c->h->name,
            ev.kind == AMQPC_EV_CANCEL ? "basic.cancel" : ev.text);
        return BROKEN;
    case AMQPC_EV_ERROR:
        LOG(LOG_WARN, "bus consume failed handler=%s: %s", c->h->name, ev.text);
        return BROKEN;
    default:
        return TIMEOUT;
    }
}

struct batch {
    struct amqpc_envelope *env;
    struct fpesa_message *msg;
    const struct fpesa_message **ptr;
    enum fpesa_result *res;
    enum sup_verdict *verdict; /* what the crash records say of each */
    unsigned *crashes;
    size_t n, cap;
};

static void message_clear(struct fpesa_message *m) {
    free((char *)m->body);
    free((char *)m->message_id);
    free((char *)m->content_type);
    free((char *)m->reply_to);
    free((char *)m->correlation_id);
    free((char *)m->exchange);
    free((char *)m->routing_key);
    headers_free((char **)m->headers, m->n_headers);
    memset(m, 0, sizeof(*m));
}

/* Fills msg from env; -1 when out of memory. */
static int message_fill(struct fpesa_message *m, const struct amqpc_envelope *env) {
    const struct amqpc_props *p = &env->props;
    char **hdrs;

    memset(m, 0, sizeof(*m));
    m->abi_version = FPESA_HANDLER_ABI_VERSION;
    m->struct_size = sizeof(*m);
    m->body = dup_bytes((struct amqpc_str){env->body, env->body_len});
    m->len = env->body_len;
    m->exchange = dup_bytes(env->exchange);
    m->routing_key = dup_bytes(env->routing_key);
    m->redelivered = env->redelivered ? 1 : 0;
    if (p->message_id.p)
        m->message_id = dup_bytes(p->message_id);
    if (p->content_type.p)
        m->content_type = dup_bytes(p->content_type);
    if (p->reply_to.p)
        m->reply_to = dup_bytes(p->reply_to);
    if (p->correlation_id.p)
        m->correlation_id = dup_bytes(p->correlation_id);
    if (p->has_timestamp)
        m->timestamp = (int64_t)p->timestamp;
    if (headers_from_amqp(&p->headers, &hdrs, &m->n_headers) < 0)
        return -1;
    m->headers = (const char *const *)hdrs;
    if (!m->body || !m->exchange || !m->routing_key)
        return -1;
    return 0;
}

static void batch_clear(struct batch *b) {
    for (size_t i = 0; i < b->n; i++) {
        message_clear(&b->msg[i]);
        amqpc_envelope_free(&b->env[i]);
    }
    b->n = 0;
}

/* Moves a message to "<queue>.dlq" with its properties, persistent, and the
 * reason (borrowed) in the header x-fpesa-death-reason (crashes > 0 adds
 * x-fpesa-crashes). */
static int dead_letter(struct fpesa_ctx *c, const struct amqpc_envelope *env, const char *reason,
                       unsigned crashes) {
    static const char *const ours[] = {"x-fpesa-death-reason", "x-fpesa-crashes"};
    struct amqpc_header h[2];
    struct amqpc_out m = {0};

    h[0].name = ours[0];
    h[0].value = amqpc_string(reason);
    if (crashes > 0) {
        h[1].name = ours[1];
        h[1].value = (struct amqpc_value){.kind = AMQPC_V_INT, .v.i = crashes};
    }
    /* Every property of the message, its headers but ours of an earlier
     * death, persistent. */
    m.exchange = c->dlq;
    m.routing_key = c->h->queue;
    m.body = env->body;
    m.body_len = env->body_len;
    m.base = env;
    m.drop = ours;
    m.n_drop = 2;
    m.delivery_mode = 2;
    m.headers = h;
    m.n_headers = crashes > 0 ? 2 : 1;
    return amqpc_publish(c->conn, CHANNEL, &m) == 0 ? 0 : -1;
}

/* Hands msgs[0..n-1] to the plugin, with their ids in the instance's slot
 * while it runs (so that a crash is charged to them), and normalises the
 * outcomes: anything but OK or REJECT, or a failed call, is RETRY. */
static void call_plugin(struct fpesa_ctx *c, const struct fpesa_message **ptr, size_t n,
                        enum fpesa_result *res) {
    const struct fpesa_handler *t = c->plugin->table;
    int rc;

    sup_slot_set(c->slot, ptr, n);
    c->in_batch = true;
    rc = t->handle_batch(c->state, ptr, n, res);
    c->in_batch = false;
    sup_slot_clear(c->slot);
    for (size_t i = 0; i < n; i++)
        if (rc != 0 || (res[i] != FPESA_OK && res[i] != FPESA_REJECT))
            res[i] = FPESA_RETRY;
}

/* Hands the batch to the plugin and settles every delivery. A message with
 * a crash on record is handed over alone, and one that crashed the instance
 * crash_limit times is dead-lettered without calling the plugin. Returns 0,
 * or -1 when the connection broke (the broker then redelivers what is
 * unsettled). */
static int settle_batch(struct fpesa_ctx *c, struct batch *b, long *retry_ms) {
    size_t n_ok = 0, n_rej = 0, n_retry = 0, n_special = 0;
    enum sup_verdict *verdict = b->verdict;
    unsigned *crashes = b->crashes;
    char reason[160];

    for (size_t i = 0; i < b->n; i++) {
        b->res[i] = FPESA_RETRY;
        b->ptr[i] = &b->msg[i];
        crashes[i] = 0;
        verdict[i] = sup_verdict(c->crashes, b->msg[i].message_id, &crashes[i], NULL, 0);
        n_special += verdict[i] != SUP_CLEAN;
    }
    if (n_special == 0) {
        call_plugin(c, b->ptr, b->n, b->res);
    } else {
        for (size_t i = 0; i < b->n; i++)
            if (verdict[i] != SUP_POISON)
                call_plugin(c, &b->ptr[i], 1, &b->res[i]);
    }
    for (size_t i = 0; i < b->n; i++) {
        if (verdict[i] == SUP_POISON)
            b->res[i] = FPESA_REJECT;
        n_ok += b->res[i] == FPESA_OK;
        n_rej += b->res[i] == FPESA_REJECT;
        n_retry += b->res[i] == FPESA_RETRY;
    }
    c->n_ok += n_ok;
    c->n_reject += n_rej;
    c->n_retry += n_retry;

    /* Every earlier delivery is settled already, so one multiple ack of the
     * last tag covers exactly this batch. */
    if (n_ok == b->n) {
        *retry_ms = 0;
        for (size_t i = 0; n_special && i < b->n; i++)
            sup_forget(c->crashes, b->msg[i].message_id);
        if (amqpc_ack(c->conn, CHANNEL, b->env[b->n - 1].delivery_tag, true) != 0)
            return -1;
        hstats_add(c->stats, HSTAT_ACKED, n_ok);
        return 0;
    }
    for (size_t i = 0; i < b->n; i++) {
        uint64_t tag = b->env[i].delivery_tag;
        const char *id = b->msg[i].message_id ? b->msg[i].message_id : "-";
        if (b->res[i] == FPESA_OK) {
            if (amqpc_ack(c->conn, CHANNEL, tag, false) != 0)
                return -1;
            hstats_add(c->stats, HSTAT_ACKED, 1);
        } else if (b->res[i] == FPESA_REJECT) {
            if (verdict[i] == SUP_POISON) {
                sup_verdict(c->crashes, b->msg[i].message_id, &crashes[i], reason, sizeof(reason));
                LOG(LOG_ERROR, "dead-lettered handler=%s id=%s dlq=%s crashes=%u reason=\"%s\"",
                    c->h->name, id, c->dlq, crashes[i], reason);
            } else {
                snprintf(reason, sizeof(reason), "rejected by the plugin");
                LOG(LOG_WARN, "dead-lettered handler=%s id=%s dlq=%s", c->h->name, id, c->dlq);
            }
            if (dead_letter(c, &b->env[i], reason, verdict[i] == SUP_POISON ? crashes[i] : 0) < 0 ||
                amqpc_ack(c->conn, CHANNEL, tag, false) != 0)
                return -1;
            hstats_add(c->stats, HSTAT_DEAD_LETTERED, 1);
        }
        if (verdict[i] != SUP_CLEAN && b->res[i] != FPESA_RETRY)
            sup_forget(c->crashes, b->msg[i].message_id);
    }
    if (n_retry == 0) {
        *retry_ms = 0;
        return 0;
    }
    /* Transient failure: wait, then give them back to the broker. */
    *retry_ms = *retry_ms ? *retry_ms * 2 : BACKOFF_MIN_MS * 2;
    if (*retry_ms > BACKOFF_MAX_MS)
        *retry_ms = BACKOFF_MAX_MS;
    LOG(LOG_WARN, "batch to retry handler=%s retry=%zu ok=%zu rejected=%zu backoff_ms=%ld",
        c->h->name, n_retry, n_ok, n_rej, *retry_ms);
    nap_alive(c, *retry_ms);
    for (size_t i = 0; i < b->n; i++)
        if (b->res[i] == FPESA_RETRY &&
            amqpc_nack(c->conn, CHANNEL, b->env[i].delivery_tag, false, true) != 0)
            return -1;
    hstats_add(c->stats, HSTAT_RETRIED, n_retry);
    return 0;
}

/* settle_batch, counted: the batch's latency runs from the plugin call to
 * the last settlement (a retry's backoff included: it is time the messages
 * spend in this instance). */
static int settle(struct fpesa_ctx *c, struct batch *b, long *retry_ms) {
    struct timespec t0, t1;
    int r;

    hstats_add(c->stats, HSTAT_CONSUMED, b->n);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    r = settle_batch(c, b, retry_ms);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (r == 0)
        hstats_batch(c->stats, (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    return r;
}

static int grow(struct batch *b, size_t cap) {
    b->env = calloc(cap, sizeof(*b->env));
    b->msg = calloc(cap, sizeof(*b->msg));
    b->ptr = calloc(cap, sizeof(*b->ptr));
    b->res = calloc(cap, sizeof(*b->res));
    b->verdict = calloc(cap, sizeof(*b->verdict));
    b->crashes = calloc(cap, sizeof(*b->crashes));
    b->cap = cap;
    return b->env && b->msg && b->ptr && b->res && b->verdict && b->crashes ? 0 : -1;
}

static void batch_free(struct batch *b) {
    batch_clear(b);
    free(b->env);
    free(b->msg);
    free(b->ptr);
    free(b->res);
    free(b->verdict);
    free(b->crashes);
}

/* Consumes until the connection breaks (-1) or the host stops (0). */
static int run(struct fpesa_ctx *c, struct batch *b) {
    long retry_ms = 0;
    /* An rpc caller is waiting for each answer: its batch is what has
     * already arrived, never held back to fill up. */
    long wait = c->h->batch_wait_ms > 0 && !c->is_rpc ? c->h->batch_wait_ms : 0;

    while (!stopping()) {
        int64_t deadline;
        int r = consume_one(c, &b->env[0], POLL_MS);
        if (r == TIMEOUT)
            continue;
        if (r == BROKEN)
            return -1;
        b->n = 1;
        deadline = now_ms() + wait;
        while (b->n < b->cap) {
            int64_t left = deadline - now_ms();
            if (left < 0)
                left = 0;
            /* With nothing left to wait for, still take what is buffered. */
            r = consume_one(c, &b->env[b->n], left);
            if (r == TIMEOUT)
                break;
            if (r == BROKEN) {
                batch_clear(b);
                return -1;
            }
            b->n++;
        }
        for (size_t i = 0; i < b->n; i++) {
            if (message_fill(&b->msg[i], &b->env[i]) < 0) {
                LOG(LOG_ERROR, "out of memory handler=%s", c->h->name);
                batch_clear(b);
                return -1;
            }
        }
        r = settle(c, b, &retry_ms);
        batch_clear(b);
        if (r < 0) {
            LOG(LOG_WARN, "bus settle failed handler=%s; unsettled deliveries come back",
                c->h->name);
            return -1;
        }
    }
    return 0;
}

static void *thread_main(void *arg) {
    struct fpesa_ctx *c = arg;
    struct batch b = {0};
    struct amqpc_backoff backoff;
    int cap = c->h->batch; /* the loader sets 100 */

    if (grow(&b, (size_t)cap) < 0) {
        LOG(LOG_ERROR, "out of memory handler=%s", c->h->name);
        batch_free(&b);
        return NULL;
    }
    amqpc_backoff_init(&backoff, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    while (!stopping()) {
        if (connect_bus(c) < 0) {
            long wait = amqpc_backoff_next(&backoff);
            LOG(LOG_INFO, "bus reconnect in %ldms handler=%s", wait, c->h->name);
            nap(wait);
            continue;
        }
        amqpc_backoff_reset(&backoff);
        if (run(c, &b) == 0) {
            disconnect(c);
            break;
        }
        /* The connection is gone: drop it without the closing handshake. */
        amqpc_close(c->conn, false);
        c->conn = NULL;
        nap(BACKOFF_MIN_MS);
    }
    batch_free(&b);
    LOG(LOG_INFO,
        "stopped handler=%s instance=%d ok=%" PRIu64 " retried=%" PRIu64 " rejected=%" PRIu64,
        c->h->name, c->instance, c->n_ok, c->n_retry, c->n_reject);
    return NULL;
}

/* The run() callback of a plugin that has one (an appended field). */
typedef int (*run_fn)(void *state, int stop_fd);

static run_fn run_callback(const struct fpesa_ctx *c) {
    const struct fpesa_handler *t = c->plugin->table;

    return FPESA_HAS_FIELD(t, struct fpesa_handler, run) ? t->run : NULL;
}

static void *run_main(void *arg) {
    struct fpesa_ctx *c = arg;
    int rc;

    LOG(LOG_INFO, "running handler=%s instance=%d", c->h->name, c->instance);
    rc = run_callback(c)(c->state, stop_pipe[0]);
    if (rc != 0 && !stopping())
        LOG(LOG_ERROR, "run failed handler=%s instance=%d rc=%d; its queue is still served",
            c->h->name, c->instance, rc);
    return NULL;
}

int consumer_start(struct fpesa_ctx *c) {
    int rc;

    pthread_once(&stop_pipe_once, stop_pipe_init);
    rc = pthread_create(&c->thread, NULL, thread_main, c);
    if (rc != 0) {
        LOG(LOG_ERROR, "cannot start a thread handler=%s: %s", c->h->name, strerror(rc));
        return -1;
    }
    c->started = true;
    if (run_callback(c)) {
        if (stop_pipe[0] < 0)
            return -1;
        rc = pthread_create(&c->run_thread, NULL, run_main, c);
        if (rc != 0) {
            LOG(LOG_ERROR, "cannot start a thread handler=%s: %s", c->h->name, strerror(rc));
            return -1;
        }
        c->run_started = true;
    }
    return 0;
}

void consumer_join(struct fpesa_ctx *c) {
    if (c && c->started) {
        pthread_join(c->thread, NULL);
        c->started = false;
    }
    if (c && c->run_started) {
        pthread_join(c->run_thread, NULL);
        c->run_started = false;
    }
}
