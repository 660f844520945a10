/* The command line and the process signals of the three programs, one way
 * for all of them.
 *
 * Arguments: each program describes its options in a table; cli_next walks
 * argv over it, answers --help (the usage, generated from the table) and
 * --version itself, and refuses an unknown or incomplete option with the
 * usage on stderr (exit status 2, as every program documents).
 *
 * Signals: TERM, INT and HUP are blocked in the main thread before any
 * other thread starts (and before any plugin code is loaded), so every
 * thread inherits the mask and the signals are taken synchronously, by
 * cli_wait_signal, in one place: TERM and INT stop the program, HUP reloads
 * its file. No program installs an asynchronous handler. A program whose
 * main thread runs an event loop takes them in a thread of its own
 * (cli_signal_thread). */
#ifndef FPESA_COMMON_CLI_H
#define FPESA_COMMON_CLI_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

/* What cli_next returns besides an option's id (ids are >= 0). */
enum {
    CLI_END = -1,   /* argv is done */
    CLI_EXIT0 = -2, /* --help or --version was printed: exit 0 */
    CLI_ERROR = -3, /* an unknown or incomplete option was reported: exit 2 */
    CLI_WORD = -4   /* a bare word (only when the program takes them) */
};

struct cli_opt {
    const char *name; /* "--config" */
    const char *arg;  /* "FILE", or NULL for an option without an argument */
    const char *help; /* one line */
    int id;           /* >= 0, what cli_next returns */
};

struct cli {
    const char *prog;           /* "restmapper" */
    const char *summary;        /* what the program does, one line */
    const struct cli_opt *opts; /* ends with a NULL name */
    const char *words;          /* usage of bare words ("[NAME]..."), or NULL: refused */
    const char *version_extra;  /* appended to the --version line, or NULL */
    const char *epilog;         /* environment and signals, printed after the options */
};

/* The next option of argv, starting at *i (1 for the first call). Its
 * argument (or the bare word) is in *val. */
int cli_next(const struct cli *c, int argc, char **argv, int *i, const char **val);

/* Prints the usage: the options of the table, --version and --help, and
 * the epilog. */
void cli_usage(const struct cli *c, FILE *out);

/* The configuration file when none is named: $FPESA_CONFIG, else
 * endpoints.yaml. */
const char *cli_default_config(void);

/* Blocks TERM, INT and HUP (and extra, 0 for none) in the calling thread
 * and ignores SIGPIPE; *set receives the blocked set. */
void cli_block_signals(sigset_t *set, int extra);

/* Waits for the next signal of set: on HUP calls on_hup(arg) (when not
 * NULL) and waits on; returns TERM or INT. */
int cli_wait_signal(const sigset_t *set, void (*on_hup)(void *arg), void *arg);

/* For a program whose main thread runs a loop: a thread that waits as
 * cli_wait_signal does and calls on_stop(arg) for TERM or INT, then ends.
 * Both callbacks run in that thread. cli_signal_thread_join stops it when
 * the program ended another way. 0 or -1. */
struct cli_sigthread {
    pthread_t thread;
    sigset_t set;
    void (*on_hup)(void *arg);
    void (*on_stop)(void *arg);
    void *arg;
    atomic_bool done; /* set before the join wakes the thread: no callback */
    bool started;
};
int cli_signal_thread(struct cli_sigthread *t, const sigset_t *set, void (*on_hup)(void *),
                      void (*on_stop)(void *), void *arg);
void cli_signal_thread_join(struct cli_sigthread *t);

/* The name of a stop signal for the logs: "TERM", "INT", ... */
const char *cli_signal_name(int sig);

#endif
