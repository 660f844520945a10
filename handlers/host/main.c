/* handler: the generic host of handler plugins.
 *
 *   handler [--config FILE] [--check FILE] [--only NAME]... [NAME]...
 *
 * Loads every handler of endpoints.yaml (or only the named ones), each plugin
 * with dlopen(RTLD_NOW | RTLD_LOCAL), then runs each consumer instance in a
 * child process of its own that the host supervises (supervise.h): a crashing
 * plugin costs only its instance, which is started again. On SIGTERM or
 * SIGINT every instance settles the batch in hand and the host exits 0; on
 * SIGHUP the file is read again and the handlers follow it (supervise.h).
 * A plugin that cannot be loaded or initialised stops the start with one
 * line naming it and exit status 1. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "config.h"
#include "consumer.h"
#include "log.h"
#include "plugin.h"
#include "supervise.h"
#include "version.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: handler [--config FILE] [--check FILE] [--only NAME]...\n"
            "  --config FILE  endpoints.yaml to run (default: $FPESA_CONFIG, else endpoints.yaml)\n"
            "  --check FILE   validate FILE and load every plugin as a start would (ABI,\n"
            "                 config schema), print every problem, exit 0 or 1\n"
            "  --only NAME    run only this handler (repeatable)\n"
            "  --version      print the version and the plugin ABI version, and exit\n"
            "  --help         print this help and exit\n"
            "Environment: FPESA_CONFIG, FPESA_AMQP_URL, FPESA_DATABASE_URL, FPESA_PLUGIN_DIR,\n"
            "FPESA_LOG_LEVEL (debug|info|warn|error).\n"
            "Signals: TERM and INT settle the batches in hand, then exit 0; HUP reloads\n"
            "the file (a bad one is logged and the running handlers go on).\n");
}

static bool wanted(const char *name, char **only, int n_only) {
    if (n_only == 0)
        return true;
    for (int i = 0; i < n_only; i++)
        if (strcmp(only[i], name) == 0)
            return true;
    return false;
}

/* What a start (and every reload) loads: the file and the plugin of every
 * handler to run here. */
struct load_args {
    const char *config;
    char **only;
    int n_only;
};

/* sup_load_fn: loads args->config and opens and checks the plugin of every
 * wanted handler; every problem goes to errs. */
static int load_all(void *arg, struct cfg **out_cfg, struct plugin **out_plugins, FILE *errs) {
    const struct load_args *a = arg;
    struct cfg *cfg = cfg_load(a->config, errs);
    struct plugin *plugins = NULL;
    size_t n_loaded = 0;
    char err[1024];
    int rc = -1;

    if (!cfg)
        return -1;
    for (int i = 0; i < a->n_only; i++) {
        bool found = false;
        for (size_t j = 0; j < cfg->n_handlers; j++)
            found = found || strcmp(cfg->handlers[j].name, a->only[i]) == 0;
        if (!found) {
            fprintf(errs, "%s: no handler named \"%s\"\n", a->config, a->only[i]);
            goto out;
        }
    }
    plugins = calloc(cfg->n_handlers + 1, sizeof(*plugins));
    if (!plugins) {
        fprintf(errs, "%s: out of memory\n", a->config);
        goto out;
    }
    /* Load everything before starting anything: a bad plugin stops the
     * start (or the reload), it does not half-start the host. */
    for (size_t j = 0; j < cfg->n_handlers; j++) {
        const struct cfg_handler *h = &cfg->handlers[j];
        if (!wanted(h->name, a->only, a->n_only))
            continue;
        if (plugin_open(h->plugin_path, &plugins[j], err, sizeof(err)) < 0) {
            fprintf(errs, "%s:%d:%d: handlers[%zu] (%s): %s\n", cfg->file, h->pos.line, h->pos.col,
                    j, h->name, err);
            LOG(LOG_ERROR, "refused handler=%s reason=\"%s\"", h->name, err);
            goto out;
        }
        if (host_check_config(cfg, j, &plugins[j], errs) < 0) {
            LOG(LOG_ERROR,
                "refused handler=%s reason=\"its config does not match the plugin's "
                "schema\"",
                h->name);
            goto out;
        }
        n_loaded++;
        LOG(LOG_INFO, "loaded handler=%s plugin=%s abi=%u description=\"%s\"", h->name,
            plugins[j].path, plugins[j].table->abi_version,
            plugins[j].table->description ? plugins[j].table->description : "");
    }
    if (n_loaded == 0) {
        fprintf(errs, "%s: no handler to run\n", a->config);
        goto out;
    }
    *out_cfg = cfg;
    *out_plugins = plugins;
    cfg = NULL;
    plugins = NULL;
    rc = 0;
out:
    if (cfg && plugins)
        for (size_t j = 0; j < cfg->n_handlers; j++)
            plugin_close(&plugins[j]);
    free(plugins);
    cfg_free(cfg);
    return rc;
}

int main(int argc, char **argv) {
    const char *config = getenv("FPESA_CONFIG");
    char **only = calloc((size_t)argc + 1, sizeof(*only));
    int n_only = 0, rc = 1;
    struct cfg *cfg = NULL;
    struct plugin *plugins = NULL;
    struct load_args args;
    sigset_t set;

    if (log_init("handler") < 0 || !only) {
        free(only);
        return 1;
    }
    if (!config || !*config)
        config = "endpoints.yaml";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(argv[i], "--check") == 0 && i + 1 < argc) {
            free(only);
            return host_check_main(argv[i + 1]);
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only[n_only++] = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            free(only);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("handler (fpesa) %s, plugin ABI %u\n", FPESA_VERSION, FPESA_HANDLER_ABI_VERSION);
            free(only);
            return 0;
        } else if (argv[i][0] != '-') {
            only[n_only++] = argv[i];
        } else {
            fprintf(stderr, "handler: unknown argument \"%s\"\n", argv[i]);
            usage(stderr);
            free(only);
            return 2;
        }
    }

    /* Signals are taken with sigwait/sigtimedwait only, and blocked before
     * any plugin code runs (dlopen runs its constructors), so that every
     * thread a plugin starts, in every child, inherits the mask. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    args.config = config;
    args.only = only;
    args.n_only = n_only;
    if (load_all(&args, &cfg, &plugins, stderr) < 0)
        goto out;
    /* Every instance runs in a supervised child process (supervise.h),
     * which takes cfg and plugins over. */
    if (sup_run(cfg, plugins, &set, load_all, &args) == 0)
        rc = 0;

out:
    free(only);
    if (rc == 0)
        LOG(LOG_INFO, "stopped");
    log_fini();
    return rc;
}
