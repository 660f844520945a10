/* handler: the generic host of handler plugins.
 *
 *   handler [--config FILE] [--check FILE] [--only NAME]... [NAME]...
 *
 * Loads every handler of endpoints.yaml (or only the named ones) into one
 * process, each plugin with dlopen(RTLD_NOW | RTLD_LOCAL), initialises one
 * state per consumer instance, then consumes until SIGTERM or SIGINT, after
 * which every instance settles the batch in hand and the process exits 0.
 * A plugin that cannot be loaded or initialised stops the start with one
 * line naming it and exit status 1. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "consumer.h"
#include "log.h"
#include "plugin.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: handler [--config FILE] [--check FILE] [--only NAME]...\n"
            "  --config FILE  endpoints.yaml to run (default: $FPESA_CONFIG, else endpoints.yaml)\n"
            "  --check FILE   validate FILE, print every problem, exit 0 or 1\n"
            "  --only NAME    run only this handler (repeatable)\n");
}

static bool wanted(const char *name, char **only, int n_only) {
    if (n_only == 0)
        return true;
    for (int i = 0; i < n_only; i++)
        if (strcmp(only[i], name) == 0)
            return true;
    return false;
}

int main(int argc, char **argv) {
    const char *config = getenv("FPESA_CONFIG");
    char **only = calloc((size_t)argc + 1, sizeof(*only));
    int n_only = 0, rc = 1, sig;
    struct cfg *cfg = NULL;
    struct plugin *plugins = NULL;
    struct fpesa_ctx **ctxs = NULL;
    size_t n_ctx = 0;
    char err[1024];
    sigset_t set;

    log_init("handler");
    if (!only)
        return 1;
    if (!config || !*config)
        config = "endpoints.yaml";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(argv[i], "--check") == 0 && i + 1 < argc) {
            free(only);
            return cfg_check_main(argv[i + 1]);
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only[n_only++] = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
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

    cfg = cfg_load(config, stderr);
    if (!cfg)
        goto out;
    for (int i = 0; i < n_only; i++) {
        bool found = false;
        for (size_t j = 0; j < cfg->n_handlers; j++)
            found = found || strcmp(cfg->handlers[j].name, only[i]) == 0;
        if (!found) {
            fprintf(stderr, "handler: %s: no handler named \"%s\"\n", config, only[i]);
            goto out;
        }
    }
    plugins = calloc(cfg->n_handlers + 1, sizeof(*plugins));
    if (!plugins)
        goto out;
    {
        size_t total = 0;
        for (size_t j = 0; j < cfg->n_handlers; j++)
            total += (size_t)(cfg->handlers[j].instances > 0 ? cfg->handlers[j].instances : 1);
        ctxs = calloc(total + 1, sizeof(*ctxs));
        if (!ctxs)
            goto out;
    }

    /* Signals are taken by this thread only, with sigwait. They are blocked
     * before any plugin code runs (its constructors at dlopen, init()), so
     * every thread a plugin starts inherits the mask and none takes them. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Load and initialise everything before consuming anything: a bad
     * plugin stops the start, it does not half-start the host. */
    for (size_t j = 0; j < cfg->n_handlers; j++) {
        const struct cfg_handler *h = &cfg->handlers[j];
        int inst = h->instances > 0 ? h->instances : 1;
        if (!wanted(h->name, only, n_only))
            continue;
        if (plugin_open(h->plugin_path, &plugins[j], err, sizeof(err)) < 0) {
            fprintf(stderr, "handler: %s\n", err);
            LOG(LOG_ERROR, "refused handler=%s reason=\"%s\"", h->name, err);
            goto out;
        }
        LOG(LOG_INFO, "loaded handler=%s plugin=%s abi=%u description=\"%s\"", h->name,
            plugins[j].path, plugins[j].table->abi_version,
            plugins[j].table->description ? plugins[j].table->description : "");
        for (int k = 0; k < inst; k++) {
            struct fpesa_ctx *c = consumer_new(cfg, h, &plugins[j], k, err, sizeof(err));
            if (!c) {
                fprintf(stderr, "handler: %s\n", err);
                LOG(LOG_ERROR, "refused handler=%s reason=\"%s\"", h->name, err);
                goto out;
            }
            ctxs[n_ctx++] = c;
        }
    }
    if (n_ctx == 0) {
        fprintf(stderr, "handler: %s: no handler to run\n", config);
        goto out;
    }

    for (size_t i = 0; i < n_ctx; i++)
        if (consumer_start(ctxs[i]) < 0) {
            consumer_request_stop();
            goto out;
        }
    LOG(LOG_INFO, "started handlers=%zu instances=%zu", cfg->n_handlers, n_ctx);
    if (sigwait(&set, &sig) == 0)
        LOG(LOG_INFO, "stopping signal=%s", sig == SIGTERM ? "TERM" : "INT");
    consumer_request_stop();
    rc = 0;

out:
    for (size_t i = 0; i < n_ctx; i++)
        consumer_join(ctxs[i]);
    for (size_t i = n_ctx; i-- > 0;)
        consumer_free(ctxs[i]);
    if (cfg && plugins)
        for (size_t j = 0; j < cfg->n_handlers; j++)
            plugin_close(&plugins[j]);
    free(plugins);
    free(ctxs);
    cfg_free(cfg);
    free(only);
    if (rc == 0)
        LOG(LOG_INFO, "stopped");
    log_fini();
    return rc;
}
