#include "asyncapi.h"

#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Versions of the AsyncAPI bindings the document uses. */
#define AMQP_BINDING "0.3.0"
#define WS_BINDING "0.1.0"

/* The document is built by many small json_pack calls; rather than checking
 * each, a failure is remembered in *failed and the whole document dropped at
 * the end (json_object_set_new steals the value even when it fails). */
static void set(json_t *obj, const char *key, json_t *value, int *failed) {
    if (!obj) {
        json_decref(value);
        *failed = 1;
        return;
    }
    if (!value || json_object_set_new(obj, key, value) != 0)
        *failed = 1;
}

static void append(json_t *arr, json_t *value, int *failed) {
    if (!arr || !value || json_array_append_new(arr, value) != 0)
        *failed = 1;
}

/* {"$ref": <fmt, ...>}: a new reference. */
__attribute__((format(printf, 1, 2))) static json_t *ref(const char *fmt, ...) {
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return json_pack("{s:s}", "$ref", buf);
}

/* "/echo/{word}" + "POST" -> "echo_word_POST": an identifier AsyncAPI accepts
 * ([A-Za-z0-9_.-]) for the names of channels, operations and messages. */
static void ident(char *dst, size_t len, const char *name, const char *suffix) {
    size_t o = 0;
    bool sep = false;

    for (const char *p = name; *p && o + 2 < len; p++) {
        if (isalnum((unsigned char)*p)) {
            if (sep && o > 0)
                dst[o++] = '_';
            dst[o++] = *p;
            sep = false;
        } else {
            sep = true;
        }
    }
    snprintf(dst + o, len - o, "%s%s", o && suffix[0] ? "_" : "", suffix);
    if (dst[0] == '\0')
        snprintf(dst, len, "root");
}

/* An AMQP or websocket name as a channel address. A name holding "{...}" is
 * literal on the bus, but AsyncAPI would read it as a parameter, so such a
 * channel has a null address and names itself in its binding. */
static json_t *address(const char *name) {
    return strchr(name, '{') ? json_null() : json_string(name);
}

/* "amqp://user:pass@host:port/vhost" -> "host:port" (default port 5672) and
 * the vhost, percent-decoded ("/" when absent). Credentials are skipped. */
static void broker_host(const char *url, char *host, size_t host_len, char *vhost,
                        size_t vhost_len) {
    const char *p = strstr(url, "://"), *at, *slash, *end;
    bool tls = strncmp(url, "amqps", 5) == 0;
    size_t o = 0;

    p = p ? p + 3 : url;
    slash = strchr(p, '/');
    end = slash ? slash : p + strlen(p);
    at = memchr(p, '@', (size_t)(end - p));
    if (at)
        p = at + 1;
    if (memchr(p, ':', (size_t)(end - p)) || (p < end && *p == '['))
        snprintf(host, host_len, "%.*s", (int)(end - p), p);
    else
        snprintf(host, host_len, "%.*s:%d", (int)(end - p), p, tls ? 5671 : 5672);
    if (!slash || slash[1] == '\0') {
        snprintf(vhost, vhost_len, "/");
        return;
    }
    for (const char *s = slash + 1; *s && o + 1 < vhost_len; s++) {
        if (s[0] == '%' && isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2])) {
            char hex[3] = {s[1], s[2], '\0'};
            vhost[o++] = (char)strtol(hex, NULL, 16);
            s += 2;
        } else {
            vhost[o++] = *s;
        }
    }
    vhost[o] = '\0';
}

static enum cfg_body_kind kind_of(const struct cfg_endpoint *ep, size_t i) {
    return ep->content_kinds ? ep->content_kinds[i] : CFG_BODY_JSON;
}

/* Whether requests of ep travel as a JSON envelope, as raw bytes, or both. */
static void shapes(const struct cfg_endpoint *ep, bool *envelope, bool *file) {
    *envelope = ep->n_content_types == 0;
    *file = false;
    for (size_t i = 0; i < ep->n_content_types; i++) {
        enum cfg_body_kind k = kind_of(ep, i);
        if (k == CFG_BODY_BINARY || (k == CFG_BODY_MULTIPART && ep->n_files > 0))
            *file = true;
        if (k != CFG_BODY_BINARY)
            *envelope = true;
    }
}

static bool has_kind(const struct cfg_endpoint *ep, enum cfg_body_kind kind) {
    for (size_t i = 0; i < ep->n_content_types; i++)
        if (kind_of(ep, i) == kind)
            return true;
    return false;
}

/* The schema of the path parameters ("params"), or NULL when there are none. */
static json_t *params_schema(const struct cfg_endpoint *ep, int *failed) {
    json_t *props = json_object(), *required = json_array();
    const char *p = ep->path;
    char name[128];

    while ((p = strchr(p, '{')) != NULL) {
        const char *end = strchr(p, '}');
        if (!end)
            break;
        snprintf(name, sizeof(name), "%.*s", (int)(end - p - 1), p + 1);
        set(props, name, json_pack("{s:s}", "type", "string"), failed);
        append(required, json_string(name), failed);
        p = end + 1;
    }
    if (json_object_size(props) == 0) {
        json_decref(props);
        json_decref(required);
        return NULL;
    }
    return json_pack("{s:s, s:s, s:o, s:o, s:b}", "description",
                     "The path parameters, percent-decoded.", "type", "object", "properties", props,
                     "required", required, "additionalProperties", 0);
}

/* The JSON envelope {"data", "args", "params"} of a request to ep. */
static json_t *envelope_schema(const struct cfg_endpoint *ep, int *failed) {
    json_t *props = json_object(), *required = json_pack("[s,s]", "data", "args");
    json_t *data, *args, *params = params_schema(ep, failed);

    if (ep->body)
        data = json_deep_copy(ep->body);
    else if (has_kind(ep, CFG_BODY_FORM) || has_kind(ep, CFG_BODY_MULTIPART))
        data =
            json_pack("{s:s, s:{s:s}}", "type", "object", "additionalProperties", "type", "string");
    else
        data = json_pack("{s:s}", "type", "null");
    if (data && !json_object_get(data, "description"))
        set(data, "description",
            json_string("The request body: its JSON value, or the form fields as an object of "
                        "strings; null when the request has none."),
            failed);
    if (ep->args)
        args = json_pack("{s:s, s:[O, {s:s}]}", "description",
                         "The query string as an object of strings, or null without one.", "anyOf",
                         ep->args, "type", "null");
    else
        args = json_pack("{s:s, s:s}", "description", "Always null: the route takes no query.",
                         "type", "null");
    set(props, "data", data, failed);
    set(props, "args", args, failed);
    if (params) {
        set(props, "params", params, failed);
        append(required, json_string("params"), failed);
    }
    return json_pack("{s:s, s:o, s:o, s:b}", "type", "object", "properties", props, "required",
                     required, "additionalProperties", 0);
}

/* The AMQP properties restmapper sets on a request, as the message's headers. */
static json_t *request_headers(const struct cfg_endpoint *ep, bool file, int *failed) {
    json_t *props = json_pack(
        "{s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:[i]}}", "message_id", "type",
        "string", "description",
        "AMQP property: a UUIDv7 minted by restmapper, or the request's Idempotency-Key.",
        "timestamp", "type", "integer", "description",
        "AMQP property: seconds since the epoch when restmapper accepted the request.",
        "content_type", "type", "string", "description",
        "AMQP property: application/json for an envelope; the file's media type for bytes.",
        "delivery_mode", "type", "integer", "enum", ep->mode == CFG_MODE_RPC ? 1 : 2);
    json_t *required = json_pack("[s,s,s]", "message_id", "timestamp", "content_type");

    if (ep->mode == CFG_MODE_RPC) {
        set(props, "reply_to",
            json_pack("{s:s, s:s}", "type", "string", "description",
                      "AMQP property: the reply queue of the restmapper instance that asks."),
            failed);
        set(props, "correlation_id",
            json_pack("{s:s, s:s}", "type", "string", "description",
                      "AMQP property: unique per call; copied into the answer."),
            failed);
        append(required, json_string("reply_to"), failed);
        append(required, json_string("correlation_id"), failed);
    }
    if (file) {
        set(props, "x-fpesa-args",
            json_pack("{s:s, s:s}", "type", "string", "description",
                      "AMQP header: the query string as JSON (an object of strings, or null)."),
            failed);
        set(props, "x-fpesa-params",
            json_pack("{s:s, s:s}", "type", "string", "description",
                      "AMQP header: the path parameters as a JSON object (routes with "
                      "parameters only)."),
            failed);
        set(props, "x-fpesa-data",
            json_pack("{s:s, s:s}", "type", "string", "description",
                      "AMQP header, multipart only: the plain form fields as a JSON object."),
            failed);
        set(props, "x-fpesa-field",
            json_pack("{s:s, s:s}", "type", "string", "description",
                      "AMQP header, multipart only: the form field that carried the file."),
            failed);
        set(props, "x-fpesa-filename",
            json_pack("{s:s, s:s}", "type", "string", "description",
                      "AMQP header, multipart only: the file name the part gave, if any."),
            failed);
        append(required, json_string("x-fpesa-args"), failed);
    }
    return json_pack("{s:s, s:o, s:o}", "type", "object", "properties", props, "required",
                     required);
}

static json_t *error_schema(void) {
    return json_pack("{s:s, s:[s], s:{s:{s:s, s:[s,s], s:{s:{s:s, s:i, s:i}, s:{s:s}}}}}", "type",
                     "object", "required", "error", "properties", "error", "type", "object",
                     "required", "code", "description", "properties", "code", "type", "integer",
                     "minimum", 400, "maximum", 599, "description", "type", "string");
}

/* One request message of ep: the JSON envelope, or (file) the raw bytes. */
static json_t *request_message(const struct cfg_endpoint *ep, const char *name, bool file,
                               int *failed) {
    char title[600];
    json_t *m;

    snprintf(title, sizeof(title), "%s %s%s", ep->method, ep->path,
             file ? " (a file or raw body)" : "");
    m = json_pack("{s:s, s:s, s:o, s:{s:{s:s}}}", "name", name, "title", title, "headers",
                  request_headers(ep, file, failed), "bindings", "amqp", "bindingVersion",
                  AMQP_BINDING);
    if (ep->summary)
        set(m, "summary", json_string(ep->summary), failed);
    if (file) {
        set(m, "contentType", json_string("application/octet-stream"), failed);
        set(m, "description",
            json_string("The body is the file's bytes as they were sent; content_type is the "
                        "file's media type and the rest of the envelope rides in x-fpesa-* "
                        "headers."),
            failed);
        set(m, "payload", json_pack("{s:s, s:s}", "type", "string", "format", "binary"), failed);
    } else {
        set(m, "contentType", json_string("application/json"), failed);
        set(m, "payload", envelope_schema(ep, failed), failed);
    }
    if (ep->mode == CFG_MODE_RPC)
        set(m, "correlationId",
            json_pack("{s:s, s:s}", "description", "Copied into the answer.", "location",
                      "$message.header#/correlation_id"),
            failed);
    return m;
}

static json_t *reply_message(const struct cfg_endpoint *ep, const char *name) {
    char title[600];

    snprintf(title, sizeof(title), "Answer to %s %s", ep->method, ep->path);
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:{s:s, s:[{s:s}, {s:s}]}, s:{s:s, s:s}, s:{s:{s:s}}}", "name", name,
        "title", title, "contentType", "application/json", "description",
        "Published by the worker to exchange RPC with routing key = the request's reply_to and "
        "its correlation_id. An error object becomes that HTTP status; any other JSON is "
        "answered 200 as it is. Header x-fpesa-status sets the status and "
        "x-fpesa-header-<Name> a response header, whatever the content type.",
        "payload", "description", "The worker's answer.", "anyOf", "$ref",
        "#/components/schemas/Error", "description",
        "Any other JSON value (or bytes of another "
        "content_type): the 200 body.",
        "correlationId", "description", "The request's correlation_id.", "location",
        "$message.header#/correlation_id", "bindings", "amqp", "bindingVersion", AMQP_BINDING);
}

static json_t *frame_message(const struct cfg_endpoint *ep, const char *name, int *failed) {
    json_t *data = ep->body ? json_deep_copy(ep->body) : json_object();

    if (data && !json_object_get(data, "description"))
        set(data, "description", json_string("The accepted body."), failed);
    return json_pack("{s:s, s:s, s:s, s:{s:s, s:[s,s,s,s], s:{s:{s:s, s:s}, s:{s:s, s:s}, "
                     "s:{s:s, s:s}, s:o}}}",
                     "name", name, "title", "Live frame", "contentType", "application/json",
                     "payload", "type", "object", "required", "id", "channel", "received_at",
                     "data", "properties", "id", "type", "string", "description",
                     "The message id, as answered to the request.", "channel", "type", "string",
                     "const", ep->path, "received_at", "type", "string", "description",
                     "When restmapper accepted it (UTC, ISO 8601, milliseconds).", "data", data);
}

/* The AMQP binding of a channel: an exchange (routing key) or a queue. */
static json_t *exchange_binding(const char *name, const char *type, const char *vhost) {
    return json_pack("{s:{s:s, s:{s:s, s:s, s:b, s:b, s:s}, s:s}}", "amqp", "is", "routingKey",
                     "exchange", "name", name, "type", type, "durable", 1, "autoDelete", 0, "vhost",
                     vhost, "bindingVersion", AMQP_BINDING);
}

static json_t *queue_binding(const char *name, bool durable, bool exclusive, bool auto_delete,
                             const char *vhost) {
    json_t *q = json_pack("{s:b, s:b, s:b, s:s}", "durable", durable, "exclusive", exclusive,
                          "autoDelete", auto_delete, "vhost", vhost);

    if (q && name)
        json_object_set_new(q, "name", json_string(name));
    return json_pack("{s:{s:s, s:o, s:s}}", "amqp", "is", "queue", "queue", q, "bindingVersion",
                     AMQP_BINDING);
}

static json_t *broker_servers(void) {
    return json_pack("[{s:s}]", "$ref", "#/servers/broker");
}

/* A channel with one message reference per name in msgs (components). */
static json_t *channel(json_t *addr, const char *description, json_t *bindings, json_t *servers,
                       json_t *messages) {
    return json_pack("{s:o, s:s, s:o, s:o, s:o}", "address", addr, "description", description,
                     "servers", servers, "messages", messages, "bindings", bindings);
}

/* The handlers configured on queue q, as "a, b" (or "no handler in this file"). */
static void handler_names(const struct cfg *cfg, const char *q, char *out, size_t len) {
    size_t o = 0;

    out[0] = '\0';
    for (size_t i = 0; i < cfg->n_handlers && o + 1 < len; i++) {
        if (!cfg->handlers[i].queue || strcmp(cfg->handlers[i].queue, q) != 0)
            continue;
        int w = snprintf(out + o, len - o, "%s%s", o ? ", " : "", cfg->handlers[i].name);
        if (w < 0 || (size_t)w >= len - o)
            break;
        o += (size_t)w;
    }
    if (o == 0)
        snprintf(out, len, "no handler of this file");
}

/* The reference "#/channels/<chan>/messages/<msg>". */
static json_t *chan_msg(const char *chan, const char *msg) {
    return ref("#/channels/%s/messages/%s", chan, msg);
}

/* Adds the channels, operations and messages of one endpoint. */
static void add_endpoint(const struct cfg *cfg, const struct cfg_endpoint *ep, const char *id,
                         const char *vhost, json_t *channels, json_t *operations, json_t *messages,
                         json_t *reply_msgs, int *failed) {
    bool rpc = ep->mode == CFG_MODE_RPC, env, file;
    char ex[300], qu[300], req[300], raw[300], rep[300], op[300], text[1200], names[400];
    char ref_buf[400];
    json_t *ex_msgs = json_object(), *q_msgs = json_object(), *send_msgs = json_array();
    json_t *recv_msgs = json_array(), *o;

    shapes(ep, &env, &file);
    snprintf(ex, sizeof(ex), "%s_exchange", id);
    snprintf(qu, sizeof(qu), "%s_queue", id);
    snprintf(req, sizeof(req), "%s_request", id);
    snprintf(raw, sizeof(raw), "%s_file", id);
    snprintf(rep, sizeof(rep), "%s_reply", id);
    if (env) {
        set(messages, req, request_message(ep, req, false, failed), failed);
        set(ex_msgs, "request", ref("#/components/messages/%s", req), failed);
        set(q_msgs, "request", ref("#/components/messages/%s", req), failed);
        append(send_msgs, chan_msg(ex, "request"), failed);
        append(recv_msgs, chan_msg(qu, "request"), failed);
    }
    if (file) {
        set(messages, raw, request_message(ep, raw, true, failed), failed);
        set(ex_msgs, "file", ref("#/components/messages/%s", raw), failed);
        set(q_msgs, "file", ref("#/components/messages/%s", raw), failed);
        append(send_msgs, chan_msg(ex, "file"), failed);
        append(recv_msgs, chan_msg(qu, "file"), failed);
    }

    snprintf(text, sizeof(text),
             "Exchange \"%s\" (%s, durable): restmapper publishes every accepted %s %s here%s.",
             ep->exchange, rpc ? "direct" : "fanout", ep->method, ep->path,
             rpc ? " with routing key = the exchange name"
                 : ", persistent, and answers the client once the broker confirms it");
    set(channels, ex,
        channel(address(ep->exchange), text,
                exchange_binding(ep->exchange, rpc ? "direct" : "fanout", vhost), broker_servers(),
                ex_msgs),
        failed);
    handler_names(cfg, ep->exchange, names, sizeof(names));
    snprintf(text, sizeof(text),
             "Queue \"%s\" (durable), bound to the exchange of the same name%s, so nothing is "
             "lost before a worker starts. Consumed by: %s.",
             ep->exchange, rpc ? " with that name as routing key" : "", names);
    set(channels, qu,
        channel(address(ep->exchange), text, queue_binding(ep->exchange, true, false, false, vhost),
                broker_servers(), q_msgs),
        failed);

    snprintf(op, sizeof(op), "%s_send", id);
    snprintf(text, sizeof(text), "restmapper, on %s %s: %s", ep->method, ep->path,
             rpc ? "sends the request and waits for the answer until the route's timeout "
                   "(504 after it); the request expires with that timeout"
                 : "publishes the request and answers 202 once the broker has confirmed it");
    snprintf(ref_buf, sizeof(ref_buf), "#/channels/%s", ex);
    o = json_pack("{s:s, s:{s:s}, s:s, s:O}", "action", "send", "channel", "$ref", ref_buf,
                  "summary", text, "messages", send_msgs);
    if (rpc) {
        set(o, "bindings",
            json_pack("{s:{s:i, s:i, s:b, s:s}}", "amqp", "expiration", (int)ep->timeout_ms,
                      "deliveryMode", 1, "mandatory", 0, "bindingVersion", AMQP_BINDING),
            failed);
        set(o, "reply",
            json_pack("{s:{s:s, s:s}, s:{s:s}, s:[o]}", "address", "description",
                      "The reply queue the request names in reply_to.", "location",
                      "$message.header#/reply_to", "channel", "$ref", "#/channels/rpc_reply",
                      "messages", chan_msg("rpc_reply", rep)),
            failed);
    } else {
        set(o, "bindings",
            json_pack("{s:{s:i, s:b, s:s}}", "amqp", "deliveryMode", 2, "mandatory", 0,
                      "bindingVersion", AMQP_BINDING),
            failed);
    }
    set(operations, op, o, failed);

    snprintf(op, sizeof(op), "%s_consume", id);
    snprintf(text, sizeof(text), "A worker (%s) consumes the queue with manual acknowledgements%s.",
             names,
             rpc ? " and publishes one answer per request to exchange RPC"
                 : ", acknowledging once the effect is durable");
    snprintf(ref_buf, sizeof(ref_buf), "#/channels/%s", qu);
    o = json_pack("{s:s, s:{s:s}, s:s, s:O, s:{s:{s:b, s:s}}}", "action", "receive", "channel",
                  "$ref", ref_buf, "summary", text, "messages", recv_msgs, "bindings", "amqp",
                  "ack", 1, "bindingVersion", AMQP_BINDING);
    if (rpc) {
        set(messages, rep, reply_message(ep, rep), failed);
        set(reply_msgs, rep, ref("#/components/messages/%s", rep), failed);
        set(o, "reply",
            json_pack("{s:{s:s, s:s}, s:{s:s}, s:[o]}", "address", "description",
                      "The reply queue the request names in reply_to.", "location",
                      "$message.header#/reply_to", "channel", "$ref", "#/channels/rpc_reply",
                      "messages", chan_msg("rpc_reply", rep)),
            failed);
    }
    set(operations, op, o, failed);
    json_decref(send_msgs);
    json_decref(recv_msgs);
}

/* The live websocket channel of a live endpoint and liveupdate's push to it. */
static void add_live(const struct cfg_endpoint *ep, const char *id, json_t *channels,
                     json_t *operations, json_t *messages, int *failed) {
    char ch[300], fr[300], op[300], r[400], text[800];
    json_t *c;

    snprintf(ch, sizeof(ch), "%s_live", id);
    snprintf(fr, sizeof(fr), "%s_frame", id);
    snprintf(op, sizeof(op), "%s_push", id);
    set(messages, fr, frame_message(ep, fr, failed), failed);
    snprintf(text, sizeof(text),
             "Websocket channel \"%s\" (through nginx: /ws/v1%s): one text frame per message "
             "accepted on %s %s, in the order the broker delivered them.",
             ep->path, ep->path, ep->method, ep->path);
    c = json_pack("{s:o, s:s, s:[{s:s}], s:{s:o}, s:{s:{s:s, s:{s:s, s:{s:{s:s, s:s}}}, s:s}}}",
                  "address", address(ep->path), "description", text, "servers", "$ref",
                  "#/servers/liveupdate", "messages", "frame", ref("#/components/messages/%s", fr),
                  "bindings", "ws", "method", "GET", "query", "type", "object", "properties",
                  "since", "type", "string", "description",
                  "Resume after this message id: stored messages first, then the live stream.",
                  "bindingVersion", WS_BINDING);
    set(channels, ch, c, failed);
    snprintf(r, sizeof(r), "#/channels/%s", ch);
    set(operations, op,
        json_pack("{s:s, s:{s:s}, s:s, s:[o]}", "action", "send", "channel", "$ref", r, "summary",
                  "liveupdate pushes every accepted message to the channel's clients.", "messages",
                  chan_msg(ch, "frame")),
        failed);
}

/* What the first pass learnt about an endpoint, for the queues that follow. */
struct ep_ids {
    const char *exchange; /* borrowed from the cfg */
    char id[300];
    bool envelope, file;
};

static const struct ep_ids *ids_find(const struct ep_ids *ids, size_t n, const char *exchange) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i].exchange, exchange) == 0)
            return &ids[i];
    return NULL;
}

/* A queue consumed by a handler that no endpoint feeds (another producer). */
static void add_foreign_queue(const struct cfg *cfg, const char *queue, const char *vhost,
                              json_t *channels, json_t *operations, json_t *messages, int *failed) {
    char qc[340], op[360], r[400], names[400], text[900];

    ident(qc, sizeof(qc), queue, "queue");
    if (json_object_get(channels, qc))
        return;
    if (!json_object_get(messages, "any_message"))
        set(messages, "any_message",
            json_pack("{s:s, s:s, s:{}}", "name", "any_message", "summary",
                      "A message of another producer; its shape is the plugin's business.",
                      "payload"),
            failed);
    handler_names(cfg, queue, names, sizeof(names));
    snprintf(text, sizeof(text),
             "Queue \"%s\" (durable), fed by another producer. Consumed by: %s.", queue, names);
    set(channels, qc,
        channel(address(queue), text, queue_binding(queue, true, false, false, vhost),
                broker_servers(),
                json_pack("{s:{s:s}}", "message", "$ref", "#/components/messages/any_message")),
        failed);
    snprintf(op, sizeof(op), "%s_consume", qc);
    snprintf(r, sizeof(r), "#/channels/%s", qc);
    set(operations, op,
        json_pack("{s:s, s:{s:s}, s:s, s:[o]}", "action", "receive", "channel", "$ref", r,
                  "summary", "The handler host consumes the queue.", "messages",
                  chan_msg(qc, "message")),
        failed);
}

/* "<queue>.dlq": the fanout exchange and queue where the handler host moves a
 * message proven to be the cause of a failure, properties kept. */
static void add_dead_letters(const char *queue, const struct ep_ids *e, const char *vhost,
                             json_t *channels, json_t *operations, int *failed) {
    char dlq[300], ch[340], op[360], r[400], text[900];
    json_t *msgs = json_object(), *list = json_array();

    snprintf(dlq, sizeof(dlq), "%s.dlq", queue);
    ident(ch, sizeof(ch), dlq, "");
    if (json_object_get(channels, ch)) {
        json_decref(msgs);
        json_decref(list);
        return;
    }
    if (!e) {
        set(msgs, "message", json_pack("{s:s}", "$ref", "#/components/messages/any_message"),
            failed);
        append(list, chan_msg(ch, "message"), failed);
    }
    if (e && e->envelope) {
        set(msgs, "request", ref("#/components/messages/%s_request", e->id), failed);
        append(list, chan_msg(ch, "request"), failed);
    }
    if (e && e->file) {
        set(msgs, "file", ref("#/components/messages/%s_file", e->id), failed);
        append(list, chan_msg(ch, "file"), failed);
    }
    snprintf(text, sizeof(text),
             "Dead letters of \"%s\": exchange \"%s\" (fanout, durable) and the durable queue "
             "of the same name bound to it. A message a plugin rejected, or that crashed its "
             "handler too often, lands here as it was.",
             queue, dlq);
    set(channels, ch,
        channel(address(dlq), text, queue_binding(dlq, true, false, false, vhost), broker_servers(),
                msgs),
        failed);
    snprintf(op, sizeof(op), "%s_dead_letter", ch);
    snprintf(r, sizeof(r), "#/channels/%s", ch);
    set(operations, op,
        json_pack("{s:s, s:{s:s}, s:s, s:o, s:{s:{s:i, s:s}}}", "action", "send", "channel", "$ref",
                  r, "summary", "The handler host dead-letters a message.", "messages", list,
                  "bindings", "amqp", "deliveryMode", 2, "bindingVersion", AMQP_BINDING),
        failed);
}

json_t *asyncapi_build(const struct cfg *cfg) {
    int failed = 0;
    char host[300], vhost[256], live_host[300], text[800];
    json_t *doc = json_object(), *channels = json_object(), *operations = json_object();
    json_t *messages = json_object(), *reply_msgs = json_object(), *live_msgs = json_object();
    json_t *live_recv = json_array();
    const char *bus_url = cfg->bus.url ? cfg->bus.url : "";
    const char *lh = cfg->live.host;
    struct ep_ids *ids = calloc(cfg->n_endpoints + 1, sizeof(*ids));

    if (!ids)
        failed = 1;
    broker_host(bus_url, host, sizeof(host), vhost, sizeof(vhost));
    snprintf(live_host, sizeof(live_host), strchr(lh, ':') ? "[%s]:%d" : "%s:%d", lh,
             cfg->live.port);
    set(doc, "asyncapi", json_string("3.0.0"), &failed);
    set(doc, "info",
        json_pack("{s:s, s:s, s:s}", "title", "fpesa bus", "version", "1", "description",
                  "The AMQP topology and messages of the endpoints configuration: what "
                  "restmapper publishes for every REST route, what handler plugins consume and "
                  "answer, and what liveupdate pushes to websocket clients."),
        &failed);
    set(doc, "defaultContentType", json_string("application/json"), &failed);
    snprintf(text, sizeof(text), "RabbitMQ (bus.url), virtual host \"%s\".", vhost);
    set(doc, "servers",
        json_pack("{s:{s:s, s:s, s:s, s:s}, s:{s:s, s:s, s:s}}", "broker", "host", host, "protocol",
                  strncmp(bus_url, "amqps", 5) == 0 ? "amqps" : "amqp", "protocolVersion", "0.9.1",
                  "description", text, "liveupdate", "host", live_host, "protocol", "ws",
                  "description",
                  "A liveupdate instance (liveupdate.listen); through nginx the channels are "
                  "under /ws/v1."),
        &failed);

    for (size_t i = 0; ids && i < cfg->n_endpoints; i++) {
        const struct cfg_endpoint *ep = &cfg->endpoints[i];
        struct ep_ids *e = &ids[i];
        char req[340];

        e->exchange = ep->exchange ? ep->exchange : "";
        shapes(ep, &e->envelope, &e->file);
        ident(e->id, sizeof(e->id), ep->path, ep->method);
        /* Two paths that differ only in punctuation would share an id. */
        for (size_t j = 0; j < i; j++) {
            if (strcmp(ids[j].id, e->id) == 0) {
                size_t n = strlen(e->id);
                snprintf(e->id + n, sizeof(e->id) - n, "_%zu", i);
                break;
            }
        }
        add_endpoint(cfg, ep, e->id, vhost, channels, operations, messages, reply_msgs, &failed);
        if (ep->live) {
            add_live(ep, e->id, channels, operations, messages, &failed);
            snprintf(req, sizeof(req), "%s_request", e->id);
            if (e->envelope) {
                set(live_msgs, req, ref("#/components/messages/%s", req), &failed);
                append(live_recv, chan_msg("liveupdate_queue", req), &failed);
            }
        }
    }

    if (json_object_size(reply_msgs) > 0) {
        set(channels, "rpc_reply",
            channel(json_null(),
                    "The reply queue of one restmapper instance: exclusive, server-named, bound "
                    "to exchange RPC (direct, durable) with its own name as routing key. Its "
                    "name travels in every request's reply_to.",
                    exchange_binding("RPC", "direct", vhost), broker_servers(),
                    json_incref(reply_msgs)),
            &failed);
        json_t *list = json_array();
        const char *k;
        json_t *v;
        json_object_foreach(reply_msgs, k, v) append(list, chan_msg("rpc_reply", k), &failed);
        set(operations, "rpc_reply_receive",
            json_pack("{s:s, s:{s:s}, s:s, s:o}", "action", "receive", "channel", "$ref",
                      "#/channels/rpc_reply", "summary",
                      "restmapper matches each answer to its waiting request by correlation_id; "
                      "an answer after the timeout is dropped.",
                      "messages", list),
            &failed);
    }
    if (json_object_size(live_msgs) > 0) {
        set(channels, "liveupdate_queue",
            channel(json_null(),
                    "The queue of one liveupdate instance: exclusive, auto-delete, server-named, "
                    "bound to the fanout exchange of every live endpoint.",
                    queue_binding(NULL, false, true, true, vhost), broker_servers(),
                    json_incref(live_msgs)),
            &failed);
        set(operations, "liveupdate_receive",
            json_pack("{s:s, s:{s:s}, s:s, s:O}", "action", "receive", "channel", "$ref",
                      "#/channels/liveupdate_queue", "summary",
                      "liveupdate receives every accepted message of the live endpoints.",
                      "messages", live_recv),
            &failed);
    }

    for (size_t i = 0; ids && i < cfg->n_handlers; i++) {
        const struct cfg_handler *h = &cfg->handlers[i];
        const struct ep_ids *e;

        if (!h->queue)
            continue;
        e = ids_find(ids, cfg->n_endpoints, h->queue);
        if (!e)
            add_foreign_queue(cfg, h->queue, vhost, channels, operations, messages, &failed);
        add_dead_letters(h->queue, e, vhost, channels, operations, &failed);
    }
    set(doc, "channels", channels, &failed);
    set(doc, "operations", operations, &failed);
    set(doc, "components",
        json_pack("{s:{s:o}, s:o}", "schemas", "Error", error_schema(), "messages", messages),
        &failed);
    json_decref(reply_msgs);
    json_decref(live_msgs);
    json_decref(live_recv);
    free(ids);
    if (failed) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}
