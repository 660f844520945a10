/* Compilation of a JSON Schema draft 7 document into a tree of nodes
 * (see jsonschema_int.h): schema locations walked once, objects memoised by
 * address, "$id" resources recorded and "$ref" resolved afterwards; and the
 * public jschema_compile / jschema_free.
 */
#include "jsonschema_int.h"

#include "jschema_uri.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int jschema_cerr(struct jschema_compiler *c, const char *path, const char *kw, const char *fmt,
                 ...) {
    if (!c->err)
        return -1;
    struct jschema_error *e = c->err;
    memset(e, 0, sizeof *e);
    jschema_copy_str(e->schema_path, sizeof e->schema_path, path);
    if (kw) {
        size_t pos = strlen(e->schema_path);
        jschema_append_token(e->schema_path, sizeof e->schema_path, &pos, kw, strlen(kw));
        jschema_copy_str(e->keyword, sizeof e->keyword, kw);
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

int jschema_oom(struct jschema_compiler *c, const char *path) {
    return jschema_cerr(c, path, NULL, "out of memory");
}

static size_t ptr_hash(const void *p, size_t cap) {
    uintptr_t x = (uintptr_t)p;
    x ^= x >> 17;
    x *= (uintptr_t)0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    return (size_t)x & (cap - 1);
}

static struct jschema_node *map_get(const struct jschema_compiler *c, const json_t *key) {
    if (!c->map_cap)
        return NULL;
    for (size_t i = ptr_hash(key, c->map_cap);; i = (i + 1) & (c->map_cap - 1)) {
        if (!c->map[i].key)
            return NULL;
        if (c->map[i].key == key)
            return c->map[i].node;
    }
}

static int map_put(struct jschema_compiler *c, const json_t *key, struct jschema_node *node) {
    if ((c->map_len + 1) * 2 > c->map_cap) {
        size_t ncap = c->map_cap ? c->map_cap * 2 : 64;
        struct jschema_map_entry *nm = calloc(ncap, sizeof *nm);
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

static int add_resource(struct jschema_compiler *c, const char *uri, const char *base,
                        const json_t *json, const char *path) {
    for (size_t i = 0; i < c->nres; i++) {
        if (strcmp(c->res[i].uri, uri) == 0)
            return jschema_cerr(c, path, "$id", "duplicate $id \"%s\"", uri);
    }
    if (c->nres == c->res_cap) {
        size_t ncap = c->res_cap ? c->res_cap * 2 : 8;
        struct jschema_resource *nr = realloc(c->res, ncap * sizeof *nr);
        if (!nr)
            return jschema_oom(c, path);
        c->res = nr;
        c->res_cap = ncap;
    }
    struct jschema_resource *r = &c->res[c->nres];
    r->uri = strdup(uri);
    r->base = strdup(base);
    r->path = strdup(path);
    r->json = json;
    if (!r->uri || !r->base || !r->path) {
        free(r->uri);
        free(r->base);
        free(r->path);
        return jschema_oom(c, path);
    }
    c->nres++;
    return 0;
}

static const struct jschema_resource *find_resource(const struct jschema_compiler *c,
                                                    const char *uri, size_t len) {
    for (size_t i = 0; i < c->nres; i++) {
        if (strlen(c->res[i].uri) == len && memcmp(c->res[i].uri, uri, len) == 0)
            return &c->res[i];
    }
    return NULL;
}

static struct jschema_node *new_node(struct jschema_compiler *c, const json_t *json,
                                     const char *path) {
    struct jschema *js = c->js;
    if (js->nnodes == js->cap) {
        size_t ncap = js->cap ? js->cap * 2 : 16;
        struct jschema_node **nn = realloc(js->nodes, ncap * sizeof *nn);
        if (!nn)
            goto out_oom;
        js->nodes = nn;
        js->cap = ncap;
    }
    struct jschema_node *n = calloc(1, sizeof *n);
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
    jschema_oom(c, path);
    return NULL;
}

static void node_free(struct jschema_node *n) {
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

static struct jschema_node *compile_schema(struct jschema_compiler *c, const json_t *j,
                                           const char *path, const char *base);

/* Compiles the subschema found under path/tok1[/tok2]. */
struct jschema_node *jschema_compile_child(struct jschema_compiler *c, const json_t *j,
                                           const char *path, const char *tok1, const char *tok2,
                                           size_t tok2len, const char *base) {
    char *p1 = jschema_path_join(path, tok1, strlen(tok1));
    if (!p1) {
        jschema_oom(c, path);
        return NULL;
    }
    char *p2 = p1;
    if (tok2) {
        p2 = jschema_path_join(p1, tok2, tok2len);
        if (!p2) {
            free(p1);
            jschema_oom(c, path);
            return NULL;
        }
    }
    struct jschema_node *n = compile_schema(c, j, p2, base);
    if (p2 != p1)
        free(p2);
    free(p1);
    return n;
}

struct jschema_node *jschema_compile_child_idx(struct jschema_compiler *c, const json_t *j,
                                               const char *path, const char *kw, size_t idx,
                                               const char *base) {
    char num[32];
    int len = snprintf(num, sizeof num, "%zu", idx);
    return jschema_compile_child(c, j, path, kw, num, (size_t)len, base);
}

int jschema_compile_regex(struct jschema_compiler *c, struct jschema_regex *re, const char *src,
                          size_t len, const char *path, const char *kw) {
    int errcode;
    PCRE2_SIZE erroff;
    re->source = src;
    re->code = pcre2_compile((PCRE2_SPTR)src, len, PCRE2_UTF, &errcode, &erroff, NULL);
    if (!re->code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        return jschema_cerr(c, path, kw, "invalid regular expression \"%s\": %s at offset %zu", src,
                            (const char *)msg, (size_t)erroff);
    }
    /* JIT is only a speed-up: a failure leaves the interpreter in charge. */
    (void)pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE);
    return 0;
}

/* Reads a non-negative integer keyword value (2 and 2.0 both accepted). */
int jschema_get_count(struct jschema_compiler *c, const json_t *v, const char *path, const char *kw,
                      long long *out) {
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_real(v) && jschema_is_integral_real(json_real_value(v)) &&
        json_real_value(v) >= 0) {
        double d = json_real_value(v);
        *out = d >= 9.2e18 ? INT64_MAX : (long long)d;
        return 0;
    }
    return jschema_cerr(c, path, kw, "\"%s\" must be a non-negative integer, got %s", kw,
                        jschema_type_name(v));
}

static int handle_id(struct jschema_compiler *c, const json_t *j, const json_t *id,
                     const char *path, const char *base, char **out_base) {
    *out_base = NULL;
    if (!json_is_string(id))
        return jschema_cerr(c, path, "$id", "\"$id\" must be a string, got %s",
                            jschema_type_name(id));
    char *abs = jschema_uri_resolve(base, json_string_value(id));
    if (!abs)
        return jschema_cerr(c, path, "$id", "\"$id\" is not a valid URI reference: \"%s\"",
                            json_string_value(id));
    int rc = 0;
    char *hash = strchr(abs, '#');
    if (hash && hash[1] && hash[1] != '/') {
        /* "#name" (possibly after a new base): a location-independent anchor. */
        size_t doclen = (size_t)(hash - abs);
        if (doclen != strlen(base) || memcmp(abs, base, doclen) != 0) {
            *out_base = strndup(abs, doclen);
            if (!*out_base) {
                rc = jschema_oom(c, path);
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
        rc = jschema_oom(c, path);
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

static struct jschema_node *compile_schema(struct jschema_compiler *c, const json_t *j,
                                           const char *path, const char *base) {
    if (json_is_boolean(j)) {
        /* true and false are shared singletons in jansson: never memoised. */
        struct jschema_node *n = new_node(c, j, path);
        if (n)
            n->boolean = json_is_true(j);
        return n;
    }
    if (!json_is_object(j)) {
        jschema_cerr(c, path, NULL, "a schema must be an object or a boolean, got %s",
                     jschema_type_name(j));
        return NULL;
    }
    struct jschema_node *n = map_get(c, j);
    if (n)
        return n;
    if (c->depth >= MAX_SCHEMA_DEPTH) {
        jschema_cerr(c, path, NULL, "schema nested deeper than %d levels", MAX_SCHEMA_DEPTH);
        return NULL;
    }
    n = new_node(c, j, path);
    if (!n)
        return NULL;
    if (map_put(c, j, n) < 0) {
        jschema_oom(c, path);
        return NULL;
    }

    const char *key;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach((json_t *)j, key, klen, v) {
        if (!jschema_find_keyword(key, klen)) {
            jschema_cerr(c, path, key, "unsupported keyword \"%s\"", key);
            return NULL;
        }
    }

    const json_t *ref = json_object_get(j, "$ref");
    if (ref) {
        /* Draft 7: every sibling of "$ref" is ignored, "$id" included. */
        if (!json_is_string(ref)) {
            jschema_cerr(c, path, "$ref", "\"$ref\" must be a string, got %s",
                         jschema_type_name(ref));
            return NULL;
        }
        n->ref_uri = jschema_uri_resolve(base, json_string_value(ref));
        if (!n->ref_uri) {
            jschema_cerr(c, path, "$ref", "\"$ref\" is not a valid URI reference: \"%s\"",
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
        const struct jschema_keyword *kw = jschema_find_keyword(key, klen);
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

static int resolve_ref(struct jschema_compiler *c, struct jschema_node *n) {
    const char *orig = json_string_value(json_object_get(n->json, "$ref"));
    const char *uri = n->ref_uri;
    const char *hash = strchr(uri, '#');
    size_t doclen = hash ? (size_t)(hash - uri) : strlen(uri);
    const char *frag = hash ? hash + 1 : "";
    const struct jschema_resource *r;
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
            return jschema_cerr(c, n->path, "$ref", "invalid percent-encoding in $ref \"%s\"",
                                orig);
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
        return jschema_oom(c, n->path);
    n->ref = compile_schema(c, target, tpath, tbase);
    free(tpath);
    return n->ref ? 0 : -1;

out_unresolved:
    return jschema_cerr(c, n->path, "$ref",
                        "cannot resolve $ref \"%s\" (only references within this document are "
                        "supported)",
                        orig);
}

static int link_refs(struct jschema_compiler *c) {
    struct jschema *js = c->js;
    /* Resolving may compile new nodes (targets outside the schema
     * keywords), so the bound is re-read on every turn. */
    for (size_t i = 0; i < js->nnodes; i++) {
        struct jschema_node *n = js->nodes[i];
        if (n->ref_uri && !n->ref && resolve_ref(c, n) < 0)
            return -1;
    }
    /* A chain of references that comes back to itself would never reach a
     * real schema; refuse it here rather than loop at validation time. */
    for (size_t i = 0; i < js->nnodes; i++) {
        const struct jschema_node *n = js->nodes[i];
        size_t steps = 0;
        while (n->ref && steps <= js->nnodes) {
            n = n->ref;
            steps++;
        }
        if (n->ref)
            return jschema_cerr(c, js->nodes[i]->path, "$ref", "$ref refers back to itself");
    }
    return 0;
}

struct jschema *jschema_compile(json_t *schema, struct jschema_error *err) {
    struct jschema_compiler c = {0};
    if (err)
        memset(err, 0, sizeof *err);
    c.err = err;
    if (!schema) {
        jschema_cerr(&c, "", NULL, "no schema");
        return NULL;
    }
    struct jschema *js = calloc(1, sizeof *js);
    if (!js) {
        jschema_oom(&c, "");
        return NULL;
    }
    js->root = json_incref(schema);
    c.js = js;
    js->mctx = pcre2_match_context_create(NULL);
    if (!js->mctx) {
        jschema_oom(&c, "");
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
