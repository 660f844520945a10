/* What the pieces of restmapper's bus share; private to mapper/ (the API is
 * bus.h).
 *
 * Everything but the submit queue belongs to the bus thread. bus.c runs the
 * thread (connection, sending, the public API); bus_rpc.c keeps the pending
 * rpc calls (correlation hash and deadline heap); bus_recv.c handles what
 * the broker sends (confirms, answers, events) and expires what waited too
 * long.
 */
#ifndef FPESA_BUS_INT_H
#define FPESA_BUS_INT_H

#include "bus.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amqpc.h"
#include "config.h"

#define CH_PUB 1
#define CH_RPC 2

/* The largest rpc answer passed on; a larger one is read, dropped and
 * answered 502, so that one worker cannot make the mapper allocate without
 * bound. */
#define MAX_ANSWER (16u << 20)
/* Room for the HTTP headers an rpc answer may set (x-fpesa-header-*). */
#define HTTP_HEADERS_MAX 2048
#define HTTP_HEADER_PREFIX "x-fpesa-header-"

enum mbus_job_kind { JOB_PUBLISH, JOB_RPC };

struct mbus_job {
    struct mbus_job *next; /* in the submit queue, then in the in-flight list */
    struct mbus_job *prev;
    struct mbus_job *hnext; /* rpc: chain in the correlation table */
    size_t heap_idx;        /* rpc: position in the deadline heap */
    enum mbus_job_kind kind;
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

struct mbus_jlist {
    struct mbus_job *head;
    struct mbus_job *tail;
    size_t n;
};

/* A delivery being assembled from its method, header and body frames. */
struct mbus_delivery {
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
    struct mbus_jlist submitted;  /* under lock */
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
    unsigned nack_streak; /* publishes refused in a row (basic.nack) */
    double nack_since;    /* when the streak began (monotonic seconds) */
    struct amqpc_conn *conn;
    unsigned url_index; /* which URL of bus.url to try first */
    uint64_t next_tag;
    struct mbus_jlist inflight; /* publishes sent, ordered by tag */
    struct mbus_job **buckets;  /* rpc by correlation number */
    size_t nbuckets;
    size_t nrpc;
    struct mbus_job **heap; /* rpc by deadline */
    size_t heap_len;
    size_t heap_cap;
    uint64_t next_corr;
    char corr_prefix[17];
    char reply_queue[256];
    size_t reply_queue_len;
    struct mbus_delivery dlv;
    long backoff_ms;
    unsigned int seed;
    bool ever_connected;
};

/* bus.c */
void mbus_list_unlink(struct mbus_jlist *l, struct mbus_job *j);
/* Calls the job's callback with an answer and its HTTP headers, and frees it. */
void mbus_finish_answer(struct mbus *bus, struct mbus_job *j, int status, const char *body,
                        size_t body_len, const char *content_type, const char *http_headers);
/* Calls the job's callback and frees it. */
void mbus_finish(struct mbus *bus, struct mbus_job *j, int status, const char *body,
                 size_t body_len, const char *content_type);
void mbus_fail_list(struct mbus *bus, struct mbus_jlist *l, int status);
void mbus_lose_connection(struct mbus *bus, const char *why);

/* bus_rpc.c */
int mbus_rpc_add(struct mbus *bus, struct mbus_job *j);
void mbus_rpc_remove(struct mbus *bus, struct mbus_job *j);
struct mbus_job *mbus_rpc_find(struct mbus *bus, uint64_t corr);

/* bus_recv.c */
int mbus_read_frames(struct mbus *bus);
void mbus_expire_rpcs(struct mbus *bus, double now);
void mbus_expire_confirms(struct mbus *bus, double now);
void mbus_refuse_blocked(struct mbus *bus, struct mbus_jlist *l);

#endif
