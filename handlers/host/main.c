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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#include "config.h"
#include "consumer.h"
#include "log.h"
#include "plugin.h"
#include "supervise.h"

enum { OPT_CONFIG, OPT_CHECK, OPT_ONLY };

static const struct cli_opt options[] = {
    {"--config", "FILE", "endpoints.yaml to run (default: $FPESA_CONFIG, else endpoints.yaml)",
     OPT_CONFIG},
    {"--check", "FILE", "validate FILE, load every plugin as a start would, exit 0 or 1",
     OPT_CHECK},
    {"--only", "NAME", "run only this handler (repeatable; a bare NAME says the same)", OPT_ONLY},
    {NULL, NULL, NULL, 0},
};

/* ", plugin ABI N" on the --version line (set in main). */
static char abi_text[32];

static struct cli command_line = {
    .prog = "handler",
    .summary = "Runs the handler plugins of endpoints.yaml, each instance a supervised child.",
    .opts = options,
    .words = "[NAME]...",
    .version_extra = abi_text,
    .epilog = "Environment: FPESA_CONFIG, FPESA_AMQP_URL, FPESA_DATABASE_URL, FPESA_PLUGIN_DIR,\n"
              "FPESA_LOG_LEVEL (debug|info|warn|error).\n"
              "Signals: TERM and INT settle the batches in hand, then exit 0; HUP reloads\n"
              "the file (a bad one is logged and the running handlers go on).\n",
};

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
    const char *config = cli_default_config(), *val;
    char **only = calloc((size_t)argc + 1, sizeof(*only));
    int n_only = 0, rc = 1;
    struct cfg *cfg = NULL;
    struct plugin *plugins = NULL;
    struct load_args args;
    sigset_t set;

    if (!only)
        return 1;
    snprintf(abi_text, sizeof(abi_text), ", plugin ABI %u", FPESA_HANDLER_ABI_VERSION);
    for (int i = 1, opt; (opt = cli_next(&command_line, argc, argv, &i, &val)) != CLI_END;) {
        switch (opt) {
        case OPT_CONFIG:
            config = val;
            break;
        case OPT_CHECK:
            free(only);
            return host_check_main(val);
        case OPT_ONLY:
        case CLI_WORD:
            only[n_only++] = (char *)val;
            break;
        default:
            free(only);
            return opt == CLI_EXIT0 ? 0 : 2;
        }
    }
    if (log_init("handler") < 0) {
        free(only);
        return 1;
    }
    /* Signals are taken with sigwait/sigtimedwait only (supervise.c), and
     * blocked before any plugin code runs (dlopen runs its constructors), so
     * that every thread a plugin starts, in every child, inherits the mask. */
    cli_block_signals(&set, SIGCHLD);

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
