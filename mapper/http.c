#include "http.h"

#include "bus.h"
#include "config.h"
#include "jsonschema.h"
#include "log.h"
#include "magic.h"
#include "metrics.h"
#include "multipart.h"
#include "openapi.h"
#include "query.h"
#include "router.h"
#include "uuid.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
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
#define CONNECTION_TIMEOUT_S 30
/* Memory libmicrohttpd gives each connection for the request line, headers
 * and read buffer. It zeroes the whole of it between two requests of a
 * keep-alive connection, so its default (32 KiB) cost a 32 KiB memset per
 * request; 16 KiB still holds headers of 12 KiB and more. */
#define CONNECTION_MEMORY 16384
/* Most bytes of a refused body read and dropped before the connection is
 * closed instead of answered. */
#define DISCARD_MAX (1024 * 1024)

struct http_server {
    const struct cfg *cfg;
    struct mbus *bus;
    struct router *router;
    struct metrics *metrics;
    const char **route_methods;
    const char **route_paths;
    char *openapi; /* the document, rendered once */
    size_t openapi_len;
    struct MHD_Daemon *daemon;
    struct sockaddr_storage addr;
    _Atomic long in_flight;
    _Atomic long waiting;
};

struct rq_error {
    char desc[512];
    char path[256];
    char keyword[32];
    bool schema;
};

/* Everything about one request, created by the URI callback when the request
 * line arrives and freed once, in on_completed. */
struct request {
    struct http_server *srv;
    struct MHD_Connection *conn;
    char *uri;         /* raw request target as received */
    const char *query; /* into uri, after '?'; NULL without one */
    size_t path_len;   /* length of the path part of uri */
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
    char *result_body;
    size_t result_len;
    char *result_ctype;
    char *result_headers; /* "Name: value\n" lines from the answer, or NULL */

    int answered; /* status actually sent, for the log and metrics */
};

static double elapsed_s(const struct timespec *since) {
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

/* ---- answers -------------------------------------------------------------- */

static void add_common_headers(struct request *rq, struct MHD_Response *resp, const char *ctype) {
    if (ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
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
    return queue(rq, status, resp);
}

/* Sends the error decided earlier: {"error": {"code", "description", ...}}. */
static enum MHD_Result reply_error(struct request *rq) {
    json_t *err = json_pack("{s:i, s:s}", "code", rq->status, "description",
                            rq->err ? rq->err->desc : "the request was refused");

    if (err && rq->err && rq->err->schema) {
        json_object_set_new(err, "path", json_string(rq->err->path));
        json_object_set_new(err, "keyword", json_string(rq->err->keyword));
    }
    return reply_json(rq, rq->status, err ? json_pack("{s:o}", "error", err) : NULL);
}

__attribute__((format(printf, 3, 4))) static void fail(struct request *rq, int status,
                                                       const char *fmt, ...) {
    va_list ap;

    if (rq->status)
        return; /* the first problem found is the one answered */
    rq->status = status;
    rq->err = malloc(sizeof(*rq->err));
    if (!rq->err)
        return; /* answered with a generic description */
    rq->err->schema = false;
    va_start(ap, fmt);
    vsnprintf(rq->err->desc, sizeof(rq->err->desc), fmt, ap);
    va_end(ap);
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
    snprintf(rq->err->path, sizeof(rq->err->path), "%s", e->instance_path);
    snprintf(rq->err->keyword, sizeof(rq->err->keyword), "%s", e->keyword);
}

/* ---- CORS ------------------------------------------------------------------ */

static void cors_decide(struct request *rq) {
    const struct cfg *cfg = rq->srv->cfg;
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
    const char *want;

    if (!resp)
        return MHD_NO;
    snprintf(allow, sizeof(allow), "%s, OPTIONS", rq->allow ? rq->allow : "");
    add_common_headers(rq, resp, NULL);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (rq->cors_origin) {
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", allow);
        want = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
                                           "Access-Control-Request-Headers");
        MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                want && strlen(want) < 500 ? want
                                                           : "Content-Type, Idempotency-Key");
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

/* Routes the request and checks what the headers alone tell. Sets rq->status
 * when the request is to be refused. */
static void begin(struct request *rq, const char *method) {
    struct http_server *srv = rq->srv;
    char path[4096];
    struct route_match m;
    enum route_status st;
    const struct cfg_endpoint *ep;
    const char *cl, *te, *ctype;
    bool has_body = false;
    int idx;

    cors_decide(rq);
    if (rq->path_len >= sizeof(path)) {
        fail(rq, MHD_HTTP_URI_TOO_LONG, "the path is too long");
        return;
    }
    memcpy(path, rq->uri, rq->path_len);
    path[rq->path_len] = '\0';

    bool options = strcmp(method, "OPTIONS") == 0;
    st = router_match(srv->router, method, path, &m);
    rq->allow = m.allow;
    switch (st) {
    case ROUTE_NOT_FOUND:
        fail(rq, MHD_HTTP_NOT_FOUND, "no route for %s %.200s", method, path);
        return;
    case ROUTE_BAD_PATH:
        fail(rq, MHD_HTTP_BAD_REQUEST, "the path is not valid percent-encoded UTF-8");
        return;
    case ROUTE_BAD_METHOD:
        if (options) {
            rq->preflight = true;
            return;
        }
        fail(rq, MHD_HTTP_METHOD_NOT_ALLOWED, "%s is not allowed on %.200s (allowed: %s)", method,
             path, m.allow ? m.allow : "");
        return;
    case ROUTE_FOUND:
        break;
    }
    rq->route = m.route;
    rq->params = m.params;
    if (rq->route->kind != ROUTE_ENDPOINT)
        return;

    ep = rq->route->ep;
    rq->max_body = ep->max_body              ? ep->max_body
                   : srv->cfg->http.max_body ? srv->cfg->http.max_body
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
    if (te && strcasecmp(te, "identity") != 0)
        has_body = true;
    if (!has_body)
        return;
    if (!ep->body && !takes_non_json(ep)) {
        fail(rq, MHD_HTTP_BAD_REQUEST, "%s %s takes no request body", ep->method, ep->path);
        return;
    }
    if (idx < 0 && ep->body && srv->cfg->compat == CFG_COMPAT_FPESA_PYTHON) {
        /* The original read every body as JSON whatever its Content-Type
         * said (text/plain, a form's type from curl -d, or none at all). */
        rq->kind = CFG_BODY_JSON;
        rq->media_type = "application/json";
        return;
    }
    if (idx < 0) {
        fail(rq, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "content type %.100s is not accepted here",
             ctype ? ctype : "(none)");
        return;
    }
    if (rq->kind == CFG_BODY_JSON && !ep->body)
        fail(rq, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "%s %s takes no JSON body (content type %.100s)",
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
    if (ep->mode == CFG_MODE_PUBLISH && res->status < 500)
        metrics_confirm(rq->srv->metrics, res->seconds);
    else if (ep->mode == CFG_MODE_RPC && res->body)
        metrics_rpc(rq->srv->metrics, res->seconds);
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
    struct mbus_header hdrs[5];
    size_t n_hdrs;
};

static void outgoing_fini(struct outgoing *o) {
    free(o->envelope);
    for (size_t i = 0; i < sizeof(o->texts) / sizeof(o->texts[0]); i++)
        free(o->texts[i]);
}

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

static int on_part(void *ctx, const struct mpart *part) {
    struct form *fm = ctx;
    struct request *rq = fm->rq;
    const struct cfg_endpoint *ep = rq->route->ep;
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
            fail(rq, MHD_HTTP_BAD_REQUEST, "field \"%.100s\" does not take a file", part->name);
            return 1;
        }
        if (fm->have_file) {
            fail(rq, MHD_HTTP_BAD_REQUEST, "only one file is taken per request");
            return 1;
        }
        if (!file_type_accepted(ep, f, t, &limit)) {
            fail(rq, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                 "file type %.100s is not accepted in field \"%.100s\"", t, part->name);
            return 1;
        }
        if (limit && part->len > limit) {
            fail(rq, MHD_HTTP_CONTENT_TOO_LARGE,
                 "the file in field \"%.100s\" is larger than %zu bytes", part->name, limit);
            return 1;
        }
        if (!magic_matches(t, part->data, part->len)) {
            fail(rq, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                 "the file in field \"%.100s\" is not a complete %s file", part->name, t);
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
        fail(rq, MHD_HTTP_BAD_REQUEST, "form field \"%.100s\" is not UTF-8 text", part->name);
        return 1;
    }
    if (json_object_get(fm->fields, part->name)) {
        fail(rq, MHD_HTTP_BAD_REQUEST, "form field \"%.100s\" appears twice", part->name);
        return 1;
    }
    if (json_object_set_new(fm->fields, part->name, json_stringn(part->data, part->len)) != 0) {
        fail(rq, MHD_HTTP_BAD_REQUEST, "form field \"%.100s\" is not valid", part->name);
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

/* Parses and checks the query string and the body, and fills o with what
 * goes on the bus. On refusal sets rq->status and returns -1. */
static int build_envelope(struct request *rq, struct outgoing *o, struct form *fm) {
    const struct cfg_endpoint *ep = rq->route->ep;
    struct jschema_error e;
    json_t *args = NULL, *data = NULL, *env = NULL;
    char err[300];
    const char *key;
    bool is_file = false;
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
        json_error_t jerr;

        data = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (!data) {
            fail(rq, MHD_HTTP_BAD_REQUEST, "the body is not valid JSON: %s (line %d, column %d)",
                 jerr.text, jerr.line, jerr.column);
            goto out;
        }
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
        jschema_validate(ep->body_schema, data, &e) != 0) {
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
    env = json_pack("{s:O, s:O}", "data", data, "args", args ? args : json_null());
    if (env && rq->route->has_params)
        json_object_set(env, "params", rq->params ? rq->params : json_object());
    o->envelope = env ? json_dumps(env, JSON_COMPACT) : NULL;
    if (!o->envelope) {
        fail(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
        goto out;
    }
    o->bytes = o->envelope;
    o->len = strlen(o->envelope);
    o->ctype = "application/json";
    rc = 0;

out:
    json_decref(env);
    json_decref(data);
    json_decref(args);
    return rc;
}

static enum MHD_Result dispatch(struct request *rq) {
    const struct cfg_endpoint *ep = rq->route->ep;
    struct mbus_msg msg;
    struct outgoing o = {0};
    struct form fm;
    int rc;

    fm.have_file = false;
    if (build_envelope(rq, &o, &fm) != 0) {
        outgoing_fini(&o);
        return reply_error(rq);
    }
    msg.exchange = ep->exchange;
    msg.message_id = rq->id;
    msg.body = o.bytes;
    msg.body_len = o.len;
    msg.content_type = o.ctype;
    msg.timestamp = (int64_t)time(NULL);
    msg.headers = o.n_hdrs ? o.hdrs : NULL;
    msg.n_headers = o.n_hdrs;

    /* Suspend first: the bus may answer before mbus_publish returns. */
    rq->dispatched = true;
    atomic_fetch_add_explicit(&rq->srv->waiting, 1, memory_order_relaxed);
    MHD_suspend_connection(rq->conn);
    if (ep->mode == CFG_MODE_RPC)
        rc = mbus_rpc(rq->srv->bus, &msg, ep->timeout_ms > 0 ? ep->timeout_ms : 5000, on_bus_done,
                      rq);
    else
        rc = mbus_publish(rq->srv->bus, &msg, on_bus_done, rq);
    outgoing_fini(&o);
    if (rc != 0) {
        rq->result_status = MHD_HTTP_SERVICE_UNAVAILABLE;
        atomic_store_explicit(&rq->done, true, memory_order_release);
        MHD_resume_connection(rq->conn);
    }
    return MHD_YES;
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

static enum MHD_Result reply_result(struct request *rq) {
    const struct cfg_endpoint *ep = rq->route->ep;
    int st = rq->result_status;

    if (ep->mode == CFG_MODE_PUBLISH) {
        if (st >= 200 && st < 300)
            return reply_json(rq, ep->status ? ep->status : 202,
                              ep->response ? render_response(ep->response, rq->id)
                                           : json_pack("{s:s}", "id", rq->id));
        fail(rq, st == 504 ? 504 : 503, "the broker did not confirm the message (%s)",
             st == 503 ? "broker unavailable" : "refused");
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
        fail(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "the broker is unavailable");
    return reply_error(rq);
}

/* ---- built-in routes ------------------------------------------------------- */

static enum MHD_Result reply_builtin(struct request *rq) {
    struct http_server *srv = rq->srv;

    switch (rq->route->kind) {
    case ROUTE_HEALTH:
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
        size_t len = 0;
        char *text;
        struct MHD_Response *resp;

        mbus_stats(srv->bus, &stats);
        text = metrics_render(srv->metrics, &stats, mbus_is_connected(srv->bus), &len);
        if (!text)
            return MHD_NO;
        resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
            free(text);
            return MHD_NO;
        }
        add_common_headers(rq, resp, "text/plain; version=0.0.4; charset=utf-8");
        return queue(rq, MHD_HTTP_OK, resp);
    }
    case ROUTE_OPENAPI:
        return reply(rq, MHD_HTTP_OK, "application/json", srv->openapi, srv->openapi_len);
    case ROUTE_ENDPOINT:
        break;
    }
    return MHD_NO;
}

/* ---- libmicrohttpd callbacks ------------------------------------------------ */

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
    atomic_fetch_add_explicit(&srv->in_flight, 1, memory_order_relaxed);
    metrics_in_flight(srv->metrics, 1);
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
        if (rq->status == MHD_HTTP_CONTENT_TOO_LARGE)
            return reply_error(rq); /* refuse before the body is read */
        return MHD_YES;
    }
    if (*upload_data_size) {
        bool go_on = take_upload(rq, upload_data, *upload_data_size);

        *upload_data_size = 0;
        if (!go_on)
            LOG(LOG_INFO,
                "request refused, closing after %zu bytes of body method=%s path=%.*s "
                "status=%d",
                rq->discarded, method, (int)(rq->path_len > 300 ? 300 : rq->path_len), rq->uri,
                rq->status);
        return go_on ? MHD_YES : MHD_NO;
    }
    if (rq->answered)
        return MHD_YES;
    if (rq->status)
        return reply_error(rq);
    if (rq->preflight)
        return reply_preflight(rq);
    if (rq->dispatched) {
        if (!atomic_load_explicit(&rq->done, memory_order_acquire))
            return MHD_YES; /* woken before the outcome: wait on */
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

    (void)conn;
    if (!rq)
        return;
    *req_cls = NULL;
    secs = elapsed_s(&rq->start);
    if (rq->answered) {
        metrics_request(srv->metrics, rq->route ? rq->route->id : router_count(srv->router),
                        rq->answered, secs);
        /* The duration in whole microseconds printed as ms.uuu: the same
         * text as %.3f at about half the cost of formatting a double. */
        LOG(LOG_INFO, "request method=%s path=%.*s status=%d duration_ms=%ld.%03ld id=%s",
            rq->method ? rq->method : "-", (int)(rq->path_len > 300 ? 300 : rq->path_len), rq->uri,
            rq->answered, (long)(secs * 1e6 + 0.5) / 1000, (long)(secs * 1e6 + 0.5) % 1000,
            rq->id[0] ? rq->id : "-");
    } else if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        LOG(LOG_DEBUG, "request ended without an answer method=%s path=%.*s reason=%d",
            rq->method ? rq->method : "-", (int)(rq->path_len > 300 ? 300 : rq->path_len), rq->uri,
            (int)toe);
    }
    if (rq->dispatched)
        atomic_fetch_sub_explicit(&srv->waiting, 1, memory_order_relaxed);
    json_decref(rq->params);
    free(rq->body);
    free(rq->result_body);
    free(rq->result_ctype);
    free(rq->result_headers);
    free(rq->err);
    free(rq->uri);
    free(rq);
    metrics_in_flight(srv->metrics, -1);
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

struct http_server *http_new(const struct cfg *cfg, struct mbus *bus) {
    struct http_server *srv = calloc(1, sizeof(*srv));
    json_t *doc = NULL;
    size_t n;

    if (!srv)
        return NULL;
    srv->cfg = cfg;
    srv->bus = bus;
    srv->router = router_new(cfg);
    if (!srv->router) {
        LOG(LOG_ERROR, "cannot build the route table");
        goto out_free;
    }
    n = router_count(srv->router);
    srv->route_methods = calloc(n + 1, sizeof(*srv->route_methods));
    srv->route_paths = calloc(n + 1, sizeof(*srv->route_paths));
    if (!srv->route_methods || !srv->route_paths)
        goto out_free;
    for (size_t i = 0; i < n; i++) {
        srv->route_methods[i] = router_get(srv->router, i)->method;
        srv->route_paths[i] = router_get(srv->router, i)->path;
    }
    srv->metrics = metrics_new(n, srv->route_methods, srv->route_paths);
    doc = openapi_build(cfg);
    srv->openapi = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!srv->metrics || !srv->openapi) {
        LOG(LOG_ERROR, "out of memory building the metrics and the OpenAPI document");
        goto out_free;
    }
    srv->openapi_len = strlen(srv->openapi);
    return srv;

out_free:
    http_free(srv);
    return NULL;
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

int http_start(struct http_server *srv) {
    const struct cfg *cfg = srv->cfg;
    unsigned int flags =
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    long threads = cfg->http.threads > 0 ? cfg->http.threads : sysconf(_SC_NPROCESSORS_ONLN);
    bool ipv6 = false;

    if (threads < 1)
        threads = 1;
    if (resolve(cfg, &srv->addr, &ipv6) != 0)
        return -1;
    if (ipv6)
        flags |= MHD_USE_IPv6;
    srv->daemon = MHD_start_daemon(
        flags, (uint16_t)cfg->http.port, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&srv->addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)threads, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)(cfg->http.max_connections > 0 ? cfg->http.max_connections : 10000),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONNECTION_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY, MHD_OPTION_URI_LOG_CALLBACK,
        on_uri, srv, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1, MHD_OPTION_END);
    if (!srv->daemon) {
        LOG(LOG_ERROR, "cannot listen on %s:%d (taken, or not an address of this host)",
            cfg->http.host ? cfg->http.host : "*", cfg->http.port);
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
    s = MHD_quiesce_daemon(srv->daemon);
    if (s != MHD_INVALID_SOCKET)
        close(s);
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
    }
}

void http_free(struct http_server *srv) {
    if (!srv)
        return;
    http_stop(srv);
    metrics_free(srv->metrics);
    free(srv->openapi);
    free(srv->route_methods);
    free(srv->route_paths);
    router_free(srv->router);
    free(srv);
}
