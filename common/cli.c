/* The command line and the process signals of the three programs (cli.h). */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "version.h"

int cli_next(const struct cli *c, int argc, char **argv, int *i, const char **val) {
    const char *a;

    *val = NULL;
    if (*i >= argc)
        return CLI_END;
    a = argv[(*i)++];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
        cli_usage(c, stdout);
        return CLI_EXIT0;
    }
    if (strcmp(a, "--version") == 0) {
        printf("%s (fpesa) %s%s\n", c->prog, FPESA_VERSION,
               c->version_extra ? c->version_extra : "");
        return CLI_EXIT0;
    }
    for (const struct cli_opt *o = c->opts; o && o->name; o++) {
        if (strcmp(a, o->name) != 0)
            continue;
        if (o->arg) {
            if (*i >= argc)
                break; /* incomplete */
            *val = argv[(*i)++];
        }
        return o->id;
    }
    if (c->words && a[0] != '-') {
        *val = a;
        return CLI_WORD;
    }
    fprintf(stderr, "%s: unknown or incomplete option \"%s\"\n", c->prog, a);
    cli_usage(c, stderr);
    return CLI_ERROR;
}

/* Prints item after a space, or on a new line indented when it would pass
 * column 79; returns the new column. */
static int usage_item(FILE *out, const char *item, int col, int indent) {
    int len = (int)strlen(item);

    if (col + 1 + len > 79) {
        fprintf(out, "\n%*s", indent, "");
        col = indent;
    }
    fprintf(out, " %s", item);
    return col + 1 + len;
}

void cli_usage(const struct cli *c, FILE *out) {
    int width = (int)strlen("--version");

    for (const struct cli_opt *o = c->opts; o && o->name; o++) {
        int w = (int)(strlen(o->name) + (o->arg ? strlen(o->arg) + 1 : 0));
        if (w > width)
            width = w;
    }
    /* The synopsis, wrapped at 79 columns under the program's name. */
    {
        int indent = (int)strlen("usage: ") + (int)strlen(c->prog), col = indent;
        char item[160];

        fprintf(out, "usage: %s", c->prog);
        for (const struct cli_opt *o = c->opts; o && o->name; o++) {
            if (o->arg)
                snprintf(item, sizeof(item), "[%s %s]", o->name, o->arg);
            else
                snprintf(item, sizeof(item), "[%s]", o->name);
            col = usage_item(out, item, col, indent);
        }
        col = usage_item(out, "[--version]", col, indent);
        col = usage_item(out, "[--help]", col, indent);
        if (c->words)
            usage_item(out, c->words, col, indent);
        fprintf(out, "\n%s\n", c->summary);
    }
    for (const struct cli_opt *o = c->opts; o && o->name; o++) {
        char head[128];

        snprintf(head, sizeof(head), "%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf(out, "  %-*s  %s\n", width, head, o->help);
    }
    fprintf(out, "  %-*s  %s\n", width, "--version", "print the version and exit");
    fprintf(out, "  %-*s  %s\n", width, "--help", "print this help and exit");
    if (c->epilog)
        fputs(c->epilog, out);
}

const char *cli_default_config(void) {
    const char *config = getenv("FPESA_CONFIG");

    return config && *config ? config : "endpoints.yaml";
}

void cli_block_signals(sigset_t *set, int extra) {
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    if (extra)
        sigaddset(set, extra);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int cli_wait_signal(const sigset_t *set, void (*on_hup)(void *arg), void *arg) {
    for (;;) {
        int sig = 0;

        if (sigwait(set, &sig) != 0)
            continue;
        if (sig == SIGTERM || sig == SIGINT)
            return sig;
        if (sig == SIGHUP && on_hup)
            on_hup(arg);
    }
}

static void *signal_main(void *p) {
    struct cli_sigthread *t = p;

    for (;;) {
        int sig = 0;

        if (sigwait(&t->set, &sig) != 0)
            continue;
        if (atomic_load(&t->done))
            return NULL;
        if (sig == SIGHUP) {
            if (t->on_hup)
                t->on_hup(t->arg);
            continue;
        }
        if (sig == SIGTERM || sig == SIGINT) {
            t->on_stop(t->arg);
            return NULL;
        }
    }
}

int cli_signal_thread(struct cli_sigthread *t, const sigset_t *set, void (*on_hup)(void *),
                      void (*on_stop)(void *), void *arg) {
    t->set = *set;
    t->on_hup = on_hup;
    t->on_stop = on_stop;
    t->arg = arg;
    atomic_init(&t->done, false);
    t->started = pthread_create(&t->thread, NULL, signal_main, t) == 0;
    return t->started ? 0 : -1;
}

void cli_signal_thread_join(struct cli_sigthread *t) {
    if (!t->started)
        return;
    atomic_store(&t->done, true);
    /* Wakes the thread if it still waits (the program ended another way);
     * a thread that already stopped makes this fail, which is fine. */
    pthread_kill(t->thread, SIGTERM);
    pthread_join(t->thread, NULL);
    t->started = false;
}

const char *cli_signal_name(int sig) {
    switch (sig) {
    case SIGTERM:
        return "TERM";
    case SIGINT:
        return "INT";
    case SIGHUP:
        return "HUP";
    default:
        return "other";
    }
}
