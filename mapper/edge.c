/* Connection limits and phase deadlines of the restmapper (see edge.h). */
#include "edge.h"

#include "log.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define BUCKETS 1024
#define SWEEP_MS 200

/* Open connections of one client address. */
struct client {
    struct client *next;
    unsigned char addr[16];
    size_t addr_len;
    int count;
};

struct edge_conn {
    struct edge_conn *prev, *next;
    int fd;
    struct client *client;
    _Atomic int64_t deadline_ms; /* 0: none */
    _Atomic int phase;
};

struct edge {
    struct edge_limits lim;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t sweeper;
    bool stopping;
    struct edge_conn *conns; /* every open connection */
    struct client *buckets[BUCKETS];
    long open;

    _Atomic long refused_total, refused_client;
    _Atomic long timeouts[4]; /* by phase */
    _Atomic long refused_uri, refused_query, refused_headers, refused_framing;
};

static const char *const phase_names[] = {"idle", "header", "body", "busy"};

static int64_t now_ms(void) {
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The bytes that tell one client from another: the IPv4 or IPv6 address. */
static size_t addr_key(const struct sockaddr *sa, socklen_t len, unsigned char out[16]) {
    if (sa && sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 4;
    }
    if (sa && sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return 16;
    }
    return 0;
}

static size_t bucket_of(const unsigned char *k, size_t n) {
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++)
        h = (h ^ k[i]) * 16777619u;
    return h % BUCKETS;
}

/* The client record of key, or NULL. Called with the lock held. */
static struct client *client_find(struct edge *e, const unsigned char *k, size_t n) {
    struct client *c;

    for (c = e->buckets[bucket_of(k, n)]; c; c = c->next)
        if (c->addr_len == n && memcmp(c->addr, k, n) == 0)
            return c;
    return NULL;
}

static void *sweep(void *arg) {
    struct edge *e = arg;
    struct timespec ts;

    pthread_mutex_lock(&e->lock);
    while (!e->stopping) {
        int64_t now = now_ms();

        for (struct edge_conn *c = e->conns; c; c = c->next) {
            int64_t d = atomic_load_explicit(&c->deadline_ms, memory_order_relaxed);
            int p;

            if (d == 0 || now < d)
                continue;
            atomic_store_explicit(&c->deadline_ms, 0, memory_order_relaxed);
            p = atomic_load_explicit(&c->phase, memory_order_relaxed);
            atomic_fetch_add_explicit(&e->timeouts[p & 3], 1, memory_order_relaxed);
            /* libmicrohttpd sees the end of the stream and closes the
             * connection itself, calling edge_conn_close first. */
            shutdown(c->fd, SHUT_RDWR);
            LOG(LOG_INFO, "connection timed out phase=%s", phase_names[p & 3]);
        }
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += SWEEP_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&e->wake, &e->lock, &ts);
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

struct edge *edge_new(const struct edge_limits *limits) {
    struct edge *e = calloc(1, sizeof(*e));

    if (!e)
        return NULL;
    e->lim = *limits;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->wake, NULL);
    if (pthread_create(&e->sweeper, NULL, sweep, e) != 0) {
        pthread_cond_destroy(&e->wake);
        pthread_mutex_destroy(&e->lock);
        free(e);
        return NULL;
    }
    return e;
}

void edge_free(struct edge *e) {
    if (!e)
        return;
    pthread_mutex_lock(&e->lock);
    e->stopping = true;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->lock);
    pthread_join(e->sweeper, NULL);
    /* Connections still listed belong to a server that was never stopped;
     * their records go with the edge. */
    while (e->conns) {
        struct edge_conn *c = e->conns;

        e->conns = c->next;
        free(c);
    }
    for (size_t i = 0; i < BUCKETS; i++) {
        while (e->buckets[i]) {
            struct client *c = e->buckets[i];

            e->buckets[i] = c->next;
            free(c);
        }
    }
    pthread_cond_destroy(&e->wake);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

bool edge_may_accept(struct edge *e, const struct sockaddr *addr, socklen_t len) {
    unsigned char k[16];
    size_t n = addr_key(addr, len, k);
    struct client *c;
    bool ok = true;

    pthread_mutex_lock(&e->lock);
    if (e->lim.max_connections > 0 && e->open >= e->lim.max_connections) {
        atomic_fetch_add_explicit(&e->refused_total, 1, memory_order_relaxed);
        ok = false;
    } else if (n && e->lim.max_per_client > 0 && (c = client_find(e, k, n)) != NULL &&
               c->count >= e->lim.max_per_client) {
        atomic_fetch_add_explicit(&e->refused_client, 1, memory_order_relaxed);
        ok = false;
    }
    pthread_mutex_unlock(&e->lock);
    return ok;
}

struct edge_conn *edge_conn_open(struct edge *e, int fd, const struct sockaddr *addr,
                                 socklen_t len) {
    struct edge_conn *conn = calloc(1, sizeof(*conn));
    unsigned char k[16];
    size_t n = addr_key(addr, len, k);
    struct client *c = NULL;

    if (!conn)
        return NULL;
    conn->fd = fd;
    pthread_mutex_lock(&e->lock);
    if (n) {
        c = client_find(e, k, n);
        if (!c) {
            c = calloc(1, sizeof(*c));
            if (c) {
                size_t b = bucket_of(k, n);

                memcpy(c->addr, k, n);
                c->addr_len = n;
                c->next = e->buckets[b];
                e->buckets[b] = c;
            }
        }
        if (c)
            c->count++;
    }
    conn->client = c;
    conn->next = e->conns;
    if (e->conns)
        e->conns->prev = conn;
    e->conns = conn;
    e->open++;
    pthread_mutex_unlock(&e->lock);
    edge_phase(e, conn, EDGE_IDLE);
    return conn;
}

void edge_conn_close(struct edge *e, struct edge_conn *conn) {
    struct client *c;

    if (!conn)
        return;
    pthread_mutex_lock(&e->lock);
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        e->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    e->open--;
    c = conn->client;
    if (c && --c->count == 0) {
        struct client **pp = &e->buckets[bucket_of(c->addr, c->addr_len)];

        while (*pp && *pp != c)
            pp = &(*pp)->next;
        if (*pp)
            *pp = c->next;
        free(c);
    }
    pthread_mutex_unlock(&e->lock);
    free(conn);
}

void edge_phase(struct edge *e, struct edge_conn *c, enum edge_phase p) {
    int secs = 0;

    if (!c)
        return;
    switch (p) {
    case EDGE_IDLE:
        secs = e->lim.idle_timeout_s;
        break;
    case EDGE_HEADER:
        secs = e->lim.header_timeout_s;
        break;
    case EDGE_BODY:
        secs = e->lim.body_timeout_s;
        break;
    case EDGE_BUSY:
        secs = 0;
        break;
    }
    atomic_store_explicit(&c->phase, (int)p, memory_order_relaxed);
    atomic_store_explicit(&c->deadline_ms, secs > 0 ? now_ms() + (int64_t)secs * 1000 : 0,
                          memory_order_relaxed);
}

void edge_refused(struct edge *e, const char *reason) {
    if (strcmp(reason, "uri") == 0)
        atomic_fetch_add_explicit(&e->refused_uri, 1, memory_order_relaxed);
    else if (strcmp(reason, "query") == 0)
        atomic_fetch_add_explicit(&e->refused_query, 1, memory_order_relaxed);
    else if (strcmp(reason, "headers") == 0)
        atomic_fetch_add_explicit(&e->refused_headers, 1, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&e->refused_framing, 1, memory_order_relaxed);
}

__attribute__((format(printf, 4, 5))) static int append(char **buf, size_t *len, size_t *cap,
                                                        const char *fmt, ...) {
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? *cap - *len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -1;
        if (*buf && (size_t)n < *cap - *len) {
            *len += (size_t)n;
            return 0;
        }
        size_t ncap = (*cap ? *cap : 1024) * 2 + (size_t)n;
        char *nb = realloc(*buf, ncap);

        if (!nb)
            return -1;
        *buf = nb;
        *cap = ncap;
    }
}

int edge_render(struct edge *e, char **buf, size_t *len, size_t *cap) {
    long open;
    int rc = 0;

    pthread_mutex_lock(&e->lock);
    open = e->open;
    pthread_mutex_unlock(&e->lock);
    rc |= append(buf, len, cap,
                 "# HELP fpesa_http_connections Open client connections.\n"
                 "# TYPE fpesa_http_connections gauge\n"
                 "fpesa_http_connections %ld\n"
                 "# HELP fpesa_http_connections_refused_total Connections refused at accept, by "
                 "the limit reached.\n"
                 "# TYPE fpesa_http_connections_refused_total counter\n"
                 "fpesa_http_connections_refused_total{limit=\"total\"} %ld\n"
                 "fpesa_http_connections_refused_total{limit=\"per_client\"} %ld\n",
                 open, atomic_load(&e->refused_total), atomic_load(&e->refused_client));
    rc |= append(buf, len, cap,
                 "# HELP fpesa_http_timeouts_total Connections closed past the deadline of their "
                 "phase.\n"
                 "# TYPE fpesa_http_timeouts_total counter\n");
    for (int p = 0; p < 3; p++)
        rc |= append(buf, len, cap, "fpesa_http_timeouts_total{phase=\"%s\"} %ld\n", phase_names[p],
                     atomic_load(&e->timeouts[p]));
    rc |= append(buf, len, cap,
                 "# HELP fpesa_http_edge_refused_total Requests refused before routing, by what "
                 "was over the limit or malformed.\n"
                 "# TYPE fpesa_http_edge_refused_total counter\n"
                 "fpesa_http_edge_refused_total{reason=\"uri\"} %ld\n"
                 "fpesa_http_edge_refused_total{reason=\"query\"} %ld\n"
                 "fpesa_http_edge_refused_total{reason=\"headers\"} %ld\n"
                 "fpesa_http_edge_refused_total{reason=\"framing\"} %ld\n",
                 atomic_load(&e->refused_uri), atomic_load(&e->refused_query),
                 atomic_load(&e->refused_headers), atomic_load(&e->refused_framing));
    return rc ? -1 : 0;
}
