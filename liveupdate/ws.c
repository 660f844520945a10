#include "ws.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stddef.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>

#include <libwebsockets.h>

#include "auth.h"
#include "buf.h"
#include "bus.h"
#include "config.h"
#include "log.h"
#include "window.h"

/* Stored messages asked for per resume request. */
#define REPLAY_PAGE 100
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
 * may also arrive live later; their ids are kept to skip those copies (ms). */
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

struct client;

struct channel {
    char *path;               /* endpoint path, e.g. "/messages/" or "/orders/{id}" */
    bool has_params;          /* the path has {name} segments */
    const char *rpc_exchange; /* GET rpc endpoint of the same path (resume), or NULL */
    long rpc_timeout_ms;
    struct client *clients; /* doubly linked */
    size_t n_clients;
    struct live_window win;
    uint64_t bind_lseq;    /* first lseq received on the current broker connection */
    int64_t bound_ms;      /* when it was bound (monotonic ms) */
    int64_t bound_wall_ms; /* the same, wall clock */
    bool removed;          /* a reload dropped its endpoint: no new client joins */
};

/* Channels a reload may add beyond those of the start: the array of channel
 * paths the bus thread reads is allocated once, with this much room, so
 * that it never moves under that thread. */
#define RELOAD_CHANNELS 256

enum phase {
    PH_LIVE = 0,  /* reading the window at cursor */
    PH_REPLAY = 1 /* reading the store, page by page */
};

struct client {
    struct lws *wsi;
    struct client *prev, *next;
    uint64_t serial;
    int channel; /* -1 until established */
    bool linked;
    bool sse;     /* a Server-Sent Events stream, not a websocket */
    char *filter; /* owned: the one resource subscribed to ("/orders/42"), or NULL */

    enum phase phase;
    uint64_t cursor;  /* PH_LIVE: lseq of the next window message */
    uint64_t arrived; /* the window's end when the client connected */
    bool caught_up;   /* has been within client_queue of the window's end */

    /* Resume: stored messages to send before the window, one page at a time. */
    struct live_msg **replay; /* references, oldest first */
    size_t n_replay, replay_pos;
    char after[LIVE_ID_MAX + 1]; /* id the next page starts after */
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

    struct channel *channels;
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

static int64_t now_ms(void) {
    return (int64_t)(lws_now_usecs() / 1000);
}

static struct live_server *server_of(struct lws *wsi) {
    return lws_context_user(lws_get_context(wsi));
}

/* ---- HTTP answers ----------------------------------------------------------- */

/* Writes a complete response. Returns what the callback must return. */
static int send_http(struct lws *wsi, unsigned int status, const char *ctype, const char *body,
                     size_t len, bool upgrade_hint) {
    unsigned char hdr[LWS_PRE + 512];
    unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr);
    unsigned char *buf;

    if (lws_add_http_common_headers(wsi, status, ctype, (lws_filepos_t)len, &p, end))
        return -1;
    if (upgrade_hint && lws_add_http_header_by_name(wsi, (const unsigned char *)"upgrade:",
                                                    (const unsigned char *)"websocket", 9, &p, end))
        return -1;
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end))
        return -1;
    if (lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    buf = malloc(LWS_PRE + len + 1);
    if (!buf)
        return -1;
    memcpy(buf + LWS_PRE, body, len);
    if (lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_HTTP_FINAL) != (int)len) {
        free(buf);
        return -1;
    }
    free(buf);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int send_error(struct lws *wsi, unsigned int status, const char *desc, bool upgrade_hint) {
    json_t *j = json_pack("{s:{s:i,s:s}}", "error", "code", (int)status, "description", desc);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    int rc;

    json_decref(j);
    if (!text)
        return -1;
    rc = send_http(wsi, status, "application/json", text, strlen(text), upgrade_hint);
    free(text);
    return rc;
}

/* True when path matches a route template: the same segments, a {name}
 * segment matching any non-empty one. */
static bool template_match(const char *tmpl, const char *path) {
    while (*tmpl && *path) {
        if (*tmpl == '{') {
            const char *close = strchr(tmpl, '}');
            if (!close || *path == '/')
                return false;
            while (*path && *path != '/')
                path++;
            tmpl = close + 1;
            continue;
        }
        if (*tmpl != *path)
            return false;
        tmpl++;
        path++;
    }
    return *tmpl == '\0' && *path == '\0';
}

/* The channel a request path names: "/messages/", also as "/ws/v1/messages/"
 * or "/events/v1/messages/" (when reached without the proxy's prefix
 * stripping) or without the final slash. A route with path parameters is
 * named by its template ("/orders/{id}": every resource) or by a concrete
 * path ("/orders/42": that one, copied into filter). -1 when none. */
static void reload(struct live_server *srv);

static int channel_find(struct live_server *srv, const char *path, char *filter, size_t flen) {
    char buf[1024];

    if (filter && flen)
        filter[0] = '\0';
    if (strncmp(path, "/ws/v1/", 7) == 0)
        path += 6;
    else if (strncmp(path, "/events/v1/", 11) == 0)
        path += 10;
    for (size_t i = 0; i < srv->n_channels; i++) {
        const char *cp = srv->channels[i].path;
        size_t n = strlen(path), m = strlen(cp);
        if (srv->channels[i].removed)
            continue;
        if (strcmp(cp, path) == 0)
            return (int)i;
        if (m == n + 1 && cp[m - 1] == '/' && strncmp(cp, path, n) == 0)
            return (int)i;
    }
    for (size_t i = 0; i < srv->n_channels; i++) {
        const char *cp = srv->channels[i].path;
        size_t n = strlen(path), m = strlen(cp);
        if (!srv->channels[i].has_params || srv->channels[i].removed)
            continue;
        if (template_match(cp, path)) {
            if (filter)
                snprintf(filter, flen, "%s", path);
            return (int)i;
        }
        /* The template ends with '/', the request does not. */
        if (cp[m - 1] == '/' && n + 2 <= sizeof(buf)) {
            snprintf(buf, sizeof(buf), "%s/", path);
            if (template_match(cp, buf)) {
                if (filter)
                    snprintf(filter, flen, "%s", buf);
                return (int)i;
            }
        }
    }
    return -1;
}

static void metrics_text(struct live_server *srv, char **out, size_t *out_len) {
    struct live_bus_stats *bs = live_bus_stats(srv->bus);
    size_t max_depth = 0;
    FILE *f = open_memstream(out, out_len);

    if (!f) {
        *out = NULL;
        return;
    }
    for (size_t i = 0; i < srv->n_channels; i++)
        for (struct client *c = srv->channels[i].clients; c; c = c->next) {
            size_t d = c->n_replay - c->replay_pos;
            if (c->phase == PH_LIVE && c->cursor < srv->channels[i].win.end)
                d += (size_t)(srv->channels[i].win.end - c->cursor);
            if (d > max_depth)
                max_depth = d;
        }
    fprintf(f,
            "# HELP liveupdate_clients Websocket clients connected.\n"
            "# TYPE liveupdate_clients gauge\nliveupdate_clients %zu\n",
            srv->clients);
    fprintf(f, "# HELP liveupdate_channel_clients Websocket clients per channel.\n"
               "# TYPE liveupdate_channel_clients gauge\n");
    for (size_t i = 0; i < srv->n_channels; i++)
        fprintf(f, "liveupdate_channel_clients{channel=\"%s\"} %zu\n", srv->channels[i].path,
                srv->channels[i].n_clients);
    fprintf(f,
            "# HELP liveupdate_connections_total Websocket connections accepted.\n"
            "# TYPE liveupdate_connections_total counter\nliveupdate_connections_total %llu\n"
            "# HELP liveupdate_messages_in_total Messages received from the broker.\n"
            "# TYPE liveupdate_messages_in_total counter\nliveupdate_messages_in_total %llu\n"
            "# HELP liveupdate_messages_bad_total Broker messages that were not a JSON envelope.\n"
            "# TYPE liveupdate_messages_bad_total counter\nliveupdate_messages_bad_total %llu\n"
            "# HELP liveupdate_frames_out_total Frames written to clients.\n"
            "# TYPE liveupdate_frames_out_total counter\nliveupdate_frames_out_total %llu\n"
            "# HELP liveupdate_bytes_out_total Payload bytes written to clients.\n"
            "# TYPE liveupdate_bytes_out_total counter\nliveupdate_bytes_out_total %llu\n"
            "# HELP liveupdate_slow_client_drops_total Clients closed (1008) because their "
            "queue was full.\n"
            "# TYPE liveupdate_slow_client_drops_total counter\n"
            "liveupdate_slow_client_drops_total %llu\n"
            "# HELP liveupdate_oversize_closes_total Clients closed (1009) for an oversized "
            "frame.\n"
            "# TYPE liveupdate_oversize_closes_total counter\n"
            "liveupdate_oversize_closes_total %llu\n"
            "# HELP liveupdate_client_frames_ignored_total Data frames from clients, ignored.\n"
            "# TYPE liveupdate_client_frames_ignored_total counter\n"
            "liveupdate_client_frames_ignored_total %llu\n"
            "# HELP liveupdate_restart_closes_total Clients closed (1014) on broker loss.\n"
            "# TYPE liveupdate_restart_closes_total counter\n"
            "liveupdate_restart_closes_total %llu\n"
            "# HELP liveupdate_rejected_upgrades_total Websocket handshakes refused.\n"
            "# TYPE liveupdate_rejected_upgrades_total counter\n"
            "liveupdate_rejected_upgrades_total %llu\n"
            "# HELP liveupdate_resumes_total Resumes (?since=) started.\n"
            "# TYPE liveupdate_resumes_total counter\nliveupdate_resumes_total %llu\n"
            "# HELP liveupdate_resumes_failed_total Resumes that failed (1011).\n"
            "# TYPE liveupdate_resumes_failed_total counter\nliveupdate_resumes_failed_total %llu\n"
            "# HELP liveupdate_replayed_messages_total Stored messages replayed on resume.\n"
            "# TYPE liveupdate_replayed_messages_total counter\n"
            "liveupdate_replayed_messages_total %llu\n"
            "# HELP liveupdate_queued_messages Stored messages queued for replaying clients.\n"
            "# TYPE liveupdate_queued_messages gauge\nliveupdate_queued_messages %zu\n"
            "# HELP liveupdate_queue_depth_max Longest client queue now.\n"
            "# TYPE liveupdate_queue_depth_max gauge\nliveupdate_queue_depth_max %zu\n"
            "# HELP liveupdate_queue_limit Messages a client may have queued.\n"
            "# TYPE liveupdate_queue_limit gauge\nliveupdate_queue_limit %zu\n"
            "# HELP liveupdate_broker_up 1 while the broker connection is established.\n"
            "# TYPE liveupdate_broker_up gauge\nliveupdate_broker_up %d\n"
            "# HELP liveupdate_broker_reconnects_total Broker connections re-established.\n"
            "# TYPE liveupdate_broker_reconnects_total counter\n"
            "liveupdate_broker_reconnects_total %llu\n",
            srv->connections_total, (unsigned long long)atomic_load(&bs->messages_in),
            (unsigned long long)atomic_load(&bs->bad_messages), srv->frames_out, srv->bytes_out,
            srv->slow_drops, srv->oversize_closes, srv->frames_ignored, srv->restart_closes,
            srv->rejected_upgrades, srv->replays_started, srv->replays_failed,
            srv->replayed_messages, srv->queued, max_depth, srv->cfg->live.client_queue,
            atomic_load(&bs->connected), (unsigned long long)atomic_load(&bs->reconnects));
    fprintf(f,
            "# HELP liveupdate_sse_clients Server-Sent Events clients connected (also counted "
            "in liveupdate_clients).\n"
            "# TYPE liveupdate_sse_clients gauge\nliveupdate_sse_clients %zu\n"
            "# HELP liveupdate_window_resumes_total Resumes served from the window alone.\n"
            "# TYPE liveupdate_window_resumes_total counter\n"
            "liveupdate_window_resumes_total %llu\n"
            "# HELP liveupdate_unknown_positions_total Resumes from an id nobody knows (4404).\n"
            "# TYPE liveupdate_unknown_positions_total counter\n"
            "liveupdate_unknown_positions_total %llu\n"
            "# HELP liveupdate_replay_requests_inflight Stored-messages requests outstanding.\n"
            "# TYPE liveupdate_replay_requests_inflight gauge\n"
            "liveupdate_replay_requests_inflight %d\n"
            "# HELP liveupdate_silent_closes_total Websocket clients cut off after three "
            "unanswered ping intervals.\n"
            "# TYPE liveupdate_silent_closes_total counter\nliveupdate_silent_closes_total %llu\n"
            "# HELP liveupdate_window_messages Live messages held in the channel's window.\n"
            "# TYPE liveupdate_window_messages gauge\n",
            srv->sse_clients, srv->window_resumes, srv->unknown_positions, srv->rpc_inflight,
            srv->reaped);
    for (size_t i = 0; i < srv->n_channels; i++)
        fprintf(f, "liveupdate_window_messages{channel=\"%s\"} %zu\n", srv->channels[i].path,
                live_window_count(&srv->channels[i].win));
    fclose(f);
}

static int serve_http(struct lws *wsi, const char *path) {
    struct live_server *srv = server_of(wsi);

    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
        return send_error(wsi, 405, "only GET is served here", false);
    if (strcmp(path, "/health") == 0) {
        int up = atomic_load(&live_bus_stats(srv->bus)->connected);
        char body[256];
        int n =
            snprintf(body, sizeof(body), "{\"status\":\"%s\",\"broker\":\"%s\",\"clients\":%zu}",
                     up ? "ok" : "unavailable", up ? "connected" : "disconnected", srv->clients);
        return send_http(wsi, up ? 200 : 503, "application/json", body, (size_t)n, false);
    }
    if (strcmp(path, "/metrics") == 0) {
        char *text = NULL;
        size_t len = 0;
        int rc;
        metrics_text(srv, &text, &len);
        if (!text)
            return send_error(wsi, 500, "out of memory", false);
        rc = send_http(wsi, 200, "text/plain; version=0.0.4", text, len, false);
        free(text);
        return rc;
    }
    if (channel_find(srv, path, NULL, 0) >= 0)
        return send_error(wsi, 426,
                          "this is a websocket channel: connect with a websocket client "
                          "(Upgrade: websocket), optionally with ?since=<last id>, or read "
                          "it as Server-Sent Events at /events/v1<channel>",
                          true);
    return send_error(wsi, 404, "no such channel", false);
}

/* ---- clients ----------------------------------------------------------------- */

static void client_close(struct client *c, int code, const char *reason);
static void drain_inbox(struct live_server *srv);
static void request_page(struct live_server *srv, struct client *c);

/* Asks a writable callback for every client with frames waiting. */
static void flush_now(struct live_server *srv) {
    srv->last_flush = lws_now_usecs();
    srv->any_dirty = false;
    for (size_t i = 0; i < srv->n_channels; i++)
        for (struct client *c = srv->channels[i].clients; c; c = c->next)
            if (c->dirty) {
                c->dirty = false;
                c->asked = true;
                lws_callback_on_writable(c->wsi);
            }
}

static void flush_run(lws_sorted_usec_list_t *sul) {
    struct live_server *srv =
        (struct live_server *)((char *)sul - offsetof(struct live_server, flush_sul));

    srv->flush_scheduled = false;
    flush_now(srv);
}

/* Flushes now when the last flush is at least FLUSH_US old, else when it
 * will be: an isolated message is not delayed, a stream is batched. */
static void flush_schedule(struct live_server *srv) {
    lws_usec_t now, due;

    if (srv->flush_scheduled || !srv->any_dirty)
        return;
    now = lws_now_usecs();
    due = srv->last_flush + FLUSH_US;
    if (now >= due) {
        flush_now(srv);
        return;
    }
    srv->flush_scheduled = true;
    lws_sul_schedule(srv->ctx, 0, &srv->flush_sul, flush_run, due - now);
}

/* Marks a client as having something to send at the next flush. */
static void client_kick(struct live_server *srv, struct client *c) {
    if (!c->closing && !c->dirty && !c->asked) {
        c->dirty = true;
        srv->any_dirty = true;
    }
}

static void replay_clear(struct live_server *srv, struct client *c) {
    for (size_t i = c->replay_pos; i < c->n_replay; i++) {
        live_msg_unref(c->replay[i]);
        srv->queued--;
    }
    c->n_replay = c->replay_pos = 0;
}

static void seen_clear(struct client *c) {
    for (size_t i = 0; i < c->n_seen; i++)
        free(c->seen[i]);
    free(c->seen);
    c->seen = NULL;
    c->n_seen = 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool seen_has(const struct client *c, const char *id) {
    return c->n_seen && bsearch(&id, c->seen, c->n_seen, sizeof(char *), cmp_str);
}

/* Remembers a replayed id (kept sorted). Returns 0, or -1 when the set is
 * full or memory is out: the id is then not remembered. */
static int seen_add(struct client *c, const char *id) {
    size_t lo = 0, hi = c->n_seen;
    char **n, *copy;

    if (c->n_seen >= SEEN_MAX)
        return -1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int d = strcmp(c->seen[mid], id);
        if (d == 0)
            return 0;
        if (d < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    n = realloc(c->seen, (c->n_seen + 1) * sizeof(*n));
    if (!n)
        return -1;
    c->seen = n;
    copy = strdup(id);
    if (!copy)
        return -1;
    memmove(c->seen + lo + 1, c->seen + lo, (c->n_seen - lo) * sizeof(*n));
    c->seen[lo] = copy;
    c->n_seen++;
    return 0;
}

/* Gives up the client's request slot, if it holds one, and hands free slots
 * to clients waiting for one. */
static void slot_release(struct live_server *srv, struct client *c) {
    if (c && c->rpc_pending) {
        c->rpc_pending = false;
        srv->rpc_inflight--;
    }
    for (size_t i = 0; i < srv->n_channels && srv->rpc_inflight < REPLAY_INFLIGHT_MAX; i++)
        for (struct client *w = srv->channels[i].clients;
             w && srv->rpc_inflight < REPLAY_INFLIGHT_MAX; w = w->next)
            if (w->wants_page && !w->closing) {
                w->wants_page = false;
                request_page(srv, w);
            }
}

/* Marks a client for closing: its queue is dropped now (so its memory is
 * released at once), the close frame goes out when the socket is writable,
 * and a client that never reads again is cut off after a few seconds. */
static void client_close(struct client *c, int code, const char *reason) {
    struct live_server *srv = server_of(c->wsi);

    if (c->closing)
        return;
    c->closing = true;
    c->close_code = code;
    c->close_reason = reason;
    c->wants_page = false;
    c->waiting = false;
    lws_set_timer_usecs(c->wsi, LWS_SET_TIMER_USEC_CANCEL);
    replay_clear(srv, c);
    seen_clear(c);
    if (c->rpc_pending)
        slot_release(srv, c);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, 5);
    lws_callback_on_writable(c->wsi);
}

static void client_unlink(struct live_server *srv, struct client *c) {
    struct channel *ch;

    if (!c->linked)
        return;
    ch = &srv->channels[c->channel];
    if (c->prev)
        c->prev->next = c->next;
    else
        ch->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ch->n_clients--;
    srv->clients--;
    if (c->sse)
        srv->sse_clients--;
    c->linked = false;
    c->wants_page = false;
    replay_clear(srv, c);
    free(c->replay);
    c->replay = NULL;
    seen_clear(c);
    free(c->filter);
    c->filter = NULL;
    if (c->rpc_pending)
        slot_release(srv, c);
}

/* True when a window message is for this client (its resource, if it
 * subscribed to one). */
static bool client_wants(const struct client *c, const struct live_msg *m) {
    return !c->filter || (m->path && strcmp(m->path, c->filter) == 0);
}

/* A live message entered the client's channel window: wake the client, or
 * close it when it has fallen too far behind. */
static void client_offer(struct live_server *srv, struct client *c, struct live_msg *m) {
    struct live_window *w = &srv->channels[c->channel].win;
    uint64_t lag;

    if (c->closing || c->phase != PH_LIVE)
        return;
    if (c->cursor < w->start) {
        srv->slow_drops++;
        LOG(LOG_WARN, "client fell out of the window; closing serial=%" PRIu64, c->serial);
        client_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too slow; resume with since");
        return;
    }
    lag = w->end - c->cursor;
    if (lag <= srv->cfg->live.client_queue) {
        c->caught_up = true;
    } else if (c->caught_up) {
        srv->slow_drops++;
        LOG(LOG_WARN, "client too slow; closing serial=%" PRIu64 " queued=%" PRIu64, c->serial,
            lag);
        client_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too slow; resume with since");
        return;
    }
    if (c->n_replay > c->replay_pos)
        return; /* the replay goes first; the write that ends it asks again */
    if (!client_wants(c, m)) {
        if (c->cursor == m->lseq)
            c->cursor++; /* nothing for it: stays caught up without a write */
        return;
    }
    client_kick(srv, c);
}

/* Appends "id: ...\ndata: ...\n\n" for m to out (room bytes free); a line
 * break inside the data starts another data line, as the format asks.
 * Returns the bytes written, or 0 when it does not fit. */
static size_t sse_format(const struct live_msg *m, unsigned char *out, size_t room) {
    const unsigned char *p = live_msg_payload((struct live_msg *)m);
    size_t idn = strlen(m->id), need = 4 + idn + 1 + 6 + m->len + 2, used = 0;

    for (size_t i = 0; i < m->len; i++)
        if (p[i] == '\n')
            need += 6;
    if (need > room)
        return 0;
    memcpy(out, "id: ", 4);
    used = 4;
    memcpy(out + used, m->id, idn);
    used += idn;
    memcpy(out + used, "\ndata: ", 7);
    used += 7;
    for (size_t i = 0; i < m->len; i++) {
        if (p[i] == '\r')
            continue;
        out[used++] = p[i];
        if (p[i] == '\n') {
            memcpy(out + used, "data: ", 6);
            used += 6;
        }
    }
    out[used++] = '\n';
    out[used++] = '\n';
    return used;
}

/* The message's SSE event, made on first use and kept with the message, so
 * a thousand SSE clients cost one formatting and a thousand copies, as
 * websocket clients do. NULL when out of memory. */
static const unsigned char *sse_event(struct live_msg *m, size_t *len) {
    if (!m->sse) {
        size_t cap = 4 + LIVE_ID_MAX + 7 + m->len + 2;
        const unsigned char *p = live_msg_payload(m);
        for (size_t i = 0; i < m->len; i++)
            if (p[i] == '\n')
                cap += 6;
        m->sse = malloc(cap);
        if (!m->sse)
            return NULL;
        m->sse_len = sse_format(m, m->sse, cap);
    }
    *len = m->sse_len;
    return m->sse;
}

/* Appends m to the batch in the client's format. Returns false when it does
 * not fit (the batch must be written first). */
static bool batch_add(struct live_server *srv, struct client *c, struct live_msg *m, size_t *used) {
    unsigned char *out = srv->scratch + LWS_PRE + *used;
    size_t room = SCRATCH_SIZE - *used, n;

    if (c->sse) {
        const unsigned char *ev = sse_event(m, &n);
        if (!ev || n > room)
            return false;
        memcpy(out, ev, n);
    } else {
        n = live_msg_frame_len(m);
        if (n > room)
            return false;
        memcpy(out, live_msg_frame(m), n);
    }
    *used += n;
    srv->frames_out++;
    srv->bytes_out += m->len;
    return true;
}

/* Writes one message too large for the batch buffer on its own. */
static int write_large(struct live_server *srv, struct client *c, struct live_msg *m) {
    if (!c->sse) {
        if (lws_write(c->wsi, live_msg_payload(m), m->len,
                      m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) < 0)
            return -1;
    } else {
        size_t n;
        const unsigned char *ev = sse_event(m, &n);
        unsigned char *buf = ev ? malloc(LWS_PRE + n) : NULL;
        int rc;
        if (!buf)
            return -1;
        memcpy(buf + LWS_PRE, ev, n);
        rc = lws_write(c->wsi, buf + LWS_PRE, n, LWS_WRITE_HTTP);
        free(buf);
        if (rc < (int)n)
            return -1;
    }
    srv->frames_out++;
    srv->bytes_out += m->len;
    return 0;
}

/* Sends what the client has waiting: its replay page first, then the window
 * from its cursor. Frames already carry their header (buf.h), so a burst of
 * them is copied into one buffer and written at once: one send per client
 * per wakeup rather than one per message, which is what lets one thread
 * feed thousands of clients. */
static int client_write(struct live_server *srv, struct client *c) {
    struct live_window *w = &srv->channels[c->channel].win;
    size_t used = 0;
    bool more = false;

    /* Messages that arrived while this round of writes was under way go
     * out in it, to the clients not written yet, instead of waiting for
     * the round to end before they are even queued. */
    if (live_inbox_nonempty(&srv->inbox))
        drain_inbox(srv);
    if (c->closing) {
        if (c->sse)
            return -1;
        lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
                         (unsigned char *)c->close_reason, strlen(c->close_reason));
        return -1;
    }
    c->asked = false;
    if (c->ping_due) {
        static const char payload[] = "fpesa";
        unsigned char buf[LWS_PRE + sizeof(payload)];
        c->ping_due = false;
        memcpy(buf + LWS_PRE, payload, sizeof(payload) - 1);
        if (lws_write(c->wsi, buf + LWS_PRE, sizeof(payload) - 1, LWS_WRITE_PING) < 0)
            return -1;
        /* One write per callback: the frames follow in the next. */
        c->asked = true;
        lws_callback_on_writable(c->wsi);
        return 0;
    }
    if (c->sse && c->heartbeat) {
        memcpy(srv->scratch + LWS_PRE, ":\n\n", 3);
        used = 3;
        c->heartbeat = false;
    }
    if (c->sse && c->gap) {
        int n = snprintf((char *)srv->scratch + LWS_PRE + used, SCRATCH_SIZE - used,
                         "event: gap\ndata: {\"reason\":\"unknown position, resuming from "
                         "now\"}\n\n");
        used += (size_t)n;
        c->gap = false;
    }
    while (c->replay_pos < c->n_replay) {
        struct live_msg *m = c->replay[c->replay_pos];
        bool alone = false;
        if (!batch_add(srv, c, m, &used)) {
            if (used) {
                more = true;
                break;
            }
            if (write_large(srv, c, m) < 0)
                return -1;
            alone = true;
        }
        live_msg_unref(m);
        c->replay[c->replay_pos++] = NULL;
        srv->queued--;
        if (alone) {
            more = true; /* one write per callback: the rest in the next */
            break;
        }
    }
    if (c->replay_pos == c->n_replay)
        c->replay_pos = c->n_replay = 0;
    if (c->phase == PH_LIVE && c->n_replay == 0 && !more) {
        if (c->cursor < w->start) {
            srv->slow_drops++;
            client_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too slow; resume with since");
            return 0;
        }
        while (c->cursor < w->end) {
            struct live_msg *m = live_window_at(w, c->cursor);
            if (!client_wants(c, m) || (c->n_seen && seen_has(c, m->id))) {
                c->cursor++;
                continue;
            }
            if (!batch_add(srv, c, m, &used)) {
                if (used) {
                    more = true;
                    break;
                }
                if (write_large(srv, c, m) < 0)
                    return -1;
                c->cursor++;
                more = c->cursor < w->end;
                break;
            }
            c->cursor++;
        }
        if (c->n_seen && c->cursor >= c->seen_until)
            seen_clear(c);
        if (w->end - c->cursor <= srv->cfg->live.client_queue)
            c->caught_up = true;
    }
    if (used && lws_write(c->wsi, srv->scratch + LWS_PRE, used,
                          c->sse ? LWS_WRITE_HTTP : LWS_WRITE_RAW) < (int)used)
        return -1;
    if (more || c->replay_pos < c->n_replay) {
        c->asked = true;
        lws_callback_on_writable(c->wsi);
    } else if (c->phase == PH_REPLAY && !c->rpc_pending && !c->wants_page && !c->waiting) {
        request_page(srv, c); /* paced by the client: the next page once this one is read */
    }
    return 0;
}

/* ---- resume ------------------------------------------------------------------ */

static struct client *client_by_serial(struct live_server *srv, uint64_t serial) {
    for (size_t i = 0; i < srv->n_channels; i++)
        for (struct client *c = srv->channels[i].clients; c; c = c->next)
            if (c->serial == serial)
                return c;
    return NULL;
}

static void resume_fail(struct live_server *srv, struct client *c, const char *why) {
    srv->replays_failed++;
    LOG(LOG_WARN, "resume failed serial=%" PRIu64 " reason=%s", c->serial, why);
    client_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "resume failed; retry with since");
}

/* Continues from the window at lseq from (or its oldest message, if that
 * is gone), after the replay page still queued. */
static void go_live(struct live_server *srv, struct client *c, uint64_t from) {
    struct live_window *w = &srv->channels[c->channel].win;

    c->phase = PH_LIVE;
    c->cursor = from < w->start ? w->start : from > w->end ? w->end : from;
    c->caught_up = w->end - c->cursor <= srv->cfg->live.client_queue;
    c->seen_until = w->end + srv->cfg->live.client_queue;
    c->waiting = c->wants_page = false;
    lws_set_timer_usecs(c->wsi, LWS_SET_TIMER_USEC_CANCEL);
    client_kick(srv, c);
}

/* Neither the window nor the store knows the position: a websocket client
 * is told with a close code it reconnects on without since; an SSE stream
 * gets a gap event and continues live from now. */
static void unknown_position(struct live_server *srv, struct client *c) {
    srv->unknown_positions++;
    LOG(LOG_INFO, "resume from an unknown position serial=%" PRIu64 " since=%.64s", c->serial,
        c->after);
    if (!c->sse) {
        client_close(c, LIVE_CLOSE_UNKNOWN_POSITION, "unknown position; reconnect without since");
        return;
    }
    c->gap = true;
    replay_clear(srv, c);
    /* Resuming from the moment it connected: what arrived while the id was
     * looked up is not lost too. */
    go_live(srv, c, c->arrived);
}

/* Starts a client at ?since=<id> (or Last-Event-ID): from the window when it
 * holds the id, else from the store. */
static void resume_start(struct live_server *srv, struct client *c, const char *since) {
    struct channel *ch = &srv->channels[c->channel];
    struct live_msg *m = live_window_find(&ch->win, since);

    snprintf(c->after, sizeof(c->after), "%s", since);
    if (m) {
        srv->window_resumes++;
        go_live(srv, c, m->lseq + 1);
        return;
    }
    if (!ch->rpc_exchange) {
        unknown_position(srv, c);
        return;
    }
    srv->replays_started++;
    c->phase = PH_REPLAY;
    c->page = 0;
    c->started_ms = now_ms();
    request_page(srv, c);
}

static void request_page(struct live_server *srv, struct client *c) {
    struct channel *ch = &srv->channels[c->channel];

    if (c->closing || c->rpc_pending)
        return;
    if (srv->rpc_inflight >= REPLAY_INFLIGHT_MAX) {
        c->wants_page = true;
        return;
    }
    c->page++;
    if (live_bus_request_replay(srv->bus, c->serial, c->page, c->channel, ch->rpc_exchange,
                                c->after, REPLAY_PAGE) < 0) {
        resume_fail(srv, c, "broker unavailable");
        return;
    }
    c->rpc_pending = true;
    srv->rpc_inflight++;
    lws_set_timer_usecs(c->wsi, (lws_usec_t)ch->rpc_timeout_ms * 1000);
}

/* Asks the store again after a pause. */
static void repoll(struct client *c, long ms) {
    c->waiting = true;
    lws_set_timer_usecs(c->wsi, (lws_usec_t)ms * 1000);
}

/* The replay reached the end of the store without meeting the window: true
 * when it may join the window anyway. With an empty window that is once the
 * messages published before the bind had time to be stored; with a
 * non-empty one, once its oldest message has waited long enough to be taken
 * as never stored. */
static bool may_join(const struct channel *ch) {
    int64_t now = now_ms();
    struct live_msg *first = live_window_at(&ch->win, ch->win.start);

    if (now - ch->bound_ms < SETTLE_MS)
        return false;
    return !first || now - first->at_ms >= STRAGGLE_MS;
}

/* May a stored message also come live later? Those near or after the
 * window's oldest message (by their UUIDv7 time) may. */
static bool may_come_live(const struct channel *ch, const struct live_msg *m) {
    int64_t t = live_uuid7_ms(m->id), floor_ms;
    struct live_msg *first = live_window_at(&ch->win, ch->win.start);

    if (t == 0)
        return true;
    floor_ms = first && live_uuid7_ms(first->id) ? live_uuid7_ms(first->id) : ch->bound_wall_ms;
    return t >= floor_ms - MARGIN_MS;
}

/* A page of stored messages arrived: queue those the window does not hold;
 * once the store reaches a message the window holds, continue from the
 * window. */
static void on_replay(struct live_server *srv, struct live_event *ev) {
    struct client *c = client_by_serial(srv, ev->client);
    struct channel *ch;
    uint64_t join = UINT64_MAX;
    struct live_msg **n;

    if (!c || !c->rpc_pending || c->closing || ev->page != c->page)
        return; /* gone, or an answer that came after its timeout */
    ch = &srv->channels[c->channel];
    lws_set_timer_usecs(c->wsi, LWS_SET_TIMER_USEC_CANCEL);
    slot_release(srv, c);
    if (ev->error == 404) {
        /* The id is not (yet) stored. It may be in flight: it was pushed
         * live before its commit; or it arrived in the window meanwhile. */
        struct live_msg *m = live_window_find(&ch->win, c->after);
        if (m) {
            srv->window_resumes++;
            go_live(srv, c, m->lseq + 1);
        } else if (now_ms() - c->started_ms < LOOKUP_MS) {
            repoll(c, REPOLL_MS);
        } else {
            unknown_position(srv, c);
        }
        return;
    }
    if (ev->error) {
        if (++c->retries > RESUME_RETRIES) {
            resume_fail(srv, c, "rpc answered an error");
            return;
        }
        repoll(c, 250L << c->retries);
        return;
    }
    c->retries = 0;
    n = realloc(c->replay, (c->n_replay + ev->n_msgs + 1) * sizeof(*n));
    if (!n) {
        resume_fail(srv, c, "out of memory");
        return;
    }
    c->replay = n;
    for (size_t i = 0; i < ev->n_msgs; i++) {
        struct live_msg *m = ev->msgs[i], *hit = live_window_find(&ch->win, m->id);
        snprintf(c->after, sizeof(c->after), "%s", m->id);
        if (hit) {
            /* The window holds it: it goes out from there, in live order. */
            if (hit->lseq < join)
                join = hit->lseq;
            continue;
        }
        if (may_come_live(ch, m) && seen_add(c, m->id) < 0)
            LOG(LOG_DEBUG, "replayed id not remembered serial=%" PRIu64, c->serial);
        c->replay[c->n_replay++] = m;
        ev->msgs[i] = NULL;
        srv->queued++;
        srv->replayed_messages++;
    }
    if (join != UINT64_MAX)
        go_live(srv, c, join);
    else if (ev->n_msgs < REPLAY_PAGE && may_join(ch))
        go_live(srv, c, ch->bind_lseq);
    else if (ev->n_msgs < REPLAY_PAGE)
        repoll(c, REPOLL_MS); /* the end of the store for now: wait for it to reach the window */
    /* else: the next page is asked for once this one is written */
    if (c->n_replay > c->replay_pos) {
        client_kick(srv, c);
    } else if (c->phase == PH_REPLAY && !c->waiting) {
        request_page(srv, c);
    }
}

/* The client's timer: a request timed out, or a re-poll is due. */
static void on_timer(struct live_server *srv, struct client *c) {
    if (c->closing)
        return;
    if (c->rpc_pending) {
        slot_release(srv, c);
        if (++c->retries > RESUME_RETRIES) {
            resume_fail(srv, c, "rpc timeout");
            return;
        }
        request_page(srv, c);
        return;
    }
    if (c->waiting) {
        c->waiting = false;
        if (c->phase == PH_REPLAY)
            request_page(srv, c);
    }
}

/* ---- events from the bus ----------------------------------------------------- */

static void close_all(struct live_server *srv, int code, const char *reason) {
    for (size_t i = 0; i < srv->n_channels; i++)
        for (struct client *c = srv->channels[i].clients; c; c = c->next)
            client_close(c, code, reason);
}

static void drain_inbox(struct live_server *srv) {
    struct live_event *ev = live_inbox_take_all(&srv->inbox);

    while (ev) {
        struct live_event *next = ev->next;
        switch (ev->kind) {
        case LIVE_EV_MESSAGE: {
            struct channel *ch = &srv->channels[ev->msg->channel];
            struct live_msg *m = ev->msg;
            ev->msg = NULL;
            m->at_ms = now_ms();
            live_window_push(&ch->win, m);
            srv->messages_routed++;
            for (struct client *c = ch->clients; c; c = c->next)
                client_offer(srv, c, m);
            break;
        }
        case LIVE_EV_REPLAY:
            on_replay(srv, ev);
            break;
        case LIVE_EV_BUS_UP:
            srv->broker_up = true;
            for (size_t i = 0; i < srv->n_channels; i++) {
                struct channel *ch = &srv->channels[i];
                ch->bind_lseq = ch->win.end;
                ch->bound_ms = now_ms();
                {
                    struct timespec ts;
                    clock_gettime(CLOCK_REALTIME, &ts);
                    ch->bound_wall_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
                }
            }
            break;
        case LIVE_EV_BUS_DOWN:
            srv->broker_up = false;
            srv->restart_closes += srv->clients;
            close_all(srv, CLOSE_BROKER_LOST, "broker connection lost; resume with since");
            /* The live stream has a hole from now on: nobody may resume from
             * the window across it. */
            for (size_t i = 0; i < srv->n_channels; i++)
                live_window_clear(&srv->channels[i].win);
            break;
        }
        live_event_free(ev);
        ev = next;
    }
    flush_schedule(srv);
}

/* Keepalive is liveupdate's own, not libwebsockets': libwebsockets 4.1
 * answers a client's ping that arrives while its own keepalive ping is
 * pending with a pong that carries the still-masked payload, and clients
 * that check the payload (python-websockets) then drop the connection. Here
 * a websocket client silent for ping_interval gets a ping (written by us,
 * so libwebsockets' own pong path is left alone and answers every client
 * ping with its payload), and one silent for three intervals is cut off; an
 * SSE stream gets a comment line every interval, which keeps proxies from
 * closing it and finds dead peers (the write fails). */
static void beat_run(lws_sorted_usec_list_t *sul) {
    struct live_server *srv =
        (struct live_server *)((char *)sul - offsetof(struct live_server, beat_sul));
    int64_t now = now_ms(), iv = (int64_t)srv->cfg->live.ping_interval * 1000;

    for (size_t i = 0; i < srv->n_channels; i++)
        for (struct client *c = srv->channels[i].clients; c; c = c->next) {
            bool due = false;
            if (c->closing)
                continue;
            if (c->sse) {
                due = now - c->last_beat_ms >= iv;
                c->heartbeat = c->heartbeat || due;
            } else if (now - c->last_rx_ms >= 3 * iv) {
                srv->reaped++;
                LOG(LOG_INFO, "client silent for three ping intervals; closing serial=%" PRIu64,
                    c->serial);
                lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
                continue;
            } else if (now - c->last_rx_ms >= iv && now - c->last_beat_ms >= iv) {
                due = true;
                c->ping_due = true;
            }
            if (due) {
                c->last_beat_ms = now;
                if (!c->asked) {
                    c->asked = true;
                    lws_callback_on_writable(c->wsi);
                }
            }
        }
    lws_sul_schedule(srv->ctx, 0, &srv->beat_sul, beat_run,
                     iv < 1000 ? (lws_usec_t)iv * 1000 : LWS_US_PER_SEC);
}

/* ---- handshakes ---------------------------------------------------------------- */

/* Checks a resume position: 1 when valid (copied to out, LIVE_ID_MAX + 1
 * bytes), -1 when malformed (empty or not printable ASCII), -2 when longer
 * than any message id. */
static int since_check(const char *v, size_t n, char *out) {
    if (n == 0)
        return -1;
    if (n > LIVE_ID_MAX)
        return -2;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x21 || (unsigned char)v[i] > 0x7e)
            return -1;
    memcpy(out, v, n);
    out[n] = '\0';
    return 1;
}

/* Reads ?since= (or, for SSE, the Last-Event-ID header, which wins) into out
 * (LIVE_ID_MAX + 1 bytes). Returns 1 when given and valid, 0 when absent,
 * -1 when malformed, -2 when too long. */
static int since_arg(struct lws *wsi, char *out, bool sse) {
    char buf[1024];
    int rc = 0;

    out[0] = '\0';
    if (sse) {
        int n = lws_hdr_custom_length(wsi, "last-event-id:", 14);
        if (n > 0) {
            if (n >= (int)sizeof(buf))
                return -2;
            if (lws_hdr_custom_copy(wsi, buf, sizeof(buf), "last-event-id:", 14) < 0)
                return -1;
            return since_check(buf, strlen(buf), out);
        }
    }
    for (int i = 0;; i++) {
        int len = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (len <= 0)
            break;
        if (len >= (int)sizeof(buf)) {
            /* Too long to copy: find out whether it is ours. */
            char head[8];
            if (lws_hdr_copy_fragment(wsi, head, sizeof(head), WSI_TOKEN_HTTP_URI_ARGS, i) < 0 &&
                lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS) > 0)
                return -2;
            continue;
        }
        if (lws_hdr_copy_fragment(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_URI_ARGS, i) < 0)
            break;
        if (strncmp(buf, "since=", 6) == 0)
            rc = since_check(buf + 6, strlen(buf + 6), out);
        else if (strcmp(buf, "since") == 0)
            rc = -1;
        if (rc)
            return rc;
    }
    return 0;
}

static int path_of(struct lws *wsi, char *out, int len) {
    if (lws_hdr_copy(wsi, out, len, WSI_TOKEN_GET_URI) <= 0) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}

/* ---- who may open a channel (see common/auth.h) ------------------------------ */

/* Writes an error with a WWW-Authenticate challenge. Returns what the
 * callback must return. */
static int send_denied(struct lws *wsi, unsigned int status, const char *challenge,
                       const char *desc) {
    json_t *j = json_pack("{s:{s:i,s:s}}", "error", "code", (int)status, "description", desc);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    unsigned char hdr[LWS_PRE + 768];
    unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr);
    size_t len = text ? strlen(text) : 0;
    unsigned char *buf = text ? malloc(LWS_PRE + len) : NULL;
    int rc = -1;

    json_decref(j);
    if (!buf)
        goto out;
    if (lws_add_http_common_headers(wsi, status, "application/json", (lws_filepos_t)len, &p, end) ||
        (challenge[0] && lws_add_http_header_by_name(
                             wsi, (const unsigned char *)"www-authenticate:",
                             (const unsigned char *)challenge, (int)strlen(challenge), &p, end)) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        goto out;
    memcpy(buf + LWS_PRE, text, len);
    if (lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_HTTP_FINAL) != (int)len)
        goto out;
    rc = lws_http_transaction_completed(wsi) ? -1 : 1;
out:
    free(buf);
    free(text);
    return rc;
}

/* The rule of a channel: live_auth of its live endpoint (the first that has one). */
static const struct cfg_auth_rule *channel_rule(struct live_server *srv, int ch) {
    const struct cfg_auth_rule *rule = NULL;

    for (size_t i = 0; i < srv->cfg->n_endpoints; i++) {
        const struct cfg_endpoint *ep = &srv->cfg->endpoints[i];

        if (!ep->live || strcmp(ep->path, srv->channels[ch].path) != 0)
            continue;
        if (ep->live_auth.given)
            return &ep->live_auth;
        if (!rule)
            rule = &ep->live_auth;
    }
    return rule;
}

/* Checks the Origin against auth.origins and the credentials (access_token=
 * or api_key= in the URL, as browsers cannot set headers on a websocket or
 * an EventSource; or the Authorization and X-API-Key headers) against the
 * channel's rule; ws: a websocket handshake, whose shape is checked too.
 * Returns 0 to go on, else 1 (answer sent) or -1 (connection to close). */
static int check_access(struct live_server *srv, struct lws *wsi, int ch, bool ws) {
    const struct cfg *cfg = srv->cfg;
    char origin[256], tok[4096], key[256], hdr[4096], why[200], challenge[200];
    struct auth_creds cr = {0};
    struct auth_principal p;
    enum auth_outcome out;

    /* libwebsockets closes a handshake it cannot complete without an answer
     * (a subprotocol it does not serve, no key): refuse those here, in JSON. */
    if (ws && lws_hdr_copy(wsi, hdr, (int)sizeof(hdr), WSI_TOKEN_PROTOCOL) > 0 &&
        !strstr(hdr, "fpesa-live")) {
        srv->rejected_upgrades++;
        return send_denied(wsi, 400, "",
                           "unsupported websocket subprotocol (offer fpesa-live, or none)");
    }
    if (ws && lws_hdr_total_length(wsi, WSI_TOKEN_KEY) <= 0) {
        srv->rejected_upgrades++;
        return send_denied(wsi, 400, "", "a websocket handshake needs Sec-WebSocket-Key");
    }
    if (cfg->auth.n_origins &&
        lws_hdr_copy(wsi, origin, (int)sizeof(origin), WSI_TOKEN_ORIGIN) > 0) {
        bool ok = false;

        for (size_t i = 0; i < cfg->auth.n_origins; i++)
            ok |= strcmp(cfg->auth.origins[i], "*") == 0 ||
                  strcasecmp(cfg->auth.origins[i], origin) == 0;
        if (!ok) {
            srv->rejected_upgrades++;
            return send_denied(wsi, 403, "", "this Origin may not open websockets here");
        }
    }
    if (!srv->auth)
        return 0;
    if (lws_get_urlarg_by_name(wsi, "access_token=", tok, (int)sizeof(tok)))
        cr.bearer = strchr(tok, '=') ? strchr(tok, '=') + 1 : tok;
    else if (lws_hdr_copy(wsi, hdr, (int)sizeof(hdr), WSI_TOKEN_HTTP_AUTHORIZATION) > 7 &&
             strncasecmp(hdr, "Bearer ", 7) == 0)
        cr.bearer = hdr + 7;
    if (lws_get_urlarg_by_name(wsi, "api_key=", key, (int)sizeof(key)))
        cr.api_key = strchr(key, '=') ? strchr(key, '=') + 1 : key;
    else if (lws_hdr_custom_copy(wsi, key, (int)sizeof(key), "x-api-key:", 10) > 0)
        cr.api_key = key;
    out = auth_check(srv->auth, channel_rule(srv, ch), &cr, &p, why, sizeof(why));
    if (out == AUTH_OK) {
        LOG(LOG_DEBUG, "channel opened channel=%s principal=%s", srv->channels[ch].path, p.name);
        return 0;
    }
    srv->rejected_upgrades++;
    auth_challenge(srv->auth, channel_rule(srv, ch), out, cr.api_key || cr.bearer, challenge,
                   sizeof(challenge));
    return send_denied(wsi, (unsigned int)out, challenge, why);
}

static const char *since_error(int s) {
    return s == -2 ? "since is longer than any message id (at most 200 characters)"
                   : "since must be a message id: 1 to 200 printable ASCII characters";
}

static int confirm_upgrade(struct live_server *srv, struct lws *wsi) {
    char path[512], since[LIVE_ID_MAX + 1];
    int ch, s;

    if (path_of(wsi, path, sizeof(path)) < 0) {
        srv->rejected_upgrades++;
        return send_error(wsi, 400, "a websocket handshake must be a GET", false) < 0 ? -1 : 1;
    }
    ch = channel_find(srv, path, NULL, 0);
    if (ch < 0) {
        srv->rejected_upgrades++;
        return send_error(wsi, 404, "no such channel", false) < 0 ? -1 : 1;
    }
    s = check_access(srv, wsi, ch, true);
    if (s != 0)
        return s;
    s = since_arg(wsi, since, false);
    if (s < 0) {
        srv->rejected_upgrades++;
        return send_error(wsi, 400, since_error(s), false) < 0 ? -1 : 1;
    }
    if (srv->stopping || !srv->broker_up) {
        srv->rejected_upgrades++;
        return send_error(wsi, 503, "broker unavailable; retry shortly", false) < 0 ? -1 : 1;
    }
    return 0;
}

/* Links a new client (websocket or SSE) to its channel and starts it live or
 * resuming. Returns 0, or -1 when out of memory. */
static int client_start(struct live_server *srv, struct lws *wsi, struct client *c, int ch_index,
                        const char *filter, const char *since, bool sse) {
    struct channel *ch = &srv->channels[ch_index];

    memset(c, 0, sizeof(*c));
    c->wsi = wsi;
    c->channel = ch_index;
    c->sse = sse;
    if (filter && *filter) {
        c->filter = strdup(filter);
        if (!c->filter)
            return -1;
    }
    c->serial = ++srv->next_serial;
    c->next = ch->clients;
    if (ch->clients)
        ch->clients->prev = c;
    ch->clients = c;
    ch->n_clients++;
    c->linked = true;
    srv->clients++;
    if (sse)
        srv->sse_clients++;
    {
        /* Frames go out as soon as they are written; no Nagle delay. */
        int one = 1, fd = (int)lws_get_socket_fd(wsi);
        if (fd >= 0)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    srv->connections_total++;
    c->last_rx_ms = c->last_beat_ms = now_ms();
    c->phase = PH_LIVE;
    c->cursor = c->arrived = ch->win.end;
    c->caught_up = true;
    if (since && *since)
        resume_start(srv, c, since);
    LOG(LOG_DEBUG, "client connected serial=%" PRIu64 " channel=%s sse=%d since=%.64s", c->serial,
        ch->path, sse, since && *since ? since : "-");
    flush_schedule(srv);
    return 0;
}

static int on_established(struct live_server *srv, struct lws *wsi, struct client *c) {
    char path[512], since[LIVE_ID_MAX + 1], filter[1024];
    int ch;

    memset(c, 0, sizeof(*c));
    c->channel = -1;
    path_of(wsi, path, sizeof(path));
    ch = channel_find(srv, path, filter, sizeof(filter));
    if (ch < 0)
        return -1; /* confirm_upgrade refused it already */
    if (since_arg(wsi, since, false) < 0)
        since[0] = '\0';
    return client_start(srv, wsi, c, ch, filter, since, false);
}

/* GET /events/v1/<channel>: answers the headers of an event stream and
 * makes the connection a client. Returns what the HTTP callback must. */
static int sse_open(struct live_server *srv, struct lws *wsi, struct client *c, const char *path) {
    char since[LIVE_ID_MAX + 1], filter[1024];
    unsigned char hdr[LWS_PRE + 512];
    unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr);
    int ch, s;

    ch = channel_find(srv, path, filter, sizeof(filter));
    if (ch < 0) {
        srv->rejected_upgrades++;
        return send_error(wsi, 404, "no such channel", false);
    }
    /* The same credentials and Origin rules as the channel's websocket. */
    s = check_access(srv, wsi, ch, false);
    if (s != 0)
        return s < 0 ? -1 : 0;
    s = since_arg(wsi, since, true);
    if (s < 0) {
        srv->rejected_upgrades++;
        return send_error(wsi, 400,
                          s == -2 ? "Last-Event-ID or since is longer than any message id (at "
                                    "most 200 characters)"
                                  : "Last-Event-ID or since must be a message id: 1 to 200 "
                                    "printable ASCII characters",
                          false);
    }
    if (srv->stopping || !srv->broker_up) {
        srv->rejected_upgrades++;
        return send_error(wsi, 503, "broker unavailable; retry shortly", false);
    }
    if (!c)
        return send_error(wsi, 500, "no client state", false);
    if (lws_add_http_common_headers(wsi, HTTP_STATUS_OK, "text/event-stream",
                                    LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"x-accel-buffering:",
                                    (const unsigned char *)"no", 2, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    lws_http_mark_sse(wsi);
    if (client_start(srv, wsi, c, ch, filter, s > 0 ? since : NULL, true) < 0)
        return -1;
    /* The reconnection delay EventSource uses after a drop. */
    c->heartbeat = false;
    {
        static const char retry[] = "retry: 1000\n\n";
        unsigned char buf[LWS_PRE + sizeof(retry)];
        memcpy(buf + LWS_PRE, retry, sizeof(retry) - 1);
        if (lws_write(wsi, buf + LWS_PRE, sizeof(retry) - 1, LWS_WRITE_HTTP) < 0)
            return -1;
    }
    c->asked = true;
    lws_callback_on_writable(wsi);
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
    struct live_server *srv = server_of(wsi);
    struct client *c = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP: {
        char path[512];
        snprintf(path, sizeof(path), "%.*s", (int)(in ? strlen(in) : 0), in ? (char *)in : "");
        if (strncmp(path, "/events/v1/", 11) == 0 &&
            lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0)
            return sse_open(srv, wsi, c, path);
        return serve_http(wsi, path);
    }
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!c || !c->linked || !c->sse)
            return 0;
        return client_write(srv, c);
    case LWS_CALLBACK_CLOSED_HTTP:
        if (c && c->linked && c->sse)
            client_unlink(srv, c);
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return confirm_upgrade(srv, wsi);
    case LWS_CALLBACK_ESTABLISHED:
        return on_established(srv, wsi, c);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!c || !c->linked)
            return 0;
        return client_write(srv, c);
    case LWS_CALLBACK_RECEIVE_PONG:
        if (c && c->linked)
            c->last_rx_ms = now_ms();
        return 0;
    case LWS_CALLBACK_RECEIVE:
        if (!c || !c->linked)
            return 0;
        c->last_rx_ms = now_ms();
        c->rx_len += len;
        if (c->rx_len + lws_remaining_packet_payload(wsi) > srv->cfg->live.max_frame) {
            srv->oversize_closes++;
            lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                             (unsigned char *)"frame too large", 15);
            return -1;
        }
        if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
            c->rx_len = 0;
            srv->frames_ignored++;
        }
        return 0;
    case LWS_CALLBACK_TIMER:
        if (c && c->linked)
            on_timer(srv, c);
        flush_schedule(srv);
        return 0;
    case LWS_CALLBACK_CLOSED:
        if (c && c->linked)
            client_unlink(srv, c);
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (srv->reload_asked && !srv->stop_asked) {
            srv->reload_asked = 0;
            reload(srv);
        }
        if (srv->stop_asked && !srv->stopping) {
            srv->stopping = true;
            LOG(LOG_INFO, "shutting down clients=%zu", srv->clients);
            close_all(srv, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
        }
        drain_inbox(srv);
        return 0;
    default:
        break;
    }
    return 0;
}

/* ---- setup ------------------------------------------------------------------- */

static int channels_build(struct live_server *srv) {
    const struct cfg *cfg = srv->cfg;
    size_t n = cfg->n_endpoints;

    /* One more channel than endpoints: the original fpesa's, when asked for. */
    srv->channels = calloc(n + 1, sizeof(*srv->channels));
    srv->exchanges = calloc(n ? n : 1, sizeof(char *));
    srv->exchange_channel = calloc(n ? n : 1, sizeof(int));
    srv->rpc_exchanges = calloc(n ? n : 1, sizeof(char *));
    srv->channels_cap = n + 1 + RELOAD_CHANNELS;
    srv->channel_paths = calloc(srv->channels_cap, sizeof(char *));
    if (!srv->channels || !srv->exchanges || !srv->exchange_channel || !srv->rpc_exchanges ||
        !srv->channel_paths)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const struct cfg_endpoint *ep = &cfg->endpoints[i];
        size_t ch;
        if (!ep->live)
            continue;
        for (ch = 0; ch < srv->n_channels; ch++)
            if (strcmp(srv->channels[ch].path, ep->path) == 0)
                break;
        if (ch == srv->n_channels) {
            size_t cap = cfg->live.client_queue * 4;
            srv->channels[ch].path = strdup(ep->path);
            if (!srv->channels[ch].path)
                return -1;
            srv->channels[ch].has_params = strchr(ep->path, '{') != NULL;
            if (live_window_init(&srv->channels[ch].win, cap < 16384 ? 16384 : cap, WINDOW_BYTES) <
                0)
                return -1;
            srv->channel_paths[ch] = srv->channels[ch].path;
            srv->n_channels++;
        }
        srv->exchanges[srv->n_exchanges] = ep->exchange;
        srv->exchange_channel[srv->n_exchanges] = (int)ch;
        srv->n_exchanges++;
    }
    /* compat fpesa-python: the original's live channel, on "/" (its frontend
     * opens /ws/v1/, which the proxy hands on as "/"): every live message as
     * a binary frame holding only its data. It has no resume (the original
     * had none) and exists only when some endpoint is live and none is "/"
     * itself. */
    srv->original_channel = -1;
    if (cfg->compat == CFG_COMPAT_FPESA_PYTHON && srv->n_channels > 0 &&
        channel_find(srv, "/", NULL, 0) < 0) {
        size_t cap = cfg->live.client_queue * 4;

        srv->channels[srv->n_channels].path = strdup("/");
        if (!srv->channels[srv->n_channels].path)
            return -1;
        srv->channels[srv->n_channels].has_params = false;
        if (live_window_init(&srv->channels[srv->n_channels].win, cap < 16384 ? 16384 : cap,
                             WINDOW_BYTES) < 0)
            return -1;
        srv->channel_paths[srv->n_channels] = srv->channels[srv->n_channels].path;
        srv->original_channel = (int)srv->n_channels++;
    }
    /* A channel can be resumed when its path also has a GET rpc: the stored messages. */
    for (size_t ch = 0; ch < srv->n_channels; ch++) {
        for (size_t i = 0; i < n; i++) {
            const struct cfg_endpoint *ep = &cfg->endpoints[i];
            if (ep->mode == CFG_MODE_RPC && strcmp(ep->method, "GET") == 0 &&
                strcmp(ep->path, srv->channels[ch].path) == 0) {
                srv->channels[ch].rpc_exchange = ep->exchange;
                srv->channels[ch].rpc_timeout_ms = ep->timeout_ms > 0 ? ep->timeout_ms : 5000;
                srv->rpc_exchanges[srv->n_rpc_exchanges++] = ep->exchange;
                break;
            }
        }
    }
    return srv->n_channels ? 0 : -1;
}

/* The channel of path, removed or not, or -1. */
static int channel_exact(const struct live_server *srv, const char *path) {
    for (size_t i = 0; i < srv->n_channels; i++)
        if (strcmp(srv->channels[i].path, path) == 0)
            return (int)i;
    return -1;
}

/* SIGHUP, on the service thread: reads the file again. A file with
 * problems is refused (each logged as file:line:col) and nothing changes.
 * From a good one, channels of new live endpoints are added (the bus binds
 * their exchanges), channels whose endpoint is gone take no new clients
 * (their clients stay until they leave), and the auth keys and rules are
 * those of the new file. Every connected client of a channel that still
 * exists stays connected. */
static void reload(struct live_server *srv) {
    char *errs = NULL;
    size_t errs_len = 0, added = 0, removed = 0, live = 0;
    FILE *ef = open_memstream(&errs, &errs_len);
    struct cfg *cfg, **olds;
    struct channel *chs;
    struct auth *auth;
    bool failed = false;

    LOG(LOG_INFO, "reloading signal=HUP file=%s", srv->config_path);
    cfg = cfg_load(srv->config_path, ef ? ef : stderr);
    if (ef)
        fclose(ef);
    if (!cfg) {
        log_reload_refused(errs);
        free(errs);
        return;
    }
    free(errs);
    for (size_t i = 0; i < cfg->n_endpoints; i++)
        live += cfg->endpoints[i].live;
    auth = auth_new(cfg, &failed);
    olds = realloc(srv->old_cfgs, (srv->n_old_cfgs + 1) * sizeof(*olds));
    chs = realloc(srv->channels, (srv->channels_cap + 1) * sizeof(*chs));
    if (olds)
        srv->old_cfgs = olds;
    if (chs)
        srv->channels = chs;
    if (live == 0 || failed || !olds || !chs) {
        LOG(LOG_ERROR, "reload refused: %s; the running configuration stays",
            live == 0 ? "no endpoint has live: true"
            : failed  ? "the auth keys cannot be loaded"
                      : "out of memory");
        auth_free(auth);
        cfg_free(cfg);
        return;
    }
    /* New channels; channels of new exchanges. */
    for (size_t i = 0; i < cfg->n_endpoints; i++) {
        const struct cfg_endpoint *ep = &cfg->endpoints[i];
        const char *rpc = NULL;
        long rpc_timeout = 5000;
        int ch;

        if (!ep->live)
            continue;
        for (size_t k = 0; k < cfg->n_endpoints; k++) {
            const struct cfg_endpoint *g = &cfg->endpoints[k];
            if (g->mode == CFG_MODE_RPC && strcmp(g->method, "GET") == 0 &&
                strcmp(g->path, ep->path) == 0) {
                rpc = g->exchange;
                rpc_timeout = g->timeout_ms > 0 ? g->timeout_ms : 5000;
            }
        }
        ch = channel_exact(srv, ep->path);
        if (ch >= 0) {
            if (srv->channels[ch].removed)
                LOG(LOG_INFO, "channel back path=%s", ep->path);
            srv->channels[ch].removed = false;
            continue;
        }
        if (srv->n_channels + 1 >= srv->channels_cap) {
            LOG(LOG_ERROR,
                "reload: no room for channel path=%s (at most %d added by reloads); "
                "restart to serve it",
                ep->path, RELOAD_CHANNELS);
            continue;
        }
        {
            struct channel *c = &srv->channels[srv->n_channels];
            size_t cap = cfg->live.client_queue * 4;

            memset(c, 0, sizeof(*c));
            c->path = strdup(ep->path);
            if (!c->path ||
                live_window_init(&c->win, cap < 16384 ? 16384 : cap, WINDOW_BYTES) < 0) {
                free(c->path);
                LOG(LOG_ERROR, "reload: out of memory for channel path=%s", ep->path);
                continue;
            }
            c->has_params = strchr(ep->path, '{') != NULL;
            c->rpc_exchange = rpc;
            c->rpc_timeout_ms = rpc_timeout;
            /* The bus thread reads this entry only after live_bus_add (its
             * lock orders the two). */
            srv->channel_paths[srv->n_channels] = c->path;
            ch = (int)srv->n_channels++;
        }
        if (live_bus_add(srv->bus, ep->exchange, ch, rpc) < 0)
            LOG(LOG_ERROR, "reload: out of memory binding exchange=%s", ep->exchange);
        added++;
        LOG(LOG_INFO, "channel added path=%s exchange=%s", ep->path, ep->exchange);
    }
    /* Channels whose endpoint is gone take no new clients. */
    for (size_t ch = 0; ch < srv->n_channels; ch++) {
        bool found = (int)ch == srv->original_channel;
        for (size_t i = 0; i < cfg->n_endpoints && !found; i++)
            found = cfg->endpoints[i].live &&
                    strcmp(cfg->endpoints[i].path, srv->channels[ch].path) == 0;
        if (!found && !srv->channels[ch].removed) {
            srv->channels[ch].removed = true;
            removed++;
            LOG(LOG_INFO, "channel removed path=%s clients_kept=%zu", srv->channels[ch].path,
                srv->channels[ch].n_clients);
        }
    }
    auth_free(srv->auth);
    srv->auth = auth;
    /* The old configuration stays: exchange and rpc names are borrowed from it. */
    srv->old_cfgs[srv->n_old_cfgs++] = (struct cfg *)srv->cfg;
    srv->cfg = cfg;
    LOG(LOG_INFO, "reloaded file=%s channels=%zu added=%zu removed=%zu clients=%zu",
        srv->config_path, srv->n_channels, added, removed, srv->clients);
}

void live_server_reload(struct live_server *srv) {
    srv->reload_asked = 1;
    if (srv->ctx)
        lws_cancel_service(srv->ctx);
}

void live_server_set_config_path(struct live_server *srv, const char *path) {
    srv->config_path = path;
}

static void wake(void *arg) {
    struct live_server *srv = arg;

    lws_cancel_service(srv->ctx);
}

/* tx_packet_size must be set: left at 0, libwebsockets caps every send() at
 * rx_buffer_size (512 bytes here) and keeps the rest of a batch in its own
 * buffer, sent 512 bytes per trip through the event loop, during which the
 * client's queue is not served. */
static const struct lws_protocols protocols[] = {
    {"fpesa-live", callback, sizeof(struct client), 512, 0, NULL, SCRATCH_SIZE},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_logger(int level, const char *line) {
    size_t n = strlen(line);

    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    LOG(level == LLL_ERR ? LOG_ERROR : LOG_WARN, "lws %.*s", (int)n, line);
}

/* True when nothing listens on host:port (connections in TIME_WAIT do not count). */
static bool port_is_free(const char *host, int port) {
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    bool ok;

    if (fd < 0)
        return true; /* let the real bind report the problem */
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        sa.sin_addr.s_addr = htonl(INADDR_ANY);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno != EADDRINUSE;
    close(fd);
    return ok;
}

struct live_server *live_server_new(const struct cfg *cfg) {
    struct live_server *srv = calloc(1, sizeof(*srv));
    struct lws_context_creation_info info;
    struct live_bus_params bp;
    struct rlimit rl;
    char port_desc[32];

    if (!srv)
        return NULL;
    srv->cfg = cfg;
    live_inbox_init(&srv->inbox);
    {
        bool failed;

        srv->auth = auth_new(cfg, &failed);
        if (failed) {
            LOG(LOG_ERROR, "cannot load the keys of the auth section");
            goto out_free;
        }
    }
    if (channels_build(srv) < 0) {
        LOG(LOG_ERROR, "no endpoint has live: true; nothing to serve");
        goto out_free;
    }
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_logger);

    /* Keepalive is ours (beat_run): libwebsockets' own is turned off. */
    srv->retry.secs_since_valid_ping = 0;
    srv->retry.secs_since_valid_hangup = 0;

    memset(&info, 0, sizeof(info));
    info.port = cfg->live.port;
    info.iface = cfg->live.host;
    info.protocols = protocols;
    info.user = srv;
    /* libwebsockets binds without SO_REUSEADDR, so a restart fails while
     * connections of the previous process sit in TIME_WAIT. It may bind with
     * SO_REUSEPORT instead, which would also let two instances share the port
     * silently; port_is_free() refuses that case first. */
    if (!port_is_free(cfg->live.host, cfg->live.port)) {
        LOG(LOG_ERROR, "address in use host=%s port=%d", cfg->live.host, cfg->live.port);
        goto out_free;
    }
    info.options = LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND | LWS_SERVER_OPTION_DISABLE_IPV6 |
                   LWS_SERVER_OPTION_ALLOW_LISTEN_SHARE;
    info.retry_and_idle_policy = &srv->retry;
    info.timeout_secs = 20;
    info.max_http_header_pool = 256;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        info.fd_limit_per_thread = (unsigned int)(rl.rlim_cur > 200000 ? 200000 : rl.rlim_cur);
    info.count_threads = 1;
    srv->ctx = lws_create_context(&info);
    if (!srv->ctx) {
        LOG(LOG_ERROR, "cannot listen host=%s port=%d", cfg->live.host, cfg->live.port);
        goto out_free;
    }

    lws_sul_schedule(srv->ctx, 0, &srv->beat_sul, beat_run,
                     (lws_usec_t)cfg->live.ping_interval * LWS_US_PER_SEC);

    memset(&bp, 0, sizeof(bp));
    bp.url = cfg->bus.url;
    bp.heartbeat = cfg->bus.heartbeat;
    bp.n_exchanges = srv->n_exchanges;
    bp.exchanges = srv->exchanges;
    bp.exchange_channel = srv->exchange_channel;
    bp.channel_paths = srv->channel_paths;
    bp.n_rpc_exchanges = srv->n_rpc_exchanges;
    bp.rpc_exchanges = srv->rpc_exchanges;
    bp.pre = LWS_PRE;
    bp.transient = !cfg_declare_durable(cfg);
    bp.original_channel = srv->original_channel;
    bp.inbox = &srv->inbox;
    bp.wake = wake;
    bp.wake_arg = srv;
    srv->bus = live_bus_start(&bp);
    if (!srv->bus) {
        LOG(LOG_ERROR, "cannot start the bus thread");
        goto out_free;
    }
    snprintf(port_desc, sizeof(port_desc), "%d", cfg->live.port);
    LOG(LOG_INFO, "listening host=%s port=%s channels=%zu client_queue=%zu", cfg->live.host,
        port_desc, srv->n_channels, cfg->live.client_queue);
    return srv;
out_free:
    live_server_free(srv);
    return NULL;
}

int live_server_run(struct live_server *srv) {
    while (!(srv->stopping && srv->clients == 0)) {
        if (lws_service(srv->ctx, 0) < 0)
            break;
    }
    return 0;
}

void live_server_shutdown(struct live_server *srv) {
    srv->stop_asked = 1;
    if (srv->ctx)
        lws_cancel_service(srv->ctx);
}

void live_server_free(struct live_server *srv) {
    if (!srv)
        return;
    live_bus_stop(srv->bus);
    if (srv->ctx)
        lws_context_destroy(srv->ctx);
    live_inbox_fini(&srv->inbox);
    for (size_t i = 0; i < srv->n_channels; i++) {
        free(srv->channels[i].path);
        live_window_fini(&srv->channels[i].win);
    }
    free(srv->channels);
    free(srv->exchanges);
    free(srv->exchange_channel);
    free(srv->rpc_exchanges);
    free(srv->channel_paths);
    auth_free(srv->auth);
    /* The start's configuration (old_cfgs[0] once replaced) is the
     * caller's; those of reloads are the server's. */
    if (srv->n_old_cfgs > 0) {
        for (size_t i = 1; i < srv->n_old_cfgs; i++)
            cfg_free(srv->old_cfgs[i]);
        cfg_free((struct cfg *)srv->cfg);
    }
    free(srv->old_cfgs);
    free(srv);
}
