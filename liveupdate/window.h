/* The window of a channel: the most recent live messages in the order this
 * instance received them, each numbered with a channel sequence number
 * (lseq), and found by id in constant time.
 *
 * It is what every client of the channel reads from: a client is a cursor
 * (the lseq of the next message it gets), so a live message costs one
 * reference however many clients it goes to, and a client that reconnects
 * with ?since=<an id still in the window> continues exactly where it
 * stopped. A resume from further back is merged with it (ws.c): stored
 * messages until the store reaches a message the window holds, then the
 * window.
 *
 * The window holds at most `cap` messages and `max_bytes` bytes; the oldest
 * go first. Only the service thread touches it.
 */
#ifndef LIVE_WINDOW_H
#define LIVE_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct live_window {
    struct live_msg **ring; /* cap slots, indexed by lseq % cap */
    size_t cap;             /* a power of two */
    uint64_t start, end;    /* lseqs held: [start, end) */
    size_t bytes, max_bytes;
    struct live_msg **buckets; /* id hash, chained through live_msg.hnext */
    size_t n_buckets;          /* a power of two */
};

/* Prepares an empty window for at least cap messages (rounded up to a power
 * of two) and max_bytes bytes of frames. Returns 0, or -1 when out of memory. */
int live_window_init(struct live_window *w, size_t cap, size_t max_bytes);

/* Drops every reference and frees the tables. */
void live_window_fini(struct live_window *w);

/* Drops the messages numbered below lseq (all of them: w->end); lseqs keep
 * counting from where they were, so a cursor taken before is recognisably
 * out of the window. */
void live_window_drop_before(struct live_window *w, uint64_t lseq);

/* Appends m (one reference taken), numbering it m->lseq = end, and evicts
 * the oldest messages over the limits. */
void live_window_push(struct live_window *w, struct live_msg *m);

/* The message numbered lseq (borrowed), or NULL when it is not held. */
struct live_msg *live_window_at(const struct live_window *w, uint64_t lseq);

/* The message with this id (borrowed), or NULL. */
struct live_msg *live_window_find(const struct live_window *w, const char *id);

/* Messages held. */
static inline size_t live_window_count(const struct live_window *w) {
    return (size_t)(w->end - w->start);
}

#endif
