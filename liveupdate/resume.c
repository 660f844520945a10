/* Resume of a client from a message id: pages of stored messages asked
 * over the bus and sent before the window, waiting for messages not yet
 * stored, and the joins to the live window.
 */
#include "live_int.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- resume ------------------------------------------------------------------ */

static struct live_client *client_by_serial(struct live_server *srv, uint64_t serial) {
    for (size_t i = 0; i < srv->n_channels; i++)
        for (struct live_client *c = srv->channels[i].clients; c; c = c->next)
            if (c->serial == serial)
                return c;
    return NULL;
}

static void resume_fail(struct live_server *srv, struct live_client *c, const char *why) {
    srv->replays_failed++;
    LOG(LOG_WARN, "resume failed serial=%" PRIu64 " reason=%s", c->serial, why);
    live_client_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "resume failed; retry with since");
}

/* Continues from the window at lseq from (or its oldest message, if that
 * is gone), after the replay page still queued. */
static void go_live(struct live_server *srv, struct live_client *c, uint64_t from) {
    struct live_window *w = &srv->channels[c->channel].win;

    c->phase = PH_LIVE;
    c->cursor = from < w->start ? w->start : from > w->end ? w->end : from;
    c->caught_up = w->end - c->cursor <= srv->cfg->live.client_queue;
    c->seen_until = w->end + srv->cfg->live.client_queue;
    c->waiting = c->wants_page = false;
    lws_set_timer_usecs(c->wsi, LWS_SET_TIMER_USEC_CANCEL);
    live_client_kick(srv, c);
}

/* Neither the window nor the store knows the position: a websocket client
 * is told with a close code it reconnects on without since; an SSE stream
 * gets a gap event and continues live from now. */
static void unknown_position(struct live_server *srv, struct live_client *c) {
    srv->unknown_positions++;
    LOG(LOG_INFO, "resume from an unknown position serial=%" PRIu64 " since=%.64s", c->serial,
        c->after);
    if (!c->sse) {
        live_client_close(c, LIVE_CLOSE_UNKNOWN_POSITION,
                          "unknown position; reconnect without since");
        return;
    }
    c->gap = true;
    live_replay_clear(srv, c);
    /* Resuming from the moment it connected: what arrived while the id was
     * looked up is not lost too. */
    go_live(srv, c, c->arrived);
}

/* The since message m came before the last broker loss: queues the
 * window's messages after it up to the hole, in the order they were live,
 * and asks the store from SEALED_BACK messages before it, skipping what the
 * window holds from then. Returns 0, or -1 when out of memory. */
static int sealed_start(struct live_server *srv, struct live_client *c, const struct live_msg *m) {
    struct live_channel *ch = &srv->channels[c->channel];
    struct live_window *w = &ch->win;
    uint64_t from = m->lseq - w->start > SEALED_BACK ? m->lseq - SEALED_BACK : w->start;
    struct live_msg **n = realloc(c->replay, (c->n_replay + (ch->bind_lseq - m->lseq)) * sizeof(*n));

    if (!n)
        return -1;
    c->replay = n;
    for (uint64_t l = m->lseq + 1; l < ch->bind_lseq; l++) {
        struct live_msg *x = live_window_at(w, l);
        if (x && live_client_wants(c, x)) {
            c->replay[c->n_replay++] = live_msg_ref(x);
            srv->queued++;
        }
    }
    c->sealed = true;
    c->since_lseq = m->lseq;
    srv->loss_resumes++;
    c->page_size = SKIP_PAGE;
    snprintf(c->after, sizeof(c->after), "%s", live_window_at(w, from)->id);
    return 0;
}

/* Starts a client at ?since=<id> (or Last-Event-ID): from the window when it
 * holds the id since the last broker loss, else from the store (and the
 * window up to the loss, when the id came before it). */
void live_resume_start(struct live_server *srv, struct live_client *c, const char *since) {
    struct live_channel *ch = &srv->channels[c->channel];
    struct live_msg *m = live_window_find(&ch->win, since);

    snprintf(c->after, sizeof(c->after), "%s", since);
    c->sealed = false;
    c->page_size = REPLAY_PAGE;
    c->join = UINT64_MAX;
    c->store_ms = 0;
    if (m && m->lseq >= ch->bind_lseq) {
        srv->window_resumes++;
        go_live(srv, c, m->lseq + 1);
        return;
    }
    if (!ch->rpc_exchange) {
        unknown_position(srv, c);
        return;
    }
    if (m && sealed_start(srv, c, m) < 0) {
        resume_fail(srv, c, "out of memory");
        return;
    }
    srv->replays_started++;
    c->phase = PH_REPLAY;
    c->page = 0;
    c->started_ms = live_now_ms();
    live_request_page(srv, c);
    if (c->n_replay > c->replay_pos)
        live_client_kick(srv, c);
}

void live_request_page(struct live_server *srv, struct live_client *c) {
    struct live_channel *ch = &srv->channels[c->channel];

    if (c->closing || c->rpc_pending)
        return;
    if (srv->rpc_inflight >= REPLAY_INFLIGHT_MAX) {
        c->wants_page = true;
        return;
    }
    c->page++;
    if (live_bus_request_replay(srv->bus, c->serial, c->page, c->channel, ch->rpc_exchange,
                                c->after, c->page_size) < 0) {
        resume_fail(srv, c, "broker unavailable");
        return;
    }
    c->rpc_pending = true;
    srv->rpc_inflight++;
    lws_set_timer_usecs(c->wsi, (lws_usec_t)ch->rpc_timeout_ms * 1000);
}

/* Asks the store again after a pause. */
static void repoll(struct live_client *c, long ms) {
    c->waiting = true;
    lws_set_timer_usecs(c->wsi, (lws_usec_t)ms * 1000);
}

/* The window's oldest message since the last broker loss, or NULL. */
static struct live_msg *first_since_bind(const struct live_channel *ch) {
    return live_window_at(&ch->win, ch->bind_lseq > ch->win.start ? ch->bind_lseq : ch->win.start);
}

/* The replay reached the end of the store without meeting the window: true
 * when it may join the window anyway. With an empty window that is once the
 * messages published before the bind had time to be stored; with a
 * non-empty one, once its oldest message has waited long enough to be taken
 * as never stored. */
static bool may_join(const struct live_channel *ch) {
    int64_t now = live_now_ms();
    struct live_msg *first = first_since_bind(ch);

    if (now - ch->bound_ms < SETTLE_MS)
        return false;
    return !first || now - first->at_ms >= STRAGGLE_MS;
}

/* The replay met the window at c->join: may the client continue from there
 * (the rest of the window from its live order)? Once the store has shown
 * messages MARGIN_MS younger than the window's oldest since the last loss,
 * or, at the end of the store, once that oldest arrived MARGIN_MS ago; at
 * once for ids without a time. */
static bool may_join_at(const struct live_channel *ch, const struct live_client *c, bool at_end) {
    struct live_msg *first = first_since_bind(ch);
    int64_t t = first ? live_uuid7_ms(first->id) : 0;

    if (c->join == UINT64_MAX)
        return false;
    if (!first || t == 0 || c->store_ms == 0 || c->store_ms >= t + MARGIN_MS)
        return true;
    return at_end && live_now_ms() - first->at_ms >= MARGIN_MS;
}

/* May a stored message also come live later? Those near or after the
 * window's oldest message (by their UUIDv7 time) may. */
static bool may_come_live(const struct live_channel *ch, const struct live_msg *m) {
    int64_t t = live_uuid7_ms(m->id), floor_ms;
    struct live_msg *first = first_since_bind(ch);

    if (t == 0)
        return true;
    floor_ms = first && live_uuid7_ms(first->id) ? live_uuid7_ms(first->id) : ch->bound_wall_ms;
    return t >= floor_ms - MARGIN_MS;
}

/* A page of stored messages arrived: queue those the window does not hold;
 * once the store reaches a message the window holds, continue from the
 * window. */
void live_on_replay(struct live_server *srv, struct live_event *ev) {
    struct live_client *c = client_by_serial(srv, ev->client);
    struct live_channel *ch;
    struct live_msg **n;
    bool at_end;

    if (!c || !c->rpc_pending || c->closing || ev->page != c->page)
        return; /* gone, or an answer that came after its timeout */
    ch = &srv->channels[c->channel];
    lws_set_timer_usecs(c->wsi, LWS_SET_TIMER_USEC_CANCEL);
    live_slot_release(srv, c);
    if (ev->error == 404) {
        /* The id is not (yet) stored. It may be in flight: it was pushed
         * live before its commit; or it arrived in the window meanwhile. */
        struct live_msg *m = live_window_find(&ch->win, c->after),
                        *since = c->sealed ? live_window_at(&ch->win, c->since_lseq) : NULL;
        if (since && m != since) {
            /* The message the store was to start from was never stored:
             * start from the client's own position. */
            snprintf(c->after, sizeof(c->after), "%s", since->id);
            live_request_page(srv, c);
        } else if (m && m->lseq >= ch->bind_lseq) {
            srv->window_resumes++;
            go_live(srv, c, m->lseq + 1);
        } else if (live_now_ms() - c->started_ms < LOOKUP_MS) {
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
        int64_t t = live_uuid7_ms(m->id);
        snprintf(c->after, sizeof(c->after), "%s", m->id);
        if (t > c->store_ms)
            c->store_ms = t;
        if (hit && hit->lseq < ch->bind_lseq) {
            /* Live before the last broker loss: a client resuming from
             * there has it or has it queued from the window; any other
             * client gets it from the store, as if the window did not hold it. */
            if (c->sealed)
                continue;
            hit = NULL;
        }
        if (hit) {
            /* The window holds it: it goes out from there, in live order. */
            if (hit->lseq < c->join)
                c->join = hit->lseq;
            continue;
        }
        if (may_come_live(ch, m) && live_seen_add(c, m->id) < 0)
            LOG(LOG_DEBUG, "replayed id not remembered serial=%" PRIu64, c->serial);
        c->replay[c->n_replay++] = m;
        ev->msgs[i] = NULL;
        srv->queued++;
        srv->replayed_messages++;
    }
    at_end = ev->n_msgs < (size_t)c->page_size;
    if (c->join != UINT64_MAX)
        c->page_size = SKIP_PAGE; /* from here on, most of the store is in the window */
    if (may_join_at(ch, c, at_end))
        go_live(srv, c, c->join);
    else if (at_end && c->join == UINT64_MAX && may_join(ch))
        go_live(srv, c, ch->bind_lseq);
    else if (at_end)
        repoll(c, REPOLL_MS); /* the end of the store for now: wait for it to reach the window */
    /* else: the next page is asked for once this one is written */
    if (c->n_replay > c->replay_pos) {
        live_client_kick(srv, c);
    } else if (c->phase == PH_REPLAY && !c->waiting) {
        live_request_page(srv, c);
    }
}

/* The client's timer: a request timed out, or a re-poll is due. */
void live_on_timer(struct live_server *srv, struct live_client *c) {
    if (c->closing)
        return;
    if (c->rpc_pending) {
        live_slot_release(srv, c);
        if (++c->retries > RESUME_RETRIES) {
            resume_fail(srv, c, "rpc timeout");
            return;
        }
        live_request_page(srv, c);
        return;
    }
    if (c->waiting) {
        c->waiting = false;
        if (c->phase == PH_REPLAY)
            live_request_page(srv, c);
    }
}
