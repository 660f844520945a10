/* The shared bus client's messages (see amqpc.h): publishing, settling,
 * and reading what the broker sends, in the project's types. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqpc_int.h"

static struct amqpc_str str_of(amqp_bytes_t b) {
    return (struct amqpc_str){b.bytes ? (const char *)b.bytes : "", b.len};
}

static amqp_bytes_t bytes_of(const char *s) {
    amqp_bytes_t b = {s ? strlen(s) : 0, (void *)(uintptr_t)s};
    return b;
}

/* ---- values ------------------------------------------------------------------ */

void amqpc_value_of(const amqp_field_value_t *f, struct amqpc_value *out) {
    memset(out, 0, sizeof(*out));
    switch (f->kind) {
    case AMQP_FIELD_KIND_VOID:
        out->kind = AMQPC_V_VOID;
        break;
    case AMQP_FIELD_KIND_BOOLEAN:
        out->kind = AMQPC_V_BOOL;
        out->v.b = f->value.boolean != 0;
        break;
    case AMQP_FIELD_KIND_I8:
        out->kind = AMQPC_V_INT;
        out->v.i = f->value.i8;
        break;
    case AMQP_FIELD_KIND_U8:
        out->kind = AMQPC_V_INT;
        out->v.i = f->value.u8;
        break;
    case AMQP_FIELD_KIND_I16:
        out->kind = AMQPC_V_INT;
        out->v.i = f->value.i16;
        break;
    case AMQP_FIELD_KIND_U16:
        out->kind = AMQPC_V_INT;
        out->v.i = f->value.u16;
        break;
    case AMQP_FIELD_KIND_I32:
        out->kind = AMQPC_V_INT;
        out->v.i = f->value.i32;
        break;
    case AMQP_FIELD_KIND_U32:
        out->kind = AMQPC_V_INT;
        out->v.i = f->value.u32;
        break;
    case AMQP_FIELD_KIND_I64:
        out->kind = AMQPC_V_INT;
        out->v.i = f->value.i64;
        break;
    case AMQP_FIELD_KIND_U64:
        out->kind = AMQPC_V_UINT;
        out->v.u = f->value.u64;
        break;
    case AMQP_FIELD_KIND_TIMESTAMP:
        out->kind = AMQPC_V_TIMESTAMP;
        out->v.i = (int64_t)f->value.u64;
        break;
    case AMQP_FIELD_KIND_F32:
        out->kind = AMQPC_V_FLOAT;
        out->v.f = f->value.f32;
        break;
    case AMQP_FIELD_KIND_F64:
        out->kind = AMQPC_V_FLOAT;
        out->v.f = f->value.f64;
        break;
    case AMQP_FIELD_KIND_UTF8:
        out->kind = AMQPC_V_STRING;
        out->v.s = str_of(f->value.bytes);
        break;
    case AMQP_FIELD_KIND_BYTES:
        out->kind = AMQPC_V_BYTES;
        out->v.s = str_of(f->value.bytes);
        break;
    case AMQP_FIELD_KIND_TABLE:
        out->kind = AMQPC_V_TABLE;
        out->v.t.impl = &f->value.table;
        out->v.t.n = f->value.table.num_entries > 0 ? (size_t)f->value.table.num_entries : 0;
        break;
    case AMQP_FIELD_KIND_ARRAY:
        out->kind = AMQPC_V_ARRAY;
        out->v.t.impl = &f->value.array;
        out->v.t.n = f->value.array.num_entries > 0 ? (size_t)f->value.array.num_entries : 0;
        break;
    default: /* decimal */
        out->kind = AMQPC_V_OTHER;
        break;
    }
}

void amqpc_field_of(const struct amqpc_value *v, amqp_field_value_t *out) {
    memset(out, 0, sizeof(*out));
    switch (v->kind) {
    case AMQPC_V_BOOL:
        out->kind = AMQP_FIELD_KIND_BOOLEAN;
        out->value.boolean = v->v.b;
        break;
    case AMQPC_V_INT:
        if (v->v.i >= INT32_MIN && v->v.i <= INT32_MAX) {
            out->kind = AMQP_FIELD_KIND_I32;
            out->value.i32 = (int32_t)v->v.i;
        } else {
            out->kind = AMQP_FIELD_KIND_I64;
            out->value.i64 = v->v.i;
        }
        break;
    case AMQPC_V_UINT:
        out->kind = AMQP_FIELD_KIND_U64;
        out->value.u64 = v->v.u;
        break;
    case AMQPC_V_TIMESTAMP:
        out->kind = AMQP_FIELD_KIND_TIMESTAMP;
        out->value.u64 = (uint64_t)v->v.i;
        break;
    case AMQPC_V_FLOAT:
        out->kind = AMQP_FIELD_KIND_F64;
        out->value.f64 = v->v.f;
        break;
    case AMQPC_V_STRING:
    case AMQPC_V_BYTES:
        out->kind = v->kind == AMQPC_V_STRING ? AMQP_FIELD_KIND_UTF8 : AMQP_FIELD_KIND_BYTES;
        out->value.bytes.bytes = (void *)(uintptr_t)v->v.s.p;
        out->value.bytes.len = v->v.s.p ? v->v.s.len : 0;
        break;
    default:
        out->kind = AMQP_FIELD_KIND_VOID;
        break;
    }
}

struct amqpc_value amqpc_string(const char *s) {
    struct amqpc_value v = {.kind = AMQPC_V_STRING};

    v.v.s.p = s ? s : "";
    v.v.s.len = s ? strlen(s) : 0;
    return v;
}

void amqpc_table_get(const struct amqpc_table *t, size_t i, struct amqpc_str *name,
                     struct amqpc_value *value) {
    const amqp_table_entry_t *e = &((const amqp_table_t *)t->impl)->entries[i];

    if (name)
        *name = str_of(e->key);
    if (value)
        amqpc_value_of(&e->value, value);
}

void amqpc_array_get(const struct amqpc_table *a, size_t i, struct amqpc_value *value) {
    amqpc_value_of(&((const amqp_array_t *)a->impl)->entries[i], value);
}

/* ---- properties ---------------------------------------------------------- */

void amqpc_props_of(const amqp_basic_properties_t *p, struct amqpc_props *out) {
    amqp_flags_t f = p ? p->_flags : 0;

    memset(out, 0, sizeof(*out));
    if (f & AMQP_BASIC_CONTENT_TYPE_FLAG)
        out->content_type = str_of(p->content_type);
    if (f & AMQP_BASIC_MESSAGE_ID_FLAG)
        out->message_id = str_of(p->message_id);
    if (f & AMQP_BASIC_CORRELATION_ID_FLAG)
        out->correlation_id = str_of(p->correlation_id);
    if (f & AMQP_BASIC_REPLY_TO_FLAG)
        out->reply_to = str_of(p->reply_to);
    if (f & AMQP_BASIC_EXPIRATION_FLAG)
        out->expiration = str_of(p->expiration);
    if (f & AMQP_BASIC_DELIVERY_MODE_FLAG)
        out->delivery_mode = p->delivery_mode;
    if (f & AMQP_BASIC_TIMESTAMP_FLAG) {
        out->has_timestamp = true;
        out->timestamp = p->timestamp;
    }
    if ((f & AMQP_BASIC_HEADERS_FLAG) && p->headers.num_entries > 0) {
        out->headers.impl = &p->headers;
        out->headers.n = (size_t)p->headers.num_entries;
    }
}

static bool named(amqp_bytes_t key, const char *name) {
    size_t n = strlen(name);
    return key.len == n && memcmp(key.bytes, name, n) == 0;
}

static void set_str(amqp_basic_properties_t *p, amqp_flags_t flag, amqp_bytes_t *field,
                    const char *s) {
    if (!s)
        return;
    p->_flags |= flag;
    *field = bytes_of(s);
}

int amqpc_props_build(const struct amqpc_out *m, amqp_basic_properties_t *p, amqp_table_entry_t *e,
                      size_t cap) {
    size_t n = 0;

    if (m->base && m->base->impl)
        *p = ((const amqp_envelope_t *)m->base->impl)->message.properties;
    else
        memset(p, 0, sizeof(*p));
    set_str(p, AMQP_BASIC_CONTENT_TYPE_FLAG, &p->content_type, m->content_type);
    set_str(p, AMQP_BASIC_MESSAGE_ID_FLAG, &p->message_id, m->message_id);
    set_str(p, AMQP_BASIC_CORRELATION_ID_FLAG, &p->correlation_id, m->correlation_id);
    set_str(p, AMQP_BASIC_REPLY_TO_FLAG, &p->reply_to, m->reply_to);
    set_str(p, AMQP_BASIC_EXPIRATION_FLAG, &p->expiration, m->expiration);
    if (m->delivery_mode) {
        p->_flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
        p->delivery_mode = (uint8_t)m->delivery_mode;
    }
    if (m->has_timestamp) {
        p->_flags |= AMQP_BASIC_TIMESTAMP_FLAG;
        p->timestamp = m->timestamp;
    }
    if (m->n_headers == 0 && m->n_drop == 0)
        return 0; /* no headers, or the base's as they are */
    if (p->_flags & AMQP_BASIC_HEADERS_FLAG) {
        for (int i = 0; i < p->headers.num_entries; i++) {
            const amqp_table_entry_t *o = &p->headers.entries[i];
            bool drop = false;

            for (size_t k = 0; !drop && k < m->n_drop; k++)
                drop = named(o->key, m->drop[k]);
            for (size_t k = 0; !drop && k < m->n_headers; k++)
                drop = named(o->key, m->headers[k].name);
            if (drop)
                continue;
            if (n >= cap)
                return -1;
            e[n++] = *o;
        }
    }
    for (size_t k = 0; k < m->n_headers; k++) {
        if (n >= cap)
            return -1;
        e[n].key = bytes_of(m->headers[k].name);
        amqpc_field_of(&m->headers[k].value, &e[n].value);
        n++;
    }
    if (n == 0) {
        p->_flags &= ~(amqp_flags_t)AMQP_BASIC_HEADERS_FLAG;
        p->headers = amqp_empty_table;
        return 0;
    }
    p->_flags |= AMQP_BASIC_HEADERS_FLAG;
    p->headers.num_entries = (int)n;
    p->headers.entries = e;
    return 0;
}

/* ---- publishing and settling ----------------------------------------------- */

int amqpc_publish(struct amqpc_conn *conn, int channel, const struct amqpc_out *m) {
    amqp_basic_properties_t p;
    amqp_table_entry_t stack[AMQPC_HEADERS_MAX], *e = stack;
    amqp_bytes_t body = {m->body_len, (void *)(uintptr_t)m->body};
    size_t need = m->n_headers;
    int st;

    /* A delivery being passed on may carry any number of headers: room for
     * them is allocated only then, never on the hot path. */
    if (m->base && m->base->impl) {
        const amqp_basic_properties_t *bp =
            &((const amqp_envelope_t *)m->base->impl)->message.properties;
        if ((bp->_flags & AMQP_BASIC_HEADERS_FLAG) && bp->headers.num_entries > 0)
            need += (size_t)bp->headers.num_entries;
    }
    if (need > AMQPC_HEADERS_MAX) {
        e = malloc(need * sizeof(*e));
        if (!e)
            return AMQP_STATUS_NO_MEMORY;
    }
    st = amqpc_props_build(m, &p, e, need > AMQPC_HEADERS_MAX ? need : AMQPC_HEADERS_MAX) < 0
             ? AMQP_STATUS_TABLE_TOO_BIG
             : amqp_basic_publish(conn->st, (amqp_channel_t)channel, bytes_of(m->exchange),
                                  bytes_of(m->routing_key ? m->routing_key : ""), m->mandatory, 0,
                                  &p, body);
    if (e != stack)
        free(e);
    return st;
}

int amqpc_ack(struct amqpc_conn *conn, int channel, uint64_t tag, bool multiple) {
    return amqp_basic_ack(conn->st, (amqp_channel_t)channel, tag, multiple);
}

int amqpc_nack(struct amqpc_conn *conn, int channel, uint64_t tag, bool multiple, bool requeue) {
    return amqp_basic_nack(conn->st, (amqp_channel_t)channel, tag, multiple, requeue);
}

const char *amqpc_status_text(int status) {
    return amqp_error_string2(status);
}

/* ---- reading --------------------------------------------------------------- */

void amqpc_envelope_free(struct amqpc_envelope *env) {
    if (!env || !env->impl)
        return;
    amqp_destroy_envelope(env->impl);
    free(env->impl);
    env->impl = NULL;
}

/* A method frame as an event; a close is answered with close-ok. */
static void method_event(struct amqpc_conn *conn, const amqp_frame_t *f, struct amqpc_event *ev) {
    const amqp_method_t *m = &f->payload.method;

    switch (m->id) {
    case AMQP_BASIC_ACK_METHOD: {
        const amqp_basic_ack_t *a = m->decoded;
        ev->kind = AMQPC_EV_ACK;
        ev->tag = a->delivery_tag;
        ev->multiple = a->multiple;
        return;
    }
    case AMQP_BASIC_NACK_METHOD: {
        const amqp_basic_nack_t *a = m->decoded;
        ev->kind = AMQPC_EV_NACK;
        ev->tag = a->delivery_tag;
        ev->multiple = a->multiple;
        return;
    }
    case AMQP_BASIC_DELIVER_METHOD: {
        const amqp_basic_deliver_t *d = m->decoded;
        ev->kind = AMQPC_EV_DELIVER;
        ev->tag = d->delivery_tag;
        return;
    }
    case AMQP_BASIC_RETURN_METHOD:
        ev->kind = AMQPC_EV_RETURN;
        return;
    case AMQP_BASIC_CANCEL_METHOD:
        ev->kind = AMQPC_EV_CANCEL;
        return;
    case AMQP_CHANNEL_CLOSE_METHOD: {
        const amqp_channel_close_t *c = m->decoded;
        amqp_channel_close_ok_t ok = {0};
        ev->kind = AMQPC_EV_CLOSED;
        snprintf(ev->text, sizeof(ev->text), "channel %u closed by broker: %u %.*s", f->channel,
                 c->reply_code, (int)c->reply_text.len, (const char *)c->reply_text.bytes);
        amqp_send_method(conn->st, f->channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        return;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        const amqp_connection_close_t *c = m->decoded;
        amqp_connection_close_ok_t ok = {0};
        ev->kind = AMQPC_EV_CLOSED;
        snprintf(ev->text, sizeof(ev->text), "connection closed by broker: %u %.*s", c->reply_code,
                 (int)c->reply_text.len, (const char *)c->reply_text.bytes);
        amqp_send_method(conn->st, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        return;
    }
    case AMQP_CONNECTION_BLOCKED_METHOD: {
        const amqp_connection_blocked_t *b = m->decoded;
        ev->kind = AMQPC_EV_BLOCKED;
        snprintf(ev->text, sizeof(ev->text), "%.*s", b ? (int)b->reason.len : 0,
                 b ? (const char *)b->reason.bytes : "");
        return;
    }
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        ev->kind = AMQPC_EV_UNBLOCKED;
        return;
    default:
        ev->kind = AMQPC_EV_OTHER;
        return;
    }
}

static void event_reset(struct amqpc_event *ev, enum amqpc_event_kind kind) {
    ev->kind = kind;
    ev->channel = 0;
    ev->tag = 0;
    ev->multiple = false;
    ev->text[0] = '\0';
}

void amqpc_next_event(struct amqpc_conn *conn, long timeout_us, struct amqpc_event *ev) {
    struct timeval tv = {timeout_us / 1000000, timeout_us % 1000000};
    amqp_frame_t f;
    int st;

    if (timeout_us < 1)
        tv.tv_usec = 1;
    event_reset(ev, AMQPC_EV_OTHER);
    st = amqp_simple_wait_frame_noblock(conn->st, &f, &tv);
    if (st == AMQP_STATUS_TIMEOUT) {
        ev->kind = AMQPC_EV_TIMEOUT;
        return;
    }
    if (st != AMQP_STATUS_OK) {
        ev->kind = AMQPC_EV_ERROR;
        snprintf(ev->text, sizeof(ev->text), "%s", amqp_error_string2(st));
        return;
    }
    ev->channel = f.channel;
    switch (f.frame_type) {
    case AMQP_FRAME_METHOD:
        method_event(conn, &f, ev);
        return;
    case AMQP_FRAME_HEADER:
        ev->kind = AMQPC_EV_HEADER;
        ev->body_size = f.payload.properties.body_size;
        amqpc_props_of(f.payload.properties.decoded, &ev->props);
        return;
    case AMQP_FRAME_BODY:
        ev->kind = AMQPC_EV_BODY;
        ev->body = str_of(f.payload.body_fragment);
        return;
    default: /* a heartbeat */
        return;
    }
}

enum amqpc_event_kind amqpc_next_envelope(struct amqpc_conn *conn, long timeout_ms,
                                          struct amqpc_envelope *env, struct amqpc_event *ev) {
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    amqp_envelope_t *e = malloc(sizeof(*e));
    amqp_rpc_reply_t r;
    amqp_frame_t f;
    int st;

    memset(env, 0, sizeof(*env));
    event_reset(ev, AMQPC_EV_OTHER);
    if (!e) {
        ev->kind = AMQPC_EV_ERROR;
        snprintf(ev->text, sizeof(ev->text), "out of memory");
        return ev->kind;
    }
    amqp_maybe_release_buffers(conn->st);
    r = amqp_consume_message(conn->st, e, &tv, 0);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
        env->impl = e;
        env->channel = e->channel;
        env->delivery_tag = e->delivery_tag;
        env->redelivered = e->redelivered;
        env->exchange = str_of(e->exchange);
        env->routing_key = str_of(e->routing_key);
        env->consumer_tag = str_of(e->consumer_tag);
        env->body = e->message.body.bytes ? e->message.body.bytes : "";
        env->body_len = e->message.body.len;
        amqpc_props_of(&e->message.properties, &env->props);
        ev->kind = AMQPC_EV_ENVELOPE;
        ev->channel = e->channel;
        ev->tag = e->delivery_tag;
        return ev->kind;
    }
    free(e);
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT) {
        ev->kind = AMQPC_EV_TIMEOUT;
        return ev->kind;
    }
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
        /* A frame other than a delivery waits in the library's queue. */
        st = amqp_simple_wait_frame_noblock(conn->st, &f, &tv);
        if (st == AMQP_STATUS_TIMEOUT) {
            ev->kind = AMQPC_EV_TIMEOUT;
            return ev->kind;
        }
        if (st != AMQP_STATUS_OK) {
            ev->kind = AMQPC_EV_ERROR;
            snprintf(ev->text, sizeof(ev->text), "%s", amqp_error_string2(st));
            return ev->kind;
        }
        ev->channel = f.channel;
        if (f.frame_type == AMQP_FRAME_METHOD)
            method_event(conn, &f, ev);
        return ev->kind;
    }
    ev->kind = AMQPC_EV_ERROR;
    amqpc_reply_text(r, ev->text, sizeof(ev->text));
    return ev->kind;
}

bool amqpc_buffered(struct amqpc_conn *conn) {
    return amqp_frames_enqueued(conn->st) || amqp_data_in_buffer(conn->st);
}

int amqpc_fd(struct amqpc_conn *conn) {
    return amqp_get_sockfd(conn->st);
}

void amqpc_release_buffers(struct amqpc_conn *conn) {
    amqp_maybe_release_buffers(conn->st);
}

void amqpc_heartbeat(struct amqpc_conn *conn) {
    amqp_frame_t hb = {.frame_type = AMQP_FRAME_HEARTBEAT, .channel = 0};

    amqp_send_frame(conn->st, &hb);
}
