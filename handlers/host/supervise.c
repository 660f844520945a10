/* The supervisor and its shared crash records (see supervise.h). */
#include "supervise.h"

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

/* Ids are kept up to this size; a longer one (an Idempotency-Key may be any
 * string) is kept as its head and a hash of the whole. */
#define ID_MAX 128
/* Messages with a crash on record, per handler. The oldest record goes when
 * the table is full: a message crashing that many others is rare. */
#define TABLE_N 512
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
/* A child that ran this long before it died starts again at once. */
#define STABLE_MS 10000
/* How long a stopping child may take to settle its batch. */
#define STOP_GRACE_MS 30000
/* Exit status of a child whose plugin's init() failed. */
#define EXIT_INIT 3

struct sup_entry {
    char id[ID_MAX];
    unsigned crashes; /* in hand when its instance died */
    unsigned alone;   /* of which, the only message in hand */
    int sig;          /* the last crash's signal, 0 for an exit */
    uint64_t used;    /* 0: free; else the table clock when last charged */
};

struct sup_table {
    pthread_mutex_t lock; /* process-shared and robust: a child may die holding it */
    unsigned limit;
    uint64_t clock;
    struct sup_entry e[TABLE_N];
};

struct sup_slot {
    size_t cap;
    size_t n;
    char ids[][ID_MAX];
};

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *shared(size_t size) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* ---- crash records --------------------------------------------------------- */

static void key_of(const char *id, char out[ID_MAX]) {
    size_t n = strlen(id);
    uint64_t h = 1469598103934665603ull;

    if (n < ID_MAX) {
        memcpy(out, id, n + 1);
        return;
    }
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)id[i]) * 1099511628211ull;
    snprintf(out, ID_MAX, "%.*s#%016" PRIx64, ID_MAX - 18, id, h);
}

struct sup_table *sup_table_new(unsigned limit) {
    struct sup_table *t = shared(sizeof(*t));
    pthread_mutexattr_t a;

    if (!t)
        return NULL;
    memset(t, 0, sizeof(*t));
    t->limit = limit ? limit : 3;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&t->lock, &a);
    pthread_mutexattr_destroy(&a);
    return t;
}

void sup_table_free(struct sup_table *t) {
    if (t)
        munmap(t, sizeof(*t));
}

struct sup_slot *sup_slot_new(size_t cap) {
    struct sup_slot *s = shared(sizeof(*s) + cap * ID_MAX);

    if (!s)
        return NULL;
    s->cap = cap;
    s->n = 0;
    return s;
}

void sup_slot_free(struct sup_slot *s) {
    if (s)
        munmap(s, sizeof(*s) + s->cap * ID_MAX);
}

void sup_slot_set(struct sup_slot *s, const struct fpesa_message *const *msgs, size_t n) {
    size_t k = 0;

    if (!s)
        return;
    for (size_t i = 0; i < n && k < s->cap; i++)
        if (msgs[i]->message_id && *msgs[i]->message_id)
            key_of(msgs[i]->message_id, s->ids[k++]);
    /* The count goes last: a reader after a crash sees whole ids only. */
    __atomic_store_n(&s->n, k, __ATOMIC_RELEASE);
}

void sup_slot_clear(struct sup_slot *s) {
    if (s)
        __atomic_store_n(&s->n, 0, __ATOMIC_RELEASE);
}

static void lock(struct sup_table *t) {
    if (pthread_mutex_lock(&t->lock) == EOWNERDEAD)
        pthread_mutex_consistent(&t->lock);
}

static struct sup_entry *find(struct sup_table *t, const char *key) {
    for (size_t i = 0; i < TABLE_N; i++)
        if (t->e[i].used && strcmp(t->e[i].id, key) == 0)
            return &t->e[i];
    return NULL;
}

static struct sup_entry *find_or_add(struct sup_table *t, const char *key) {
    struct sup_entry *e = find(t, key), *old = &t->e[0];

    if (e)
        return e;
    for (size_t i = 0; i < TABLE_N; i++) {
        if (!t->e[i].used) {
            old = &t->e[i];
            break;
        }
        if (t->e[i].used < old->used)
            old = &t->e[i];
    }
    memset(old, 0, sizeof(*old));
    snprintf(old->id, sizeof(old->id), "%s", key);
    return old;
}

enum sup_verdict sup_verdict(struct sup_table *t, const char *id, unsigned *crashes, char *reason,
                             size_t len) {
    char key[ID_MAX];
    struct sup_entry *e;
    enum sup_verdict v = SUP_CLEAN;

    if (!t || !id || !*id)
        return SUP_CLEAN;
    /* The common case, no crash ever, is one read without the lock. */
    if (__atomic_load_n(&t->clock, __ATOMIC_ACQUIRE) == 0)
        return SUP_CLEAN;
    key_of(id, key);
    lock(t);
    e = find(t, key);
    if (e && e->crashes > 0) {
        v = e->alone > 0 && e->crashes >= t->limit ? SUP_POISON : SUP_SUSPECT;
        if (crashes)
            *crashes = e->crashes;
        if (v == SUP_POISON && reason)
            snprintf(reason, len, "the handler crashed %u times handling it (last: %s%s)",
                     e->crashes, e->sig ? "SIG" : "exit", e->sig ? sigabbrev_np(e->sig) : "");
    }
    pthread_mutex_unlock(&t->lock);
    return v;
}

void sup_forget(struct sup_table *t, const char *id) {
    char key[ID_MAX];
    struct sup_entry *e;

    if (!t || !id || !*id || __atomic_load_n(&t->clock, __ATOMIC_ACQUIRE) == 0)
        return;
    key_of(id, key);
    lock(t);
    e = find(t, key);
    if (e)
        memset(e, 0, sizeof(*e));
    pthread_mutex_unlock(&t->lock);
}

size_t sup_blame(struct sup_table *t, struct sup_slot *s, int sig, char *ids, size_t len) {
    size_t n = __atomic_load_n(&s->n, __ATOMIC_ACQUIRE), w = 0;

    if (len)
        ids[0] = '\0';
    if (n > s->cap)
        n = s->cap;
    lock(t);
    for (size_t i = 0; i < n; i++) {
        struct sup_entry *e = find_or_add(t, s->ids[i]);
        e->crashes++;
        e->alone += n == 1;
        e->sig = sig;
        e->used = ++t->clock;
        if (w + 1 < len) {
            int k = snprintf(ids + w, len - w, "%s%s", i ? "," : "", s->ids[i]);
            w = k < 0 || (size_t)k >= len - w ? len - 1 : w + (size_t)k;
        }
    }
    pthread_mutex_unlock(&t->lock);
    s->n = 0;
    return n;
}

/* ---- children -------------------------------------------------------------- */

/* One loaded configuration: the file and the plugins of its handlers
 * (plugins[j] for handlers[j]; a handler not run here has none). Units keep
 * a reference, so a configuration lives as long as a child forked from it
 * may need to be forked again. */
struct gen {
    struct cfg *cfg;
    struct plugin *plugins;
    int refs;
};

struct unit;

struct child {
    struct unit *u;
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
struct unit {
    struct gen *gen;
    size_t j; /* index of its handler in gen->cfg->handlers */
    struct sup_table *table;
    struct hstats *stats;
    bool owns_stats; /* false once a replacing unit took the counters over */
    struct child *kids;
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
    struct unit **units;
    size_t n_units;
    struct hlisten *http;
};

static const struct cfg_handler *unit_handler(const struct unit *u) {
    return &u->gen->cfg->handlers[u->j];
}

static void gen_unref(struct gen *g) {
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
static void child_main(struct child *k, pid_t parent, int ready_fd, const sigset_t *set) {
    const struct unit *u = k->u;
    const struct cfg_handler *h = unit_handler(u);
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
static int spawn(struct child *k, const sigset_t *set, bool wait_ready) {
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
        LOG(LOG_ERROR, "cannot fork handler=%s instance=%d: %s", unit_handler(k->u)->name,
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
    k->started_ms = now_ms();
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
static void buried(struct child *k, int status) {
    const char *name = unit_handler(k->u)->name;
    char ids[512], what[64];
    int64_t ran = now_ms() - k->started_ms;
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
    k->restart_ms = now_ms() + k->backoff_ms;
}

/* A new unit for handler j of g (a reference to g is taken), its children
 * not started. stats: the counters to continue (those of the unit it
 * replaces), or NULL for new ones. */
static struct unit *unit_new(struct gen *g, size_t j, struct hstats *stats) {
    const struct cfg_handler *h = &g->cfg->handlers[j];
    struct unit *u = calloc(1, sizeof(*u));
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
    gen_unref(u->gen);
    free(u);
    return NULL;
}

/* Frees u, whose children have all exited. */
static void unit_free(struct unit *u) {
    if (!u)
        return;
    for (size_t i = 0; i < u->n_kids; i++)
        sup_slot_free(u->kids[i].slot);
    free(u->kids);
    if (u->owns_stats)
        hstats_free(u->stats);
    sup_table_free(u->table);
    gen_unref(u->gen);
    free(u);
}

static size_t unit_running(const struct unit *u) {
    size_t n = 0;
    for (size_t i = 0; i < u->n_kids; i++)
        n += u->kids[i].pid > 0;
    return n;
}

/* Asks every child of u to stop, settling its batch in hand first; the
 * broker gives back what they had not settled. */
static void unit_drain(struct unit *u) {
    u->draining = true;
    u->drain_deadline_ms = now_ms() + STOP_GRACE_MS;
    for (size_t i = 0; i < u->n_kids; i++)
        if (u->kids[i].pid > 0)
            kill(u->kids[i].pid, SIGTERM);
}

/* Starts every child of u, each initialised before the next starts, as a
 * host of one process did. Returns -1 (after stopping those started) when
 * a plugin's init refused. */
static int unit_start(struct unit *u, const sigset_t *set) {
    for (size_t i = 0; i < u->n_kids; i++) {
        if (spawn(&u->kids[i], set, true) < 0) {
            unit_drain(u);
            return -1;
        }
    }
    return 0;
}

/* Waits for every child of units[0..n-1] that still runs (its stop was
 * asked for already, or is asked now when ask is set), killing those past
 * STOP_GRACE_MS. Only these children are reaped: others go on. */
static void wait_children(struct unit **units, size_t n, bool ask) {
    int64_t deadline = now_ms() + STOP_GRACE_MS;
    size_t alive;

    for (size_t i = 0; ask && i < n; i++)
        for (size_t c = 0; c < units[i]->n_kids; c++)
            if (units[i]->kids[c].pid > 0)
                kill(units[i]->kids[c].pid, SIGTERM);
    for (;;) {
        alive = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t c = 0; c < units[i]->n_kids; c++) {
                struct child *k = &units[i]->kids[c];
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
                        unit_handler(units[i])->name, k->instance, sigabbrev_np(WTERMSIG(status)));
                k->pid = 0;
            }
        if (alive == 0)
            break;
        if (now_ms() > deadline) {
            for (size_t i = 0; i < n; i++)
                for (size_t c = 0; c < units[i]->n_kids; c++)
                    if (units[i]->kids[c].pid > 0) {
                        LOG(LOG_WARN, "instance did not stop in time handler=%s instance=%d",
                            unit_handler(units[i])->name, units[i]->kids[c].instance);
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
        const struct unit *u = s->units[i];
        if (u->draining)
            continue;
        rows[n].name = unit_handler(u)->name;
        rows[n].stats = u->stats;
        rows[n].instances = (int)u->n_kids;
        rows[n].running = (int)unit_running(u);
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

/* ---- reload ------------------------------------------------------------------ */

static bool same_str(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Whether the endpoint whose exchange is queue is an rpc one (a consumer
 * answers rpc requests at once instead of filling batches). */
static int queue_mode(const struct cfg *cfg, const char *queue) {
    for (size_t i = 0; i < cfg->n_endpoints; i++)
        if (strcmp(cfg->endpoints[i].exchange, queue) == 0)
            return (int)cfg->endpoints[i].mode;
    return -1;
}

/* True when handler a of ca runs exactly as handler b of cb would: its
 * children may go on as they are. */
static bool same_handler(const struct cfg *ca, const struct cfg_handler *a, const struct cfg *cb,
                         const struct cfg_handler *b) {
    return same_str(a->plugin_path, b->plugin_path) && same_str(a->queue, b->queue) &&
           a->prefetch == b->prefetch && a->batch == b->batch &&
           a->batch_wait_ms == b->batch_wait_ms && a->instances == b->instances &&
           a->crash_limit == b->crash_limit &&
           ((!a->config && !b->config) ||
            (a->config && b->config && json_equal(a->config, b->config))) &&
           same_str(ca->bus.url, cb->bus.url) && ca->bus.heartbeat == cb->bus.heartbeat &&
           same_str(ca->database.url, cb->database.url) && ca->compat == cb->compat &&
           queue_mode(ca, a->queue) == queue_mode(cb, b->queue);
}

static struct unit *active_unit(struct sup *s, const char *name) {
    for (size_t i = 0; i < s->n_units; i++)
        if (!s->units[i]->draining && strcmp(unit_handler(s->units[i])->name, name) == 0)
            return s->units[i];
    return NULL;
}

/* SIGHUP: loads the configuration again. When it is refused, every problem
 * is logged (file:line:col) and everything runs on as it was. Otherwise new
 * handlers start, changed ones start anew beside the old instances, which
 * then drain (so a queue never goes without a consumer), removed ones drain,
 * and unchanged ones are not touched. */
static void reload(struct sup *s) {
    struct gen *g = calloc(1, sizeof(*g));
    struct unit **fresh = NULL, **old = NULL, **units = NULL;
    size_t n_fresh = 0, n_old = 0, n_same = 0, n_units = 0;
    char *errs = NULL;
    size_t errs_len = 0;
    FILE *ef = open_memstream(&errs, &errs_len);

    if (!g || !ef)
        goto out_oom;
    LOG(LOG_INFO, "reloading signal=HUP");
    if (s->load(s->load_arg, &g->cfg, &g->plugins, ef) < 0) {
        fclose(ef);
        ef = NULL;
        log_reload_refused(errs);
        free(g);
        goto out;
    }
    fclose(ef);
    ef = NULL;
    g->refs = 1;
    if (s->n_units > 0) {
        const struct cfg *was = s->units[0]->gen->cfg;
        if (was->handler_host.port != g->cfg->handler_host.port ||
            strcmp(was->handler_host.host, g->cfg->handler_host.host) != 0)
            LOG(LOG_WARN, "handler_host.listen takes effect at the next start only");
    }
    fresh = calloc(g->cfg->n_handlers + 1, sizeof(*fresh));
    old = calloc(s->n_units + 1, sizeof(*old));
    units = calloc(s->n_units + g->cfg->n_handlers + 1, sizeof(*units));
    if (!fresh || !old || !units)
        goto out_oom;

    /* Start what is new or changed first; a plugin whose init refuses
     * refuses the whole reload, and nothing running is touched. */
    for (size_t j = 0; j < g->cfg->n_handlers; j++) {
        const struct cfg_handler *h = &g->cfg->handlers[j];
        struct unit *was, *u;
        if (!g->plugins[j].table)
            continue;
        was = active_unit(s, h->name);
        if (was && same_handler(was->gen->cfg, unit_handler(was), g->cfg, h)) {
            n_same++;
            continue;
        }
        u = unit_new(g, j, was ? was->stats : NULL);
        if (!u)
            goto out_undo;
        fresh[n_fresh++] = u;
        if (unit_start(u, s->set) < 0) {
            LOG(LOG_ERROR,
                "reload refused: handler=%s could not start; the running "
                "configuration stays",
                h->name);
            goto out_undo;
        }
        LOG(LOG_INFO, "%s handler=%s instances=%zu", was ? "restarted" : "started", h->name,
            u->n_kids);
    }
    /* Then drain what was removed or replaced. */
    for (size_t i = 0; i < s->n_units; i++) {
        struct unit *u = s->units[i];
        bool keep = false;
        if (u->draining) {
            units[n_units++] = u;
            continue;
        }
        for (size_t j = 0; j < g->cfg->n_handlers && !keep; j++)
            keep = g->plugins[j].table &&
                   strcmp(g->cfg->handlers[j].name, unit_handler(u)->name) == 0 &&
                   same_handler(u->gen->cfg, unit_handler(u), g->cfg, &g->cfg->handlers[j]);
        units[n_units++] = u;
        if (keep)
            continue;
        for (size_t f = 0; f < n_fresh; f++)
            if (fresh[f]->stats == u->stats)
                u->owns_stats = false;
        LOG(LOG_INFO, "draining handler=%s instances=%zu", unit_handler(u)->name, unit_running(u));
        unit_drain(u);
        old[n_old++] = u;
    }
    for (size_t f = 0; f < n_fresh; f++)
        units[n_units++] = fresh[f];
    pthread_mutex_lock(&s->lock);
    free(s->units);
    s->units = units;
    s->n_units = n_units;
    units = NULL;
    pthread_mutex_unlock(&s->lock);
    LOG(LOG_INFO, "reloaded file=%s started=%zu draining=%zu unchanged=%zu", g->cfg->file, n_fresh,
        n_old, n_same);
    gen_unref(g);
    goto out;

out_oom:
    LOG(LOG_ERROR, "reload refused: out of memory");
out_undo:
    if (fresh) {
        for (size_t f = 0; f < n_fresh; f++) {
            const struct unit *was = active_unit(s, unit_handler(fresh[f])->name);
            if (was && was->stats == fresh[f]->stats)
                fresh[f]->owns_stats = false;
        }
        wait_children(fresh, n_fresh, true);
        for (size_t f = 0; f < n_fresh; f++)
            unit_free(fresh[f]);
    }
    if (g && g->cfg) {
        g->refs = 1;
        gen_unref(g);
    } else {
        free(g);
    }
out:
    if (ef)
        fclose(ef);
    free(errs);
    free(fresh);
    free(old);
    free(units);
}

/* Frees the draining units whose children have all exited, and kills the
 * children of those past their grace. */
static void reap_drained(struct sup *s) {
    size_t w = 0;
    int64_t now = now_ms();
    struct unit **gone = calloc(s->n_units + 1, sizeof(*gone));
    size_t n_gone = 0;

    if (!gone)
        return;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n_units; i++) {
        struct unit *u = s->units[i];
        if (u->draining && unit_running(u) == 0) {
            gone[n_gone++] = u;
            continue;
        }
        if (u->draining && now > u->drain_deadline_ms) {
            for (size_t c = 0; c < u->n_kids; c++)
                if (u->kids[c].pid > 0) {
                    LOG(LOG_WARN, "instance did not stop in time handler=%s instance=%d",
                        unit_handler(u)->name, u->kids[c].instance);
                    kill(u->kids[c].pid, SIGKILL);
                }
            u->drain_deadline_ms = INT64_MAX;
        }
        s->units[w++] = u;
    }
    s->n_units = w;
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < n_gone; i++) {
        LOG(LOG_INFO, "drained handler=%s", unit_handler(gone[i])->name);
        unit_free(gone[i]);
    }
    free(gone);
}

/* ---- the supervisor's loop ----------------------------------------------------- */

int sup_run(struct cfg *cfg, struct plugin *plugins, const sigset_t *set, sup_load_fn load,
            void *load_arg) {
    struct sup s = {.set = set, .load = load, .load_arg = load_arg};
    struct gen *g = calloc(1, sizeof(*g));
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
        struct unit *u;
        if (!plugins[j].table)
            continue;
        u = unit_new(g, j, NULL);
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
        if (unit_start(s.units[i], set) < 0)
            goto out_stop;
    LOG(LOG_INFO, "started handlers=%zu instances=%zu", s.n_units, total);
    if (s.http)
        LOG(LOG_INFO, "listening host=%s port=%d paths=/health,/metrics", cfg->handler_host.host,
            cfg->handler_host.port);
    for (;;) {
        int64_t now = now_ms(), wake = now + 1000;
        struct timespec ts;
        int status;
        pid_t pid;

        for (size_t i = 0; i < s.n_units; i++)
            for (size_t c = 0; c < s.units[i]->n_kids; c++) {
                struct child *k = &s.units[i]->kids[c];
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
            reload(&s);
        pthread_mutex_lock(&s.lock);
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
            for (size_t i = 0; i < s.n_units; i++)
                for (size_t c = 0; c < s.units[i]->n_kids; c++) {
                    struct child *k = &s.units[i]->kids[c];
                    if (k->pid != pid)
                        continue;
                    if (s.units[i]->draining) {
                        k->pid = 0;
                        if (WIFSIGNALED(status))
                            LOG(LOG_WARN,
                                "instance stopped by signal handler=%s instance=%d signal=SIG%s",
                                unit_handler(s.units[i])->name, k->instance,
                                sigabbrev_np(WTERMSIG(status)));
                    } else {
                        buried(k, status);
                    }
                }
        now = now_ms();
        for (size_t i = 0; i < s.n_units; i++)
            for (size_t c = 0; c < s.units[i]->n_kids; c++) {
                struct child *k = &s.units[i]->kids[c];
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
                    unit_handler(s.units[i])->name, k->instance, (int)k->pid);
            }
        pthread_mutex_unlock(&s.lock);
        reap_drained(&s);
    }
    rc = 0;

out_stop:
    /* The listener goes first: nothing reads the units while they stop. */
    hlisten_stop(s.http);
    s.http = NULL;
    wait_children(s.units, s.n_units, true);
    goto out;
out_mem:
    LOG(LOG_ERROR, "out of memory for the supervisor");
out:
    hlisten_stop(s.http);
    for (size_t i = 0; i < s.n_units; i++)
        unit_free(s.units[i]);
    free(s.units);
    gen_unref(g);
    pthread_mutex_destroy(&s.lock);
    return rc;
}
