/* AMQP header values as text for plugins. A worker in another language sees
 * the headers as its AMQP library decodes them; a C plugin gets the same
 * information as NUL-terminated text, so it needs no AMQP types. */
#include "headers.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_len(const void *p, size_t len) {
    char *s = malloc(len + 1);

    if (!s)
        return NULL;
    if (len)
        memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

static json_t *field_json(const amqp_field_value_t *v);

/* A table as a JSON object; NULL when out of memory. */
static json_t *table_json(const amqp_table_t *t) {
    json_t *o = json_object();

    for (int i = 0; o && i < t->num_entries; i++) {
        char *key = dup_len(t->entries[i].key.bytes, t->entries[i].key.len);
        json_t *v = field_json(&t->entries[i].value);

        if (!key || !v) {
            json_decref(v);
            json_decref(o);
            o = NULL;
        } else {
            /* A key that is not UTF-8 cannot be a JSON key: it is left out
             * (the call takes v either way). */
            json_object_set_new(o, key, v);
        }
        free(key);
    }
    return o;
}

/* One value as JSON: text that is not UTF-8 becomes null. NULL when out of
 * memory. */
static json_t *field_json(const amqp_field_value_t *v) {
    switch (v->kind) {
    case AMQP_FIELD_KIND_BOOLEAN:
        return json_boolean(v->value.boolean);
    case AMQP_FIELD_KIND_I8:
        return json_integer(v->value.i8);
    case AMQP_FIELD_KIND_U8:
        return json_integer(v->value.u8);
    case AMQP_FIELD_KIND_I16:
        return json_integer(v->value.i16);
    case AMQP_FIELD_KIND_U16:
        return json_integer(v->value.u16);
    case AMQP_FIELD_KIND_I32:
        return json_integer(v->value.i32);
    case AMQP_FIELD_KIND_U32:
        return json_integer(v->value.u32);
    case AMQP_FIELD_KIND_I64:
    case AMQP_FIELD_KIND_TIMESTAMP:
        return json_integer((json_int_t)v->value.i64);
    case AMQP_FIELD_KIND_U64:
        return v->value.u64 > INT64_MAX ? json_real((double)v->value.u64)
                                        : json_integer((json_int_t)v->value.u64);
    case AMQP_FIELD_KIND_F32:
        return json_real(v->value.f32);
    case AMQP_FIELD_KIND_F64:
        return json_real(v->value.f64);
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES: {
        json_t *s =
            json_stringn(v->value.bytes.bytes ? v->value.bytes.bytes : "", v->value.bytes.len);
        return s ? s : json_null();
    }
    case AMQP_FIELD_KIND_TABLE:
        return table_json(&v->value.table);
    case AMQP_FIELD_KIND_ARRAY: {
        json_t *a = json_array();

        for (int i = 0; a && i < v->value.array.num_entries; i++) {
            if (json_array_append_new(a, field_json(&v->value.array.entries[i])) < 0) {
                json_decref(a);
                a = NULL;
            }
        }
        return a;
    }
    default: /* void, decimal */
        return json_null();
    }
}

/* One header value as text (new; free()); NULL when out of memory. */
static char *value_text(const amqp_field_value_t *v) {
    char buf[32];
    json_t *j;
    char *s;

    switch (v->kind) {
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
        return dup_len(v->value.bytes.bytes, v->value.bytes.len);
    case AMQP_FIELD_KIND_VOID:
        return dup_len("", 0);
    case AMQP_FIELD_KIND_BOOLEAN:
        return dup_len(v->value.boolean ? "true" : "false", v->value.boolean ? 4 : 5);
    case AMQP_FIELD_KIND_U64:
        snprintf(buf, sizeof(buf), "%" PRIu64, v->value.u64);
        return dup_len(buf, strlen(buf));
    case AMQP_FIELD_KIND_TABLE:
    case AMQP_FIELD_KIND_ARRAY:
    default:
        break;
    }
    j = field_json(v);
    if (!j)
        return NULL;
    /* jansson's default allocator is malloc(): the text is free()d as the
     * other values are. */
    s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    return s;
}

void headers_free(char **h, size_t n) {
    if (!h)
        return;
    for (size_t i = 0; i < 2 * n; i++)
        free(h[i]);
    free(h);
}

int headers_from_amqp(const amqp_table_t *t, char ***out, size_t *n) {
    size_t count = t && t->num_entries > 0 ? (size_t)t->num_entries : 0;
    char **h = calloc(2 * count + 1, sizeof(*h));

    *out = NULL;
    *n = 0;
    if (!h)
        return -1;
    for (size_t i = 0; i < count; i++) {
        h[2 * i] = dup_len(t->entries[i].key.bytes, t->entries[i].key.len);
        h[2 * i + 1] = value_text(&t->entries[i].value);
        if (!h[2 * i] || !h[2 * i + 1]) {
            headers_free(h, i + 1);
            return -1;
        }
    }
    *out = h;
    *n = count;
    return 0;
}
