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
#include <sys/resource.h>

#include <libwebsockets.h>

#include "buf.h"
#include "bus.h"
#include "log.h"

/* Stored messages asked for per resume request. */
#define REPLAY_PAGE 100
/* Live messages are flushed to their clients at most this often (µs). A
 * message that arrives when the last flush is older than that goes out at
 * once; under load, the messages arriving within one interval share a write
 * per client instead of one write per frame each. */
#define FLUSH_US 1000
/* Bytes of frames written to one client per writable callback. */
#define SCRATCH_SIZE (64 * 1024)
/* Close code on broker loss: 1014 "Bad Gateway" in the IANA registry (the
 * upstream failed). 1012 "Service Restart" would do too, but common client
 * libraries refuse it as invalid, and libwebsockets has no name for either. */
#define CLOSE_BROKER_LOST 1014

struct client;

struct channel {
    char *path;               /* endpoint path, e.g. "/messages/" */
    const char *rpc_exchange; /* GET rpc endpoint of the same path (resume), or NULL */
    long rpc_timeout_ms;
    struct client *clients; /* doubly linked */
    size_t n_clients;
};

struct client {
    struct lws *wsi;
    struct client *prev, *next;
    uint64_t serial;
    int channel; /* -1 until established */
    bool linked;

    /* The live queue: a ring of references, grown on demand up to client_queue. */
    struct live_msg **ring;
    size_t cap, head, count;

    /* Resume: stored messages to send before the ring. */
    bool pending;             /* waiting for the rpc; the ring is held back */
    struct live_msg **replay; /* references, oldest first */
    size_t n_replay, replay_pos, replay_cap;
    char **seen; /* ids replayed, sorted: live copies are skipped */
    size_t n_seen;
    char after[128]; /* id the next page starts after */
    int page;
    long replayed;

    bool dirty; /* has frames and waits for the next flush to ask for writable */
    bool asked; /* a writable callback is asked for and not served yet */
    bool closing;
    int close_code;
    const char *close_reason;
    size_t rx_len; /* bytes of the message being received */
};

struct live_server {
    const struct cfg *cfg;
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
    bool stopping;
    bool broker_up;
    uint64_t next_serial;

    /* Metrics, owned by the service thread. */
    size_t clients;
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
    unsigned long long restart_closes;
    unsigned long long rejected_upgrades;
    size_t queued; /* references held in every ring and replay list */

    lws_sorted_usec_list_t flush_sul; /* pending flush of dirty clients */
    bool flush_scheduled;
    bool any_dirty;        /* some client became dirty since the last flush */
    lws_usec_t last_flush; /* when the last flush ran */

    unsigned char scratch[LWS_PRE + SCRATCH_SIZE]; /* batches frames for one write */
};

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

/* The channel a request path names: "/messages/", also as "/ws/v1/messages/"
 * (when reached without the proxy's prefix stripping) or without the final
 * slash. -1 when none. */
static int channel_find(struct live_server *srv, const char *path) {
    if (strncmp(path, "/ws/v1/", 7) == 0)
        path += 6;
    for (size_t i = 0; i < srv->n_channels; i++) {
        const char *cp = srv->channels[i].path;
        size_t n = strlen(path), m = strlen(cp);
        if (strcmp(cp, path) == 0)
            return (int)i;
        if (m == n + 1 && cp[m - 1] == '/' && strncmp(cp, path, n) == 0)
            return (int)i;
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
            size_t d = c->count + (c->n_replay - c->replay_pos);
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
            "# HELP liveupdate_queued_messages Message references queued for all clients.\n"
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
    if (channel_find(srv, path) >= 0)
        return send_error(wsi, 426,
                          "this is a websocket channel: connect with a websocket client "
                          "(Upgrade: websocket), optionally with ?since=<last id>",
                          true);
    return send_error(wsi, 404, "no such channel", false);
}

/* ---- client queues ----------------------------------------------------------- */

static void client_close(struct client *c, int code, const char *reason);
static void drain_inbox(struct live_server *srv);

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

static void ring_clear(struct live_server *srv, struct client *c) {
    while (c->count) {
        live_msg_unref(c->ring[c->head]);
        c->head = (c->head + 1) % c->cap;
        c->count--;
        srv->queued--;
    }
}

static void replay_clear(struct live_server *srv, struct client *c) {
    for (size_t i = c->replay_pos; i < c->n_replay; i++) {
        live_msg_unref(c->replay[i]);
        srv->queued--;
    }
    free(c->replay);
    c->replay = NULL;
    c->n_replay = c->replay_pos = c->replay_cap = 0;
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

static int ring_push(struct live_server *srv, struct client *c, struct live_msg *m) {
    if (c->count == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 8;
        struct live_msg **n;
        if (ncap > srv->cfg->live.client_queue)
            ncap = srv->cfg->live.client_queue;
        n = malloc(ncap * sizeof(*n));
        if (!n)
            return -1;
        for (size_t i = 0; i < c->count; i++)
            n[i] = c->ring[(c->head + i) % c->cap];
        free(c->ring);
        c->ring = n;
        c->cap = ncap;
        c->head = 0;
    }
    c->ring[(c->head + c->count) % c->cap] = live_msg_ref(m);
    c->count++;
    srv->queued++;
    return 0;
}

/* Offers a live message to a client: queued, skipped as already replayed, or
 * the client is closed because its queue is full. */
static void client_offer(struct live_server *srv, struct client *c, struct live_msg *m) {
    if (c->closing)
        return;
    if (seen_has(c, m->id))
        return;
    if (c->count >= srv->cfg->live.client_queue) {
        srv->slow_drops++;
        LOG(LOG_WARN, "client too slow; closing serial=%" PRIu64 " queued=%zu", c->serial,
            c->count);
        client_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too slow; resume with since");
        return;
    }
    if (ring_push(srv, c, m) < 0) {
        client_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
        return;
    }
    if (!c->pending && !c->dirty && !c->asked) {
        c->dirty = true;
        srv->any_dirty = true;
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
    ring_clear(srv, c);
    replay_clear(srv, c);
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
    c->linked = false;
    ring_clear(srv, c);
    free(c->ring);
    c->ring = NULL;
    c->cap = 0;
    replay_clear(srv, c);
    seen_clear(c);
}

/* The next queued message (replayed ones first), or NULL; peek only. */
static struct live_msg *client_peek(struct client *c) {
    if (c->replay_pos < c->n_replay)
        return c->replay[c->replay_pos];
    return c->count ? c->ring[c->head] : NULL;
}

static void client_pop(struct live_server *srv, struct client *c) {
    struct live_msg *m;

    if (c->replay_pos < c->n_replay) {
        m = c->replay[c->replay_pos++];
        if (c->replay_pos == c->n_replay)
            c->replay_pos = c->n_replay = 0; /* kept allocated: pages are small */
    } else {
        m = c->ring[c->head];
        c->head = (c->head + 1) % c->cap;
        c->count--;
    }
    srv->queued--;
    srv->frames_out++;
    srv->bytes_out += m->len;
    live_msg_unref(m);
}

/* Sends queued frames: replayed ones first, then live ones. Frames already
 * carry their header (buf.h), so a burst of them is copied into one buffer
 * and written at once: one send per client per wakeup rather than one per
 * message, which is what lets one thread feed thousands of clients. */
static int client_write(struct live_server *srv, struct client *c) {
    unsigned char *out = srv->scratch + LWS_PRE;
    size_t used = 0;
    struct live_msg *m;

    /* Messages that arrived while this round of writes was under way go
     * out in it, to the clients not written yet, instead of waiting for
     * the round to end before they are even queued. */
    if (live_inbox_nonempty(&srv->inbox))
        drain_inbox(srv);
    if (c->closing) {
        size_t n = strlen(c->close_reason);
        lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
                         (unsigned char *)c->close_reason, n);
        return -1;
    }
    c->asked = false;
    if (c->pending)
        return 0;
    m = client_peek(c);
    if (m && live_msg_frame_len(m) > SCRATCH_SIZE) {
        /* Too large to batch: let lws frame it from the shared buffer. */
        if (lws_write(c->wsi, live_msg_payload(m), m->len,
                      m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) < 0)
            return -1;
        client_pop(srv, c);
    } else {
        while ((m = client_peek(c)) && used + live_msg_frame_len(m) <= SCRATCH_SIZE) {
            memcpy(out + used, live_msg_frame(m), live_msg_frame_len(m));
            used += live_msg_frame_len(m);
            client_pop(srv, c);
        }
        /* Already framed: written as raw bytes on the connection. */
        if (used && lws_write(c->wsi, out, used, LWS_WRITE_RAW) < (int)used)
            return -1;
    }
    if (client_peek(c)) {
        c->asked = true;
        lws_callback_on_writable(c->wsi);
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
    c->pending = false;
    lws_set_timer_usecs(c->wsi, LWS_SET_TIMER_USEC_CANCEL);
    client_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "resume failed; retry with since");
}

static void resume_request(struct live_server *srv, struct client *c) {
    struct channel *ch = &srv->channels[c->channel];
    long left = srv->cfg->live.resume_limit - c->replayed;
    long limit = left < REPLAY_PAGE ? left : REPLAY_PAGE;

    if (live_bus_request_replay(srv->bus, c->serial, c->page, c->channel, ch->rpc_exchange,
                                c->after, limit) < 0) {
        resume_fail(srv, c, "broker unavailable");
        return;
    }
    lws_set_timer_usecs(c->wsi, (lws_usec_t)ch->rpc_timeout_ms * 1000);
}

static void resume_done(struct client *c) {
    c->pending = false;
    c->asked = true;
    lws_set_timer_usecs(c->wsi, LWS_SET_TIMER_USEC_CANCEL);
    lws_callback_on_writable(c->wsi);
}

/* A page of stored messages arrived: queue it before the live ones, drop
 * live copies of what it contains, and ask for the next page if it was full. */
static void on_replay(struct live_server *srv, struct live_event *ev) {
    struct client *c = client_by_serial(srv, ev->client);
    char last[128] = "";
    long limit;

    if (!c || !c->pending || c->closing || ev->page != c->page)
        return; /* gone, or an answer that came after its timeout */
    if (ev->error) {
        resume_fail(srv, c, "rpc answered an error");
        return;
    }
    limit = srv->cfg->live.resume_limit - c->replayed;
    if (limit > REPLAY_PAGE)
        limit = REPLAY_PAGE;
    if (ev->n_msgs)
        snprintf(last, sizeof(last), "%s", ev->msgs[ev->n_msgs - 1]->id);
    if (c->n_replay + ev->n_msgs > c->replay_cap) {
        size_t ncap = c->n_replay + ev->n_msgs;
        struct live_msg **n = realloc(c->replay, ncap * sizeof(*n));
        if (!n) {
            resume_fail(srv, c, "out of memory");
            return;
        }
        c->replay = n;
        c->replay_cap = ncap;
    }
    {
        char **s = realloc(c->seen, (c->n_seen + ev->n_msgs + 1) * sizeof(*s));
        if (!s) {
            resume_fail(srv, c, "out of memory");
            return;
        }
        c->seen = s;
    }
    for (size_t i = 0; i < ev->n_msgs; i++) {
        struct live_msg *m = ev->msgs[i];
        char *id = strdup(m->id);
        if (!id) {
            resume_fail(srv, c, "out of memory");
            return;
        }
        c->seen[c->n_seen++] = id;
        c->replay[c->n_replay++] = m;
        ev->msgs[i] = NULL;
        srv->queued++;
        srv->replayed_messages++;
    }
    qsort(c->seen, c->n_seen, sizeof(char *), cmp_str);
    c->replayed += (long)ev->n_msgs;
    /* Live messages queued while the replay was pending may be in it. */
    if (c->count) {
        size_t kept = 0;
        for (size_t i = 0; i < c->count; i++) {
            struct live_msg *m = c->ring[(c->head + i) % c->cap];
            if (seen_has(c, m->id)) {
                live_msg_unref(m);
                srv->queued--;
            } else {
                c->ring[(c->head + kept) % c->cap] = m;
                kept++;
            }
        }
        c->count = kept;
    }
    if (ev->n_msgs > 0 && (long)ev->n_msgs >= limit && c->replayed < srv->cfg->live.resume_limit) {
        snprintf(c->after, sizeof(c->after), "%s", last);
        c->page++;
        resume_request(srv, c);
        return;
    }
    resume_done(c);
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
            srv->messages_routed++;
            for (struct client *c = ch->clients; c; c = c->next)
                client_offer(srv, c, ev->msg);
            break;
        }
        case LIVE_EV_REPLAY:
            on_replay(srv, ev);
            break;
        case LIVE_EV_BUS_UP:
            srv->broker_up = true;
            break;
        case LIVE_EV_BUS_DOWN:
            srv->broker_up = false;
            srv->restart_closes += srv->clients;
            close_all(srv, CLOSE_BROKER_LOST, "broker connection lost; resume with since");
            break;
        }
        live_event_free(ev);
        ev = next;
    }
    flush_schedule(srv);
}

/* ---- the protocol callback ----------------------------------------------------- */

/* Reads ?since= into out (size len). Returns 1 when given and valid, 0 when
 * absent, -1 when malformed. */
static int since_arg(struct lws *wsi, char *out, int len) {
    char buf[192];
    const char *v;

    if (lws_get_urlarg_by_name(wsi, "since=", buf, (int)sizeof(buf)) == NULL) {
        out[0] = '\0';
        return lws_get_urlarg_by_name(wsi, "since", buf, (int)sizeof(buf)) ? -1 : 0;
    }
    v = strchr(buf, '=') ? strchr(buf, '=') + 1 : buf;
    if (!*v || (int)strlen(v) >= len)
        return -1;
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
            return -1;
    memcpy(out, v, strlen(v) + 1);
    return 1;
}

static int path_of(struct lws *wsi, char *out, int len) {
    if (lws_hdr_copy(wsi, out, len, WSI_TOKEN_GET_URI) <= 0) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}

static int confirm_upgrade(struct live_server *srv, struct lws *wsi) {
    char path[512], since[128];
    int ch, s;

    if (path_of(wsi, path, sizeof(path)) < 0) {
        srv->rejected_upgrades++;
        return send_error(wsi, 400, "a websocket handshake must be a GET", false) < 0 ? -1 : 1;
    }
    ch = channel_find(srv, path);
    if (ch < 0) {
        srv->rejected_upgrades++;
        return send_error(wsi, 404, "no such channel", false) < 0 ? -1 : 1;
    }
    s = since_arg(wsi, since, sizeof(since));
    if (s < 0) {
        srv->rejected_upgrades++;
        return send_error(wsi, 400, "since must be a message id", false) < 0 ? -1 : 1;
    }
    if (s > 0 && !srv->channels[ch].rpc_exchange) {
        srv->rejected_upgrades++;
        return send_error(wsi, 400, "this channel has no stored messages to resume from", false) < 0
                   ? -1
                   : 1;
    }
    if (srv->stopping || !srv->broker_up) {
        srv->rejected_upgrades++;
        return send_error(wsi, 503, "broker unavailable; retry shortly", false) < 0 ? -1 : 1;
    }
    return 0;
}

static int on_established(struct live_server *srv, struct lws *wsi, struct client *c) {
    char path[512], since[128];
    int s;

    memset(c, 0, sizeof(*c));
    c->wsi = wsi;
    c->channel = -1;
    path_of(wsi, path, sizeof(path));
    c->channel = channel_find(srv, path);
    if (c->channel < 0)
        return -1; /* confirm_upgrade refused it already */
    s = since_arg(wsi, since, sizeof(since));
    c->serial = ++srv->next_serial;
    {
        struct channel *ch = &srv->channels[c->channel];
        c->next = ch->clients;
        if (ch->clients)
            ch->clients->prev = c;
        ch->clients = c;
        ch->n_clients++;
    }
    c->linked = true;
    srv->clients++;
    {
        /* Frames go out as soon as they are written; no Nagle delay. */
        int one = 1, fd = (int)lws_get_socket_fd(wsi);
        if (fd >= 0)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    srv->connections_total++;
    if (s > 0 && srv->channels[c->channel].rpc_exchange) {
        srv->replays_started++;
        c->pending = true;
        snprintf(c->after, sizeof(c->after), "%s", since);
        resume_request(srv, c);
    }
    LOG(LOG_DEBUG, "client connected serial=%" PRIu64 " channel=%s since=%s", c->serial,
        srv->channels[c->channel].path, s > 0 ? since : "-");
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
        return serve_http(wsi, path);
    }
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return confirm_upgrade(srv, wsi);
    case LWS_CALLBACK_ESTABLISHED:
        return on_established(srv, wsi, c);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!c || !c->linked)
            return 0;
        return client_write(srv, c);
    case LWS_CALLBACK_RECEIVE:
        if (!c || !c->linked)
            return 0;
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
        if (c && c->linked && c->pending)
            resume_fail(srv, c, "rpc timeout");
        return 0;
    case LWS_CALLBACK_CLOSED:
        if (c && c->linked)
            client_unlink(srv, c);
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
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
    srv->channel_paths = calloc(n + 1, sizeof(char *));
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
            srv->channels[ch].path = strdup(ep->path);
            if (!srv->channels[ch].path)
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
        channel_find(srv, "/") < 0) {
        srv->channels[srv->n_channels].path = strdup("/");
        if (!srv->channels[srv->n_channels].path)
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
    if (channels_build(srv) < 0) {
        LOG(LOG_ERROR, "no endpoint has live: true; nothing to serve");
        goto out_free;
    }
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_logger);

    /* Keepalive: a ping after ping_interval idle seconds; no valid traffic
     * (a pong counts) for two intervals more and the connection is dropped. */
    srv->retry.secs_since_valid_ping = (uint16_t)cfg->live.ping_interval;
    srv->retry.secs_since_valid_hangup = (uint16_t)(cfg->live.ping_interval * 3);

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
    for (size_t i = 0; i < srv->n_channels; i++)
        free(srv->channels[i].path);
    free(srv->channels);
    free(srv->exchanges);
    free(srv->exchange_channel);
    free(srv->rpc_exchanges);
    free(srv->channel_paths);
    free(srv);
}
