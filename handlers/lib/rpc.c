/* The rpc plugin skeleton (rpc.h): the batch loop, the envelope and the
 * answers every rpc plugin shares. */
#include "rpc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rpc_reply_error(const struct rpc *r, const struct fpesa_message *m, int code,
                     const char *desc) {
    rpc_reply_json(r, m, json_pack("{s:{s:i,s:s}}", "error", "code", code, "description", desc));
}

int rpc_reply_json(const struct rpc *r, const struct fpesa_message *m, json_t *doc) {
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    int rc = -1;

    if (text)
        rc = r->host->reply(r->ctx, m, text, strlen(text), "application/json") < 0 ? -1 : 0;
    if (rc < 0)
        FPESA_LOG(r, FPESA_LOG_WARN, "%s: cannot answer id=%s", r->name,
                  m->message_id ? m->message_id : "-");
    free(text);
    json_decref(doc);
    return rc;
}

int rpc_reply_parts(const struct rpc *r, const struct fpesa_message *m, const char *const *parts,
                    size_t n) {
    size_t len = 0, w = 0;
    char *buf;
    int rc;

    for (size_t i = 0; i < n; i++)
        len += strlen(parts[i]);
    buf = malloc(len + 1);
    if (!buf) {
        FPESA_LOG(r, FPESA_LOG_WARN, "%s: out of memory answering id=%s", r->name,
                  m->message_id ? m->message_id : "-");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(parts[i]);
        memcpy(buf + w, parts[i], l);
        w += l;
    }
    buf[w] = '\0';
    rc = r->host->reply(r->ctx, m, buf, w, "application/json") < 0 ? -1 : 0;
    if (rc < 0)
        FPESA_LOG(r, FPESA_LOG_WARN, "%s: cannot answer id=%s", r->name,
                  m->message_id ? m->message_id : "-");
    free(buf);
    return rc;
}

json_t *rpc_envelope(const struct rpc *r, const struct fpesa_message *m) {
    json_t *env = json_loadb(m->body, m->len, 0, NULL);

    if (env && json_is_object(env))
        return env;
    json_decref(env);
    rpc_reply_error(r, m, 400, "the request is not a JSON envelope");
    return NULL;
}

int rpc_batch(const struct rpc *r, void *state, rpc_handle_fn handle,
              const struct fpesa_message *const *msgs, size_t n, enum fpesa_result *results) {
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i]->reply_to) {
            FPESA_LOG(r, FPESA_LOG_WARN, "%s: request without reply_to id=%s", r->name,
                      msgs[i]->message_id ? msgs[i]->message_id : "-");
            results[i] = FPESA_REJECT;
            continue;
        }
        handle(state, msgs[i]);
        results[i] = FPESA_OK;
    }
    return 0;
}

int rpc_config_long(const struct rpc *r, const char *key, long def, long min, long max, long *out) {
    const char *s = r->host->config(r->ctx, key);
    char *end;
    long v;

    if (!s) {
        *out = def;
        return 0;
    }
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        FPESA_LOG(r, FPESA_LOG_ERROR, "%s: config %s \"%s\" is not %ld to %ld", r->name, key, s,
                  min, max);
        return -1;
    }
    *out = v;
    return 0;
}
