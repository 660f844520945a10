#include "metrics.h"

#include "bus.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds in seconds; the last bucket is +Inf. */
static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBOUNDS (sizeof(bounds) / sizeof(bounds[0]))

struct histogram {
    _Atomic uint64_t buckets[NBOUNDS + 1]; /* not cumulative; summed when rendered */
    _Atomic uint64_t sum_ns;
};

struct route_metrics {
    _Atomic uint64_t by_class[5]; /* 1xx .. 5xx */
    struct histogram latency;
};

struct metrics {
    size_t n_routes;
    const char *const *methods;
    const char *const *paths;
    struct route_metrics *routes; /* n_routes + 1 */
    struct histogram confirm;
    struct histogram rpc;
    _Atomic int64_t in_flight;
};

struct metrics *metrics_new(size_t n_routes, const char *const *methods, const char *const *paths) {
    struct metrics *m = calloc(1, sizeof(*m));

    if (!m)
        return NULL;
    m->routes = calloc(n_routes + 1, sizeof(*m->routes));
    if (!m->routes) {
        free(m);
        return NULL;
    }
    m->n_routes = n_routes;
    m->methods = methods;
    m->paths = paths;
    return m;
}

void metrics_free(struct metrics *m) {
    if (!m)
        return;
    free(m->routes);
    free(m);
}

static void observe(struct histogram *h, double seconds) {
    size_t i = 0;

    if (seconds < 0)
        seconds = 0;
    while (i < NBOUNDS && seconds > bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, (uint64_t)(seconds * 1e9), memory_order_relaxed);
}

void metrics_request(struct metrics *m, size_t route, int status, double seconds) {
    struct route_metrics *r;
    int cls = status / 100;

    if (!m)
        return;
    r = &m->routes[route < m->n_routes ? route : m->n_routes];
    if (cls < 1 || cls > 5)
        cls = 5;
    atomic_fetch_add_explicit(&r->by_class[cls - 1], 1, memory_order_relaxed);
    observe(&r->latency, seconds);
}

void metrics_confirm(struct metrics *m, double seconds) {
    if (m)
        observe(&m->confirm, seconds);
}

void metrics_rpc(struct metrics *m, double seconds) {
    if (m)
        observe(&m->rpc, seconds);
}

void metrics_in_flight(struct metrics *m, int delta) {
    if (m)
        atomic_fetch_add_explicit(&m->in_flight, delta, memory_order_relaxed);
}

/* A growing text buffer; once an allocation fails every later append is a
 * no-op and the render returns NULL. */
struct buf {
    char *s;
    size_t len, cap;
    bool failed;
};

__attribute__((format(printf, 2, 3))) static void put(struct buf *b, const char *fmt, ...) {
    va_list ap;
    int w;

    if (b->failed)
        return;
    for (;;) {
        va_start(ap, fmt);
        w = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (w < 0) {
            b->failed = true;
            return;
        }
        if ((size_t)w < b->cap - b->len) {
            b->len += (size_t)w;
            return;
        }
        size_t ncap = (b->cap + (size_t)w + 1) * 2;
        char *ns = realloc(b->s, ncap);
        if (!ns) {
            b->failed = true;
            return;
        }
        b->s = ns;
        b->cap = ncap;
    }
}

/* Label values escape backslash, double quote and newline. */
static void label_value(char *dst, size_t len, const char *s) {
    size_t o = 0;

    for (; s && *s && o + 3 < len; s++) {
        if (*s == '\\' || *s == '"') {
            dst[o++] = '\\';
            dst[o++] = *s;
        } else if (*s == '\n') {
            dst[o++] = '\\';
            dst[o++] = 'n';
        } else {
            dst[o++] = *s;
        }
    }
    dst[o] = '\0';
}

static void put_histogram(struct buf *b, const char *name, const char *labels,
                          const struct histogram *h) {
    uint64_t cum = 0;
    const char *sep = labels[0] ? "," : "";

    for (size_t i = 0; i <= NBOUNDS; i++) {
        cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i < NBOUNDS)
            put(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bounds[i],
                (unsigned long long)cum);
        else
            put(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
    }
    put(b, "%s_sum%s%s%s %.9f\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
        (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9);
    put(b, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
        (unsigned long long)cum);
}

char *metrics_render(struct metrics *m, const struct mbus_stats *bus, bool connected, size_t *len) {
    struct buf b = {0};
    char labels[600], method[32], path[512];

    b.cap = 16384;
    b.s = malloc(b.cap);
    if (!b.s)
        return NULL;

    put(&b, "# HELP fpesa_http_requests_total HTTP requests answered, by route and status "
            "class.\n# TYPE fpesa_http_requests_total counter\n");
    for (size_t r = 0; r <= m->n_routes; r++) {
        label_value(method, sizeof(method), r < m->n_routes ? m->methods[r] : "");
        label_value(path, sizeof(path), r < m->n_routes ? m->paths[r] : "(unmatched)");
        for (int c = 0; c < 5; c++) {
            put(&b, "fpesa_http_requests_total{method=\"%s\",route=\"%s\",status=\"%dxx\"} %llu\n",
                method, path, c + 1,
                (unsigned long long)atomic_load_explicit(&m->routes[r].by_class[c],
                                                         memory_order_relaxed));
        }
    }
    put(&b, "# HELP fpesa_http_request_duration_seconds Time from request line to answer, by "
            "route.\n# TYPE fpesa_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r <= m->n_routes; r++) {
        label_value(method, sizeof(method), r < m->n_routes ? m->methods[r] : "");
        label_value(path, sizeof(path), r < m->n_routes ? m->paths[r] : "(unmatched)");
        snprintf(labels, sizeof(labels), "method=\"%s\",route=\"%s\"", method, path);
        put_histogram(&b, "fpesa_http_request_duration_seconds", labels, &m->routes[r].latency);
    }
    put(&b, "# HELP fpesa_bus_confirm_seconds Publish to broker confirm.\n"
            "# TYPE fpesa_bus_confirm_seconds histogram\n");
    put_histogram(&b, "fpesa_bus_confirm_seconds", "", &m->confirm);
    put(&b, "# HELP fpesa_bus_rpc_seconds Rpc request to answer.\n"
            "# TYPE fpesa_bus_rpc_seconds histogram\n");
    put_histogram(&b, "fpesa_bus_rpc_seconds", "", &m->rpc);
    put(&b,
        "# HELP fpesa_http_requests_in_flight Requests received and not yet answered.\n"
        "# TYPE fpesa_http_requests_in_flight gauge\nfpesa_http_requests_in_flight %lld\n",
        (long long)atomic_load_explicit(&m->in_flight, memory_order_relaxed));
    put(&b,
        "# HELP fpesa_bus_connected 1 while the broker connection is up.\n"
        "# TYPE fpesa_bus_connected gauge\nfpesa_bus_connected %d\n",
        connected ? 1 : 0);
    if (bus) {
        put(&b,
            "# HELP fpesa_bus_publishes_in_flight Publishes waiting for the broker's confirm.\n"
            "# TYPE fpesa_bus_publishes_in_flight gauge\nfpesa_bus_publishes_in_flight %llu\n"
            "# HELP fpesa_bus_rpcs_in_flight Rpc requests waiting for their answer.\n"
            "# TYPE fpesa_bus_rpcs_in_flight gauge\nfpesa_bus_rpcs_in_flight %llu\n"
            "# HELP fpesa_bus_reconnects_total Broker connections re-established.\n"
            "# TYPE fpesa_bus_reconnects_total counter\nfpesa_bus_reconnects_total %llu\n"
            "# HELP fpesa_bus_confirms_total Publishes the broker confirmed (ack).\n"
            "# TYPE fpesa_bus_confirms_total counter\nfpesa_bus_confirms_total %llu\n"
            "# HELP fpesa_bus_nacks_total Publishes the broker refused (nack).\n"
            "# TYPE fpesa_bus_nacks_total counter\nfpesa_bus_nacks_total %llu\n"
            "# HELP fpesa_bus_rpc_timeouts_total Rpc requests answered 504 for want of a reply.\n"
            "# TYPE fpesa_bus_rpc_timeouts_total counter\nfpesa_bus_rpc_timeouts_total %llu\n"
            "# HELP fpesa_bus_late_replies_total Rpc replies that came after their deadline.\n"
            "# TYPE fpesa_bus_late_replies_total counter\nfpesa_bus_late_replies_total %llu\n"
            "# HELP fpesa_bus_confirm_timeouts_total Publishes answered 503 outcome unknown at the "
            "confirm deadline.\n"
            "# TYPE fpesa_bus_confirm_timeouts_total counter\n"
            "fpesa_bus_confirm_timeouts_total %llu\n"
            "# HELP fpesa_bus_blocked_refusals_total Calls refused while the broker blocked "
            "publishers.\n"
            "# TYPE fpesa_bus_blocked_refusals_total counter\n"
            "fpesa_bus_blocked_refusals_total %llu\n",
            (unsigned long long)bus->publishes_in_flight, (unsigned long long)bus->rpcs_in_flight,
            (unsigned long long)bus->reconnects, (unsigned long long)bus->confirms,
            (unsigned long long)bus->nacks, (unsigned long long)bus->rpc_timeouts,
            (unsigned long long)bus->late_replies, (unsigned long long)bus->confirm_timeouts,
            (unsigned long long)bus->blocked_refusals);
    }
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    *len = b.len;
    return b.s;
}
