/* restmapper: serves every route of endpoints.yaml and maps it onto RabbitMQ.
 *
 *   restmapper [--config FILE] [--check FILE] [--list-config-keys] [--body-limits FILE]
 *
 * SIGTERM or SIGINT stops accepting connections, lets the requests already
 * received finish (up to FPESA_DRAIN_MS, default 10000 ms), then stops the bus
 * and exits 0.
 */
#include "bus.h"
#include "config.h"
#include "http.h"
#include "limits.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_DRAIN_MS 10000

static void usage(FILE *out) {
    fprintf(out, "usage: restmapper [--config FILE] [--check FILE] [--list-config-keys] "
                 "[--body-limits FILE]\n"
                 "  --config FILE       endpoints file (default: $FPESA_CONFIG, else "
                 "endpoints.yaml)\n"
                 "  --check FILE        validate FILE, print every problem, exit 0 or 1\n"
                 "  --list-config-keys  print every configuration key the loader knows\n"
                 "  --body-limits FILE  print the body size limit of every path of FILE (bytes)\n");
}

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

static long env_ms(const char *name, long def) {
    const char *v = getenv(name);
    char *end;
    long long n;

    if (!v || !*v)
        return def;
    errno = 0;
    n = strtoll(v, &end, 10);
    if (errno || *end || n < 0 || n > 3600000)
        return def;
    return (long)n;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Waits until no request waits for the bus or ms passed; returns how many
 * still wait. A request still arriving from a slow client is not waited for:
 * it is closed with the daemon. */
static long wait_drained(struct http_server *srv, long ms) {
    for (long waited = 0; waited < ms && http_waiting(srv) > 0; waited += 10)
        sleep_ms(10);
    return http_waiting(srv);
}

int main(int argc, char **argv) {
    const char *config = getenv("FPESA_CONFIG");
    struct cfg *cfg = NULL;
    struct mbus *bus = NULL;
    struct http_server *srv = NULL;
    sigset_t sigs;
    int sig = 0, rc = 1;
    long drain_ms, left;

    log_init("restmapper");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(argv[i], "--check") == 0 && i + 1 < argc) {
            return cfg_check_main(argv[i + 1]);
        } else if (strcmp(argv[i], "--body-limits") == 0 && i + 1 < argc) {
            return body_limits_main(argv[i + 1]);
        } else if (strcmp(argv[i], "--list-config-keys") == 0) {
            for (const char *const *k = cfg_known_keys(); k && *k; k++)
                printf("%s\n", *k);
            return 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "restmapper: unknown or incomplete option \"%s\"\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!config || !*config)
        config = "endpoints.yaml";

    cfg = cfg_load(config, stderr);
    if (!cfg)
        return 1;

    /* Every thread started from here on inherits the blocked signals, so
     * SIGTERM and SIGINT reach only the sigwait below. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    bus = mbus_new(cfg);
    if (!bus) {
        LOG(LOG_ERROR, "cannot create the bus");
        goto out_cfg;
    }
    srv = http_new(cfg, bus);
    if (!srv)
        goto out_bus;
    if (mbus_start(bus) != 0) {
        LOG(LOG_ERROR, "cannot start the bus thread");
        goto out_http;
    }
    if (http_start(srv) != 0)
        goto out_stop_bus;
    LOG(LOG_INFO, "started config=%s endpoints=%zu", config, cfg->n_endpoints);

    while (sigwait(&sigs, &sig) != 0)
        ;
    LOG(LOG_INFO, "stopping signal=%s in_flight=%ld", sig == SIGTERM ? "TERM" : "INT",
        http_in_flight(srv));
    drain_ms = env_ms("FPESA_DRAIN_MS", DEFAULT_DRAIN_MS);
    http_quiesce(srv);
    /* A request whose headers are in is answered within microseconds unless
     * it waits for the bus; the short pause lets those reach the bus first. */
    sleep_ms(50);
    left = wait_drained(srv, drain_ms);
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
