/* The client side of liveupdate: one libwebsockets service thread that
 * serves the channels (one per path of the live endpoints) as websockets
 * and as Server-Sent Events (GET /events/v1/<channel>), /health and
 * /metrics on the same port, and fans every message from the bus out to the
 * clients of its channel.
 *
 * Every channel keeps a window of its recent live messages (window.h); a
 * client is a cursor into it. A client that resumes (?since=<id>, or
 * Last-Event-ID for SSE) continues from the window when the id is still in
 * it; otherwise it gets the stored messages after the id, one page at a time
 * as it reads them, until the store reaches a message the window holds, and
 * then the window: every message after the id exactly once, whatever the
 * length of the outage.
 *
 * Close codes a websocket client can see:
 *   1001 the server is shutting down
 *   1008 "too slow; resume with since": it fell behind by more than
 *        liveupdate.client_queue messages
 *   1009 it sent a frame larger than liveupdate.max_frame
 *   1011 "resume failed; retry with since": the stored-messages rpc kept
 *        failing (the database is down)
 *   1014 "broker connection lost; resume with since": messages published
 *        meanwhile were not seen by this instance (new handshakes get 503
 *        until the broker is back)
 *   4404 "unknown position; reconnect without since": neither the window
 *        nor the store knows the id (the store was reset, the message was
 *        refused); the client marks a gap and continues live
 * In every other case the client reconnects with ?since=<last id it received>.
 * An SSE client sees the same as events: it is closed (and reconnects with
 * Last-Event-ID by itself), or gets an `event: gap` and carries on live.
 */
#ifndef LIVE_WS_H
#define LIVE_WS_H

#include "config.h"

/* Close code for a position neither the window nor the store knows. */
#define LIVE_CLOSE_UNKNOWN_POSITION 4404

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

/* Where a reload reads the file again (borrowed; must outlive srv). */
void live_server_set_config_path(struct live_server *srv, const char *path);

/* Asks for a reload (see reload() in ws.c); async-signal-safe, for SIGHUP. */
void live_server_reload(struct live_server *srv);

#endif
