/* The endpoints.yaml loader's API (see config.h): cfg_load drives the
 * pieces, cfg_free releases what they built, plus the look-ups callers use.
 *
 * The file becomes a yamltree (every node with its line and column), then a
 * table of known keys per section, each with a setter, fills struct cfg. A
 * setter that meets a bad value records an error and goes on, so one run
 * reports every problem of the file. Checks that need the whole file
 * (duplicate routes, defaults that depend on other sections, environment
 * overrides, plugin paths) run after the tables. config_int.h says which
 * file does which part.
 */
#include "config_int.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Largest configuration file read; anything larger is surely not one. */
#define MAX_FILE_SIZE (16u * 1024 * 1024)

int cfg_init(struct cfg *cfg) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    memset(cfg, 0, sizeof(*cfg));
    cfg->bus.url = strdup("amqp://guest:guest@127.0.0.1:5672");
    cfg->bus.heartbeat = 5;
    cfg->bus.confirm_timeout_ms = 5000;
    cfg->http.host = strdup("127.0.0.1");
    cfg->http.port = 8081;
    cfg->http.max_body = 64 * 1024;
    cfg->http.threads = cores > 0 ? (cores > 1024 ? 1024 : (int)cores) : 1;
    cfg->http.max_connections = 10000;
    cfg->http.public_prefix = strdup("/api/v1");
    cfg->http.max_connections_per_client = 512;
    cfg->auth.leeway = 30;
    cfg->http.header_timeout = 10;
    cfg->http.body_timeout = 30;
    cfg->http.idle_timeout = 30;
    cfg->http.max_headers = 64;
    cfg->http.max_query_params = 100;
    cfg->http.max_uri = 8 * 1024;
    cfg->live.host = strdup("127.0.0.1");
    cfg->live.port = 8082;
    cfg->handler_host.host = strdup("127.0.0.1");
    cfg->live.client_queue = 1024;
    cfg->live.max_frame = 4 * 1024;
    cfg->live.ping_interval = 20;
    cfg->live.resume_limit = 1000;
    cfg->live.stream_max_bytes = 256u * 1024 * 1024;
    cfg->live.stream_max_age = 3600;
    cfg->database.url = strdup("postgresql://fpesa@127.0.0.1:5432/fpesa");
    cfg->idempotency.timeout_ms = 2000;
    if (!cfg->bus.url || !cfg->http.host || !cfg->http.public_prefix || !cfg->live.host ||
        !cfg->handler_host.host || !cfg->database.url)
        return -1;
    return 0;
}

static char *read_file(const char *path, size_t *len, char *why, size_t why_len) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL, *nb;
    size_t cap = 0, n = 0, got;
    int saved;

    if (!f) {
        saved = errno;
        snprintf(why, why_len, "cannot open: %s", strerror(saved));
        return NULL;
    }
    for (;;) {
        if (n == cap) {
            if (cap >= MAX_FILE_SIZE) {
                snprintf(why, why_len, "file is larger than %u bytes", MAX_FILE_SIZE);
                goto out_fail;
            }
            cap = cap ? cap * 2 : 8192;
            nb = realloc(buf, cap + 1);
            if (!nb) {
                snprintf(why, why_len, "out of memory");
                goto out_fail;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                saved = errno;
                snprintf(why, why_len, "cannot read: %s", strerror(saved));
                goto out_fail;
            }
            break;
        }
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
out_fail:
    fclose(f);
    free(buf);
    return NULL;
}

struct cfg *cfg_load(const char *path, FILE *errs) {
    struct cfg_loader ld;
    struct ynode *root = NULL;
    struct cfg *cfg;
    char why[256];
    char *buf;
    size_t len, i;
    bool failed = false;

    memset(&ld, 0, sizeof(ld));
    ld.file = path;
    cfg = calloc(1, sizeof(*cfg));
    if (!cfg || cfg_init(cfg) < 0 || !(cfg->file = strdup(path))) {
        ld.oom = true;
        goto out;
    }
    ld.cfg = cfg;
    buf = read_file(path, &len, why, sizeof(why));
    if (!buf) {
        cfg_errf(&ld, NULL, "%s", why);
        goto out;
    }
    root = ytree_parse(buf, len, cfg_tree_err, &ld, &failed);
    free(buf);
    if (!root) {
        if (!failed)
            cfg_errf(&ld, NULL, "the file is empty (expected a mapping of sections)");
        goto out;
    }
    if (root->kind != YNODE_MAP) {
        char d[96];
        cfg_errf(&ld, root, "expected a mapping of sections (bus, http, endpoints, ...), got %s",
                 cfg_describe(root, d, sizeof(d)));
        goto out;
    }
    cfg_apply_map(&ld, cfg_top_keys, root, cfg);
    cfg_check_duplicates(&ld, root);
    cfg_check_auth(&ld);
    cfg_env_overrides(&ld);
    cfg_resolve_plugins(&ld, root);
    cfg_finish(&ld);
out:
    ytree_free(root);
    if (ld.n_errs || ld.oom) {
        if (!ld.n_errs && !ld.oom)
            ld.oom = true;
        cfg_print_errs(&ld, errs);
        cfg_free(cfg);
        cfg = NULL;
    }
    for (i = 0; i < ld.n_errs; i++)
        free(ld.errs[i].msg);
    free(ld.errs);
    return cfg;
}

void cfg_fini(struct cfg *cfg) {
    size_t i;

    if (!cfg)
        return;
    free(cfg->file);
    free(cfg->bus.url);
    free(cfg->http.host);
    free(cfg->http.public_prefix);
    cfg_free_strv(cfg->http.cors_origins, cfg->http.n_cors_origins);
    cfg_free_strv(cfg->http.cors_headers, cfg->http.n_cors_headers);
    free(cfg->live.host);
    free(cfg->handler_host.host);
    free(cfg->database.url);
    free(cfg->database.read_url);
    free(cfg->idempotency.exchange);
    free(cfg->plugin_dir);
    free(cfg->auth.realm);
    for (i = 0; i < cfg->auth.n_api_keys; i++)
        cfg_api_key_free(&cfg->auth.api_keys[i]);
    free(cfg->auth.api_keys);
    free(cfg->auth.api_keys_file);
    free(cfg->auth.issuer);
    free(cfg->auth.audience);
    free(cfg->auth.jwks_file);
    for (i = 0; i < cfg->auth.n_jwt_keys; i++)
        cfg_jwt_key_free(&cfg->auth.jwt_keys[i]);
    free(cfg->auth.jwt_keys);
    cfg_free_strv(cfg->auth.origins, cfg->auth.n_origins);
    for (i = 0; i < cfg->n_endpoints; i++)
        cfg_endpoint_free(&cfg->endpoints[i]);
    free(cfg->endpoints);
    for (i = 0; i < cfg->n_handlers; i++)
        cfg_handler_free(&cfg->handlers[i]);
    free(cfg->handlers);
}

void cfg_free(struct cfg *cfg) {
    cfg_fini(cfg);
    free(cfg);
}

const struct cfg_endpoint *cfg_endpoint_find(const struct cfg *cfg, const char *method,
                                             const char *path) {
    size_t i;

    if (!cfg || !method || !path)
        return NULL;
    for (i = 0; i < cfg->n_endpoints; i++) {
        const struct cfg_endpoint *ep = &cfg->endpoints[i];
        if (strcasecmp(ep->method, method) == 0 && strcmp(ep->path, path) == 0)
            return ep;
    }
    return NULL;
}

struct cfg *cfg_load_reload(const char *path) {
    char *errs = NULL;
    size_t errs_len = 0;
    FILE *ef = open_memstream(&errs, &errs_len);
    struct cfg *cfg;

    LOG(LOG_INFO, "reloading signal=HUP file=%s", path);
    cfg = cfg_load(path, ef ? ef : stderr);
    if (ef)
        fclose(ef);
    if (!cfg)
        log_reload_refused(errs);
    free(errs);
    return cfg;
}

int cfg_check_main(const char *path) {
    struct cfg *cfg = cfg_load(path, stderr);

    if (!cfg)
        return 1;
    printf("%s: ok\n", path);
    fflush(stdout);
    cfg_free(cfg);
    return 0;
}
