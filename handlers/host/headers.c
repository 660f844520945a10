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

static json_t *field_json(const struct amqpc_value *v);

/* A table as a JSON object; NULL when out of memory. */
static json_t *table_json(const struct amqpc_table *t) {
    json_t *o = json_object();

    for (size_t i = 0; o && i < t->n; i++) {
        struct amqpc_str name;
        struct amqpc_value val;
        char *key;
        json_t *v;

        amqpc_table_get(t, i, &name, &val);
        key = dup_len(name.p, name.len);
        v = field_json(&val);
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
static json_t *field_json(const struct amqpc_value *v) {
    switch (v->kind) {
    case AMQPC_V_BOOL:
        return json_boolean(v->v.b);
    case AMQPC_V_INT:
    case AMQPC_V_TIMESTAMP:
        return json_integer((json_int_t)v->v.i);
    case AMQPC_V_UINT:
        return v->v.u > INT64_MAX ? json_real((double)v->v.u) : json_integer((json_int_t)v->v.u);
    case AMQPC_V_FLOAT:
        return json_real(v->v.f);
    case AMQPC_V_STRING:
    case AMQPC_V_BYTES: {
        json_t *s = json_stringn(v->v.s.p ? v->v.s.p : "", v->v.s.len);
        return s ? s : json_null();
    }
    case AMQPC_V_TABLE:
        return table_json(&v->v.t);
    case AMQPC_V_ARRAY: {
        json_t *a = json_array();

        for (size_t i = 0; a && i < v->v.t.n; i++) {
            struct amqpc_value e;

            amqpc_array_get(&v->v.t, i, &e);
            if (json_array_append_new(a, field_json(&e)) < 0) {
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
static char *value_text(const struct amqpc_value *v) {
    char buf[32];
    json_t *j;
    char *s;

    switch (v->kind) {
    case AMQPC_V_STRING:
    case AMQPC_V_BYTES:
        return dup_len(v->v.s.p, v->v.s.len);
    case AMQPC_V_VOID:
        return dup_len("", 0);
    case AMQPC_V_BOOL:
        return dup_len(v->v.b ? "true" : "false", v->v.b ? 4 : 5);
    case AMQPC_V_UINT:
        snprintf(buf, sizeof(buf), "%" PRIu64, v->v.u);
        return dup_len(buf, strlen(buf));
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

int headers_from_amqp(const struct amqpc_table *t, char ***out, size_t *n) {
    size_t count = t ? t->n : 0;
    char **h = calloc(2 * count + 1, sizeof(*h));

    *out = NULL;
    *n = 0;
    if (!h)
        return -1;
    for (size_t i = 0; i < count; i++) {
        struct amqpc_str name;
        struct amqpc_value val;

        amqpc_table_get(t, i, &name, &val);
        h[2 * i] = dup_len(name.p, name.len);
        h[2 * i + 1] = value_text(&val);
        if (!h[2 * i] || !h[2 * i + 1]) {
            headers_free(h, i + 1);
            return -1;
        }
    }
    *out = h;
    *n = count;
    return 0;
}
