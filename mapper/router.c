#include "router.h"

#include "config.h"
#include "query.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEGMENTS 64

/* One distinct path pattern and the routes (one per method) that share it. */
struct pattern {
    char *path;
    char **segs; /* literal text, or the parameter name for a parameter */
    bool *is_param;
    size_t nseg;
    size_t *routes; /* route ids */
    size_t nroutes;
    char allow[160];
};

struct router {
    struct route *routes;
    size_t nroutes;
    struct pattern *patterns;
    size_t npatterns;
};

static void pattern_fini(struct pattern *p) {
    for (size_t i = 0; i < p->nseg; i++)
        free(p->segs[i]);
    free(p->segs);
    free(p->is_param);
    free(p->routes);
    free(p->path);
}

/* Splits "/a/{b}/" into "a", "{b}", "". Returns 0 or -1 (malformed or no memory). */
static int pattern_init(struct pattern *p, const char *path) {
    const char *s;

    memset(p, 0, sizeof(*p));
    if (!path || path[0] != '/')
        return -1;
    p->path = strdup(path);
    p->segs = calloc(MAX_SEGMENTS, sizeof(*p->segs));
    p->is_param = calloc(MAX_SEGMENTS, sizeof(*p->is_param));
    if (!p->path || !p->segs || !p->is_param)
        goto out_fail;
    s = path + 1;
    for (;;) {
        const char *end = strchr(s, '/');
        size_t len = end ? (size_t)(end - s) : strlen(s);

        if (p->nseg == MAX_SEGMENTS)
            goto out_fail;
        if (len >= 2 && s[0] == '{' && s[len - 1] == '}') {
            p->is_param[p->nseg] = true;
            p->segs[p->nseg] = strndup(s + 1, len - 2);
        } else {
            if (memchr(s, '{', len) || memchr(s, '}', len))
                goto out_fail;
            p->segs[p->nseg] = strndup(s, len);
        }
        if (!p->segs[p->nseg++])
            goto out_fail;
        if (!end)
            break;
        s = end + 1;
    }
    return 0;

out_fail:
    pattern_fini(p);
    return -1;
}

static int add_route(struct router *r, enum route_kind kind, const char *method, const char *path,
                     const struct cfg_endpoint *ep) {
    struct pattern *p = NULL;
    struct route *rt;
    size_t *ids;

    for (size_t i = 0; i < r->npatterns; i++) {
        if (strcmp(r->patterns[i].path, path) == 0)
            p = &r->patterns[i];
    }
    if (p) {
        /* A second route with the same method and path: the first one wins. */
        for (size_t i = 0; i < p->nroutes; i++) {
            if (strcmp(r->routes[p->routes[i]].method, method) == 0)
                return 0;
        }
    } else {
        struct pattern *np = realloc(r->patterns, (r->npatterns + 1) * sizeof(*np));

        if (!np)
            return -1;
        r->patterns = np;
        if (pattern_init(&np[r->npatterns], path) != 0)
            return -1;
        p = &np[r->npatterns++];
    }
    rt = realloc(r->routes, (r->nroutes + 1) * sizeof(*rt));
    if (!rt)
        return -1;
    r->routes = rt;
    ids = realloc(p->routes, (p->nroutes + 1) * sizeof(*ids));
    if (!ids)
        return -1;
    p->routes = ids;
    p->routes[p->nroutes++] = r->nroutes;
    rt = &r->routes[r->nroutes];
    rt->id = r->nroutes++;
    rt->kind = kind;
    rt->method = method;
    rt->path = p->path;
    rt->ep = ep;
    rt->has_params = false;
    for (size_t i = 0; i < p->nseg; i++)
        rt->has_params |= p->is_param[i];

    size_t o = 0;
    p->allow[0] = '\0';
    for (size_t i = 0; i < p->nroutes; i++) {
        int w = snprintf(p->allow + o, sizeof(p->allow) - o, "%s%s", i ? ", " : "",
                         r->routes[p->routes[i]].method);
        if (w < 0 || (size_t)w >= sizeof(p->allow) - o)
            break;
        o += (size_t)w;
    }
    return 0;
}

struct router *router_new(const struct cfg *cfg) {
    struct router *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    if (add_route(r, ROUTE_HEALTH, "GET", "/health", NULL) != 0 ||
        add_route(r, ROUTE_METRICS, "GET", "/metrics", NULL) != 0 ||
        add_route(r, ROUTE_OPENAPI, "GET", "/openapi.json", NULL) != 0 ||
        add_route(r, ROUTE_ASYNCAPI, "GET", "/asyncapi.json", NULL) != 0)
        goto out_free;
    for (size_t i = 0; cfg && i < cfg->n_endpoints; i++) {
        const struct cfg_endpoint *ep = &cfg->endpoints[i];

        if (add_route(r, ROUTE_ENDPOINT, ep->method, ep->path, ep) != 0)
            goto out_free;
    }
    /* Routes point at their pattern's path; patterns may have moved while the
     * table grew, so the pointers are set once it is complete. */
    for (size_t i = 0; i < r->npatterns; i++) {
        for (size_t k = 0; k < r->patterns[i].nroutes; k++)
            r->routes[r->patterns[i].routes[k]].path = r->patterns[i].path;
    }
    return r;

out_free:
    router_free(r);
    return NULL;
}

void router_free(struct router *r) {
    if (!r)
        return;
    for (size_t i = 0; i < r->npatterns; i++)
        pattern_fini(&r->patterns[i]);
    free(r->patterns);
    free(r->routes);
    free(r);
}

size_t router_count(const struct router *r) {
    return r->nroutes;
}

const struct route *router_get(const struct router *r, size_t id) {
    return id < r->nroutes ? &r->routes[id] : NULL;
}

enum route_status router_match(const struct router *r, const char *method, const char *path,
                               struct route_match *m) {
    char *segs[MAX_SEGMENTS];
    size_t nseg = 0;
    const struct pattern *best = NULL;
    uint64_t best_score = 0;
    enum route_status st = ROUTE_NOT_FOUND;
    const char *s;

    memset(m, 0, sizeof(*m));
    if (!path || path[0] != '/')
        return ROUTE_NOT_FOUND;
    s = path + 1;
    for (;;) {
        const char *end = strchr(s, '/');
        size_t len = end ? (size_t)(end - s) : strlen(s);

        if (nseg == MAX_SEGMENTS) {
            st = ROUTE_NOT_FOUND;
            goto out;
        }
        segs[nseg] = query_decode(s, len, false, NULL);
        if (!segs[nseg]) {
            st = ROUTE_BAD_PATH;
            goto out;
        }
        nseg++;
        if (!end)
            break;
        s = end + 1;
    }

    for (size_t i = 0; i < r->npatterns; i++) {
        const struct pattern *p = &r->patterns[i];
        uint64_t score = 0;
        bool ok = p->nseg == nseg;

        for (size_t k = 0; ok && k < nseg; k++) {
            if (p->is_param[k]) {
                ok = segs[k][0] != '\0';
            } else {
                ok = strcmp(p->segs[k], segs[k]) == 0;
                /* Earlier literal segments weigh more than all later ones. */
                score |= 1ULL << (MAX_SEGMENTS - 1 - k);
            }
        }
        if (ok && (!best || score > best_score)) {
            best = p;
            best_score = score;
        }
    }
    if (!best)
        goto out;

    m->allow = best->allow;
    st = ROUTE_BAD_METHOD;
    for (size_t i = 0; i < best->nroutes; i++) {
        const struct route *rt = &r->routes[best->routes[i]];

        if (strcmp(rt->method, method) == 0 ||
            (strcmp(method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0)) {
            m->route = rt;
            st = ROUTE_FOUND;
            if (strcmp(rt->method, method) == 0)
                break;
        }
    }
    if (st == ROUTE_FOUND && m->route->has_params) {
        m->params = json_object();
        for (size_t k = 0; m->params && k < nseg; k++) {
            if (best->is_param[k] &&
                json_object_set_new(m->params, best->segs[k], json_string(segs[k])) != 0) {
                json_decref(m->params);
                m->params = NULL;
            }
        }
        if (!m->params)
            st = ROUTE_BAD_PATH;
    }

out:
    for (size_t i = 0; i < nseg; i++)
        free(segs[i]);
    return st;
}
