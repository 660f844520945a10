/* JSON Schema draft 7: compilation of a schema document into a tree of
 * nodes, and validation of instances against that tree.
 *
 * Compilation walks every schema location of the document once, checks each
 * keyword's value, compiles regular expressions and records every "$id" so
 * that "$ref" can be resolved afterwards. A JSON object is compiled once
 * (nodes are memoised by address), so recursive references cost nothing and
 * cannot loop. After compilation nothing is written any more: validation only
 * reads the nodes, which makes a compiled schema safe to share between
 * threads. Errors are described by a chain of path segments kept on the
 * stack and turned into a JSON pointer only when an error is reported.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "jsonschema.h"

#include <ctype.h>
#include <math.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decimal.h"
#include "jschema_uri.h"
#include "jsontext.h"

/* An instance nested deeper than this is refused instead of risking the
 * stack of an HTTP thread; so is a chain of subschema evaluations (recursive
 * references that do not consume the instance). */
#define MAX_INSTANCE_DEPTH 512
#define MAX_EVAL_DEPTH 2048
#define MAX_SCHEMA_DEPTH 512

/* A pattern that backtracks catastrophically on some input gives up (and
 * the instance is refused) instead of burning a thread. */
#define REGEX_MATCH_LIMIT 1000000
#define REGEX_DEPTH_LIMIT 10000

/* Above this many items uniqueItems sorts hashes instead of comparing
 * every pair. */
#define UNIQUE_PAIRWISE_MAX 16

/* The base URI of a document that has no "$id" of its own. */
#define DEFAULT_BASE "urn:fpesa:schema"

enum {
    T_NULL = 1u << 0,
    T_BOOLEAN = 1u << 1,
    T_OBJECT = 1u << 2,
    T_ARRAY = 1u << 3,
    T_NUMBER = 1u << 4,
    T_STRING = 1u << 5,
    T_INTEGER = 1u << 6,
};

static const struct {
    const char *name;
    unsigned bit;
} type_names[] = {
    {"null", T_NULL},     {"boolean", T_BOOLEAN}, {"object", T_OBJECT},   {"array", T_ARRAY},
    {"number", T_NUMBER}, {"string", T_STRING},   {"integer", T_INTEGER},
};

struct regex {
    pcre2_code *code;
    const char *source; /* borrowed from the schema document */
};

struct node;

struct prop {
    const char *name; /* borrowed from the schema document */
    size_t len;
    struct node *schema;
};

struct pattern_prop {
    struct regex re;
    struct node *schema;
};

struct dep {
    const char *name; /* borrowed */
    size_t len;
    const json_t *required; /* array form, borrowed; NULL for the schema form */
    struct node *schema;
};

struct node {
    char *path; /* JSON pointer of this schema in the document, owned */
    const json_t *json;
    int boolean;   /* -1 for an object schema, else the value of a boolean schema */
    char *ref_uri; /* absolute URI of "$ref", owned; NULL when there is none */
    struct node *ref;

    unsigned types; /* 0: no "type" keyword */
    const json_t *enum_values;
    const json_t *const_value;

    const json_t *props_obj;
    struct prop *props;
    size_t nprops;
    struct pattern_prop *pprops;
    size_t npprops;
    struct node *additional_props;
    struct node *property_names;
    const json_t *required;
    long long min_props, max_props;
    struct dep *deps;
    size_t ndeps;

    struct node *items;
    struct node **item_list;
    size_t nitem_list;
    bool items_is_list;
    struct node *additional_items;
    struct node *contains;
    long long min_items, max_items;
    bool unique_items;

    const json_t *minimum, *maximum, *ex_minimum, *ex_maximum, *multiple_of;

    long long min_length, max_length;
    struct regex pattern;
    /* contentMediaType application/json without contentEncoding: the
     * string must hold a JSON document (a form field carrying JSON). */
    bool content_json;

    struct node **all_of, **any_of, **one_of;
    size_t nall_of, nany_of, none_of;
    struct node *not_schema;
    struct node *if_schema, *then_schema, *else_schema;
};

struct jschema {
    json_t *root; /* our own reference to the document */
    struct node **nodes;
    size_t nnodes, cap;
    struct node *top;
    /* Limits for matching client strings against the schema's patterns,
     * read-only once built, shared by every thread. */
    pcre2_match_context *mctx;
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

static void copy_str(char *dst, size_t size, const char *src) {
    size_t n = strlen(src);
    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Appends one JSON pointer token (escaped) to buf of size size at *pos. */
static void append_token(char *buf, size_t size, size_t *pos, const char *tok, size_t len) {
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
static char *path_join(const char *path, const char *tok, size_t toklen) {
    size_t plen = strlen(path);
    size_t size = plen + 2 + 2 * toklen;
    char *s = malloc(size);
    if (!s)
        return NULL;
    memcpy(s, path, plen + 1);
    size_t pos = plen;
    append_token(s, size, &pos, tok, toklen);
    return s;
}

static bool is_integral_real(double d) {
    return isfinite(d) && floor(d) == d;
}

/* The exact text of the numbers of the instance being validated on this
 * thread (jschema_validate_exact), or NULL: numbers jansson cannot hold
 * exactly are compared through it. */
static _Thread_local const struct jtext_numbers *tl_nums;

static bool has_text(const json_t *j) {
    size_t len;

    return tl_nums && jtext_number_text(tl_nums, j, &len) != NULL;
}

/* d = the value of the number j: its text when kept, else its int64, else
 * the shortest decimal of its double. */
static void num_decimal(const json_t *j, struct decimal *d) {
    size_t len;
    const char *t = tl_nums ? jtext_number_text(tl_nums, j, &len) : NULL;

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

    num_decimal(j, &d);
    r = decimal_is_integer(&d);
    decimal_fini(&d);
    return r;
}

static unsigned type_of(const json_t *j) {
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
        if (has_text(j))
            return T_NUMBER | (text_is_integral(j) ? T_INTEGER : 0);
        return T_NUMBER | (is_integral_real(json_real_value(j)) ? T_INTEGER : 0);
    }
    return 0;
}

static const char *type_name(const json_t *j) {
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
static int num_cmp(const json_t *a, const json_t *b) {
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return x < y ? -1 : x > y;
    }
    if (has_text(a) || has_text(b)) {
        struct decimal x, y;
        int r;

        num_decimal(a, &x);
        num_decimal(b, &y);
        r = decimal_cmp(&x, &y);
        decimal_fini(&x);
        decimal_fini(&y);
        return r;
    }
    long double x = json_is_integer(a) ? (long double)json_integer_value(a) : json_real_value(a);
    long double y = json_is_integer(b) ? (long double)json_integer_value(b) : json_real_value(b);
    return x < y ? -1 : x > y;
}

static void num_str(const json_t *n, char *buf, size_t size) {
    if (has_text(n)) {
        struct decimal d;

        num_decimal(n, &d);
        decimal_format(&d, buf, size);
        decimal_fini(&d);
    } else if (json_is_integer(n))
        snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(n));
    else
        snprintf(buf, size, "%.17g", json_real_value(n));
}

/* JSON equality: numbers by value, objects regardless of key order.
 * Returns 1 when equal, 0 when not, -1 when nested too deeply to tell. */
static int json_eq(const json_t *a, const json_t *b, int depth) {
    if (depth > MAX_INSTANCE_DEPTH)
        return -1;
    if (json_is_number(a) && json_is_number(b))
        return num_cmp(a, b) == 0;
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
            int r = json_eq(json_array_get(a, i), json_array_get(b, i), depth + 1);
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
            int r = json_eq(va, vb, depth + 1);
            if (r != 1)
                return r;
        }
        return 1;
    }
    default:
        return 1; /* null, true, false: same type is enough */
    }
}

/* ------------------------------------------------------------------------ */
/* Compilation                                                               */

struct resource {
    char *uri;  /* absolute URI without fragment, or with "#anchor"; owned */
    char *base; /* base URI inside the resource; owned */
    const json_t *json;
    char *path; /* JSON pointer of json in the document; owned */
};

struct map_entry {
    const json_t *key;
    struct node *node;
};

struct compiler {
    struct jschema *js;
    struct jschema_error *err; /* may be NULL */
    struct map_entry *map;
    size_t map_cap, map_len;
    struct resource *res;
    size_t nres, res_cap;
    int depth;
};

static int cerr(struct compiler *c, const char *path, const char *kw, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int cerr(struct compiler *c, const char *path, const char *kw, const char *fmt, ...) {
    if (!c->err)
        return -1;
    struct jschema_error *e = c->err;
    memset(e, 0, sizeof *e);
    copy_str(e->schema_path, sizeof e->schema_path, path);
    if (kw) {
        size_t pos = strlen(e->schema_path);
        append_token(e->schema_path, sizeof e->schema_path, &pos, kw, strlen(kw));
        copy_str(e->keyword, sizeof e->keyword, kw);
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

static int oom(struct compiler *c, const char *path) {
    return cerr(c, path, NULL, "out of memory");
}

static size_t ptr_hash(const void *p, size_t cap) {
    uintptr_t x = (uintptr_t)p;
    x ^= x >> 17;
    x *= (uintptr_t)0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    return (size_t)x & (cap - 1);
}

static struct node *map_get(const struct compiler *c, const json_t *key) {
    if (!c->map_cap)
        return NULL;
    for (size_t i = ptr_hash(key, c->map_cap);; i = (i + 1) & (c->map_cap - 1)) {
        if (!c->map[i].key)
            return NULL;
        if (c->map[i].key == key)
            return c->map[i].node;
    }
}

static int map_put(struct compiler *c, const json_t *key, struct node *node) {
    if ((c->map_len + 1) * 2 > c->map_cap) {
        size_t ncap = c->map_cap ? c->map_cap * 2 : 64;
        struct map_entry *nm = calloc(ncap, sizeof *nm);
        if (!nm)
            return -1;
        for (size_t i = 0; i < c->map_cap; i++) {
            if (!c->map[i].key)
                continue;
            size_t j = ptr_hash(c->map[i].key, ncap);
            while (nm[j].key)
                j = (j + 1) & (ncap - 1);
            nm[j] = c->map[i];
        }
        free(c->map);
        c->map = nm;
        c->map_cap = ncap;
    }
    size_t i = ptr_hash(key, c->map_cap);
    while (c->map[i].key)
        i = (i + 1) & (c->map_cap - 1);
    c->map[i].key = key;
    c->map[i].node = node;
    c->map_len++;
    return 0;
}

static int add_resource(struct compiler *c, const char *uri, const char *base, const json_t *json,
                        const char *path) {
    for (size_t i = 0; i < c->nres; i++) {
        if (strcmp(c->res[i].uri, uri) == 0)
            return cerr(c, path, "$id", "duplicate $id \"%s\"", uri);
    }
    if (c->nres == c->res_cap) {
        size_t ncap = c->res_cap ? c->res_cap * 2 : 8;
        struct resource *nr = realloc(c->res, ncap * sizeof *nr);
        if (!nr)
            return oom(c, path);
        c->res = nr;
        c->res_cap = ncap;
    }
    struct resource *r = &c->res[c->nres];
    r->uri = strdup(uri);
    r->base = strdup(base);
    r->path = strdup(path);
    r->json = json;
    if (!r->uri || !r->base || !r->path) {
        free(r->uri);
        free(r->base);
        free(r->path);
        return oom(c, path);
    }
    c->nres++;
    return 0;
}

static const struct resource *find_resource(const struct compiler *c, const char *uri, size_t len) {
    for (size_t i = 0; i < c->nres; i++) {
        if (strlen(c->res[i].uri) == len && memcmp(c->res[i].uri, uri, len) == 0)
            return &c->res[i];
    }
    return NULL;
}

static struct node *new_node(struct compiler *c, const json_t *json, const char *path) {
    struct jschema *js = c->js;
    if (js->nnodes == js->cap) {
        size_t ncap = js->cap ? js->cap * 2 : 16;
        struct node **nn = realloc(js->nodes, ncap * sizeof *nn);
        if (!nn)
            goto out_oom;
        js->nodes = nn;
        js->cap = ncap;
    }
    struct node *n = calloc(1, sizeof *n);
    if (!n)
        goto out_oom;
    n->path = strdup(path);
    if (!n->path) {
        free(n);
        goto out_oom;
    }
    n->json = json;
    n->boolean = -1;
    n->min_props = n->max_props = -1;
    n->min_items = n->max_items = -1;
    n->min_length = n->max_length = -1;
    js->nodes[js->nnodes++] = n;
    return n;
out_oom:
    oom(c, path);
    return NULL;
}

static void node_free(struct node *n) {
    free(n->path);
    free(n->ref_uri);
    free(n->props);
    for (size_t i = 0; i < n->npprops; i++)
        pcre2_code_free(n->pprops[i].re.code);
    free(n->pprops);
    free(n->deps);
    free(n->item_list);
    pcre2_code_free(n->pattern.code);
    free(n->all_of);
    free(n->any_of);
    free(n->one_of);
    free(n);
}

static struct node *compile_schema(struct compiler *c, const json_t *j, const char *path,
                                   const char *base);

/* Compiles the subschema found under path/tok1[/tok2]. */
static struct node *compile_child(struct compiler *c, const json_t *j, const char *path,
                                  const char *tok1, const char *tok2, size_t tok2len,
                                  const char *base) {
    char *p1 = path_join(path, tok1, strlen(tok1));
    if (!p1) {
        oom(c, path);
        return NULL;
    }
    char *p2 = p1;
    if (tok2) {
        p2 = path_join(p1, tok2, tok2len);
        if (!p2) {
            free(p1);
            oom(c, path);
            return NULL;
        }
    }
    struct node *n = compile_schema(c, j, p2, base);
    if (p2 != p1)
        free(p2);
    free(p1);
    return n;
}

static struct node *compile_child_idx(struct compiler *c, const json_t *j, const char *path,
                                      const char *kw, size_t idx, const char *base) {
    char num[32];
    int len = snprintf(num, sizeof num, "%zu", idx);
    return compile_child(c, j, path, kw, num, (size_t)len, base);
}

static int compile_regex(struct compiler *c, struct regex *re, const char *src, size_t len,
                         const char *path, const char *kw) {
    int errcode;
    PCRE2_SIZE erroff;
    re->source = src;
    re->code = pcre2_compile((PCRE2_SPTR)src, len, PCRE2_UTF, &errcode, &erroff, NULL);
    if (!re->code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        return cerr(c, path, kw, "invalid regular expression \"%s\": %s at offset %zu", src,
                    (const char *)msg, (size_t)erroff);
    }
    /* JIT is only a speed-up: a failure leaves the interpreter in charge. */
    (void)pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE);
    return 0;
}

/* Reads a non-negative integer keyword value (2 and 2.0 both accepted). */
static int get_count(struct compiler *c, const json_t *v, const char *path, const char *kw,
                     long long *out) {
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_real(v) && is_integral_real(json_real_value(v)) && json_real_value(v) >= 0) {
        double d = json_real_value(v);
        *out = d >= 9.2e18 ? INT64_MAX : (long long)d;
        return 0;
    }
    return cerr(c, path, kw, "\"%s\" must be a non-negative integer, got %s", kw, type_name(v));
}

typedef int kw_fn(struct compiler *c, struct node *n, const char *kw, const json_t *v,
                  const char *path, const char *base);

static int kw_annotation(struct compiler *c, struct node *n, const char *kw, const json_t *v,
                         const char *path, const char *base) {
    (void)c, (void)n, (void)kw, (void)v, (void)path, (void)base;
    return 0;
}

static int kw_string_annotation(struct compiler *c, struct node *n, const char *kw, const json_t *v,
                                const char *path, const char *base) {
    (void)n, (void)base;
    if (!json_is_string(v))
        return cerr(c, path, kw, "\"%s\" must be a string, got %s", kw, type_name(v));
    return 0;
}

static int kw_type(struct compiler *c, struct node *n, const char *kw, const json_t *v,
                   const char *path, const char *base) {
    (void)base;
    size_t count = json_is_array(v) ? json_array_size(v) : 1;
    if (!json_is_string(v) && !json_is_array(v))
        return cerr(c, path, kw, "\"type\" must be a string or an array of strings, got %s",
                    type_name(v));
    for (size_t i = 0; i < count; i++) {
        const json_t *t = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_string(t))
            return cerr(c, path, kw, "\"type\" must be a string or an array of strings");
        const char *s = json_string_value(t);
        unsigned bit = 0;
        for (size_t k = 0; k < sizeof type_names / sizeof type_names[0]; k++) {
            if (strcmp(s, type_names[k].name) == 0)
                bit = type_names[k].bit;
        }
        if (!bit)
            return cerr(c, path, kw,
                        "unknown type \"%s\" (expected null, boolean, object, array, number, "
                        "string or integer)",
                        s);
        n->types |= bit;
    }
    if (json_is_array(v) && count == 0)
        return cerr(c, path, kw, "\"type\" must not be an empty array");
    return 0;
}

static int kw_enum(struct compiler *c, struct node *n, const char *kw, const json_t *v,
                   const char *path, const char *base) {
    (void)base;
    if (!json_is_array(v))
        return cerr(c, path, kw, "\"enum\" must be an array, got %s", type_name(v));
    n->enum_values = v;
    return 0;
}

static int kw_const(struct compiler *c, struct node *n, const char *kw, const json_t *v,
                    const char *path, const char *base) {
    (void)c, (void)kw, (void)path, (void)base;
    n->const_value = v;
    return 0;
}

static int kw_properties(struct compiler *c, struct node *n, const char *kw, const json_t *v,
                         const char *path, const char *base) {
    if (!json_is_object(v))
        return cerr(c, path, kw, "\"properties\" must be an object, got %s", type_name(v));
    n->props_obj = v;
    n->props = calloc(json_object_size(v) + 1, sizeof *n->props);
    if (!n->props)
        return oom(c, path);
    const char *key;
    size_t klen;
    json_t *sub;
    json_object_keylen_foreach((json_t *)v, key, klen, sub) {
        struct prop *p = &n->props[n->nprops];
        p->name = key;
        p->len = klen;
        p->schema = compile_child(c, sub, path, kw, key, klen, base);
        if (!p->schema)
            return -1;
        n->nprops++;
    }
    return 0;
}

static int kw_pattern_properties(struct compiler *c, struct node *n, const char *kw,
                                 const json_t *v, const char *path, const char *base) {
    if (!json_is_object(v))
        return cerr(c, path, kw, "\"patternProperties\" must be an object, got %s", type_name(v));
    n->pprops = calloc(json_object_size(v) + 1, sizeof *n->pprops);
    if (!n->pprops)
        return oom(c, path);
    const char *key;
    size_t klen;
    json_t *sub;
    json_object_keylen_foreach((json_t *)v, key, klen, sub) {
        struct pattern_prop *p = &n->pprops[n->npprops];
        char *kpath = path_join(path, kw, strlen(kw));
        if (!kpath)
            return oom(c, path);
        int rc = compile_regex(c, &p->re, key, klen, kpath, key);
        free(kpath);
        if (rc < 0)
            return -1;
        n->npprops++;
        p->schema = compile_child(c, sub, path, kw, key, klen, base);
        if (!p->schema)
            return -1;
    }
    return 0;
}

/* Keywords whose value is a single subschema. */
static int kw_subschema(struct compiler *c, struct node *n, const char *kw, const json_t *v,
                        const char *path, const char *base) {
    struct node *sub = compile_child(c, v, path, kw, NULL, 0, base);
    if (!sub)
        return -1;
    if (strcmp(kw, "additionalProperties") == 0)
        n->additional_props = sub;
    else if (strcmp(kw, "propertyNames") == 0)
        n->property_names = sub;
    else if (strcmp(kw, "additionalItems") == 0)
        n->additional_items = sub;
    else if (strcmp(kw, "contains") == 0)
        n->contains = sub;
    else if (strcmp(kw, "not") == 0)
        n->not_schema = sub;
    else if (strcmp(kw, "if") == 0)
        n->if_schema = sub;
    else if (strcmp(kw, "then") == 0)
        n->then_schema = sub;
    else if (strcmp(kw, "else") == 0)
        n->else_schema = sub;
    return 0;
}

static int check_string_array(struct compiler *c, const json_t *v, const char *path, const char *kw,
                              const char *what) {
    if (!json_is_array(v))
        return cerr(c, path, kw, "%s must be an array of strings, got %s", what, type_name(v));
    size_t i;
    json_t *s;
    json_array_foreach(v, i, s) {
        if (!json_is_string(s))
            return cerr(c, path, kw, "%s must be an array of strings, item %zu is %s", what, i,
                        type_name(s));
    }
    return 0;
}

static int kw_required(struct compiler *c, struct node *n, const char *kw, const json_t *v,
                       const char *path, const char *base) {
    (void)base;
    if (check_string_array(c, v, path, kw, "\"required\"") < 0)
        return -1;
    n->required = v;
    return 0;
}

static int kw_count(struct compiler *c, struct node *n, const char *kw, const json_t *v,
                    const char *path, const char *base) {
    (void)base;
    long long *dst = strcmp(kw, "minProperties") == 0   ? &n->min_props
                     : strcmp(kw, "maxProperties") == 0 ? &n->max_props
                     : strcmp(kw, "minItems") == 0      ? &n->min_items
                     : strcmp(kw, "maxItems") == 0      ? &n->max_items
                     : strcmp(kw, "minLength") == 0     ? &n->min_length
                                                        : &n->max_length;
    return get_count(c, v, path, kw, dst);
}

static int kw_dependencies(struct compiler *c, struct node *n, const char *kw, const json_t *v,
                           const char *path, const char *base) {
    if (!json_is_object(v))
        return cerr(c, path, kw, "\"dependencies\" must be an object, got %s", type_name(v));
    n->deps = calloc(json_object_size(v) + 1, sizeof *n->deps);
    if (!n->deps)
        return oom(c, path);
    const char *key;
    size_t klen;
    json_t *sub;
    json_object_keylen_foreach((json_t *)v, key, klen, sub) {
        struct dep *d = &n->deps[n->ndeps];
        d->name = key;
        d->len = klen;
        if (json_is_array(sub)) {
            char *kpath = path_join(path, kw, strlen(kw));
            if (!kpath)
                return oom(c, path);
            int rc = check_string_array(c, sub, kpath, key, "a property dependency");
            free(kpath);
            if (rc < 0)
                return -1;
            d->required = sub;
        } else {
            d->schema = compile_child(c, sub, path, kw, key, klen, base);
            if (!d->schema)
                return -1;
        }
        n->ndeps++;
    }
    return 0;
}

static int kw_items(struct compiler *c, struct node *n, const char *kw, const json_t *v,
                    const char *path, const char *base) {
    if (!json_is_array(v)) {
        n->items = compile_child(c, v, path, kw, NULL, 0, base);
        return n->items ? 0 : -1;
    }
    n->items_is_list = true;
    n->item_list = calloc(json_array_size(v) + 1, sizeof *n->item_list);
    if (!n->item_list)
        return oom(c, path);
    size_t i;
    json_t *sub;
    json_array_foreach(v, i, sub) {
        n->item_list[i] = compile_child_idx(c, sub, path, kw, i, base);
        if (!n->item_list[i])
            return -1;
        n->nitem_list++;
    }
    return 0;
}

static int kw_unique_items(struct compiler *c, struct node *n, const char *kw, const json_t *v,
                           const char *path, const char *base) {
    (void)base;
    if (!json_is_boolean(v))
        return cerr(c, path, kw, "\"uniqueItems\" must be a boolean, got %s", type_name(v));
    n->unique_items = json_is_true(v);
    return 0;
}

static int kw_number(struct compiler *c, struct node *n, const char *kw, const json_t *v,
                     const char *path, const char *base) {
    (void)base;
    if (!json_is_number(v))
        return cerr(c, path, kw, "\"%s\" must be a number, got %s", kw, type_name(v));
    if (json_is_real(v) && !isfinite(json_real_value(v)))
        return cerr(c, path, kw, "\"%s\" must be a finite number", kw);
    if (strcmp(kw, "minimum") == 0)
        n->minimum = v;
    else if (strcmp(kw, "maximum") == 0)
        n->maximum = v;
    else if (strcmp(kw, "exclusiveMinimum") == 0)
        n->ex_minimum = v;
    else if (strcmp(kw, "exclusiveMaximum") == 0)
        n->ex_maximum = v;
    else {
        if (json_number_value(v) <= 0)
            return cerr(c, path, kw, "\"multipleOf\" must be greater than 0");
        n->multiple_of = v;
    }
    return 0;
}

/* contentMediaType is an annotation in draft 7 that validators may assert:
 * "application/json" is asserted (the string must be a JSON document), as
 * the suite's optional content.json expects; other media types, and any
 * with contentEncoding, stay annotations. */
static int kw_content_media_type(struct compiler *c, struct node *n, const char *kw,
                                 const json_t *v, const char *path, const char *base) {
    const char *t;

    (void)base;
    if (!json_is_string(v))
        return cerr(c, path, kw, "\"%s\" must be a string, got %s", kw, type_name(v));
    t = json_string_value(v);
    n->content_json =
        strcasecmp(t, "application/json") == 0 && !json_object_get(n->json, "contentEncoding");
    return 0;
}

static int kw_pattern(struct compiler *c, struct node *n, const char *kw, const json_t *v,
                      const char *path, const char *base) {
    (void)base;
    if (!json_is_string(v))
        return cerr(c, path, kw, "\"pattern\" must be a string, got %s", type_name(v));
    return compile_regex(c, &n->pattern, json_string_value(v), json_string_length(v), path, kw);
}

static int kw_schema_list(struct compiler *c, struct node *n, const char *kw, const json_t *v,
                          const char *path, const char *base) {
    if (!json_is_array(v) || json_array_size(v) == 0)
        return cerr(c, path, kw, "\"%s\" must be a non-empty array of schemas", kw);
    struct node **list = calloc(json_array_size(v), sizeof *list);
    if (!list)
        return oom(c, path);
    size_t *count;
    if (strcmp(kw, "allOf") == 0) {
        n->all_of = list;
        count = &n->nall_of;
    } else if (strcmp(kw, "anyOf") == 0) {
        n->any_of = list;
        count = &n->nany_of;
    } else {
        n->one_of = list;
        count = &n->none_of;
    }
    size_t i;
    json_t *sub;
    json_array_foreach(v, i, sub) {
        list[i] = compile_child_idx(c, sub, path, kw, i, base);
        if (!list[i])
            return -1;
        (*count)++;
    }
    return 0;
}

static int kw_definitions(struct compiler *c, struct node *n, const char *kw, const json_t *v,
                          const char *path, const char *base) {
    (void)n;
    if (!json_is_object(v))
        return cerr(c, path, kw, "\"definitions\" must be an object, got %s", type_name(v));
    const char *key;
    size_t klen;
    json_t *sub;
    json_object_keylen_foreach((json_t *)v, key, klen, sub) {
        if (!compile_child(c, sub, path, kw, key, klen, base))
            return -1;
    }
    return 0;
}

static const struct keyword {
    const char *name;
    kw_fn *fn;
} keywords[] = {
    {"$schema", kw_string_annotation},
    {"$id", kw_annotation}, /* handled before the table */
    {"$ref", kw_annotation},
    {"$comment", kw_string_annotation},
    {"title", kw_string_annotation},
    {"description", kw_string_annotation},
    {"default", kw_annotation},
    {"examples", kw_annotation},
    {"readOnly", kw_annotation},
    {"writeOnly", kw_annotation},
    {"format", kw_string_annotation},
    {"contentMediaType", kw_content_media_type},
    {"contentEncoding", kw_string_annotation},
    {"definitions", kw_definitions},
    {"type", kw_type},
    {"enum", kw_enum},
    {"const", kw_const},
    {"properties", kw_properties},
    {"required", kw_required},
    {"additionalProperties", kw_subschema},
    {"patternProperties", kw_pattern_properties},
    {"propertyNames", kw_subschema},
    {"minProperties", kw_count},
    {"maxProperties", kw_count},
    {"dependencies", kw_dependencies},
    {"items", kw_items},
    {"additionalItems", kw_subschema},
    {"contains", kw_subschema},
    {"minItems", kw_count},
    {"maxItems", kw_count},
    {"uniqueItems", kw_unique_items},
    {"minimum", kw_number},
    {"maximum", kw_number},
    {"exclusiveMinimum", kw_number},
    {"exclusiveMaximum", kw_number},
    {"multipleOf", kw_number},
    {"minLength", kw_count},
    {"maxLength", kw_count},
    {"pattern", kw_pattern},
    {"allOf", kw_schema_list},
    {"anyOf", kw_schema_list},
    {"oneOf", kw_schema_list},
    {"not", kw_subschema},
    {"if", kw_subschema},
    {"then", kw_subschema},
    {"else", kw_subschema},
};

static const struct keyword *find_keyword(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++) {
        if (strlen(keywords[i].name) == len && memcmp(keywords[i].name, name, len) == 0)
            return &keywords[i];
    }
    return NULL;
}

/* Handles "$id": registers the resource or anchor it names and returns the
 * base URI for the subschemas (new string in *out_base, or NULL to keep). */
static int handle_id(struct compiler *c, const json_t *j, const json_t *id, const char *path,
                     const char *base, char **out_base) {
    *out_base = NULL;
    if (!json_is_string(id))
        return cerr(c, path, "$id", "\"$id\" must be a string, got %s", type_name(id));
    char *abs = jschema_uri_resolve(base, json_string_value(id));
    if (!abs)
        return cerr(c, path, "$id", "\"$id\" is not a valid URI reference: \"%s\"",
                    json_string_value(id));
    int rc = 0;
    char *hash = strchr(abs, '#');
    if (hash && hash[1] && hash[1] != '/') {
        /* "#name" (possibly after a new base): a location-independent anchor. */
        size_t doclen = (size_t)(hash - abs);
        if (doclen != strlen(base) || memcmp(abs, base, doclen) != 0) {
            *out_base = strndup(abs, doclen);
            if (!*out_base) {
                rc = oom(c, path);
                goto out;
            }
            if (!find_resource(c, abs, doclen) &&
                (rc = add_resource(c, *out_base, *out_base, j, path)) < 0)
                goto out;
        }
        rc = add_resource(c, abs, *out_base ? *out_base : base, j, path);
        goto out;
    }
    if (hash)
        *hash = '\0';
    if (strcmp(abs, base) == 0)
        goto out;
    *out_base = strdup(abs);
    if (!*out_base) {
        rc = oom(c, path);
        goto out;
    }
    rc = add_resource(c, abs, abs, j, path);
out:
    free(abs);
    if (rc < 0) {
        free(*out_base);
        *out_base = NULL;
    }
    return rc;
}

static struct node *compile_schema(struct compiler *c, const json_t *j, const char *path,
                                   const char *base) {
    if (json_is_boolean(j)) {
        /* true and false are shared singletons in jansson: never memoised. */
        struct node *n = new_node(c, j, path);
        if (n)
            n->boolean = json_is_true(j);
        return n;
    }
    if (!json_is_object(j)) {
        cerr(c, path, NULL, "a schema must be an object or a boolean, got %s", type_name(j));
        return NULL;
    }
    struct node *n = map_get(c, j);
    if (n)
        return n;
    if (c->depth >= MAX_SCHEMA_DEPTH) {
        cerr(c, path, NULL, "schema nested deeper than %d levels", MAX_SCHEMA_DEPTH);
        return NULL;
    }
    n = new_node(c, j, path);
    if (!n)
        return NULL;
    if (map_put(c, j, n) < 0) {
        oom(c, path);
        return NULL;
    }

    const char *key;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach((json_t *)j, key, klen, v) {
        if (!find_keyword(key, klen)) {
            cerr(c, path, key, "unsupported keyword \"%s\"", key);
            return NULL;
        }
    }

    const json_t *ref = json_object_get(j, "$ref");
    if (ref) {
        /* Draft 7: every sibling of "$ref" is ignored, "$id" included. */
        if (!json_is_string(ref)) {
            cerr(c, path, "$ref", "\"$ref\" must be a string, got %s", type_name(ref));
            return NULL;
        }
        n->ref_uri = jschema_uri_resolve(base, json_string_value(ref));
        if (!n->ref_uri) {
            cerr(c, path, "$ref", "\"$ref\" is not a valid URI reference: \"%s\"",
                 json_string_value(ref));
            return NULL;
        }
        return n;
    }

    char *new_base = NULL;
    const json_t *id = json_object_get(j, "$id");
    if (id && handle_id(c, j, id, path, base, &new_base) < 0)
        return NULL;
    const char *sub_base = new_base ? new_base : base;

    c->depth++;
    json_object_keylen_foreach((json_t *)j, key, klen, v) {
        const struct keyword *kw = find_keyword(key, klen);
        if (kw->fn(c, n, kw->name, v, path, sub_base) < 0) {
            n = NULL;
            break;
        }
    }
    c->depth--;
    free(new_base);
    return n;
}

/* Decodes %XX escapes of a URI fragment into a new string (length in *len). */
static char *percent_decode(const char *s, size_t *len) {
    size_t n = strlen(s);
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
            !isxdigit((unsigned char)s[i + 2])) {
            free(out);
            return NULL;
        }
        char h[3] = {s[i + 1], s[i + 2], '\0'};
        int hi = (int)strtol(h, NULL, 16);
        out[o++] = (char)hi;
        i += 2;
    }
    out[o] = '\0';
    *len = o;
    return out;
}

/* Follows a decoded JSON pointer from root. Returns the target or NULL. */
static const json_t *pointer_get(const json_t *root, const char *ptr, size_t len) {
    const json_t *cur = root;
    size_t i = 0;
    if (len == 0)
        return root;
    if (ptr[0] != '/')
        return NULL;
    char *tok = malloc(len + 1);
    if (!tok)
        return NULL;
    while (i < len && cur) {
        i++; /* skip '/' */
        size_t t = 0;
        while (i < len && ptr[i] != '/') {
            if (ptr[i] == '~') {
                if (i + 1 < len && ptr[i + 1] == '0')
                    tok[t++] = '~';
                else if (i + 1 < len && ptr[i + 1] == '1')
                    tok[t++] = '/';
                else {
                    cur = NULL;
                    break;
                }
                i += 2;
            } else {
                tok[t++] = ptr[i++];
            }
        }
        if (!cur)
            break;
        tok[t] = '\0';
        if (json_is_object(cur)) {
            cur = json_object_getn(cur, tok, t);
        } else if (json_is_array(cur)) {
            char *end;
            if (t == 0 || (t > 1 && tok[0] == '0') || tok[0] < '0' || tok[0] > '9') {
                cur = NULL;
                break;
            }
            unsigned long long idx = strtoull(tok, &end, 10);
            cur = *end ? NULL : json_array_get(cur, (size_t)idx);
        } else {
            cur = NULL;
        }
    }
    free(tok);
    return cur;
}

static int resolve_ref(struct compiler *c, struct node *n) {
    const char *orig = json_string_value(json_object_get(n->json, "$ref"));
    const char *uri = n->ref_uri;
    const char *hash = strchr(uri, '#');
    size_t doclen = hash ? (size_t)(hash - uri) : strlen(uri);
    const char *frag = hash ? hash + 1 : "";
    const struct resource *r;
    const json_t *target = NULL;
    char *tpath = NULL;
    const char *tbase;

    if (*frag && *frag != '/') {
        r = find_resource(c, uri, strlen(uri));
        if (!r)
            goto out_unresolved;
        target = r->json;
        tpath = strdup(r->path);
        tbase = r->base;
    } else {
        r = find_resource(c, uri, doclen);
        if (!r)
            goto out_unresolved;
        size_t plen;
        char *ptr = percent_decode(frag, &plen);
        if (!ptr)
            return cerr(c, n->path, "$ref", "invalid percent-encoding in $ref \"%s\"", orig);
        target = pointer_get(r->json, ptr, plen);
        if (target) {
            size_t rl = strlen(r->path);
            tpath = malloc(rl + plen + 1);
            if (tpath) {
                memcpy(tpath, r->path, rl);
                memcpy(tpath + rl, ptr, plen);
                tpath[rl + plen] = '\0';
            }
        }
        free(ptr);
        if (!target)
            goto out_unresolved;
        tbase = r->base;
    }
    if (!tpath)
        return oom(c, n->path);
    n->ref = compile_schema(c, target, tpath, tbase);
    free(tpath);
    return n->ref ? 0 : -1;

out_unresolved:
    return cerr(c, n->path, "$ref",
                "cannot resolve $ref \"%s\" (only references within this document are "
                "supported)",
                orig);
}

static int link_refs(struct compiler *c) {
    struct jschema *js = c->js;
    /* Resolving may compile new nodes (targets outside the schema
     * keywords), so the bound is re-read on every turn. */
    for (size_t i = 0; i < js->nnodes; i++) {
        struct node *n = js->nodes[i];
        if (n->ref_uri && !n->ref && resolve_ref(c, n) < 0)
            return -1;
    }
    /* A chain of references that comes back to itself would never reach a
     * real schema; refuse it here rather than loop at validation time. */
    for (size_t i = 0; i < js->nnodes; i++) {
        const struct node *n = js->nodes[i];
        size_t steps = 0;
        while (n->ref && steps <= js->nnodes) {
            n = n->ref;
            steps++;
        }
        if (n->ref)
            return cerr(c, js->nodes[i]->path, "$ref", "$ref refers back to itself");
    }
    return 0;
}

struct jschema *jschema_compile(json_t *schema, struct jschema_error *err) {
    struct compiler c = {0};
    if (err)
        memset(err, 0, sizeof *err);
    c.err = err;
    if (!schema) {
        cerr(&c, "", NULL, "no schema");
        return NULL;
    }
    struct jschema *js = calloc(1, sizeof *js);
    if (!js) {
        oom(&c, "");
        return NULL;
    }
    js->root = json_incref(schema);
    c.js = js;
    js->mctx = pcre2_match_context_create(NULL);
    if (!js->mctx) {
        oom(&c, "");
        goto out_fail;
    }
    pcre2_set_match_limit(js->mctx, REGEX_MATCH_LIMIT);
    pcre2_set_depth_limit(js->mctx, REGEX_DEPTH_LIMIT);
    if (add_resource(&c, DEFAULT_BASE, DEFAULT_BASE, schema, "") < 0)
        goto out_fail;
    js->top = compile_schema(&c, schema, "", DEFAULT_BASE);
    if (!js->top || link_refs(&c) < 0)
        goto out_fail;
    goto out;
out_fail:
    jschema_free(js);
    js = NULL;
out:
    for (size_t i = 0; i < c.nres; i++) {
        free(c.res[i].uri);
        free(c.res[i].base);
        free(c.res[i].path);
    }
    free(c.res);
    free(c.map);
    return js;
}

void jschema_free(struct jschema *js) {
    if (!js)
        return;
    for (size_t i = 0; i < js->nnodes; i++)
        node_free(js->nodes[i]);
    free(js->nodes);
    pcre2_match_context_free(js->mctx);
    json_decref(js->root);
    free(js);
}

/* ------------------------------------------------------------------------ */
/* Validation                                                                */

/* One step of the instance path; a chain of these lives on the stack. */
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
            append_token(buf, size, &pos, chain[i]->key, chain[i]->len);
        } else {
            char num[32];
            int len = snprintf(num, sizeof num, "%zu", chain[i]->len);
            append_token(buf, size, &pos, num, (size_t)len);
        }
    }
}

static void vformat(struct jschema_error *e, const struct node *n, const struct seg *at,
                    const char *kw, const char *fmt, va_list ap) {
    memset(e, 0, sizeof *e);
    render_path(at, e->instance_path, sizeof e->instance_path);
    copy_str(e->schema_path, sizeof e->schema_path, n->path);
    if (kw && *kw) {
        size_t pos = strlen(e->schema_path);
        append_token(e->schema_path, sizeof e->schema_path, &pos, kw, strlen(kw));
        copy_str(e->keyword, sizeof e->keyword, kw);
    } else if (!kw) {
        copy_str(e->keyword, sizeof e->keyword, "false");
    }
    vsnprintf(e->message, sizeof e->message, fmt, ap);
}

static int fail(struct vctx *c, const struct node *n, const struct seg *at, const char *kw,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail(struct vctx *c, const struct node *n, const struct seg *at, const char *kw,
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
static int fatal(struct vctx *c, const struct node *n, const struct seg *at, const char *kw,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fatal(struct vctx *c, const struct node *n, const struct seg *at, const char *kw,
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

static int validate(struct vctx *c, const struct node *n, const json_t *inst, const struct seg *at);

/* Evaluates without reporting: 1 valid, 0 invalid, -1 fatal. */
static int probe(struct vctx *c, const struct node *n, const json_t *inst, const struct seg *at) {
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
static int regex_match(const struct vctx *c, const struct regex *re, const char *s, size_t len) {
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

    num_decimal(v, &x);
    num_decimal(m, &y);
    r = decimal_is_multiple(&x, &y);
    decimal_fini(&x);
    decimal_fini(&y);
    return r;
}

__attribute__((noinline)) static int check_number(struct vctx *c, const struct node *n,
                                                  const json_t *inst, const struct seg *at) {
    char num[40];
    if (n->minimum && num_cmp(inst, n->minimum) < 0) {
        num_str(n->minimum, num, sizeof num);
        return fail(c, n, at, "minimum", "must be >= %s", num);
    }
    if (n->maximum && num_cmp(inst, n->maximum) > 0) {
        num_str(n->maximum, num, sizeof num);
        return fail(c, n, at, "maximum", "must be <= %s", num);
    }
    if (n->ex_minimum && num_cmp(inst, n->ex_minimum) <= 0) {
        num_str(n->ex_minimum, num, sizeof num);
        return fail(c, n, at, "exclusiveMinimum", "must be > %s", num);
    }
    if (n->ex_maximum && num_cmp(inst, n->ex_maximum) >= 0) {
        num_str(n->ex_maximum, num, sizeof num);
        return fail(c, n, at, "exclusiveMaximum", "must be < %s", num);
    }
    if (n->multiple_of && !is_multiple(inst, n->multiple_of)) {
        num_str(n->multiple_of, num, sizeof num);
        return fail(c, n, at, "multipleOf", "must be a multiple of %s", num);
    }
    return 0;
}

__attribute__((noinline)) static int check_string(struct vctx *c, const struct node *n,
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

static bool is_false_schema(const struct node *n) {
    while (n->ref)
        n = n->ref;
    return n->boolean == 0;
}

/* Validates one property name against "propertyNames"; the report names
 * the property and quotes the inner failure. */
__attribute__((noinline)) static int check_property_name(struct vctx *c, const struct node *n,
                                                         const char *key, size_t klen,
                                                         const struct seg *at,
                                                         const struct seg *s) {
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

__attribute__((noinline)) static int check_object(struct vctx *c, const struct node *n,
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
        const struct dep *d = &n->deps[i];
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
        const struct prop *p = &n->props[i];
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

/* A hash consistent with json_eq: values it calls equal hash the same
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
        if (has_text(j)) {
            /* Such a number equals no int64 and no double (jtext_parse holds
             * those exactly), only another number with a text. */
            struct decimal x;
            uint64_t h;

            num_decimal(j, &x);
            h = mix64(decimal_hash(&x));
            decimal_fini(&x);
            return h;
        }
        if (is_integral_real(d) && d >= -9.2e18 && d <= 9.2e18)
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
static int unique_pair(struct vctx *c, const struct node *n, const json_t *inst,
                       const struct seg *at, size_t i, size_t j) {
    int eq = json_eq(json_array_get(inst, i), json_array_get(inst, j), 0);
    if (eq < 0)
        return fatal(c, n, at, "uniqueItems", "items nested too deeply to compare");
    if (eq)
        return fail(c, n, at, "uniqueItems", "items must be unique, items %zu and %zu are equal",
                    i < j ? i : j, i < j ? j : i);
    return 0;
}

__attribute__((noinline)) static int check_unique(struct vctx *c, const struct node *n,
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

__attribute__((noinline)) static int check_array(struct vctx *c, const struct node *n,
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
            const struct node *sub = i < n->nitem_list ? n->item_list[i] : n->additional_items;
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

__attribute__((noinline)) static int check_combinators(struct vctx *c, const struct node *n,
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
        const struct node *branch = r ? n->then_schema : n->else_schema;
        if (branch && validate(c, branch, inst, at) < 0)
            return -1;
    }
    return 0;
}

__attribute__((noinline)) static int type_error(struct vctx *c, const struct node *n,
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
    return fail(c, n, at, "type", "expected %s, got %s", want, type_name(inst));
}

static int validate_node(struct vctx *c, const struct node *n, const json_t *inst,
                         const struct seg *at) {
    while (n->ref)
        n = n->ref;
    if (n->boolean >= 0)
        return n->boolean ? 0 : fail(c, n, at, NULL, "no value is allowed here");

    unsigned t = type_of(inst);
    if (n->types && !(n->types & t))
        return type_error(c, n, inst, at);
    if (n->enum_values) {
        bool found = false;
        size_t i;
        json_t *e;
        json_array_foreach(n->enum_values, i, e) {
            int eq = json_eq(inst, e, 0);
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
        int eq = json_eq(inst, n->const_value, 0);
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

static int validate(struct vctx *c, const struct node *n, const json_t *inst,
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
            copy_str(err->message, sizeof err->message, "no schema or no instance");
        return -1;
    }
    tl_nums = nums;
    rc = validate(&c, schema->top, instance, NULL) < 0 ? -1 : 0;
    tl_nums = NULL;
    return rc;
}
