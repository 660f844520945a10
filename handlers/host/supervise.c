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
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "consumer.h"
#include "ctx.h"
#include "log.h"
#include "plugin.h"

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

struct child {
    const struct cfg *cfg;
    const struct cfg_handler *h;
    const struct plugin *p;
    int instance;
    struct sup_table *table; /* the handler's, shared by its children */
    struct sup_slot *slot;
    pid_t pid;          /* 0 while not running */
    int64_t started_ms; /* when forked */
    int64_t restart_ms; /* when to fork again, while not running */
    long backoff_ms;
};

/* The child's life: init the plugin, say so on ready_fd (when >= 0), consume
 * until SIGTERM, stop cleanly. Never returns. */
static void child_main(struct child *k, pid_t parent, int ready_fd, const sigset_t *set) {
    char err[1024];
    struct fpesa_ctx *c;
    int sig = 0;

    /* Dies with the host when the host is killed (a host that is stopped
     * stops its children first, gracefully). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    c = consumer_new(k->cfg, k->h, k->p, k->instance, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "handler: %s\n", err);
        LOG(LOG_ERROR, "refused handler=%s reason=\"%s\"", k->h->name, err);
        _exit(EXIT_INIT);
    }
    c->crashes = k->table;
    c->slot = k->slot;
    if (ready_fd >= 0) {
        ssize_t w = write(ready_fd, "r", 1);
        (void)w;
        close(ready_fd);
    }
    if (consumer_start(c) == 0) {
        while (sigwait(set, &sig) == 0 && sig == SIGCHLD)
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
        LOG(LOG_ERROR, "cannot fork handler=%s instance=%d: %s", k->h->name, k->instance,
            strerror(saved));
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
    char ids[512], what[64];
    int64_t ran = now_ms() - k->started_ms;
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    size_t n = sup_blame(k->table, k->slot, sig, ids, sizeof(ids));

    if (sig)
        snprintf(what, sizeof(what), "signal=SIG%s", sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
    else
        snprintf(what, sizeof(what), "exit=%d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    k->backoff_ms = ran >= STABLE_MS || k->backoff_ms == 0
                        ? BACKOFF_MIN_MS
                        : (k->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : k->backoff_ms * 2);
    if (!sig && WIFEXITED(status) && WEXITSTATUS(status) == EXIT_INIT)
        LOG(LOG_ERROR, "instance init failed handler=%s instance=%d restart_in_ms=%ld", k->h->name,
            k->instance, k->backoff_ms);
    else
        LOG(LOG_ERROR,
            "instance crashed handler=%s instance=%d pid=%d %s in_hand=%zu ids=%s "
            "restart_in_ms=%ld",
            k->h->name, k->instance, (int)k->pid, what, n, n ? ids : "-", k->backoff_ms);
    k->pid = 0;
    k->restart_ms = now_ms() + k->backoff_ms;
}

static void stop_children(struct child *ks, size_t n) {
    int64_t deadline = now_ms() + STOP_GRACE_MS;
    size_t alive = 0;

    for (size_t i = 0; i < n; i++)
        if (ks[i].pid > 0) {
            kill(ks[i].pid, SIGTERM);
            alive++;
        }
    while (alive > 0) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0)
            break;
        if (pid == 0) {
            if (now_ms() > deadline) {
                for (size_t i = 0; i < n; i++)
                    if (ks[i].pid > 0) {
                        LOG(LOG_WARN, "instance did not stop in time handler=%s instance=%d",
                            ks[i].h->name, ks[i].instance);
                        kill(ks[i].pid, SIGKILL);
                    }
                deadline = INT64_MAX;
            }
            nanosleep(&(struct timespec){0, 20000000L}, NULL);
            continue;
        }
        for (size_t i = 0; i < n; i++)
            if (ks[i].pid == pid) {
                ks[i].pid = 0;
                alive--;
                if (WIFSIGNALED(status))
                    LOG(LOG_WARN, "instance stopped by signal handler=%s instance=%d signal=SIG%s",
                        ks[i].h->name, ks[i].instance, sigabbrev_np(WTERMSIG(status)));
            }
    }
}

int sup_run(const struct cfg *cfg, struct plugin *plugins, const sigset_t *set) {
    struct sup_table **tables = calloc(cfg->n_handlers + 1, sizeof(*tables));
    struct child *ks = NULL;
    size_t n = 0, total = 0;
    int rc = -1, sig;

    if (!tables)
        return -1;
    for (size_t j = 0; j < cfg->n_handlers; j++)
        if (plugins[j].table)
            total += (size_t)(cfg->handlers[j].instances > 0 ? cfg->handlers[j].instances : 1);
    ks = calloc(total + 1, sizeof(*ks));
    if (!ks)
        goto out;
    for (size_t j = 0; j < cfg->n_handlers; j++) {
        const struct cfg_handler *h = &cfg->handlers[j];
        int inst = h->instances > 0 ? h->instances : 1;

        if (!plugins[j].table)
            continue;
        tables[j] = sup_table_new((unsigned)h->crash_limit);
        if (!tables[j])
            goto out_mem;
        for (int i = 0; i < inst; i++) {
            struct child *k = &ks[n];
            k->cfg = cfg;
            k->h = h;
            k->p = &plugins[j];
            k->instance = i;
            k->table = tables[j];
            k->slot = sup_slot_new((size_t)(h->batch > 0 ? h->batch : 100));
            if (!k->slot)
                goto out_mem;
            n++;
        }
    }
    if (n == 0)
        goto out;
    /* Each instance is initialised before the next starts, as a host of one
     * process did: a plugin that refuses to start stops the whole start. */
    for (size_t i = 0; i < n; i++)
        if (spawn(&ks[i], set, true) < 0)
            goto out_stop;
    LOG(LOG_INFO, "started handlers=%zu instances=%zu", cfg->n_handlers, n);
    for (;;) {
        int64_t now = now_ms(), wake = now + 1000;
        struct timespec ts;
        int status;
        pid_t pid;

        for (size_t i = 0; i < n; i++)
            if (ks[i].pid == 0 && ks[i].restart_ms < wake)
                wake = ks[i].restart_ms;
        if (wake < now)
            wake = now;
        ts.tv_sec = (wake - now) / 1000;
        ts.tv_nsec = (long)((wake - now) % 1000) * 1000000L;
        sig = sigtimedwait(set, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            LOG(LOG_INFO, "stopping signal=%s", sig == SIGTERM ? "TERM" : "INT");
            break;
        }
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
            for (size_t i = 0; i < n; i++)
                if (ks[i].pid == pid)
                    buried(&ks[i], status);
        now = now_ms();
        for (size_t i = 0; i < n; i++)
            if (ks[i].pid == 0 && ks[i].restart_ms <= now) {
                if (spawn(&ks[i], set, false) < 0)
                    ks[i].restart_ms = now + BACKOFF_MAX_MS;
                else
                    LOG(LOG_INFO, "instance restarted handler=%s instance=%d pid=%d", ks[i].h->name,
                        ks[i].instance, (int)ks[i].pid);
            }
    }
    rc = 0;

out_stop:
    stop_children(ks, n);
    goto out;
out_mem:
    LOG(LOG_ERROR, "out of memory for the supervisor");
out:
    for (size_t i = 0; i < n; i++)
        sup_slot_free(ks[i].slot);
    if (ks)
        for (size_t j = 0; j < cfg->n_handlers; j++)
            sup_table_free(tables[j]);
    free(ks);
    free(tables);
    return rc;
}
