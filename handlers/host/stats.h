/* Counters of the handler host, per handler, shared by its children.
 *
 * Every handler instance runs in a child process (supervise.h), while the
 * host's HTTP listener (hhttp.h) runs in the parent. The counts therefore
 * live in shared memory mapped by the parent before it forks: each child
 * adds to its handler's struct hstats with atomic operations, and the
 * parent reads them when /metrics is scraped. A child that crashes loses
 * nothing already counted. */
#ifndef HOST_STATS_H
#define HOST_STATS_H

#include <stddef.h>
#include <stdint.h>

/* The counters of one handler (all of its instances). */
struct hstats;

enum hstat_counter {
    HSTAT_CONSUMED = 0,   /* deliveries taken from the queue */
    HSTAT_ACKED,          /* handled and acknowledged */
    HSTAT_RETRIED,        /* given back to the broker to be tried again */
    HSTAT_DEAD_LETTERED,  /* moved to the dead-letter queue */
    HSTAT_CRASH_RESTARTS, /* instances started again after they died */
    HSTAT_N
};

/* A new, zeroed set of counters in shared memory, or NULL when the memory
 * cannot be mapped. Create it before forking the children that count into
 * it; free with hstats_free (NULL is fine). */
struct hstats *hstats_new(void);
void hstats_free(struct hstats *s);

/* Adds n to one counter; s may be NULL (nothing is counted). */
void hstats_add(struct hstats *s, enum hstat_counter which, uint64_t n);

/* Records one batch that took seconds from the plugin call to the last
 * settlement; s may be NULL. */
void hstats_batch(struct hstats *s, double seconds);

/* One handler as /metrics shows it; everything borrowed. */
struct hstats_row {
    const char *name;
    const struct hstats *stats;
    int instances; /* configured */
    int running;   /* child processes alive now */
};

/* The Prometheus text exposition of rows[0..n-1]: every family with HELP
 * and TYPE, one sample per handler. Returns a new string (free()) and its
 * length in *len, or NULL when out of memory. */
char *hstats_render(const struct hstats_row *rows, size_t n, size_t *len);

#endif
