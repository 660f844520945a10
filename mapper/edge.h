/* The edge of the restmapper: what keeps one client, or many, from holding
 * it down without nginx in front.
 *
 * It counts open connections per client address and in all, refuses a new
 * one past either limit (http.max_connections_per_client,
 * http.max_connections), and gives every connection a deadline for the phase
 * it is in:
 *
 *   idle    from its opening, or the end of its last request, to the next
 *           request line (http.idle_timeout)
 *   header  from the request line to the end of the headers (http.header_timeout)
 *   body    from the headers to the last byte of the body (http.body_timeout)
 *
 * A request handed to the bus has no deadline here: the bus answers it in
 * time. A sweeper thread shuts the socket of a connection past its deadline
 * down, so that libmicrohttpd sees it end and frees it; unlike
 * libmicrohttpd's own timeout, which restarts with every byte received, a
 * client trickling a byte at a time cannot stretch these.
 *
 * Threading: edge_conn_* and edge_phase are called from libmicrohttpd's
 * threads, the sweeper runs in its own; the connection list is under one
 * mutex, deadlines and counters are atomics. The socket is shut down only
 * while its connection is on the list, and libmicrohttpd takes it off
 * (edge_conn_close) before it closes the descriptor, so a descriptor number
 * reused by another connection is never touched.
 */
#ifndef FPESA_MAPPER_EDGE_H
#define FPESA_MAPPER_EDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct edge;
struct edge_conn;

enum edge_phase { EDGE_IDLE = 0, EDGE_HEADER, EDGE_BODY, EDGE_BUSY };

struct edge_limits {
    int max_connections;
    int max_per_client;
    int idle_timeout_s;
    int header_timeout_s;
    int body_timeout_s;
};

/* Creates the edge with limits (copied) and starts its sweeper thread.
 * Returns NULL when memory or a thread cannot be had. */
struct edge *edge_new(const struct edge_limits *limits);

/* Stops the sweeper and frees the edge. Every connection must have been
 * closed (the HTTP server stopped) before. NULL is fine. */
void edge_free(struct edge *e);

/* Whether a new connection from addr (borrowed) may be accepted; counts a
 * refusal. Thread-safe. */
bool edge_may_accept(struct edge *e, const struct sockaddr *addr, socklen_t len);

/* Registers an accepted connection on socket fd from addr (borrowed), in the
 * idle phase. Returns its record (owned by the edge until edge_conn_close),
 * or NULL when memory runs out (the connection then has no deadline). */
struct edge_conn *edge_conn_open(struct edge *e, int fd, const struct sockaddr *addr,
                                 socklen_t len);

/* Forgets a connection; called before its socket is closed. NULL is fine. */
void edge_conn_close(struct edge *e, struct edge_conn *c);

/* Moves a connection (NULL is fine) to phase p and restarts its deadline. */
void edge_phase(struct edge *e, struct edge_conn *c, enum edge_phase p);

/* Counts a request refused at the edge, by reason ("uri", "query", "headers",
 * "framing"). Thread-safe. */
void edge_refused(struct edge *e, const char *reason);

/* Appends the edge's metrics as Prometheus text to *buf (malloc'd, grown
 * with realloc; *len and *cap updated). Returns 0, or -1 when memory runs
 * out (*buf is then still valid). */
int edge_render(struct edge *e, char **buf, size_t *len, size_t *cap);

#endif
