/* The supervisor: every handler instance in a child process of its own.
 *
 * A plugin runs inside the host, so a plugin that crashes (SIGSEGV, abort(),
 * exit()) would take every other handler with it. Instead, the host process
 * loads the plugins, then forks one child per instance and only watches them:
 * a child that dies is logged with its signal and the ids of the messages it
 * was handling, and started again after a growing backoff, while the other
 * children keep consuming. The broker gives the dead child's unacknowledged
 * deliveries back, so nothing is lost.
 *
 * A message that crashes its instance every time would crash it forever. The
 * children therefore write the ids of the batch in hand into a slot of shared
 * memory (struct sup_slot, one per instance) before calling the plugin; when a
 * child dies, the supervisor counts a crash for each of those ids in the
 * handler's crash table (struct sup_table, shared by its instances). A
 * message with a crash on record is suspect and is handed to the plugin alone
 * from then on; once it has crashed the instance alone and its crashes reach
 * the handler's crash_limit (default 3), the child dead-letters it with the
 * reason in its headers instead of calling the plugin again.
 *
 * Signals: the host blocks SIGTERM, SIGINT and SIGCHLD before any plugin code
 * runs (dlopen runs constructors), so every thread of every child inherits
 * the mask; each child's main thread takes SIGTERM with sigwait() and stops
 * its consumer cleanly. A child is killed (SIGKILL) when the host is killed,
 * as the instance would have been inside one process. */
#ifndef HOST_SUPERVISE_H
#define HOST_SUPERVISE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct cfg;
struct plugin;

/* Crash counts by message id, in shared memory (one per handler). */
struct sup_table;

/* The ids of the batch an instance has in hand, in shared memory. */
struct sup_slot;

/* A new table for a handler whose crash_limit is limit; NULL when the memory
 * cannot be mapped. Free with sup_table_free. */
struct sup_table *sup_table_new(unsigned limit);
void sup_table_free(struct sup_table *t);

/* A new slot for batches of up to cap messages; free with sup_slot_free. */
struct sup_slot *sup_slot_new(size_t cap);
void sup_slot_free(struct sup_slot *s);

/* Child side: records the ids of msgs[0..n-1] (borrowed; messages without
 * one are skipped) as the batch about to be handed to the plugin, and clears
 * it afterwards. */
struct fpesa_message;
void sup_slot_set(struct sup_slot *s, const struct fpesa_message *const *msgs, size_t n);
void sup_slot_clear(struct sup_slot *s);

/* What the crash table says about a message. */
enum sup_verdict {
    SUP_CLEAN = 0,   /* no crash on record */
    SUP_SUSPECT = 1, /* was in hand when an instance crashed: handle it alone */
    SUP_POISON = 2,  /* crashed the instance alone, crash_limit times in all */
};

/* Child side: the verdict on id (borrowed; NULL is SUP_CLEAN). For
 * SUP_POISON, reason (of len bytes) says why, for the dead-letter headers,
 * and *crashes holds the count. */
enum sup_verdict sup_verdict(struct sup_table *t, const char *id, unsigned *crashes, char *reason,
                             size_t len);

/* Child side: the message is settled; its record is dropped. */
void sup_forget(struct sup_table *t, const char *id);

/* Supervisor side: one crash (signal sig, or 0 for an exit) of the instance
 * whose slot is s is charged to every id in it. Writes up to len bytes of
 * those ids, comma separated, into ids for the log; returns how many. */
size_t sup_blame(struct sup_table *t, struct sup_slot *s, int sig, char *ids, size_t len);

/* Loads the configuration again for a reload: on success fills *cfg (new,
 * cfg_free) and *plugins (new, one per handler, those not run here zeroed;
 * plugin_close each, then free) and returns 0; otherwise writes every
 * problem as "file:line:col: message" lines to errs and returns -1. */
typedef int (*sup_load_fn)(void *arg, struct cfg **cfg, struct plugin **plugins, FILE *errs);

/* Runs every instance of every handler whose plugins[j].table is loaded,
 * each in a child process (see above), until SIGTERM or SIGINT of set
 * arrives (SIGCHLD and SIGHUP must be in it, all blocked); then stops the
 * children and waits for them. cfg and plugins (calloc'ed) are taken.
 *
 * SIGHUP reloads: load() reads the file again; a file it refuses is logged
 * problem by problem, and the running handlers go on as they are. From a
 * good file, new handlers start, changed ones (any setting, the plugin's
 * config, bus or database) start anew beside their old instances, which are
 * then asked to stop (each settles its batch in hand, the broker gives the
 * rest to the new ones), removed ones stop the same way, and unchanged ones
 * are not touched. A plugin of the new file whose init refuses refuses the
 * reload.
 *
 * When cfg->handler_host.port is set, /health and /metrics are served there
 * (listener.h, stats.h); a port in use stops the start.
 *
 * Returns 0 after a clean stop, -1 when an instance failed to start the first
 * time (its plugin's init refused: the reason is on stderr), the port could
 * not be bound, or nothing could be started. */
int sup_run(struct cfg *cfg, struct plugin *plugins, const sigset_t *set, sup_load_fn load,
            void *load_arg);

#endif
