#include "bus.h"

#include "jsontext.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amqpc.h"
#include "log.h"

/* A resume request waiting for the bus thread to publish it. */
struct rpc_req {
    struct rpc_req *next;
    uint64_t client;
    int page;
    int channel;
    long limit;
    char *exchange;
    char *after;
};

/* An exchange added by a reload, waiting for the bus thread. */
struct live_add {
    struct live_add *next;
    char *exchange;
    int channel;
    char *rpc_exchange; /* or NULL */
};

struct live_bus {
    struct live_bus_params p; /* its arrays are not used after the start: see ex below */
    struct live_bus_stats stats;
    pthread_t thread;
    atomic_int stop;

    pthread_mutex_t lock; /* guards reqs and adds */
    struct rpc_req *reqs, *reqs_tail;
    struct live_add *adds;

    /* The live exchanges, the channel each feeds, and the rpc exchanges:
     * copies of the start's, grown by reloads (live_bus_add). Bus thread
     * only, once started. */
    char **ex;
    int *ex_channel;
    size_t n_ex;
    char **rpc;
    size_t n_rpc;

    /* Owned by the bus thread. */
    struct amqpc_conn *conn;
    unsigned url_index; /* which URL of the list to try first */
    char live_queue[256];
    char reply_queue[256];
};

static void rpc_req_free(struct rpc_req *r) {
    if (!r)
        return;
    free(r->exchange);
    free(r->after);
    free(r);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void emit(struct live_bus *bus, struct live_event *ev) {
    live_inbox_push(bus->p.inbox, ev);
    bus->p.wake(bus->p.wake_arg);
}

static void emit_kind(struct live_bus *bus, enum live_event_kind kind) {
    struct live_event *ev = calloc(1, sizeof(*ev));

    if (!ev)
        return;
    ev->kind = kind;
    emit(bus, ev);
}

/* Declares an exchange; one of that name that already exists with other
 * flags is used as it is, since its name is what the wire protocol fixes. */
static int declare_exchange(struct live_bus *bus, const char *name, const char *type) {
    return amqpc_declare_exchange_as(bus->conn, 1, name, type, !bus->p.transient);
}

static int declare_queue(struct live_bus *bus, char *out, size_t len) {
    return amqpc_declare_private_queue(bus->conn, 1, out, len);
}

static int push_str(char ***v, size_t *n, const char *s);

#define STREAM_PREFETCH 1000

static void stream_name(const char *exchange, char *out, size_t len) {
    snprintf(out, len, "%s:live", exchange);
}

/* Source stream: declares exchange i's stream, binds it and consumes it
 * from now on. After a lost connection too: the stream may lack what was
 * published while its node was away, so a reconnect is a hole in the live
 * stream as with a private queue (clients resume from the store). */
static int consume_stream(struct live_bus *bus, size_t i) {
    char name[300], tag[32], age[32];

    stream_name(bus->ex[i], name, sizeof(name));
    snprintf(tag, sizeof(tag), "s%zu", i);
    snprintf(age, sizeof(age), "%ds", bus->p.stream_max_age_s);
    /* The prefetch again: a declaration the broker refused (a stream that
     * exists with other retention) reopened the channel without it. */
    if (amqpc_declare_stream(bus->conn, 2, name, bus->p.stream_max_bytes,
                             bus->p.stream_max_age_s > 0 ? age : NULL) < 0 ||
        amqpc_qos(bus->conn, 2, STREAM_PREFETCH, "streams") < 0 ||
        amqpc_bind(bus->conn, 2, name, bus->ex[i], "") < 0 ||
        amqpc_consume_stream(bus->conn, 2, name, tag) < 0)
        return -1;
    LOG(LOG_INFO, "bus reading stream=%s", name);
    return 0;
}

/* Binds exchange i to what this instance reads. */
static int bind_live(struct live_bus *bus, size_t i) {
    if (bus->p.stream)
        return consume_stream(bus, i);
    return amqpc_bind(bus->conn, 1, bus->live_queue, bus->ex[i], "");
}

/* Appends an exchange and the channel it feeds. */
static int push_exchange(struct live_bus *bus, const char *exchange, int channel) {
    int *nc = realloc(bus->ex_channel, (bus->n_ex + 1) * sizeof(*nc));

    if (!nc)
        return -1;
    bus->ex_channel = nc;
    nc[bus->n_ex] = channel;
    return push_str(&bus->ex, &bus->n_ex, exchange);
}

static int push_str(char ***v, size_t *n, const char *s) {
    char **nv = realloc(*v, (*n + 1) * sizeof(**v));
    char *d = strdup(s);

    if (nv)
        *v = nv;
    if (!nv || !d) {
        free(d);
        return -1;
    }
    nv[(*n)++] = d;
    return 0;
}

/* Takes the exchanges reloads added: from now on they are declared at each
 * connection; when connected, they are declared and bound now. Returns -1
 * when a declaration failed (the connection is then unusable). */
static int take_adds(struct live_bus *bus, bool connected) {
    struct live_add *a;
    int rc = 0;

    pthread_mutex_lock(&bus->lock);
    a = bus->adds;
    bus->adds = NULL;
    pthread_mutex_unlock(&bus->lock);
    while (a) {
        struct live_add *next = a->next;
        bool added = push_exchange(bus, a->exchange, a->channel) == 0;
        if (!added)
            LOG(LOG_ERROR, "out of memory adding exchange=%s", a->exchange);
        if (a->rpc_exchange)
            push_str(&bus->rpc, &bus->n_rpc, a->rpc_exchange);
        if (connected && rc == 0 && added) {
            if (declare_exchange(bus, a->exchange, "fanout") < 0 ||
                (a->rpc_exchange && declare_exchange(bus, a->rpc_exchange, "direct") < 0)) {
                rc = -1;
            } else {
                rc = bind_live(bus, bus->n_ex - 1);
            }
            if (rc == 0)
                LOG(LOG_INFO, "bus bound exchange=%s channel=%d", a->exchange, a->channel);
        }
        free(a->exchange);
        free(a->rpc_exchange);
        free(a);
        a = next;
    }
    return rc;
}

static void disconnect(struct live_bus *bus) {
    amqpc_close(bus->conn, true);
    bus->conn = NULL;
}

static int connect_bus(struct live_bus *bus) {
    struct amqpc_params cp = {
        .urls = bus->p.url,
        .heartbeat = bus->p.heartbeat,
        .who = "liveupdate",
        .next_index = &bus->url_index,
    };

    bus->conn = amqpc_connect(&cp);
    if (!bus->conn)
        return -1;
    if (amqpc_channel_open(bus->conn, 1, "live") < 0)
        goto out_conn;
    /* Streams are read on a channel of their own, with a prefetch (a stream
     * consumer acknowledges what it got, to be sent more; consume_stream). */
    if (bus->p.stream && amqpc_channel_open(bus->conn, 2, "streams") < 0)
        goto out_conn;
    take_adds(bus, false);
    for (size_t i = 0; i < bus->n_ex; i++)
        if (declare_exchange(bus, bus->ex[i], "fanout") < 0)
            goto out_conn;
    if (declare_exchange(bus, "RPC", "direct") < 0)
        goto out_conn;
    for (size_t i = 0; i < bus->n_rpc; i++)
        if (declare_exchange(bus, bus->rpc[i], "direct") < 0)
            goto out_conn;
    if ((!bus->p.stream && declare_queue(bus, bus->live_queue, sizeof(bus->live_queue)) < 0) ||
        declare_queue(bus, bus->reply_queue, sizeof(bus->reply_queue)) < 0)
        goto out_conn;
    for (size_t i = 0; i < bus->n_ex; i++)
        if (bind_live(bus, i) < 0)
            goto out_conn;
    if (amqpc_bind(bus->conn, 1, bus->reply_queue, "RPC", bus->reply_queue) < 0 ||
        (!bus->p.stream && amqpc_consume(bus->conn, 1, bus->live_queue, "live", true, true) < 0) ||
        amqpc_consume(bus->conn, 1, bus->reply_queue, "reply", true, true) < 0)
        goto out_conn;
    LOG(LOG_INFO, "bus ready %s=%s exchanges=%zu", bus->p.stream ? "source" : "queue",
        bus->p.stream ? "streams" : bus->live_queue, bus->n_ex);
    return 0;

out_conn:
    amqpc_close(bus->conn, false);
    bus->conn = NULL;
    return -1;
}

static int channel_of_exchange(struct live_bus *bus, struct amqpc_str ex) {
    for (size_t i = 0; i < bus->n_ex; i++) {
        const char *name = bus->ex[i];
        if (strlen(name) == ex.len && memcmp(name, ex.p, ex.len) == 0)
            return bus->ex_channel[i];
    }
    return -1;
}

static void on_live(struct live_bus *bus, const struct amqpc_envelope *env, int ch) {
    const struct amqpc_props *pr = &env->props;
    char id[LIVE_ID_MAX + 1] = "";
    char when[48];
    const char *text = env->body, *data = NULL, *pv;
    size_t len = env->body_len, dlen = 0, pvlen;
    json_t *params = NULL;
    struct live_event *ev;

    atomic_fetch_add(&bus->stats.messages_in, 1);
    if (ch < 0)
        return;
    if (pr->message_id.p)
        snprintf(id, sizeof(id), "%.*s", (int)pr->message_id.len, pr->message_id.p);
    {
        int64_t ms = live_uuid7_ms(id);
        if (ms == 0 && pr->has_timestamp)
            ms = (int64_t)pr->timestamp * 1000;
        live_time_iso(ms, when, sizeof(when));
    }
    /* The data's text goes into the frame as the publisher sent it: never
     * parsed into doubles, so the frame and the store agree. The params
     * (strings from the path) are read with jansson. */
    if (jtext_member(text, len, "data", &data, &dlen) < 0) {
        atomic_fetch_add(&bus->stats.bad_messages, 1);
        LOG(LOG_WARN, "bus message is not a JSON envelope; dropped id=%s", id);
        return;
    }
    if (jtext_member(text, len, "params", &pv, &pvlen) == 1)
        params = json_loadb(pv, pvlen, 0, NULL);
    ev = calloc(1, sizeof(*ev));
    if (ev) {
        ev->kind = LIVE_EV_MESSAGE;
        ev->msg = live_msg_new_text(ch, bus->p.channel_paths[ch], id, when, params, data, dlen,
                                    bus->p.pre);
        if (ev->msg)
            emit(bus, ev);
        else
            free(ev);
    }
    if (bus->p.original_channel >= 0 && (ev = calloc(1, sizeof(*ev)))) {
        ev->kind = LIVE_EV_MESSAGE;
        ev->msg = live_msg_new_data(bus->p.original_channel, id, data, dlen, bus->p.pre);
        if (ev->msg)
            emit(bus, ev);
        else
            free(ev);
    }
    json_decref(params);
}

/* One stored message of a resume page: {"id", "received_at", "data"}. */
struct replay_ctx {
    struct live_bus *bus;
    struct live_event *ev;
    int ch;
};

static int on_replay_message(void *ctx, const char *text, size_t len) {
    struct replay_ctx *rc = ctx;
    const char *v, *data = NULL;
    size_t vlen, dlen = 0, n;
    char *mid = NULL, *at = NULL;
    struct live_msg *lm;

    if (jtext_member(text, len, "id", &v, &vlen) == 1)
        mid = jtext_string(v, vlen, &n);
    if (!mid)
        return 0; /* not a message: skipped */
    if (jtext_member(text, len, "received_at", &v, &vlen) == 1)
        at = jtext_string(v, vlen, &n);
    if (jtext_member(text, len, "data", &data, &dlen) != 1)
        data = NULL;
    lm = live_msg_new_text(rc->ch, rc->bus->p.channel_paths[rc->ch], mid, at ? at : "", NULL, data,
                           dlen, rc->bus->p.pre);
    free(mid);
    free(at);
    if (!lm)
        return 1;
    rc->ev->msgs[rc->ev->n_msgs++] = lm;
    return 0;
}

/* Turns an answer of the stored-messages rpc into a LIVE_EV_REPLAY event. */
static void on_reply(struct live_bus *bus, const struct amqpc_envelope *env) {
    const struct amqpc_props *pr = &env->props;
    char corr[128];
    uint64_t client;
    int page, ch;
    const char *body = env->body, *msgs = NULL;
    size_t len = env->body_len, mlen = 0, n = 0;
    struct replay_ctx rctx;
    struct live_event *ev;
    int code = 0, has_error;

    atomic_fetch_add(&bus->stats.rpc_answers, 1);
    if (!pr->correlation_id.p)
        return;
    snprintf(corr, sizeof(corr), "%.*s", (int)pr->correlation_id.len, pr->correlation_id.p);
    if (sscanf(corr, "live.%" SCNu64 ".%d.%d", &client, &page, &ch) != 3 || ch < 0)
        return;
    ev = calloc(1, sizeof(*ev));
    if (!ev)
        return;
    ev->kind = LIVE_EV_REPLAY;
    ev->client = client;
    ev->page = page;
    has_error = jtext_error_code(body, len, &code, NULL);
    if (has_error != 0 || jtext_member(body, len, "messages", &msgs, &mlen) != 1 ||
        msgs[0] != '[') {
        ev->error = has_error == 1 ? code : 502;
        LOG(LOG_WARN, "bus resume answer is an error client=%" PRIu64 " code=%d", client,
            ev->error);
        goto out_emit;
    }
    /* An upper bound of the elements: the commas plus one. */
    for (size_t i = 0; i < mlen; i++)
        n += msgs[i] == ',';
    ev->msgs = calloc(n + 2, sizeof(*ev->msgs));
    if (!ev->msgs) {
        ev->error = 500;
        goto out_emit;
    }
    rctx = (struct replay_ctx){bus, ev, ch};
    if (jtext_elements(msgs, mlen, on_replay_message, &rctx) != 0)
        ev->error = 500;
out_emit:
    emit(bus, ev);
}

static int publish_req(struct live_bus *bus, struct rpc_req *r) {
    struct amqpc_out m = {0};
    char corr[128], lim[32];
    json_t *body;
    char *text;
    int rc;

    snprintf(corr, sizeof(corr), "live.%" PRIu64 ".%d.%d", r->client, r->page, r->channel);
    snprintf(lim, sizeof(lim), "%ld", r->limit);
    body = json_pack("{s:n,s:{s:s,s:s}}", "data", "args", "after", r->after, "limit", lim);
    text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return -1;
    m.exchange = r->exchange;
    m.routing_key = r->exchange;
    m.body = text;
    m.body_len = strlen(text);
    m.content_type = "application/json";
    m.reply_to = bus->reply_queue;
    m.correlation_id = corr;
    m.has_timestamp = true;
    m.timestamp = (uint64_t)time(NULL);
    m.delivery_mode = 1;
    rc = amqpc_publish(bus->conn, 1, &m);
    free(text);
    if (rc != 0) {
        LOG(LOG_WARN, "bus resume request publish failed: %s", amqpc_status_text(rc));
        return -1;
    }
    atomic_fetch_add(&bus->stats.rpc_sent, 1);
    return 0;
}

/* Publishes every queued resume request; a failure leaves the rest queued. */
static int flush_reqs(struct live_bus *bus) {
    for (;;) {
        struct rpc_req *r;
        pthread_mutex_lock(&bus->lock);
        r = bus->reqs;
        if (r) {
            bus->reqs = r->next;
            if (!bus->reqs)
                bus->reqs_tail = NULL;
        }
        pthread_mutex_unlock(&bus->lock);
        if (!r)
            return 0;
        if (publish_req(bus, r) < 0) {
            rpc_req_free(r);
            return -1;
        }
        rpc_req_free(r);
    }
}

static void drop_reqs(struct live_bus *bus) {
    struct rpc_req *r;

    pthread_mutex_lock(&bus->lock);
    r = bus->reqs;
    bus->reqs = bus->reqs_tail = NULL;
    pthread_mutex_unlock(&bus->lock);
    while (r) {
        struct rpc_req *next = r->next;
        rpc_req_free(r);
        r = next;
    }
}

/* A delivery from exchange i's stream (consumer tag "s<i>"): passed on,
 * and acknowledged (which lets the broker send more). */
static void on_stream(struct live_bus *bus, const struct amqpc_envelope *env) {
    char tag[32];
    unsigned long i;

    snprintf(tag, sizeof(tag), "%.*s", (int)env->consumer_tag.len, env->consumer_tag.p);
    if (sscanf(tag, "s%lu", &i) == 1 && i < bus->n_ex)
        on_live(bus, env, bus->ex_channel[i]);
    amqpc_ack(bus->conn, 2, env->delivery_tag, false);
}

/* Consumes until the connection fails or stop is asked. */
static void consume_loop(struct live_bus *bus) {
    while (!atomic_load(&bus->stop)) {
        struct amqpc_envelope env;
        struct amqpc_event ev;

        if (flush_reqs(bus) < 0 || take_adds(bus, true) < 0)
            return;
        switch (amqpc_next_envelope(bus->conn, 20, &env, &ev)) {
        case AMQPC_EV_ENVELOPE:
            if (env.consumer_tag.len == 5 && memcmp(env.consumer_tag.p, "reply", 5) == 0)
                on_reply(bus, &env);
            else if (env.channel == 2)
                on_stream(bus, &env);
            else
                on_live(bus, &env, channel_of_exchange(bus, env.exchange));
            amqpc_envelope_free(&env);
            continue;
        case AMQPC_EV_CANCEL:
            /* e.g. the node of a stream's member went away: read again
             * from a fresh connection (from the offset reached). */
            LOG(LOG_WARN, "bus consumer cancelled by the broker; reconnecting");
            return;
        case AMQPC_EV_CLOSED:
            LOG(LOG_WARN, "bus closed by the broker: %s", ev.text);
            return;
        case AMQPC_EV_ERROR:
            LOG(LOG_WARN, "bus connection lost: %s", ev.text);
            return;
        default:
            continue; /* a timeout, or e.g. a basic.ack we did not ask for: ignore */
        }
    }
}

static void *bus_main(void *arg) {
    struct live_bus *bus = arg;
    struct amqpc_backoff backoff;
    int ever = 0;

    amqpc_backoff_init(&backoff, 100, 5000);
    while (!atomic_load(&bus->stop)) {
        if (connect_bus(bus) < 0) {
            long wait = amqpc_backoff_next(&backoff);
            LOG(LOG_INFO, "bus retry in_ms=%ld", wait);
            for (long waited = 0; waited < wait && !atomic_load(&bus->stop); waited += 50)
                sleep_ms(50);
            continue;
        }
        if (ever)
            atomic_fetch_add(&bus->stats.reconnects, 1);
        ever = 1;
        amqpc_backoff_reset(&backoff);
        atomic_store(&bus->stats.connected, 1);
        emit_kind(bus, LIVE_EV_BUS_UP);
        consume_loop(bus);
        atomic_store(&bus->stats.connected, 0);
        disconnect(bus);
        drop_reqs(bus);
        if (!atomic_load(&bus->stop)) {
            LOG(LOG_WARN, "bus down; reconnecting");
            emit_kind(bus, LIVE_EV_BUS_DOWN);
        }
    }
    return NULL;
}

static void free_arrays(struct live_bus *bus) {
    struct live_add *a = bus->adds;

    for (size_t i = 0; i < bus->n_ex; i++)
        free(bus->ex[i]);
    for (size_t i = 0; i < bus->n_rpc; i++)
        free(bus->rpc[i]);
    free(bus->ex);
    free(bus->ex_channel);
    free(bus->rpc);
    while (a) {
        struct live_add *next = a->next;
        free(a->exchange);
        free(a->rpc_exchange);
        free(a);
        a = next;
    }
}

struct live_bus *live_bus_start(const struct live_bus_params *params) {
    struct live_bus *bus = calloc(1, sizeof(*bus));

    if (!bus)
        return NULL;
    bus->p = *params;
    for (size_t i = 0; i < params->n_exchanges; i++)
        if (push_exchange(bus, params->exchanges[i], params->exchange_channel[i]) < 0)
            goto out_free;
    for (size_t i = 0; i < params->n_rpc_exchanges; i++)
        if (push_str(&bus->rpc, &bus->n_rpc, params->rpc_exchanges[i]) < 0)
            goto out_free;
    pthread_mutex_init(&bus->lock, NULL);
    if (pthread_create(&bus->thread, NULL, bus_main, bus) != 0) {
        pthread_mutex_destroy(&bus->lock);
        goto out_free;
    }
    return bus;

out_free:
    free_arrays(bus);
    free(bus);
    return NULL;
}

int live_bus_add(struct live_bus *bus, const char *exchange, int channel,
                 const char *rpc_exchange) {
    struct live_add *a = calloc(1, sizeof(*a));

    if (!a)
        return -1;
    a->exchange = strdup(exchange);
    a->channel = channel;
    a->rpc_exchange = rpc_exchange ? strdup(rpc_exchange) : NULL;
    if (!a->exchange || (rpc_exchange && !a->rpc_exchange)) {
        free(a->exchange);
        free(a->rpc_exchange);
        free(a);
        return -1;
    }
    pthread_mutex_lock(&bus->lock);
    a->next = bus->adds;
    bus->adds = a;
    pthread_mutex_unlock(&bus->lock);
    return 0;
}

void live_bus_stop(struct live_bus *bus) {
    if (!bus)
        return;
    atomic_store(&bus->stop, 1);
    pthread_join(bus->thread, NULL);
    drop_reqs(bus);
    pthread_mutex_destroy(&bus->lock);
    free_arrays(bus);
    free(bus);
}

struct live_bus_stats *live_bus_stats(struct live_bus *bus) {
    return &bus->stats;
}

int live_bus_request_replay(struct live_bus *bus, uint64_t client, int page, int channel,
                            const char *exchange, const char *after, long limit) {
    struct rpc_req *r;

    if (!atomic_load(&bus->stats.connected))
        return -1;
    r = calloc(1, sizeof(*r));
    if (!r)
        return -1;
    r->client = client;
    r->page = page;
    r->channel = channel;
    r->limit = limit;
    r->exchange = strdup(exchange);
    r->after = strdup(after);
    if (!r->exchange || !r->after) {
        rpc_req_free(r);
        return -1;
    }
    pthread_mutex_lock(&bus->lock);
    if (bus->reqs_tail)
        bus->reqs_tail->next = r;
    else
        bus->reqs = r;
    bus->reqs_tail = r;
    pthread_mutex_unlock(&bus->lock);
    return 0;
}
