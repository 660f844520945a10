/* Validation of instances against a compiled JSON Schema: the nodes are
 * only read, so a compiled schema is shared between threads; error paths
 * are a chain of segments on the stack, rendered only when reported.
 */
#include "jsonschema_int.h"

#include "decimal.h"
#include "jsontext.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct seg {
    const struct seg *up;
    const char *key; /* NULL for an array index */
    size_t len;      /* key length, or the array index */
    int depth;
};

struct vctx {
    const pcre2_match_context *mctx;
    struct jschema_error *err; /* NULL while evaluating for a yes/no answer */
    struct jschema_error *top; /* the caller's error, for fatal errors */
    int depth;
    bool fatal;
};

static void render_path(const struct seg *at, char *buf, size_t size) {
    const struct seg *chain[MAX_INSTANCE_DEPTH + 2];
    int n = 0;
    for (const struct seg *s = at; s && n < (int)(sizeof chain / sizeof chain[0]); s = s->up)
        chain[n++] = s;
    size_t pos = 0;
    buf[0] = '\0';
    for (int i = n - 1; i >= 0; i--) {
        if (chain[i]->key) {
            jschema_append_token(buf, size, &pos, chain[i]->key, chain[i]->len);
        } else {
            char num[32];
            int len = snprintf(num, sizeof num, "%zu", chain[i]->len);
            jschema_append_token(buf, size, &pos, num, (size_t)len);
        }
    }
}

static void vformat(struct jschema_error *e, const struct jschema_node *n, const struct seg *at,
                    const char *kw, const char *fmt, va_list ap) {
    memset(e, 0, sizeof *e);
    render_path(at, e->instance_path, sizeof e->instance_path);
    jschema_copy_str(e->schema_path, sizeof e->schema_path, n->path);
    if (kw && *kw) {
        size_t pos = strlen(e->schema_path);
        jschema_append_token(e->schema_path, sizeof e->schema_path, &pos, kw, strlen(kw));
        jschema_copy_str(e->keyword, sizeof e->keyword, kw);
    } else if (!kw) {
        jschema_copy_str(e->keyword, sizeof e->keyword, "false");
    }
    vsnprintf(e->message, sizeof e->message, fmt, ap);
}

static int fail(struct vctx *c, const struct jschema_node *n, const struct seg *at, const char *kw,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail(struct vctx *c, const struct jschema_node *n, const struct seg *at, const char *kw,
                const char *fmt, ...) {
    if (c->err) {
        va_list ap;
        va_start(ap, fmt);
        vformat(c->err, n, at, kw, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* An error no enclosing "not" or "anyOf" may turn into a success. */
static int fatal(struct vctx *c, const struct jschema_node *n, const struct seg *at, const char *kw,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fatal(struct vctx *c, const struct jschema_node *n, const struct seg *at, const char *kw,
                 const char *fmt, ...) {
    c->fatal = true;
    if (c->top) {
        va_list ap;
        va_start(ap, fmt);
        vformat(c->top, n, at, kw, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int validate(struct vctx *c, const struct jschema_node *n, const json_t *inst,
                    const struct seg *at);

/* Evaluates without reporting: 1 valid, 0 invalid, -1 fatal. */
static int probe(struct vctx *c, const struct jschema_node *n, const json_t *inst,
                 const struct seg *at) {
    struct jschema_error *saved = c->err;
    c->err = NULL;
    int rc = validate(c, n, inst, at);
    c->err = saved;
    if (c->fatal)
        return -1;
    return rc == 0;
}

static size_t utf8_length(const char *s, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

/* 1 match, 0 no match, -1 matcher failure (resource limits), -2 the
 * subject is not valid UTF-8 (possible for strings built without checks). */
static int regex_match(const struct vctx *c, const struct jschema_regex *re, const char *s,
                       size_t len) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re->code, NULL);
    if (!md)
        return -1;
    int rc = pcre2_match(re->code, (PCRE2_SPTR)s, len, 0, 0, md, (pcre2_match_context *)c->mctx);
    pcre2_match_data_free(md);
    if (rc >= 0)
        return 1;
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    return rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21 ? -2 : -1;
}

static bool is_multiple(const json_t *v, const json_t *m) {
    if (json_is_integer(v) && json_is_integer(m)) {
        json_int_t b = json_integer_value(m);
        return b > 0 && json_integer_value(v) % b == 0;
    }
    /* Decimal multiples such as 0.0075 / 0.0001 are not exact in binary:
     * divide the decimals a person wrote, exactly. */
    struct decimal x, y;
    bool r;

    jschema_num_decimal(v, &x);
    jschema_num_decimal(m, &y);
    r = decimal_is_multiple(&x, &y);
    decimal_fini(&x);
    decimal_fini(&y);
    return r;
}

__attribute__((noinline)) static int check_number(struct vctx *c, const struct jschema_node *n,
                                                  const json_t *inst, const struct seg *at) {
    char num[40];
    if (n->minimum && jschema_num_cmp(inst, n->minimum) < 0) {
        jschema_num_str(n->minimum, num, sizeof num);
        return fail(c, n, at, "minimum", "must be >= %s", num);
    }
    if (n->maximum && jschema_num_cmp(inst, n->maximum) > 0) {
        jschema_num_str(n->maximum, num, sizeof num);
        return fail(c, n, at, "maximum", "must be <= %s", num);
    }
    if (n->ex_minimum && jschema_num_cmp(inst, n->ex_minimum) <= 0) {
        jschema_num_str(n->ex_minimum, num, sizeof num);
        return fail(c, n, at, "exclusiveMinimum", "must be > %s", num);
    }
    if (n->ex_maximum && jschema_num_cmp(inst, n->ex_maximum) >= 0) {
        jschema_num_str(n->ex_maximum, num, sizeof num);
        return fail(c, n, at, "exclusiveMaximum", "must be < %s", num);
    }
    if (n->multiple_of && !is_multiple(inst, n->multiple_of)) {
        jschema_num_str(n->multiple_of, num, sizeof num);
        return fail(c, n, at, "multipleOf", "must be a multiple of %s", num);
    }
    return 0;
}

__attribute__((noinline)) static int check_string(struct vctx *c, const struct jschema_node *n,
                                                  const json_t *inst, const struct seg *at) {
    const char *s = json_string_value(inst);
    size_t len = json_string_length(inst);
    if (n->min_length >= 0 || n->max_length >= 0) {
        size_t cps = utf8_length(s, len);
        if (n->min_length >= 0 && cps < (unsigned long long)n->min_length)
            return fail(c, n, at, "minLength", "must be at least %lld characters long, got %zu",
                        n->min_length, cps);
        if (n->max_length >= 0 && cps > (unsigned long long)n->max_length)
            return fail(c, n, at, "maxLength", "must be at most %lld characters long, got %zu",
                        n->max_length, cps);
    }
    if (n->pattern.code) {
        int m = regex_match(c, &n->pattern, s, len);
        if (m == -2)
            return fail(c, n, at, "pattern", "must be valid UTF-8");
        if (m < 0)
            return fatal(c, n, at, "pattern", "pattern \"%.200s\" could not be evaluated",
                         n->pattern.source);
        if (!m)
            return fail(c, n, at, "pattern", "must match the pattern \"%.200s\"",
                        n->pattern.source);
    }
    if (n->content_json) {
        /* Read exactly (any number a store can keep), and refused where no
         * store can keep it (\u0000, numbers beyond numeric, duplicates). */
        struct jtext_error jerr;
        json_t *doc = NULL;

        if (jtext_parse(s, len, NULL, &doc, NULL, &jerr) != JTEXT_OK)
            return fail(c, n, at, "contentMediaType", "must be a JSON document: %s", jerr.text);
        json_decref(doc);
    }
    return 0;
}

static bool is_false_schema(const struct jschema_node *n) {
    while (n->ref)
        n = n->ref;
    return n->boolean == 0;
}

/* Validates one property name against "propertyNames"; the report names
 * the property and quotes the inner failure. */
__attribute__((noinline)) static int
check_property_name(struct vctx *c, const struct jschema_node *n, const char *key, size_t klen,
                    const struct seg *at, const struct seg *s) {
    json_t *name = json_stringn_nocheck(key, klen);
    if (!name)
        return fatal(c, n, at, "propertyNames", "out of memory");
    struct jschema_error sub, *saved = c->err;
    c->err = saved ? &sub : NULL;
    int rc = validate(c, n->property_names, name, at);
    c->err = saved;
    json_decref(name);
    if (rc == 0)
        return 0;
    if (c->fatal)
        return -1;
    return fail(c, n, s, "propertyNames", "invalid property name \"%.100s\": %.120s", key,
                saved ? sub.message : "");
}

__attribute__((noinline)) static int check_object(struct vctx *c, const struct jschema_node *n,
                                                  const json_t *inst, const struct seg *at) {
    size_t size = json_object_size(inst);
    if (n->min_props >= 0 && size < (unsigned long long)n->min_props)
        return fail(c, n, at, "minProperties", "must have at least %lld properties, got %zu",
                    n->min_props, size);
    if (n->max_props >= 0 && size > (unsigned long long)n->max_props)
        return fail(c, n, at, "maxProperties", "must have at most %lld properties, got %zu",
                    n->max_props, size);
    if (n->required) {
        size_t i;
        json_t *name;
        json_array_foreach(n->required, i, name) {
            if (!json_object_getn(inst, json_string_value(name), json_string_length(name)))
                return fail(c, n, at, "required", "missing required property \"%.200s\"",
                            json_string_value(name));
        }
    }
    for (size_t i = 0; i < n->ndeps; i++) {
        const struct jschema_dep *d = &n->deps[i];
        if (!json_object_getn(inst, d->name, d->len))
            continue;
        if (d->schema) {
            if (validate(c, d->schema, inst, at) < 0)
                return -1;
            continue;
        }
        size_t k;
        json_t *name;
        json_array_foreach(d->required, k, name) {
            if (!json_object_getn(inst, json_string_value(name), json_string_length(name)))
                return fail(c, n, at, "dependencies",
                            "property \"%.100s\" is required when \"%.100s\" is present",
                            json_string_value(name), d->name);
        }
    }
    for (size_t i = 0; i < n->nprops; i++) {
        const struct jschema_prop *p = &n->props[i];
        const json_t *v = json_object_getn(inst, p->name, p->len);
        if (!v)
            continue;
        struct seg s = {at, p->name, p->len, at ? at->depth + 1 : 1};
        if (validate(c, p->schema, v, &s) < 0)
            return -1;
    }
    if (!n->npprops && !n->additional_props && !n->property_names)
        return 0;
    const char *key;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach((json_t *)inst, key, klen, v) {
        struct seg s = {at, key, klen, at ? at->depth + 1 : 1};
        if (n->property_names && check_property_name(c, n, key, klen, at, &s) < 0)
            return -1;
        bool matched = n->props_obj && json_object_getn(n->props_obj, key, klen);
        for (size_t i = 0; i < n->npprops; i++) {
            int m = regex_match(c, &n->pprops[i].re, key, klen);
            if (m == -2)
                return fail(c, n, &s, "patternProperties", "property name must be valid UTF-8");
            if (m < 0)
                return fatal(c, n, &s, "patternProperties",
                             "pattern \"%.200s\" could not be evaluated", n->pprops[i].re.source);
            if (!m)
                continue;
            matched = true;
            if (validate(c, n->pprops[i].schema, v, &s) < 0)
                return -1;
        }
        if (!matched && n->additional_props) {
            if (is_false_schema(n->additional_props))
                return fail(c, n, &s, "additionalProperties", "property \"%.200s\" is not allowed",
                            key);
            if (validate(c, n->additional_props, v, &s) < 0)
                return -1;
        }
    }
    return 0;
}

static uint64_t mix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static uint64_t bytes_hash(const char *s, size_t len) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

/* A hash consistent with jschema_json_eq: values it calls equal hash the same
 * (1 and 1.0 included, objects whatever their key order). */
static uint64_t json_hash(const json_t *j, int depth) {
    if (depth > MAX_INSTANCE_DEPTH)
        return 0;
    switch (json_typeof(j)) {
    case JSON_NULL:
        return 1;
    case JSON_TRUE:
        return 2;
    case JSON_FALSE:
        return 3;
    case JSON_INTEGER:
        return mix64((uint64_t)json_integer_value(j) ^ 0x4242);
    case JSON_REAL: {
        double d = json_real_value(j);
        if (jschema_has_text(j)) {
            /* Such a number equals no int64 and no double (jtext_parse holds
             * those exactly), only another number with a text. */
            struct decimal x;
            uint64_t h;

            jschema_num_decimal(j, &x);
            h = mix64(decimal_hash(&x));
            decimal_fini(&x);
            return h;
        }
        if (jschema_is_integral_real(d) && d >= -9.2e18 && d <= 9.2e18)
            return mix64((uint64_t)(long long)d ^ 0x4242);
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        return mix64(bits);
    }
    case JSON_STRING:
        return bytes_hash(json_string_value(j), json_string_length(j)) ^ 5;
    case JSON_ARRAY: {
        uint64_t h = 7;
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) h = mix64(h * 31 + json_hash(v, depth + 1));
        return h;
    }
    case JSON_OBJECT: {
        /* A sum does not depend on the order of the keys. */
        uint64_t h = 11;
        const char *key;
        size_t klen;
        json_t *v;
        json_object_keylen_foreach((json_t *)j, key, klen, v) h +=
            mix64(bytes_hash(key, klen) ^ (json_hash(v, depth + 1) * 3));
        return h;
    }
    }
    return 0;
}

struct hashed {
    uint64_t hash;
    size_t idx;
};

static int cmp_hashed(const void *a, const void *b) {
    const struct hashed *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Compares items i and j; 0 when they differ, else reports. */
static int unique_pair(struct vctx *c, const struct jschema_node *n, const json_t *inst,
                       const struct seg *at, size_t i, size_t j) {
    int eq = jschema_json_eq(json_array_get(inst, i), json_array_get(inst, j), 0);
    if (eq < 0)
        return fatal(c, n, at, "uniqueItems", "items nested too deeply to compare");
    if (eq)
        return fail(c, n, at, "uniqueItems", "items must be unique, items %zu and %zu are equal",
                    i < j ? i : j, i < j ? j : i);
    return 0;
}

__attribute__((noinline)) static int check_unique(struct vctx *c, const struct jschema_node *n,
                                                  const json_t *inst, const struct seg *at) {
    size_t size = json_array_size(inst);
    if (size <= UNIQUE_PAIRWISE_MAX) {
        for (size_t i = 0; i < size; i++) {
            for (size_t j = i + 1; j < size; j++) {
                if (unique_pair(c, n, inst, at, i, j) < 0)
                    return -1;
            }
        }
        return 0;
    }
    /* Sort by hash so that only items with equal hashes are compared. */
    struct hashed *h = malloc(size * sizeof *h);
    if (!h)
        return fatal(c, n, at, "uniqueItems", "out of memory");
    for (size_t i = 0; i < size; i++)
        h[i] = (struct hashed){json_hash(json_array_get(inst, i), 0), i};
    qsort(h, size, sizeof *h, cmp_hashed);
    int rc = 0;
    for (size_t start = 0; start < size && rc == 0;) {
        size_t end = start + 1;
        while (end < size && h[end].hash == h[start].hash)
            end++;
        for (size_t i = start; i < end && rc == 0; i++) {
            for (size_t j = i + 1; j < end && rc == 0; j++)
                rc = unique_pair(c, n, inst, at, h[i].idx, h[j].idx);
        }
        start = end;
    }
    free(h);
    return rc;
}

__attribute__((noinline)) static int check_array(struct vctx *c, const struct jschema_node *n,
                                                 const json_t *inst, const struct seg *at) {
    size_t size = json_array_size(inst);
    int depth = at ? at->depth + 1 : 1;
    if (n->min_items >= 0 && size < (unsigned long long)n->min_items)
        return fail(c, n, at, "minItems", "must have at least %lld items, got %zu", n->min_items,
                    size);
    if (n->max_items >= 0 && size > (unsigned long long)n->max_items)
        return fail(c, n, at, "maxItems", "must have at most %lld items, got %zu", n->max_items,
                    size);
    if (n->unique_items && size > 1 && check_unique(c, n, inst, at) < 0)
        return -1;
    if (n->items) {
        for (size_t i = 0; i < size; i++) {
            struct seg s = {at, NULL, i, depth};
            if (validate(c, n->items, json_array_get(inst, i), &s) < 0)
                return -1;
        }
    } else if (n->items_is_list) {
        for (size_t i = 0; i < size; i++) {
            struct seg s = {at, NULL, i, depth};
            const struct jschema_node *sub =
                i < n->nitem_list ? n->item_list[i] : n->additional_items;
            if (!sub)
                break;
            if (i >= n->nitem_list && is_false_schema(sub))
                return fail(c, n, at, "additionalItems", "must have at most %zu items, got %zu",
                            n->nitem_list, size);
            if (validate(c, sub, json_array_get(inst, i), &s) < 0)
                return -1;
        }
    }
    if (n->contains) {
        bool found = false;
        for (size_t i = 0; i < size && !found; i++) {
            struct seg s = {at, NULL, i, depth};
            int r = probe(c, n->contains, json_array_get(inst, i), &s);
            if (r < 0)
                return -1;
            found = r;
        }
        if (!found)
            return fail(c, n, at, "contains", "no item matches the \"contains\" schema");
    }
    return 0;
}

__attribute__((noinline)) static int check_combinators(struct vctx *c, const struct jschema_node *n,
                                                       const json_t *inst, const struct seg *at) {
    for (size_t i = 0; i < n->nall_of; i++) {
        if (validate(c, n->all_of[i], inst, at) < 0)
            return -1;
    }
    if (n->nany_of) {
        bool ok = false;
        for (size_t i = 0; i < n->nany_of && !ok; i++) {
            int r = probe(c, n->any_of[i], inst, at);
            if (r < 0)
                return -1;
            ok = r;
        }
        if (!ok)
            return fail(c, n, at, "anyOf", "must match at least one of the %zu schemas in anyOf",
                        n->nany_of);
    }
    if (n->none_of) {
        size_t first = 0, matches = 0;
        for (size_t i = 0; i < n->none_of; i++) {
            int r = probe(c, n->one_of[i], inst, at);
            if (r < 0)
                return -1;
            if (!r)
                continue;
            if (matches++ == 0) {
                first = i;
            } else {
                return fail(c, n, at, "oneOf",
                            "must match exactly one schema in oneOf, matches %zu and %zu", first,
                            i);
            }
        }
        if (!matches)
            return fail(c, n, at, "oneOf", "must match exactly one of the %zu schemas in oneOf",
                        n->none_of);
    }
    if (n->not_schema) {
        int r = probe(c, n->not_schema, inst, at);
        if (r < 0)
            return -1;
        if (r)
            return fail(c, n, at, "not", "must not match the schema in \"not\"");
    }
    if (n->if_schema) {
        int r = probe(c, n->if_schema, inst, at);
        if (r < 0)
            return -1;
        const struct jschema_node *branch = r ? n->then_schema : n->else_schema;
        if (branch && validate(c, branch, inst, at) < 0)
            return -1;
    }
    return 0;
}

__attribute__((noinline)) static int type_error(struct vctx *c, const struct jschema_node *n,
                                                const json_t *inst, const struct seg *at) {
    char want[96] = "";
    size_t pos = 0;
    int count = 0;
    for (size_t k = 0; k < sizeof type_names / sizeof type_names[0]; k++) {
        if (!(n->types & type_names[k].bit))
            continue;
        int w = snprintf(want + pos, sizeof want - pos, "%s%s", count ? " or " : "",
                         type_names[k].name);
        if (w > 0 && (size_t)w < sizeof want - pos)
            pos += (size_t)w;
        count++;
    }
    return fail(c, n, at, "type", "expected %s, got %s", want, jschema_type_name(inst));
}

static int validate_node(struct vctx *c, const struct jschema_node *n, const json_t *inst,
                         const struct seg *at) {
    while (n->ref)
        n = n->ref;
    if (n->boolean >= 0)
        return n->boolean ? 0 : fail(c, n, at, NULL, "no value is allowed here");

    unsigned t = jschema_type_of(inst);
    if (n->types && !(n->types & t))
        return type_error(c, n, inst, at);
    if (n->enum_values) {
        bool found = false;
        size_t i;
        json_t *e;
        json_array_foreach(n->enum_values, i, e) {
            int eq = jschema_json_eq(inst, e, 0);
            if (eq < 0)
                return fatal(c, n, at, "enum", "value nested too deeply to compare");
            if (eq) {
                found = true;
                break;
            }
        }
        if (!found)
            return fail(c, n, at, "enum", "must be one of the %zu allowed values",
                        json_array_size(n->enum_values));
    }
    if (n->const_value) {
        int eq = jschema_json_eq(inst, n->const_value, 0);
        if (eq < 0)
            return fatal(c, n, at, "const", "value nested too deeply to compare");
        if (!eq)
            return fail(c, n, at, "const", "must be equal to the constant value");
    }
    int rc = 0;
    if (t & T_NUMBER)
        rc = check_number(c, n, inst, at);
    else if (t & T_STRING)
        rc = check_string(c, n, inst, at);
    else if (t & T_OBJECT)
        rc = check_object(c, n, inst, at);
    else if (t & T_ARRAY)
        rc = check_array(c, n, inst, at);
    if (rc < 0)
        return -1;
    return check_combinators(c, n, inst, at);
}

static int validate(struct vctx *c, const struct jschema_node *n, const json_t *inst,
                    const struct seg *at) {
    if (at && at->depth > MAX_INSTANCE_DEPTH)
        return fatal(c, n, at, "", "instance nested deeper than %d levels", MAX_INSTANCE_DEPTH);
    if (c->depth >= MAX_EVAL_DEPTH)
        return fatal(c, n, at, "$ref",
                     "schema evaluation nested deeper than %d levels (recursive $ref?)",
                     MAX_EVAL_DEPTH);
    c->depth++;
    int rc = validate_node(c, n, inst, at);
    c->depth--;
    return rc;
}

int jschema_validate(const struct jschema *schema, const json_t *instance,
                     struct jschema_error *err) {
    return jschema_validate_exact(schema, instance, NULL, err);
}

int jschema_validate_exact(const struct jschema *schema, const json_t *instance,
                           const struct jtext_numbers *nums, struct jschema_error *err) {
    struct vctx c = {.err = err, .top = err};
    int rc;
    if (schema)
        c.mctx = schema->mctx;
    if (err)
        memset(err, 0, sizeof *err);
    if (!schema || !instance) {
        if (err)
            jschema_copy_str(err->message, sizeof err->message, "no schema or no instance");
        return -1;
    }
    jschema_tl_nums = nums;
    rc = validate(&c, schema->top, instance, NULL) < 0 ? -1 : 0;
    jschema_tl_nums = NULL;
    return rc;
}
