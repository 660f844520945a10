/* restmapper: serves every route of endpoints.yaml and maps it onto RabbitMQ.
 *
 *   restmapper [--config FILE] [--check FILE] [--list-config-keys] [--body-limits FILE]
 *              [--version] [--help]
 *
 * SIGTERM or SIGINT stops accepting connections, lets the requests already
 * received finish (up to FPESA_DRAIN_MS, default 10000 ms), then stops the bus
 * and exits 0.
 */
#include "asyncapi.h"
#include "bus.h"
#include "cli.h"
#include "config.h"
#include "envvar.h"
#include "http.h"
#include "limits.h"
#include "log.h"
#include "version.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_DRAIN_MS 10000

enum { OPT_CONFIG, OPT_CHECK, OPT_KEYS, OPT_LIMITS, OPT_ASYNCAPI };

static const struct cli_opt options[] = {
    {"--config", "FILE", "endpoints file (default: $FPESA_CONFIG, else endpoints.yaml)",
     OPT_CONFIG},
    {"--check", "FILE", "validate FILE, print every problem, exit 0 or 1", OPT_CHECK},
    {"--list-config-keys", NULL, "print every configuration key the loader knows", OPT_KEYS},
    {"--body-limits", "FILE", "print the body size limit of every path of FILE (bytes)",
     OPT_LIMITS},
    {"--asyncapi", "FILE", "print the AsyncAPI document of FILE's bus topology", OPT_ASYNCAPI},
    {NULL, NULL, NULL, 0},
};

static const struct cli command_line = {
    .prog = "restmapper",
    .summary = "Serves the REST routes of endpoints.yaml and maps them onto RabbitMQ.",
    .opts = options,
    .epilog = "Environment: FPESA_CONFIG, FPESA_AMQP_URL, FPESA_HTTP_LISTEN, FPESA_LOG_LEVEL\n"
              "(debug|info|warn|error), FPESA_DRAIN_MS (0 to 3600000, default 10000).\n"
              "Signals: TERM and INT drain the requests in flight, then exit 0; HUP reloads the\n"
              "file (a bad one is logged and the running configuration stays).\n",
};

/* --body-limits: what a proxy in front needs to let each route's body through. */
static int body_limits_main(const char *file) {
    struct cfg *cfg = cfg_load(file, stderr);
    int rc;

    if (!cfg)
        return 1;
    rc = limits_print(cfg, stdout) == 0 ? 0 : 1;
    cfg_free(cfg);
    return rc;
}

/* --asyncapi: the document /asyncapi.json serves, without a broker. */
static int asyncapi_main(const char *file) {
    struct cfg *cfg = cfg_load(file, stderr);
    json_t *doc;
    int rc = 1;

    if (!cfg)
        return 1;
    doc = asyncapi_build(cfg);
    if (doc && json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_SORT_KEYS) == 0) {
        putchar('\n');
        rc = 0;
    }
    json_decref(doc);
    cfg_free(cfg);
    return rc;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Waits until the bus is connected with its topology declared (0), or a
 * signal of sigs arrives first (-1, the signal in *sig). Logs every 5 s
 * while it waits, so a start blocked on the broker is visible. */
static int wait_ready(struct mbus *bus, const sigset_t *sigs, int *sig) {
    struct timespec step = {0, 50 * 1000000L};
    long waited = 0;

    while (!mbus_is_connected(bus)) {
        int s = sigtimedwait(sigs, NULL, &step);
        if (s == SIGHUP) {
            LOG(LOG_WARN, "reload ignored: not serving yet (the file is read again at the start)");
            continue;
        }
        if (s > 0) {
            *sig = s;
            return -1;
        }
        waited += 50;
        if (waited % 5000 == 0)
            LOG(LOG_WARN, "not serving yet: waiting for the broker waited_ms=%ld", waited);
    }
    return 0;
}

static int declare_on_bus(void *arg, const struct cfg *cfg) {
    return mbus_reload(arg, cfg);
}

/* SIGHUP: reads path again. A file with problems is refused, each problem
 * logged as file:line:col, and the running configuration stays; a good one
 * is declared on the bus, then serves every new request (http_reload). */
static void reload(const char *path, struct http_server *srv, struct mbus *bus) {
    struct cfg *cfg = cfg_load_reload(path);
    const struct cfg *was;

    if (!cfg)
        return;
    was = http_config(srv);
    if (strcmp(was->http.host ? was->http.host : "", cfg->http.host ? cfg->http.host : "") != 0 ||
        was->http.port != cfg->http.port || was->http.threads != cfg->http.threads ||
        was->http.max_connections != cfg->http.max_connections)
        LOG(LOG_WARN, "http.listen, http.threads and http.max_connections take effect at the "
                      "next start only");
    if (http_reload(srv, cfg, declare_on_bus, bus) < 0) {
        LOG(LOG_ERROR, "reload refused: the new configuration could not be put in place; the "
                       "running one stays");
        cfg_free(cfg);
        return;
    }
    LOG(LOG_INFO, "reloaded file=%s endpoints=%zu", path, cfg->n_endpoints);
}

struct reload_args {
    const char *path;
    struct http_server *srv;
    struct mbus *bus;
};

static void reload_hup(void *arg) {
    const struct reload_args *a = arg;

    reload(a->path, a->srv, a->bus);
}

/* Waits until no request waits for the bus or ms passed; returns how many
 * still wait. A request still arriving from a slow client is not waited for:
 * it is closed with the daemon. */
static long wait_drained(struct http_server *srv, long ms) {
    for (long waited = 0; waited < ms && http_waiting(srv) > 0; waited += 10)
        sleep_ms(10);
    return http_waiting(srv);
}

/* Waits until no request is in hand at all (received and not completed) or
 * ms passed; returns how many still are. */
static long wait_idle(struct http_server *srv, long ms) {
    for (long waited = 0; waited < ms && http_in_flight(srv) > 0; waited += 10)
        sleep_ms(10);
    return http_in_flight(srv);
}

int main(int argc, char **argv) {
    const char *config = cli_default_config(), *val;
    struct cfg *cfg = NULL;
    struct mbus *bus = NULL;
    struct http_server *srv = NULL;
    sigset_t sigs;
    int sig = 0, rc = 1;
    long drain_ms, left;

    for (int i = 1, opt; (opt = cli_next(&command_line, argc, argv, &i, &val)) != CLI_END;) {
        switch (opt) {
        case OPT_CONFIG:
            config = val;
            break;
        case OPT_CHECK:
            return cfg_check_main(val);
        case OPT_LIMITS:
            return body_limits_main(val);
        case OPT_ASYNCAPI:
            return asyncapi_main(val);
        case OPT_KEYS:
            for (const char *const *k = cfg_known_keys(); k && *k; k++)
                printf("%s\n", *k);
            return 0;
        case CLI_EXIT0:
            return 0;
        default:
            return 2;
        }
    }
    /* Every tuning variable is checked before anything starts. */
    if (log_init("restmapper") < 0 ||
        envvar_long("FPESA_DRAIN_MS", DEFAULT_DRAIN_MS, 0, 3600000, "milliseconds", &drain_ms) < 0)
        return 1;

    cfg = cfg_load(config, stderr);
    if (!cfg)
        return 1;

    /* Every thread started from here on inherits the blocked signals, so
     * SIGTERM, SIGINT and SIGHUP reach only the waits below. */
    cli_block_signals(&sigs, 0);

    bus = mbus_new(cfg);
    if (!bus) {
        LOG(LOG_ERROR, "cannot create the bus");
        goto out_cfg;
    }
    srv = http_new(cfg, bus);
    if (!srv)
        goto out_bus;
    /* The port is taken now (a taken port fails the start at once) but
     * listened on only once the broker connection and its topology are up:
     * until then a proxy's connections are refused and go to another
     * instance, instead of being answered 503. */
    if (http_bind(srv) != 0)
        goto out_http;
    if (mbus_start(bus) != 0) {
        LOG(LOG_ERROR, "cannot start the bus thread");
        goto out_http;
    }
    if (wait_ready(bus, &sigs, &sig) != 0) {
        LOG(LOG_INFO, "stopping before serving signal=%s", cli_signal_name(sig));
        rc = 0;
        goto out_stop_bus;
    }
    if (http_start(srv) != 0)
        goto out_stop_bus;
    LOG(LOG_INFO, "started config=%s endpoints=%zu", config, cfg->n_endpoints);

    sig = cli_wait_signal(&sigs, reload_hup, &(struct reload_args){config, srv, bus});
    LOG(LOG_INFO, "stopping signal=%s in_flight=%ld", cli_signal_name(sig), http_in_flight(srv));
    http_quiesce(srv);
    /* A request whose headers are in is answered within microseconds unless
     * it waits for the bus; the short pause lets those reach the bus first. */
    sleep_ms(50);
    left = wait_drained(srv, drain_ms);
    /* Requests may still come on connections a proxy keeps open (each
     * answer now closes its connection): they are answered while the bus is
     * still up, and once nothing is in hand the daemon closes what is left,
     * before the bus stops. */
    if (left == 0 && wait_idle(srv, drain_ms) == 0)
        http_stop(srv);
    rc = 0;

out_stop_bus:
    /* Stopping the bus answers whatever still waits on it, which resumes
     * those requests so that the daemon can close them. */
    mbus_stop(bus, 1000);
    if (srv) {
        left = wait_drained(srv, 2000);
        if (left > 0)
            LOG(LOG_WARN, "stopping with requests still waiting for the bus count=%ld", left);
    }
out_http:
    http_free(srv);
out_bus:
    mbus_free(bus);
out_cfg:
    cfg_free(cfg);
    if (rc == 0)
        LOG(LOG_INFO, "stopped");
    log_fini();
    return rc;
}
