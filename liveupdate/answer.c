/* The plain HTTP answers of liveupdate: complete responses and errors, the
 * channel a request path names, and the health and metrics routes.
 */
#include "live_int.h"

#include "log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int live_send_error(struct lws *wsi, unsigned int status, const char *desc, bool upgrade_hint) {
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

int live_channel_find(struct live_server *srv, const char *path, char *filter, size_t flen) {
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
        for (struct live_client *c = srv->channels[i].clients; c; c = c->next) {
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
            "# HELP liveupdate_loss_resumes_total Resumes from before the last broker loss "
            "(the window up to it, the hole from the store).\n"
            "# TYPE liveupdate_loss_resumes_total counter\nliveupdate_loss_resumes_total %llu\n"
            "# HELP liveupdate_window_messages Live messages held in the channel's window.\n"
            "# TYPE liveupdate_window_messages gauge\n",
            srv->sse_clients, srv->window_resumes, srv->unknown_positions, srv->rpc_inflight,
            srv->reaped, srv->loss_resumes);
    for (size_t i = 0; i < srv->n_channels; i++)
        fprintf(f, "liveupdate_window_messages{channel=\"%s\"} %zu\n", srv->channels[i].path,
                live_window_count(&srv->channels[i].win));
    fclose(f);
}

int live_serve_http(struct lws *wsi, const char *path) {
    struct live_server *srv = live_server_of(wsi);

    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
        return live_send_error(wsi, 405, "only GET is served here", false);
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
            return live_send_error(wsi, 500, "out of memory", false);
        rc = send_http(wsi, 200, "text/plain; version=0.0.4", text, len, false);
        free(text);
        return rc;
    }
    if (live_channel_find(srv, path, NULL, 0) >= 0)
        return live_send_error(wsi, 426,
                               "this is a websocket channel: connect with a websocket client "
                               "(Upgrade: websocket), optionally with ?since=<last id>, or read "
                               "it as Server-Sent Events at /events/v1<channel>",
                               true);
    return live_send_error(wsi, 404, "no such channel", false);
}
