/* The route table: every endpoint of endpoints.yaml plus the built-in
 * operational routes, matched by method and path. Paths may hold {name}
 * parameters, each matching one non-empty segment; where two patterns match,
 * the one with a literal segment at the first place they differ wins.
 */
#ifndef FPESA_MAPPER_ROUTER_H
#define FPESA_MAPPER_ROUTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct cfg;
struct cfg_endpoint;
struct router;

enum route_kind { ROUTE_ENDPOINT = 0, ROUTE_HEALTH, ROUTE_METRICS, ROUTE_OPENAPI, ROUTE_ASYNCAPI };

struct route {
    size_t id; /* 0..router_count()-1, stable; used by metrics */
    enum route_kind kind;
    const char *method;            /* upper case */
    const char *path;              /* the pattern, "/echo/{word}" */
    const struct cfg_endpoint *ep; /* ROUTE_ENDPOINT only; borrowed from the cfg */
    bool has_params;               /* the pattern holds at least one {name} */
};

enum route_status {
    ROUTE_FOUND = 0,
    ROUTE_NOT_FOUND,  /* no pattern matches the path: 404 */
    ROUTE_BAD_METHOD, /* a pattern matches but not with this method: 405 */
    ROUTE_BAD_PATH,   /* a segment is not valid percent-encoded UTF-8: 400 */
};

struct route_match {
    const struct route *route; /* ROUTE_FOUND: borrowed from the router */
    json_t *params;            /* ROUTE_FOUND and the pattern has parameters: new reference
                                  (decref it), each name to its decoded segment; else NULL */
    const char *allow;         /* FOUND or BAD_METHOD: the methods of the matched path, e.g.
                                  "GET, POST" (borrowed) */
};

/* Builds the table from cfg (borrowed; must outlive the router): the
 * built-in GET /health, GET /metrics and GET /openapi.json first, then every
 * endpoint. Returns a new router (free with router_free) or NULL when memory
 * runs out or a pattern is malformed (an unterminated "{"). */
struct router *router_new(const struct cfg *cfg);

/* Frees the router. NULL is fine. */
void router_free(struct router *r);

/* Number of routes and the route with this id (borrowed). */
size_t router_count(const struct router *r);
const struct route *router_get(const struct router *r, size_t id);

/* Matches method and path (both borrowed; path is the raw, still
 * percent-encoded path without query string). HEAD matches a GET route.
 * Fills *m (see struct route_match) and returns the status. Thread-safe. */
enum route_status router_match(const struct router *r, const char *method, const char *path,
                               struct route_match *m);

#endif
