/* Body size limits per route; see limits.h. */
#include "limits.h"

#include <string.h>

size_t limits_endpoint(const struct cfg *cfg, const struct cfg_endpoint *ep) {
    /* cfg_load gave ep http.max_body when the file gives it none. */
    size_t n = ep->max_body;

    (void)cfg;

    for (size_t i = 0; ep->content_max_body && i < ep->n_content_types; i++)
        if (ep->content_max_body[i] > n)
            n = ep->content_max_body[i];
    return n;
}

int limits_print(const struct cfg *cfg, FILE *out) {
    if (fprintf(out, "default %zu\n", cfg->http.max_body) < 0)
        return -1;
    for (size_t i = 0; i < cfg->n_endpoints; i++) {
        const struct cfg_endpoint *ep = &cfg->endpoints[i];
        size_t n = 0;
        bool seen = false;

        /* One line per path: the first endpoint of a path speaks for all. */
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(cfg->endpoints[j].path, ep->path) == 0;
        if (seen)
            continue;
        for (size_t j = i; j < cfg->n_endpoints; j++) {
            size_t m;

            if (strcmp(cfg->endpoints[j].path, ep->path) != 0)
                continue;
            m = limits_endpoint(cfg, &cfg->endpoints[j]);
            if (m > n)
                n = m;
        }
        if (fprintf(out, "%s %zu\n", ep->path, n) < 0)
            return -1;
    }
    return fflush(out) == 0 ? 0 : -1;
}
