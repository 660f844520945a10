/* The shared bus client (see amqpc.h). */
#include "amqpc_int.h"

#include <amqp_tcp_socket.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "log.h"

#define URL_MAX 1024

const char *amqpc_reply_text(amqp_rpc_reply_t r, char *buf, size_t len) {
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        snprintf(buf, len, "ok");
        break;
    case AMQP_RESPONSE_NONE:
        snprintf(buf, len, "missing reply");
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(buf, len, "%s", amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *c = r.reply.decoded;
            snprintf(buf, len, "connection closed by broker: %u %.*s", c->reply_code,
                     (int)c->reply_text.len, (const char *)c->reply_text.bytes);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *c = r.reply.decoded;
            snprintf(buf, len, "channel closed by broker: %u %.*s", c->reply_code,
                     (int)c->reply_text.len, (const char *)c->reply_text.bytes);
        } else {
            snprintf(buf, len, "unexpected method 0x%08x", r.reply.id);
        }
        break;
    }
    return buf;
}

int amqpc_check(struct amqpc_conn *conn, const char *what, const char *name) {
    char buf[256];
    amqp_rpc_reply_t r = amqp_get_rpc_reply(conn->st);

    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    LOG(LOG_WARN, "bus %s failed name=\"%s\": %s", what, name ? name : "",
        amqpc_reply_text(r, buf, sizeof(buf)));
    return -1;
}

/* Logs in announcing the capabilities we rely on; rabbitmq-c merges them
 * with its own defaults. */
static amqp_rpc_reply_t login(amqp_connection_state_t conn, const struct amqp_connection_info *ci,
                              int heartbeat, const char *who) {
    amqp_table_entry_t caps[3], props[2];
    amqp_table_t caps_t = {3, caps}, props_t = {2, props};

    caps[0].key = amqp_cstring_bytes("connection.blocked");
    caps[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[0].value.value.boolean = 1;
    caps[1].key = amqp_cstring_bytes("publisher_confirms");
    caps[1].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[1].value.value.boolean = 1;
    caps[2].key = amqp_cstring_bytes("consumer_cancel_notify");
    caps[2].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[2].value.value.boolean = 1;
    props[0].key = amqp_cstring_bytes("capabilities");
    props[0].value.kind = AMQP_FIELD_KIND_TABLE;
    props[0].value.value.table = caps_t;
    props[1].key = amqp_cstring_bytes("connection_name");
    props[1].value.kind = AMQP_FIELD_KIND_UTF8;
    props[1].value.value.bytes = amqp_cstring_bytes(who ? who : "fpesa");
    return amqp_login_with_properties(conn, ci->vhost, 0, AMQPC_FRAME_MAX, heartbeat, &props_t,
                                      AMQP_SASL_METHOD_PLAIN, ci->user, ci->password);
}

/* Tries one URL (url is a writable copy amqp_parse_url may cut up). */
static struct amqpc_conn *try_one(char *url, const struct amqpc_params *p) {
    struct timeval tv = {AMQPC_CONNECT_TIMEOUT_MS / 1000, (AMQPC_CONNECT_TIMEOUT_MS % 1000) * 1000};
    struct timeval rtv = {AMQPC_RPC_TIMEOUT_MS / 1000, (AMQPC_RPC_TIMEOUT_MS % 1000) * 1000};
    struct amqp_connection_info ci;
    amqp_connection_state_t conn;
    struct amqpc_conn *c;
    amqp_socket_t *sock;
    amqp_rpc_reply_t r;
    char red[URL_MAX], buf[256];
    int st;

    log_redact_url(url, red, sizeof(red));
    amqp_default_connection_info(&ci);
    if (amqp_parse_url(url, &ci) != AMQP_STATUS_OK) {
        LOG(LOG_ERROR, "bus url is not valid who=%s url=%s", p->who, red);
        return NULL;
    }
    /* "amqp://host/" strictly names the empty vhost; everyone means "/". */
    if (!ci.vhost || !*ci.vhost)
        ci.vhost = "/";
    if (ci.ssl) {
        LOG(LOG_ERROR, "bus url uses amqps, which is not supported who=%s url=%s", p->who, red);
        return NULL;
    }
    conn = amqp_new_connection();
    if (!conn)
        return NULL;
    sock = amqp_tcp_socket_new(conn);
    if (!sock)
        goto out_fail;
    amqp_set_handshake_timeout(conn, &tv);
    amqp_set_rpc_timeout(conn, &rtv);
    st = amqp_socket_open_noblock(sock, ci.host, ci.port, &tv);
    if (st != AMQP_STATUS_OK) {
        LOG(LOG_WARN, "bus connect failed who=%s url=%s reason=\"%s\"", p->who, red,
            amqp_error_string2(st));
        goto out_fail;
    }
    r = login(conn, &ci, p->heartbeat > 0 ? p->heartbeat : 0, p->who);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        LOG(LOG_WARN, "bus login failed who=%s url=%s reason=\"%s\"", p->who, red,
            amqpc_reply_text(r, buf, sizeof(buf)));
        goto out_fail;
    }
    LOG(LOG_INFO, "bus connected who=%s url=%s heartbeat=%d", p->who, red,
        p->heartbeat > 0 ? p->heartbeat : 0);
    c = malloc(sizeof(*c));
    if (!c)
        goto out_fail;
    c->st = conn;
    return c;

out_fail:
    amqp_destroy_connection(conn);
    return NULL;
}

struct amqpc_conn *amqpc_connect(const struct amqpc_params *p) {
    const char *list = p->urls && *p->urls ? p->urls : "amqp://guest:guest@127.0.0.1:5672/";
    unsigned n = 1, first = p->next_index ? *p->next_index : 0;

    for (const char *c = list; (c = strchr(c, ',')); c++)
        n++;
    for (unsigned k = 0; k < n; k++) {
        unsigned idx = (first + k) % n;
        const char *s = list, *e;
        char url[URL_MAX];
        struct amqpc_conn *conn;

        for (unsigned i = 0; i < idx; i++)
            s = strchr(s, ',') + 1;
        while (*s == ' ')
            s++;
        e = strchr(s, ',');
        if (!e)
            e = s + strlen(s);
        if ((size_t)(e - s) >= sizeof(url))
            continue;
        memcpy(url, s, (size_t)(e - s));
        url[e - s] = '\0';
        conn = try_one(url, p);
        if (conn) {
            /* Stay on this node; the next attempt after a loss tries the
             * following one first. */
            if (p->next_index)
                *p->next_index = (idx + 1) % n;
            return conn;
        }
    }
    return NULL;
}

void amqpc_close(struct amqpc_conn *conn, bool graceful) {
    if (!conn)
        return;
    if (graceful)
        amqp_connection_close(conn->st, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn->st);
    free(conn);
}

int amqpc_channel_open(struct amqpc_conn *conn, int channel, const char *name) {
    amqp_channel_open(conn->st, (amqp_channel_t)channel);
    return amqpc_check(conn, "channel.open", name);
}

void amqpc_channel_close(struct amqpc_conn *conn, int channel) {
    amqp_channel_close(conn->st, (amqp_channel_t)channel, AMQP_REPLY_SUCCESS);
}

int amqpc_confirm_select(struct amqpc_conn *conn, int channel, const char *name) {
    amqp_confirm_select(conn->st, (amqp_channel_t)channel);
    return amqpc_check(conn, "confirm.select", name);
}

int amqpc_qos(struct amqpc_conn *conn, int channel, unsigned prefetch, const char *name) {
    amqp_basic_qos(conn->st, (amqp_channel_t)channel, 0,
                   (uint16_t)(prefetch > 65535 ? 65535 : prefetch), 0);
    return amqpc_check(conn, "basic.qos", name);
}

int amqpc_consume(struct amqpc_conn *conn, int channel, const char *queue, const char *consumer_tag,
                  bool no_ack, bool exclusive) {
    amqp_basic_consume(conn->st, (amqp_channel_t)channel, amqp_cstring_bytes(queue),
                       consumer_tag ? amqp_cstring_bytes(consumer_tag) : amqp_empty_bytes, 0,
                       no_ack, exclusive, amqp_empty_table);
    return amqpc_check(conn, "basic.consume", queue);
}

int amqpc_declare_private_queue(struct amqpc_conn *conn, int channel, char *out, size_t len) {
    amqp_queue_declare_ok_t *q = amqp_queue_declare(conn->st, (amqp_channel_t)channel,
                                                    amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);

    if (!q || amqpc_check(conn, "queue.declare", "private queue") < 0)
        return -1;
    if (q->queue.len >= len) {
        LOG(LOG_WARN, "bus queue.declare failed: the queue's name is too long");
        return -1;
    }
    memcpy(out, q->queue.bytes, q->queue.len);
    out[q->queue.len] = '\0';
    return 0;
}

/* After a declaration: 0 when it succeeded, 1 when the broker refused it
 * because the object exists with other arguments (the channel is reopened),
 * -1 otherwise (logged). */
static int refused(struct amqpc_conn *conn, int channel, const char *what, const char *name) {
    amqp_rpc_reply_t r = amqp_get_rpc_reply(conn->st);

    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
        ((const amqp_channel_close_t *)r.reply.decoded)->reply_code == AMQP_PRECONDITION_FAILED) {
        amqp_channel_close_ok_t ok = {0};
        amqp_send_method(conn->st, (amqp_channel_t)channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        LOG(LOG_INFO, "bus %s exists with other arguments; using it name=%s", what, name);
        amqp_channel_open(conn->st, (amqp_channel_t)channel);
        return amqpc_check(conn, "channel.open", name) < 0 ? -1 : 1;
    }
    return amqpc_check(conn, what, name) < 0 ? -1 : 0;
}

int amqpc_declare_exchange_as(struct amqpc_conn *conn, int channel, const char *name,
                              const char *type, bool durable) {
    amqp_exchange_declare(conn->st, (amqp_channel_t)channel, amqp_cstring_bytes(name),
                          amqp_cstring_bytes(type ? type : "fanout"), 0, durable, 0, 0,
                          amqp_empty_table);
    return refused(conn, channel, "exchange.declare", name) < 0 ? -1 : 0;
}

int amqpc_declare_exchange(struct amqpc_conn *conn, int channel, const char *name,
                           const char *type) {
    return amqpc_declare_exchange_as(conn, channel, name, type, true);
}

/* queue.declare of name with args; one that exists with other arguments is
 * checked to be there (passive) and used as it is. */
static int declare_queue_with(struct amqpc_conn *conn, int channel, const char *name, bool durable,
                              amqp_table_t args) {
    int r;

    amqp_queue_declare(conn->st, (amqp_channel_t)channel, amqp_cstring_bytes(name), 0, durable, 0,
                       0, args);
    r = refused(conn, channel, "queue.declare", name);
    if (r <= 0)
        return r;
    amqp_queue_declare(conn->st, (amqp_channel_t)channel, amqp_cstring_bytes(name), 1, 0, 0, 0,
                       amqp_empty_table);
    return amqpc_check(conn, "queue.declare passive", name);
}

int amqpc_declare_queue_typed(struct amqpc_conn *conn, int channel, const char *name, bool durable,
                              const char *queue_type) {
    amqp_table_entry_t arg;
    amqp_table_t args = amqp_empty_table;

    if (queue_type && durable) {
        arg.key = amqp_cstring_bytes("x-queue-type");
        arg.value.kind = AMQP_FIELD_KIND_UTF8;
        arg.value.value.bytes = amqp_cstring_bytes(queue_type);
        args.num_entries = 1;
        args.entries = &arg;
    }
    return declare_queue_with(conn, channel, name, durable, args);
}

int amqpc_declare_queue_as(struct amqpc_conn *conn, int channel, const char *name, bool durable) {
    return amqpc_declare_queue_typed(conn, channel, name, durable, NULL);
}

int amqpc_declare_queue(struct amqpc_conn *conn, int channel, const char *name) {
    return amqpc_declare_queue_as(conn, channel, name, true);
}

int amqpc_declare_stream(struct amqpc_conn *conn, int channel, const char *name, int64_t max_bytes,
                         const char *max_age) {
    amqp_table_entry_t arg[3];
    amqp_table_t args = {0, arg};

    arg[0].key = amqp_cstring_bytes("x-queue-type");
    arg[0].value.kind = AMQP_FIELD_KIND_UTF8;
    arg[0].value.value.bytes = amqp_cstring_bytes("stream");
    args.num_entries = 1;
    if (max_bytes > 0) {
        arg[args.num_entries].key = amqp_cstring_bytes("x-max-length-bytes");
        arg[args.num_entries].value.kind = AMQP_FIELD_KIND_I64;
        arg[args.num_entries].value.value.i64 = max_bytes;
        args.num_entries++;
    }
    if (max_age && *max_age) {
        arg[args.num_entries].key = amqp_cstring_bytes("x-max-age");
        arg[args.num_entries].value.kind = AMQP_FIELD_KIND_UTF8;
        arg[args.num_entries].value.value.bytes = amqp_cstring_bytes(max_age);
        args.num_entries++;
    }
    return declare_queue_with(conn, channel, name, true, args);
}

int amqpc_consume_stream(struct amqpc_conn *conn, int channel, const char *queue,
                         const char *consumer_tag) {
    amqp_table_entry_t arg;
    amqp_table_t args = {1, &arg};

    arg.key = amqp_cstring_bytes("x-stream-offset");
    arg.value.kind = AMQP_FIELD_KIND_UTF8;
    arg.value.value.bytes = amqp_cstring_bytes("next");
    amqp_basic_consume(conn->st, (amqp_channel_t)channel, amqp_cstring_bytes(queue),
                       consumer_tag ? amqp_cstring_bytes(consumer_tag) : amqp_empty_bytes, 0, 0, 0,
                       args);
    return amqpc_check(conn, "basic.consume", queue);
}

int amqpc_bind(struct amqpc_conn *conn, int channel, const char *queue, const char *exchange,
               const char *key) {
    amqp_queue_bind(conn->st, (amqp_channel_t)channel, amqp_cstring_bytes(queue),
                    amqp_cstring_bytes(exchange), amqp_cstring_bytes(key ? key : ""),
                    amqp_empty_table);
    return amqpc_check(conn, "queue.bind", queue);
}

void amqpc_backoff_init(struct amqpc_backoff *b, long min_ms, long max_ms) {
    unsigned seed = 0;

    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
        seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)b;
    b->min_ms = min_ms > 0 ? min_ms : 100;
    b->max_ms = max_ms > b->min_ms ? max_ms : b->min_ms;
    b->cur_ms = b->min_ms;
    b->seed = seed;
}

long amqpc_backoff_next(struct amqpc_backoff *b) {
    long d = b->cur_ms;

    b->cur_ms = d * 2 > b->max_ms ? b->max_ms : d * 2;
    return d / 2 + (long)(rand_r(&b->seed) % (unsigned)(d / 2 + 1));
}

void amqpc_backoff_reset(struct amqpc_backoff *b) {
    b->cur_ms = b->min_ms;
}
