/* The keyword table of the JSON Schema compiler: for each draft 7 keyword,
 * the function that checks its value and stores it in the node.
 */
#include "jsonschema_int.h"

#include "jschema_uri.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int kw_annotation(struct jschema_compiler *c, struct jschema_node *n, const char *kw,
                         const json_t *v, const char *path, const char *base) {
    (void)c, (void)n, (void)kw, (void)v, (void)path, (void)base;
    return 0;
}

static int kw_string_annotation(struct jschema_compiler *c, struct jschema_node *n, const char *kw,
                                const json_t *v, const char *path, const char *base) {
    (void)n, (void)base;
    if (!json_is_string(v))
        return jschema_cerr(c, path, kw, "\"%s\" must be a string, got %s", kw,
                            jschema_type_name(v));
    return 0;
}

static int kw_type(struct jschema_compiler *c, struct jschema_node *n, const char *kw,
                   const json_t *v, const char *path, const char *base) {
    (void)base;
    size_t count = json_is_array(v) ? json_array_size(v) : 1;
    if (!json_is_string(v) && !json_is_array(v))
        return jschema_cerr(c, path, kw, "\"type\" must be a string or an array of strings, got %s",
                            jschema_type_name(v));
    for (size_t i = 0; i < count; i++) {
        const json_t *t = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_string(t))
            return jschema_cerr(c, path, kw, "\"type\" must be a string or an array of strings");
        const char *s = json_string_value(t);
        unsigned bit = 0;
        for (size_t k = 0; k < sizeof type_names / sizeof type_names[0]; k++) {
            if (strcmp(s, type_names[k].name) == 0)
                bit = type_names[k].bit;
        }
        if (!bit)
            return jschema_cerr(
                c, path, kw,
                "unknown type \"%s\" (expected null, boolean, object, array, number, "
                "string or integer)",
                s);
        n->types |= bit;
    }
    if (json_is_array(v) && count == 0)
        return jschema_cerr(c, path, kw, "\"type\" must not be an empty array");
    return 0;
}

static int kw_enum(struct jschema_compiler *c, struct jschema_node *n, const char *kw,
                   const json_t *v, const char *path, const char *base) {
    (void)base;
    if (!json_is_array(v))
        return jschema_cerr(c, path, kw, "\"enum\" must be an array, got %s", jschema_type_name(v));
    n->enum_values = v;
    return 0;
}

static int kw_const(struct jschema_compiler *c, struct jschema_node *n, const char *kw,
                    const json_t *v, const char *path, const char *base) {
    (void)c, (void)kw, (void)path, (void)base;
    n->const_value = v;
    return 0;
}

static int kw_properties(struct jschema_compiler *c, struct jschema_node *n, const char *kw,
                         const json_t *v, const char *path, const char *base) {
    if (!json_is_object(v))
        return jschema_cerr(c, path, kw, "\"properties\" must be an object, got %s",
                            jschema_type_name(v));
    n->props_obj = v;
    n->props = calloc(json_object_size(v) + 1, sizeof *n->props);
    if (!n->props)
        return jschema_oom(c, path);
    const char *key;
    size_t klen;
    json_t *sub;
    json_object_keylen_foreach((json_t *)v, key, klen, sub) {
        struct jschema_prop *p = &n->props[n->nprops];
        p->name = key;
        p->len = klen;
        p->schema = jschema_compile_child(c, sub, path, kw, key, klen, base);
        if (!p->schema)
            return -1;
        n->nprops++;
    }
    return 0;
}

static int kw_pattern_properties(struct jschema_compiler *c, struct jschema_node *n, const char *kw,
                                 const json_t *v, const char *path, const char *base) {
    if (!json_is_object(v))
        return jschema_cerr(c, path, kw, "\"patternProperties\" must be an object, got %s",
                            jschema_type_name(v));
    n->pprops = calloc(json_object_size(v) + 1, sizeof *n->pprops);
    if (!n->pprops)
        return jschema_oom(c, path);
    const char *key;
    size_t klen;
    json_t *sub;
    json_object_keylen_foreach((json_t *)v, key, klen, sub) {
        struct jschema_pattern_prop *p = &n->pprops[n->npprops];
        char *kpath = jschema_path_join(path, kw, strlen(kw));
        if (!kpath)
            return jschema_oom(c, path);
        int rc = jschema_compile_regex(c, &p->re, key, klen, kpath, key);
        free(kpath);
        if (rc < 0)
            return -1;
        n->npprops++;
        p->schema = jschema_compile_child(c, sub, path, kw, key, klen, base);
        if (!p->schema)
            return -1;
    }
    return 0;
}

/* Keywords whose value is a single subschema. */
static int kw_subschema(struct jschema_compiler *c, struct jschema_node *n, const char *kw,
                        const json_t *v, const char *path, const char *base) {
    struct jschema_node *sub = jschema_compile_child(c, v, path, kw, NULL, 0, base);
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

static int check_string_array(struct jschema_compiler *c, const json_t *v, const char *path,
                              const char *kw, const char *what) {
    if (!json_is_array(v))
        return jschema_cerr(c, path, kw, "%s must be an array of strings, got %s", what,
                            jschema_type_name(v));
    size_t i;
    json_t *s;
    json_array_foreach(v, i, s) {
        if (!json_is_string(s))
            return jschema_cerr(c, path, kw, "%s must be an array of strings, item %zu is %s", what,
                                i, jschema_type_name(s));
    }
    return 0;
}

static int kw_required(struct jschema_compiler *c, struct jschema_node *n, const char *kw,
                       const json_t *v, const char *path, const char *base) {
    (void)base;
    if (check_string_array(c, v, path, kw, "\"required\"") < 0)
        return -1;
    n->required = v;
    return 0;
}

static int kw_count(struct jschema_compiler *c, struct jschema_node *n, const char *kw,
                    const json_t *v, const char *path, const char *base) {
    (void)base;
    long long *dst = strcmp(kw, "minProperties") == 0   ? &n->min_props
                     : strcmp(kw, "maxProperties") == 0 ? &n->max_props
                     : strcmp(kw, "minItems") == 0      ? &n->min_items
                     : strcmp(kw, "maxItems") == 0      ? &n->max_items
                     : strcmp(kw, "minLength") == 0     ? &n->min_length
                                                        : &n->max_length;
    return jschema_get_count(c, v, path, kw, dst);
}

static int kw_dependencies(struct jschema_compiler *c, struct jschema_node *n, const char *kw,
                           const json_t *v, const char *path, const char *base) {
    if (!json_is_object(v))
        return jschema_cerr(c, path, kw, "\"dependencies\" must be an object, got %s",
                            jschema_type_name(v));
    n->deps = calloc(json_object_size(v) + 1, sizeof *n->deps);
    if (!n->deps)
        return jschema_oom(c, path);
    const char *key;
    size_t klen;
    json_t *sub;
    json_object_keylen_foreach((json_t *)v, key, klen, sub) {
        struct jschema_dep *d = &n->deps[n->ndeps];
        d->name = key;
        d->len = klen;
        if (json_is_array(sub)) {
            char *kpath = jschema_path_join(path, kw, strlen(kw));
            if (!kpath)
                return jschema_oom(c, path);
            int rc = check_string_array(c, sub, kpath, key, "a property dependency");
            free(kpath);
            if (rc < 0)
                return -1;
            d->required = sub;
        } else {
            d->schema = jschema_compile_child(c, sub, path, kw, key, klen, base);
            if (!d->schema)
                return -1;
        }
        n->ndeps++;
    }
    return 0;
}

static int kw_items(struct jschema_compiler *c, struct jschema_node *n, const char *kw,
                    const json_t *v, const char *path, const char *base) {
    if (!json_is_array(v)) {
        n->items = jschema_compile_child(c, v, path, kw, NULL, 0, base);
        return n->items ? 0 : -1;
    }
    n->items_is_list = true;
    n->item_list = calloc(json_array_size(v) + 1, sizeof *n->item_list);
    if (!n->item_list)
        return jschema_oom(c, path);
    size_t i;
    json_t *sub;
    json_array_foreach(v, i, sub) {
        n->item_list[i] = jschema_compile_child_idx(c, sub, path, kw, i, base);
        if (!n->item_list[i])
            return -1;
        n->nitem_list++;
    }
    return 0;
}

static int kw_unique_items(struct jschema_compiler *c, struct jschema_node *n, const char *kw,
                           const json_t *v, const char *path, const char *base) {
    (void)base;
    if (!json_is_boolean(v))
        return jschema_cerr(c, path, kw, "\"uniqueItems\" must be a boolean, got %s",
                            jschema_type_name(v));
    n->unique_items = json_is_true(v);
    return 0;
}

static int kw_number(struct jschema_compiler *c, struct jschema_node *n, const char *kw,
                     const json_t *v, const char *path, const char *base) {
    (void)base;
    if (!json_is_number(v))
        return jschema_cerr(c, path, kw, "\"%s\" must be a number, got %s", kw,
                            jschema_type_name(v));
    if (json_is_real(v) && !isfinite(json_real_value(v)))
        return jschema_cerr(c, path, kw, "\"%s\" must be a finite number", kw);
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
            return jschema_cerr(c, path, kw, "\"multipleOf\" must be greater than 0");
        n->multiple_of = v;
    }
    return 0;
}

/* contentMediaType is an annotation in draft 7 that validators may assert:
 * "application/json" is asserted (the string must be a JSON document), as
 * the suite's optional content.json expects; other media types, and any
 * with contentEncoding, stay annotations. */
static int kw_content_media_type(struct jschema_compiler *c, struct jschema_node *n, const char *kw,
                                 const json_t *v, const char *path, const char *base) {
    const char *t;

    (void)base;
    if (!json_is_string(v))
        return jschema_cerr(c, path, kw, "\"%s\" must be a string, got %s", kw,
                            jschema_type_name(v));
    t = json_string_value(v);
    n->content_json =
        strcasecmp(t, "application/json") == 0 && !json_object_get(n->json, "contentEncoding");
    return 0;
}

static int kw_pattern(struct jschema_compiler *c, struct jschema_node *n, const char *kw,
                      const json_t *v, const char *path, const char *base) {
    (void)base;
    if (!json_is_string(v))
        return jschema_cerr(c, path, kw, "\"pattern\" must be a string, got %s",
                            jschema_type_name(v));
    return jschema_compile_regex(c, &n->pattern, json_string_value(v), json_string_length(v), path,
                                 kw);
}

static int kw_schema_list(struct jschema_compiler *c, struct jschema_node *n, const char *kw,
                          const json_t *v, const char *path, const char *base) {
    if (!json_is_array(v) || json_array_size(v) == 0)
        return jschema_cerr(c, path, kw, "\"%s\" must be a non-empty array of schemas", kw);
    struct jschema_node **list = calloc(json_array_size(v), sizeof *list);
    if (!list)
        return jschema_oom(c, path);
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
        list[i] = jschema_compile_child_idx(c, sub, path, kw, i, base);
        if (!list[i])
            return -1;
        (*count)++;
    }
    return 0;
}

static int kw_definitions(struct jschema_compiler *c, struct jschema_node *n, const char *kw,
                          const json_t *v, const char *path, const char *base) {
    (void)n;
    if (!json_is_object(v))
        return jschema_cerr(c, path, kw, "\"definitions\" must be an object, got %s",
                            jschema_type_name(v));
    const char *key;
    size_t klen;
    json_t *sub;
    json_object_keylen_foreach((json_t *)v, key, klen, sub) {
        if (!jschema_compile_child(c, sub, path, kw, key, klen, base))
            return -1;
    }
    return 0;
}

static const struct jschema_keyword keywords[] = {
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

const struct jschema_keyword *jschema_find_keyword(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++) {
        if (strlen(keywords[i].name) == len && memcmp(keywords[i].name, name, len) == 0)
            return &keywords[i];
    }
    return NULL;
}

/* Handles "$id": registers the resource or anchor it names and returns the
 * base URI for the subschemas (new string in *out_base, or NULL to keep). */
