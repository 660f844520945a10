/* Token buckets of endpoints[].rate_limit.
 *
 * Each limited endpoint has buckets of `burst` tokens, refilled at
 * `requests` per `per`, one per client address, per principal or for the
 * whole route (`by`). A request takes a token or is refused with 429.
 *
 * The buckets live in this process: with N restmapper instances behind
 * nginx a client gets up to N times the limit in all (nginx spreads its
 * requests). A limit shared by every instance needs shared state (the broker
 * or a store) and is not what this does.
 *
 * Memory: at most RATELIMIT_MAX_BUCKETS buckets per endpoint; past it, full
 * buckets (of clients idle long enough to be refilled) are dropped first,
 * and when none is, the new key shares one overflow bucket.
 *
 * Thread-safe: one mutex per endpoint.
 */
#ifndef FPESA_MAPPER_RATELIMIT_H
#define FPESA_MAPPER_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>

#define RATELIMIT_MAX_BUCKETS 100000

struct cfg;
struct ratelimit;

/* What a request learnt from its route's limit. */
struct rl_verdict {
    bool applies;     /* the route has a limit */
    bool limited;     /* no token left: answer 429 */
    long limit;       /* the bucket's size */
    long remaining;   /* tokens left after this request */
    long reset_s;     /* seconds until the bucket is full again */
    long retry_after; /* limited: seconds until one token is back (at least 1) */
    long window_s;    /* the policy's window, in seconds (at least 1) */
};

/* Creates the buckets of every endpoint of cfg (borrowed; must outlive it).
 * Returns NULL when memory runs out. */
struct ratelimit *ratelimit_new(const struct cfg *cfg);

/* Frees everything. NULL is fine. */
void ratelimit_free(struct ratelimit *rl);

/* Takes a token for key (borrowed) from endpoint ep_index's buckets and
 * fills *v. An endpoint without a limit gives applies = false. */
void ratelimit_take(struct ratelimit *rl, size_t ep_index, const char *key, struct rl_verdict *v);

#endif
