/* The libwebsockets adapter of liveupdate: the handshakes of websocket and
 * Server-Sent Events clients (resume position, access, upgrade), the one
 * protocol callback that routes every lws event to the pieces, and the
 * server's life cycle (new, run, reload request, shutdown, free). See
 * live_int.h for the pieces.
 */
#include "live_int.h"

#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int64_t live_now_ms(void) {
    return (int64_t)(lws_now_usecs() / 1000);
}

struct live_server *live_server_of(struct lws *wsi) {
    return lws_context_user(lws_get_context(wsi));
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

static const char *since_error(int s) {
    return s == -2 ? "since is longer than any message id (at most 200 characters)"
                   : "since must be a message id: 1 to 200 printable ASCII characters";
}

static int confirm_upgrade(struct live_server *srv, struct lws *wsi) {
    char path[512], since[LIVE_ID_MAX + 1];
    int ch, s;

    if (path_of(wsi, path, sizeof(path)) < 0) {
        srv->rejected_upgrades++;
        return live_send_error(wsi, 400, "a websocket handshake must be a GET", false) < 0 ? -1 : 1;
    }
    ch = live_channel_find(srv, path, NULL, 0);
    if (ch < 0) {
        srv->rejected_upgrades++;
        return live_send_error(wsi, 404, "no such channel", false) < 0 ? -1 : 1;
    }
    s = live_check_access(srv, wsi, ch, true);
    if (s != 0)
        return s;
    s = since_arg(wsi, since, false);
    if (s < 0) {
        srv->rejected_upgrades++;
        return live_send_error(wsi, 400, since_error(s), false) < 0 ? -1 : 1;
    }
    if (srv->stopping || !srv->broker_up) {
        srv->rejected_upgrades++;
        return live_send_error(wsi, 503, "broker unavailable; retry shortly", false) < 0 ? -1 : 1;
    }
    return 0;
}

/* Links a new client (websocket or SSE) to its channel and starts it live or
 * resuming. Returns 0, or -1 when out of memory. */
static int client_start(struct live_server *srv, struct lws *wsi, struct live_client *c,
                        int ch_index, const char *filter, const char *since, bool sse) {
    struct live_channel *ch = &srv->channels[ch_index];

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
    c->last_rx_ms = c->last_beat_ms = live_now_ms();
    c->phase = PH_LIVE;
    c->cursor = c->arrived = ch->win.end;
    c->caught_up = true;
    if (since && *since)
        live_resume_start(srv, c, since);
    LOG(LOG_DEBUG, "client connected serial=%" PRIu64 " channel=%s sse=%d since=%.64s", c->serial,
        ch->path, sse, since && *since ? since : "-");
    live_flush_schedule(srv);
    return 0;
}

static int on_established(struct live_server *srv, struct lws *wsi, struct live_client *c) {
    char path[512], since[LIVE_ID_MAX + 1], filter[1024];
    int ch;

    memset(c, 0, sizeof(*c));
    c->channel = -1;
    path_of(wsi, path, sizeof(path));
    ch = live_channel_find(srv, path, filter, sizeof(filter));
    if (ch < 0)
        return -1; /* confirm_upgrade refused it already */
    if (since_arg(wsi, since, false) < 0)
        since[0] = '\0';
    return client_start(srv, wsi, c, ch, filter, since, false);
}

/* GET /events/v1/<channel>: answers the headers of an event stream and
 * makes the connection a client. Returns what the HTTP callback must. */
static int sse_open(struct live_server *srv, struct lws *wsi, struct live_client *c,
                    const char *path) {
    char since[LIVE_ID_MAX + 1], filter[1024];
    unsigned char hdr[LWS_PRE + 512];
    unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr);
    int ch, s;

    ch = live_channel_find(srv, path, filter, sizeof(filter));
    if (ch < 0) {
        srv->rejected_upgrades++;
        return live_send_error(wsi, 404, "no such channel", false);
    }
    /* The same credentials and Origin rules as the channel's websocket. */
    s = live_check_access(srv, wsi, ch, false);
    if (s != 0)
        return s < 0 ? -1 : 0;
    s = since_arg(wsi, since, true);
    if (s < 0) {
        srv->rejected_upgrades++;
        return live_send_error(wsi, 400,
                               s == -2 ? "Last-Event-ID or since is longer than any message id (at "
                                         "most 200 characters)"
                                       : "Last-Event-ID or since must be a message id: 1 to 200 "
                                         "printable ASCII characters",
                               false);
    }
    if (srv->stopping || !srv->broker_up) {
        srv->rejected_upgrades++;
        return live_send_error(wsi, 503, "broker unavailable; retry shortly", false);
    }
    if (!c)
        return live_send_error(wsi, 500, "no client state", false);
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
    struct live_server *srv = live_server_of(wsi);
    struct live_client *c = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP: {
        char path[512];
        snprintf(path, sizeof(path), "%.*s", (int)(in ? strlen(in) : 0), in ? (char *)in : "");
        if (strncmp(path, "/events/v1/", 11) == 0 &&
            lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0)
            return sse_open(srv, wsi, c, path);
        return live_serve_http(wsi, path);
    }
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!c || !c->linked || !c->sse)
            return 0;
        return live_client_write(srv, c);
    case LWS_CALLBACK_CLOSED_HTTP:
        if (c && c->linked && c->sse)
            live_client_unlink(srv, c);
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return confirm_upgrade(srv, wsi);
    case LWS_CALLBACK_ESTABLISHED:
        return on_established(srv, wsi, c);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!c || !c->linked)
            return 0;
        return live_client_write(srv, c);
    case LWS_CALLBACK_RECEIVE_PONG:
        if (c && c->linked)
            c->last_rx_ms = live_now_ms();
        return 0;
    case LWS_CALLBACK_RECEIVE:
        if (!c || !c->linked)
            return 0;
        c->last_rx_ms = live_now_ms();
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
            live_on_timer(srv, c);
        live_flush_schedule(srv);
        return 0;
    case LWS_CALLBACK_CLOSED:
        if (c && c->linked)
            live_client_unlink(srv, c);
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (srv->reload_asked && !srv->stop_asked) {
            srv->reload_asked = 0;
            live_reload(srv);
        }
        if (srv->stop_asked && !srv->stopping) {
            srv->stopping = true;
            LOG(LOG_INFO, "shutting down clients=%zu", srv->clients);
            live_close_all(srv, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
        }
        live_drain_inbox(srv);
        return 0;
    default:
        break;
    }
    return 0;
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
    {"fpesa-live", callback, sizeof(struct live_client), 512, 0, NULL, SCRATCH_SIZE},
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
    if (live_channels_build(srv) < 0) {
        LOG(LOG_ERROR, "no endpoint has live: true; nothing to serve");
        goto out_free;
    }
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_logger);

    /* Keepalive is ours (live_beat_run): libwebsockets' own is turned off. */
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

    lws_sul_schedule(srv->ctx, 0, &srv->beat_sul, live_beat_run,
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
    bp.stream = cfg->live.source == CFG_LIVE_STREAM;
    bp.stream_max_bytes = (int64_t)cfg->live.stream_max_bytes;
    bp.stream_max_age_s = cfg->live.stream_max_age;
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
