/* What the pieces of the handler host's supervisor share; private to
 * handlers/host/ (the API is supervise.h).
 *
 * supervise.c forks, restarts and stops the children and runs the loop;
 * reload.c applies a new configuration; crashes.c keeps the crash records
 * (it needs none of this).
 */
#ifndef FPESA_SUPERVISE_INT_H
#define FPESA_SUPERVISE_INT_H

#include "supervise.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "listener.h"
#include "plugin.h"
#include "stats.h"

/* One loaded configuration: the file and the plugins of its handlers
 * (plugins[j] for handlers[j]; a handler not run here has none). Units keep
 * a reference, so a configuration lives as long as a child forked from it
 * may need to be forked again. */
struct sup_gen {
    struct cfg *cfg;
    struct plugin *plugins;
    int refs;
};

struct sup_unit;

struct sup_child {
    struct sup_unit *u;
    int instance;
    struct sup_slot *slot;
    pid_t pid;          /* 0 while not running */
    int64_t started_ms; /* when forked */
    int64_t restart_ms; /* when to fork again, while not running */
    long backoff_ms;
    bool crashed; /* died without being asked to: the next start is a crash restart */
};

/* One handler as it runs: its instances, crash table and counters. A unit
 * that a reload removed or replaced is draining: its children were asked to
 * stop, and it goes once the last one has. */
struct sup_unit {
    struct sup_gen *gen;
    size_t j; /* index of its handler in gen->cfg->handlers */
    struct sup_table *table;
    struct hstats *stats;
    bool owns_stats; /* false once a replacing unit took the counters over */
    struct sup_child *kids;
    size_t n_kids;
    bool draining;
    int64_t drain_deadline_ms;
};

/* The supervisor's state; lock guards units for the HTTP thread. */
struct sup {
    const sigset_t *set;
    sup_load_fn load;
    void *load_arg;
    pthread_mutex_t lock;
    struct sup_unit **units;
    size_t n_units;
    struct hlisten *http;
};

/* supervise.c */
int64_t sup_now_ms(void);
const struct cfg_handler *sup_unit_handler(const struct sup_unit *u);
void sup_gen_unref(struct sup_gen *g);
/* A new unit for handler j of g (a reference to g is taken), its children
 * not started; stats: the counters to continue, or NULL for new ones. */
struct sup_unit *sup_unit_new(struct sup_gen *g, size_t j, struct hstats *stats);
void sup_unit_free(struct sup_unit *u);
size_t sup_unit_running(const struct sup_unit *u);
void sup_unit_drain(struct sup_unit *u);
int sup_unit_start(struct sup_unit *u, const sigset_t *set);
void sup_wait_children(struct sup_unit **units, size_t n, bool ask);

/* reload.c */
void sup_reload(struct sup *s);
void sup_reap_drained(struct sup *s);

#endif
