/* echo: the example rpc handler. Answers every request with
 * {"echo": <the request envelope>}, proving that a route and its worker are
 * added with endpoints.yaml and a .so alone. A request that carries AMQP
 * headers gets them back too, as "headers": {name: value}; a file or raw
 * body (not JSON) is described instead of echoed:
 * {"echo": {"content_type", "length"}, "headers": {...}}, where the headers
 * hold the rest of the request (x-fpesa-args, x-fpesa-params, ...). The
 * sender of a request on a route with credentials comes back as
 * "principal" (fpesa_message_principal()). */
#include <fpesa/handler.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/rpc.h"

struct echo {
    struct rpc rpc;
};

static int echo_init(const struct fpesa_host *host, struct fpesa_ctx *ctx, const char *config_json,
                     void **state) {
    struct echo *e;

    (void)config_json;
    e = calloc(1, sizeof(*e));
    if (!e) {
        host->log(ctx, FPESA_LOG_ERROR, "echo: out of memory");
        return -1;
    }
    e->rpc = (struct rpc){host, ctx, "echo"};
    *state = e;
    return 0;
}

/* The message's headers as {name: value} (new reference), or NULL when it
 * has none or the host predates them. */
static json_t *headers_json(const struct fpesa_message *m) {
    json_t *o;

    if (!FPESA_HAS_FIELD(m, struct fpesa_message, n_headers) || m->n_headers == 0)
        return NULL;
    o = json_object();
    for (size_t i = 0; o && i < m->n_headers; i++)
        json_object_set_new(o, m->headers[2 * i], json_string(m->headers[2 * i + 1]));
    return o;
}

static bool is_json(const char *content_type) {
    return !content_type || strncmp(content_type, "application/json", 16) == 0;
}

/* The answer to m (new reference; NULL when out of memory). */
static json_t *echo_doc(const struct fpesa_message *m) {
    json_t *headers = headers_json(m), *req, *doc;
    json_error_t jerr;

    req = json_loadb(m->body, m->len, 0, &jerr);
    if (req)
        doc = json_pack("{s:o}", "echo", req);
    else if (!is_json(m->content_type))
        doc = json_pack("{s:{s:s,s:I}}", "echo", "content_type", m->content_type, "length",
                        (json_int_t)m->len);
    else
        doc = json_pack("{s:{s:i,s:s}}", "error", "code", 400, "description",
                        "the request is not valid JSON");
    if (doc && headers && !json_object_get(doc, "error"))
        json_object_set(doc, "headers", headers);
    if (doc && fpesa_message_principal(m) && !json_object_get(doc, "error"))
        json_object_set_new(doc, "principal", json_loads(fpesa_message_principal(m), 0, NULL));
    json_decref(headers);
    return doc;
}

static void handle(void *state, const struct fpesa_message *m) {
    struct echo *e = state;

    rpc_reply_json(&e->rpc, m, echo_doc(m));
}

static int echo_batch(void *state, const struct fpesa_message *const *msgs, size_t n,
                      enum fpesa_result *results) {
    struct echo *e = state;

    return rpc_batch(&e->rpc, e, handle, msgs, n, results);
}

static void echo_fini(void *state) {
    free(state);
}

FPESA_HANDLER_DEFINE("echo: answers rpc requests with the request", echo_init, echo_batch,
                     echo_fini)
