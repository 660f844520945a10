#include "config.h"
#include "../../../mapper/openapi.h"

#include <criterion/criterion.h>
#include <string.h>

static json_t *op(json_t *doc, const char *path, const char *method) {
    return json_object_get(json_object_get(json_object_get(doc, "paths"), path), method);
}

static json_t *param(json_t *operation, const char *name, const char *in) {
    size_t i;
    json_t *p;

    json_array_foreach(json_object_get(operation, "parameters"), i, p) {
        if (strcmp(json_string_value(json_object_get(p, "name")), name) == 0 &&
            strcmp(json_string_value(json_object_get(p, "in")), in) == 0)
            return p;
    }
    return NULL;
}

/* The shape of the repository's endpoints.yaml, built by hand so that this
 * test depends on the generator only. */
Test(openapi, generated_from_endpoints) {
    struct cfg_endpoint eps[3];
    struct cfg cfg;
    char *ct[] = {"application/json"};
    json_t *doc, *o, *p;

    /* The defaults a loaded file gives, then what the file says. */
    cr_assert_eq(cfg_init(&cfg), 0);
    for (int i = 0; i < 3; i++)
        cfg_endpoint_init(&eps[i]);
    eps[0].path = "/messages/";
    eps[0].method = "POST";
    eps[0].exchange = "/messages/:POST";
    eps[0].summary = "Accept a message";
    eps[0].live = true;
    eps[0].content_types = ct;
    eps[0].n_content_types = 1;
    eps[0].body = json_pack("{s:s}", "type", "object");
    eps[1].path = "/messages/";
    eps[1].method = "GET";
    eps[1].exchange = "/messages/:GET";
    eps[1].mode = CFG_MODE_RPC;
    eps[1].summary = "Stored messages";
    eps[1].args = json_loads("{\"type\":\"object\",\"additionalProperties\":false,\"required\":"
                             "[\"limit\"],\"properties\":{\"limit\":{\"type\":\"string\","
                             "\"pattern\":\"^[0-9]+$\"},\"before\":{\"type\":\"string\"}}}",
                             0, NULL);
    eps[2].path = "/echo/{word}";
    eps[2].method = "POST";
    eps[2].exchange = "/echo/{word}:POST";
    eps[2].mode = CFG_MODE_RPC;
    eps[2].body = json_pack("{s:s}", "type", "object");
    cfg.endpoints = eps;
    cfg.n_endpoints = 3;

    doc = openapi_build(&cfg);
    cr_assert_not_null(doc);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
    cr_assert(json_is_string(json_object_get(json_object_get(doc, "info"), "title")));

    o = op(doc, "/messages/", "post");
    cr_assert_not_null(o);
    cr_assert_str_eq(json_string_value(json_object_get(o, "summary")), "Accept a message");
    p = json_object_get(
        json_object_get(json_object_get(json_object_get(o, "requestBody"), "content"),
                        "application/json"),
        "schema");
    cr_assert(json_equal(p, eps[0].body));
    cr_assert_not_null(json_object_get(json_object_get(o, "responses"), "202"));
    cr_assert_not_null(json_object_get(json_object_get(o, "responses"), "400"));
    cr_assert_not_null(json_object_get(json_object_get(o, "responses"), "413"));
    cr_assert_not_null(json_object_get(json_object_get(o, "responses"), "415"));
    cr_assert_not_null(json_object_get(json_object_get(o, "responses"), "503"));

    o = op(doc, "/messages/", "get");
    cr_assert_not_null(o);
    cr_assert_null(json_object_get(o, "requestBody"));
    p = param(o, "limit", "query");
    cr_assert_not_null(p);
    cr_assert(json_is_true(json_object_get(p, "required")));
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(p, "schema"), "pattern")),
                     "^[0-9]+$");
    p = param(o, "before", "query");
    cr_assert_not_null(p);
    cr_assert(json_is_false(json_object_get(p, "required")));
    cr_assert_not_null(json_object_get(json_object_get(o, "responses"), "200"));
    cr_assert_not_null(json_object_get(json_object_get(o, "responses"), "504"));

    o = op(doc, "/echo/{word}", "post");
    p = param(o, "word", "path");
    cr_assert_not_null(p);
    cr_assert(json_is_true(json_object_get(p, "required")));

    cr_assert_not_null(op(doc, "/health", "get"));
    cr_assert_not_null(op(doc, "/metrics", "get"));
    cr_assert_not_null(op(doc, "/openapi.json", "get"));
    p = json_object_get(json_object_get(json_object_get(doc, "components"), "schemas"), "Error");
    cr_assert_not_null(p);
    cr_assert_not_null(json_object_get(json_object_get(p, "properties"), "error"));

    json_decref(doc);
    for (int i = 0; i < 3; i++) {
        json_decref(eps[i].body);
        json_decref(eps[i].args);
    }
    /* The endpoints are this function's, not cfg's. */
    cfg.endpoints = NULL;
    cfg.n_endpoints = 0;
    cfg_fini(&cfg);
}

/* The repository's own endpoints.yaml, through the real loader. */
Test(openapi, repository_endpoints_yaml) {
    struct cfg *cfg = cfg_load(FPESA_SOURCE_DIR "/endpoints.yaml", stderr);
    json_t *doc;

    cr_assert_not_null(cfg);
    doc = openapi_build(cfg);
    cr_assert_not_null(doc);
    for (size_t i = 0; i < cfg->n_endpoints; i++) {
        char method[16];
        size_t k;

        for (k = 0; cfg->endpoints[i].method[k] && k < sizeof(method) - 1; k++)
            method[k] = (char)(cfg->endpoints[i].method[k] | 0x20);
        method[k] = '\0';
        cr_assert_not_null(op(doc, cfg->endpoints[i].path, method), "%s %s missing",
                           cfg->endpoints[i].method, cfg->endpoints[i].path);
    }
    cr_assert_not_null(param(op(doc, "/messages/", "get"), "limit", "query"));
    cr_assert_not_null(param(op(doc, "/echo/{word}", "post"), "word", "path"));
    json_decref(doc);
    cfg_free(cfg);
}
