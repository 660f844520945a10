/* The supervisor: forks a handler's instances, restarts the crashed ones
 * with a backoff, stops them, answers the host's health and metrics
 * requests, and runs the loop (see supervise.h). The crash records are in
 * crashes.c, reloading in reload.c.
 */
#include "supervise_int.h"

#include <errno.h>
#include <fpesa/handler.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <jansson.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "consumer.h"
#include "ctx.h"
#include "log.h"
#include "listener.h"
#include "plugin.h"
#include "stats.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
/* A child that ran this long before it died starts again at once. */
#define STABLE_MS 10000
/* How long a stopping child may take to settle its batch. */
#define STOP_GRACE_MS 30000
/* Exit status of a child whose plugin's init() failed. */
#define EXIT_INIT 3

int64_t sup_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- children -------------------------------------------------------------- */

const struct cfg_handler *sup_unit_handler(const struct sup_unit *u) {
    return &u->gen->cfg->handlers[u->j];
}

void sup_gen_unref(struct sup_gen *g) {
    if (!g || --g->refs > 0)
        return;
    for (size_t j = 0; j < g->cfg->n_handlers; j++)
        plugin_close(&g->plugins[j]);
    free(g->plugins);
    cfg_free(g->cfg);
    free(g);
}

/* The listener's socket, closed by every child: a child must never keep
 * the host's port open (it would outlive a restarted host). */
static int listen_fd_to_close = -1;

/* The child's life: init the plugin, say so on ready_fd (when >= 0), consume
 * until SIGTERM, stop cleanly. Never returns. */
static void child_main(struct sup_child *k, pid_t parent, int ready_fd, const sigset_t *set) {
    const struct sup_unit *u = k->u;
    const struct cfg_handler *h = sup_unit_handler(u);
    char err[1024];
    struct fpesa_ctx *c;
    int sig = 0;

    /* Dies with the host when the host is killed (a host that is stopped
     * stops its children first, gracefully). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    if (listen_fd_to_close >= 0)
        close(listen_fd_to_close);
    c = consumer_new(u->gen->cfg, h, &u->gen->plugins[u->j], k->instance, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "handler: %s\n", err);
        LOG(LOG_ERROR, "refused handler=%s reason=\"%s\"", h->name, err);
        _exit(EXIT_INIT);
    }
    c->crashes = u->table;
    c->slot = k->slot;
    c->stats = u->stats;
    if (ready_fd >= 0) {
        ssize_t w = write(ready_fd, "r", 1);
        (void)w;
        close(ready_fd);
    }
    /* SIGHUP reloads the host; a child sent one (a whole process group
     * signalled) keeps consuming. */
    if (consumer_start(c) == 0) {
        while (sigwait(set, &sig) == 0 && (sig == SIGCHLD || sig == SIGHUP))
            ;
    }
    consumer_request_stop();
    consumer_join(c);
    consumer_free(c);
    log_fini();
    _exit(0);
}

/* Forks k's child. With wait_ready, waits until its plugin is initialised
 * and returns -1 when it was refused (the child has been reaped). */
static int spawn(struct sup_child *k, const sigset_t *set, bool wait_ready) {
    int fds[2] = {-1, -1};
    pid_t parent = getpid(), pid;
    char b;

    if (wait_ready && pipe2(fds, O_CLOEXEC) < 0) {
        int saved = errno;
        LOG(LOG_ERROR, "cannot create a pipe: %s", strerror(saved));
        return -1;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        int saved = errno;
        LOG(LOG_ERROR, "cannot fork handler=%s instance=%d: %s", sup_unit_handler(k->u)->name,
            k->instance, strerror(saved));
        if (wait_ready) {
            close(fds[0]);
            close(fds[1]);
        }
        return -1;
    }
    if (pid == 0) {
        if (fds[0] >= 0)
            close(fds[0]);
        child_main(k, parent, fds[1], set);
    }
    k->pid = pid;
    k->started_ms = sup_now_ms();
    if (!wait_ready)
        return 0;
    close(fds[1]);
    if (read(fds[0], &b, 1) == 1) {
        close(fds[0]);
        return 0;
    }
    close(fds[0]);
    waitpid(pid, NULL, 0);
    k->pid = 0;
    return -1;
}

/* A child died (status from waitpid): log why and what it held, charge the
 * crash to those messages, and plan its restart. */
static void buried(struct sup_child *k, int status) {
    const char *name = sup_unit_handler(k->u)->name;
    char ids[512], what[64];
    int64_t ran = sup_now_ms() - k->started_ms;
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    size_t n = sup_blame(k->u->table, k->slot, sig, ids, sizeof(ids));

    if (sig)
        snprintf(what, sizeof(what), "signal=SIG%s", sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
    else
        snprintf(what, sizeof(what), "exit=%d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    k->backoff_ms = ran >= STABLE_MS || k->backoff_ms == 0
                        ? BACKOFF_MIN_MS
                        : (k->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : k->backoff_ms * 2);
    if (!sig && WIFEXITED(status) && WEXITSTATUS(status) == EXIT_INIT)
        LOG(LOG_ERROR, "instance init failed handler=%s instance=%d restart_in_ms=%ld", name,
            k->instance, k->backoff_ms);
    else
        LOG(LOG_ERROR,
            "instance crashed handler=%s instance=%d pid=%d %s in_hand=%zu ids=%s "
            "restart_in_ms=%ld",
            name, k->instance, (int)k->pid, what, n, n ? ids : "-", k->backoff_ms);
    k->pid = 0;
    k->crashed = true;
    k->restart_ms = sup_now_ms() + k->backoff_ms;
}

/* A new unit for handler j of g (a reference to g is taken), its children
 * not started. stats: the counters to continue (those of the unit it
 * replaces), or NULL for new ones. */
struct sup_unit *sup_unit_new(struct sup_gen *g, size_t j, struct hstats *stats) {
    const struct cfg_handler *h = &g->cfg->handlers[j];
    struct sup_unit *u = calloc(1, sizeof(*u));
    size_t inst = (size_t)h->instances; /* the loader sets 1 */

    if (!u)
        return NULL;
    u->gen = g;
    g->refs++;
    u->j = j;
    u->table = sup_table_new((unsigned)h->crash_limit);
    u->stats = stats ? stats : hstats_new();
    u->owns_stats = true;
    u->kids = calloc(inst, sizeof(*u->kids));
    if (!u->table || !u->stats || !u->kids)
        goto out_free;
    for (size_t i = 0; i < inst; i++) {
        u->kids[i].u = u;
        u->kids[i].instance = (int)i;
        u->kids[i].slot = sup_slot_new((size_t)h->batch);
        if (!u->kids[i].slot)
            goto out_free;
        u->n_kids++;
    }
    return u;

out_free:
    if (stats)
        u->owns_stats = false; /* the caller keeps them */
    for (size_t i = 0; i < u->n_kids; i++)
        sup_slot_free(u->kids[i].slot);
    free(u->kids);
    if (u->owns_stats)
        hstats_free(u->stats);
    sup_table_free(u->table);
    sup_gen_unref(u->gen);
    free(u);
    return NULL;
}

/* Frees u, whose children have all exited. */
void sup_unit_free(struct sup_unit *u) {
    if (!u)
        return;
    for (size_t i = 0; i < u->n_kids; i++)
        sup_slot_free(u->kids[i].slot);
    free(u->kids);
    if (u->owns_stats)
        hstats_free(u->stats);
    sup_table_free(u->table);
    sup_gen_unref(u->gen);
    free(u);
}

size_t sup_unit_running(const struct sup_unit *u) {
    size_t n = 0;
    for (size_t i = 0; i < u->n_kids; i++)
        n += u->kids[i].pid > 0;
    return n;
}

/* Asks every child of u to stop, settling its batch in hand first; the
 * broker gives back what they had not settled. */
void sup_unit_drain(struct sup_unit *u) {
    u->draining = true;
    u->drain_deadline_ms = sup_now_ms() + STOP_GRACE_MS;
    for (size_t i = 0; i < u->n_kids; i++)
        if (u->kids[i].pid > 0)
            kill(u->kids[i].pid, SIGTERM);
}

/* Starts every child of u, each initialised before the next starts, as a
 * host of one process did. Returns -1 (after stopping those started) when
 * a plugin's init refused. */
int sup_unit_start(struct sup_unit *u, const sigset_t *set) {
    for (size_t i = 0; i < u->n_kids; i++) {
        if (spawn(&u->kids[i], set, true) < 0) {
            sup_unit_drain(u);
            return -1;
        }
    }
    return 0;
}

/* Waits for every child of units[0..n-1] that still runs (its stop was
 * asked for already, or is asked now when ask is set), killing those past
 * STOP_GRACE_MS. Only these children are reaped: others go on. */
void sup_wait_children(struct sup_unit **units, size_t n, bool ask) {
    int64_t deadline = sup_now_ms() + STOP_GRACE_MS;
    size_t alive;

    for (size_t i = 0; ask && i < n; i++)
        for (size_t c = 0; c < units[i]->n_kids; c++)
            if (units[i]->kids[c].pid > 0)
                kill(units[i]->kids[c].pid, SIGTERM);
    for (;;) {
        alive = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t c = 0; c < units[i]->n_kids; c++) {
                struct sup_child *k = &units[i]->kids[c];
                int status;
                pid_t pid;
                if (k->pid <= 0)
                    continue;
                pid = waitpid(k->pid, &status, WNOHANG);
                if (pid == 0) {
                    alive++;
                    continue;
                }
                if (pid == k->pid && WIFSIGNALED(status))
                    LOG(LOG_WARN, "instance stopped by signal handler=%s instance=%d signal=SIG%s",
                        sup_unit_handler(units[i])->name, k->instance,
                        sigabbrev_np(WTERMSIG(status)));
                k->pid = 0;
            }
        if (alive == 0)
            break;
        if (sup_now_ms() > deadline) {
            for (size_t i = 0; i < n; i++)
                for (size_t c = 0; c < units[i]->n_kids; c++)
                    if (units[i]->kids[c].pid > 0) {
                        LOG(LOG_WARN, "instance did not stop in time handler=%s instance=%d",
                            sup_unit_handler(units[i])->name, units[i]->kids[c].instance);
                        kill(units[i]->kids[c].pid, SIGKILL);
                    }
            deadline = INT64_MAX;
        }
        nanosleep(&(struct timespec){0, 20000000L}, NULL);
    }
}

/* ---- the HTTP listener's answers --------------------------------------------- */

static char *answer(void *arg, bool metrics, int *status, size_t *len) {
    struct sup *s = arg;
    struct hstats_row *rows;
    char *out = NULL;
    size_t n = 0;

    pthread_mutex_lock(&s->lock);
    rows = calloc(s->n_units + 1, sizeof(*rows));
    if (!rows)
        goto out;
    for (size_t i = 0; i < s->n_units; i++) {
        const struct sup_unit *u = s->units[i];
        if (u->draining)
            continue;
        rows[n].name = sup_unit_handler(u)->name;
        rows[n].stats = u->stats;
        rows[n].instances = (int)u->n_kids;
        rows[n].running = (int)sup_unit_running(u);
        n++;
    }
    *status = 200;
    if (metrics) {
        out = hstats_render(rows, n, len);
    } else {
        json_t *o = json_object(), *hs = json_object();
        bool all = true;
        for (size_t i = 0; i < n; i++) {
            all = all && rows[i].running == rows[i].instances;
            json_object_set_new(
                hs, rows[i].name,
                json_pack("{s:i,s:i}", "instances", rows[i].instances, "running", rows[i].running));
        }
        json_object_set_new(o, "status", json_string(all ? "ok" : "degraded"));
        json_object_set_new(o, "handlers", hs);
        /* A handler whose instances are not all running (one is being
         * restarted after a crash) makes the host unhealthy. */
        *status = all ? 200 : 503;
        out = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        *len = out ? strlen(out) : 0;
    }
out:
    pthread_mutex_unlock(&s->lock);
    free(rows);
    return out;
}

/* ---- the supervisor's loop ----------------------------------------------------- */

int sup_run(struct cfg *cfg, struct plugin *plugins, const sigset_t *set, sup_load_fn load,
            void *load_arg) {
    struct sup s = {.set = set, .load = load, .load_arg = load_arg};
    struct sup_gen *g = calloc(1, sizeof(*g));
    size_t total = 0;
    int rc = -1, sig;

    pthread_mutex_init(&s.lock, NULL);
    if (!g) {
        cfg_free(cfg);
        free(plugins);
        return -1;
    }
    g->cfg = cfg;
    g->plugins = plugins;
    g->refs = 1;
    s.units = calloc(cfg->n_handlers + 1, sizeof(*s.units));
    if (!s.units)
        goto out_mem;
    for (size_t j = 0; j < cfg->n_handlers; j++) {
        struct sup_unit *u;
        if (!plugins[j].table)
            continue;
        u = sup_unit_new(g, j, NULL);
        if (!u)
            goto out_mem;
        s.units[s.n_units++] = u;
        total += u->n_kids;
    }
    if (s.n_units == 0)
        goto out;
    if (cfg->handler_host.port > 0) {
        char err[256];
        s.http = hlisten_start(cfg->handler_host.host, cfg->handler_host.port, answer, &s, err,
                               sizeof(err));
        if (!s.http) {
            fprintf(stderr, "handler: %s\n", err);
            LOG(LOG_ERROR, "%s", err);
            goto out;
        }
        listen_fd_to_close = hlisten_fd(s.http);
    }
    /* Each instance is initialised before the next starts, as a host of one
     * process did: a plugin that refuses to start stops the whole start. */
    for (size_t i = 0; i < s.n_units; i++)
        if (sup_unit_start(s.units[i], set) < 0)
            goto out_stop;
    LOG(LOG_INFO, "started handlers=%zu instances=%zu", s.n_units, total);
    if (s.http)
        LOG(LOG_INFO, "listening host=%s port=%d paths=/health,/metrics", cfg->handler_host.host,
            cfg->handler_host.port);
    for (;;) {
        int64_t now = sup_now_ms(), wake = now + 1000;
        struct timespec ts;
        int status;
        pid_t pid;

        for (size_t i = 0; i < s.n_units; i++)
            for (size_t c = 0; c < s.units[i]->n_kids; c++) {
                struct sup_child *k = &s.units[i]->kids[c];
                if (!s.units[i]->draining && k->pid == 0 && k->restart_ms < wake)
                    wake = k->restart_ms;
            }
        if (wake < now)
            wake = now;
        ts.tv_sec = (wake - now) / 1000;
        ts.tv_nsec = (long)((wake - now) % 1000) * 1000000L;
        sig = sigtimedwait(set, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            LOG(LOG_INFO, "stopping signal=%s", sig == SIGTERM ? "TERM" : "INT");
            break;
        }
        if (sig == SIGHUP)
            sup_reload(&s);
        pthread_mutex_lock(&s.lock);
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
            for (size_t i = 0; i < s.n_units; i++)
                for (size_t c = 0; c < s.units[i]->n_kids; c++) {
                    struct sup_child *k = &s.units[i]->kids[c];
                    if (k->pid != pid)
                        continue;
                    if (s.units[i]->draining) {
                        k->pid = 0;
                        if (WIFSIGNALED(status))
                            LOG(LOG_WARN,
                                "instance stopped by signal handler=%s instance=%d signal=SIG%s",
                                sup_unit_handler(s.units[i])->name, k->instance,
                                sigabbrev_np(WTERMSIG(status)));
                    } else {
                        buried(k, status);
                    }
                }
        now = sup_now_ms();
        for (size_t i = 0; i < s.n_units; i++)
            for (size_t c = 0; c < s.units[i]->n_kids; c++) {
                struct sup_child *k = &s.units[i]->kids[c];
                if (s.units[i]->draining || k->pid != 0 || k->restart_ms > now)
                    continue;
                if (spawn(k, set, false) < 0) {
                    k->restart_ms = now + BACKOFF_MAX_MS;
                    continue;
                }
                if (k->crashed)
                    hstats_add(s.units[i]->stats, HSTAT_CRASH_RESTARTS, 1);
                k->crashed = false;
                LOG(LOG_INFO, "instance restarted handler=%s instance=%d pid=%d",
                    sup_unit_handler(s.units[i])->name, k->instance, (int)k->pid);
            }
        pthread_mutex_unlock(&s.lock);
        sup_reap_drained(&s);
    }
    rc = 0;

out_stop:
    /* The listener goes first: nothing reads the units while they stop. */
    hlisten_stop(s.http);
    s.http = NULL;
    sup_wait_children(s.units, s.n_units, true);
    goto out;
out_mem:
    LOG(LOG_ERROR, "out of memory for the supervisor");
out:
    hlisten_stop(s.http);
    for (size_t i = 0; i < s.n_units; i++)
        sup_unit_free(s.units[i]);
    free(s.units);
    sup_gen_unref(g);
    pthread_mutex_destroy(&s.lock);
    return rc;
}
