/* The crash records shared by a handler's instances: which messages were in
 * hand when an instance died, kept in memory shared with the children so that
 * a crash is charged even when its process is gone (see supervise.h).
 */
#include "supervise.h"

#include <errno.h>
#include <fpesa/handler.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

/* Ids are kept up to this size; a longer one (an Idempotency-Key may be any
 * string) is kept as its head and a hash of the whole. */
#define ID_MAX 128
/* Messages with a crash on record, per handler. The oldest record goes when
 * the table is full: a message crashing that many others is rare. */
#define TABLE_N 512

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
