/* JSON values as JSON Schema sees them, shared by compilation and
 * validation: types, numeric comparison (exact for numbers written in the
 * document), equality, and the JSON pointer tokens of error paths.
 */
#include "jsonschema_int.h"

#include "decimal.h"
#include "jsontext.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

void jschema_copy_str(char *dst, size_t size, const char *src) {
    size_t n = strlen(src);
    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Appends one JSON pointer token (escaped) to buf of size size at *pos. */
void jschema_append_token(char *buf, size_t size, size_t *pos, const char *tok, size_t len) {
    if (*pos + 1 >= size)
        return;
    buf[(*pos)++] = '/';
    for (size_t i = 0; i < len && *pos + 1 < size; i++) {
        char ch = tok[i];
        if (ch == '~' || ch == '/') {
            if (*pos + 2 >= size)
                break;
            buf[(*pos)++] = '~';
            buf[(*pos)++] = ch == '~' ? '0' : '1';
        } else {
            buf[(*pos)++] = ch;
        }
    }
    buf[*pos] = '\0';
}

/* Returns a new string: path followed by the escaped token (free with free). */
char *jschema_path_join(const char *path, const char *tok, size_t toklen) {
    size_t plen = strlen(path);
    size_t size = plen + 2 + 2 * toklen;
    char *s = malloc(size);
    if (!s)
        return NULL;
    memcpy(s, path, plen + 1);
    size_t pos = plen;
    jschema_append_token(s, size, &pos, tok, toklen);
    return s;
}

bool jschema_is_integral_real(double d) {
    return isfinite(d) && floor(d) == d;
}

/* The exact text of the numbers of the instance being validated on this
 * thread (jschema_validate_exact), or NULL: numbers jansson cannot hold
 * exactly are compared through it. */
_Thread_local const struct jtext_numbers *jschema_tl_nums;

bool jschema_has_text(const json_t *j) {
    size_t len;

    return jschema_tl_nums && jtext_number_text(jschema_tl_nums, j, &len) != NULL;
}

/* d = the value of the number j: its text when kept, else its int64, else
 * the shortest decimal of its double. */
void jschema_num_decimal(const json_t *j, struct decimal *d) {
    size_t len;
    const char *t = jschema_tl_nums ? jtext_number_text(jschema_tl_nums, j, &len) : NULL;

    if (t && decimal_parse(d, t, len) == 0)
        return;
    d->owned = NULL;
    if (json_is_integer(j))
        decimal_from_int(d, json_integer_value(j));
    else
        decimal_from_double(d, json_real_value(j));
}

static bool text_is_integral(const json_t *j) {
    struct decimal d;
    bool r;

    jschema_num_decimal(j, &d);
    r = decimal_is_integer(&d);
    decimal_fini(&d);
    return r;
}

unsigned jschema_type_of(const json_t *j) {
    switch (json_typeof(j)) {
    case JSON_NULL:
        return T_NULL;
    case JSON_TRUE:
    case JSON_FALSE:
        return T_BOOLEAN;
    case JSON_OBJECT:
        return T_OBJECT;
    case JSON_ARRAY:
        return T_ARRAY;
    case JSON_STRING:
        return T_STRING;
    case JSON_INTEGER:
        return T_NUMBER | T_INTEGER;
    case JSON_REAL:
        if (jschema_has_text(j))
            return T_NUMBER | (text_is_integral(j) ? T_INTEGER : 0);
        return T_NUMBER | (jschema_is_integral_real(json_real_value(j)) ? T_INTEGER : 0);
    }
    return 0;
}

const char *jschema_type_name(const json_t *j) {
    switch (json_typeof(j)) {
    case JSON_NULL:
        return "null";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    }
    return "?";
}

/* Compares two JSON numbers by value: -1, 0 or 1. Integers compare exactly;
 * mixed comparisons go through long double, which holds every int64 and
 * every double exactly on the platforms we build for. */
int jschema_num_cmp(const json_t *a, const json_t *b) {
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return x < y ? -1 : x > y;
    }
    if (jschema_has_text(a) || jschema_has_text(b)) {
        struct decimal x, y;
        int r;

        jschema_num_decimal(a, &x);
        jschema_num_decimal(b, &y);
        r = decimal_cmp(&x, &y);
        decimal_fini(&x);
        decimal_fini(&y);
        return r;
    }
    long double x = json_is_integer(a) ? (long double)json_integer_value(a) : json_real_value(a);
    long double y = json_is_integer(b) ? (long double)json_integer_value(b) : json_real_value(b);
    return x < y ? -1 : x > y;
}

void jschema_num_str(const json_t *n, char *buf, size_t size) {
    if (jschema_has_text(n)) {
        struct decimal d;

        jschema_num_decimal(n, &d);
        decimal_format(&d, buf, size);
        decimal_fini(&d);
    } else if (json_is_integer(n))
        snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(n));
    else
        snprintf(buf, size, "%.17g", json_real_value(n));
}

/* JSON equality: numbers by value, objects regardless of key order.
 * Returns 1 when equal, 0 when not, -1 when nested too deeply to tell. */
int jschema_json_eq(const json_t *a, const json_t *b, int depth) {
    if (depth > MAX_INSTANCE_DEPTH)
        return -1;
    if (json_is_number(a) && json_is_number(b))
        return jschema_num_cmp(a, b) == 0;
    if (json_typeof(a) != json_typeof(b))
        return 0;
    switch (json_typeof(a)) {
    case JSON_STRING: {
        size_t la = json_string_length(a);
        return la == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), la) == 0;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(a);
        if (n != json_array_size(b))
            return 0;
        for (size_t i = 0; i < n; i++) {
            int r = jschema_json_eq(json_array_get(a, i), json_array_get(b, i), depth + 1);
            if (r != 1)
                return r;
        }
        return 1;
    }
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return 0;
        const char *key;
        size_t klen;
        json_t *va;
        json_object_keylen_foreach((json_t *)a, key, klen, va) {
            const json_t *vb = json_object_getn(b, key, klen);
            if (!vb)
                return 0;
            int r = jschema_json_eq(va, vb, depth + 1);
            if (r != 1)
                return r;
        }
        return 1;
    }
    default:
        return 1; /* null, true, false: same type is enough */
    }
}
