/* The top-level sections of endpoints.yaml (bus, http, liveupdate, database,
 * handler_host, idempotency, ...) as key tables, the list of every known key
 * made from them, and the accessors of the compat and queue_type settings.
 */
#include "config_int.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define CF(f) offsetof(struct cfg, f)

/* A setting that names one of a few choices: stores the index of v's name
 * in names, or reports it (with a suggestion when one is close). */
static void set_choice(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                       void *base, const char *const *names, size_t n, const char *expected) {
    char t[96];
    const char *s;

    if (!cfg_scalar_ok(ld, k, v, expected))
        return;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v->value, names[i]) == 0) {
            *FIELD(base, k->off, int) = (int)i;
            return;
        }
    }
    s = cfg_suggest(v->value, names, n);
    if (s)
        cfg_errf(ld, v, "unknown %s \"%s\" (did you mean \"%s\"?)", k->name,
                 cfg_quote(v->value, t, sizeof(t)), s);
    else
        cfg_errf(ld, v, "unknown %s \"%s\" (expected %s)", k->name,
                 cfg_quote(v->value, t, sizeof(t)), expected);
}

static int index_of(const char *name, const char *const *names, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0)
            return (int)i;
    return -1;
}

static const char *const compats[] = {"none", "fpesa-python"};

static void set_compat(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                       void *base) {
    set_choice(ld, k, v, base, compats, 2, "none or fpesa-python");
}

static const char *const queue_types[] = {"classic", "quorum"};

/* Returns the index of name in queue_types, or -1. */
int cfg_queue_type_of(const char *name) {
    return index_of(name, queue_types, 2);
}

static void set_queue_type(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                           void *base) {
    set_choice(ld, k, v, base, queue_types, 2, "classic or quorum");
}

static const char *const live_sources[] = {"queue", "stream"};

/* Returns the index of name in live_sources, or -1. */
int cfg_live_source_of(const char *name) {
    return index_of(name, live_sources, 2);
}

static void set_live_source(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                            void *base) {
    set_choice(ld, k, v, base, live_sources, 2, "queue or stream");
}

static const struct cfg_key cors_keys[] = {
    {"origins", cfg_set_strlist, CF(http.cors_origins), CF(http.n_cors_origins), 0, 0, NULL, 0},
    {"headers", cfg_set_strlist, CF(http.cors_headers), CF(http.n_cors_headers), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static const struct cfg_key bus_keys[] = {
    {"url", cfg_set_bus_url, CF(bus.url), 0, 0, 0, NULL, 0},
    {"heartbeat", cfg_set_seconds, CF(bus.heartbeat), 0, 0, 3600, NULL, 0},
    {"confirm_timeout", cfg_set_duration, CF(bus.confirm_timeout_ms), 0, 1, 600000, NULL, 0},
    {"queue_type", set_queue_type, CF(bus.queue_type), 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static const struct cfg_key http_keys[] = {
    {"listen", cfg_set_listen, CF(http.host), CF(http.port), 0, 0, NULL, 0},
    {"max_body", cfg_set_size, CF(http.max_body), 0, 1, 1024ll * 1024 * 1024, NULL, 0},
    {"threads", cfg_set_int, CF(http.threads), 0, 1, 1024, NULL, 0},
    {"max_connections", cfg_set_int, CF(http.max_connections), 0, 1, 1000000, NULL, 0},
    {"max_connections_per_client", cfg_set_int, CF(http.max_connections_per_client), 0, 1, 1000000,
     NULL, 0},
    {"header_timeout", cfg_set_seconds, CF(http.header_timeout), 0, 1, 3600, NULL, 0},
    {"body_timeout", cfg_set_seconds, CF(http.body_timeout), 0, 1, 3600, NULL, 0},
    {"idle_timeout", cfg_set_seconds, CF(http.idle_timeout), 0, 1, 3600, NULL, 0},
    {"max_headers", cfg_set_int, CF(http.max_headers), 0, 1, 1000, NULL, 0},
    {"max_query_params", cfg_set_int, CF(http.max_query_params), 0, 1, 10000, NULL, 0},
    {"max_uri", cfg_set_size, CF(http.max_uri), 0, 64, 12 * 1024, NULL, 0},
    {"cors", cfg_set_section, 0, 0, 0, 0, cors_keys, 0},
    {"public_prefix", cfg_set_prefix, CF(http.public_prefix), 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static const struct cfg_key live_keys[] = {
    {"listen", cfg_set_listen, CF(live.host), CF(live.port), 0, 0, NULL, 0},
    {"client_queue", cfg_set_count, CF(live.client_queue), 0, 1, 10000000, NULL, 0},
    {"max_frame", cfg_set_size, CF(live.max_frame), 0, 16, 64ll * 1024 * 1024, NULL, 0},
    {"ping_interval", cfg_set_seconds, CF(live.ping_interval), 0, 1, 3600, NULL, 0},
    {"resume_limit", cfg_set_long, CF(live.resume_limit), 0, 0, 10000000, NULL, 0},
    {"source", set_live_source, CF(live.source), 0, 0, 0, NULL, 0},
    {"stream_max_bytes", cfg_set_size, CF(live.stream_max_bytes), 0, 0, 1ll << 40, NULL, 0},
    {"stream_max_age", cfg_set_seconds, CF(live.stream_max_age), 0, 0, 366 * 86400, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static const struct cfg_key handler_host_keys[] = {
    {"listen", cfg_set_listen, CF(handler_host.host), CF(handler_host.port), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static const struct cfg_key database_keys[] = {
    {"url", cfg_set_str, CF(database.url), 0, 0, 0, NULL, 0},
    {"read_url", cfg_set_str, CF(database.read_url), 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static const struct cfg_key idempotency_keys[] = {
    {"exchange", cfg_set_str, CF(idempotency.exchange), 0, 0, 0, NULL, K_REQUIRED},
    {"timeout", cfg_set_duration, CF(idempotency.timeout_ms), 0, 1, 60000, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

const struct cfg_key cfg_top_keys[] = {
    {"bus", cfg_set_section, 0, 0, 0, 0, bus_keys, 0},
    {"http", cfg_set_section, 0, 0, 0, 0, http_keys, 0},
    {"liveupdate", cfg_set_section, 0, 0, 0, 0, live_keys, 0},
    {"database", cfg_set_section, 0, 0, 0, 0, database_keys, 0},
    {"plugin_dir", cfg_set_str, CF(plugin_dir), 0, 0, 0, NULL, 0},
    {"auth", cfg_set_auth, 0, 0, 0, 0, cfg_auth_keys, 0},
    {"compat", set_compat, CF(compat), 0, 0, 0, NULL, 0},
    {"endpoints", cfg_set_endpoints, 0, 0, 0, 0, cfg_endpoint_keys, 0},
    {"handlers", cfg_set_handlers, 0, 0, 0, 0, cfg_handler_keys, 0},
    {"handler_host", cfg_set_section, 0, 0, 0, 0, handler_host_keys, 0},
    {"idempotency", cfg_set_section, 0, 0, 0, 0, idempotency_keys, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

/* ---- the list of known keys ---- */

#define MAX_KNOWN 160

static char known_buf[MAX_KNOWN][64];
static const char *known_keys[MAX_KNOWN + 1];
static pthread_once_t known_once = PTHREAD_ONCE_INIT;
static size_t n_known;

static void collect_keys(const struct cfg_key *keys, const char *prefix) {
    const struct cfg_key *k;
    char sub[64];

    for (k = keys; k->name; k++) {
        if (k->set == cfg_set_section || k->set == cfg_set_auth || k->set == cfg_set_auth_rule ||
            k->set == cfg_set_rate_limit) {
            snprintf(sub, sizeof(sub), "%s%s.", prefix, k->name);
            collect_keys(k->sub, sub);
        } else if (k->set == cfg_set_endpoints || k->set == cfg_set_handlers ||
                   k->set == cfg_set_files || k->set == cfg_set_api_keys ||
                   k->set == cfg_set_jwt_keys) {
            snprintf(sub, sizeof(sub), "%s%s[].", prefix, k->name);
            collect_keys(k->sub, sub);
        } else if (n_known < MAX_KNOWN) {
            snprintf(known_buf[n_known], sizeof(known_buf[n_known]), "%s%s", prefix, k->name);
            known_keys[n_known] = known_buf[n_known];
            n_known++;
        }
    }
}

static void build_known(void) {
    collect_keys(cfg_top_keys, "");
    known_keys[n_known] = NULL;
}

bool cfg_declare_durable(const struct cfg *cfg) {
    return !cfg || cfg->compat != CFG_COMPAT_FPESA_PYTHON;
}

const char *cfg_queue_type_arg(const struct cfg *cfg) {
    return cfg && cfg->bus.queue_type == CFG_QUEUE_QUORUM ? "quorum" : NULL;
}

const char *cfg_compat_name(const struct cfg *cfg) {
    return compats[cfg && cfg->compat == CFG_COMPAT_FPESA_PYTHON ? 1 : 0];
}

const char *const *cfg_known_keys(void) {
    pthread_once(&known_once, build_known);
    return known_keys;
}
