/* The answers of restmapper's HTTP server: common headers, JSON and error
 * bodies, the refusal decided for a request (http_fail), CORS decisions and
 * preflights, and the built-in routes (health, metrics, OpenAPI, AsyncAPI).
 */
#include "http_int.h"

#include "jsontext.h"
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- answers -------------------------------------------------------------- */

/* Retry-After of a 503, in seconds. */
#define RETRY_AFTER_SECONDS "1"

void http_add_common_headers(struct http_request *rq, struct MHD_Response *resp,
                             const char *ctype) {
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

enum MHD_Result http_queue(struct http_request *rq, int status, struct MHD_Response *resp) {
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
static enum MHD_Result reply(struct http_request *rq, int status, const char *ctype,
                             const char *body, size_t len) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);

    if (!resp)
        return MHD_NO;
    http_add_common_headers(rq, resp, ctype);
    return http_queue(rq, status, resp);
}

/* Sends a JSON value (taken). */
enum MHD_Result http_reply_json(struct http_request *rq, int status, json_t *value) {
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
    http_add_common_headers(rq, resp, "application/json");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED && rq->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rq->allow);
    if (rq->err && rq->err->retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%d", rq->err->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if ((status == MHD_HTTP_UNAUTHORIZED || status == MHD_HTTP_FORBIDDEN) && rq->challenge[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, rq->challenge);
    return http_queue(rq, status, resp);
}

/* Sends the error decided earlier: {"error": {"code", "description", ...}}. */
enum MHD_Result http_reply_error(struct http_request *rq) {
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
    return http_reply_json(rq, rq->status, doc);
}

/* Up to cap - 1 bytes of s (a NUL-terminated string from the client, any
 * bytes) as valid UTF-8 in buf: an error description quotes it without
 * ever cutting a character or passing on a byte that is not UTF-8. */
const char *http_shown(char *buf, size_t cap, const char *s) {
    jtext_utf8_clean(buf, cap, s ? s : "", s ? strlen(s) : 0);
    return buf;
}

/* Decides the answer: status and a description, kept valid UTF-8 whatever
 * the arguments hold (the error body is JSON). */
void http_fail(struct http_request *rq, int status, const char *fmt, ...) {
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
    http_shown(rq->err->desc, sizeof(rq->err->desc), text);
}

void http_fail_schema(struct http_request *rq, int status, const char *where,
                      const struct jschema_error *e) {
    if (rq->status)
        return;
    http_fail(rq, status, "%s %s: %s: %s", where, e->instance_path[0] ? e->instance_path : "(root)",
              e->keyword, e->message);
    if (!rq->err)
        return;
    rq->err->schema = true;
    http_shown(rq->err->path, sizeof(rq->err->path), e->instance_path);
    http_shown(rq->err->keyword, sizeof(rq->err->keyword), e->keyword);
}

/* ---- CORS ------------------------------------------------------------------ */

void http_cors_decide(struct http_request *rq) {
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

enum MHD_Result http_reply_preflight(struct http_request *rq) {
    char allow[200];
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);

    if (!resp)
        return MHD_NO;
    snprintf(allow, sizeof(allow), "%s, OPTIONS", rq->allow ? rq->allow : "");
    http_add_common_headers(rq, resp, NULL);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (rq->cors_origin) {
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", allow);
        /* Only the headers the API reads, and those configured: never an
         * echo of whatever the browser asks for. */
        MHD_add_response_header(resp, "Access-Control-Allow-Headers", rq->snap->cors_headers);
        MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    }
    return http_queue(rq, MHD_HTTP_NO_CONTENT, resp);
}

/* ---- built-in routes ------------------------------------------------------- */

enum MHD_Result http_reply_builtin(struct http_request *rq) {
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
        http_add_common_headers(rq, resp, "text/plain; version=0.0.4; charset=utf-8");
        return http_queue(rq, MHD_HTTP_OK, resp);
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
