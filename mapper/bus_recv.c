/* What the bus thread receives: publisher confirms, rpc answers (assembled
 * from their frames, with their status and HTTP headers), the broker's
 * blocked/unblocked notices; and the expiry of confirms and rpc calls that
 * waited too long.
 */
#include "bus_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "jsontext.h"
#include "log.h"

/* Frames handled per loop turn before queued publishes get a turn again. */
#define READ_BATCH 4096

/* Publishes the broker refuses in a row, for this long, make the bus start
 * over on a new connection: a cluster node that came back has been seen
 * refusing every publish of a channel for minutes while the queue had a
 * live leader, and a fresh channel publishes again. */
#define NACK_STREAK 50
#define NACK_STREAK_S 2.0

/* ---- receiving ----------------------------------------------------------- */

static void confirm(struct mbus *bus, uint64_t tag, bool multiple, bool ok) {
    int status = ok ? 202 : 503;
    struct mbus_job *j;
    if (multiple) {
        while ((j = bus->inflight.head) != NULL && j->tag <= tag) {
            mbus_list_unlink(&bus->inflight, j);
            atomic_fetch_add_explicit(ok ? &bus->st_confirms : &bus->st_nacks, 1,
                                      memory_order_relaxed);
            mbus_finish(bus, j, status, NULL, 0, NULL);
        }
        return;
    }
    for (j = bus->inflight.head; j && j->tag < tag; j = j->next)
        ;
    if (j && j->tag == tag) {
        mbus_list_unlink(&bus->inflight, j);
        atomic_fetch_add_explicit(ok ? &bus->st_confirms : &bus->st_nacks, 1, memory_order_relaxed);
        mbus_finish(bus, j, status, NULL, 0, NULL);
    }
}

/* Parses "<prefix>-<16 hex>" of this instance; false for anything else. */
static bool parse_corr(const struct mbus *bus, const char *s, size_t len, uint64_t *out) {
    size_t pl = strlen(bus->corr_prefix);
    if (len != pl + 1 + 16 || memcmp(s, bus->corr_prefix, pl) != 0 || s[pl] != '-')
        return false;
    uint64_t v = 0;
    for (size_t i = pl + 1; i < len; i++) {
        char ch = s[i];
        int d;
        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if (ch >= 'a' && ch <= 'f')
            d = ch - 'a' + 10;
        else
            return false;
        v = (v << 4) | (uint64_t)d;
    }
    *out = v;
    return true;
}

int mbus_answer_status(const char *body, size_t len, const char *content_type) {
    if (!strstr(content_type, "json"))
        return 200;
    /* Checked as text, never parsed into doubles: whatever valid JSON the
     * worker answers (numbers of any size) is relayed byte for byte. */
    int code = 0;
    int rc = jtext_error_code(body, len, &code, NULL);
    if (rc < 0)
        return 502;
    return rc == 1 && code >= 400 && code <= 599 ? code : 200;
}

static void delivery_complete(struct mbus *bus) {
    struct mbus_delivery *d = &bus->dlv;
    bool skip = d->skip;
    d->active = false;
    if (skip && !d->too_big)
        return;
    uint64_t corr;
    struct mbus_job *j = NULL;
    if (d->corr_set && parse_corr(bus, d->corr, d->corr_len, &corr))
        j = mbus_rpc_find(bus, corr);
    if (!j) {
        atomic_fetch_add_explicit(&bus->st_late, 1, memory_order_relaxed);
        LOG(LOG_DEBUG, "bus dropped a reply nobody waits for correlation_id=%.*s", (int)d->corr_len,
            d->corr);
        return;
    }
    mbus_rpc_remove(bus, j);
    if (d->too_big) {
        static const char big[] =
            "{\"error\":{\"code\":502,\"description\":\"the worker's answer is too large\"}}";
        LOG(LOG_WARN, "bus rpc answer too large exchange=%s bytes=%" PRIu64, j->exchange,
            d->body_size);
        mbus_finish(bus, j, 502, big, sizeof(big) - 1, "application/json");
        return;
    }
    const char *ct = d->ct_set ? d->content_type : "application/json";
    size_t len = (size_t)d->body_size;
    const char *body = len ? d->buf : "";
    int status = mbus_answer_status(body, len, ct);
    if (d->status && status != 502)
        status = d->status;
    if (status == 502) {
        static const char bad[] =
            "{\"error\":{\"code\":502,\"description\":\"the worker's answer is not valid JSON\"}}";
        LOG(LOG_WARN, "bus rpc answer is not valid JSON exchange=%s", j->exchange);
        mbus_finish(bus, j, 502, bad, sizeof(bad) - 1, "application/json");
        return;
    }
    mbus_finish_answer(bus, j, status, body, len, ct, d->http_headers_len ? d->http_headers : NULL);
}

static void copy_short(char *dst, size_t cap, struct amqpc_str b, size_t *out_len) {
    size_t n = b.len < cap - 1 ? b.len : cap - 1;
    memcpy(dst, b.p, n);
    dst[n] = '\0';
    if (out_len)
        *out_len = n;
}

/* An integer header value of any AMQP integer kind, or a string of digits. */
static bool field_int(const struct amqpc_value *v, long long *out) {
    switch (v->kind) {
    case AMQPC_V_INT:
        *out = v->v.i;
        return true;
    case AMQPC_V_UINT:
        *out = v->v.u > 1000000 ? 1000000 : (long long)v->v.u;
        return true;
    case AMQPC_V_STRING:
    case AMQPC_V_BYTES: {
        char buf[16];
        size_t n = v->v.s.len;

        if (n == 0 || n >= sizeof(buf))
            return false;
        memcpy(buf, v->v.s.p, n);
        buf[n] = '\0';
        *out = 0;
        for (size_t i = 0; i < n; i++) {
            if (buf[i] < '0' || buf[i] > '9')
                return false;
            *out = *out * 10 + (buf[i] - '0');
        }
        return true;
    }
    default:
        return false;
    }
}

static bool header_text_ok(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return false;
    return true;
}

/* Takes x-fpesa-status and x-fpesa-header-* from an answer's headers. */
static void read_answer_headers(struct mbus_delivery *d, const struct amqpc_table *t) {
    size_t plen = strlen(HTTP_HEADER_PREFIX);

    for (size_t i = 0; i < t->n; i++) {
        struct amqpc_str key;
        struct amqpc_value val;
        long long st;

        amqpc_table_get(t, i, &key, &val);
        const char *k = key.p;
        size_t kl = key.len;
        if (kl == strlen("x-fpesa-status") && strncasecmp(k, "x-fpesa-status", kl) == 0) {
            if (field_int(&val, &st) && st >= 100 && st <= 599)
                d->status = (int)st;
            continue;
        }
        if (kl <= plen || strncasecmp(k, HTTP_HEADER_PREFIX, plen) != 0)
            continue;
        if (val.kind != AMQPC_V_STRING && val.kind != AMQPC_V_BYTES)
            continue;
        const char *v = val.v.s.p;
        size_t vl = val.v.s.len;
        if (!header_text_ok(k, kl) || !header_text_ok(v, vl) || memchr(k, ':', kl) ||
            d->http_headers_len + (kl - plen) + 2 + vl + 2 > sizeof(d->http_headers))
            continue;
        char *o = d->http_headers + d->http_headers_len;
        memcpy(o, k + plen, kl - plen);
        o += kl - plen;
        memcpy(o, ": ", 2);
        o += 2;
        memcpy(o, v, vl);
        o += vl;
        *o++ = '\n';
        *o = '\0';
        d->http_headers_len = (size_t)(o - d->http_headers);
    }
}

/* Handles one event. Returns 0, or -1 when the connection must be dropped
 * (why says what happened). */
static int handle_event(struct mbus *bus, const struct amqpc_event *ev, char *why, size_t why_len) {
    struct mbus_delivery *d = &bus->dlv;

    switch (ev->kind) {
    case AMQPC_EV_HEADER: {
        if (!d->active)
            return 0;
        d->have_header = true;
        d->body_size = ev->body_size;
        const struct amqpc_props *p = &ev->props;
        if (!d->skip) {
            if (p->correlation_id.p) {
                copy_short(d->corr, sizeof(d->corr), p->correlation_id, &d->corr_len);
                d->corr_set = true;
            }
            if (p->content_type.p && p->content_type.len > 0) {
                copy_short(d->content_type, sizeof(d->content_type), p->content_type, NULL);
                d->ct_set = true;
            }
            if (p->headers.n)
                read_answer_headers(d, &p->headers);
        }
        if (!d->skip && d->body_size > MAX_ANSWER) {
            d->skip = true;
            d->too_big = true;
        }
        if (!d->skip && d->body_size + 1 > d->cap) {
            char *nb = realloc(d->buf, (size_t)d->body_size + 1);
            if (!nb) {
                d->skip = true;
            } else {
                d->buf = nb;
                d->cap = (size_t)d->body_size + 1;
            }
        }
        if (d->body_size == 0)
            delivery_complete(bus);
        return 0;
    }
    case AMQPC_EV_BODY: {
        if (!d->active || !d->have_header)
            return 0;
        struct amqpc_str b = ev->body;
        if (d->got + b.len > d->body_size) {
            snprintf(why, why_len, "body frame larger than announced");
            return -1;
        }
        if (!d->skip)
            memcpy(d->buf + d->got, b.p, b.len);
        d->got += b.len;
        if (d->got == d->body_size) {
            if (!d->skip)
                d->buf[d->got] = '\0';
            delivery_complete(bus);
        }
        return 0;
    }
    case AMQPC_EV_ACK:
    case AMQPC_EV_NACK:
        if (ev->channel != CH_PUB)
            return 0;
        confirm(bus, ev->tag, ev->multiple, ev->kind == AMQPC_EV_ACK);
        if (ev->kind == AMQPC_EV_ACK) {
            bus->nack_streak = 0;
            return 0;
        }
        {
            struct timespec ts;
            double now;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
            if (bus->nack_streak++ == 0)
                bus->nack_since = now;
            if (bus->nack_streak >= NACK_STREAK && now - bus->nack_since >= NACK_STREAK_S) {
                bus->nack_streak = 0;
                snprintf(why, why_len, "every publish refused for %.0f s; starting over",
                         now - bus->nack_since);
                return -1;
            }
        }
        return 0;
    case AMQPC_EV_DELIVER:
    case AMQPC_EV_RETURN: {
        char *buf = d->buf;
        size_t cap = d->cap;
        *d = (struct mbus_delivery){0};
        d->buf = buf;
        d->cap = cap;
        d->active = true;
        d->skip = ev->kind == AMQPC_EV_RETURN || ev->channel != CH_RPC;
        return 0;
    }
    case AMQPC_EV_CANCEL:
        snprintf(why, why_len, "the broker cancelled the reply consumer");
        return -1;
    case AMQPC_EV_CLOSED:
    case AMQPC_EV_ERROR:
        snprintf(why, why_len, "%s", ev->text);
        return -1;
    case AMQPC_EV_BLOCKED:
        atomic_store(&bus->blocked, true);
        LOG(LOG_WARN, "bus connection blocked by the broker reason=\"%s\"", ev->text);
        return 0;
    case AMQPC_EV_UNBLOCKED:
        atomic_store(&bus->blocked, false);
        LOG(LOG_INFO, "bus connection unblocked");
        return 0;
    default:
        return 0;
    }
}

/* Reads every frame available now. Returns 0, or -1 when the connection was
 * lost. */
int mbus_read_frames(struct mbus *bus) {
    char why[256];
    struct amqpc_event ev;

    for (int i = 0; i < READ_BATCH; i++) {
        /* One microsecond, not zero: a zero timeout would hide a missed
         * heartbeat from the library's own check. */
        amqpc_next_event(bus->conn, 1, &ev);
        if (ev.kind == AMQPC_EV_TIMEOUT)
            break;
        if (handle_event(bus, &ev, why, sizeof(why)) < 0) {
            mbus_lose_connection(bus, why);
            return -1;
        }
    }
    amqpc_release_buffers(bus->conn);
    return 0;
}

void mbus_expire_rpcs(struct mbus *bus, double now) {
    while (bus->heap_len > 0 && bus->heap[0]->deadline <= now) {
        struct mbus_job *j = bus->heap[0];
        mbus_rpc_remove(bus, j);
        atomic_fetch_add_explicit(&bus->st_rpc_timeouts, 1, memory_order_relaxed);
        mbus_finish(bus, j, 504, NULL, 0, NULL);
    }
}

/* Publishes whose confirm did not come within bus.confirm_timeout are
 * answered 503 "outcome unknown" (the broker may still take them); a late
 * confirm then finds nothing. The in-flight list is in sending order, so the
 * oldest is first. */
void mbus_expire_confirms(struct mbus *bus, double now) {
    double limit = (double)bus->cfg->bus.confirm_timeout_ms / 1000.0;
    struct mbus_job *j;

    if (limit <= 0)
        return;
    while ((j = bus->inflight.head) != NULL && j->started + limit <= now) {
        mbus_list_unlink(&bus->inflight, j);
        atomic_fetch_add_explicit(&bus->st_confirm_timeouts, 1, memory_order_relaxed);
        mbus_finish(bus, j, 503, NULL, 0, NULL);
    }
}

/* While the broker blocks publishers, nothing is sent: every call is
 * answered 503 "not accepted" at once, instead of waiting on a connection
 * the broker stopped reading. */
void mbus_refuse_blocked(struct mbus *bus, struct mbus_jlist *l) {
    atomic_fetch_add_explicit(&bus->st_blocked, l->n, memory_order_relaxed);
    mbus_fail_list(bus, l, 503);
}
