/* Shared, reference-counted message buffers and the hand-off queue between
 * the bus thread and the websocket service thread.
 *
 * A message from the bus is encoded once, as the websocket text frame every
 * client of its channel receives, in a buffer with LWS_PRE bytes of headroom
 * in front (libwebsockets writes the frame header there). Each client queue
 * holds a reference, so a message costs one allocation however many clients
 * it goes to; the last reference frees it.
 */
#ifndef LIVE_BUF_H
#define LIVE_BUF_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Longest message id: the mapper's Idempotency-Key limit. */
#define LIVE_ID_MAX 200

struct live_msg {
    atomic_int refs;
    int channel;              /* index into the service's channel table */
    char id[LIVE_ID_MAX + 1]; /* message id, NUL-terminated (truncated if longer) */
    /* The concrete path of a route with path parameters ("/orders/42" of
     * "/orders/{id}"), owned; NULL for a route without any. */
    char *path;
    /* Set by the service thread when the message enters its channel's
     * window (window.h); unused elsewhere. */
    uint64_t lseq;
    int64_t at_ms; /* when it entered the window (monotonic ms) */
    /* The Server-Sent Events form ("id: ...\ndata: ...\n\n"), owned, made
     * once by the service thread the first time an SSE client needs it. */
    unsigned char *sse;
    size_t sse_len;
    struct live_msg *hnext;
    size_t len;           /* bytes of the frame payload */
    size_t pre;           /* headroom before the payload (LWS_PRE) */
    size_t hl;            /* bytes of the websocket frame header written just before the payload */
    bool binary;          /* a binary frame (the original fpesa's form), else text */
    unsigned char data[]; /* pre bytes of headroom, then len bytes of JSON */
};

/* Encodes {"id","channel","received_at","data"} into a new message with one
 * reference (with "path" and "params" after "channel" when params is an
 * object with members: a route with path parameters; the path is then the
 * channel path with each {name} replaced by its value), with the header of an unmasked, final text
 * frame (as a server sends it) written in the last hl bytes of the headroom, so several frames can
 * be sent to one client in a single write. id and channel_path are borrowed; data is borrowed (may
 * be NULL, encoded as null); timestamp is seconds since the epoch, 0 for "now". Returns NULL when
 * out of memory or when data cannot be encoded. */
struct live_msg *live_msg_new(int channel, const char *channel_path, const char *id,
                              const char *received_at, json_t *data, size_t pre);

/* The same with path parameters (borrowed; NULL or an empty object for none). */
struct live_msg *live_msg_new_params(int channel, const char *channel_path, const char *id,
                                     const char *received_at, json_t *params, json_t *data,
                                     size_t pre);

/* The same with the data as JSON text data[0..data_len) (borrowed, checked by
 * the caller; NULL for null), spliced into the frame unchanged, so numbers of
 * any size reach the client as they were published. received_at NULL is "". */
struct live_msg *live_msg_new_text(int channel, const char *channel_path, const char *id,
                                   const char *received_at, json_t *params, const char *data,
                                   size_t data_len, size_t pre);

/* Writes channel_path with every {name} replaced by params[name] (strings
 * as they are, other values as JSON) into out (size len). Returns 0, or -1
 * when a parameter is missing or out is too small. */
int live_path_expand(const char *channel_path, json_t *params, char *out, size_t len);

/* The original Python fpesa's live frame: a binary frame holding only data
 * as JSON (jansson's default separators and ASCII escapes, which are what the
 * original's json.dumps writes), with its header in the headroom like
 * live_msg_new's. id and the data's JSON text data[0..data_len) are borrowed
 * (data NULL: null). Returns NULL when out of memory. */
struct live_msg *live_msg_new_data(int channel, const char *id, const char *data, size_t data_len,
                                   size_t pre);

/* Formats milliseconds since the epoch as 2026-01-02T03:04:05.678+00:00 (the
 * form the message store answers with) into buf (>= 40 bytes). 0 means now.
 * Returns buf. */
char *live_time_iso(int64_t ms, char *buf, size_t len);

/* The millisecond time inside a UUIDv7 id (borrowed), or 0 when id is not one.
 * The store takes a message's receive time from it too, so a live frame and
 * the stored message show the same time. */
int64_t live_uuid7_ms(const char *id);

/* Adds a reference and returns m. */
struct live_msg *live_msg_ref(struct live_msg *m);

/* Drops a reference; frees the message with the last one. NULL is fine. */
void live_msg_unref(struct live_msg *m);

/* The payload (after the headroom). */
static inline unsigned char *live_msg_payload(struct live_msg *m) {
    return m->data + m->pre;
}

/* The whole frame, header included, and its size. */
static inline unsigned char *live_msg_frame(struct live_msg *m) {
    return m->data + m->pre - m->hl;
}
static inline size_t live_msg_frame_len(const struct live_msg *m) {
    return m->hl + m->len;
}

/* What the bus thread hands to the service thread. */
enum live_event_kind {
    LIVE_EV_MESSAGE = 0, /* msg: a live message for its channel */
    LIVE_EV_REPLAY = 1,  /* a page of stored messages answering a resume request */
    LIVE_EV_BUS_UP = 2,  /* the broker connection is (again) established */
    LIVE_EV_BUS_DOWN = 3 /* the broker connection was lost */
};

struct live_event {
    struct live_event *next;
    enum live_event_kind kind;
    struct live_msg *msg; /* LIVE_EV_MESSAGE: one reference, taken by the receiver */
    /* LIVE_EV_REPLAY */
    uint64_t client;        /* serial of the client that asked */
    int page;               /* page number the answer is for */
    int error;              /* 0, or the error code the rpc answered */
    size_t n_msgs;          /* messages in the page, oldest first */
    struct live_msg **msgs; /* each one reference, taken by the receiver */
};

/* Frees an event and drops the references it still holds. NULL is fine. */
void live_event_free(struct live_event *ev);

/* A mutex-protected FIFO of events; any thread may push, one thread pops. */
struct live_inbox {
    pthread_mutex_t lock;
    struct live_event *head, *tail;
    size_t depth;
    atomic_bool nonempty; /* a hint readable without the lock */
};

void live_inbox_init(struct live_inbox *q);
/* Frees every queued event. */
void live_inbox_fini(struct live_inbox *q);
/* Appends ev (taken). */
void live_inbox_push(struct live_inbox *q, struct live_event *ev);
/* Removes and returns every queued event as a list in order (new; free each
 * with live_event_free), or NULL. */
struct live_event *live_inbox_take_all(struct live_inbox *q);
/* True when events may be queued: a cheap check without the lock, for the
 * receiver to look for work between other jobs. */
static inline bool live_inbox_nonempty(struct live_inbox *q) {
    return atomic_load_explicit(&q->nonempty, memory_order_relaxed);
}

#endif
