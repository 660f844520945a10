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

int live_path_expand(const char *channel_path, json_t *params, char *out, size_t len) {
    size_t used = 0;
    const char *p = channel_path;

    while (*p) {
        const char *close;
        char name[128];
        const char *val;
        char *dumped = NULL;
        size_t n;
        if (*p != '{' || !(close = strchr(p, '}'))) {
            if (used + 1 >= len)
                return -1;
            out[used++] = *p++;
            continue;
        }
        n = (size_t)(close - p - 1);
        if (n >= sizeof(name))
            return -1;
        memcpy(name, p + 1, n);
        name[n] = '\0';
        {
            json_t *v = json_object_get(params, name);
            if (!v)
                return -1;
            if (json_is_string(v)) {
                val = json_string_value(v);
            } else {
                dumped = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
                if (!dumped)
                    return -1;
                val = dumped;
            }
        }
        n = strlen(val);
        if (used + n >= len) {
            free(dumped);
            return -1;
        }
        memcpy(out + used, val, n);
        used += n;
        free(dumped);
        p = close + 1;
    }
    out[used] = '\0';
    return 0;
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

struct live_msg *live_msg_new_data(int channel, const char *id, const char *data, size_t data_len,
                                   size_t pre) {
    const size_t flags = JSON_ENCODE_ANY | JSON_ENSURE_ASCII;
    json_t *v = data ? json_loadb(data, data_len, JSON_DECODE_ANY, NULL) : json_null();
    struct live_msg *m;
    size_t need;

    /* Data jansson cannot hold (a number beyond its range) goes out as the
     * publisher's text: still the data, in the store's form. */
    need = v ? json_dumpb(v, NULL, 0, flags) : data_len;
    if ((v && need == 0) || pre < 10 || !(m = malloc(sizeof(*m) + pre + need))) {
        json_decref(v);
        return NULL;
    }
    atomic_init(&m->refs, 1);
    m->channel = channel;
    m->pre = pre;
    m->path = NULL;
    m->lseq = 0;
    m->at_ms = 0;
    m->hnext = NULL;
    m->sse = NULL;
    m->sse_len = 0;
    m->binary = true;
    if (v)
        m->len = json_dumpb(v, (char *)m->data + pre, need, flags);
    else
        memcpy(m->data + pre, data, m->len = data_len);
    json_decref(v);
    snprintf(m->id, sizeof(m->id), "%s", id ? id : "");
    write_header(m, 0x82);
    return m;
}

struct live_msg *live_msg_new(int channel, const char *channel_path, const char *id,
                              const char *received_at, json_t *data, size_t pre) {
    return live_msg_new_params(channel, channel_path, id, received_at, NULL, data, pre);
}

struct live_msg *live_msg_new_params(int channel, const char *channel_path, const char *id,
                                     const char *received_at, json_t *params, json_t *data,
                                     size_t pre) {
    char *text = json_dumps(data ? data : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    struct live_msg *m;

    if (!text)
        return NULL;
    m = live_msg_new_text(channel, channel_path, id, received_at, params, text, strlen(text), pre);
    free(text);
    return m;
}

struct live_msg *live_msg_new_text(int channel, const char *channel_path, const char *id,
                                   const char *received_at, json_t *params, const char *data,
                                   size_t data_len, size_t pre) {
    static const char tail[] = "null}";
    struct live_msg *m = NULL;
    char *path = NULL, *head = NULL;
    json_t *frame;
    size_t need, head_len;

    frame = json_object();
    if (!frame)
        return NULL;
    if (json_object_set_new(frame, "id", json_string(id ? id : "")) < 0 ||
        json_object_set_new(frame, "channel", json_string(channel_path)) < 0)
        goto out_frame;
    if (json_is_object(params) && json_object_size(params) > 0) {
        char buf[2048];
        /* Without every parameter of the template there is no concrete path:
         * the frame still carries what was given. */
        if (live_path_expand(channel_path, params, buf, sizeof(buf)) == 0) {
            path = strdup(buf);
            if (!path || json_object_set_new(frame, "path", json_string(buf)) < 0)
                goto out_frame;
        }
        if (json_object_set(frame, "params", params) < 0)
            goto out_frame;
    }
    /* "data" is the last member: the frame is written with null there,
     * and the data's text (the publisher's, never re-encoded: the frame
     * carries exactly what the store keeps) replaces that null. */
    if (json_object_set_new(frame, "received_at", json_string(received_at ? received_at : "")) <
            0 ||
        json_object_set_new(frame, "data", json_null()) < 0)
        goto out_frame;
    head = json_dumps(frame, JSON_COMPACT);
    if (!head)
        goto out_frame;
    head_len = strlen(head);
    if (head_len < sizeof(tail) - 1 ||
        memcmp(head + head_len - (sizeof(tail) - 1), tail, sizeof(tail) - 1) != 0)
        goto out_frame;
    head_len -= sizeof(tail) - 1;
    if (!data) {
        data = "null";
        data_len = 4;
    }
    need = head_len + data_len + 1;
    if (pre < 10)
        goto out_frame;
    m = malloc(sizeof(*m) + pre + need);
    if (!m)
        goto out_frame;
    atomic_init(&m->refs, 1);
    m->channel = channel;
    m->pre = pre;
    m->path = path;
    path = NULL;
    m->lseq = 0;
    m->at_ms = 0;
    m->hnext = NULL;
    m->sse = NULL;
    m->sse_len = 0;
    memcpy(m->data + pre, head, head_len);
    memcpy(m->data + pre + head_len, data, data_len);
    m->data[pre + head_len + data_len] = '}';
    m->len = need;
    m->binary = false;
    snprintf(m->id, sizeof(m->id), "%s", id ? id : "");
    write_header(m, 0x81);
out_frame:
    free(head);
    free(path);
    json_decref(frame);
    return m;
}

struct live_msg *live_msg_ref(struct live_msg *m) {
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void live_msg_unref(struct live_msg *m) {
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) {
        free(m->path);
        free(m->sse);
        free(m);
    }
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
