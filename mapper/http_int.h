/* What the pieces of restmapper's HTTP server share; private to mapper/
 * (the API is http.h).
 *
 * http.c is the libmicrohttpd adapter: it creates a struct http_request when
 * a request line arrives and frees it in its completion callback. In
 * between, request.c checks the headers and gathers the body, upload.c reads
 * a multipart form, envelope.c turns the request into a bus message,
 * dispatch.c sends it and turns the bus's outcome into the answer, and
 * http_reply.c writes every answer.
 */
#ifndef FPESA_HTTP_INT_H
#define FPESA_HTTP_INT_H

#include "http.h"

#include "bus.h"
#include "config.h"
#include "edge.h"
#include "jsonschema.h"
#include "multipart.h"
#include "ratelimit.h"
#include "router.h"

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <time.h>

#define IDEMPOTENCY_KEY_MAX 200
/* Memory libmicrohttpd gives each connection for the request line, headers
 * and read buffer. It zeroes the whole of it between two requests of a
 * keep-alive connection, so its default (32 KiB) cost a 32 KiB memset per
 * request; 16 KiB still holds headers of 12 KiB and more. */
#define CONNECTION_MEMORY 16384
/* Most bytes of a refused body read and dropped before the connection is
 * closed instead of answered. */
#define DISCARD_MAX (1024 * 1024)

/* Everything a request needs from the configuration, built once per load
 * of the file. A request holds the snapshot that was current when its
 * request line arrived until it completes, so a reload (http_reload) never
 * changes the route, schemas or limits under a request in flight; the last
 * request of an old snapshot frees it. */
struct http_snap {
    _Atomic long refs;
    struct cfg *cfg; /* owned when owns_cfg (a reload's), else borrowed (the start's) */
    bool owns_cfg;
    struct router *router;
    struct metrics *metrics;
    const char **route_methods;
    const char **route_paths;
    char *openapi;      /* the document, rendered once */
    char *cors_headers; /* Access-Control-Allow-Headers, built once */
    size_t openapi_len;
    char *asyncapi; /* the AsyncAPI document, rendered once */
    size_t asyncapi_len;
    struct auth *auth;    /* NULL: no auth section, every route anonymous */
    struct ratelimit *rl; /* token buckets of endpoints[].rate_limit */
};

struct http_server {
    const struct cfg *cfg; /* the start's: the listening address and connection limits */
    struct mbus *bus;
    pthread_mutex_t snap_lock; /* guards the pointer snap, not what it points to */
    struct http_snap *snap;    /* the current one; a reference is held here */
    struct MHD_Daemon *daemon;
    struct edge *edge; /* connection limits and deadlines */
    struct sockaddr_storage addr;
    int listen_fd;        /* bound by http_bind, listening from http_start; -1 before */
    atomic_bool draining; /* http_quiesce was called: every answer closes its connection */
    _Atomic long in_flight;
    _Atomic long waiting;
};

struct http_rq_error {
    char desc[512];
    char path[256];
    char keyword[32];
    bool schema;
    const char *outcome; /* a 503's "outcome": "not_accepted" or "unknown"; or NULL */
    int retry_after;     /* seconds for Retry-After, or 0 */
};

/* Everything about one request, created by the URI callback when the request
 * line arrives and freed once, in on_completed. */
struct http_request {
    struct http_server *srv;
    struct http_snap *snap; /* held from the request line to on_completed */
    struct MHD_Connection *conn;
    struct edge_conn *ec; /* the connection's deadlines (borrowed), or NULL */
    bool close_now;       /* refused on framing: answer at once, then close */
    char *principal;      /* x-fpesa-principal (JSON), or NULL without auth */
    char challenge[200];  /* WWW-Authenticate of a 401/403, or "" */
    char who[160];        /* "kind:name" of an authenticated principal, or "" */
    struct rl_verdict rl; /* the route's rate limit, when it has one */
    char *uri;            /* raw request target as received */
    const char *query;    /* into uri, after '?'; NULL without one */
    size_t path_len;      /* length of the path part of uri */
    struct timespec start;
    const char *method; /* borrowed from MHD, valid for the request */
    bool started;       /* the access handler has seen this request */
    bool dispatched;    /* handed to the bus, connection suspended */
    bool preflight;     /* an OPTIONS request for a known path */
    const struct route *route;
    const char *allow; /* borrowed from the router */
    json_t *params;
    const char *cors_origin; /* value for Access-Control-Allow-Origin, or NULL */
    bool cors_vary;

    /* The body, allocated when its first byte arrives, sized by
     * Content-Length when given; always one byte more for a NUL. */
    char *body;
    size_t body_len, body_cap, max_body;
    size_t expect_len;       /* Content-Length, or 0 when not given */
    bool chunked;            /* the body comes in chunks */
    size_t discarded;        /* bytes of body read and dropped after a refusal */
    enum cfg_body_kind kind; /* how the body is read, from its content type */
    const char *media_type;  /* the endpoint's content_types entry it matched (borrowed) */

    /* An answer decided before the bus: status and, allocated only then, the
     * error's description. */
    int status;
    struct http_rq_error *err;

    char id[IDEMPOTENCY_KEY_MAX + 1];

    /* The bus's outcome, written on the bus thread before it resumes us. */
    _Atomic bool done;
    int result_status;
    int result_outcome;  /* enum mbus_outcome of a 503 */
    bool result_blocked; /* the broker blocks publishers */
    char *result_body;
    size_t result_len;
    char *result_ctype;
    char *result_headers; /* "Name: value\n" lines from the answer, or NULL */

    int answered; /* status actually sent, for the log and metrics */

    /* A keyed request (idempotency configured): its message, kept while the
     * claim of its key is out, and whether the outcome awaited is the
     * claim's. */
    struct http_pending *pending;
    bool claiming;
};

/* What goes on the bus for one request: a JSON envelope, or the bytes of a
 * file (into the request's body) with the envelope's other parts in AMQP
 * headers. */
struct http_outgoing {
    char *envelope; /* JSON text (new), or NULL for bytes */
    const char *bytes;
    size_t len;
    const char *ctype;
    char *texts[3]; /* header values (new) */
    struct mbus_header hdrs[6];
    size_t n_hdrs;
};

/* The file of a multipart body, and its fields. */
struct http_form {
    struct http_request *rq;
    json_t *fields;
    const struct cfg_file *file_cfg;
    const char *file;
    size_t file_len;
    char field[MPART_NAME_MAX];
    char filename[MPART_NAME_MAX];
    bool has_filename;
    char ctype[MPART_TYPE_MAX];
    bool have_file;
};

/* A keyed request's message, kept while its key is claimed. */
struct http_pending {
    struct http_outgoing o;
    struct http_form fm;
};

/* ---- http_reply.c: answers ---- */

/* Decides the answer: status and a description, kept valid UTF-8 whatever
 * the arguments hold (the error body is JSON); the first problem found is the
 * one answered. */
void http_fail(struct http_request *rq, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *http_shown(char *buf, size_t cap, const char *s);
enum MHD_Result http_queue(struct http_request *rq, int status, struct MHD_Response *resp);
enum MHD_Result http_reply_builtin(struct http_request *rq);
enum MHD_Result http_reply_error(struct http_request *rq);
enum MHD_Result http_reply_json(struct http_request *rq, int status, json_t *value);
enum MHD_Result http_reply_preflight(struct http_request *rq);
void http_add_common_headers(struct http_request *rq, struct MHD_Response *resp, const char *ctype);
void http_cors_decide(struct http_request *rq);
void http_fail_schema(struct http_request *rq, int status, const char *where,
                      const struct jschema_error *e);

/* ---- request.c: checks once the headers are in; the body ---- */

bool http_take_upload(struct http_request *rq, const char *data, size_t size);
enum cfg_body_kind http_kind_at(const struct cfg_endpoint *ep, int i);
void http_begin(struct http_request *rq, const char *method);

/* ---- upload.c: multipart forms ---- */

int http_file_headers(struct http_request *rq, struct http_outgoing *o, json_t *args, json_t *data,
                      const struct http_form *fm);
int http_read_multipart(struct http_request *rq, struct http_form *fm, json_t **data);

/* ---- envelope.c: the message a request becomes ---- */

int http_build_envelope(struct http_request *rq, struct http_outgoing *o, struct http_form *fm);
void http_message_of(const struct http_request *rq, const struct http_outgoing *o,
                     struct mbus_msg *msg);
void http_outgoing_fini(struct http_outgoing *o);

/* ---- dispatch.c: over the bus and back ---- */

bool http_idempotency_key_is_valid(const char *k);
enum MHD_Result http_claimed(struct http_request *rq);
enum MHD_Result http_dispatch(struct http_request *rq);
enum MHD_Result http_reply_result(struct http_request *rq);

#endif
