/* The host services table handed to plugins (struct fpesa_host). */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer.h"
#include "ctx.h"
#include "log.h"

static void svc_log(struct fpesa_ctx *ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void svc_log(struct fpesa_ctx *ctx, int level, const char *fmt, ...) {
    enum log_level l;
    char line[1536], quoted[1700];
    va_list ap;

    switch (level) {
    case FPESA_LOG_DEBUG:
        l = LOG_DEBUG;
        break;
    case FPESA_LOG_WARN:
        l = LOG_WARN;
        break;
    case FPESA_LOG_ERROR:
        l = LOG_ERROR;
        break;
    default:
        l = LOG_INFO;
        break;
    }
    if (l < log_threshold)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* The plugin's text is one quoted value: it can neither end the line
     * nor add fields of its own. */
    log_write(l, "plugin handler=%s instance=%d msg=%s", ctx ? ctx->h->name : "?",
              ctx ? ctx->instance : -1, log_quote(line, quoted, sizeof(quoted)));
}

static int publish(struct fpesa_ctx *ctx, const char *exchange, const char *key, const char *body,
                   size_t len, const char *ctype, const char *corr, uint8_t mode,
                   const struct amqpc_header *headers, size_t n_headers) {
    struct amqpc_out m = {0};

    if (!ctx || !ctx->in_batch || !ctx->conn || !exchange || !key || (!body && len))
        return -1;
    m.exchange = exchange;
    m.routing_key = key;
    m.body = body;
    m.body_len = len;
    m.content_type = ctype ? ctype : "application/json";
    m.delivery_mode = mode;
    m.correlation_id = corr;
    m.headers = headers;
    m.n_headers = n_headers;
    if (amqpc_publish(ctx->conn, 1, &m) != 0) {
        LOG(LOG_WARN, "publish failed handler=%s exchange=%s", ctx->h->name, exchange);
        return -1;
    }
    return 0;
}

static int svc_reply(struct fpesa_ctx *ctx, const struct fpesa_message *msg, const char *body,
                     size_t len, const char *ctype) {
    if (!msg || !msg->reply_to || !*msg->reply_to)
        return -1;
    /* Answers are transient: the caller waits for them on an exclusive queue. */
    return publish(ctx, "RPC", msg->reply_to, body, len, ctype, msg->correlation_id, 1, NULL, 0);
}

static int svc_publish(struct fpesa_ctx *ctx, const char *exchange, const char *key,
                       const char *body, size_t len, const char *ctype) {
    return publish(ctx, exchange, key, body, len, ctype, NULL, 2, NULL, 0);
}

#define REPLY_HEADERS_MAX 16

/* HTTP status and headers travel as AMQP headers restmapper reads:
 * "x-fpesa-status" and "x-fpesa-header-<Name>". */
static int svc_reply_http(struct fpesa_ctx *ctx, const struct fpesa_message *msg, int status,
                          const char *const *headers, const char *body, size_t len,
                          const char *ctype) {
    struct amqpc_header e[REPLY_HEADERS_MAX + 1];
    char names[REPLY_HEADERS_MAX][128], st[16];
    size_t n = 0;

    if (!msg || !msg->reply_to || !*msg->reply_to)
        return -1;
    if (status) {
        if (status < 100 || status > 599)
            return -1;
        snprintf(st, sizeof(st), "%d", status);
        e[n].name = "x-fpesa-status";
        e[n++].value = amqpc_string(st);
    }
    for (size_t i = 0, j = 0; headers && headers[i] && headers[i + 1]; i += 2, j++) {
        int k;

        if (j >= REPLY_HEADERS_MAX)
            return -1;
        k = snprintf(names[j], sizeof(names[j]), "x-fpesa-header-%s", headers[i]);
        if (k < 0 || (size_t)k >= sizeof(names[j]) || strpbrk(headers[i], "\r\n: ") ||
            strpbrk(headers[i + 1], "\r\n"))
            return -1;
        e[n].name = names[j];
        e[n++].value = amqpc_string(headers[i + 1]);
    }
    return publish(ctx, "RPC", msg->reply_to, body, len, ctype, msg->correlation_id, 1, e, n);
}

static int svc_declare(struct fpesa_ctx *ctx, const char *exchange, const char *type,
                       const char *queue) {
    if (!ctx || !ctx->in_batch)
        return -1;
    return consumer_declare(ctx, exchange, type, queue);
}

static const char *keep(struct fpesa_ctx *ctx, char *s) {
    char **n;

    if (!s)
        return NULL;
    pthread_mutex_lock(&ctx->cache_lock);
    n = realloc(ctx->cache, (ctx->n_cache + 1) * sizeof(*n));
    if (!n) {
        pthread_mutex_unlock(&ctx->cache_lock);
        free(s);
        return NULL;
    }
    ctx->cache = n;
    ctx->cache[ctx->n_cache++] = s;
    pthread_mutex_unlock(&ctx->cache_lock);
    return s;
}

static const char *svc_config(struct fpesa_ctx *ctx, const char *key) {
    json_t *v;
    char part[256];
    const char *p, *dot;
    char buf[64];

    if (!ctx || !key)
        return NULL;
    v = ctx->h->config;
    for (p = key; v && *p; p = dot ? dot + 1 : p + strlen(p)) {
        size_t n;
        dot = strchr(p, '.');
        n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof(part))
            return NULL;
        memcpy(part, p, n);
        part[n] = '\0';
        v = json_object_get(v, part);
    }
    /* The file's top-level compat, unless the handler's config names its
     * own: a plugin may follow it (messages_get's offset shape). */
    if (!v && strcmp(key, "compat") == 0 && ctx->cfg->compat != CFG_COMPAT_NONE)
        return cfg_compat_name(ctx->cfg);
    /* Likewise database.read_url (a streaming replica) for a plugin that can
     * read from one: a handler's own read_url wins. */
    if (!v && strcmp(key, "read_url") == 0)
        return ctx->cfg->database.read_url;
    if (!v)
        return NULL;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return keep(ctx, strdup(json_string_value(v)));
    case JSON_INTEGER:
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return keep(ctx, strdup(buf));
    case JSON_REAL:
        snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
        return keep(ctx, strdup(buf));
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    default:
        return NULL;
    }
}

static const char *svc_database_url(struct fpesa_ctx *ctx) {
    return ctx ? ctx->cfg->database.url : NULL;
}

static const char *svc_name(struct fpesa_ctx *ctx) {
    return ctx ? ctx->h->name : NULL;
}

static const char *svc_queue(struct fpesa_ctx *ctx) {
    return ctx ? ctx->h->queue : NULL;
}

const struct fpesa_host host_services = {
    .abi_version = FPESA_HANDLER_ABI_VERSION,
    .struct_size = sizeof(struct fpesa_host),
    .log = svc_log,
    .reply = svc_reply,
    .publish = svc_publish,
    .config = svc_config,
    .database_url = svc_database_url,
    .name = svc_name,
    .queue = svc_queue,
    .reply_http = svc_reply_http,
    .declare = svc_declare,
};
