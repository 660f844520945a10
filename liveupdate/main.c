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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "config.h"
#include "log.h"
#include "version.h"
#include "ws.h"

static struct live_server *the_server;

static void on_signal(int sig) {
    (void)sig;
    if (the_server)
        live_server_shutdown(the_server);
}

static void on_hup(int sig) {
    (void)sig;
    if (the_server)
        live_server_reload(the_server);
}

static void usage(FILE *f) {
    fprintf(f, "usage: liveupdate [--config FILE] [--check FILE] [--version]\n"
               "Forwards the messages of the live endpoints from RabbitMQ to websocket clients.\n"
               "  --config FILE  endpoints file (default: $FPESA_CONFIG, else endpoints.yaml)\n"
               "  --check FILE   validate FILE as a start would, print every problem, exit 0 or "
               "1\n"
               "  --version      print the version and exit\n"
               "  --help         print this help and exit\n"
               "Environment: FPESA_CONFIG, FPESA_AMQP_URL, FPESA_LIVE_LISTEN, FPESA_LOG_LEVEL\n"
               "(debug|info|warn|error).\n"
               "Signals: TERM and INT close every client with 1001 and exit 0; HUP reloads the\n"
               "file (new live channels are added, every client stays connected; a bad file is\n"
               "logged and the running configuration stays).\n");
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
            return check_main(argv[i + 1]);
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("liveupdate (fpesa) %s\n", FPESA_VERSION);
            return 0;
        } else {
            fprintf(stderr, "liveupdate: unknown or incomplete option \"%s\"\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (log_init("liveupdate") < 0)
        return 1;
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
    live_server_set_config_path(the_server, config);
    /* Set even when started under nohup, which ignores SIGHUP. */
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
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
