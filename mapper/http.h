/* The HTTP side of the restmapper: a libmicrohttpd daemon with an epoll
 * thread pool that routes each request, checks it (content type, size,
 * JSON, schemas), turns it into an envelope on the bus and answers when the
 * bus has the outcome, suspending the connection meanwhile.
 */
#ifndef FPESA_MAPPER_HTTP_H
#define FPESA_MAPPER_HTTP_H

#include <stddef.h>

struct cfg;
struct mbus;
struct http_server;

/* Creates the server for cfg and bus (both borrowed; must outlive it).
 * Builds the route table, the metrics and the OpenAPI document; does not
 * listen yet. Returns NULL (with a log line) on failure. */
struct http_server *http_new(const struct cfg *cfg, struct mbus *bus);

/* Binds cfg->http.host:port without listening yet, so that a taken port is
 * an error at once while connections are still refused (a proxy sends them
 * elsewhere) until http_start. Never shares the port (no SO_REUSEPORT).
 * Returns 0, or -1 with a log line. Calling it again does nothing. */
int http_bind(struct http_server *srv);

/* SIGHUP: builds the routes, documents, keys and limits of cfg, calls
 * before(arg, cfg) (the bus declares the new topology there; -1 refuses the
 * reload), then serves every request whose request line arrives from now on
 * with cfg; requests in flight finish with the configuration they started
 * with. cfg is taken on success (freed once the last request using it
 * completes, or by http_free). The listening address and connection limits
 * stay the start's. Returns -1 (cfg not taken) on a failure. */
int http_reload(struct http_server *srv, struct cfg *cfg,
                int (*before)(void *arg, const struct cfg *cfg), void *arg);

/* The configuration new requests are served with (borrowed: valid until the
 * next http_reload from the same thread). */
const struct cfg *http_config(struct http_server *srv);

/* Starts listening and serving (binding first if http_bind was not called).
 * Returns 0, or -1 with a log line (for example when the port is taken). */
int http_start(struct http_server *srv);

/* Stops accepting new connections; requests already received go on, and
 * every answer from now on closes its connection. */
void http_quiesce(struct http_server *srv);

/* Number of requests received and not yet completed, including those still
 * arriving (a slow client's half-sent request counts). Thread-safe. */
long http_in_flight(const struct http_server *srv);

/* Number of requests handed to the bus and not yet answered: what a graceful
 * stop waits for. Thread-safe. */
long http_waiting(const struct http_server *srv);

/* Closes every connection and stops the threads. Call only when no request
 * is waiting for the bus (http_in_flight() is 0, or the bus was stopped, which
 * answers every pending call). */
void http_stop(struct http_server *srv);

/* Frees a stopped server. NULL is fine. */
void http_free(struct http_server *srv);

#endif
