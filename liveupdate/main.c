/* liveupdate: forwards every message of the live endpoints from RabbitMQ to
 * the websocket clients of its channel.
 *
 *   liveupdate [--config FILE] [--check FILE] [--version] [--help]
 *
 * The configuration defaults to $FPESA_CONFIG, else endpoints.yaml; the
 * listen address comes from liveupdate.listen (FPESA_LIVE_LISTEN overrides).
 * SIGTERM and SIGINT close every client with 1001 and exit 0; SIGHUP reads
 * the file again (live_server_reload).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli.h"
#include "config.h"
#include "log.h"
#include "ws.h"

enum { OPT_CONFIG, OPT_CHECK };

static const struct cli_opt options[] = {
    {"--config", "FILE", "endpoints file (default: $FPESA_CONFIG, else endpoints.yaml)",
     OPT_CONFIG},
    {"--check", "FILE", "validate FILE as a start would, print every problem, exit 0 or 1",
     OPT_CHECK},
    {NULL, NULL, NULL, 0},
};

static const struct cli command_line = {
    .prog = "liveupdate",
    .summary = "Forwards the messages of the live endpoints from RabbitMQ to websocket clients.",
    .opts = options,
    .epilog = "Environment: FPESA_CONFIG, FPESA_AMQP_URL, FPESA_LIVE_LISTEN, FPESA_LOG_LEVEL\n"
              "(debug|info|warn|error).\n"
              "Signals: TERM and INT close every client with 1001 and exit 0; HUP reloads the\n"
              "file (new live channels are added, every client stays connected; a bad file is\n"
              "logged and the running configuration stays).\n",
};

static void on_stop(void *srv) {
    live_server_shutdown(srv);
}

static void on_hup(void *srv) {
    live_server_reload(srv);
}

/* --check: the file loads and has something to serve (a start refuses a
 * file without a live endpoint). Returns the exit status. */
static int check_main(const char *path) {
    struct cfg *cfg = cfg_load(path, stderr);
    size_t live = 0;

    if (!cfg)
        return 1;
    for (size_t i = 0; i < cfg->n_endpoints; i++)
        live += cfg->endpoints[i].live ? 1 : 0;
    if (live == 0)
        fprintf(stderr, "%s: no endpoint has live: true; liveupdate has nothing to serve\n", path);
    else
        printf("%s: ok\n", path);
    fflush(stdout);
    cfg_free(cfg);
    return live == 0 ? 1 : 0;
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
    const char *config = cli_default_config(), *val;
    struct live_server *srv;
    struct cli_sigthread sigthread = {0};
    sigset_t sigs;
    struct cfg *cfg;
    int rc = 1;

    for (int i = 1, opt; (opt = cli_next(&command_line, argc, argv, &i, &val)) != CLI_END;) {
        switch (opt) {
        case OPT_CONFIG:
            config = val;
            break;
        case OPT_CHECK:
            return check_main(val);
        case CLI_EXIT0:
            return 0;
        default:
            return 2;
        }
    }
    if (log_init("liveupdate") < 0)
        return 1;
    cfg = cfg_load(config, stderr);
    if (!cfg)
        return 1;
    raise_nofile();
    /* Blocked before the server starts its threads, which inherit the mask:
     * the signals reach only the signal thread (cli.h). */
    cli_block_signals(&sigs, 0);
    srv = live_server_new(cfg);
    if (!srv)
        goto out_cfg;
    live_server_set_config_path(srv, config);
    if (cli_signal_thread(&sigthread, &sigs, on_hup, on_stop, srv) < 0) {
        LOG(LOG_ERROR, "cannot start the signal thread");
        goto out_srv;
    }
    live_server_run(srv);
    LOG(LOG_INFO, "stopped");
    rc = 0;
out_srv:
    cli_signal_thread_join(&sigthread);
    live_server_free(srv);
out_cfg:
    cfg_free(cfg);
    log_fini();
    return rc;
}
