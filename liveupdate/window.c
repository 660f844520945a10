#include "window.h"

#include <stdlib.h>
#include <string.h>

static size_t pow2_at_least(size_t n) {
    size_t p = 1;

    while (p < n)
        p <<= 1;
    return p;
}

/* FNV-1a: ids are short and the table is private, so a simple hash does. */
static size_t hash_id(const char *id) {
    uint64_t h = 1469598103934665603ull;

    for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    return (size_t)h;
}

int live_window_init(struct live_window *w, size_t cap, size_t max_bytes) {
    memset(w, 0, sizeof(*w));
    w->cap = pow2_at_least(cap < 16 ? 16 : cap);
    w->n_buckets = w->cap;
    w->max_bytes = max_bytes;
    w->ring = calloc(w->cap, sizeof(*w->ring));
    w->buckets = calloc(w->n_buckets, sizeof(*w->buckets));
    if (!w->ring || !w->buckets) {
        live_window_fini(w);
        return -1;
    }
    return 0;
}

static void unhash(struct live_window *w, struct live_msg *m) {
    struct live_msg **pp = &w->buckets[hash_id(m->id) & (w->n_buckets - 1)];

    while (*pp && *pp != m)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = m->hnext;
    m->hnext = NULL;
}

static void evict_oldest(struct live_window *w) {
    struct live_msg *m = w->ring[w->start & (w->cap - 1)];

    w->ring[w->start & (w->cap - 1)] = NULL;
    w->start++;
    if (!m)
        return;
    unhash(w, m);
    w->bytes -= m->len;
    live_msg_unref(m);
}

void live_window_drop_before(struct live_window *w, uint64_t lseq) {
    while (w->start < w->end && w->start < lseq)
        evict_oldest(w);
}

void live_window_fini(struct live_window *w) {
    if (w->ring)
        live_window_drop_before(w, w->end);
    free(w->ring);
    free(w->buckets);
    w->ring = NULL;
    w->buckets = NULL;
}

void live_window_push(struct live_window *w, struct live_msg *m) {
    size_t b;

    if (live_window_count(w) == w->cap)
        evict_oldest(w);
    while (w->start < w->end && w->bytes + m->len > w->max_bytes)
        evict_oldest(w);
    m->lseq = w->end;
    w->ring[w->end & (w->cap - 1)] = m;
    w->end++;
    w->bytes += m->len;
    b = hash_id(m->id) & (w->n_buckets - 1);
    m->hnext = w->buckets[b];
    w->buckets[b] = m;
}

struct live_msg *live_window_at(const struct live_window *w, uint64_t lseq) {
    if (lseq < w->start || lseq >= w->end)
        return NULL;
    return w->ring[lseq & (w->cap - 1)];
}

struct live_msg *live_window_find(const struct live_window *w, const char *id) {
    struct live_msg *m;

    if (!id || !*id)
        return NULL;
    /* The newest copy wins: a redelivered id is found where it was last seen. */
    for (m = w->buckets[hash_id(id) & (w->n_buckets - 1)]; m; m = m->hnext)
        if (strcmp(m->id, id) == 0)
            return m;
    return NULL;
}
