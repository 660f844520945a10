/* liveupdate: forwards every message of the live endpoints from RabbitMQ to
 * the websocket clients of its channel.
 *
 *   liveupdate [--config FILE] [--check FILE]
 *
 * The configuration defaults to $FPESA_CONFIG, else endpoints.yaml; the
 * listen address comes from liveupdate.listen (FPESA_LIVE_LISTEN overrides).
 * SIGTERM and SIGINT close every client with 1001 and exit 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "config.h"
#include "log.h"
#include "ws.h"

static struct live_server *the_server;

static void on_signal(int sig) {
    (void)sig;
    if (the_server)
        live_server_shutdown(the_server);
}

static void usage(FILE *f) {
    fprintf(f, "usage: liveupdate [--config FILE] [--check FILE]\n");
}

/* Lifts the soft limit on open files to the hard one: each client is a socket. */
static void raise_nofile(void) {
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv) {
    const char *config = getenv("FPESA_CONFIG");
    struct sigaction sa;
    struct cfg *cfg;
    int rc = 1;

    if (!config || !*config)
        config = "endpoints.yaml";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(argv[i], "--check") == 0 && i + 1 < argc) {
            return cfg_check_main(argv[i + 1]);
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    log_init("liveupdate");
    cfg = cfg_load(config, stderr);
    if (!cfg)
        return 1;
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    the_server = live_server_new(cfg);
    if (!the_server)
        goto out_cfg;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    live_server_run(the_server);
    LOG(LOG_INFO, "stopped");
    rc = 0;
    live_server_free(the_server);
    the_server = NULL;
out_cfg:
    cfg_free(cfg);
    log_fini();
    return rc;
}
