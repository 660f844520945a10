/* The rpc table of the bus thread: pending rpc calls by correlation number
 * in a hash table, and by deadline in a min-heap, so that an answer finds
 * its call and the next expiry is at hand in constant time.
 */
#include "bus_int.h"

#include <stdlib.h>

/* ---- rpc table: correlation hash + deadline heap ------------------------- */

static int table_grow(struct mbus *bus) {
    size_t n = bus->nbuckets ? bus->nbuckets * 2 : 256;
    struct mbus_job **nb = calloc(n, sizeof(*nb));
    if (!nb)
        return -1;
    for (size_t i = 0; i < bus->nbuckets; i++) {
        struct mbus_job *j = bus->buckets[i];
        while (j) {
            struct mbus_job *nx = j->hnext;
            size_t b = (size_t)(j->corr & (n - 1));
            j->hnext = nb[b];
            nb[b] = j;
            j = nx;
        }
    }
    free(bus->buckets);
    bus->buckets = nb;
    bus->nbuckets = n;
    return 0;
}

static void heap_swap(struct mbus *bus, size_t a, size_t b) {
    struct mbus_job *t = bus->heap[a];
    bus->heap[a] = bus->heap[b];
    bus->heap[b] = t;
    bus->heap[a]->heap_idx = a;
    bus->heap[b]->heap_idx = b;
}

static void heap_up(struct mbus *bus, size_t i) {
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (bus->heap[p]->deadline <= bus->heap[i]->deadline)
            break;
        heap_swap(bus, p, i);
        i = p;
    }
}

static void heap_down(struct mbus *bus, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < bus->heap_len && bus->heap[l]->deadline < bus->heap[m]->deadline)
            m = l;
        if (r < bus->heap_len && bus->heap[r]->deadline < bus->heap[m]->deadline)
            m = r;
        if (m == i)
            return;
        heap_swap(bus, i, m);
        i = m;
    }
}

/* Adds j to the hash table and the heap. 0, or -1 when out of memory. */
int mbus_rpc_add(struct mbus *bus, struct mbus_job *j) {
    if (bus->nrpc >= bus->nbuckets && table_grow(bus) < 0)
        return -1;
    if (bus->heap_len == bus->heap_cap) {
        size_t n = bus->heap_cap ? bus->heap_cap * 2 : 256;
        struct mbus_job **nh = realloc(bus->heap, n * sizeof(*nh));
        if (!nh)
            return -1;
        bus->heap = nh;
        bus->heap_cap = n;
    }
    size_t b = (size_t)(j->corr & (bus->nbuckets - 1));
    j->hnext = bus->buckets[b];
    bus->buckets[b] = j;
    bus->nrpc++;
    j->heap_idx = bus->heap_len;
    bus->heap[bus->heap_len++] = j;
    heap_up(bus, j->heap_idx);
    return 0;
}

void mbus_rpc_remove(struct mbus *bus, struct mbus_job *j) {
    size_t b = (size_t)(j->corr & (bus->nbuckets - 1));
    struct mbus_job **pp = &bus->buckets[b];
    while (*pp && *pp != j)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = j->hnext;
    bus->nrpc--;

    size_t i = j->heap_idx;
    bus->heap_len--;
    if (i != bus->heap_len) {
        bus->heap[i] = bus->heap[bus->heap_len];
        bus->heap[i]->heap_idx = i;
        heap_down(bus, i);
        heap_up(bus, i);
    }
}

struct mbus_job *mbus_rpc_find(struct mbus *bus, uint64_t corr) {
    if (!bus->nbuckets)
        return NULL;
    for (struct mbus_job *j = bus->buckets[corr & (bus->nbuckets - 1)]; j; j = j->hnext)
        if (j->corr == corr)
            return j;
    return NULL;
}
