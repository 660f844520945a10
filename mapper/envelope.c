/* The message a request becomes: the JSON envelope (data, args, params)
 * read from the body's kind and validated against the endpoint's schemas,
 * or a file's bytes with the rest in headers; and the bus message made of it.
 */
#include "http_int.h"

#include "jsontext.h"
#include "magic.h"
#include "query.h"
#include "uuid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void http_outgoing_fini(struct http_outgoing *o) {
    free(o->envelope);
    for (size_t i = 0; i < sizeof(o->texts) / sizeof(o->texts[0]); i++)
        free(o->texts[i]);
}

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
static char *envelope_text(struct http_request *rq, bool raw, const json_t *data,
                           const json_t *args, size_t *len) {
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
int http_build_envelope(struct http_request *rq, struct http_outgoing *o, struct http_form *fm) {
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
            http_fail(rq, MHD_HTTP_BAD_REQUEST, "%s %s takes no query parameters", ep->method,
                      ep->path);
            goto out;
        }
        if (query_parse(rq->query, &args, err, sizeof(err)) != 0) {
            http_fail(rq, MHD_HTTP_BAD_REQUEST, "%s", err);
            goto out;
        }
    }
    if (ep->args_schema) {
        json_t *empty = args ? NULL : json_object();
        int bad = jschema_validate(ep->args_schema, args ? args : empty, &e);

        json_decref(empty);
        if (bad) {
            http_fail_schema(rq, ep->validation_status, "query", &e);
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
            http_fail(rq, MHD_HTTP_CONTENT_TOO_LARGE, "the body is too large: %s", jerr.text);
            goto out;
        }
        if (st == JTEXT_NOMEM) {
            http_fail(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
            goto out;
        }
        if (st != JTEXT_OK) {
            http_fail(rq, ep->validation_status,
                      "the body is not valid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                      jerr.column);
            goto out;
        }
        raw = true;
    } else if (rq->kind == CFG_BODY_FORM) {
        if (memchr(rq->body, '\0', rq->body_len)) {
            http_fail(rq, MHD_HTTP_BAD_REQUEST, "the form body holds a NUL byte");
            goto out;
        }
        if (query_parse(rq->body, &data, err, sizeof(err)) != 0) {
            http_fail(rq, MHD_HTTP_BAD_REQUEST, "malformed form body: %s", err);
            goto out;
        }
    } else if (rq->kind == CFG_BODY_MULTIPART) {
        if (http_read_multipart(rq, fm, &data) != 0)
            goto out;
        is_file = fm->have_file;
    } else {
        if (!magic_matches(rq->media_type, rq->body, rq->body_len)) {
            http_fail(rq, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "the body is not a complete %s file",
                      rq->media_type);
            goto out;
        }
        is_file = true;
    }
    /* A binary body has no schema to meet; everything else meets the body's. */
    if (ep->body_schema && !(rq->body_len && rq->kind == CFG_BODY_BINARY) &&
        jschema_validate_exact(ep->body_schema, data, nums, &e) != 0) {
        http_fail_schema(rq, ep->validation_status, "body", &e);
        goto out;
    }
    key = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Idempotency-Key");
    if (key) {
        if (!http_idempotency_key_is_valid(key)) {
            http_fail(rq, MHD_HTTP_BAD_REQUEST,
                      "Idempotency-Key must be 1 to %d printable ASCII characters",
                      IDEMPOTENCY_KEY_MAX);
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
        if (http_file_headers(rq, o, args, data, multipart ? fm : NULL) != 0) {
            http_fail(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
            goto out;
        }
        rc = 0;
        goto out;
    }
    o->envelope = envelope_text(rq, raw, data, args, &o->len);
    if (!o->envelope) {
        http_fail(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
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
void http_message_of(const struct http_request *rq, const struct http_outgoing *o,
                     struct mbus_msg *msg) {
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
