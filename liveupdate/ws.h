/* The websocket side of liveupdate: one libwebsockets service thread that
 * serves the channels (one per path of the live endpoints), /health and
 * /metrics on the same port, and fans every message from the bus out to the
 * clients of its channel through their bounded queues.
 *
 * Close codes a client can see:
 *   1001 the server is shutting down
 *   1008 "too slow; resume with since": its queue was full
 *   1009 it sent a frame larger than liveupdate.max_frame
 *   1011 "resume failed; retry with since": the stored-messages rpc failed
 *   1014 "broker connection lost; resume with since": messages published
 *        meanwhile were not seen by this instance (new handshakes get 503
 *        until the broker is back)
 * In every case the client reconnects with ?since=<last id it received>.
 */
#ifndef LIVE_WS_H
#define LIVE_WS_H

#include "config.h"

struct live_server;

/* Binds cfg->live.host:port, starts the bus thread. cfg is borrowed and must
 * outlive the server. Returns a new server (free with live_server_free) or
 * NULL after logging why (no live endpoint, port taken, ...). */
struct live_server *live_server_new(const struct cfg *cfg);

/* Serves until live_server_shutdown is called and every client is closed.
 * Returns 0. */
int live_server_run(struct live_server *srv);

/* Asks the service loop to close every client with 1001 and return. Safe to
 * call from a signal handler (it sets a flag and wakes the loop). */
void live_server_shutdown(struct live_server *srv);

/* Stops the bus thread and frees everything. NULL is fine. */
void live_server_free(struct live_server *srv);

#endif
