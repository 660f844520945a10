/* What restmapper checks as soon as a request's headers are in: header
 * fields and framing, authentication, rate limits, the route with its body
 * kind and limits (http_begin), and the body gathered as it arrives.
 */
#include "http_int.h"

#include "auth.h"
#include "log.h"
#include "metrics.h"
#include "query.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

enum cfg_body_kind http_kind_at(const struct cfg_endpoint *ep, int i) {
    return ep->content_kinds && i >= 0 ? ep->content_kinds[i] : CFG_BODY_JSON;
}

/* True when some content type of ep is read otherwise than as JSON: such an
 * endpoint takes a body even without a body schema. */
static bool takes_non_json(const struct cfg_endpoint *ep) {
    for (size_t i = 0; i < ep->n_content_types; i++)
        if (http_kind_at(ep, (int)i) != CFG_BODY_JSON)
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
            http_shown(b->name, sizeof(b->name), key ? key : "");
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
static void check_framing(struct http_request *rq) {
    const struct cfg *cfg = rq->snap->cfg;
    struct cl_count c = {0};
    const char *te;
    int n = MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, NULL, NULL);

    if (cfg->http.max_headers > 0 && n > cfg->http.max_headers) {
        edge_refused(rq->srv->edge, "headers");
        http_fail(rq, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
                  "the request has %d header fields; at most %d are accepted", n,
                  cfg->http.max_headers);
        return;
    }
    MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, count_cl, &c);
    te = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (c.n > 1) {
        rq->close_now = true;
        edge_refused(rq->srv->edge, "framing");
        http_fail(rq, MHD_HTTP_BAD_REQUEST,
                  "the body's length is ambiguous: Content-Length or Transfer-Encoding is given "
                  "twice, or both are");
        return;
    }
    if (te && strcasecmp(te, "chunked") != 0) {
        rq->close_now = true;
        edge_refused(rq->srv->edge, "framing");
        http_fail(rq, MHD_HTTP_NOT_IMPLEMENTED,
                  "Transfer-Encoding \"%.50s\" is not supported (only chunked is)", te);
    }
}

/* Checks the request's credentials against the endpoint's auth rule (see
 * common/auth.h); keeps the principal for the bus. Returns -1 (rq->status
 * set, with a WWW-Authenticate challenge) when the request is refused. */
static int authorize(struct http_request *rq, const struct cfg_endpoint *ep) {
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
        http_fail(rq, (int)out, "%s", why);
        return -1;
    }
    if (strcmp(p.kind, "anonymous") != 0)
        snprintf(rq->who, sizeof(rq->who), "%s:%s", p.kind, p.name);
    rq->principal = auth_principal_json(&p);
    if (!rq->principal) {
        http_fail(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
        return -1;
    }
    return 0;
}

/* The client's address as text. Behind nginx on this host (a loopback
 * peer) it is nginx's X-Real-IP; from anywhere else that header is not
 * trusted. */
static void client_address(struct http_request *rq, char *out, size_t len) {
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
static int rate_limit(struct http_request *rq, const struct cfg_endpoint *ep) {
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
    http_fail(rq, MHD_HTTP_TOO_MANY_REQUESTS,
              "rate limit of %s %s reached: %d requests per %ld ms; retry after %ld s", ep->method,
              ep->path, ep->rate_limit.requests, ep->rate_limit.per_ms, rq->rl.retry_after);
    return -1;
}

/* Routes the request and checks what the headers alone tell. Sets rq->status
 * when the request is to be refused. */
void http_begin(struct http_request *rq, const char *method) {
    char path[4096];
    struct route_match m;
    enum route_status st;
    const struct cfg_endpoint *ep;
    const char *cl, *te, *ctype;
    char mb[64], pb[201], cb[101];
    bool has_body = false;
    int idx;

    http_cors_decide(rq);
    {
        struct bad_header b = {.found = false};

        MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, check_header, &b);
        if (b.found) {
            http_fail(rq, MHD_HTTP_BAD_REQUEST, "the header \"%s\" is not valid UTF-8", b.name);
            return;
        }
    }
    check_framing(rq);
    if (rq->status)
        return;
    if (rq->path_len >= sizeof(path)) {
        http_fail(rq, MHD_HTTP_URI_TOO_LONG, "the path is too long");
        return;
    }
    memcpy(path, rq->uri, rq->path_len);
    path[rq->path_len] = '\0';

    bool options = strcmp(method, "OPTIONS") == 0;
    st = router_match(rq->snap->router, method, path, &m);
    rq->allow = m.allow;
    switch (st) {
    case ROUTE_NOT_FOUND:
        http_fail(rq, MHD_HTTP_NOT_FOUND, "no route for %s %s", http_shown(mb, sizeof(mb), method),
                  http_shown(pb, sizeof(pb), path));
        return;
    case ROUTE_BAD_PATH:
        http_fail(rq, MHD_HTTP_BAD_REQUEST, "the path is not valid percent-encoded UTF-8");
        return;
    case ROUTE_BAD_METHOD:
        if (options) {
            rq->preflight = true;
            return;
        }
        http_fail(rq, MHD_HTTP_METHOD_NOT_ALLOWED, "%s is not allowed on %s (allowed: %s)",
                  http_shown(mb, sizeof(mb), method), http_shown(pb, sizeof(pb), path),
                  m.allow ? m.allow : "");
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
    rq->max_body = ep->max_body;
    ctype = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    idx = content_type_index(ep, ctype);
    if (idx >= 0) {
        rq->media_type = ep->content_types[idx];
        rq->kind = http_kind_at(ep, idx);
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
            http_fail(rq, MHD_HTTP_CONTENT_TOO_LARGE, "the body is larger than %zu bytes",
                      rq->max_body);
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
        http_fail(rq, MHD_HTTP_BAD_REQUEST, "%s %s takes no request body", ep->method, ep->path);
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
        http_fail(rq, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "content type %s is not accepted here",
                  ctype ? http_shown(cb, sizeof(cb), ctype) : "(none)");
        return;
    }
    if (rq->kind == CFG_BODY_JSON && !ep->body)
        http_fail(rq, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "%s %s takes no JSON body (content type %s)",
                  ep->method, ep->path, rq->media_type);
}

/* Appends a piece of the body; refuses with 413 past the limit. Returns
 * false when the connection is to be closed: libmicrohttpd cannot answer in
 * the middle of a body, so after a refusal the rest is read and dropped (the
 * answer follows it), but only up to DISCARD_MAX bytes. */
bool http_take_upload(struct http_request *rq, const char *data, size_t size) {
    if (rq->status) {
        rq->discarded += size;
        return rq->discarded <= DISCARD_MAX;
    }
    if (size > rq->max_body - rq->body_len) {
        http_fail(rq, MHD_HTTP_CONTENT_TOO_LARGE, "the body is larger than %zu bytes",
                  rq->max_body);
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
            http_fail(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
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
