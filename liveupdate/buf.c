#include "buf.h"

#include "jsontext.h"

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

/* Writes the JSON string literal of s (any bytes; what is not UTF-8 becomes
 * U+FFFD) at out, or only counts it when out is NULL. Returns its length. */
static size_t put_string(char *out, const char *s) {
    size_t len = strlen(s), cap = 6 * len + 3, n;
    char *tmp = malloc(cap);

    if (!tmp)
        return 0;
    n = jtext_escape(tmp, cap, s, len);
    if (out) {
        out[0] = '"';
        memcpy(out + 1, tmp, n);
        out[n + 1] = '"';
    }
    free(tmp);
    return n + 2;
}

struct live_msg *live_msg_new(int channel, const char *channel_path, const char *id,
                              const char *received_at, const char *data, size_t data_len,
                              size_t pre) {
    static const char k_id[] = "{\"id\":", k_ch[] = ",\"channel\":", k_at[] = ",\"received_at\":",
                      k_data[] = ",\"data\":";
    struct live_msg *m;
    size_t need, w, n_id, n_ch, n_at;
    char *p;

    if (pre < 10)
        return NULL;
    if (!id)
        id = "";
    if (!data) {
        data = "null";
        data_len = 4;
    }
    n_id = put_string(NULL, id);
    n_ch = put_string(NULL, channel_path);
    n_at = put_string(NULL, received_at);
    if (!n_id || !n_ch || !n_at)
        return NULL;
    need = sizeof(k_id) - 1 + n_id + sizeof(k_ch) - 1 + n_ch + sizeof(k_at) - 1 + n_at +
           sizeof(k_data) - 1 + data_len + 1;
    m = malloc(sizeof(*m) + pre + need);
    if (!m)
        return NULL;
    atomic_init(&m->refs, 1);
    m->channel = channel;
    m->pre = pre;
    /* The data is the publisher's text, spliced in unchanged: the frame
     * carries exactly what the store keeps. */
    p = (char *)m->data + pre;
    w = 0;
    memcpy(p + w, k_id, sizeof(k_id) - 1);
    w += sizeof(k_id) - 1;
    w += put_string(p + w, id);
    memcpy(p + w, k_ch, sizeof(k_ch) - 1);
    w += sizeof(k_ch) - 1;
    w += put_string(p + w, channel_path);
    memcpy(p + w, k_at, sizeof(k_at) - 1);
    w += sizeof(k_at) - 1;
    w += put_string(p + w, received_at);
    memcpy(p + w, k_data, sizeof(k_data) - 1);
    w += sizeof(k_data) - 1;
    memcpy(p + w, data, data_len);
    w += data_len;
    p[w++] = '}';
    m->len = w;
    snprintf(m->id, sizeof(m->id), "%s", id);
    /* RFC 6455 section 5.2: FIN + text opcode, then the length in 7, 16 or 64 bits. */
    {
        unsigned char *h;
        uint64_t n = m->len;
        m->hl = n < 126 ? 2 : n < 65536 ? 4 : 10;
        h = m->data + pre - m->hl;
        h[0] = 0x81;
        if (n < 126) {
            h[1] = (unsigned char)n;
        } else if (n < 65536) {
            h[1] = 126;
            h[2] = (unsigned char)(n >> 8);
            h[3] = (unsigned char)n;
        } else {
            h[1] = 127;
            for (int i = 0; i < 8; i++)
                h[2 + i] = (unsigned char)(n >> (56 - 8 * i));
        }
    }
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
