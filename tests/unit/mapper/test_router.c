#include "config.h"
#include "../../../mapper/router.h"

#include <criterion/criterion.h>
#include <string.h>

static struct cfg_endpoint eps[6];
static struct cfg cfg;

static void add(size_t i, const char *method, const char *path) {
    eps[i].method = (char *)method;
    eps[i].path = (char *)path;
}

static struct router *make(void) {
    memset(eps, 0, sizeof(eps));
    memset(&cfg, 0, sizeof(cfg));
    add(0, "POST", "/messages/");
    add(1, "GET", "/messages/");
    add(2, "POST", "/echo/{word}");
    add(3, "POST", "/echo/fixed");
    add(4, "GET", "/timer/{id}/ticks/{n}");
    add(5, "DELETE", "/timer/{id}");
    cfg.endpoints = eps;
    cfg.n_endpoints = 6;
    return router_new(&cfg);
}

Test(router, builtins_come_first) {
    struct router *r = make();
    struct route_match m;

    cr_assert_not_null(r);
    cr_assert_eq(router_count(r), 10);
    cr_assert_eq(router_match(r, "GET", "/health", &m), ROUTE_FOUND);
    cr_assert_eq(m.route->kind, ROUTE_HEALTH);
    cr_assert_eq(router_match(r, "GET", "/metrics", &m), ROUTE_FOUND);
    cr_assert_eq(m.route->kind, ROUTE_METRICS);
    cr_assert_eq(router_match(r, "GET", "/openapi.json", &m), ROUTE_FOUND);
    cr_assert_eq(m.route->kind, ROUTE_OPENAPI);
    cr_assert_eq(router_match(r, "GET", "/asyncapi.json", &m), ROUTE_FOUND);
    cr_assert_eq(m.route->kind, ROUTE_ASYNCAPI);
    for (size_t i = 0; i < router_count(r); i++)
        cr_assert_eq(router_get(r, i)->id, i);
    router_free(r);
}

Test(router, exact_routes_by_method) {
    struct router *r = make();
    struct route_match m;

    cr_assert_eq(router_match(r, "POST", "/messages/", &m), ROUTE_FOUND);
    cr_assert_eq(m.route->ep, &eps[0]);
    cr_assert_null(m.params);
    cr_assert_eq(router_match(r, "GET", "/messages/", &m), ROUTE_FOUND);
    cr_assert_eq(m.route->ep, &eps[1]);
    cr_assert_eq(router_match(r, "HEAD", "/messages/", &m), ROUTE_FOUND);
    cr_assert_eq(m.route->ep, &eps[1]);
    router_free(r);
}

Test(router, unknown_path_is_404) {
    struct router *r = make();
    struct route_match m;

    cr_assert_eq(router_match(r, "GET", "/nope", &m), ROUTE_NOT_FOUND);
    cr_assert_eq(router_match(r, "POST", "/messages", &m), ROUTE_NOT_FOUND);
    cr_assert_eq(router_match(r, "POST", "/messages/x", &m), ROUTE_NOT_FOUND);
    cr_assert_eq(router_match(r, "POST", "/echo/", &m), ROUTE_NOT_FOUND, "empty parameter");
    cr_assert_eq(router_match(r, "POST", "/echo/a/b", &m), ROUTE_NOT_FOUND);
    cr_assert_eq(router_match(r, "GET", "", &m), ROUTE_NOT_FOUND);
    cr_assert_eq(router_match(r, "GET", "health", &m), ROUTE_NOT_FOUND);
    router_free(r);
}

Test(router, wrong_method_is_405_with_allow) {
    struct router *r = make();
    struct route_match m;

    cr_assert_eq(router_match(r, "DELETE", "/messages/", &m), ROUTE_BAD_METHOD);
    cr_assert_str_eq(m.allow, "POST, GET");
    cr_assert_eq(router_match(r, "POST", "/health", &m), ROUTE_BAD_METHOD);
    cr_assert_str_eq(m.allow, "GET");
    cr_assert_eq(router_match(r, "GET", "/timer/7", &m), ROUTE_BAD_METHOD);
    cr_assert_str_eq(m.allow, "DELETE");
    router_free(r);
}

Test(router, parameters_are_decoded) {
    struct router *r = make();
    struct route_match m;

    cr_assert_eq(router_match(r, "POST", "/echo/h%C3%A9llo%20world%2Fx", &m), ROUTE_FOUND);
    cr_assert_eq(m.route->ep, &eps[2]);
    cr_assert_not_null(m.params);
    cr_assert_str_eq(json_string_value(json_object_get(m.params, "word")), "h\xc3\xa9llo world/x");
    json_decref(m.params);

    cr_assert_eq(router_match(r, "GET", "/timer/t1/ticks/42", &m), ROUTE_FOUND);
    cr_assert_eq(json_object_size(m.params), 2);
    cr_assert_str_eq(json_string_value(json_object_get(m.params, "id")), "t1");
    cr_assert_str_eq(json_string_value(json_object_get(m.params, "n")), "42");
    json_decref(m.params);
    router_free(r);
}

Test(router, plus_is_not_a_space_in_a_path) {
    struct router *r = make();
    struct route_match m;

    cr_assert_eq(router_match(r, "POST", "/echo/a+b", &m), ROUTE_FOUND);
    cr_assert_str_eq(json_string_value(json_object_get(m.params, "word")), "a+b");
    json_decref(m.params);
    router_free(r);
}

Test(router, exact_segment_wins_over_parameter) {
    struct router *r = make();
    struct route_match m;

    cr_assert_eq(router_match(r, "POST", "/echo/fixed", &m), ROUTE_FOUND);
    cr_assert_eq(m.route->ep, &eps[3]);
    cr_assert_null(m.params);
    cr_assert_eq(router_match(r, "POST", "/echo/fixes", &m), ROUTE_FOUND);
    cr_assert_eq(m.route->ep, &eps[2]);
    json_decref(m.params);
    /* Percent-encoded literal text still matches the literal route. */
    cr_assert_eq(router_match(r, "POST", "/echo/fi%78ed", &m), ROUTE_FOUND);
    cr_assert_eq(m.route->ep, &eps[3]);
    router_free(r);
}

Test(router, malformed_escapes_are_bad_paths) {
    struct router *r = make();
    struct route_match m;

    cr_assert_eq(router_match(r, "POST", "/echo/%zz", &m), ROUTE_BAD_PATH);
    cr_assert_eq(router_match(r, "POST", "/echo/%4", &m), ROUTE_BAD_PATH);
    cr_assert_eq(router_match(r, "POST", "/echo/%00", &m), ROUTE_BAD_PATH);
    cr_assert_eq(router_match(r, "POST", "/echo/%ff%fe", &m), ROUTE_BAD_PATH, "not UTF-8");
    router_free(r);
}

Test(router, very_deep_paths_are_not_found) {
    struct router *r = make();
    struct route_match m;
    char path[1024] = "";

    for (int i = 0; i < 100; i++)
        strncat(path, "/a", sizeof(path) - strlen(path) - 1);
    cr_assert_eq(router_match(r, "GET", path, &m), ROUTE_NOT_FOUND);
    router_free(r);
}

Test(router, malformed_pattern_is_refused) {
    struct cfg_endpoint e = {0};
    struct cfg c = {0};

    e.method = "GET";
    e.path = "/a/{x";
    c.endpoints = &e;
    c.n_endpoints = 1;
    cr_assert_null(router_new(&c));
}
