/* The handler host's HTTP listener: /health and /metrics.
 *
 * Runs in the host (parent) process on a thread of libmicrohttpd's, never in
 * a handler instance. What it answers comes from a callback of the
 * supervisor's, which reads the shared counters (stats.h) and the state of
 * the children under its own lock. */
#ifndef HOST_LISTENER_H
#define HOST_LISTENER_H

#include <stdbool.h>
#include <stddef.h>

struct hlisten;

/* Fills an answer for /health (metrics false) or /metrics (metrics true):
 * returns a new string (free()) with its length in *len and the status in
 * *status, or NULL when out of memory (answered 500). */
typedef char *(*hlisten_answer_fn)(void *arg, bool metrics, int *status, size_t *len);

/* Binds host:port (a taken port is an error, never shared) and starts
 * serving. arg is borrowed until hlisten_stop. Returns NULL with the reason
 * in err (of err_len bytes) when the address cannot be bound. */
struct hlisten *hlisten_start(const char *host, int port, hlisten_answer_fn answer, void *arg,
                              char *err, size_t err_len);

/* The listening socket, for a forked child to close (it must not keep the
 * port open), or -1. */
int hlisten_fd(const struct hlisten *l);

/* Stops serving and frees l; NULL is fine. */
void hlisten_stop(struct hlisten *l);

#endif
