/* Helpers of bench/handlers_store.sh.
 *
 *   handlers_bench fill AMQP_URL EXCHANGE N
 *       declares EXCHANGE (fanout) and a queue of the same name bound to it,
 *       as the mapper does, then publishes N persistent messages in the wire
 *       format ({"data":{...},"args":null}, a unique message_id each).
 *   handlers_bench rpc AMQP_URL QUEUE SECONDS DEPTH ARGS_JSON
 *       sends rpc requests {"data":null,"args":ARGS_JSON} to QUEUE with DEPTH
 *       in flight for SECONDS; prints requests/s and latency p50/p99.
 *   handlers_bench pg DB_URL TABLE SECONDS BEFORE LIMIT
 *       runs messages_get's keyset query as a prepared statement in a plain
 *       libpq loop for SECONDS; prints queries/s and latency p50/p99.
 */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long num(const char *s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 0) {
        fprintf(stderr, "not a number: %s\n", s);
        exit(2);
    }
    return v;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *lat, size_t n, double secs) {
    qsort(lat, n, sizeof(*lat), cmp_d);
    printf("%s: %zu in %.2fs = %.0f/s, p50 %.3f ms, p99 %.3f ms\n", what, n, secs, (double)n / secs,
           n ? lat[n / 2] * 1e3 : 0.0, n ? lat[(size_t)((double)n * 0.99)] * 1e3 : 0.0);
    printf("RATE %.0f\nP50MS %.3f\n", (double)n / secs, n ? lat[n / 2] * 1e3 : 0.0);
}

static void die_reply(amqp_connection_state_t c, const char *what) {
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        fprintf(stderr, "%s failed (reply type %d)\n", what, r.reply_type);
        exit(1);
    }
}

static amqp_connection_state_t bus_open(const char *url_in) {
    struct amqp_connection_info ci;
    char *url = strdup(url_in);
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);

    amqp_default_connection_info(&ci);
    if (amqp_parse_url(url, &ci) != AMQP_STATUS_OK || amqp_socket_open(s, ci.host, ci.port)) {
        fprintf(stderr, "cannot connect to the broker\n");
        exit(1);
    }
    if (amqp_login(c, ci.vhost && *ci.vhost ? ci.vhost : "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN,
                   ci.user, ci.password)
            .reply_type != AMQP_RESPONSE_NORMAL) {
        fprintf(stderr, "broker login failed\n");
        exit(1);
    }
    amqp_channel_open(c, 1);
    die_reply(c, "channel.open");
    free(url);
    return c;
}

static int fill(const char *url, const char *ex, long n) {
    amqp_connection_state_t c = bus_open(url);
    amqp_basic_properties_t p;
    char body[128], id[64];
    double t0;

    amqp_exchange_declare(c, 1, amqp_cstring_bytes(ex), amqp_cstring_bytes("fanout"), 0, 1, 0, 0,
                          amqp_empty_table);
    die_reply(c, "exchange.declare");
    amqp_queue_declare(c, 1, amqp_cstring_bytes(ex), 0, 1, 0, 0, amqp_empty_table);
    die_reply(c, "queue.declare");
    amqp_queue_bind(c, 1, amqp_cstring_bytes(ex), amqp_cstring_bytes(ex), amqp_cstring_bytes(ex),
                    amqp_empty_table);
    die_reply(c, "queue.bind");
    /* Confirms, so that "filled" means the broker has them all. */
    amqp_confirm_select(c, 1);
    die_reply(c, "confirm.select");
    t0 = now_s();
    memset(&p, 0, sizeof(p));
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
               AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
    p.content_type = amqp_cstring_bytes("application/json");
    p.delivery_mode = 2;
    p.timestamp = (uint64_t)time(NULL);
    for (long i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "bench-%ld-%ld", (long)t0, i);
        snprintf(body, sizeof(body),
                 "{\"data\":{\"n\":%ld,\"text\":\"hello fpesa\"},\"args\":null}", i);
        p.message_id = amqp_cstring_bytes(id);
        if (amqp_basic_publish(c, 1, amqp_cstring_bytes(ex), amqp_empty_bytes, 0, 0, &p,
                               amqp_cstring_bytes(body)) != AMQP_STATUS_OK) {
            fprintf(stderr, "publish failed\n");
            return 1;
        }
    }
    /* Wait for the confirm of the last publish (acks may be multiple). */
    for (;;) {
        amqp_frame_t f;
        if (amqp_simple_wait_frame(c, &f) != AMQP_STATUS_OK)
            return 1;
        if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            amqp_basic_ack_t *a = f.payload.method.decoded;
            if (a->delivery_tag >= (uint64_t)n)
                break;
        }
    }
    printf("filled %ld messages in %.2fs\n", n, now_s() - t0);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
    return 0;
}

static int rpc(const char *url, const char *q, double secs, long depth, const char *args) {
    amqp_connection_state_t c = bus_open(url);
    amqp_queue_declare_ok_t *ok;
    char reply_q[256], body[1024], corr[32];
    size_t cap = 1 << 20, n = 0;
    double *lat = malloc(cap * sizeof(*lat)), *sent = calloc((size_t)depth, sizeof(double));
    double t0, end;
    long seq = 0, in_flight = 0;
    amqp_basic_properties_t p;

    ok = amqp_queue_declare(c, 1, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
    die_reply(c, "queue.declare");
    snprintf(reply_q, sizeof(reply_q), "%.*s", (int)ok->queue.len, (char *)ok->queue.bytes);
    amqp_exchange_declare(c, 1, amqp_cstring_bytes("RPC"), amqp_cstring_bytes("direct"), 0, 1, 0, 0,
                          amqp_empty_table);
    die_reply(c, "exchange.declare");
    amqp_queue_bind(c, 1, amqp_cstring_bytes(reply_q), amqp_cstring_bytes("RPC"),
                    amqp_cstring_bytes(reply_q), amqp_empty_table);
    die_reply(c, "queue.bind");
    amqp_basic_consume(c, 1, amqp_cstring_bytes(reply_q), amqp_empty_bytes, 0, 1, 1,
                       amqp_empty_table);
    die_reply(c, "basic.consume");
    snprintf(body, sizeof(body), "{\"data\":null,\"args\":%s}", args);
    memset(&p, 0, sizeof(p));
    p._flags =
        AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    p.reply_to = amqp_cstring_bytes(reply_q);
    p.content_type = amqp_cstring_bytes("application/json");
    t0 = now_s();
    end = t0 + secs;
    for (;;) {
        while (in_flight < depth && now_s() < end) {
            long slot = seq % depth;
            snprintf(corr, sizeof(corr), "%ld", slot);
            p.correlation_id = amqp_cstring_bytes(corr);
            sent[slot] = now_s();
            amqp_basic_publish(c, 1, amqp_cstring_bytes(q), amqp_cstring_bytes(q), 0, 0, &p,
                               amqp_cstring_bytes(body));
            seq++;
            in_flight++;
        }
        if (in_flight == 0)
            break;
        amqp_envelope_t env;
        amqp_maybe_release_buffers(c);
        struct timeval tv = {5, 0};
        if (amqp_consume_message(c, &env, &tv, 0).reply_type != AMQP_RESPONSE_NORMAL) {
            fprintf(stderr, "no rpc answer within 5s\n");
            return 1;
        }
        if (n == 0 && env.message.body.len >= 9 &&
            memcmp(env.message.body.bytes, "{\"error\"", 8) == 0)
            fprintf(stderr, "unexpected answer: %.*s\n",
                    (int)(env.message.body.len > 300 ? 300 : env.message.body.len),
                    (char *)env.message.body.bytes);
        {
            long slot;
            char cb[32];
            snprintf(cb, sizeof(cb), "%.*s", (int)env.message.properties.correlation_id.len,
                     (char *)env.message.properties.correlation_id.bytes);
            slot = strtol(cb, NULL, 10);
            if (n < cap)
                lat[n++] = now_s() - sent[slot];
        }
        in_flight--;
        amqp_destroy_envelope(&env);
    }
    report("rpc", lat, n, now_s() - t0);
    return 0;
}

static int pg(const char *url, const char *table, double secs, const char *before,
              const char *limit) {
    PGconn *c = PQconnectdb(url);
    char sql[2048];
    const char *vals[2] = {before, limit};
    size_t cap = 1 << 20, n = 0;
    double *lat = malloc(cap * sizeof(*lat)), t0, end;

    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "%s", PQerrorMessage(c));
        return 1;
    }
    /* The same text messages_get prepares (keyset page, JSON built by PostgreSQL). */
    snprintf(sql, sizeof(sql),
             "WITH page AS (SELECT seq, id, received_at, data FROM %s WHERE seq < $1"
             " ORDER BY seq DESC LIMIT $2 + 1),"
             " shown AS (SELECT * FROM page ORDER BY seq DESC LIMIT $2)"
             " SELECT coalesce((SELECT json_agg(json_build_object('id', id, 'received_at',"
             " received_at, 'data', data) ORDER BY seq DESC) FROM shown), '[]'),"
             " CASE WHEN (SELECT count(*) FROM page) > $2 THEN (SELECT min(seq) FROM shown) END",
             table);
    PQclear(PQprepare(c, "q", sql, 2, NULL));
    t0 = now_s();
    end = t0 + secs;
    while (now_s() < end && n < cap) {
        double s = now_s();
        PGresult *r = PQexecPrepared(c, "q", 2, vals, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            fprintf(stderr, "%s", PQresultErrorMessage(r));
            return 1;
        }
        PQclear(r);
        lat[n++] = now_s() - s;
    }
    report("libpq", lat, n, now_s() - t0);
    PQfinish(c);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "fill") == 0)
        return fill(argv[2], argv[3], num(argv[4]));
    if (argc == 7 && strcmp(argv[1], "rpc") == 0)
        return rpc(argv[2], argv[3], (double)num(argv[4]), num(argv[5]), argv[6]);
    if (argc == 7 && strcmp(argv[1], "pg") == 0)
        return pg(argv[2], argv[3], (double)num(argv[4]), argv[5], argv[6]);
    fprintf(stderr, "usage: handlers_bench fill URL EXCHANGE N | rpc URL QUEUE SECS DEPTH ARGS |"
                    " pg DBURL TABLE SECS BEFORE LIMIT\n");
    return 2;
}
