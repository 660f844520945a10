#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

char *live_time_iso(int64_t ms, char *buf, size_t len) {
    struct tm tm;
    struct timespec now;
    time_t t;
    size_t n;

    if (ms <= 0) {
        clock_gettime(CLOCK_REALTIME, &now);
        ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    }
    t = (time_t)(ms / 1000);
    gmtime_r(&t, &tm);
    n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03d+00:00", (int)(ms % 1000));
    return buf;
}

int64_t live_uuid7_ms(const char *id) {
    int64_t ms = 0;
    int digits = 0;

    /* xxxxxxxx-xxxx-7xxx-[89ab]xxx-xxxxxxxxxxxx: the first 48 bits are the
     * Unix time in milliseconds. */
    if (!id || strlen(id) != 36 || id[8] != '-' || id[13] != '-' || id[14] != '7' ||
        id[18] != '-' || id[23] != '-' || !strchr("89abAB", id[19]))
        return 0;
    for (int i = 0; i < 13 && digits < 12; i++) {
        char c = id[i];
        int v;
        if (c == '-')
            continue;
        if (c >= '0' && c <= '9')
            v = c - '0';
        else if (c >= 'a' && c <= 'f')
            v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v = c - 'A' + 10;
        else
            return 0;
        ms = ms * 16 + v;
        digits++;
    }
    return ms;
}

/* RFC 6455 section 5.2: FIN + the opcode, then the length in 7, 16 or 64
 * bits, written just before the payload. */
static void write_header(struct live_msg *m, unsigned char first) {
    unsigned char *p;
    uint64_t n = m->len;

    m->hl = n < 126 ? 2 : n < 65536 ? 4 : 10;
    p = m->data + m->pre - m->hl;
    p[0] = first;
    if (n < 126) {
        p[1] = (unsigned char)n;
    } else if (n < 65536) {
        p[1] = 126;
        p[2] = (unsigned char)(n >> 8);
        p[3] = (unsigned char)n;
    } else {
        p[1] = 127;
        for (int i = 0; i < 8; i++)
            p[2 + i] = (unsigned char)(n >> (56 - 8 * i));
    }
}

struct live_msg *live_msg_new_data(int channel, const char *id, json_t *data, size_t pre) {
    const size_t flags = JSON_ENCODE_ANY | JSON_ENSURE_ASCII;
    json_t *v = data ? data : json_null();
    struct live_msg *m;
    size_t need = json_dumpb(v, NULL, 0, flags);

    if (need == 0 || pre < 10)
        return NULL;
    m = malloc(sizeof(*m) + pre + need);
    if (!m)
        return NULL;
    atomic_init(&m->refs, 1);
    m->channel = channel;
    m->pre = pre;
    m->binary = true;
    m->len = json_dumpb(v, (char *)m->data + pre, need, flags);
    snprintf(m->id, sizeof(m->id), "%s", id ? id : "");
    write_header(m, 0x82);
    return m;
}

struct live_msg *live_msg_new(int channel, const char *channel_path, const char *id,
                              const char *received_at, json_t *data, size_t pre) {
    struct live_msg *m = NULL;
    json_t *frame;
    size_t need;

    frame = json_object();
    if (!frame)
        return NULL;
    if (json_object_set_new(frame, "id", json_string(id ? id : "")) < 0 ||
        json_object_set_new(frame, "channel", json_string(channel_path)) < 0 ||
        json_object_set_new(frame, "received_at", json_string(received_at)) < 0 ||
        json_object_set(frame, "data", data ? data : json_null()) < 0)
        goto out_frame;
    need = json_dumpb(frame, NULL, 0, JSON_COMPACT);
    if (need == 0)
        goto out_frame;
    if (pre < 10)
        goto out_frame;
    m = malloc(sizeof(*m) + pre + need);
    if (!m)
        goto out_frame;
    atomic_init(&m->refs, 1);
    m->channel = channel;
    m->pre = pre;
    m->binary = false;
    m->len = json_dumpb(frame, (char *)m->data + pre, need, JSON_COMPACT);
    snprintf(m->id, sizeof(m->id), "%s", id ? id : "");
    write_header(m, 0x81);
out_frame:
    json_decref(frame);
    return m;
}

struct live_msg *live_msg_ref(struct live_msg *m) {
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void live_msg_unref(struct live_msg *m) {
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        free(m);
}

void live_event_free(struct live_event *ev) {
    if (!ev)
        return;
    live_msg_unref(ev->msg);
    for (size_t i = 0; i < ev->n_msgs; i++)
        live_msg_unref(ev->msgs[i]);
    free(ev->msgs);
    free(ev);
}

void live_inbox_init(struct live_inbox *q) {
    pthread_mutex_init(&q->lock, NULL);
    q->head = q->tail = NULL;
    q->depth = 0;
    atomic_init(&q->nonempty, false);
}

void live_inbox_fini(struct live_inbox *q) {
    struct live_event *ev = live_inbox_take_all(q);

    while (ev) {
        struct live_event *next = ev->next;
        live_event_free(ev);
        ev = next;
    }
    pthread_mutex_destroy(&q->lock);
}

void live_inbox_push(struct live_inbox *q, struct live_event *ev) {
    ev->next = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->next = ev;
    else
        q->head = ev;
    q->tail = ev;
    q->depth++;
    atomic_store_explicit(&q->nonempty, true, memory_order_relaxed);
    pthread_mutex_unlock(&q->lock);
}

struct live_event *live_inbox_take_all(struct live_inbox *q) {
    struct live_event *all;

    pthread_mutex_lock(&q->lock);
    all = q->head;
    q->head = q->tail = NULL;
    q->depth = 0;
    atomic_store_explicit(&q->nonempty, false, memory_order_relaxed);
    pthread_mutex_unlock(&q->lock);
    return all;
}
