/* Checks and derived values of the config loader that need the whole file:
 * duplicate routes and handler names, plugin paths, and the endpoint values
 * that default to a section's (max_body, content types).
 */
#include "config_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The pattern with parameter names dropped: /a/{id} and /a/{x} are one route. */
static void route_pattern(const char *path, char *buf, size_t len) {
    size_t o = 0;
    bool in = false;

    for (; *path && o + 3 < len; path++) {
        if (*path == '{') {
            buf[o++] = '{';
            buf[o++] = '}';
            in = true;
        } else if (*path == '}') {
            in = false;
        } else if (!in) {
            buf[o++] = *path;
        }
    }
    buf[o] = '\0';
}

void cfg_check_duplicates(struct cfg_loader *ld, const struct ynode *root) {
    const struct ynode *eps = ytree_get(root, "endpoints");
    const struct ynode *hds = ytree_get(root, "handlers");
    struct cfg *cfg = ld->cfg;
    char a[512], b[512], t[96];
    size_t i, j;

    for (i = 0; i < cfg->n_endpoints; i++) {
        const struct cfg_endpoint *x = &cfg->endpoints[i];
        if (!x->path || !x->method)
            continue;
        route_pattern(x->path, a, sizeof(a));
        for (j = 0; j < i; j++) {
            const struct cfg_endpoint *y = &cfg->endpoints[j];
            if (!y->path || !y->method || strcmp(x->method, y->method) != 0)
                continue;
            route_pattern(y->path, b, sizeof(b));
            if (strcmp(a, b) == 0) {
                const struct ynode *at = NULL;
                size_t k;
                /* The second endpoint's path node, found by its position. */
                for (k = 0; eps && k < eps->n_items; k++)
                    if (eps->items[k]->line == x->pos.line && eps->items[k]->col == x->pos.col)
                        at = ytree_get(eps->items[k], "path");
                if (!at)
                    at = eps;
                cfg_errf(ld, at, "duplicate route %s %s (first declared at line %d)", x->method,
                         cfg_quote(x->path, t, sizeof(t)), y->pos.line);
                break;
            }
        }
    }
    for (i = 0; i < cfg->n_handlers; i++) {
        const struct cfg_handler *x = &cfg->handlers[i];
        if (!x->name)
            continue;
        for (j = 0; j < i; j++) {
            const struct cfg_handler *y = &cfg->handlers[j];
            if (y->name && strcmp(x->name, y->name) == 0) {
                const struct ynode *at = NULL;
                size_t k;
                for (k = 0; hds && k < hds->n_items; k++)
                    if (hds->items[k]->line == x->pos.line && hds->items[k]->col == x->pos.col)
                        at = ytree_get(hds->items[k], "name");
                if (!at)
                    at = hds;
                cfg_errf(ld, at, "duplicate handler name \"%s\" (first declared at line %d)",
                         cfg_quote(x->name, t, sizeof(t)), y->pos.line);
                break;
            }
        }
    }
}

static char *join_path(const char *dir, size_t dir_len, const char *name) {
    size_t n = dir_len + 1 + strlen(name);
    char *out = malloc(n + 1);

    if (out)
        snprintf(out, n + 1, "%.*s/%s", (int)dir_len, dir, name);
    return out;
}

/* The folder "plugins" beside the folder of the running program:
 * build/bin/restmapper -> build/plugins; for an installed program, where
 * there is no such folder, lib/fpesa/plugins: /usr/bin/fpesa-handler ->
 * /usr/lib/fpesa/plugins (so an installed tree can be moved as a whole). */
static char *default_plugin_dir(void) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    char *slash, *dir;
    struct stat st;

    if (n <= 0)
        return strdup("plugins");
    exe[n] = '\0';
    slash = strrchr(exe, '/');
    if (!slash)
        return strdup("plugins");
    *slash = '\0';
    slash = strrchr(exe, '/');
    if (!slash)
        return strdup("/plugins");
    dir = join_path(exe, (size_t)(slash - exe), "plugins");
    if (!dir || (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)))
        return dir;
    free(dir);
    return join_path(exe, (size_t)(slash - exe), "lib/fpesa/plugins");
}

void cfg_resolve_plugins(struct cfg_loader *ld, const struct ynode *root) {
    struct cfg *cfg = ld->cfg;
    const char *slash;
    char *dir;
    size_t i;

    /* A relative plugin_dir written in the file is relative to the file. */
    if (cfg->plugin_dir && cfg->plugin_dir[0] != '/' && ytree_get(root, "plugin_dir") &&
        !(getenv("FPESA_PLUGIN_DIR") && *getenv("FPESA_PLUGIN_DIR"))) {
        slash = strrchr(ld->file, '/');
        if (slash) {
            dir = join_path(ld->file, (size_t)(slash - ld->file), cfg->plugin_dir);
            if (!dir) {
                ld->oom = true;
                return;
            }
            free(cfg->plugin_dir);
            cfg->plugin_dir = dir;
        }
    }
    if (!cfg->plugin_dir) {
        cfg->plugin_dir = default_plugin_dir();
        if (!cfg->plugin_dir) {
            ld->oom = true;
            return;
        }
    }
    for (i = 0; i < cfg->n_handlers; i++) {
        struct cfg_handler *h = &cfg->handlers[i];
        if (!h->plugin)
            continue;
        if (strchr(h->plugin, '/'))
            h->plugin_path = strdup(h->plugin);
        else
            h->plugin_path = join_path(cfg->plugin_dir, strlen(cfg->plugin_dir), h->plugin);
        if (!h->plugin_path)
            ld->oom = true;
    }
}

void cfg_finish(struct cfg_loader *ld) {
    struct cfg *cfg = ld->cfg;
    size_t i;

    for (i = 0; i < cfg->n_endpoints; i++) {
        struct cfg_endpoint *ep = &cfg->endpoints[i];
        if (ep->max_body == 0)
            ep->max_body = cfg->http.max_body;
        if (ep->n_content_types == 0) {
            free(ep->content_types);
            ep->content_types = calloc(2, sizeof(char *));
            if (!ep->content_types || !(ep->content_types[0] = strdup("application/json"))) {
                ld->oom = true;
                return;
            }
            ep->n_content_types = 1;
        }
        if (!ep->content_max_body || !ep->content_kinds) {
            free(ep->content_max_body);
            free(ep->content_kinds);
            ep->content_max_body = calloc(ep->n_content_types + 1, sizeof(size_t));
            ep->content_kinds = calloc(ep->n_content_types + 1, sizeof(enum cfg_body_kind));
            if (!ep->content_max_body || !ep->content_kinds) {
                ld->oom = true;
                return;
            }
        }
        for (size_t j = 0; j < ep->n_content_types; j++)
            if (ep->content_max_body[j] == 0)
                ep->content_max_body[j] = ep->max_body;
    }
}
