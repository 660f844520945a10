#include "openapi.h"

#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* json_object_set_new that remembers a failure instead of returning it, so
 * that building a large document reads top to bottom. */
static void set(json_t *obj, const char *key, json_t *value, int *failed) {
    if (!obj) {
        json_decref(value);
        *failed = 1;
        return;
    }
    if (!value || json_object_set_new(obj, key, value) != 0)
        *failed = 1;
}

static json_t *error_ref(void) {
    return json_pack("{s:s, s:{s:{s:{s:s}}}}", "description", "An error", "content",
                     "application/json", "schema", "$ref", "#/components/schemas/Error");
}

static json_t *error_schema(void) {
    return json_pack("{s:s, s:[s], s:{s:{s:s, s:[s,s], s:{s:{s:s}, s:{s:s}, s:{s:s}, "
                     "s:{s:s}, s:{s:s}}}}}",
                     "type", "object", "required", "error", "properties", "error", "type", "object",
                     "required", "code", "description", "properties", "code", "type", "integer",
                     "description", "type", "string", "path", "type", "string", "keyword", "type",
                     "string", "in", "type", "string");
}

/* "/echo/{word}" -> "echo_word_POST": an operationId from path and method. */
static void operation_id(char *dst, size_t len, const char *path, const char *method) {
    size_t o = 0;
    bool sep = false;

    for (const char *p = path; *p && o + 1 < len; p++) {
        if (isalnum((unsigned char)*p)) {
            if (sep && o > 0 && o + 1 < len)
                dst[o++] = '_';
            dst[o++] = (char)tolower((unsigned char)*p);
            sep = false;
        } else {
            sep = true;
        }
    }
    snprintf(dst + o, len - o, "%s%s", o ? "_" : "", method);
}

static json_t *parameters(const struct cfg_endpoint *ep, int *failed) {
    json_t *list = json_array();
    const char *p = ep->path;

    if (!list) {
        *failed = 1;
        return NULL;
    }
    while ((p = strchr(p, '{')) != NULL) {
        const char *end = strchr(p, '}');
        char name[128];

        if (!end)
            break;
        snprintf(name, sizeof(name), "%.*s", (int)(end - p - 1), p + 1);
        if (json_array_append_new(list,
                                  json_pack("{s:s, s:s, s:b, s:{s:s}}", "name", name, "in", "path",
                                            "required", 1, "schema", "type", "string")) != 0)
            *failed = 1;
        p = end + 1;
    }
    if (ep->args) {
        json_t *props = json_object_get(ep->args, "properties");
        json_t *required = json_object_get(ep->args, "required");
        const char *name;
        json_t *schema;

        json_object_foreach(props, name, schema) {
            bool req = false;
            size_t i;
            json_t *r;

            json_array_foreach(required, i, r) {
                if (json_is_string(r) && strcmp(json_string_value(r), name) == 0)
                    req = true;
            }
            json_t *param = json_pack("{s:s, s:s, s:b, s:O}", "name", name, "in", "query",
                                      "required", req, "schema", schema);
            json_t *desc = json_object_get(schema, "description");
            if (param && json_is_string(desc))
                set(param, "description", json_copy(desc), failed);
            if (json_array_append_new(list, param) != 0)
                *failed = 1;
        }
    }
    return list;
}

static enum cfg_body_kind kind_of(const struct cfg_endpoint *ep, size_t i) {
    return ep->content_kinds ? ep->content_kinds[i] : CFG_BODY_JSON;
}

static bool has_non_json(const struct cfg_endpoint *ep) {
    for (size_t i = 0; i < ep->n_content_types; i++)
        if (kind_of(ep, i) != CFG_BODY_JSON)
            return true;
    return false;
}

/* The schema of a body of one kind (new reference): bytes for a binary
 * body; the body schema for the others, with the file fields added as
 * binary strings for multipart. */
static json_t *body_schema(const struct cfg_endpoint *ep, enum cfg_body_kind kind) {
    json_t *schema, *props;

    if (kind == CFG_BODY_BINARY)
        return json_pack("{s:s, s:s}", "type", "string", "format", "binary");
    schema = ep->body ? json_deep_copy(ep->body) : json_object();
    if (kind != CFG_BODY_MULTIPART || ep->n_files == 0 || !json_is_object(schema))
        return schema;
    props = json_object_get(schema, "properties");
    if (!json_is_object(props)) {
        props = json_object();
        json_object_set_new(schema, "properties", props);
    }
    for (size_t i = 0; i < ep->n_files; i++) {
        if (ep->files[i].field)
            json_object_set_new(props, ep->files[i].field,
                                json_pack("{s:s, s:s}", "type", "string", "format", "binary"));
    }
    return schema;
}

static json_t *operation(const struct cfg_endpoint *ep, int *failed) {
    json_t *op = json_object();
    json_t *responses = json_object();
    char id[256], code[8];

    operation_id(id, sizeof(id), ep->path, ep->method);
    set(op, "operationId", json_string(id), failed);
    set(op, "summary", json_string(ep->summary ? ep->summary : ""), failed);
    set(op, "x-fpesa-mode", json_string(ep->mode == CFG_MODE_RPC ? "rpc" : "publish"), failed);
    set(op, "x-fpesa-exchange", json_string(ep->exchange ? ep->exchange : ""), failed);
    if (ep->live)
        set(op, "x-fpesa-live", json_true(), failed);
    set(op, "parameters", parameters(ep, failed), failed);
    if (ep->body || has_non_json(ep)) {
        json_t *content = json_object();

        for (size_t i = 0; i < ep->n_content_types; i++)
            set(content, ep->content_types[i],
                json_pack("{s:o}", "schema", body_schema(ep, kind_of(ep, i))), failed);
        if (ep->n_content_types == 0)
            set(content, "application/json", json_pack("{s:O}", "schema", ep->body), failed);
        set(op, "requestBody", json_pack("{s:b, s:o}", "required", 1, "content", content), failed);
    }
    if (ep->mode == CFG_MODE_PUBLISH) {
        snprintf(code, sizeof(code), "%d", ep->status);
        set(responses, code,
            json_pack("{s:s, s:{s:{s:{s:s, s:[s], s:{s:{s:s}}}}}}", "description",
                      "Accepted: the broker confirmed the message", "content", "application/json",
                      "schema", "type", "object", "required", "id", "properties", "id", "type",
                      "string"),
            failed);
    } else {
        set(responses, "200",
            json_pack("{s:s, s:{s:{}}}", "description", "The worker's answer", "content",
                      "application/json"),
            failed);
        set(responses, "504", error_ref(), failed);
    }
    snprintf(code, sizeof(code), "%d", ep->validation_status);
    set(responses, code, error_ref(), failed);
    set(responses, "400", error_ref(), failed);
    if (ep->body) {
        set(responses, "413", error_ref(), failed);
        set(responses, "415", error_ref(), failed);
    }
    set(responses, "503", error_ref(), failed);
    set(op, "responses", responses, failed);
    return op;
}

static json_t *builtin(const char *summary, const char *ctype, int *failed) {
    json_t *op = json_pack("{s:s, s:{s:{s:s, s:{s:{}}}}}", "summary", summary, "responses", "200",
                           "description", "OK", "content", ctype);

    if (!op)
        *failed = 1;
    return op;
}

json_t *openapi_build(const struct cfg *cfg) {
    int failed = 0;
    json_t *doc = json_object();
    json_t *paths = json_object();
    json_t *health;

    set(doc, "openapi", json_string("3.1.0"), &failed);
    set(doc, "info",
        json_pack("{s:s, s:s, s:s}", "title", "fpesa", "version", "1", "description",
                  "Generated from the endpoints configuration."),
        &failed);
    /* The first server is where clients reach the API (nginx strips the
     * prefix); the second is one restmapper reached directly. */
    set(doc, "servers",
        json_pack("[{s:s, s:s}, {s:s, s:s}]", "url", cfg ? cfg->http.public_prefix : "/api/v1",
                  "description", "The public API (http.public_prefix)", "url", "/", "description",
                  "One restmapper instance, reached directly"),
        &failed);
    for (size_t i = 0; cfg && i < cfg->n_endpoints; i++) {
        const struct cfg_endpoint *ep = &cfg->endpoints[i];
        json_t *item = json_object_get(paths, ep->path);
        char method[16];
        size_t k;

        if (!item) {
            item = json_object();
            set(paths, ep->path, item, &failed);
        }
        for (k = 0; ep->method[k] && k + 1 < sizeof(method); k++)
            method[k] = (char)tolower((unsigned char)ep->method[k]);
        method[k] = '\0';
        set(item, method, operation(&cfg->endpoints[i], &failed), &failed);
    }
    health = builtin("Broker connection state (503 while the broker is unavailable)",
                     "application/json", &failed);
    if (health)
        set(json_object_get(health, "responses"), "503", error_ref(), &failed);
    if (!json_object_get(paths, "/health"))
        set(paths, "/health", json_pack("{s:o}", "get", health), &failed);
    else
        json_decref(health);
    if (!json_object_get(paths, "/metrics"))
        set(paths, "/metrics",
            json_pack("{s:o}", "get",
                      builtin("Prometheus metrics", "text/plain; version=0.0.4", &failed)),
            &failed);
    if (!json_object_get(paths, "/openapi.json"))
        set(paths, "/openapi.json",
            json_pack("{s:o}", "get", builtin("This document", "application/json", &failed)),
            &failed);
    if (!json_object_get(paths, "/asyncapi.json"))
        set(paths, "/asyncapi.json",
            json_pack("{s:o}", "get",
                      builtin("The bus as an AsyncAPI 3.0 document", "application/json", &failed)),
            &failed);
    set(doc, "paths", paths, &failed);
    set(doc, "components", json_pack("{s:{s:o}}", "schemas", "Error", error_schema()), &failed);
    if (failed) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}
