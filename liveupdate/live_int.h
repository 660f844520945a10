/* What the pieces of liveupdate's server share; private to liveupdate/
 * (the API is ws.h).
 *
 * Everything here runs on the one libwebsockets service thread; the bus
 * thread only reaches it through the inbox (bus.h). ws.c is the
 * libwebsockets adapter (handshakes, the protocol callback, life cycle);
 * clientq.c keeps each client's queue and writes its frames; resume.c
 * replays stored messages; events.c takes what the bus thread sent;
 * access.c decides who may open a channel; channels.c builds the channels
 * and reloads them; answer.c writes plain HTTP answers.
 */
#ifndef FPESA_LIVE_INT_H
#define FPESA_LIVE_INT_H

#include "ws.h"

#include "auth.h"
#include "buf.h"
#include "bus.h"
#include "config.h"
#include "window.h"

#include <libwebsockets.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Stored messages asked for per resume request. */
#define REPLAY_PAGE 100
/* A resume from before the last broker loss asks the store from this many
 * window messages before its position (the store's order, the order the
 * handler hosts inserted, can differ from the live order by up to their
 * batches in flight): the window's copies are skipped, what is left is the
 * hole. */
#define SEALED_BACK 2000
/* Stored messages asked for per request where most are skipped (those the
 * window holds). */
#define SKIP_PAGE 500
/* Resume requests outstanding at once for all clients together: replays
 * take turns, so they never occupy every stored-messages worker and other
 * readers of the store are served between their pages. */
#define REPLAY_INFLIGHT_MAX 2
/* How long an unknown `since` is looked up again before it is declared
 * unknown: a message is pushed live before it is committed, so a client can
 * hold an id the store will know a moment later (ms). */
#define LOOKUP_MS 3000
/* A replay that reached the end of the store without meeting the window
 * asks again after this long (ms). */
#define REPOLL_MS 150
/* After the broker connection is bound, messages published before it are
 * committed within this long; a replay that reached the end of the store
 * joins an empty window after it (ms). */
#define SETTLE_MS 3000
/* A window message the store has not shown for this long is taken as never
 * stored (refused by the store's worker): the replay stops waiting for it (ms). */
#define STRAGGLE_MS 10000
/* Stored messages this close (by their UUIDv7 time) to the window's oldest
 * may also arrive live later; their ids are kept to skip those copies. And
 * a replay that met the window reads the store on until it shows messages
 * this much younger than the window's oldest: the store's order differs
 * from the live one, and a message the window lacks (published before the
 * bind, or dropped by a restarting stream) can be stored after one it holds
 * (ms). */
#define MARGIN_MS 5000
/* Most ids kept per client for that. */
#define SEEN_MAX 8192
/* Failed resume requests retried before the client is closed with 1011. */
#define RESUME_RETRIES 3
/* Live messages are flushed to their clients at most this often (µs). A
 * message that arrives when the last flush is older than that goes out at
 * once; under load, the messages arriving within one interval share a write
 * per client instead of one write per frame each. */
#define FLUSH_US 1000
/* Bytes of frames written to one client per writable callback. */
#define SCRATCH_SIZE (64 * 1024)
/* Bytes of window per channel, whatever its message count. */
#define WINDOW_BYTES (64u * 1024 * 1024)
/* Close code on broker loss: 1014 "Bad Gateway" in the IANA registry (the
 * upstream failed). 1012 "Service Restart" would do too, but common client
 * libraries refuse it as invalid, and libwebsockets has no name for either. */
#define CLOSE_BROKER_LOST 1014

struct live_client;

struct live_channel {
    char *path;               /* endpoint path, e.g. "/messages/" or "/orders/{id}" */
    bool has_params;          /* the path has {name} segments */
    const char *rpc_exchange; /* GET rpc endpoint of the same path (resume), or NULL */
    long rpc_timeout_ms;
    struct live_client *clients; /* doubly linked */
    size_t n_clients;
    struct live_window win;
    /* First lseq of the current broker connection (while the broker is down,
     * the window's end). The messages before it came before the last broker
     * loss: a hole follows them, so no cursor crosses from them into the
     * rest; a client resuming from one of them gets those after it from
     * here and the hole from the store (resume.c). */
    uint64_t bind_lseq;
    int64_t bound_ms;      /* when it was bound (monotonic ms) */
    int64_t bound_wall_ms; /* the same, wall clock */
    bool removed;          /* a reload dropped its endpoint: no new client joins */
};

/* Channels a reload may add beyond those of the start: the array of channel
 * paths the bus thread reads is allocated once, with this much room, so
 * that it never moves under that thread. */
#define RELOAD_CHANNELS 256

enum live_phase {
    PH_LIVE = 0,  /* reading the window at cursor */
    PH_REPLAY = 1 /* reading the store, page by page */
};

struct live_client {
    struct lws *wsi;
    struct live_client *prev, *next;
    uint64_t serial;
    int channel; /* -1 until established */
    bool linked;
    bool sse;     /* a Server-Sent Events stream, not a websocket */
    char *filter; /* owned: the one resource subscribed to ("/orders/42"), or NULL */

    enum live_phase phase;
    uint64_t cursor;  /* PH_LIVE: lseq of the next window message */
    uint64_t arrived; /* the window's end when the client connected */
    bool caught_up;   /* has been within client_queue of the window's end */

    /* Resume: stored messages to send before the window, one page at a time. */
    struct live_msg **replay; /* references, oldest first */
    size_t n_replay, replay_pos;
    char after[LIVE_ID_MAX + 1]; /* id the next page starts after */
    /* A resume from a message before the last broker loss (lseq since_lseq):
     * the window's messages before bind_lseq are sent from the window, and
     * their stored copies skipped. */
    bool sealed;
    uint64_t since_lseq;
    long page_size; /* stored messages per request */
    uint64_t join;    /* the oldest window message the replay met, or UINT64_MAX */
    int64_t store_ms; /* the youngest UUIDv7 time the replay showed, or 0 */
    int page;
    bool rpc_pending; /* a page request is outstanding (counted in srv->rpc_inflight) */
    bool wants_page;  /* waits for a free request slot */
    bool waiting;     /* waits for the re-poll timer */
    int retries;
    int64_t started_ms;
    char **seen; /* sorted ids replayed that may still come live */
    size_t n_seen;
    uint64_t seen_until; /* seen is dropped once the cursor passes this lseq */

    bool gap;             /* SSE: an "unknown position" event is due */
    bool heartbeat;       /* SSE: a comment line is due */
    bool ping_due;        /* websocket: a keepalive ping is due */
    int64_t last_rx_ms;   /* when the client last sent anything (a pong counts) */
    int64_t last_beat_ms; /* when it was last pinged (SSE: sent a comment line) */
    bool dirty;           /* has frames and waits for the next flush to ask for writable */
    bool asked;           /* a writable callback is asked for and not served yet */
    bool closing;
    int close_code;
    const char *close_reason;
    size_t rx_len; /* bytes of the message being received */
};

struct live_server {
    const struct cfg *cfg;
    struct auth *auth; /* NULL: no auth section, every channel open */
    struct lws_context *ctx;
    struct live_bus *bus;
    struct live_inbox inbox;
    lws_retry_bo_t retry;

    struct live_channel *channels;
    size_t n_channels;
    /* For the bus thread: the live exchanges and the channel each feeds. */
    const char **exchanges;
    int *exchange_channel;
    size_t n_exchanges;
    const char **rpc_exchanges;
    size_t n_rpc_exchanges;
    const char **channel_paths;
    int original_channel; /* compat fpesa-python: the channel "/" in the original's form, or -1 */

    volatile sig_atomic_t stop_asked;
    volatile sig_atomic_t reload_asked;
    const char *config_path; /* what a reload reads (borrowed) */
    struct cfg **old_cfgs;   /* configurations replaced by reloads, kept (and freed) with the
                                server: the bus and the channels borrow names from them */
    size_t n_old_cfgs;
    size_t channels_cap; /* of channel_paths */
    bool stopping;
    bool broker_up;
    uint64_t next_serial;
    int rpc_inflight;

    /* Metrics, owned by the service thread. */
    size_t clients;
    size_t sse_clients;
    unsigned long long connections_total;
    unsigned long long frames_out;
    unsigned long long bytes_out;
    unsigned long long messages_routed;
    unsigned long long slow_drops;
    unsigned long long oversize_closes;
    unsigned long long frames_ignored;
    unsigned long long replays_started;
    unsigned long long replays_failed;
    unsigned long long replayed_messages;
    unsigned long long window_resumes;
    unsigned long long loss_resumes; /* from before the last broker loss */
    unsigned long long unknown_positions;
    unsigned long long restart_closes;
    unsigned long long rejected_upgrades;
    size_t queued; /* references held in every replay list */

    lws_sorted_usec_list_t flush_sul; /* pending flush of dirty clients */
    bool flush_scheduled;
    bool any_dirty;                  /* some client became dirty since the last flush */
    lws_usec_t last_flush;           /* when the last flush ran */
    lws_sorted_usec_list_t beat_sul; /* keepalive: pings and SSE comment lines */
    unsigned long long reaped;       /* clients cut off for silence */

    unsigned char scratch[LWS_PRE + SCRATCH_SIZE]; /* batches frames for one write */
};

/* ---- ws.c: the libwebsockets adapter ---- */

int64_t live_now_ms(void);
struct live_server *live_server_of(struct lws *wsi);

/* ---- answer.c: plain HTTP answers ---- */

int live_channel_find(struct live_server *srv, const char *path, char *filter, size_t flen);
int live_send_error(struct lws *wsi, unsigned int status, const char *desc, bool upgrade_hint);
int live_serve_http(struct lws *wsi, const char *path);

/* ---- clientq.c: per-client queues ---- */

int live_client_write(struct live_server *srv, struct live_client *c);
bool live_client_wants(const struct live_client *c, const struct live_msg *m);
int live_seen_add(struct live_client *c, const char *id);
void live_client_close(struct live_client *c, int code, const char *reason);
void live_client_kick(struct live_server *srv, struct live_client *c);
void live_client_offer(struct live_server *srv, struct live_client *c, struct live_msg *m);
void live_client_unlink(struct live_server *srv, struct live_client *c);
void live_flush_schedule(struct live_server *srv);
void live_replay_clear(struct live_server *srv, struct live_client *c);
void live_slot_release(struct live_server *srv, struct live_client *c);

/* ---- resume.c: replays of stored messages ---- */

void live_on_replay(struct live_server *srv, struct live_event *ev);
void live_on_timer(struct live_server *srv, struct live_client *c);
void live_request_page(struct live_server *srv, struct live_client *c);
void live_resume_start(struct live_server *srv, struct live_client *c, const char *since);

/* ---- events.c: what the bus thread sent; keepalive ---- */

void live_beat_run(lws_sorted_usec_list_t *sul);
void live_close_all(struct live_server *srv, int code, const char *reason);
void live_drain_inbox(struct live_server *srv);

/* ---- access.c: who may open a channel ---- */

int live_check_access(struct live_server *srv, struct lws *wsi, int ch, bool ws);

/* ---- channels.c: channels and reloads ---- */

int live_channels_build(struct live_server *srv);
void live_reload(struct live_server *srv);

#endif
