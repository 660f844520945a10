/* The FPESA_* environment variables that override values of endpoints.yaml
 * (broker and database URLs, listen addresses, plugin folder), applied after
 * the file and reported by variable name when bad.
 */
#include "config_int.h"

#include <stdlib.h>
#include <string.h>

void cfg_env_overrides(struct cfg_loader *ld) {
    struct cfg *cfg = ld->cfg;
    char why[128];
    const char *s;
    char *host;
    int port;

    s = getenv("FPESA_AMQP_URL");
    if (s && *s) {
        if (cfg_bus_url_ok(s))
            cfg_store_str(ld, &cfg->bus.url, s);
        else
            cfg_env_errf(ld, "FPESA_AMQP_URL", "expected an amqp:// or amqps:// URL");
    }
    s = getenv("FPESA_QUEUE_TYPE");
    if (s && *s) {
        if (cfg_queue_type_of(s) >= 0)
            cfg->bus.queue_type = (enum cfg_queue_type)cfg_queue_type_of(s);
        else
            cfg_env_errf(ld, "FPESA_QUEUE_TYPE", "expected classic or quorum, not \"%.40s\"", s);
    }
    s = getenv("FPESA_LIVE_SOURCE");
    if (s && *s) {
        if (cfg_live_source_of(s) >= 0)
            cfg->live.source = (enum cfg_live_source)cfg_live_source_of(s);
        else
            cfg_env_errf(ld, "FPESA_LIVE_SOURCE", "expected queue or stream, not \"%.40s\"", s);
    }
    s = getenv("FPESA_DATABASE_URL");
    if (s && *s)
        cfg_store_str(ld, &cfg->database.url, s);
    s = getenv("FPESA_DATABASE_READ_URL");
    if (s && *s)
        cfg_store_str(ld, &cfg->database.read_url, s);
    s = getenv("FPESA_HTTP_LISTEN");
    if (s && *s) {
        if (cfg_parse_listen(s, &host, &port, why, sizeof(why)) < 0) {
            cfg_env_errf(ld, "FPESA_HTTP_LISTEN", "bad value \"%.60s\": %s", s, why);
        } else {
            if (host) {
                free(cfg->http.host);
                cfg->http.host = host;
            }
            cfg->http.port = port;
        }
    }
    s = getenv("FPESA_LIVE_LISTEN");
    if (s && *s) {
        if (cfg_parse_listen(s, &host, &port, why, sizeof(why)) < 0) {
            cfg_env_errf(ld, "FPESA_LIVE_LISTEN", "bad value \"%.60s\": %s", s, why);
        } else {
            if (host) {
                free(cfg->live.host);
                cfg->live.host = host;
            }
            cfg->live.port = port;
        }
    }
    s = getenv("FPESA_HANDLER_LISTEN");
    if (s && *s) {
        if (cfg_parse_listen(s, &host, &port, why, sizeof(why)) < 0) {
            cfg_env_errf(ld, "FPESA_HANDLER_LISTEN", "bad value \"%.60s\": %s", s, why);
        } else {
            if (host) {
                free(cfg->handler_host.host);
                cfg->handler_host.host = host;
            }
            cfg->handler_host.port = port;
        }
    }
    s = getenv("FPESA_PLUGIN_DIR");
    if (s && *s)
        cfg_store_str(ld, &cfg->plugin_dir, s);
}
