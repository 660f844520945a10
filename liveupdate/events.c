/* Events from the bus thread, taken on the service thread: messages routed
 * to their channels' windows and clients, replay pages, broker loss and
 * return; and the keepalive beat (pings, SSE comments, silent clients cut).
 */
#include "live_int.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- events from the bus ----------------------------------------------------- */

void live_close_all(struct live_server *srv, int code, const char *reason) {
    for (size_t i = 0; i < srv->n_channels; i++)
        for (struct live_client *c = srv->channels[i].clients; c; c = c->next)
            live_client_close(c, code, reason);
}

void live_drain_inbox(struct live_server *srv) {
    struct live_event *ev = live_inbox_take_all(&srv->inbox);

    while (ev) {
        struct live_event *next = ev->next;
        switch (ev->kind) {
        case LIVE_EV_MESSAGE: {
            struct live_channel *ch = &srv->channels[ev->msg->channel];
            struct live_msg *m = ev->msg;
            ev->msg = NULL;
            m->at_ms = live_now_ms();
            live_window_push(&ch->win, m);
            srv->messages_routed++;
            for (struct live_client *c = ch->clients; c; c = c->next)
                live_client_offer(srv, c, m);
            break;
        }
        case LIVE_EV_REPLAY:
            live_on_replay(srv, ev);
            break;
        case LIVE_EV_BUS_UP:
            srv->broker_up = true;
            for (size_t i = 0; i < srv->n_channels; i++) {
                struct live_channel *ch = &srv->channels[i];
                ch->bind_lseq = ch->win.end;
                ch->bound_ms = live_now_ms();
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
            live_close_all(srv, CLOSE_BROKER_LOST, "broker connection lost; resume with since");
            /* The live stream has a hole from now on. What came before it is
             * kept: a client resuming from there gets the rest of it from
             * the window, in the order it was live, and only the hole from
             * the store (whose order can differ around the resume point).
             * One hole at most: what came before an earlier one goes. */
            for (size_t i = 0; i < srv->n_channels; i++) {
                struct live_channel *ch = &srv->channels[i];
                live_window_drop_before(&ch->win, ch->bind_lseq);
                ch->bind_lseq = ch->win.end;
            }
            break;
        }
        live_event_free(ev);
        ev = next;
    }
    live_flush_schedule(srv);
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
void live_beat_run(lws_sorted_usec_list_t *sul) {
    struct live_server *srv =
        (struct live_server *)((char *)sul - offsetof(struct live_server, beat_sul));
    int64_t now = live_now_ms(), iv = (int64_t)srv->cfg->live.ping_interval * 1000;

    for (size_t i = 0; i < srv->n_channels; i++)
        for (struct live_client *c = srv->channels[i].clients; c; c = c->next) {
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
    lws_sul_schedule(srv->ctx, 0, &srv->beat_sul, live_beat_run,
                     iv < 1000 ? (lws_usec_t)iv * 1000 : LWS_US_PER_SEC);
}
