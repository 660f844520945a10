#include "http.h"

#include "asyncapi.h"
#include "auth.h"
#include "idem.h"

#include "bus.h"
#include "config.h"
#include "edge.h"
#include "jsonschema.h"
#include "jsontext.h"
#include "log.h"
#include "magic.h"
#include "metrics.h"
#include "multipart.h"
#include "openapi.h"
#include "query.h"
#include "ratelimit.h"
#include "router.h"
#include "uuid.h"

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MAX_BODY (64 * 1024)
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
struct snap {
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
    struct snap *snap;         /* the current one; a reference is held here */
    struct MHD_Daemon *daemon;
    struct edge *edge; /* connection limits and deadlines */
    struct sockaddr_storage addr;
    int listen_fd;        /* bound by http_bind, listening from http_start; -1 before */
    atomic_bool draining; /* http_quiesce was called: every answer closes its connection */
    _Atomic long in_flight;
    _Atomic long waiting;
};

static struct snap *snap_get(struct http_server *srv);
static void snap_put(struct snap *sn);

struct rq_error {
    char desc[512];
    char path[256];
    char keyword[32];
    bool schema;
    const char *outcome; /* a 503's "outcome": "not_accepted" or "unknown"; or NULL */
    int retry_after;     /* seconds for Retry-After, or 0 */
};

/* Everything about one request, created by the URI callback when the request
 * line arrives and freed once, in on_completed. */
struct request {
    struct http_server *srv;
    struct snap *snap; /* held from the request line to on_completed */
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
    struct rq_error *err;

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
    struct pending *pending;
    bool claiming;
};

static double elapsed_s(const struct timespec *since) {
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

/* ---- answers -------------------------------------------------------------- */

/* Retry-After of a 503, in seconds. */
#define RETRY_AFTER_SECONDS "1"

static void add_common_headers(struct request *rq, struct MHD_Response *resp, const char *ctype) {
    /* While draining, a proxy must not send more on this connection: it
     * would race with the close at the end of the drain. */
    if (atomic_load_explicit(&rq->srv->draining, memory_order_relaxed))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (rq->rl.applies) {
        char v[96];

        snprintf(v, sizeof(v), "%ld;w=%ld", rq->rl.limit, rq->rl.window_s);
        MHD_add_response_header(resp, "RateLimit-Policy", v);
        snprintf(v, sizeof(v), "limit=%ld, remaining=%ld, reset=%ld", rq->rl.limit,
                 rq->rl.remaining, rq->rl.reset_s);
        MHD_add_response_header(resp, "RateLimit", v);
        if (rq->rl.limited) {
            snprintf(v, sizeof(v), "%ld", rq->rl.retry_after);
            MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
        }
    }
    if (rq->cors_origin) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", rq->cors_origin);
        if (rq->cors_vary)
            MHD_add_response_header(resp, "Vary", "Origin");
    }
}

static enum MHD_Result queue(struct request *rq, int status, struct MHD_Response *resp) {
    enum MHD_Result ret;

    if (!resp)
        return MHD_NO;
    if (status < 100 || status > 999)
        status = 500;
    /* Every 503 says when to come back (a worker's answer may set its own):
     * the broker is usually back, or another instance up, within a second. */
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE &&
        !MHD_get_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, RETRY_AFTER_SECONDS);
    ret = MHD_queue_response(rq->conn, (unsigned int)status, resp);
    MHD_destroy_response(resp);
    if (ret == MHD_YES)
        rq->answered = status;
    return ret;
}

/* Sends body (borrowed; copied) with status and content type. */
static enum MHD_Result reply(struct request *rq, int status, const char *ctype, const char *body,
                             size_t len) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);

    if (!resp)
        return MHD_NO;
    add_common_headers(rq, resp, ctype);
    return queue(rq, status, resp);
}

/* Sends a JSON value (taken). */
static enum MHD_Result reply_json(struct request *rq, int status, json_t *value) {
    char *text = value ? json_dumps(value, JSON_COMPACT) : NULL;
    struct MHD_Response *resp;

    json_decref(value);
    if (!text)
        return MHD_NO;
    resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    add_common_headers(rq, resp, "application/json");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED && rq->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rq->allow);
    if (rq->err && rq->err->retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%d", rq->err->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if ((status == MHD_HTTP_UNAUTHORIZED || status == MHD_HTTP_FORBIDDEN) && rq->challenge[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, rq->challenge);
    return queue(rq, status, resp);
}

/* Sends the error decided earlier: {"error": {"code", "description", ...}}. */
static enum MHD_Result reply_error(struct request *rq) {
    json_t *err = json_pack("{s:i, s:s}", "code", rq->status, "description",
                            rq->err ? rq->err->desc : "the request was refused");
    json_t *doc;

    if (err && rq->err && rq->err->schema) {
        json_object_set_new(err, "path", json_string(rq->err->path));
        json_object_set_new(err, "keyword", json_string(rq->err->keyword));
    }
    if (err && rq->err && rq->err->outcome) {
        json_object_set_new(err, "outcome", json_string(rq->err->outcome));
        if (rq->id[0])
            json_object_set_new(err, "id", json_string(rq->id));
    }
    doc = err ? json_pack("{s:o}", "error", err) : NULL;
    if (!doc) {
        /* Out of memory: still a JSON answer, never a closed connection. */
        char text[96];
        int n = snprintf(text, sizeof(text),
                         "{\"error\":{\"code\":%d,\"description\":\"the request was refused\"}}",
                         rq->status);
        return reply(rq, rq->status, "application/json", text, (size_t)n);
    }
    return reply_json(rq, rq->status, doc);
}

/* Up to cap - 1 bytes of s (a NUL-terminated string from the client, any
 * bytes) as valid UTF-8 in buf: an error description quotes it without
 * ever cutting a character or passing on a byte that is not UTF-8. */
static const char *shown(char *buf, size_t cap, const char *s) {
    jtext_utf8_clean(buf, cap, s ? s : "", s ? strlen(s) : 0);
    return buf;
}

/* Decides the answer: status and a description, kept valid UTF-8 whatever
 * the arguments hold (the error body is JSON). */
__attribute__((format(printf, 3, 4))) static void fail(struct request *rq, int status,
                                                       const char *fmt, ...) {
    char text[1024];
    va_list ap;

    if (rq->status)
        return; /* the first problem found is the one answered */
    rq->status = status;
    rq->err = malloc(sizeof(*rq->err));
    if (!rq->err)
        return; /* answered with a generic description */
    rq->err->schema = false;
    rq->err->outcome = NULL;
    rq->err->retry_after = 0;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    shown(rq->err->desc, sizeof(rq->err->desc), text);
}

static void fail_schema(struct request *rq, int status, const char *where,
                        const struct jschema_error *e) {
    if (rq->status)
        return;
    fail(rq, status, "%s %s: %s: %s", where, e->instance_path[0] ? e->instance_path : "(root)",
         e->keyword, e->message);
    if (!rq->err)
        return;
    rq->err->schema = true;
    shown(rq->err->path, sizeof(rq->err->path), e->instance_path);
    shown(rq->err->keyword, sizeof(rq->err->keyword), e->keyword);
}

/* ---- CORS ------------------------------------------------------------------ */

static void cors_decide(struct request *rq) {
    const struct cfg *cfg = rq->snap->cfg;
    const char *origin;

    if (cfg->http.n_cors_origins == 0)
        return;
    origin = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Origin");
    if (!origin)
        return;
    for (size_t i = 0; i < cfg->http.n_cors_origins; i++) {
        const char *o = cfg->http.cors_origins[i];

        if (strcmp(o, "*") == 0) {
            rq->cors_origin = "*";
            rq->cors_vary = false;
            return;
        }
        if (strcasecmp(o, origin) == 0) {
            rq->cors_origin = o;
            rq->cors_vary = true;
        }
    }
}

static enum MHD_Result reply_preflight(struct request *rq) {
    char allow[200];
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);

    if (!resp)
        return MHD_NO;
    snprintf(allow, sizeof(allow), "%s, OPTIONS", rq->allow ? rq->allow : "");
    add_common_headers(rq, resp, NULL);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (rq->cors_origin) {
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", allow);
        /* Only the headers the API reads, and those configured: never an
         * echo of whatever the browser asks for. */
        MHD_add_response_header(resp, "Access-Control-Allow-Headers", rq->snap->cors_headers);
        MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    }
    return queue(rq, MHD_HTTP_NO_CONTENT, resp);
}

/* ---- checks made as soon as the headers are in ----------------------------- */

/* The index in ep->content_types of the request's Content-Type, or -1. */
static int content_type_index(const struct cfg_endpoint *ep, const char *ctype) {
    size_t len;

    if (!ctype)
        return -1;
    while (*ctype == ' ' || *ctype == '\t')
        ctype++;
    /* The media type ends at the first parameter; "; charset=utf-8" is fine. */
    len = strcspn(ctype, "; \t");
    for (size_t i = 0; i < ep->n_content_types; i++) {
        const char *t = ep->content_types[i];

        if (strlen(t) == len && strncasecmp(ctype, t, len) == 0)
            return (int)i;
    }
    return -1;
}

static enum cfg_body_kind kind_at(const struct cfg_endpoint *ep, int i) {
    return ep->content_kinds && i >= 0 ? ep->content_kinds[i] : CFG_BODY_JSON;
}

/* True when some content type of ep is read otherwise than as JSON: such an
 * endpoint takes a body even without a body schema. */
static bool takes_non_json(const struct cfg_endpoint *ep) {
    for (size_t i = 0; i < ep->n_content_types; i++)
        if (kind_at(ep, (int)i) != CFG_BODY_JSON)
            return true;
    return false;
}

/* Finds the first header whose name or value is not UTF-8 (obs-text is
 * refused: a header may reach a worker, and every text on the bus is JSON). */
struct bad_header {
    char name[101];
    bool found;
};

static enum MHD_Result check_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value) {
    struct bad_header *b = cls;
    const char *t[2] = {key, value};

    (void)kind;
    for (int i = 0; i < 2; i++) {
        const unsigned char *p = (const unsigned char *)t[i];
        size_t n = 0;
        bool ascii = true;

        for (; p && p[n]; n++)
            ascii &= p[n] < 0x80;
        if (!ascii && !query_utf8_is_valid(t[i], n)) {
            shown(b->name, sizeof(b->name), key ? key : "");
            b->found = true;
            return MHD_NO;
        }
    }
    return MHD_YES;
}

struct cl_count {
    int n;
};

static enum MHD_Result count_cl(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value) {
    struct cl_count *c = cls;

    (void)kind;
    (void)value;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0 ||
        strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
        c->n++;
    return MHD_YES;
}

/* Refuses what would make the body's framing ambiguous or unbounded: more
 * header fields than http.max_headers, two Content-Length or
 * Transfer-Encoding fields, both kinds at once (the way requests are
 * smuggled past a proxy), or a Transfer-Encoding other than chunked, whose
 * body would end only when the client closes. */
static void check_framing(struct request *rq) {
    const struct cfg *cfg = rq->snap->cfg;
    struct cl_count c = {0};
    const char *te;
    int n = MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, NULL, NULL);

    if (cfg->http.max_headers > 0 && n > cfg->http.max_headers) {
        edge_refused(rq->srv->edge, "headers");
        fail(rq, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
             "the request has %d header fields; at most %d are accepted", n, cfg->http.max_headers);
        return;
    }
    MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, count_cl, &c);
    te = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (c.n > 1) {
        rq->close_now = true;
        edge_refused(rq->srv->edge, "framing");
        fail(rq, MHD_HTTP_BAD_REQUEST,
             "the body's length is ambiguous: Content-Length or Transfer-Encoding is given "
             "twice, or both are");
        return;
    }
    if (te && strcasecmp(te, "chunked") != 0) {
        rq->close_now = true;
        edge_refused(rq->srv->edge, "framing");
        fail(rq, MHD_HTTP_NOT_IMPLEMENTED,
             "Transfer-Encoding \"%.50s\" is not supported (only chunked is)", te);
    }
}

/* Checks the request's credentials against the endpoint's auth rule (see
 * common/auth.h); keeps the principal for the bus. Returns -1 (rq->status
 * set, with a WWW-Authenticate challenge) when the request is refused. */
static int authorize(struct request *rq, const struct cfg_endpoint *ep) {
    struct auth_creds cr = {0};
    struct auth_principal p;
    enum auth_outcome out;
    const char *h;
    char why[200];

    if (!rq->snap->auth)
        return 0;
    cr.api_key = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "X-API-Key");
    h = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h && strncasecmp(h, "Bearer ", 7) == 0) {
        for (h += 7; *h == ' '; h++)
            ;
        cr.bearer = h;
    }
    out = auth_check(rq->snap->auth, &ep->auth, &cr, &p, why, sizeof(why));
    if (out != AUTH_OK) {
        auth_challenge(rq->snap->auth, &ep->auth, out, cr.api_key || cr.bearer || h, rq->challenge,
                       sizeof(rq->challenge));
        fail(rq, (int)out, "%s", why);
        return -1;
    }
    if (strcmp(p.kind, "anonymous") != 0)
        snprintf(rq->who, sizeof(rq->who), "%s:%s", p.kind, p.name);
    rq->principal = auth_principal_json(&p);
    if (!rq->principal) {
        fail(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
        return -1;
    }
    return 0;
}

/* The client's address as text. Behind nginx on this host (a loopback
 * peer) it is nginx's X-Real-IP; from anywhere else that header is not
 * trusted. */
static void client_address(struct request *rq, char *out, size_t len) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    bool loopback = false;
    const char *real;

    out[0] = '\0';
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &in->sin_addr, out, (socklen_t)len);
        loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

        inet_ntop(AF_INET6, &in6->sin6_addr, out, (socklen_t)len);
        loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    real = loopback ? MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "X-Real-IP") : NULL;
    if (real && strlen(real) < len && strlen(real) < INET6_ADDRSTRLEN)
        snprintf(out, len, "%s", real);
}

/* Takes a token from the endpoint's rate limit (ratelimit.h). Returns -1
 * (rq->status set to 429) when none is left. */
static int rate_limit(struct request *rq, const struct cfg_endpoint *ep) {
    const struct cfg *cfg = rq->snap->cfg;
    char key[200];

    if (!ep->rate_limit.given)
        return 0;
    if (ep->rate_limit.by_kind == CFG_RATE_ROUTE)
        snprintf(key, sizeof(key), "*");
    else if (ep->rate_limit.by_kind == CFG_RATE_PRINCIPAL && rq->who[0])
        snprintf(key, sizeof(key), "%s", rq->who);
    else
        client_address(rq, key, sizeof(key));
    ratelimit_take(rq->snap->rl, (size_t)(ep - cfg->endpoints), key, &rq->rl);
    if (!rq->rl.limited)
        return 0;
    fail(rq, MHD_HTTP_TOO_MANY_REQUESTS,
         "rate limit of %s %s reached: %d requests per %ld ms; retry after %ld s", ep->method,
         ep->path, ep->rate_limit.requests, ep->rate_limit.per_ms, rq->rl.retry_after);
    return -1;
}

/* Routes the request and checks what the headers alone tell. Sets rq->status
 * when the request is to be refused. */
static void begin(struct request *rq, const char *method) {
    char path[4096];
    struct route_match m;
    enum route_status st;
    const struct cfg_endpoint *ep;
    const char *cl, *te, *ctype;
    char mb[64], pb[201], cb[101];
    bool has_body = false;
    int idx;

    cors_decide(rq);
    {
        struct bad_header b = {.found = false};

        MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, check_header, &b);
        if (b.found) {
            fail(rq, MHD_HTTP_BAD_REQUEST, "the header \"%s\" is not valid UTF-8", b.name);
            return;
        }
    }
    check_framing(rq);
    if (rq->status)
        return;
    if (rq->path_len >= sizeof(path)) {
        fail(rq, MHD_HTTP_URI_TOO_LONG, "the path is too long");
        return;
    }
    memcpy(path, rq->uri, rq->path_len);
    path[rq->path_len] = '\0';

    bool options = strcmp(method, "OPTIONS") == 0;
    st = router_match(rq->snap->router, method, path, &m);
    rq->allow = m.allow;
    switch (st) {
    case ROUTE_NOT_FOUND:
        fail(rq, MHD_HTTP_NOT_FOUND, "no route for %s %s", shown(mb, sizeof(mb), method),
             shown(pb, sizeof(pb), path));
        return;
    case ROUTE_BAD_PATH:
        fail(rq, MHD_HTTP_BAD_REQUEST, "the path is not valid percent-encoded UTF-8");
        return;
    case ROUTE_BAD_METHOD:
        if (options) {
            rq->preflight = true;
            return;
        }
        fail(rq, MHD_HTTP_METHOD_NOT_ALLOWED, "%s is not allowed on %s (allowed: %s)",
             shown(mb, sizeof(mb), method), shown(pb, sizeof(pb), path), m.allow ? m.allow : "");
        return;
    case ROUTE_FOUND:
        break;
    }
    rq->route = m.route;
    rq->params = m.params;
    if (rq->route->kind != ROUTE_ENDPOINT)
        return;

    ep = rq->route->ep;
    if (authorize(rq, ep) != 0 || rate_limit(rq, ep) != 0)
        return;
    rq->max_body = ep->max_body                   ? ep->max_body
                   : rq->snap->cfg->http.max_body ? rq->snap->cfg->http.max_body
                                                  : DEFAULT_MAX_BODY;
    ctype = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    idx = content_type_index(ep, ctype);
    if (idx >= 0) {
        rq->media_type = ep->content_types[idx];
        rq->kind = kind_at(ep, idx);
        if (ep->content_max_body && ep->content_max_body[idx])
            rq->max_body = ep->content_max_body[idx];
    }
    cl = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    te = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (cl) {
        char *end;
        unsigned long long n;

        errno = 0;
        n = strtoull(cl, &end, 10);
        if (errno == ERANGE || n > rq->max_body) {
            fail(rq, MHD_HTTP_CONTENT_TOO_LARGE, "the body is larger than %zu bytes", rq->max_body);
            return;
        }
        has_body = n > 0;
        rq->expect_len = (size_t)n;
    }
    if (te) {
        has_body = true;
        rq->chunked = true;
    }
    if (!has_body)
        return;
    if (!ep->body && !takes_non_json(ep)) {
        fail(rq, MHD_HTTP_BAD_REQUEST, "%s %s takes no request body", ep->method, ep->path);
        return;
    }
    if (idx < 0 && ep->body && rq->snap->cfg->compat == CFG_COMPAT_FPESA_PYTHON) {
        /* The original read every body as JSON whatever its Content-Type
         * said (text/plain, a form's type from curl -d, or none at all). */
        rq->kind = CFG_BODY_JSON;
        rq->media_type = "application/json";
        return;
    }
    if (idx < 0) {
        fail(rq, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "content type %s is not accepted here",
             ctype ? shown(cb, sizeof(cb), ctype) : "(none)");
        return;
    }
    if (rq->kind == CFG_BODY_JSON && !ep->body)
        fail(rq, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "%s %s takes no JSON body (content type %s)",
             ep->method, ep->path, rq->media_type);
}

/* Appends a piece of the body; refuses with 413 past the limit. Returns
 * false when the connection is to be closed: libmicrohttpd cannot answer in
 * the middle of a body, so after a refusal the rest is read and dropped (the
 * answer follows it), but only up to DISCARD_MAX bytes. */
static bool take_upload(struct request *rq, const char *data, size_t size) {
    if (rq->status) {
        rq->discarded += size;
        return rq->discarded <= DISCARD_MAX;
    }
    if (size > rq->max_body - rq->body_len) {
        fail(rq, MHD_HTTP_CONTENT_TOO_LARGE, "the body is larger than %zu bytes", rq->max_body);
        free(rq->body);
        rq->body = NULL;
        rq->body_len = rq->body_cap = 0;
        return true;
    }
    /* One byte more than the body for a terminating NUL. */
    if (rq->body_len + size + 1 > rq->body_cap) {
        size_t cap = rq->body_cap ? rq->body_cap * 2 : rq->expect_len ? rq->expect_len + 1 : 4096;
        char *nb;

        while (cap < rq->body_len + size + 1)
            cap *= 2;
        if (cap > rq->max_body + 1)
            cap = rq->max_body + 1;
        nb = realloc(rq->body, cap);
        if (!nb) {
            fail(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
            return true;
        }
        rq->body = nb;
        rq->body_cap = cap;
    }
    memcpy(rq->body + rq->body_len, data, size);
    rq->body_len += size;
    rq->body[rq->body_len] = '\0';
    return true;
}

/* ---- the bus ---------------------------------------------------------------- */

static void on_bus_done(void *ctx, const struct mbus_result *res) {
    struct request *rq = ctx;
    const struct cfg_endpoint *ep = rq->route->ep;

    rq->result_status = res->status;
    rq->result_outcome = res->outcome;
    rq->result_blocked = res->blocked;
    if (res->body) {
        rq->result_body = malloc(res->body_len ? res->body_len : 1);
        if (rq->result_body) {
            memcpy(rq->result_body, res->body, res->body_len);
            rq->result_len = res->body_len;
        }
    }
    if (res->content_type)
        rq->result_ctype = strdup(res->content_type);
    if (res->http_headers)
        rq->result_headers = strdup(res->http_headers);
    if (rq->claiming)
        ; /* the key's claim: not the endpoint's confirm or rpc */
    else if (ep->mode == CFG_MODE_PUBLISH && res->status < 500)
        metrics_confirm(rq->snap->metrics, res->seconds);
    else if (ep->mode == CFG_MODE_RPC && res->body)
        metrics_rpc(rq->snap->metrics, res->seconds);
    atomic_store_explicit(&rq->done, true, memory_order_release);
    MHD_resume_connection(rq->conn);
}

static bool idempotency_key_is_valid(const char *k) {
    size_t n = strlen(k);

    if (n == 0 || n > IDEMPOTENCY_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (k[i] < 0x20 || k[i] > 0x7e)
            return false;
    }
    return true;
}

/* What goes on the bus for one request: a JSON envelope, or the bytes of a
 * file (into the request's body) with the envelope's other parts in AMQP
 * headers. */
struct outgoing {
    char *envelope; /* JSON text (new), or NULL for bytes */
    const char *bytes;
    size_t len;
    const char *ctype;
    char *texts[3]; /* header values (new) */
    struct mbus_header hdrs[6];
    size_t n_hdrs;
};

static void outgoing_fini(struct outgoing *o) {
    free(o->envelope);
    for (size_t i = 0; i < sizeof(o->texts) / sizeof(o->texts[0]); i++)
        free(o->texts[i]);
}

static enum MHD_Result reply_answer(struct request *rq, int status);

/* The file of a multipart body, and its fields. */
struct form {
    struct request *rq;
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
struct pending {
    struct outgoing o;
    struct form fm;
};

static const struct cfg_file *file_field(const struct cfg_endpoint *ep, const char *name) {
    for (size_t i = 0; i < ep->n_files; i++)
        if (ep->files[i].field && strcmp(ep->files[i].field, name) == 0)
            return &ep->files[i];
    return NULL;
}

/* Whether a file of media type t may come in field f, and its size limit. */
static bool file_type_accepted(const struct cfg_endpoint *ep, const struct cfg_file *f,
                               const char *t, size_t *limit) {
    bool ok = false;

    *limit = f->max_size;
    if (f->n_types) {
        for (size_t i = 0; i < f->n_types; i++)
            if (strcasecmp(f->types[i], t) == 0)
                ok = true;
    }
    for (size_t i = 0; i < ep->n_content_types; i++) {
        if (strcasecmp(ep->content_types[i], t) != 0)
            continue;
        if (!f->n_types && kind_at(ep, (int)i) == CFG_BODY_BINARY)
            ok = true;
        if (!*limit && ep->content_max_body)
            *limit = ep->content_max_body[i];
    }
    return ok;
}

/* The accepted type whose signature data[0..len) carries, for a file part sent
 * without a Content-Type (or as application/octet-stream): the common way
 * scripts upload (Python requests' files={"image": f}) names no type, and the
 * bytes are what is checked anyway. NULL when no accepted type matches. */
static const char *sniff_file_type(const struct cfg_endpoint *ep, const struct cfg_file *f,
                                   const char *data, size_t len) {
    size_t limit;

    for (size_t i = 0; i < f->n_types; i++)
        if (magic_is_known(f->types[i]) && magic_matches(f->types[i], data, len))
            return f->types[i];
    if (f->n_types)
        return NULL;
    for (size_t i = 0; i < ep->n_content_types; i++) {
        const char *t = ep->content_types[i];

        if (magic_is_known(t) && file_type_accepted(ep, f, t, &limit) &&
            magic_matches(t, data, len))
            return t;
    }
    return NULL;
}

static int on_part(void *ctx, const struct mpart *part) {
    struct form *fm = ctx;
    struct request *rq = fm->rq;
    const struct cfg_endpoint *ep = rq->route->ep;
    char nb[101], tb[101];
    bool is_file = part->has_filename ||
                   (part->content_type[0] && strcmp(part->content_type, "text/plain") != 0);

    if (is_file) {
        const struct cfg_file *f = file_field(ep, part->name);
        const char *t = part->content_type[0] ? part->content_type : "application/octet-stream";
        size_t limit = 0;

        /* A browser sends an empty file input as an empty part with a file name "". */
        if (part->len == 0 && part->filename[0] == '\0')
            return 0;
        if (!f) {
            fail(rq, MHD_HTTP_BAD_REQUEST, "field \"%s\" does not take a file",
                 shown(nb, sizeof(nb), part->name));
            return 1;
        }
        if (fm->have_file) {
            fail(rq, MHD_HTTP_BAD_REQUEST, "only one file is taken per request");
            return 1;
        }
        if (!part->content_type[0] || strcmp(part->content_type, "application/octet-stream") == 0) {
            const char *sniffed = sniff_file_type(ep, f, part->data, part->len);

            if (sniffed)
                t = sniffed;
        }
        if (!file_type_accepted(ep, f, t, &limit)) {
            fail(rq, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                 "file type %s is not accepted in field \"%s\"", shown(tb, sizeof(tb), t),
                 shown(nb, sizeof(nb), part->name));
            return 1;
        }
        if (limit && part->len > limit) {
            fail(rq, MHD_HTTP_CONTENT_TOO_LARGE,
                 "the file in field \"%s\" is larger than %zu bytes",
                 shown(nb, sizeof(nb), part->name), limit);
            return 1;
        }
        if (!magic_matches(t, part->data, part->len)) {
            fail(rq, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                 "the file in field \"%s\" is not a complete %s file",
                 shown(nb, sizeof(nb), part->name), shown(tb, sizeof(tb), t));
            return 1;
        }
        fm->have_file = true;
        fm->file_cfg = f;
        fm->file = part->data;
        fm->file_len = part->len;
        memcpy(fm->field, part->name, sizeof(fm->field));
        memcpy(fm->filename, part->filename, sizeof(fm->filename));
        fm->has_filename = part->has_filename;
        memcpy(fm->ctype, t, strlen(t) + 1);
        return 0;
    }
    if (!query_utf8_is_valid(part->data, part->len) || memchr(part->data, '\0', part->len)) {
        fail(rq, MHD_HTTP_BAD_REQUEST, "form field \"%s\" is not UTF-8 text",
             shown(nb, sizeof(nb), part->name));
        return 1;
    }
    if (json_object_get(fm->fields, part->name)) {
        fail(rq, MHD_HTTP_BAD_REQUEST, "form field \"%s\" appears twice",
             shown(nb, sizeof(nb), part->name));
        return 1;
    }
    if (json_object_set_new(fm->fields, part->name, json_stringn(part->data, part->len)) != 0) {
        fail(rq, MHD_HTTP_BAD_REQUEST, "form field \"%s\" is not valid",
             shown(nb, sizeof(nb), part->name));
        return 1;
    }
    return 0;
}

/* Reads a multipart body into *data (the fields, new) and fm (the file). */
static int read_multipart(struct request *rq, struct form *fm, json_t **data) {
    const struct cfg_endpoint *ep = rq->route->ep;
    const char *ctype =
        MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    char boundary[MPART_BOUNDARY_MAX + 1], err[200];
    int rc;

    if (multipart_boundary(ctype, boundary, sizeof(boundary)) != 0) {
        fail(rq, MHD_HTTP_BAD_REQUEST, "multipart/form-data needs a valid boundary parameter");
        return -1;
    }
    fm->rq = rq;
    fm->fields = json_object();
    if (!fm->fields) {
        fail(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
        return -1;
    }
    rc = multipart_parse(rq->body ? rq->body : "", rq->body_len, boundary, on_part, fm, err,
                         sizeof(err));
    if (rc != 0) {
        if (rc < 0)
            fail(rq, MHD_HTTP_BAD_REQUEST, "malformed multipart body: %s", err);
        json_decref(fm->fields);
        return -1;
    }
    for (size_t i = 0; i < ep->n_files; i++) {
        if (ep->files[i].required && !(fm->have_file && fm->file_cfg == &ep->files[i])) {
            fail(rq, ep->validation_status ? ep->validation_status : 400,
                 "the file field \"%.100s\" is required", ep->files[i].field);
            json_decref(fm->fields);
            return -1;
        }
    }
    *data = fm->fields;
    return 0;
}

/* Builds the headers of a message whose body is a file. */
static int file_headers(struct request *rq, struct outgoing *o, json_t *args, json_t *data,
                        const struct form *fm) {
    o->texts[0] = json_dumps(args ? args : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    if (!o->texts[0])
        return -1;
    o->hdrs[o->n_hdrs++] = (struct mbus_header){"x-fpesa-args", o->texts[0]};
    if (rq->route->has_params) {
        json_t *empty = rq->params ? NULL : json_object();

        o->texts[1] = json_dumps(rq->params ? rq->params : empty, JSON_COMPACT);
        json_decref(empty);
        if (!o->texts[1])
            return -1;
        o->hdrs[o->n_hdrs++] = (struct mbus_header){"x-fpesa-params", o->texts[1]};
    }
    if (fm) {
        o->texts[2] = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!o->texts[2])
            return -1;
        o->hdrs[o->n_hdrs++] = (struct mbus_header){"x-fpesa-data", o->texts[2]};
        o->hdrs[o->n_hdrs++] = (struct mbus_header){"x-fpesa-field", fm->field};
        if (fm->has_filename)
            o->hdrs[o->n_hdrs++] = (struct mbus_header){"x-fpesa-filename", fm->filename};
    }
    return 0;
}

/* The most bytes a JSON body may take once its numbers are written out in
 * full, as the store keeps them and every reader gets them: twice the body
 * limit, so a few bytes such as 1e100000 cannot grow downstream. */
static size_t expanded_max(size_t max_body) {
    return max_body < 32 * 1024 ? 64 * 1024 : 2 * max_body;
}

/* Appends len bytes to buf at *w (room checked by the caller). */
static void put(char *buf, size_t *w, const char *s, size_t len) {
    memcpy(buf + *w, s, len);
    *w += len;
}

/* The envelope {"data": ..., "args": ...[, "params": ...]} as text (new,
 * free with free(); its length in *len), or NULL when out of memory. With
 * raw the data is the request body's own bytes (checked JSON), spliced in
 * unchanged; else it is data dumped by jansson (strings only: the fields of
 * a form). */
static char *envelope_text(struct request *rq, bool raw, const json_t *data, const json_t *args,
                           size_t *len) {
    const char *d = rq->body;
    size_t dlen = rq->body_len, cap, w = 0;
    char *dtext = NULL, *atext = NULL, *ptext = NULL, *out = NULL;
    json_t *empty = NULL;

    if (raw) {
        while (dlen && strchr(" \t\r\n", d[0])) {
            d++;
            dlen--;
        }
        while (dlen && strchr(" \t\r\n", d[dlen - 1]))
            dlen--;
    } else {
        dtext = json_dumps(data ? data : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
        if (!dtext)
            goto out;
        d = dtext;
        dlen = strlen(dtext);
    }
    atext = json_dumps(args ? args : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    if (!atext)
        goto out;
    if (rq->route->has_params) {
        empty = rq->params ? NULL : json_object();
        ptext = json_dumps(rq->params ? rq->params : empty, JSON_COMPACT);
        if (!ptext)
            goto out;
    }
    cap = dlen + strlen(atext) + (ptext ? strlen(ptext) : 0) + 32;
    out = malloc(cap);
    if (!out)
        goto out;
    put(out, &w, "{\"data\":", 8);
    put(out, &w, d, dlen);
    put(out, &w, ",\"args\":", 8);
    put(out, &w, atext, strlen(atext));
    if (ptext) {
        put(out, &w, ",\"params\":", 10);
        put(out, &w, ptext, strlen(ptext));
    }
    put(out, &w, "}", 2); /* with the NUL */
    *len = w - 1;
out:
    json_decref(empty);
    free(dtext);
    free(atext);
    free(ptext);
    return out;
}

/* Parses and checks the query string and the body, and fills o with what
 * goes on the bus. On refusal sets rq->status and returns -1. */
static int build_envelope(struct request *rq, struct outgoing *o, struct form *fm) {
    const struct cfg_endpoint *ep = rq->route->ep;
    struct jschema_error e;
    json_t *args = NULL, *data = NULL;
    struct jtext_numbers *nums = NULL;
    char err[300];
    const char *key;
    bool is_file = false, raw = false;
    int rc = -1;

    if (rq->query && rq->query[0]) {
        if (!ep->args) {
            fail(rq, MHD_HTTP_BAD_REQUEST, "%s %s takes no query parameters", ep->method, ep->path);
            goto out;
        }
        if (query_parse(rq->query, &args, err, sizeof(err)) != 0) {
            fail(rq, MHD_HTTP_BAD_REQUEST, "%s", err);
            goto out;
        }
    }
    if (ep->args_schema) {
        json_t *empty = args ? NULL : json_object();
        int bad = jschema_validate(ep->args_schema, args ? args : empty, &e);

        json_decref(empty);
        if (bad) {
            fail_schema(rq, ep->validation_status ? ep->validation_status : 400, "query", &e);
            goto out;
        }
    }
    if (!rq->body_len) {
        data = json_null();
    } else if (rq->kind == CFG_BODY_JSON) {
        /* The tree is for the schema only; the envelope carries the
         * client's own bytes (numbers are never re-encoded). */
        struct jtext_limits lim = {.max_expanded = expanded_max(rq->max_body)};
        struct jtext_error jerr;
        int st = jtext_parse(rq->body, rq->body_len, &lim, &data, &nums, &jerr);

        if (st == JTEXT_EXPANDED) {
            fail(rq, MHD_HTTP_CONTENT_TOO_LARGE, "the body is too large: %s", jerr.text);
            goto out;
        }
        if (st == JTEXT_NOMEM) {
            fail(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
            goto out;
        }
        if (st != JTEXT_OK) {
            fail(rq, ep->validation_status ? ep->validation_status : 400,
                 "the body is not valid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                 jerr.column);
            goto out;
        }
        raw = true;
    } else if (rq->kind == CFG_BODY_FORM) {
        if (memchr(rq->body, '\0', rq->body_len)) {
            fail(rq, MHD_HTTP_BAD_REQUEST, "the form body holds a NUL byte");
            goto out;
        }
        if (query_parse(rq->body, &data, err, sizeof(err)) != 0) {
            fail(rq, MHD_HTTP_BAD_REQUEST, "malformed form body: %s", err);
            goto out;
        }
    } else if (rq->kind == CFG_BODY_MULTIPART) {
        if (read_multipart(rq, fm, &data) != 0)
            goto out;
        is_file = fm->have_file;
    } else {
        if (!magic_matches(rq->media_type, rq->body, rq->body_len)) {
            fail(rq, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "the body is not a complete %s file",
                 rq->media_type);
            goto out;
        }
        is_file = true;
    }
    /* A binary body has no schema to meet; everything else meets the body's. */
    if (ep->body_schema && !(rq->body_len && rq->kind == CFG_BODY_BINARY) &&
        jschema_validate_exact(ep->body_schema, data, nums, &e) != 0) {
        fail_schema(rq, ep->validation_status ? ep->validation_status : 400, "body", &e);
        goto out;
    }
    key = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Idempotency-Key");
    if (key) {
        if (!idempotency_key_is_valid(key)) {
            fail(rq, MHD_HTTP_BAD_REQUEST,
                 "Idempotency-Key must be 1 to %d printable ASCII characters", IDEMPOTENCY_KEY_MAX);
            goto out;
        }
        snprintf(rq->id, sizeof(rq->id), "%s", key);
    } else {
        uuid_v7(rq->id);
    }
    if (is_file) {
        bool multipart = rq->kind == CFG_BODY_MULTIPART;

        o->bytes = multipart ? fm->file : rq->body;
        o->len = multipart ? fm->file_len : rq->body_len;
        o->ctype = multipart ? fm->ctype : rq->media_type;
        if (file_headers(rq, o, args, data, multipart ? fm : NULL) != 0) {
            fail(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
            goto out;
        }
        rc = 0;
        goto out;
    }
    o->envelope = envelope_text(rq, raw, data, args, &o->len);
    if (!o->envelope) {
        fail(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
        goto out;
    }
    o->bytes = o->envelope;
    o->ctype = "application/json";
    rc = 0;

out:
    jtext_numbers_free(nums);
    json_decref(data);
    json_decref(args);
    return rc;
}

/* The message of a request, as mbus takes it. */
static void message_of(const struct request *rq, const struct outgoing *o, struct mbus_msg *msg) {
    msg->exchange = rq->route->ep->exchange;
    msg->message_id = rq->id;
    msg->body = o->bytes;
    msg->body_len = o->len;
    msg->content_type = o->ctype;
    msg->timestamp = (int64_t)time(NULL);
    msg->headers = o->n_hdrs ? o->hdrs : NULL;
    msg->n_headers = o->n_hdrs;
}

/* Suspends the connection and hands msg (borrowed) to the bus: as a claim
 * of its Idempotency-Key (claim set), or as the endpoint's publish or rpc.
 * The outcome resumes the connection. */
static enum MHD_Result send_to_bus(struct request *rq, const struct mbus_msg *msg, bool claim) {
    const struct cfg_endpoint *ep = rq->route->ep;
    const struct cfg *cfg = rq->snap->cfg;
    int rc;

    /* Suspend first: the bus may answer before mbus_publish returns. */
    if (!rq->dispatched)
        atomic_fetch_add_explicit(&rq->srv->waiting, 1, memory_order_relaxed);
    rq->dispatched = true;
    rq->claiming = claim;
    atomic_store_explicit(&rq->done, false, memory_order_release);
    MHD_suspend_connection(rq->conn);
    if (claim)
        rc = mbus_rpc(rq->srv->bus, msg, cfg->idempotency.timeout_ms, on_bus_done, rq);
    else if (ep->mode == CFG_MODE_RPC)
        rc = mbus_rpc(rq->srv->bus, msg, ep->timeout_ms > 0 ? ep->timeout_ms : 5000, on_bus_done,
                      rq);
    else
        rc = mbus_publish(rq->srv->bus, msg, on_bus_done, rq);
    if (rc != 0) {
        rq->result_status = MHD_HTTP_SERVICE_UNAVAILABLE;
        atomic_store_explicit(&rq->done, true, memory_order_release);
        MHD_resume_connection(rq->conn);
    }
    return MHD_YES;
}

/* Asks the claim worker about the request's Idempotency-Key; the message
 * waits in rq->pending. */
static enum MHD_Result send_claim(struct request *rq) {
    const struct cfg *cfg = rq->snap->cfg;
    struct mbus_msg msg, claim = {0};
    char fp[IDEM_FINGERPRINT_HEX + 1];
    char *body;
    enum MHD_Result ret;

    message_of(rq, &rq->pending->o, &msg);
    if (idem_fingerprint(&msg, fp) != 0 ||
        !(body = idem_claim_body(rq->route->ep->exchange, rq->id, fp))) {
        fail(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
        return reply_error(rq);
    }
    claim.exchange = cfg->idempotency.exchange;
    claim.message_id = rq->id;
    claim.body = body;
    claim.body_len = strlen(body);
    claim.content_type = "application/json";
    claim.timestamp = msg.timestamp;
    ret = send_to_bus(rq, &claim, true);
    free(body);
    return ret;
}

/* The claim's answer is in: send the message (a new key, or the same
 * request again), pass the worker's refusal on (409: the key was used with
 * another request), or answer 503 (nothing was sent). */
static enum MHD_Result claimed(struct request *rq) {
    struct mbus_msg msg;
    int st = rq->result_status;

    rq->claiming = false;
    if (st == MHD_HTTP_OK) {
        free(rq->result_body);
        free(rq->result_ctype);
        free(rq->result_headers);
        rq->result_body = rq->result_ctype = rq->result_headers = NULL;
        rq->result_len = 0;
        message_of(rq, &rq->pending->o, &msg);
        return send_to_bus(rq, &msg, false);
    }
    if (st >= 400 && st < 500 && rq->result_body)
        return reply_answer(rq, st);
    fail(rq, MHD_HTTP_SERVICE_UNAVAILABLE,
         "the Idempotency-Key could not be checked (%s); nothing was sent: retry with the same key",
         st == MHD_HTTP_GATEWAY_TIMEOUT ? "the key store did not answer in time"
                                        : "the key store is unavailable");
    return reply_error(rq);
}

static enum MHD_Result dispatch(struct request *rq) {
    struct mbus_msg msg;
    struct pending local, *pd = &local;
    bool claim = rq->snap->cfg->idempotency.exchange &&
                 MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Idempotency-Key");
    enum MHD_Result ret;

    /* A keyed request's message outlives this call (it waits for the
     * claim); every other one is sent from here. */
    if (claim && !(pd = calloc(1, sizeof(*pd)))) {
        fail(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
        return reply_error(rq);
    }
    if (!claim)
        memset(&local.o, 0, sizeof(local.o));
    pd->fm.have_file = false;
    if (build_envelope(rq, &pd->o, &pd->fm) != 0) {
        outgoing_fini(&pd->o);
        if (pd != &local)
            free(pd);
        return reply_error(rq);
    }
    /* Who sent it travels with it (and is part of a key's fingerprint: a
     * key used by another principal is another request). */
    if (rq->principal)
        pd->o.hdrs[pd->o.n_hdrs++] = (struct mbus_header){"x-fpesa-principal", rq->principal};
    if (claim) {
        rq->pending = pd;
        return send_claim(rq);
    }
    message_of(rq, &local.o, &msg);
    ret = send_to_bus(rq, &msg, false);
    outgoing_fini(&local.o);
    return ret;
}

/* A copy of the response template tpl (borrowed) with "{id}" replaced by id
 * in every string. New reference, or NULL when out of memory. */
static json_t *render_response(const json_t *tpl, const char *id) {
    json_t *out;

    if (json_is_string(tpl)) {
        const char *s = json_string_value(tpl), *hit;
        size_t idl = strlen(id), cap = json_string_length(tpl) + 1, n = 0;
        char *buf;

        if (!strstr(s, "{id}"))
            return json_deep_copy(tpl);
        for (hit = s; (hit = strstr(hit, "{id}")) != NULL; hit += 4)
            cap += idl;
        buf = malloc(cap);
        if (!buf)
            return NULL;
        while ((hit = strstr(s, "{id}")) != NULL) {
            memcpy(buf + n, s, (size_t)(hit - s));
            n += (size_t)(hit - s);
            memcpy(buf + n, id, idl);
            n += idl;
            s = hit + 4;
        }
        memcpy(buf + n, s, strlen(s) + 1);
        out = json_string(buf);
        free(buf);
        return out;
    }
    if (json_is_object(tpl)) {
        const char *k;
        json_t *v;

        out = json_object();
        json_object_foreach((json_t *)tpl, k, v) {
            if (!out || json_object_set_new(out, k, render_response(v, id)) != 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    if (json_is_array(tpl)) {
        size_t i;
        json_t *v;

        out = json_array();
        json_array_foreach(tpl, i, v) {
            if (!out || json_array_append_new(out, render_response(v, id)) != 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    return json_deep_copy(tpl);
}

/* Sends an rpc answer: its bytes, content type and the headers it set. */
static enum MHD_Result reply_answer(struct request *rq, int status) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(rq->result_len, rq->result_body, MHD_RESPMEM_MUST_FREE);
    char *line, *next;

    if (!resp)
        return MHD_NO;
    rq->result_body = NULL; /* the response owns it now */
    add_common_headers(rq, resp, rq->result_ctype ? rq->result_ctype : "application/json");
    for (line = rq->result_headers; line && *line; line = next) {
        char *colon = strchr(line, ':');

        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        else
            next = line + strlen(line);
        if (!colon)
            continue;
        *colon = '\0';
        /* Framing is ours to decide, never the worker's. */
        if (strcasecmp(line, "Content-Length") == 0 || strcasecmp(line, "Content-Type") == 0 ||
            strcasecmp(line, "Transfer-Encoding") == 0 || strcasecmp(line, "Connection") == 0)
            continue;
        MHD_add_response_header(resp, line, colon[1] == ' ' ? colon + 2 : colon + 1);
    }
    return queue(rq, status, resp);
}

/* A 503 from the bus, in the two meanings a client must tell apart (see
 * doc/rest-api.rst): "not_accepted" (never sent: retry after Retry-After)
 * and "unknown" (sent, but the broker's confirm never came: it may have been
 * taken, so retry with the same Idempotency-Key, which the error names). */
static void fail_unavailable(struct request *rq) {
    bool publish = rq->route->ep->mode == CFG_MODE_PUBLISH;

    if (rq->result_outcome == MBUS_UNKNOWN) {
        fail(rq, MHD_HTTP_SERVICE_UNAVAILABLE,
             publish ? "the outcome is unknown: the broker did not confirm the message in time or "
                       "the connection was lost; retry with the same Idempotency-Key"
                     : "the outcome is unknown: the connection to the broker was lost after the "
                       "request was sent");
        if (rq->err)
            rq->err->outcome = "unknown";
        return;
    }
    fail(rq, MHD_HTTP_SERVICE_UNAVAILABLE,
         rq->result_blocked ? "not accepted: the broker is blocking publishers (resource alarm)"
                            : "not accepted: the broker is unavailable");
    if (rq->err) {
        rq->err->outcome = "not_accepted";
        rq->err->retry_after = 1;
    }
}

static enum MHD_Result reply_result(struct request *rq) {
    const struct cfg_endpoint *ep = rq->route->ep;
    int st = rq->result_status;

    if (ep->mode == CFG_MODE_PUBLISH) {
        if (st >= 200 && st < 300)
            return reply_json(rq, ep->status ? ep->status : 202,
                              ep->response ? render_response(ep->response, rq->id)
                                           : json_pack("{s:s}", "id", rq->id));
        fail_unavailable(rq);
        return reply_error(rq);
    }
    if (rq->result_body) {
        if (st < 100 || st > 599)
            st = MHD_HTTP_BAD_GATEWAY;
        return reply_answer(rq, st);
    }
    if (st == MHD_HTTP_GATEWAY_TIMEOUT)
        fail(rq, st, "no answer from the worker within %ld ms", ep->timeout_ms);
    else
        fail_unavailable(rq);
    return reply_error(rq);
}

/* ---- built-in routes ------------------------------------------------------- */

static enum MHD_Result reply_builtin(struct request *rq) {
    struct http_server *srv = rq->srv;

    switch (rq->route->kind) {
    case ROUTE_HEALTH:
        if (mbus_is_blocked(srv->bus)) {
            static const char blocked[] =
                "{\"status\":\"blocked\",\"broker\":\"blocked\",\"error\":{\"code\":503,"
                "\"description\":\"the broker is blocking publishers (resource alarm)\"}}";
            return reply(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "application/json", blocked,
                         sizeof(blocked) - 1);
        }
        if (mbus_is_connected(srv->bus)) {
            static const char ok[] = "{\"status\":\"ok\",\"broker\":\"connected\"}";
            return reply(rq, MHD_HTTP_OK, "application/json", ok, sizeof(ok) - 1);
        } else {
            static const char down[] =
                "{\"status\":\"unavailable\",\"broker\":\"disconnected\",\"error\":{\"code\":503,"
                "\"description\":\"the broker is unavailable\"}}";
            return reply(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "application/json", down,
                         sizeof(down) - 1);
        }
    case ROUTE_METRICS: {
        struct mbus_stats stats;
        size_t len = 0, cap;
        char *text;
        struct MHD_Response *resp;

        mbus_stats(srv->bus, &stats);
        text = metrics_render(rq->snap->metrics, &stats, mbus_is_connected(srv->bus), &len);
        if (!text)
            return MHD_NO;
        cap = len + 1;
        if (edge_render(srv->edge, &text, &len, &cap) != 0) {
            free(text);
            return MHD_NO;
        }
        resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
            free(text);
            return MHD_NO;
        }
        add_common_headers(rq, resp, "text/plain; version=0.0.4; charset=utf-8");
        return queue(rq, MHD_HTTP_OK, resp);
    }
    case ROUTE_OPENAPI:
        return reply(rq, MHD_HTTP_OK, "application/json", rq->snap->openapi, rq->snap->openapi_len);
    case ROUTE_ASYNCAPI:
        return reply(rq, MHD_HTTP_OK, "application/json", rq->snap->asyncapi,
                     rq->snap->asyncapi_len);
    case ROUTE_ENDPOINT:
        break;
    }
    return MHD_NO;
}

/* The request's path (its first 300 bytes) as a log value: quoted and
 * escaped when it needs to be (log_quote), so no path forges a field. */
static const char *path_q(const struct request *rq, char *buf, size_t len) {
    char raw[301];
    size_t n = rq->path_len > 300 ? 300 : rq->path_len;

    memcpy(raw, rq->uri, n);
    raw[n] = '\0';
    return log_quote(raw, buf, len);
}

/* ---- libmicrohttpd callbacks ------------------------------------------------ */

/* Checks the request target against http.max_uri and http.max_query_params,
 * and hides its query string from libmicrohttpd.
 *
 * libmicrohttpd 0.9 parses the query string into its per-connection memory
 * right after this callback, a record per parameter; many short parameters
 * overflow that memory, and it then neither answers nor frees the request.
 * The mapper parses the query itself (query.c) from its own copy and never
 * asks libmicrohttpd for it, so the query is cut off in libmicrohttpd's
 * buffer (uri points into it, and libmicrohttpd writes there itself): it
 * then has nothing to parse. */
static void edge_request_line(struct request *rq, const char *uri) {
    const struct cfg *cfg = rq->snap->cfg;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    char *q = uri ? strchr(uri, '?') : NULL;
    size_t n = 0;

    rq->ec = ci ? ci->socket_context : NULL;
    edge_phase(rq->srv->edge, rq->ec, EDGE_HEADER);
    if (q && q[1])
        q[1] = '\0';
    if (cfg->http.max_uri && strlen(rq->uri) > cfg->http.max_uri) {
        edge_refused(rq->srv->edge, "uri");
        fail(rq, MHD_HTTP_URI_TOO_LONG, "the request target is longer than %zu bytes",
             cfg->http.max_uri);
        return;
    }
    if (rq->query && rq->query[0]) {
        n = 1;
        for (const char *p = rq->query; *p; p++)
            n += *p == '&';
    }
    if (cfg->http.max_query_params > 0 && n > (size_t)cfg->http.max_query_params) {
        edge_refused(rq->srv->edge, "query");
        fail(rq, MHD_HTTP_URI_TOO_LONG, "the query has %zu parameters; at most %d are accepted", n,
             cfg->http.max_query_params);
    }
}

/* Called with the raw request target before MHD decodes it; what it returns
 * becomes the request's context, and MHD calls on_completed for it whatever
 * happens next. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
    struct http_server *srv = cls;
    struct request *rq = calloc(1, sizeof(*rq));
    const char *q;

    if (!rq)
        return NULL;
    rq->uri = strdup(uri ? uri : "");
    if (!rq->uri) {
        free(rq);
        return NULL;
    }
    rq->srv = srv;
    rq->conn = conn;
    clock_gettime(CLOCK_MONOTONIC, &rq->start);
    q = strchr(rq->uri, '?');
    rq->path_len = q ? (size_t)(q - rq->uri) : strlen(rq->uri);
    rq->query = q ? q + 1 : NULL;
    /* A fragment is never sent by a browser; drop one a client sent anyway. */
    if (rq->query) {
        char *hash = strchr(rq->uri + rq->path_len, '#');
        if (hash)
            *hash = '\0';
    }
    rq->snap = snap_get(srv);
    atomic_fetch_add_explicit(&srv->in_flight, 1, memory_order_relaxed);
    metrics_in_flight(rq->snap->metrics, 1);
    edge_request_line(rq, uri);
    return rq;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls) {
    struct request *rq = *req_cls;

    (void)cls;
    (void)url;
    (void)version;
    if (!rq)
        return MHD_NO; /* out of memory when the request began */
    if (!rq->started) {
        /* Answering on the first call makes MHD close the connection; the
         * answer is queued on a later call so that keep-alive holds. */
        rq->started = true;
        rq->conn = conn;
        rq->method = method;
        begin(rq, method);
        if (rq->status == MHD_HTTP_CONTENT_TOO_LARGE || rq->close_now)
            return reply_error(rq); /* refuse before the body is read */
        edge_phase(rq->srv->edge, rq->ec, rq->expect_len || rq->chunked ? EDGE_BODY : EDGE_BUSY);
        return MHD_YES;
    }
    if (*upload_data_size) {
        bool go_on = take_upload(rq, upload_data, *upload_data_size);

        *upload_data_size = 0;
        if (!go_on) {
            char pq[1300], mq[64];

            LOG(LOG_INFO,
                "request refused, closing after %zu bytes of body method=%s path=%s status=%d",
                rq->discarded, log_quote(method, mq, sizeof(mq)), path_q(rq, pq, sizeof(pq)),
                rq->status);
        }
        return go_on ? MHD_YES : MHD_NO;
    }
    if (rq->answered)
        return MHD_YES;
    edge_phase(rq->srv->edge, rq->ec, EDGE_BUSY);
    if (rq->status)
        return reply_error(rq);
    if (rq->preflight)
        return reply_preflight(rq);
    if (rq->dispatched) {
        if (!atomic_load_explicit(&rq->done, memory_order_acquire))
            return MHD_YES; /* woken before the outcome: wait on */
        if (rq->claiming)
            return claimed(rq);
        return reply_result(rq);
    }
    if (rq->route->kind != ROUTE_ENDPOINT)
        return reply_builtin(rq);
    return dispatch(rq);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
    struct http_server *srv = cls;
    struct request *rq = *req_cls;
    double secs;
    char pq[1300], mq[64], iq[820];

    (void)conn;
    if (!rq)
        return;
    *req_cls = NULL;
    secs = elapsed_s(&rq->start);
    if (rq->answered) {
        metrics_request(rq->snap->metrics,
                        rq->route ? rq->route->id : router_count(rq->snap->router), rq->answered,
                        secs);
        /* The duration in whole microseconds printed as ms.uuu: the same
         * text as %.3f at about half the cost of formatting a double. */
        LOG(LOG_INFO, "request method=%s path=%s status=%d duration_ms=%ld.%03ld id=%s",
            log_quote(rq->method, mq, sizeof(mq)), path_q(rq, pq, sizeof(pq)), rq->answered,
            (long)(secs * 1e6 + 0.5) / 1000, (long)(secs * 1e6 + 0.5) % 1000,
            log_quote(rq->id[0] ? rq->id : NULL, iq, sizeof(iq)));
    } else if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        LOG(LOG_DEBUG, "request ended without an answer method=%s path=%s reason=%d",
            log_quote(rq->method, mq, sizeof(mq)), path_q(rq, pq, sizeof(pq)), (int)toe);
    }
    if (rq->dispatched)
        atomic_fetch_sub_explicit(&srv->waiting, 1, memory_order_relaxed);
    edge_phase(srv->edge, rq->ec, EDGE_IDLE);
    json_decref(rq->params);
    free(rq->body);
    free(rq->result_body);
    free(rq->result_ctype);
    free(rq->result_headers);
    if (rq->pending) {
        outgoing_fini(&rq->pending->o);
        free(rq->pending);
    }
    free(rq->err);
    free(rq->principal);
    free(rq->uri);
    metrics_in_flight(rq->snap->metrics, -1);
    snap_put(rq->snap);
    free(rq);
    atomic_fetch_sub_explicit(&srv->in_flight, 1, memory_order_relaxed);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    char line[512];
    size_t n;

    (void)cls;
    if (LOG_WARN < log_threshold)
        return;
    vsnprintf(line, sizeof(line), fmt, ap);
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    log_write(LOG_WARN, "libmicrohttpd: %s", line);
}

/* ---- life cycle ---------------------------------------------------------- */

static void snap_free(struct snap *sn) {
    if (!sn)
        return;
    auth_free(sn->auth);
    ratelimit_free(sn->rl);
    metrics_free(sn->metrics);
    free(sn->openapi);
    free(sn->asyncapi);
    free(sn->cors_headers);
    free(sn->route_methods);
    free(sn->route_paths);
    router_free(sn->router);
    if (sn->owns_cfg)
        cfg_free(sn->cfg);
    free(sn);
}

/* Drops a reference; the last one frees the snapshot. NULL is fine. */
static void snap_put(struct snap *sn) {
    if (sn && atomic_fetch_sub_explicit(&sn->refs, 1, memory_order_acq_rel) == 1)
        snap_free(sn);
}

/* A new reference to the current snapshot. */
static struct snap *snap_get(struct http_server *srv) {
    struct snap *sn;

    pthread_mutex_lock(&srv->snap_lock);
    sn = srv->snap;
    atomic_fetch_add_explicit(&sn->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&srv->snap_lock);
    return sn;
}

/* Builds the snapshot of cfg (borrowed; kept by the snapshot until it is
 * freed, and freed with it when owns_cfg), with one reference. NULL on
 * failure (logged). */
static struct snap *snap_new(struct cfg *cfg, bool owns_cfg) {
    struct snap *sn = calloc(1, sizeof(*sn));
    json_t *doc = NULL;
    bool auth_failed = false;
    size_t n;

    if (!sn)
        return NULL;
    atomic_init(&sn->refs, 1);
    sn->cfg = cfg;
    sn->auth = auth_new(cfg, &auth_failed);
    if (auth_failed) {
        LOG(LOG_ERROR, "cannot load the keys of the auth section");
        goto out_free;
    }
    sn->rl = ratelimit_new(cfg);
    if (!sn->rl)
        goto out_free;
    sn->router = router_new(cfg);
    if (!sn->router) {
        LOG(LOG_ERROR, "cannot build the route table");
        goto out_free;
    }
    n = router_count(sn->router);
    sn->route_methods = calloc(n + 1, sizeof(*sn->route_methods));
    sn->route_paths = calloc(n + 1, sizeof(*sn->route_paths));
    if (!sn->route_methods || !sn->route_paths)
        goto out_free;
    for (size_t i = 0; i < n; i++) {
        sn->route_methods[i] = router_get(sn->router, i)->method;
        sn->route_paths[i] = router_get(sn->router, i)->path;
    }
    sn->metrics = metrics_new(n, sn->route_methods, sn->route_paths);
    doc = openapi_build(cfg);
    sn->openapi = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    doc = asyncapi_build(cfg);
    sn->asyncapi = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!sn->metrics || !sn->openapi || !sn->asyncapi) {
        LOG(LOG_ERROR, "out of memory building the metrics and the API documents");
        goto out_free;
    }
    sn->openapi_len = strlen(sn->openapi);
    sn->asyncapi_len = strlen(sn->asyncapi);
    {
        static const char base[] = "Content-Type, Idempotency-Key, Authorization, X-API-Key";
        size_t len = sizeof(base), o = sizeof(base) - 1;

        for (size_t i = 0; i < cfg->http.n_cors_headers; i++)
            len += strlen(cfg->http.cors_headers[i]) + 2;
        sn->cors_headers = malloc(len);
        if (!sn->cors_headers)
            goto out_free;
        memcpy(sn->cors_headers, base, sizeof(base));
        for (size_t i = 0; i < cfg->http.n_cors_headers; i++) {
            size_t hl = strlen(cfg->http.cors_headers[i]);

            memcpy(sn->cors_headers + o, ", ", 2);
            memcpy(sn->cors_headers + o + 2, cfg->http.cors_headers[i], hl + 1);
            o += hl + 2;
        }
    }
    sn->owns_cfg = owns_cfg;
    return sn;

out_free:
    snap_free(sn);
    return NULL;
}

struct http_server *http_new(const struct cfg *cfg, struct mbus *bus) {
    struct http_server *srv = calloc(1, sizeof(*srv));

    if (!srv)
        return NULL;
    srv->listen_fd = -1;
    srv->cfg = cfg;
    srv->bus = bus;
    pthread_mutex_init(&srv->snap_lock, NULL);
    /* The start's configuration stays main()'s. */
    srv->snap = snap_new((struct cfg *)cfg, false);
    if (!srv->snap) {
        http_free(srv);
        return NULL;
    }
    return srv;
}

int http_reload(struct http_server *srv, struct cfg *cfg,
                int (*before)(void *arg, const struct cfg *cfg), void *arg) {
    struct snap *sn = snap_new(cfg, false), *old;

    if (!sn)
        return -1;
    /* The bus declares the new topology before any request can use it. */
    if (before && before(arg, cfg) < 0) {
        snap_free(sn);
        return -1;
    }
    sn->owns_cfg = true;
    pthread_mutex_lock(&srv->snap_lock);
    old = srv->snap;
    srv->snap = sn;
    pthread_mutex_unlock(&srv->snap_lock);
    /* Requests that started with the old one keep it until they complete. */
    snap_put(old);
    return 0;
}

const struct cfg *http_config(struct http_server *srv) {
    const struct cfg *cfg;

    pthread_mutex_lock(&srv->snap_lock);
    cfg = srv->snap->cfg;
    pthread_mutex_unlock(&srv->snap_lock);
    return cfg;
}

static int resolve(const struct cfg *cfg, struct sockaddr_storage *out, bool *ipv6) {
    struct addrinfo hints = {0}, *res = NULL;
    char port[16];
    int rc;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%d", cfg->http.port);
    rc = getaddrinfo(cfg->http.host && cfg->http.host[0] ? cfg->http.host : NULL, port, &hints,
                     &res);
    if (rc != 0 || !res) {
        LOG(LOG_ERROR, "cannot resolve the listen address host=%s error=\"%s\"",
            cfg->http.host ? cfg->http.host : "", gai_strerror(rc));
        return -1;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *ipv6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return 0;
}

int http_bind(struct http_server *srv) {
    const struct cfg *cfg = srv->cfg;
    const char *host = cfg->http.host ? cfg->http.host : "*";
    bool ipv6 = false;
    int fd, one = 1, saved;

    if (srv->listen_fd >= 0)
        return 0;
    if (resolve(cfg, &srv->addr, &ipv6) != 0)
        return -1;
    fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        saved = errno;
        LOG(LOG_ERROR, "cannot create the listening socket error=\"%s\"", strerror(saved));
        return -1;
    }
    /* SO_REUSEADDR lets a restart bind while old connections linger in
     * TIME_WAIT; never SO_REUSEPORT, which would let two instances share
     * the port and split its traffic silently. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&srv->addr,
             ipv6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) != 0) {
        saved = errno;
        LOG(LOG_ERROR, "cannot listen on %s:%d: %s", host, cfg->http.port,
            saved == EADDRINUSE ? "the port is taken by another process" : strerror(saved));
        close(fd);
        return -1;
    }
    srv->listen_fd = fd;
    return 0;
}

static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen) {
    struct http_server *srv = cls;

    return edge_may_accept(srv->edge, addr, addrlen) ? MHD_YES : MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    struct http_server *srv = cls;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *addr =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        const struct sockaddr *sa = addr ? addr->client_addr : NULL;
        socklen_t len = 0;

        if (sa)
            len = sa->sa_family == AF_INET6 ? (socklen_t)sizeof(struct sockaddr_in6)
                                            : (socklen_t)sizeof(struct sockaddr_in);
        *socket_context = fd ? edge_conn_open(srv->edge, fd->connect_fd, sa, len) : NULL;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        edge_conn_close(srv->edge, *socket_context);
        *socket_context = NULL;
    }
}

int http_start(struct http_server *srv) {
    const struct cfg *cfg = srv->cfg;
    unsigned int flags =
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    long threads = cfg->http.threads > 0 ? cfg->http.threads : sysconf(_SC_NPROCESSORS_ONLN);
    int saved;
    struct edge_limits lim = {
        .max_connections = cfg->http.max_connections > 0 ? cfg->http.max_connections : 10000,
        .max_per_client = cfg->http.max_connections_per_client,
        .idle_timeout_s = cfg->http.idle_timeout,
        .header_timeout_s = cfg->http.header_timeout,
        .body_timeout_s = cfg->http.body_timeout,
    };
    /* The edge counts connections and refuses past its limits (on_accept);
     * libmicrohttpd's own total limit, a little higher, only backs it up.
     * libmicrohttpd's own timeout restarts with every byte; it only backs the
     * edge's deadlines up, which end first. */
    int backstop = lim.idle_timeout_s;

    if (lim.header_timeout_s > backstop)
        backstop = lim.header_timeout_s;
    if (lim.body_timeout_s > backstop)
        backstop = lim.body_timeout_s;
    backstop += 5;
    if (threads < 1)
        threads = 1;
    if (http_bind(srv) != 0)
        return -1;
    if (listen(srv->listen_fd, SOMAXCONN) != 0) {
        saved = errno;
        LOG(LOG_ERROR, "cannot listen on %s:%d: %s", cfg->http.host ? cfg->http.host : "*",
            cfg->http.port,
            saved == EADDRINUSE ? "the port is taken by another process" : strerror(saved));
        return -1;
    }
    if (srv->addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (!srv->edge)
        srv->edge = edge_new(&lim);
    if (!srv->edge) {
        LOG(LOG_ERROR, "cannot start the connection sweeper");
        return -1;
    }
    srv->daemon = MHD_start_daemon(
        flags, 0, on_accept, srv, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv, MHD_OPTION_LISTEN_SOCKET,
        (MHD_socket)srv->listen_fd, MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)threads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)(lim.max_connections + threads),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)backstop, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)CONNECTION_MEMORY, MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_END);
    if (!srv->daemon) {
        LOG(LOG_ERROR, "cannot start serving on %s:%d", cfg->http.host ? cfg->http.host : "*",
            cfg->http.port);
        return -1;
    }
    LOG(LOG_INFO, "listening on %s:%d threads=%ld", cfg->http.host ? cfg->http.host : "*",
        cfg->http.port, threads);
    return 0;
}

void http_quiesce(struct http_server *srv) {
    MHD_socket s;

    if (!srv || !srv->daemon)
        return;
    atomic_store(&srv->draining, true);
    s = MHD_quiesce_daemon(srv->daemon);
    if (s != MHD_INVALID_SOCKET) {
        close(s);
        if (s == srv->listen_fd)
            srv->listen_fd = -1;
    }
}

long http_in_flight(const struct http_server *srv) {
    return atomic_load_explicit(&((struct http_server *)srv)->in_flight, memory_order_relaxed);
}

long http_waiting(const struct http_server *srv) {
    return atomic_load_explicit(&((struct http_server *)srv)->waiting, memory_order_relaxed);
}

void http_stop(struct http_server *srv) {
    if (srv && srv->daemon) {
        MHD_stop_daemon(srv->daemon);
        srv->daemon = NULL;
        /* A started daemon owns the listening socket it was given (closed
         * by the stop, unless quiesced: then http_quiesce closed it). */
        srv->listen_fd = -1;
    }
}

void http_free(struct http_server *srv) {
    if (!srv)
        return;
    http_stop(srv);
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    edge_free(srv->edge);
    snap_put(srv->snap);
    pthread_mutex_destroy(&srv->snap_lock);
    free(srv);
}
