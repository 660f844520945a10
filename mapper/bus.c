/* The bus thread: one AMQP connection owned by one thread.
 *
 * rabbitmq-c is not thread-safe, so every library call happens on the bus
 * thread. HTTP threads append jobs to a mutex-protected list and wake the
 * thread through an eventfd; the thread polls that eventfd and the AMQP
 * socket, publishes everything queued, and reads frames without blocking.
 *
 * Channel 1 is in confirm mode and carries the persistent publishes. Its
 * delivery tags count up from 1 after every reconnect, and RabbitMQ confirms
 * them in order (with `multiple` acks), so the in-flight publishes are a FIFO
 * list ordered by tag. Channel 2 declares the topology, sends rpc requests and
 * consumes this instance's exclusive reply queue with no-ack; pending rpc
 * calls are found by correlation id in a hash table and expire from a
 * min-heap of deadlines.
 *
 * This file runs the thread: connecting and declaring, sending, the loop
 * and the public API; bus_rpc.c keeps the pending rpc calls, bus_recv.c
 * handles what the broker sends.
 */
#include "bus_int.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "amqpc.h"
#include "config.h"
#include "jsontext.h"
#include "log.h"

/* A connection attempt blocks the thread (calls queue meanwhile), so each of
 * its steps is bounded (amqpc.h): a frozen broker costs at most a few
 * seconds. */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

/* ---- time and helpers ---------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void list_push(struct mbus_jlist *l, struct mbus_job *j) {
    j->next = NULL;
    j->prev = l->tail;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
    l->n++;
}

void mbus_list_unlink(struct mbus_jlist *l, struct mbus_job *j) {
    if (j->prev)
        j->prev->next = j->next;
    else
        l->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        l->tail = j->prev;
    j->next = j->prev = NULL;
    l->n--;
}

static void job_free(struct mbus_job *j) {
    if (j)
        free(j->headers);
    free(j);
}

/* Calls the job's callback with an answer and its HTTP headers, and frees it. */
void mbus_finish_answer(struct mbus *bus, struct mbus_job *j, int status, const char *body,
                        size_t body_len, const char *content_type, const char *http_headers) {
    struct mbus_result r = {
        .status = status,
        .outcome = status != 503 ? MBUS_ANSWERED
                   : j->sent     ? MBUS_UNKNOWN
                                 : MBUS_NOT_ACCEPTED,
        .blocked = status == 503 && !j->sent && atomic_load(&bus->blocked),
        .body = body,
        .body_len = body_len,
        .content_type = content_type,
        .seconds = now_s() - j->started,
        .http_headers = http_headers,
    };
    if (j->kind == JOB_PUBLISH)
        atomic_fetch_sub_explicit(&bus->st_pub_inflight, 1, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(&bus->st_rpc_inflight, 1, memory_order_relaxed);
    j->done(j->ctx, &r);
    job_free(j);
}

/* Calls the job's callback and frees it. */
void mbus_finish(struct mbus *bus, struct mbus_job *j, int status, const char *body,
                 size_t body_len, const char *content_type) {
    mbus_finish_answer(bus, j, status, body, body_len, content_type, NULL);
}

/* ---- failing what is pending --------------------------------------------- */

void mbus_fail_list(struct mbus *bus, struct mbus_jlist *l, int status) {
    struct mbus_job *j;
    while ((j = l->head) != NULL) {
        mbus_list_unlink(l, j);
        mbus_finish(bus, j, status, NULL, 0, NULL);
    }
}

static void fail_rpcs(struct mbus *bus, int status) {
    while (bus->heap_len > 0) {
        struct mbus_job *j = bus->heap[0];
        mbus_rpc_remove(bus, j);
        mbus_finish(bus, j, status, NULL, 0, NULL);
    }
}

/* Takes everything submitted so far (and clears the eventfd). */
static void take_submitted(struct mbus *bus, struct mbus_jlist *out) {
    uint64_t v;
    ssize_t n = read(bus->efd, &v, sizeof(v));
    (void)n; /* EAGAIN just means nobody woke us */
    pthread_mutex_lock(&bus->lock);
    *out = bus->submitted;
    bus->submitted = (struct mbus_jlist){0};
    pthread_mutex_unlock(&bus->lock);
}

/* ---- connection ---------------------------------------------------------- */

static void disconnect(struct mbus *bus, bool graceful) {
    if (!bus->conn)
        return;
    atomic_store(&bus->connected, false);
    if (graceful) {
        amqpc_channel_close(bus->conn, CH_RPC);
        amqpc_channel_close(bus->conn, CH_PUB);
    }
    amqpc_close(bus->conn, graceful);
    bus->conn = NULL;
    free(bus->dlv.buf);
    bus->dlv = (struct mbus_delivery){0};
}

/* The connection is gone: nothing in flight can be confirmed any more. */
void mbus_lose_connection(struct mbus *bus, const char *why) {
    LOG(LOG_WARN, "bus connection lost reason=\"%s\" publishes_failed=%zu rpcs_failed=%zu", why,
        bus->inflight.n, bus->nrpc);
    disconnect(bus, false);
    mbus_fail_list(bus, &bus->inflight, 503);
    fail_rpcs(bus, 503);
}

/* Declares the exchange and queue of every endpoint of cfg, the claim
 * worker's route and the exchange RPC (all idempotent: a declaration that
 * exists already is a no-op). */
static int declare_endpoints(struct mbus *bus, const struct cfg *cfg) {
    struct amqpc_conn *c = bus->conn;
    /* compat fpesa-python: the original's flags, so that it may declare
     * after us (it refuses to start on a mismatch). */
    bool durable = cfg_declare_durable(cfg);
    /* bus.queue_type: the durable endpoint queues are quorum queues in a
     * cluster, so that they survive the node that leads them. */
    const char *qtype = cfg_queue_type_arg(cfg);

    for (size_t i = 0; i < cfg->n_endpoints; i++) {
        const struct cfg_endpoint *ep = &cfg->endpoints[i];
        bool pub = ep->mode == CFG_MODE_PUBLISH;
        /* A fanout exchange ignores the key; the rpc exchange routes on it.
         * The original binds with the queue's name either way: the same
         * binding, not a second one. */
        if (amqpc_declare_exchange_as(c, CH_RPC, ep->exchange, pub ? "fanout" : "direct", durable) <
                0 ||
            amqpc_declare_queue_typed(c, CH_RPC, ep->exchange, pub || durable, qtype) < 0 ||
            amqpc_bind(c, CH_RPC, ep->exchange, ep->exchange, pub && durable ? "" : ep->exchange) <
                0)
            return -1;
    }

    /* The Idempotency-Key claim worker's rpc route, like an rpc endpoint's. */
    const char *idem = cfg->idempotency.exchange;
    if (idem && (amqpc_declare_exchange(c, CH_RPC, idem, "direct") < 0 ||
                 amqpc_declare_queue_typed(c, CH_RPC, idem, true, qtype) < 0 ||
                 amqpc_bind(c, CH_RPC, idem, idem, idem) < 0))
        return -1;

    if (amqpc_declare_exchange_as(c, CH_RPC, "RPC", "direct", durable) < 0)
        return -1;
    return 0;
}

static int declare_topology(struct mbus *bus) {
    struct amqpc_conn *c = bus->conn;

    if (declare_endpoints(bus, bus->cfg) < 0 ||
        amqpc_declare_private_queue(c, CH_RPC, bus->reply_queue, sizeof(bus->reply_queue)) < 0)
        return -1;
    bus->reply_queue_len = strlen(bus->reply_queue);
    if (amqpc_bind(c, CH_RPC, bus->reply_queue, "RPC", bus->reply_queue) < 0 ||
        amqpc_consume(c, CH_RPC, bus->reply_queue, NULL, true, true) < 0)
        return -1;
    return 0;
}

static int connect_bus(struct mbus *bus) {
    int hb = bus->cfg->bus.heartbeat > 0 ? bus->cfg->bus.heartbeat : 0;
    struct amqpc_params p = {
        .urls = bus->cfg->bus.url,
        .heartbeat = hb,
        .who = "restmapper",
        .next_index = &bus->url_index,
    };

    bus->conn = amqpc_connect(&p);
    if (!bus->conn)
        return -1;
    if (amqpc_channel_open(bus->conn, CH_PUB, "publish") < 0 ||
        amqpc_confirm_select(bus->conn, CH_PUB, "publish") < 0 ||
        amqpc_channel_open(bus->conn, CH_RPC, "rpc") < 0 || declare_topology(bus) < 0)
        goto out_fail;

    bus->next_tag = 1;
    bus->dlv = (struct mbus_delivery){0};
    atomic_store(&bus->blocked, false);
    atomic_store(&bus->connected, true);
    if (bus->ever_connected)
        atomic_fetch_add(&bus->st_reconnects, 1);
    bus->ever_connected = true;
    LOG(LOG_INFO, "bus ready endpoints=%zu reply_queue=%s heartbeat=%d", bus->cfg->n_endpoints,
        bus->reply_queue, hb);
    return 0;

out_fail:
    amqpc_close(bus->conn, false);
    bus->conn = NULL;
    return -1;
}

/* ---- sending ------------------------------------------------------------- */

static int send_job(struct mbus *bus, struct mbus_job *j) {
    struct amqpc_out m = {
        .exchange = j->exchange,
        .body = j->body,
        .body_len = j->body_len,
        .content_type = j->content_type,
        .message_id = j->message_id,
        .has_timestamp = true,
        .timestamp = (uint64_t)j->timestamp,
        .headers = j->headers,
        .n_headers = j->n_headers,
    };

    if (j->kind == JOB_PUBLISH) {
        m.delivery_mode = 2;
        j->sent = true;
        int st = amqpc_publish(bus->conn, CH_PUB, &m);
        if (st != 0)
            return st;
        j->tag = bus->next_tag++;
        list_push(&bus->inflight, j);
        return 0;
    }

    char corr[64];
    j->corr = ++bus->next_corr;
    snprintf(corr, sizeof(corr), "%s-%016" PRIx64, bus->corr_prefix, j->corr);
    m.delivery_mode = 1;
    m.reply_to = bus->reply_queue;
    m.correlation_id = corr;
    m.routing_key = j->exchange;
    /* The request expires with its timeout: a worker that comes back later
     * never runs a request whose client was already answered 504. */
    char ttl[24];
    double left_ms = (j->deadline - now_s()) * 1000.0;
    snprintf(ttl, sizeof(ttl), "%ld", left_ms < 1.0 ? 1L : (long)left_ms);
    m.expiration = ttl;
    if (mbus_rpc_add(bus, j) < 0) {
        mbus_finish(bus, j, 503, NULL, 0, NULL);
        return 0;
    }
    j->sent = true;
    return amqpc_publish(bus->conn, CH_RPC, &m);
}

/* Sends every job in l; on a send error the connection is dropped and the
 * unsent rest answered 503. Returns 0, or -1 when the connection was lost. */
static int send_all(struct mbus *bus, struct mbus_jlist *l) {
    struct mbus_job *j;
    while ((j = l->head) != NULL) {
        mbus_list_unlink(l, j);
        if (!bus->conn) {
            mbus_finish(bus, j, 503, NULL, 0, NULL);
            continue;
        }
        int st = send_job(bus, j);
        if (st != 0) {
            /* The publish itself may or may not have reached the broker;
             * either way it cannot be confirmed now. */
            if (j->kind == JOB_PUBLISH)
                mbus_finish(bus, j, 503, NULL, 0, NULL);
            mbus_lose_connection(bus, amqpc_status_text(st));
        }
    }
    return bus->conn ? 0 : -1;
}

/* ---- the thread ---------------------------------------------------------- */

static long next_backoff(struct mbus *bus) {
    long base = bus->backoff_ms;
    bus->backoff_ms = base * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : base * 2;
    /* Somewhere in [base/2, base] so that instances do not reconnect in step. */
    return base / 2 + (long)(rand_r(&bus->seed) % (unsigned)(base / 2 + 1));
}

static bool is_stopping(struct mbus *bus, long *drain_ms) {
    pthread_mutex_lock(&bus->lock);
    bool s = bus->stopping;
    if (drain_ms)
        *drain_ms = bus->drain_ms;
    pthread_mutex_unlock(&bus->lock);
    return s;
}

static int ms_until(double now, double t) {
    double ms = (t - now) * 1000.0;
    if (ms <= 0)
        return 0;
    if (ms > 60000)
        return 60000;
    return (int)ms + 1;
}

/* A reload asked for by mbus_reload: the new configuration's topology is
 * declared on this connection (while disconnected, the next connection
 * declares it), and only then does the bus use it. */
static void apply_reload(struct mbus *bus) {
    const struct cfg *next;
    int rc = 0;

    pthread_mutex_lock(&bus->lock);
    next = bus->reload_cfg;
    pthread_mutex_unlock(&bus->lock);
    if (!next)
        return;
    if (bus->conn && declare_endpoints(bus, next) < 0) {
        /* A refused declaration closes the channel: start afresh, with the
         * configuration that was declared before. */
        rc = -1;
        mbus_lose_connection(bus, "the new topology could not be declared");
    }
    if (rc == 0) {
        bus->cfg = next;
        LOG(LOG_INFO, "bus topology reloaded endpoints=%zu declared=%s", next->n_endpoints,
            bus->conn ? "yes" : "at the next connection");
    }
    pthread_mutex_lock(&bus->lock);
    bus->reload_cfg = NULL;
    bus->reload_rc = rc;
    bus->reload_done = true;
    pthread_cond_broadcast(&bus->reload_cv);
    pthread_mutex_unlock(&bus->lock);
}

static void *bus_main(void *arg) {
    struct mbus *bus = arg;
    double next_attempt = 0;
    double drain_deadline = 0;
    bool draining = false;

    for (;;) {
        double now = now_s();
        long drain_ms = 0;
        bool stopping = is_stopping(bus, &drain_ms);
        if (stopping && !draining) {
            draining = true;
            drain_deadline = now + (double)drain_ms / 1000.0;
        }
        apply_reload(bus);

        if (!bus->conn) {
            /* Nothing can be confirmed without a connection: answer at once. */
            struct mbus_jlist l;
            take_submitted(bus, &l);
            mbus_fail_list(bus, &l, 503);
            if (stopping)
                break;
            if (now >= next_attempt) {
                if (connect_bus(bus) == 0) {
                    bus->backoff_ms = BACKOFF_MIN_MS;
                    continue;
                }
                next_attempt = now_s() + (double)next_backoff(bus) / 1000.0;
                continue;
            }
            struct pollfd pfd = {bus->efd, POLLIN, 0};
            poll(&pfd, 1, ms_until(now, next_attempt));
            continue;
        }

        struct mbus_jlist l;
        take_submitted(bus, &l);
        if (atomic_load(&bus->blocked))
            mbus_refuse_blocked(bus, &l);
        else if (send_all(bus, &l) < 0)
            continue;
        if (mbus_read_frames(bus) < 0)
            continue;
        now = now_s();
        mbus_expire_rpcs(bus, now);
        mbus_expire_confirms(bus, now);

        if (draining) {
            if ((bus->inflight.n == 0 && bus->nrpc == 0) || now >= drain_deadline) {
                LOG(LOG_INFO, "bus stopping publishes_unconfirmed=%zu rpcs_unanswered=%zu",
                    bus->inflight.n, bus->nrpc);
                mbus_fail_list(bus, &bus->inflight, 503);
                fail_rpcs(bus, 503);
                disconnect(bus, true);
                break;
            }
        }

        /* Sleep until the broker or an HTTP thread has something for us, the
         * next rpc deadline, or the heartbeat needs servicing. */
        int timeout = 1000;
        int hb = bus->cfg->bus.heartbeat;
        if (hb > 0 && hb * 500 < timeout)
            timeout = hb * 500;
        if (bus->heap_len > 0) {
            int t = ms_until(now, bus->heap[0]->deadline);
            if (t < timeout)
                timeout = t;
        }
        if (bus->inflight.head && bus->cfg->bus.confirm_timeout_ms > 0) {
            int t = ms_until(now, bus->inflight.head->started +
                                      (double)bus->cfg->bus.confirm_timeout_ms / 1000.0);
            if (t < timeout)
                timeout = t;
        }
        if (draining) {
            int t = ms_until(now, drain_deadline);
            if (t < timeout)
                timeout = t;
        }
        if (amqpc_buffered(bus->conn))
            timeout = 0;
        pthread_mutex_lock(&bus->lock);
        if (bus->submitted.head)
            timeout = 0;
        pthread_mutex_unlock(&bus->lock);
        if (timeout > 0) {
            struct pollfd pfd[2] = {{bus->efd, POLLIN, 0}, {amqpc_fd(bus->conn), POLLIN, 0}};
            poll(pfd, 2, timeout);
        }
    }

    /* Whatever was submitted while the last answers went out. */
    struct mbus_jlist l;
    take_submitted(bus, &l);
    mbus_fail_list(bus, &l, 503);
    return NULL;
}

/* ---- public API ---------------------------------------------------------- */

int mbus_reload(struct mbus *bus, const struct cfg *cfg) {
    uint64_t one = 1;
    ssize_t n;
    int rc;

    pthread_mutex_lock(&bus->lock);
    if (bus->stopping || !bus->started) {
        pthread_mutex_unlock(&bus->lock);
        return -1;
    }
    bus->reload_cfg = cfg;
    bus->reload_done = false;
    pthread_mutex_unlock(&bus->lock);
    n = write(bus->efd, &one, sizeof(one));
    (void)n;
    /* The thread takes it at its next turn: at once when idle, after a
     * connection attempt (bounded, amqpc.h) when disconnected. */
    pthread_mutex_lock(&bus->lock);
    while (!bus->reload_done)
        pthread_cond_wait(&bus->reload_cv, &bus->lock);
    rc = bus->reload_rc;
    pthread_mutex_unlock(&bus->lock);
    return rc;
}

struct mbus *mbus_new(const struct cfg *cfg) {
    struct mbus *bus = calloc(1, sizeof(*bus));
    if (!bus)
        return NULL;
    bus->cfg = cfg;
    bus->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (bus->efd < 0)
        goto out_free;
    pthread_cond_init(&bus->reload_cv, NULL);
    if (pthread_mutex_init(&bus->lock, NULL) != 0)
        goto out_close;
    atomic_init(&bus->connected, false);
    bus->backoff_ms = BACKOFF_MIN_MS;

    uint64_t rnd = 0;
    if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        rnd = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40);
    }
    snprintf(bus->corr_prefix, sizeof(bus->corr_prefix), "%016" PRIx64, rnd);
    bus->seed = (unsigned int)(rnd ^ (rnd >> 32));
    return bus;

out_close:
    close(bus->efd);
out_free:
    free(bus);
    return NULL;
}

int mbus_start(struct mbus *bus) {
    if (pthread_create(&bus->thread, NULL, bus_main, bus) != 0)
        return -1;
    bus->started = true;
    return 0;
}

/* Copies msg's headers into one allocation: the headers, then their
 * NUL-terminated strings. */
static int copy_headers(struct mbus_job *j, const struct mbus_msg *msg) {
    size_t size = msg->n_headers * sizeof(struct amqpc_header);
    char *p;

    if (msg->n_headers > 64)
        return -1;
    for (size_t i = 0; i < msg->n_headers; i++)
        size += strlen(msg->headers[i].name) + strlen(msg->headers[i].value) + 2;
    j->headers = malloc(size ? size : 1);
    if (!j->headers)
        return -1;
    p = (char *)(j->headers + msg->n_headers);
    for (size_t i = 0; i < msg->n_headers; i++) {
        struct amqpc_header *e = &j->headers[i];
        size_t nl = strlen(msg->headers[i].name) + 1, vl = strlen(msg->headers[i].value);

        e->name = memcpy(p, msg->headers[i].name, nl);
        p += nl;
        memcpy(p, msg->headers[i].value, vl + 1);
        e->value.kind = AMQPC_V_STRING;
        e->value.v.s = (struct amqpc_str){p, vl};
        p += vl + 1;
    }
    j->n_headers = msg->n_headers;
    return 0;
}

static struct mbus_job *job_new(const struct mbus_msg *msg, enum mbus_job_kind kind,
                                mbus_done_fn done, void *ctx) {
    const char *ct = msg->content_type ? msg->content_type : "application/json";
    const char *mid = msg->message_id ? msg->message_id : "";
    size_t le = strlen(msg->exchange) + 1, lm = strlen(mid) + 1, lc = strlen(ct) + 1;
    struct mbus_job *j = malloc(sizeof(*j) + le + lm + lc + msg->body_len + 1);
    if (!j)
        return NULL;
    memset(j, 0, sizeof(*j));
    j->kind = kind;
    j->done = done;
    j->ctx = ctx;
    j->started = now_s();
    j->timestamp = msg->timestamp;
    char *p = j->data;
    j->exchange = memcpy(p, msg->exchange, le);
    p += le;
    j->message_id = memcpy(p, mid, lm);
    p += lm;
    j->content_type = memcpy(p, ct, lc);
    p += lc;
    j->body = p;
    if (msg->body_len)
        memcpy(p, msg->body, msg->body_len);
    p[msg->body_len] = '\0';
    j->body_len = msg->body_len;
    if (msg->n_headers && copy_headers(j, msg) < 0) {
        free(j);
        return NULL;
    }
    return j;
}

static int submit(struct mbus *bus, struct mbus_job *j) {
    pthread_mutex_lock(&bus->lock);
    if (bus->stopping) {
        pthread_mutex_unlock(&bus->lock);
        job_free(j);
        return -1;
    }
    bool was_empty = bus->submitted.head == NULL;
    list_push(&bus->submitted, j);
    if (j->kind == JOB_PUBLISH)
        atomic_fetch_add_explicit(&bus->st_pub_inflight, 1, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&bus->st_rpc_inflight, 1, memory_order_relaxed);
    pthread_mutex_unlock(&bus->lock);
    /* Only the first job of a batch needs to wake the thread: it takes the
     * whole list at once. */
    if (was_empty) {
        uint64_t one = 1;
        ssize_t n = write(bus->efd, &one, sizeof(one));
        (void)n; /* a full counter still wakes the thread */
    }
    return 0;
}

int mbus_publish(struct mbus *bus, const struct mbus_msg *msg, mbus_done_fn done, void *ctx) {
    struct mbus_job *j = job_new(msg, JOB_PUBLISH, done, ctx);
    if (!j)
        return -1;
    return submit(bus, j);
}

int mbus_rpc(struct mbus *bus, const struct mbus_msg *msg, long timeout_ms, mbus_done_fn done,
             void *ctx) {
    struct mbus_job *j = job_new(msg, JOB_RPC, done, ctx);
    if (!j)
        return -1;
    j->deadline = j->started + (double)timeout_ms / 1000.0;
    return submit(bus, j);
}

bool mbus_is_connected(const struct mbus *bus) {
    return atomic_load(&((struct mbus *)bus)->connected);
}

bool mbus_is_blocked(const struct mbus *bus) {
    struct mbus *b = (struct mbus *)bus;
    return atomic_load(&b->connected) && atomic_load(&b->blocked);
}

void mbus_stats(const struct mbus *bus, struct mbus_stats *out) {
    struct mbus *b = (struct mbus *)bus;
    out->publishes_in_flight = atomic_load_explicit(&b->st_pub_inflight, memory_order_relaxed);
    out->rpcs_in_flight = atomic_load_explicit(&b->st_rpc_inflight, memory_order_relaxed);
    out->reconnects = atomic_load_explicit(&b->st_reconnects, memory_order_relaxed);
    out->confirms = atomic_load_explicit(&b->st_confirms, memory_order_relaxed);
    out->nacks = atomic_load_explicit(&b->st_nacks, memory_order_relaxed);
    out->rpc_timeouts = atomic_load_explicit(&b->st_rpc_timeouts, memory_order_relaxed);
    out->late_replies = atomic_load_explicit(&b->st_late, memory_order_relaxed);
    out->confirm_timeouts = atomic_load_explicit(&b->st_confirm_timeouts, memory_order_relaxed);
    out->blocked_refusals = atomic_load_explicit(&b->st_blocked, memory_order_relaxed);
}

void mbus_stop(struct mbus *bus, long drain_ms) {
    if (!bus)
        return;
    pthread_mutex_lock(&bus->lock);
    bus->stopping = true;
    bus->drain_ms = drain_ms < 0 ? 0 : drain_ms;
    pthread_mutex_unlock(&bus->lock);
    uint64_t one = 1;
    ssize_t n = write(bus->efd, &one, sizeof(one));
    (void)n;
    if (bus->started) {
        pthread_join(bus->thread, NULL);
        bus->started = false;
    }
}

void mbus_free(struct mbus *bus) {
    if (!bus)
        return;
    if (bus->started)
        mbus_stop(bus, 0);
    amqpc_close(bus->conn, false);
    free(bus->dlv.buf);
    free(bus->buckets);
    free(bus->heap);
    close(bus->efd);
    pthread_mutex_destroy(&bus->lock);
    free(bus);
}
