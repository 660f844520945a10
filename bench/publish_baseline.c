/* The reference for the mapper's confirmed-publish throughput: a plain
 * rabbitmq-c program that publishes N persistent messages to a fanout
 * exchange (with a durable queue of the same name bound to it, the mapper's
 * topology) and keeps K confirms outstanding, then prints msg/s.
 *
 *   publish_baseline URL EXCHANGE N K BODY
 *
 * Prints one line: "baseline msgs=N outstanding=K seconds=S rate=R msg/s".
 * The queue is purged after the run so that the broker does not keep the
 * messages. Exit status 0 when every message was acked, 1 otherwise.
 *
 * With BASELINE_EXISTING=1 in the environment it publishes into the
 * topology as it is (the mapper's exchange and queue, a quorum queue in a
 * cluster, the store's consumers on it): nothing is declared or purged, and
 * every message gets an id of its own, so that the consumers store each one.
 */
#include <stdbool.h>
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_long(const char *s, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v <= 0)
        return -1;
    *out = v;
    return 0;
}

static int ok_reply(amqp_connection_state_t c, const char *what) {
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    fprintf(stderr, "publish_baseline: %s failed (reply type %d, library error %s)\n", what,
            r.reply_type, amqp_error_string2(r.library_error));
    return -1;
}

/* Waits for the next confirm; returns the tag it covers up to, or 0 on error. */
static uint64_t wait_confirm(amqp_connection_state_t c, long *nacks) {
    for (;;) {
        amqp_frame_t f;
        int st = amqp_simple_wait_frame(c, &f);
        if (st != AMQP_STATUS_OK) {
            fprintf(stderr, "publish_baseline: %s\n", amqp_error_string2(st));
            return 0;
        }
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            const amqp_basic_ack_t *a = f.payload.method.decoded;
            return a->multiple ? a->delivery_tag : a->delivery_tag | (1ULL << 63);
        }
        if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            const amqp_basic_nack_t *a = f.payload.method.decoded;
            (*nacks)++;
            return a->multiple ? a->delivery_tag : a->delivery_tag | (1ULL << 63);
        }
        if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
            f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
            fprintf(stderr, "publish_baseline: closed by the broker\n");
            return 0;
        }
    }
}

int main(int argc, char **argv) {
    long n, k;
    if (argc != 6 || parse_long(argv[3], &n) < 0 || parse_long(argv[4], &k) < 0) {
        fprintf(stderr, "usage: publish_baseline URL EXCHANGE N K BODY\n");
        return 2;
    }
    const char *exchange = argv[2];
    const char *body = argv[5];

    char *url = strdup(argv[1]);
    struct amqp_connection_info info;
    amqp_default_connection_info(&info);
    if (!url || amqp_parse_url(url, &info) != AMQP_STATUS_OK) {
        fprintf(stderr, "publish_baseline: bad url\n");
        return 2;
    }
    if (!*info.vhost)
        info.vhost = "/";

    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *sock = amqp_tcp_socket_new(c);
    int st = amqp_socket_open(sock, info.host, info.port);
    if (st != AMQP_STATUS_OK) {
        fprintf(stderr, "publish_baseline: connect: %s\n", amqp_error_string2(st));
        return 1;
    }
    amqp_rpc_reply_t r =
        amqp_login(c, info.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, info.user, info.password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        fprintf(stderr, "publish_baseline: login failed\n");
        return 1;
    }
    amqp_channel_open(c, 1);
    if (ok_reply(c, "channel.open"))
        return 1;
    amqp_bytes_t ex = amqp_cstring_bytes(exchange);
    const char *existing_env = getenv("BASELINE_EXISTING");
    bool existing = existing_env && strcmp(existing_env, "1") == 0;
    if (existing)
        goto declared;
    amqp_exchange_declare(c, 1, ex, amqp_cstring_bytes("fanout"), 0, 1, 0, 0, amqp_empty_table);
    if (ok_reply(c, "exchange.declare"))
        return 1;
    amqp_queue_declare(c, 1, ex, 0, 1, 0, 0, amqp_empty_table);
    if (ok_reply(c, "queue.declare"))
        return 1;
    amqp_queue_bind(c, 1, ex, ex, amqp_empty_bytes, amqp_empty_table);
    if (ok_reply(c, "queue.bind"))
        return 1;
declared:
    amqp_confirm_select(c, 1);
    if (ok_reply(c, "confirm.select"))
        return 1;

    amqp_basic_properties_t p;
    memset(&p, 0, sizeof(p));
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
               AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
    p.content_type = amqp_cstring_bytes("application/json");
    p.delivery_mode = 2;
    char mid[64];

    /* Tags are confirmed in order, so a count of the highest tag acked is
     * enough; a single (non-multiple) ack also counts as one. */
    long sent = 0, acked = 0, nacks = 0;
    double t0 = now_s();
    time_t t0_wall = time(NULL);
    while (acked < n) {
        while (sent < n && sent - acked < k) {
            snprintf(mid, sizeof(mid), "%08lx-0000-7000-8000-%012ld",
                     existing ? (unsigned long)t0_wall & 0xffffffffUL : 0x0190b3a0UL, sent);
            p.message_id = amqp_cstring_bytes(mid);
            p.timestamp = (uint64_t)time(NULL);
            st = amqp_basic_publish(c, 1, ex, amqp_empty_bytes, 0, 0, &p, amqp_cstring_bytes(body));
            if (st != AMQP_STATUS_OK) {
                fprintf(stderr, "publish_baseline: publish: %s\n", amqp_error_string2(st));
                return 1;
            }
            sent++;
        }
        uint64_t t = wait_confirm(c, &nacks);
        if (t == 0)
            return 1;
        if (t & (1ULL << 63))
            acked++;
        else if ((long)t > acked)
            acked = (long)t;
        amqp_maybe_release_buffers(c);
    }
    double secs = now_s() - t0;
    printf("baseline msgs=%ld outstanding=%ld seconds=%.3f rate=%.0f msg/s nacks=%ld\n", n, k, secs,
           (double)n / secs, nacks);

    if (!existing)
        amqp_queue_purge(c, 1, ex);
    amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
    free(url);
    return nacks ? 1 : 0;
}
