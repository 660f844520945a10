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
 */
#include "bus.h"

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

#define CH_PUB 1
#define CH_RPC 2

/* A connection attempt blocks the thread (calls queue meanwhile), so each of
 * its steps is bounded (amqpc.h): a frozen broker costs at most a few
 * seconds. */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* The largest rpc answer passed on; a larger one is read, dropped and
 * answered 502, so that one worker cannot make the mapper allocate without
 * bound. */
#define MAX_ANSWER (16u << 20)
/* Frames handled per loop turn before queued publishes get a turn again. */
#define READ_BATCH 4096
/* Room for the HTTP headers an rpc answer may set (x-fpesa-header-*). */
#define HTTP_HEADERS_MAX 2048
#define HTTP_HEADER_PREFIX "x-fpesa-header-"

enum job_kind { JOB_PUBLISH, JOB_RPC };

struct job {
    struct job *next; /* in the submit queue, then in the in-flight list */
    struct job *prev;
    struct job *hnext; /* rpc: chain in the correlation table */
    size_t heap_idx;   /* rpc: position in the deadline heap */
    enum job_kind kind;
    bool sent; /* handed to the library: a 503 from then on is "outcome unknown" */
    mbus_done_fn done;
    void *ctx;
    uint64_t tag;    /* publish: delivery tag on CH_PUB */
    uint64_t corr;   /* rpc: correlation number */
    double started;  /* monotonic seconds when accepted */
    double deadline; /* rpc: monotonic seconds */
    int64_t timestamp;
    char *exchange;
    char *message_id;
    char *content_type;
    char *body;
    size_t body_len;
    struct amqpc_header *headers; /* n_headers AMQP headers (new, with their strings), or NULL */
    size_t n_headers;
    char data[]; /* the strings above, copied */
};

struct jlist {
    struct job *head;
    struct job *tail;
    size_t n;
};

/* A delivery being assembled from its method, header and body frames. */
struct delivery {
    bool active;
    bool skip;    /* a basic.return or an unexpected content: read and drop */
    bool too_big; /* an answer over MAX_ANSWER: read, drop, answer 502 */
    uint64_t body_size;
    uint64_t got;
    bool have_header;
    char corr[128];
    size_t corr_len;
    bool corr_set;
    char content_type[128];
    bool ct_set;
    int status; /* from an x-fpesa-status header, or 0 */
    char http_headers[HTTP_HEADERS_MAX];
    size_t http_headers_len;
    char *buf;
    size_t cap;
};

struct mbus {
    const struct cfg *cfg;

    /* Shared with the HTTP threads. */
    pthread_mutex_t lock;
    struct jlist submitted;       /* under lock */
    bool stopping;                /* under lock */
    long drain_ms;                /* under lock */
    const struct cfg *reload_cfg; /* under lock: mbus_reload's, until the thread took it */
    bool reload_done;             /* under lock */
    int reload_rc;                /* under lock */
    pthread_cond_t reload_cv;
    int efd;
    pthread_t thread;
    bool started;
    atomic_bool connected;
    atomic_bool blocked;
    _Atomic uint64_t st_confirm_timeouts, st_blocked;
    _Atomic uint64_t st_pub_inflight, st_rpc_inflight, st_reconnects, st_confirms, st_nacks,
        st_rpc_timeouts, st_late;

    /* Bus thread only. */
    struct amqpc_conn *conn;
    unsigned url_index; /* which URL of bus.url to try first */
    uint64_t next_tag;
    struct jlist inflight; /* publishes sent, ordered by tag */
    struct job **buckets;  /* rpc by correlation number */
    size_t nbuckets;
    size_t nrpc;
    struct job **heap; /* rpc by deadline */
    size_t heap_len;
    size_t heap_cap;
    uint64_t next_corr;
    char corr_prefix[17];
    char reply_queue[256];
    size_t reply_queue_len;
    struct delivery dlv;
    long backoff_ms;
    unsigned int seed;
    bool ever_connected;
};

/* ---- time and helpers ---------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void list_push(struct jlist *l, struct job *j) {
    j->next = NULL;
    j->prev = l->tail;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
    l->n++;
}

static void list_unlink(struct jlist *l, struct job *j) {
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

static void job_free(struct job *j) {
    if (j)
        free(j->headers);
    free(j);
}

/* Calls the job's callback with an answer and its HTTP headers, and frees it. */
static void finish_answer(struct mbus *bus, struct job *j, int status, const char *body,
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
static void finish(struct mbus *bus, struct job *j, int status, const char *body, size_t body_len,
                   const char *content_type) {
    finish_answer(bus, j, status, body, body_len, content_type, NULL);
}

/* ---- rpc table: correlation hash + deadline heap ------------------------- */

static int table_grow(struct mbus *bus) {
    size_t n = bus->nbuckets ? bus->nbuckets * 2 : 256;
    struct job **nb = calloc(n, sizeof(*nb));
    if (!nb)
        return -1;
    for (size_t i = 0; i < bus->nbuckets; i++) {
        struct job *j = bus->buckets[i];
        while (j) {
            struct job *nx = j->hnext;
            size_t b = (size_t)(j->corr & (n - 1));
            j->hnext = nb[b];
            nb[b] = j;
            j = nx;
        }
    }
    free(bus->buckets);
    bus->buckets = nb;
    bus->nbuckets = n;
    return 0;
}

static void heap_swap(struct mbus *bus, size_t a, size_t b) {
    struct job *t = bus->heap[a];
    bus->heap[a] = bus->heap[b];
    bus->heap[b] = t;
    bus->heap[a]->heap_idx = a;
    bus->heap[b]->heap_idx = b;
}

static void heap_up(struct mbus *bus, size_t i) {
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (bus->heap[p]->deadline <= bus->heap[i]->deadline)
            break;
        heap_swap(bus, p, i);
        i = p;
    }
}

static void heap_down(struct mbus *bus, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < bus->heap_len && bus->heap[l]->deadline < bus->heap[m]->deadline)
            m = l;
        if (r < bus->heap_len && bus->heap[r]->deadline < bus->heap[m]->deadline)
            m = r;
        if (m == i)
            return;
        heap_swap(bus, i, m);
        i = m;
    }
}

/* Adds j to the hash table and the heap. 0, or -1 when out of memory. */
static int rpc_add(struct mbus *bus, struct job *j) {
    if (bus->nrpc >= bus->nbuckets && table_grow(bus) < 0)
        return -1;
    if (bus->heap_len == bus->heap_cap) {
        size_t n = bus->heap_cap ? bus->heap_cap * 2 : 256;
        struct job **nh = realloc(bus->heap, n * sizeof(*nh));
        if (!nh)
            return -1;
        bus->heap = nh;
        bus->heap_cap = n;
    }
    size_t b = (size_t)(j->corr & (bus->nbuckets - 1));
    j->hnext = bus->buckets[b];
    bus->buckets[b] = j;
    bus->nrpc++;
    j->heap_idx = bus->heap_len;
    bus->heap[bus->heap_len++] = j;
    heap_up(bus, j->heap_idx);
    return 0;
}

static void rpc_remove(struct mbus *bus, struct job *j) {
    size_t b = (size_t)(j->corr & (bus->nbuckets - 1));
    struct job **pp = &bus->buckets[b];
    while (*pp && *pp != j)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = j->hnext;
    bus->nrpc--;

    size_t i = j->heap_idx;
    bus->heap_len--;
    if (i != bus->heap_len) {
        bus->heap[i] = bus->heap[bus->heap_len];
        bus->heap[i]->heap_idx = i;
        heap_down(bus, i);
        heap_up(bus, i);
    }
}

static struct job *rpc_find(struct mbus *bus, uint64_t corr) {
    if (!bus->nbuckets)
        return NULL;
    for (struct job *j = bus->buckets[corr & (bus->nbuckets - 1)]; j; j = j->hnext)
        if (j->corr == corr)
            return j;
    return NULL;
}

/* ---- failing what is pending --------------------------------------------- */

static void fail_list(struct mbus *bus, struct jlist *l, int status) {
    struct job *j;
    while ((j = l->head) != NULL) {
        list_unlink(l, j);
        finish(bus, j, status, NULL, 0, NULL);
    }
}

static void fail_rpcs(struct mbus *bus, int status) {
    while (bus->heap_len > 0) {
        struct job *j = bus->heap[0];
        rpc_remove(bus, j);
        finish(bus, j, status, NULL, 0, NULL);
    }
}

/* Takes everything submitted so far (and clears the eventfd). */
static void take_submitted(struct mbus *bus, struct jlist *out) {
    uint64_t v;
    ssize_t n = read(bus->efd, &v, sizeof(v));
    (void)n; /* EAGAIN just means nobody woke us */
    pthread_mutex_lock(&bus->lock);
    *out = bus->submitted;
    bus->submitted = (struct jlist){0};
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
    bus->dlv = (struct delivery){0};
}

/* The connection is gone: nothing in flight can be confirmed any more. */
static void lose_connection(struct mbus *bus, const char *why) {
    LOG(LOG_WARN, "bus connection lost reason=\"%s\" publishes_failed=%zu rpcs_failed=%zu", why,
        bus->inflight.n, bus->nrpc);
    disconnect(bus, false);
    fail_list(bus, &bus->inflight, 503);
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
    bus->dlv = (struct delivery){0};
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

static int send_job(struct mbus *bus, struct job *j) {
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
    if (rpc_add(bus, j) < 0) {
        finish(bus, j, 503, NULL, 0, NULL);
        return 0;
    }
    j->sent = true;
    return amqpc_publish(bus->conn, CH_RPC, &m);
}

/* Sends every job in l; on a send error the connection is dropped and the
 * unsent rest answered 503. Returns 0, or -1 when the connection was lost. */
static int send_all(struct mbus *bus, struct jlist *l) {
    struct job *j;
    while ((j = l->head) != NULL) {
        list_unlink(l, j);
        if (!bus->conn) {
            finish(bus, j, 503, NULL, 0, NULL);
            continue;
        }
        int st = send_job(bus, j);
        if (st != 0) {
            /* The publish itself may or may not have reached the broker;
             * either way it cannot be confirmed now. */
            if (j->kind == JOB_PUBLISH)
                finish(bus, j, 503, NULL, 0, NULL);
            lose_connection(bus, amqpc_status_text(st));
        }
    }
    return bus->conn ? 0 : -1;
}

/* ---- receiving ----------------------------------------------------------- */

static void confirm(struct mbus *bus, uint64_t tag, bool multiple, bool ok) {
    int status = ok ? 202 : 503;
    struct job *j;
    if (multiple) {
        while ((j = bus->inflight.head) != NULL && j->tag <= tag) {
            list_unlink(&bus->inflight, j);
            atomic_fetch_add_explicit(ok ? &bus->st_confirms : &bus->st_nacks, 1,
                                      memory_order_relaxed);
            finish(bus, j, status, NULL, 0, NULL);
        }
        return;
    }
    for (j = bus->inflight.head; j && j->tag < tag; j = j->next)
        ;
    if (j && j->tag == tag) {
        list_unlink(&bus->inflight, j);
        atomic_fetch_add_explicit(ok ? &bus->st_confirms : &bus->st_nacks, 1, memory_order_relaxed);
        finish(bus, j, status, NULL, 0, NULL);
    }
}

/* Parses "<prefix>-<16 hex>" of this instance; false for anything else. */
static bool parse_corr(const struct mbus *bus, const char *s, size_t len, uint64_t *out) {
    size_t pl = strlen(bus->corr_prefix);
    if (len != pl + 1 + 16 || memcmp(s, bus->corr_prefix, pl) != 0 || s[pl] != '-')
        return false;
    uint64_t v = 0;
    for (size_t i = pl + 1; i < len; i++) {
        char ch = s[i];
        int d;
        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if (ch >= 'a' && ch <= 'f')
            d = ch - 'a' + 10;
        else
            return false;
        v = (v << 4) | (uint64_t)d;
    }
    *out = v;
    return true;
}

int mbus_answer_status(const char *body, size_t len, const char *content_type) {
    if (!strstr(content_type, "json"))
        return 200;
    /* Checked as text, never parsed into doubles: whatever valid JSON the
     * worker answers (numbers of any size) is relayed byte for byte. */
    int code = 0;
    int rc = jtext_error_code(body, len, &code, NULL);
    if (rc < 0)
        return 502;
    return rc == 1 && code >= 400 && code <= 599 ? code : 200;
}

static void delivery_complete(struct mbus *bus) {
    struct delivery *d = &bus->dlv;
    bool skip = d->skip;
    d->active = false;
    if (skip && !d->too_big)
        return;
    uint64_t corr;
    struct job *j = NULL;
    if (d->corr_set && parse_corr(bus, d->corr, d->corr_len, &corr))
        j = rpc_find(bus, corr);
    if (!j) {
        atomic_fetch_add_explicit(&bus->st_late, 1, memory_order_relaxed);
        LOG(LOG_DEBUG, "bus dropped a reply nobody waits for correlation_id=%.*s", (int)d->corr_len,
            d->corr);
        return;
    }
    rpc_remove(bus, j);
    if (d->too_big) {
        static const char big[] =
            "{\"error\":{\"code\":502,\"description\":\"the worker's answer is too large\"}}";
        LOG(LOG_WARN, "bus rpc answer too large exchange=%s bytes=%" PRIu64, j->exchange,
            d->body_size);
        finish(bus, j, 502, big, sizeof(big) - 1, "application/json");
        return;
    }
    const char *ct = d->ct_set ? d->content_type : "application/json";
    size_t len = (size_t)d->body_size;
    const char *body = len ? d->buf : "";
    int status = mbus_answer_status(body, len, ct);
    if (d->status && status != 502)
        status = d->status;
    if (status == 502) {
        static const char bad[] =
            "{\"error\":{\"code\":502,\"description\":\"the worker's answer is not valid JSON\"}}";
        LOG(LOG_WARN, "bus rpc answer is not valid JSON exchange=%s", j->exchange);
        finish(bus, j, 502, bad, sizeof(bad) - 1, "application/json");
        return;
    }
    finish_answer(bus, j, status, body, len, ct, d->http_headers_len ? d->http_headers : NULL);
}

static void copy_short(char *dst, size_t cap, struct amqpc_str b, size_t *out_len) {
    size_t n = b.len < cap - 1 ? b.len : cap - 1;
    memcpy(dst, b.p, n);
    dst[n] = '\0';
    if (out_len)
        *out_len = n;
}

/* An integer header value of any AMQP integer kind, or a string of digits. */
static bool field_int(const struct amqpc_value *v, long long *out) {
    switch (v->kind) {
    case AMQPC_V_INT:
        *out = v->v.i;
        return true;
    case AMQPC_V_UINT:
        *out = v->v.u > 1000000 ? 1000000 : (long long)v->v.u;
        return true;
    case AMQPC_V_STRING:
    case AMQPC_V_BYTES: {
        char buf[16];
        size_t n = v->v.s.len;

        if (n == 0 || n >= sizeof(buf))
            return false;
        memcpy(buf, v->v.s.p, n);
        buf[n] = '\0';
        *out = 0;
        for (size_t i = 0; i < n; i++) {
            if (buf[i] < '0' || buf[i] > '9')
                return false;
            *out = *out * 10 + (buf[i] - '0');
        }
        return true;
    }
    default:
        return false;
    }
}

static bool header_text_ok(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return false;
    return true;
}

/* Takes x-fpesa-status and x-fpesa-header-* from an answer's headers. */
static void read_answer_headers(struct delivery *d, const struct amqpc_table *t) {
    size_t plen = strlen(HTTP_HEADER_PREFIX);

    for (size_t i = 0; i < t->n; i++) {
        struct amqpc_str key;
        struct amqpc_value val;
        long long st;

        amqpc_table_get(t, i, &key, &val);
        const char *k = key.p;
        size_t kl = key.len;
        if (kl == strlen("x-fpesa-status") && strncasecmp(k, "x-fpesa-status", kl) == 0) {
            if (field_int(&val, &st) && st >= 100 && st <= 599)
                d->status = (int)st;
            continue;
        }
        if (kl <= plen || strncasecmp(k, HTTP_HEADER_PREFIX, plen) != 0)
            continue;
        if (val.kind != AMQPC_V_STRING && val.kind != AMQPC_V_BYTES)
            continue;
        const char *v = val.v.s.p;
        size_t vl = val.v.s.len;
        if (!header_text_ok(k, kl) || !header_text_ok(v, vl) || memchr(k, ':', kl) ||
            d->http_headers_len + (kl - plen) + 2 + vl + 2 > sizeof(d->http_headers))
            continue;
        char *o = d->http_headers + d->http_headers_len;
        memcpy(o, k + plen, kl - plen);
        o += kl - plen;
        memcpy(o, ": ", 2);
        o += 2;
        memcpy(o, v, vl);
        o += vl;
        *o++ = '\n';
        *o = '\0';
        d->http_headers_len = (size_t)(o - d->http_headers);
    }
}

/* Handles one event. Returns 0, or -1 when the connection must be dropped
 * (why says what happened). */
static int handle_event(struct mbus *bus, const struct amqpc_event *ev, char *why, size_t why_len) {
    struct delivery *d = &bus->dlv;

    switch (ev->kind) {
    case AMQPC_EV_HEADER: {
        if (!d->active)
            return 0;
        d->have_header = true;
        d->body_size = ev->body_size;
        const struct amqpc_props *p = &ev->props;
        if (!d->skip) {
            if (p->correlation_id.p) {
                copy_short(d->corr, sizeof(d->corr), p->correlation_id, &d->corr_len);
                d->corr_set = true;
            }
            if (p->content_type.p && p->content_type.len > 0) {
                copy_short(d->content_type, sizeof(d->content_type), p->content_type, NULL);
                d->ct_set = true;
            }
            if (p->headers.n)
                read_answer_headers(d, &p->headers);
        }
        if (!d->skip && d->body_size > MAX_ANSWER) {
            d->skip = true;
            d->too_big = true;
        }
        if (!d->skip && d->body_size + 1 > d->cap) {
            char *nb = realloc(d->buf, (size_t)d->body_size + 1);
            if (!nb) {
                d->skip = true;
            } else {
                d->buf = nb;
                d->cap = (size_t)d->body_size + 1;
            }
        }
        if (d->body_size == 0)
            delivery_complete(bus);
        return 0;
    }
    case AMQPC_EV_BODY: {
        if (!d->active || !d->have_header)
            return 0;
        struct amqpc_str b = ev->body;
        if (d->got + b.len > d->body_size) {
            snprintf(why, why_len, "body frame larger than announced");
            return -1;
        }
        if (!d->skip)
            memcpy(d->buf + d->got, b.p, b.len);
        d->got += b.len;
        if (d->got == d->body_size) {
            if (!d->skip)
                d->buf[d->got] = '\0';
            delivery_complete(bus);
        }
        return 0;
    }
    case AMQPC_EV_ACK:
    case AMQPC_EV_NACK:
        if (ev->channel == CH_PUB)
            confirm(bus, ev->tag, ev->multiple, ev->kind == AMQPC_EV_ACK);
        return 0;
    case AMQPC_EV_DELIVER:
    case AMQPC_EV_RETURN: {
        char *buf = d->buf;
        size_t cap = d->cap;
        *d = (struct delivery){0};
        d->buf = buf;
        d->cap = cap;
        d->active = true;
        d->skip = ev->kind == AMQPC_EV_RETURN || ev->channel != CH_RPC;
        return 0;
    }
    case AMQPC_EV_CANCEL:
        snprintf(why, why_len, "the broker cancelled the reply consumer");
        return -1;
    case AMQPC_EV_CLOSED:
    case AMQPC_EV_ERROR:
        snprintf(why, why_len, "%s", ev->text);
        return -1;
    case AMQPC_EV_BLOCKED:
        atomic_store(&bus->blocked, true);
        LOG(LOG_WARN, "bus connection blocked by the broker reason=\"%s\"", ev->text);
        return 0;
    case AMQPC_EV_UNBLOCKED:
        atomic_store(&bus->blocked, false);
        LOG(LOG_INFO, "bus connection unblocked");
        return 0;
    default:
        return 0;
    }
}

/* Reads every frame available now. Returns 0, or -1 when the connection was
 * lost. */
static int read_frames(struct mbus *bus) {
    char why[256];
    struct amqpc_event ev;

    for (int i = 0; i < READ_BATCH; i++) {
        /* One microsecond, not zero: a zero timeout would hide a missed
         * heartbeat from the library's own check. */
        amqpc_next_event(bus->conn, 1, &ev);
        if (ev.kind == AMQPC_EV_TIMEOUT)
            break;
        if (handle_event(bus, &ev, why, sizeof(why)) < 0) {
            lose_connection(bus, why);
            return -1;
        }
    }
    amqpc_release_buffers(bus->conn);
    return 0;
}

static void expire_rpcs(struct mbus *bus, double now) {
    while (bus->heap_len > 0 && bus->heap[0]->deadline <= now) {
        struct job *j = bus->heap[0];
        rpc_remove(bus, j);
        atomic_fetch_add_explicit(&bus->st_rpc_timeouts, 1, memory_order_relaxed);
        finish(bus, j, 504, NULL, 0, NULL);
    }
}

/* Publishes whose confirm did not come within bus.confirm_timeout are
 * answered 503 "outcome unknown" (the broker may still take them); a late
 * confirm then finds nothing. The in-flight list is in sending order, so the
 * oldest is first. */
static void expire_confirms(struct mbus *bus, double now) {
    double limit = (double)bus->cfg->bus.confirm_timeout_ms / 1000.0;
    struct job *j;

    if (limit <= 0)
        return;
    while ((j = bus->inflight.head) != NULL && j->started + limit <= now) {
        list_unlink(&bus->inflight, j);
        atomic_fetch_add_explicit(&bus->st_confirm_timeouts, 1, memory_order_relaxed);
        finish(bus, j, 503, NULL, 0, NULL);
    }
}

/* While the broker blocks publishers, nothing is sent: every call is
 * answered 503 "not accepted" at once, instead of waiting on a connection
 * the broker stopped reading. */
static void refuse_blocked(struct mbus *bus, struct jlist *l) {
    atomic_fetch_add_explicit(&bus->st_blocked, l->n, memory_order_relaxed);
    fail_list(bus, l, 503);
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
        lose_connection(bus, "the new topology could not be declared");
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
            struct jlist l;
            take_submitted(bus, &l);
            fail_list(bus, &l, 503);
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

        struct jlist l;
        take_submitted(bus, &l);
        if (atomic_load(&bus->blocked))
            refuse_blocked(bus, &l);
        else if (send_all(bus, &l) < 0)
            continue;
        if (read_frames(bus) < 0)
            continue;
        now = now_s();
        expire_rpcs(bus, now);
        expire_confirms(bus, now);

        if (draining) {
            if ((bus->inflight.n == 0 && bus->nrpc == 0) || now >= drain_deadline) {
                LOG(LOG_INFO, "bus stopping publishes_unconfirmed=%zu rpcs_unanswered=%zu",
                    bus->inflight.n, bus->nrpc);
                fail_list(bus, &bus->inflight, 503);
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
    struct jlist l;
    take_submitted(bus, &l);
    fail_list(bus, &l, 503);
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
static int copy_headers(struct job *j, const struct mbus_msg *msg) {
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

static struct job *job_new(const struct mbus_msg *msg, enum job_kind kind, mbus_done_fn done,
                           void *ctx) {
    const char *ct = msg->content_type ? msg->content_type : "application/json";
    const char *mid = msg->message_id ? msg->message_id : "";
    size_t le = strlen(msg->exchange) + 1, lm = strlen(mid) + 1, lc = strlen(ct) + 1;
    struct job *j = malloc(sizeof(*j) + le + lm + lc + msg->body_len + 1);
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

static int submit(struct mbus *bus, struct job *j) {
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
    struct job *j = job_new(msg, JOB_PUBLISH, done, ctx);
    if (!j)
        return -1;
    return submit(bus, j);
}

int mbus_rpc(struct mbus *bus, const struct mbus_msg *msg, long timeout_ms, mbus_done_fn done,
             void *ctx) {
    struct job *j = job_new(msg, JOB_RPC, done, ctx);
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
