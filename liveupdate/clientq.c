/* The per-client queue of liveupdate: what each client is sent and when
 * (its cursor in the window, the replay list, the ids already sent), frames
 * batched per write (websocket and Server-Sent Events), flushes of dirty
 * clients, and closing a client.
 */
#include "live_int.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- clients ----------------------------------------------------------------- */

/* Asks a writable callback for every client with frames waiting. */
static void flush_now(struct live_server *srv) {
    srv->last_flush = lws_now_usecs();
    srv->any_dirty = false;
    for (size_t i = 0; i < srv->n_channels; i++)
        for (struct live_client *c = srv->channels[i].clients; c; c = c->next)
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
void live_flush_schedule(struct live_server *srv) {
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
void live_client_kick(struct live_server *srv, struct live_client *c) {
    if (!c->closing && !c->dirty && !c->asked) {
        c->dirty = true;
        srv->any_dirty = true;
    }
}

void live_replay_clear(struct live_server *srv, struct live_client *c) {
    for (size_t i = c->replay_pos; i < c->n_replay; i++) {
        live_msg_unref(c->replay[i]);
        srv->queued--;
    }
    c->n_replay = c->replay_pos = 0;
}

static void seen_clear(struct live_client *c) {
    for (size_t i = 0; i < c->n_seen; i++)
        free(c->seen[i]);
    free(c->seen);
    c->seen = NULL;
    c->n_seen = 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool seen_has(const struct live_client *c, const char *id) {
    return c->n_seen && bsearch(&id, c->seen, c->n_seen, sizeof(char *), cmp_str);
}

/* Remembers a replayed id (kept sorted). Returns 0, or -1 when the set is
 * full or memory is out: the id is then not remembered. */
int live_seen_add(struct live_client *c, const char *id) {
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
void live_slot_release(struct live_server *srv, struct live_client *c) {
    if (c && c->rpc_pending) {
        c->rpc_pending = false;
        srv->rpc_inflight--;
    }
    for (size_t i = 0; i < srv->n_channels && srv->rpc_inflight < REPLAY_INFLIGHT_MAX; i++)
        for (struct live_client *w = srv->channels[i].clients;
             w && srv->rpc_inflight < REPLAY_INFLIGHT_MAX; w = w->next)
            if (w->wants_page && !w->closing) {
                w->wants_page = false;
                live_request_page(srv, w);
            }
}

/* Marks a client for closing: its queue is dropped now (so its memory is
 * released at once), the close frame goes out when the socket is writable,
 * and a client that never reads again is cut off after a few seconds. */
void live_client_close(struct live_client *c, int code, const char *reason) {
    struct live_server *srv = live_server_of(c->wsi);

    if (c->closing)
        return;
    c->closing = true;
    c->close_code = code;
    c->close_reason = reason;
    c->wants_page = false;
    c->waiting = false;
    lws_set_timer_usecs(c->wsi, LWS_SET_TIMER_USEC_CANCEL);
    live_replay_clear(srv, c);
    seen_clear(c);
    if (c->rpc_pending)
        live_slot_release(srv, c);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, 5);
    lws_callback_on_writable(c->wsi);
}

void live_client_unlink(struct live_server *srv, struct live_client *c) {
    struct live_channel *ch;

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
    live_replay_clear(srv, c);
    free(c->replay);
    c->replay = NULL;
    seen_clear(c);
    free(c->filter);
    c->filter = NULL;
    if (c->rpc_pending)
        live_slot_release(srv, c);
}

/* True when a window message is for this client (its resource, if it
 * subscribed to one). */
bool live_client_wants(const struct live_client *c, const struct live_msg *m) {
    return !c->filter || (m->path && strcmp(m->path, c->filter) == 0);
}

/* A live message entered the client's channel window: wake the client, or
 * close it when it has fallen too far behind. */
void live_client_offer(struct live_server *srv, struct live_client *c, struct live_msg *m) {
    struct live_window *w = &srv->channels[c->channel].win;
    uint64_t lag;

    if (c->closing || c->phase != PH_LIVE)
        return;
    if (c->cursor < w->start) {
        srv->slow_drops++;
        LOG(LOG_WARN, "client fell out of the window; closing serial=%" PRIu64, c->serial);
        live_client_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too slow; resume with since");
        return;
    }
    lag = w->end - c->cursor;
    if (lag <= srv->cfg->live.client_queue) {
        c->caught_up = true;
    } else if (c->caught_up) {
        srv->slow_drops++;
        LOG(LOG_WARN, "client too slow; closing serial=%" PRIu64 " queued=%" PRIu64, c->serial,
            lag);
        live_client_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too slow; resume with since");
        return;
    }
    if (c->n_replay > c->replay_pos)
        return; /* the replay goes first; the write that ends it asks again */
    if (!live_client_wants(c, m)) {
        if (c->cursor == m->lseq)
            c->cursor++; /* nothing for it: stays caught up without a write */
        return;
    }
    live_client_kick(srv, c);
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
static bool batch_add(struct live_server *srv, struct live_client *c, struct live_msg *m,
                      size_t *used) {
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
static int write_large(struct live_server *srv, struct live_client *c, struct live_msg *m) {
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
int live_client_write(struct live_server *srv, struct live_client *c) {
    struct live_window *w = &srv->channels[c->channel].win;
    size_t used = 0;
    bool more = false;

    /* Messages that arrived while this round of writes was under way go
     * out in it, to the clients not written yet, instead of waiting for
     * the round to end before they are even queued. */
    if (live_inbox_nonempty(&srv->inbox))
        live_drain_inbox(srv);
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
            live_client_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too slow; resume with since");
            return 0;
        }
        while (c->cursor < w->end) {
            struct live_msg *m = live_window_at(w, c->cursor);
            if (!live_client_wants(c, m) || (c->n_seen && seen_has(c, m->id))) {
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
        live_request_page(srv, c); /* paced by the client: the next page once this one is read */
    }
    return 0;
}
