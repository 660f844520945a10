/* The multipart form of a request: its parts read into fields and at most
 * one file per file field, the file's type checked against the endpoint's
 * list and sniffed from its bytes, and the AMQP headers that carry the
 * form's other parts when the file itself goes on the bus.
 */
#include "http_int.h"

#include "magic.h"
#include "query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
        if (!f->n_types && http_kind_at(ep, (int)i) == CFG_BODY_BINARY)
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
    struct http_form *fm = ctx;
    struct http_request *rq = fm->rq;
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
            http_fail(rq, MHD_HTTP_BAD_REQUEST, "field \"%s\" does not take a file",
                      http_shown(nb, sizeof(nb), part->name));
            return 1;
        }
        if (fm->have_file) {
            http_fail(rq, MHD_HTTP_BAD_REQUEST, "only one file is taken per request");
            return 1;
        }
        if (!part->content_type[0] || strcmp(part->content_type, "application/octet-stream") == 0) {
            const char *sniffed = sniff_file_type(ep, f, part->data, part->len);

            if (sniffed)
                t = sniffed;
        }
        if (!file_type_accepted(ep, f, t, &limit)) {
            http_fail(rq, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                      "file type %s is not accepted in field \"%s\"", http_shown(tb, sizeof(tb), t),
                      http_shown(nb, sizeof(nb), part->name));
            return 1;
        }
        if (limit && part->len > limit) {
            http_fail(rq, MHD_HTTP_CONTENT_TOO_LARGE,
                      "the file in field \"%s\" is larger than %zu bytes",
                      http_shown(nb, sizeof(nb), part->name), limit);
            return 1;
        }
        if (!magic_matches(t, part->data, part->len)) {
            http_fail(rq, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                      "the file in field \"%s\" is not a complete %s file",
                      http_shown(nb, sizeof(nb), part->name), http_shown(tb, sizeof(tb), t));
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
        http_fail(rq, MHD_HTTP_BAD_REQUEST, "form field \"%s\" is not UTF-8 text",
                  http_shown(nb, sizeof(nb), part->name));
        return 1;
    }
    if (json_object_get(fm->fields, part->name)) {
        http_fail(rq, MHD_HTTP_BAD_REQUEST, "form field \"%s\" appears twice",
                  http_shown(nb, sizeof(nb), part->name));
        return 1;
    }
    if (json_object_set_new(fm->fields, part->name, json_stringn(part->data, part->len)) != 0) {
        http_fail(rq, MHD_HTTP_BAD_REQUEST, "form field \"%s\" is not valid",
                  http_shown(nb, sizeof(nb), part->name));
        return 1;
    }
    return 0;
}

/* Reads a multipart body into *data (the fields, new) and fm (the file). */
int http_read_multipart(struct http_request *rq, struct http_form *fm, json_t **data) {
    const struct cfg_endpoint *ep = rq->route->ep;
    const char *ctype =
        MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    char boundary[MPART_BOUNDARY_MAX + 1], err[200];
    int rc;

    if (multipart_boundary(ctype, boundary, sizeof(boundary)) != 0) {
        http_fail(rq, MHD_HTTP_BAD_REQUEST, "multipart/form-data needs a valid boundary parameter");
        return -1;
    }
    fm->rq = rq;
    fm->fields = json_object();
    if (!fm->fields) {
        http_fail(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
        return -1;
    }
    rc = multipart_parse(rq->body ? rq->body : "", rq->body_len, boundary, on_part, fm, err,
                         sizeof(err));
    if (rc != 0) {
        if (rc < 0)
            http_fail(rq, MHD_HTTP_BAD_REQUEST, "malformed multipart body: %s", err);
        json_decref(fm->fields);
        return -1;
    }
    for (size_t i = 0; i < ep->n_files; i++) {
        if (ep->files[i].required && !(fm->have_file && fm->file_cfg == &ep->files[i])) {
            http_fail(rq, ep->validation_status, "the file field \"%.100s\" is required",
                      ep->files[i].field);
            json_decref(fm->fields);
            return -1;
        }
    }
    *data = fm->fields;
    return 0;
}

/* Builds the headers of a message whose body is a file. */
int http_file_headers(struct http_request *rq, struct http_outgoing *o, json_t *args, json_t *data,
                      const struct http_form *fm) {
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
