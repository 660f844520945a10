/* Websocket and Server-Sent Events fan-out benchmark client for liveupdate
 * (and nginx nchan).
 *
 *   liveupdate_fanout --ws ws://127.0.0.1:8082/messages/ --clients 1000
 *                     (--post http://127.0.0.1:8081/messages/ | --amqp URL --exchange EX)
 *                     [--rate 1000] [--seconds 5] [--publishers 16]
 *                     [--stuck N --since ID]
 *   liveupdate_fanout --sse http://127.0.0.1:8082/events/v1/messages/ ...   (the same, SSE)
 *   liveupdate_fanout --ws ... --clients 10000 --idle 10
 *
 * --stuck N opens N more websocket connections with ?since=ID that never
 * read (a tiny receive buffer, never drained): resuming clients from far
 * back that do not keep up, held open for the whole run.
 *
 * Opens --clients websocket connections (a minimal client on raw sockets and
 * one epoll loop), then publishes --rate messages a second for --seconds,
 * each {"seq": N}, either as HTTP POSTs from --publishers connections
 * taking turns (the time of the response, the 202, is the start) or
 * straight to the broker (the time of the broker's confirm, which is when
 * the mapper answers 202). Every frame received is matched by
 * its seq; the latency from the start to its receipt at each client is
 * printed as p50/p99/max, with how many of the expected deliveries arrived.
 * With --idle it only holds the connections for that many seconds, printing
 * "READY n" once they are all established.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

enum { ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSED };

struct conn {
    int fd;
    int state;
    size_t len;
    unsigned char buf[16384];
    /* SSE: the body may come chunked (through nginx, from nchan). */
    int chunked;
    int in_size; /* reading a chunk-size line */
    uint64_t chunk_left;
    size_t crlf_left; /* bytes of the CRLF after a chunk still to skip */
    char size_line[32];
    size_t size_len;
};

struct receipt {
    uint32_t seq;
    int64_t t;
};

static struct conn *conns;
static int n_clients = 1000, rate = 1000, seconds = 5, idle = 0;
static char ws_host[256] = "127.0.0.1", ws_path[512] = "/";
static int ws_port = 80;
static int sse;                    /* clients read Server-Sent Events, not websockets */
static char post_host[256], post_path[512];
static int post_port;
static const char *amqp_url, *exchange;
static int64_t *t_ack;             /* when publish i was answered (202, or the broker's confirm) */
static int64_t *t_sent;            /* when publish i was sent */
static int n_pub = 16;             /* HTTP publishers, each sending every n_pub-th message */
static int64_t pub_t0;             /* when publish 0 is due; publish i is due i/rate later */
static _Atomic int64_t pub_t_last; /* when the last publish was sent */
static atomic_int published;       /* publishes answered with success */
static atomic_int pub_done;        /* publisher threads finished */

static void note_last_send(int64_t t) {
    int64_t cur = atomic_load(&pub_t_last);
    while (t > cur && !atomic_compare_exchange_weak(&pub_t_last, &cur, t))
        ;
}
static struct receipt *receipts;
static size_t n_receipts, cap_receipts;
static int n_open, n_closed, n_failed;
static unsigned long long n_reads; /* reads that returned data, to report frames per read */

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_until(int64_t t) {
    struct timespec ts = {t / 1000000000LL, t % 1000000000LL};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static int parse_url(const char *url, const char *scheme, char *host, size_t hl, int *port,
                     char *path, size_t pl) {
    const char *p, *slash, *colon;
    size_t n = strlen(scheme);

    if (strncmp(url, scheme, n) != 0)
        return -1;
    p = url + n;
    slash = strchr(p, '/');
    if (!slash)
        slash = p + strlen(p);
    colon = memchr(p, ':', (size_t)(slash - p));
    if (colon) {
        snprintf(host, hl, "%.*s", (int)(colon - p), p);
        *port = (int)strtol(colon + 1, NULL, 10);
    } else {
        snprintf(host, hl, "%.*s", (int)(slash - p), p);
    }
    snprintf(path, pl, "%s", *slash ? slash : "/");
    return 0;
}

/* Connects to host:port. To a loopback address, the connection comes from
 * 127.0.0.2: thousands of connections in TIME_WAIT hold their local ports
 * for a minute, and ports taken on 127.0.0.1 could be the ones the servers
 * of the stack need to bind (their ports lie in the ephemeral range). */
static int tcp_connect(const char *host, int port, int nonblock) {
    struct sockaddr_in sa = {0};
    int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
    int one = 1;

    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (strncmp(host, "127.", 4) == 0) {
        struct sockaddr_in src = {0};
        src.sin_family = AF_INET;
        inet_pton(AF_INET, "127.0.0.2", &src.sin_addr);
        /* The port is chosen at connect(), per destination, not at bind(). */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
            close(fd);
            return -1;
        }
    }
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static void record(uint32_t seq, int64_t t) {
    if (n_receipts == cap_receipts) {
        cap_receipts = cap_receipts ? cap_receipts * 2 : 1 << 20;
        receipts = realloc(receipts, cap_receipts * sizeof(*receipts));
        if (!receipts) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
    }
    receipts[n_receipts].seq = seq;
    receipts[n_receipts].t = t;
    n_receipts++;
}

static void send_pong(struct conn *c, const unsigned char *payload, size_t len) {
    unsigned char f[2 + 4 + 125];
    if (len > 125)
        len = 125;
    f[0] = 0x8A;
    f[1] = (unsigned char)(0x80 | len);
    memset(f + 2, 0, 4); /* a zero mask key leaves the payload as it is */
    memcpy(f + 6, payload, len);
    if (write(c->fd, f, 6 + len) < 0) {
        /* the connection will report its error on the next read */
    }
}

/* Consumes whole frames from c->buf, received at time t. */
static void frames(struct conn *c, int64_t t) {
    size_t off = 0;

    while (c->len - off >= 2) {
        unsigned char *p = c->buf + off;
        int op = p[0] & 0x0f;
        uint64_t plen = p[1] & 0x7f;
        size_t hl = 2;
        if (plen == 126) {
            if (c->len - off < 4)
                break;
            plen = ((uint64_t)p[2] << 8) | p[3];
            hl = 4;
        } else if (plen == 127) {
            if (c->len - off < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = (plen << 8) | p[2 + i];
            hl = 10;
        }
        if (plen > sizeof(c->buf) - 16) {
            fprintf(stderr, "frame too large for the bench client\n");
            c->state = ST_CLOSED;
            return;
        }
        if (c->len - off < hl + plen)
            break;
        if (op == 1) {
            char tmp[256];
            size_t n = plen < sizeof(tmp) - 1 ? plen : sizeof(tmp) - 1;
            const char *s;
            memcpy(tmp, p + hl, n);
            tmp[n] = '\0';
            s = strstr(tmp, "\"seq\":");
            if (s)
                record((uint32_t)strtoul(s + 6, NULL, 10), t);
        } else if (op == 9) {
            send_pong(c, p + hl, plen);
        } else if (op == 8) {
            c->state = ST_CLOSED;
            n_closed++;
            return;
        }
        off += hl + plen;
    }
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
}

/* SSE: consumes whole events from c->buf (the decoded body), received at t. */
static void sse_events(struct conn *c, int64_t t) {
    size_t off = 0;

    for (;;) {
        unsigned char *end = memmem(c->buf + off, c->len - off, "\n\n", 2);
        const char *s;
        if (!end)
            break;
        *end = '\0';
        s = strstr((const char *)c->buf + off, "\"seq\":");
        if (s)
            record((uint32_t)strtoul(s + 6, NULL, 10), t);
        off = (size_t)(end - c->buf) + 2;
    }
    if (c->len - off >= sizeof(c->buf) - 1024) {
        fprintf(stderr, "event too large for the bench client\n");
        off = c->len;
    }
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
}

/* SSE: appends raw body bytes (de-chunked when the response is chunked) to
 * c->buf and consumes the events completed. */
static void sse_feed(struct conn *c, const unsigned char *p, size_t n, int64_t t) {
    while (n) {
        size_t take;
        if (!c->chunked) {
            take = n;
        } else if (c->crlf_left) {
            take = n < c->crlf_left ? n : c->crlf_left;
            c->crlf_left -= take;
            p += take;
            n -= take;
            continue;
        } else if (c->in_size) {
            char ch = (char)*p++;
            n--;
            if (ch == '\n') {
                c->size_line[c->size_len] = '\0';
                c->chunk_left = strtoull(c->size_line, NULL, 16);
                c->size_len = 0;
                c->in_size = 0;
                if (c->chunk_left == 0) {
                    c->state = ST_CLOSED; /* the last chunk: the stream ended */
                    n_closed++;
                    return;
                }
            } else if (ch != '\r' && c->size_len < sizeof(c->size_line) - 1) {
                c->size_line[c->size_len++] = ch;
            }
            continue;
        } else {
            take = n < c->chunk_left ? n : (size_t)c->chunk_left;
        }
        if (take > sizeof(c->buf) - c->len)
            take = sizeof(c->buf) - c->len;
        memcpy(c->buf + c->len, p, take);
        c->len += take;
        p += take;
        n -= take;
        if (c->chunked) {
            c->chunk_left -= take;
            if (c->chunk_left == 0) {
                c->in_size = 1;
                c->crlf_left = 2;
            }
        }
        sse_events(c, t);
    }
}

/* Stops watching a connection the server closed (a closed socket stays
 * readable, and would otherwise be reported by every epoll_wait). */
static void drop(int ep, struct conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

/* Reads what is there. A read that does not fill the buffer took everything
 * the socket held, so no second read is spent to see EAGAIN: the level-
 * triggered epoll reports the socket again when more arrives. */
static void on_readable(int ep, struct conn *c) {
    unsigned char tmp[16384];

    for (;;) {
        int body = sse && c->state == ST_OPEN;
        size_t room = body ? sizeof(tmp) : sizeof(c->buf) - c->len;
        ssize_t n = read(c->fd, body ? tmp : c->buf + c->len, room);
        int64_t t = now_ns();
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            if (c->state == ST_OPEN)
                n_closed++;
            else
                n_failed++;
            c->state = ST_CLOSED;
            drop(ep, c);
            return;
        }
        n_reads++;
        if (body) {
            sse_feed(c, tmp, (size_t)n, t);
        } else {
            c->len += (size_t)n;
        }
        if (c->state == ST_HANDSHAKE) {
            unsigned char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
            size_t hl;
            if (!end)
                continue;
            if (!memmem(c->buf, (size_t)(end - c->buf), sse ? " 200 " : " 101 ", 5)) {
                n_failed++;
                c->state = ST_CLOSED;
                drop(ep, c);
                return;
            }
            hl = (size_t)(end - c->buf) + 4;
            if (sse) {
                *end = '\0';
                c->chunked = strcasestr((char *)c->buf, "transfer-encoding: chunked") != NULL;
                c->in_size = c->chunked;
                memcpy(tmp, c->buf + hl, c->len - hl);
                n = (ssize_t)(c->len - hl);
                c->len = 0;
                c->state = ST_OPEN;
                n_open++;
                sse_feed(c, tmp, (size_t)n, t);
            } else {
                memmove(c->buf, c->buf + hl, c->len - hl);
                c->len -= hl;
                c->state = ST_OPEN;
                n_open++;
            }
        } else if (c->state == ST_OPEN && !body) {
            frames(c, t);
        }
        if (c->state == ST_CLOSED) {
            drop(ep, c);
            return;
        }
        if ((size_t)n < room)
            return;
    }
}

static void on_connected(struct conn *c) {
    char req[1024];
    int n = sse ? snprintf(req, sizeof(req),
                           "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n\r\n",
                           ws_path, ws_host, ws_port)
                : snprintf(req, sizeof(req),
                           "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: "
                           "Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n",
                           ws_path, ws_host, ws_port);
    if (write(c->fd, req, (size_t)n) != n) {
        n_failed++;
        c->state = ST_CLOSED;
        return;
    }
    c->state = ST_HANDSHAKE;
}

static void poll_once(int ep, int timeout_ms) {
    struct epoll_event evs[512];
    int n = epoll_wait(ep, evs, 512, timeout_ms);

    for (int i = 0; i < n; i++) {
        struct conn *c = &conns[evs[i].data.u32];
        if (c->state == ST_CLOSED)
            continue;
        if (c->state == ST_CONNECTING && (evs[i].events & EPOLLOUT)) {
            int err = 0;
            socklen_t l = sizeof(err);
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
            if (err) {
                n_failed++;
                c->state = ST_CLOSED;
                continue;
            }
            struct epoll_event ev = {.events = EPOLLIN, .data.u32 = evs[i].data.u32};
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            on_connected(c);
            continue;
        }
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            on_readable(ep, c);
    }
}

/* ---- publishers ---------------------------------------------------------------- */

/* One of n_pub HTTP publishers: sends messages k, k + n_pub, ... each when
 * it is due, on one keep-alive connection, waiting for each answer. Several
 * of them keep the schedule although each answer takes a few ms. */
static void *pub_http(void *arg) {
    int k = (int)(intptr_t)arg;
    int total = rate * seconds;
    int fd = tcp_connect(post_host, post_port, 0);
    char resp[8192];

    if (fd < 0) {
        fprintf(stderr, "cannot connect to the publisher endpoint\n");
        atomic_fetch_add(&pub_done, 1);
        return NULL;
    }
    for (int i = k; i < total; i += n_pub) {
        char body[64], req[1024];
        int bl = snprintf(body, sizeof(body), "{\"seq\":%d}", i);
        int n = snprintf(req, sizeof(req),
                         "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                         "Content-Length: %d\r\n\r\n%s",
                         post_path, post_host, post_port, bl, body);
        size_t got = 0;
        sleep_until(pub_t0 + (int64_t)i * 1000000000LL / rate);
        t_sent[i] = now_ns();
        note_last_send(t_sent[i]);
        if (write(fd, req, (size_t)n) != n)
            break;
        /* Reads one response: headers, then Content-Length bytes. */
        for (;;) {
            ssize_t r = read(fd, resp + got, sizeof(resp) - 1 - got);
            char *end, *cl;
            if (r <= 0)
                goto out;
            got += (size_t)r;
            resp[got] = '\0';
            end = strstr(resp, "\r\n\r\n");
            if (!end)
                continue;
            cl = strcasestr(resp, "content-length:");
            if (cl && (size_t)(end + 4 - resp) + strtoul(cl + 15, NULL, 10) > got)
                continue;
            break;
        }
        if (strncmp(resp + 9, "20", 2) != 0) {
            fprintf(stderr, "publish answered: %.40s\n", resp);
            break;
        }
        t_ack[i] = now_ns();
        atomic_fetch_add(&published, 1);
        /* nginx ends a keep-alive connection after keepalive_requests. */
        if (strcasestr(resp, "connection: close")) {
            close(fd);
            fd = tcp_connect(post_host, post_port, 0);
            if (fd < 0)
                break;
        }
    }
out:
    if (fd >= 0)
        close(fd);
    atomic_fetch_add(&pub_done, 1);
    return NULL;
}

static void *pub_amqp(void *arg) {
    int total = rate * seconds;
    struct amqp_connection_info ci;
    char *url = strdup(amqp_url);
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *sock = amqp_tcp_socket_new(conn);
    int64_t t0;
    int acked = 0;
    char run[16];

    (void)arg;
    snprintf(run, sizeof(run), "%08lx", (unsigned long)time(NULL));
    amqp_default_connection_info(&ci);
    amqp_parse_url(url, &ci);
    if (!*ci.vhost)
        ci.vhost = "/";
    if (amqp_socket_open(sock, ci.host, ci.port) != AMQP_STATUS_OK ||
        amqp_login(conn, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ci.user, ci.password)
                .reply_type != AMQP_RESPONSE_NORMAL) {
        fprintf(stderr, "cannot connect to the broker\n");
        atomic_fetch_add(&pub_done, 1);
        return NULL;
    }
    amqp_channel_open(conn, 1);
    amqp_confirm_select(conn, 1);
    amqp_get_rpc_reply(conn);
    t0 = pub_t0;
    for (int i = 0; i < total || acked < atomic_load(&published);) {
        int64_t next = t0 + (int64_t)i * 1000000000LL / rate;
        if (i < total && now_ns() >= next) {
            char body[96], mid[64];
            amqp_basic_properties_t pr = {0};
            snprintf(body, sizeof(body), "{\"data\":{\"seq\":%d},\"args\":null}", i);
            snprintf(mid, sizeof(mid), "bench-%s-%08d", run, i);
            pr._flags = AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG |
                        AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
            pr.message_id = amqp_cstring_bytes(mid);
            pr.timestamp = (uint64_t)time(NULL);
            pr.content_type = amqp_cstring_bytes("application/json");
            pr.delivery_mode = 2;
            t_sent[i] = now_ns();
            note_last_send(t_sent[i]);
            amqp_basic_publish(conn, 1, amqp_cstring_bytes(exchange), amqp_empty_bytes, 0, 0, &pr,
                               amqp_cstring_bytes(body));
            i++;
            atomic_store(&published, i);
            continue;
        }
        {
            /* Waits for the next publish or a confirm, whichever comes first.
             * Not with a timeout given to rabbitmq-c: it waits in whole
             * milliseconds, so a wait under 1 ms (every wait at 1,000 msg/s)
             * became a busy loop that took a core from the servers measured. */
            amqp_frame_t f;
            struct timeval tv0 = {0, 0};
            int rc;
            if (!amqp_data_in_buffer(conn) && !amqp_frames_enqueued(conn)) {
                int64_t wait = i < total ? next - now_ns() : 100000000;
                struct pollfd pfd = {.fd = amqp_get_sockfd(conn), .events = POLLIN};
                struct timespec ts = {wait > 0 ? wait / 1000000000LL : 0,
                                      wait > 0 ? wait % 1000000000LL : 0};
                if (ppoll(&pfd, 1, &ts, NULL) <= 0)
                    continue;
            }
            rc = amqp_simple_wait_frame_noblock(conn, &f, &tv0);
            if (rc == AMQP_STATUS_TIMEOUT)
                continue;
            if (rc != AMQP_STATUS_OK)
                break;
            if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
                amqp_basic_ack_t *a = f.payload.method.decoded;
                int upto = (int)a->delivery_tag;
                int64_t t = now_ns();
                if (a->multiple) {
                    for (; acked < upto; acked++)
                        t_ack[acked] = t;
                } else {
                    t_ack[upto - 1] = t;
                    while (acked < total && t_ack[acked])
                        acked++;
                }
            }
        }
    }
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
    free(url);
    atomic_fetch_add(&pub_done, 1);
    return NULL;
}

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const char *ws = NULL, *post = NULL, *sse_url = NULL, *since = NULL;
    int stuck = 0, stuck_open = 0;
    struct rlimit rl;
    int ep, pending;
    pthread_t th[64];
    int n_th;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--ws"))
            ws = argv[i + 1];
        else if (!strcmp(argv[i], "--clients"))
            n_clients = (int)strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--rate"))
            rate = (int)strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--seconds"))
            seconds = (int)strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--idle"))
            idle = (int)strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--publishers"))
            n_pub = (int)strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--post"))
            post = argv[i + 1];
        else if (!strcmp(argv[i], "--amqp"))
            amqp_url = argv[i + 1];
        else if (!strcmp(argv[i], "--exchange"))
            exchange = argv[i + 1];
        else if (!strcmp(argv[i], "--sse"))
            sse_url = argv[i + 1];
        else if (!strcmp(argv[i], "--stuck"))
            stuck = (int)strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--since"))
            since = argv[i + 1];
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (sse_url) {
        sse = 1;
        if (parse_url(sse_url, "http://", ws_host, sizeof(ws_host), &ws_port, ws_path,
                      sizeof(ws_path)) < 0) {
            fprintf(stderr, "bad --sse url\n");
            return 2;
        }
    }
    if ((!ws && !sse) ||
        (!sse &&
         parse_url(ws, "ws://", ws_host, sizeof(ws_host), &ws_port, ws_path, sizeof(ws_path)) < 0) ||
        n_clients <= 0 || rate <= 0 || seconds <= 0 || n_pub < 1 || n_pub > 64) {
        fprintf(stderr, "usage: liveupdate_fanout --ws ws://HOST:PORT/PATH --clients N "
                        "(--post http://HOST:PORT/PATH | --amqp URL --exchange EX | --idle S) "
                        "[--rate R] [--seconds S]\n");
        return 2;
    }
    if (!idle && !post && !(amqp_url && exchange)) {
        fprintf(stderr, "need --post, --amqp with --exchange, or --idle\n");
        return 2;
    }
    if (post && parse_url(post, "http://", post_host, sizeof(post_host), &post_port, post_path,
                          sizeof(post_path)) < 0) {
        fprintf(stderr, "bad --post url\n");
        return 2;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    conns = calloc((size_t)n_clients, sizeof(*conns));
    t_ack = calloc((size_t)rate * (size_t)seconds, sizeof(*t_ack));
    t_sent = calloc((size_t)rate * (size_t)seconds, sizeof(*t_sent));
    ep = epoll_create1(0);
    if (!conns || !t_ack || !t_sent || ep < 0)
        return 1;

    /* Resuming clients that never read: blocking handshakes, then left alone. */
    if (stuck > 0 && since) {
        for (int i = 0; i < stuck; i++) {
            char req[1024], resp[512];
            int small = 4096, fd = tcp_connect(ws_host, ws_port, 0), n;
            ssize_t got;
            if (fd < 0)
                continue;
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
            n = snprintf(req, sizeof(req),
                         "GET %s?since=%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n",
                         ws_path, since, ws_host, ws_port);
            if (write(fd, req, (size_t)n) != n)
                continue;
            got = read(fd, resp, sizeof(resp) - 1); /* the 101 and perhaps a first frame */
            if (got > 0 && memmem(resp, (size_t)got, " 101 ", 5))
                stuck_open++;
        }
        printf("stuck resuming clients connected %d of %d (since %s)\n", stuck_open, stuck, since);
        fflush(stdout);
    }

    /* Connect in waves so the listen backlog never overflows. */
    pending = 0;
    for (int i = 0; i < n_clients; i++) {
        struct conn *c = &conns[i];
        struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = (uint32_t)i};
        c->fd = tcp_connect(ws_host, ws_port, 1);
        if (c->fd < 0) {
            c->state = ST_CLOSED;
            n_failed++;
            continue;
        }
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        if (++pending % 200 == 0) {
            int64_t deadline = now_ns() + 5000000000LL;
            while (n_open + n_failed < i + 1 - 50 && now_ns() < deadline)
                poll_once(ep, 10);
        }
    }
    {
        int64_t deadline = now_ns() + 20000000000LL;
        while (n_open + n_failed < n_clients && now_ns() < deadline)
            poll_once(ep, 10);
    }
    printf("connected %d of %d (failed %d)\n", n_open, n_clients, n_failed);
    fflush(stdout);

    if (idle) {
        int64_t end = now_ns() + (int64_t)idle * 1000000000LL;
        printf("READY %d\n", n_open);
        fflush(stdout);
        while (now_ns() < end)
            poll_once(ep, 100);
        printf("still open %d\n", n_open - n_closed);
        return 0;
    }

    /* Every receipt's slot is allocated and touched up front, so the
     * receiving loop never stalls on a realloc or a page fault. */
    cap_receipts = (size_t)rate * (size_t)seconds * (size_t)(n_open ? n_open : 1) + 1024;
    receipts = malloc(cap_receipts * sizeof(*receipts));
    if (!receipts)
        return 1;
    memset(receipts, 0, cap_receipts * sizeof(*receipts));
    /* The receiving loop's own CPU is measured from here: when it is busy
     * nearly all the time, the client, not the server, sets the latency. */
    struct timespec cpu0;
    int64_t wall0 = now_ns();
    unsigned long long reads0 = n_reads;
    size_t receipts0 = n_receipts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu0);
    /* Publish 0 is due a little later, when every publisher is ready. */
    n_th = post ? n_pub : 1;
    pub_t0 = now_ns() + 20000000LL;
    for (int k = 0; k < n_th; k++)
        if (pthread_create(&th[k], NULL, post ? pub_http : pub_amqp, (void *)(intptr_t)k) != 0)
            return 1;
    while (atomic_load(&pub_done) < n_th)
        poll_once(ep, 10);
    {
        /* Stragglers: until every delivery arrived, or two quiet seconds. */
        size_t want = (size_t)atomic_load(&published) * (size_t)n_open;
        int64_t quiet = now_ns() + 2000000000LL;
        size_t last = n_receipts;
        while (n_receipts < want && now_ns() < quiet) {
            poll_once(ep, 10);
            if (n_receipts != last) {
                last = n_receipts;
                quiet = now_ns() + 2000000000LL;
            }
        }
    }
    for (int k = 0; k < n_th; k++)
        pthread_join(th[k], NULL);
    {
        struct timespec cpu1;
        double busy, wall = (double)(now_ns() - wall0) / 1e9;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu1);
        busy = (double)(cpu1.tv_sec - cpu0.tv_sec) + (double)(cpu1.tv_nsec - cpu0.tv_nsec) / 1e9;
        printf(
            "bench client receiving loop: busy %.0f%% of %.2f s, %.1f frames per read%s\n",
            wall > 0 ? 100 * busy / wall : 0.0, wall,
            n_reads > reads0 ? (double)(n_receipts - receipts0) / (double)(n_reads - reads0) : 0.0,
            wall > 0 && busy / wall > 0.9 ? " (saturated: these latencies are the client's)" : "");
    }
    {
        int pub = atomic_load(&published), total = rate * seconds;
        size_t want = (size_t)pub * (size_t)n_open, n = 0, early = 0;
        int64_t *lat = malloc((n_receipts + 1) * sizeof(*lat));
        int64_t *lat_sent = malloc((n_receipts + 1) * sizeof(*lat_sent));
        int64_t *lat_due = malloc((n_receipts + 1) * sizeof(*lat_due));
        double took = pub > 1 ? (double)(pub_t_last - pub_t0) / 1e9 : 0;
        for (size_t i = 0; i < n_receipts; i++) {
            uint32_t s = receipts[i].seq;
            if ((int)s >= total || !t_ack[s])
                continue;
            int64_t d = receipts[i].t - t_ack[s];
            if (d < 0) {
                early++;
                d = 0;
            }
            lat_sent[n] = receipts[i].t - t_sent[s];
            lat_due[n] = receipts[i].t - (pub_t0 + (int64_t)s * 1000000000LL / rate);
            lat[n++] = d;
        }
        qsort(lat, n, sizeof(*lat), cmp64);
        qsort(lat_sent, n, sizeof(*lat_sent), cmp64);
        qsort(lat_due, n, sizeof(*lat_due), cmp64);
        printf("published %d messages at %d/s to %d clients; received %zu of %zu deliveries "
               "(%zu before the publish was answered); closed by server %d\n",
               pub, rate, n_open, n_receipts, want, early, n_closed);
        /* A publisher that waits for each answer (nchan answers after its
         * fan-out) falls behind the schedule when the server is slow; the
         * rate it achieved and the latency from when each publish was due
         * show that, where the latency from the send alone would hide it. */
        printf("publishing took %.2f s: %.0f msg/s achieved of %d asked\n", took,
               took > 0 ? (pub - 1) / took : 0.0, rate);
        if (n) {
            size_t p99 = (size_t)((double)n * 0.99);
            printf("latency from the answer: p50 %.2f ms p99 %.2f ms max %.2f ms\n",
                   lat[n / 2] / 1e6, lat[p99] / 1e6, lat[n - 1] / 1e6);
            printf("latency from the send:   p50 %.2f ms p99 %.2f ms max %.2f ms\n",
                   lat_sent[n / 2] / 1e6, lat_sent[p99] / 1e6, lat_sent[n - 1] / 1e6);
            printf("latency from when due:   p50 %.2f ms p99 %.2f ms max %.2f ms\n",
                   lat_due[n / 2] / 1e6, lat_due[p99] / 1e6, lat_due[n - 1] / 1e6);
            printf("FIGURES p50_ms=%.3f p99_ms=%.3f max_ms=%.3f send_p50_ms=%.3f "
                   "send_p99_ms=%.3f due_p50_ms=%.3f due_p99_ms=%.3f rate=%.0f delivered=%zu "
                   "expected=%zu\n",
                   lat[n / 2] / 1e6, lat[p99] / 1e6, lat[n - 1] / 1e6, lat_sent[n / 2] / 1e6,
                   lat_sent[p99] / 1e6, lat_due[n / 2] / 1e6, lat_due[p99] / 1e6,
                   took > 0 ? (pub - 1) / took : 0.0, n_receipts, want);
        }
        free(lat_due);
        free(lat_sent);
        free(lat);
    }
    return 0;
}
