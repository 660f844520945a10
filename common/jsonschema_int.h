/* What the pieces of the JSON Schema draft 7 implementation share; private to
 * common/jsonschema_*.c (the API is jsonschema.h).
 *
 * JSON Schema draft 7: compilation of a schema document into a tree of
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
#ifndef FPESA_JSONSCHEMA_INT_H
#define FPESA_JSONSCHEMA_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8

#include "jsonschema.h"

#include <jansson.h>
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>

struct decimal;

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

struct jschema_regex {
    pcre2_code *code;
    const char *source; /* borrowed from the schema document */
};

struct jschema_node;

struct jschema_prop {
    const char *name; /* borrowed from the schema document */
    size_t len;
    struct jschema_node *schema;
};

struct jschema_pattern_prop {
    struct jschema_regex re;
    struct jschema_node *schema;
};

struct jschema_dep {
    const char *name; /* borrowed */
    size_t len;
    const json_t *required; /* array form, borrowed; NULL for the schema form */
    struct jschema_node *schema;
};

struct jschema_node {
    char *path; /* JSON pointer of this schema in the document, owned */
    const json_t *json;
    int boolean;   /* -1 for an object schema, else the value of a boolean schema */
    char *ref_uri; /* absolute URI of "$ref", owned; NULL when there is none */
    struct jschema_node *ref;

    unsigned types; /* 0: no "type" keyword */
    const json_t *enum_values;
    const json_t *const_value;

    const json_t *props_obj;
    struct jschema_prop *props;
    size_t nprops;
    struct jschema_pattern_prop *pprops;
    size_t npprops;
    struct jschema_node *additional_props;
    struct jschema_node *property_names;
    const json_t *required;
    long long min_props, max_props;
    struct jschema_dep *deps;
    size_t ndeps;

    struct jschema_node *items;
    struct jschema_node **item_list;
    size_t nitem_list;
    bool items_is_list;
    struct jschema_node *additional_items;
    struct jschema_node *contains;
    long long min_items, max_items;
    bool unique_items;

    const json_t *minimum, *maximum, *ex_minimum, *ex_maximum, *multiple_of;

    long long min_length, max_length;
    struct jschema_regex pattern;
    /* contentMediaType application/json without contentEncoding: the
     * string must hold a JSON document (a form field carrying JSON). */
    bool content_json;

    struct jschema_node **all_of, **any_of, **one_of;
    size_t nall_of, nany_of, none_of;
    struct jschema_node *not_schema;
    struct jschema_node *if_schema, *then_schema, *else_schema;
};

struct jschema {
    json_t *root; /* our own reference to the document */
    struct jschema_node **nodes;
    size_t nnodes, cap;
    struct jschema_node *top;
    /* Limits for matching client strings against the schema's patterns,
     * read-only once built, shared by every thread. */
    pcre2_match_context *mctx;
};

struct jschema_resource {
    char *uri;  /* absolute URI without fragment, or with "#anchor"; owned */
    char *base; /* base URI inside the resource; owned */
    const json_t *json;
    char *path; /* JSON pointer of json in the document; owned */
};

struct jschema_map_entry {
    const json_t *key;
    struct jschema_node *node;
};

struct jschema_compiler {
    struct jschema *js;
    struct jschema_error *err; /* may be NULL */
    struct jschema_map_entry *map;
    size_t map_cap, map_len;
    struct jschema_resource *res;
    size_t nres, res_cap;
    int depth;
};

typedef int kw_fn(struct jschema_compiler *c, struct jschema_node *n, const char *kw,
                  const json_t *v, const char *path, const char *base);

struct jschema_keyword {
    const char *name;
    kw_fn *fn;
};

/* ---- jsonschema_json.c: JSON values as the schema sees them; error path tokens. ---- */

/* The exact text of the numbers of the instance being validated on this
 * thread (set by jschema_validate_exact), or NULL. */
extern _Thread_local const struct jtext_numbers *jschema_tl_nums;
bool jschema_has_text(const json_t *j);
bool jschema_is_integral_real(double d);
char *jschema_path_join(const char *path, const char *tok, size_t toklen);
const char *jschema_type_name(const json_t *j);
int jschema_json_eq(const json_t *a, const json_t *b, int depth);
int jschema_num_cmp(const json_t *a, const json_t *b);
unsigned jschema_type_of(const json_t *j);
void jschema_append_token(char *buf, size_t size, size_t *pos, const char *tok, size_t len);
void jschema_copy_str(char *dst, size_t size, const char *src);
void jschema_num_decimal(const json_t *j, struct decimal *d);
void jschema_num_str(const json_t *n, char *buf, size_t size);

/* ---- jsonschema_compile.c: the compiler's errors and child schemas. ---- */

int jschema_cerr(struct jschema_compiler *c, const char *path, const char *kw, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int jschema_compile_regex(struct jschema_compiler *c, struct jschema_regex *re, const char *src,
                          size_t len, const char *path, const char *kw);
int jschema_get_count(struct jschema_compiler *c, const json_t *v, const char *path, const char *kw,
                      long long *out);
int jschema_oom(struct jschema_compiler *c, const char *path);
struct jschema_node *jschema_compile_child(struct jschema_compiler *c, const json_t *j,
                                           const char *path, const char *tok1, const char *tok2,
                                           size_t tok2len, const char *base);
struct jschema_node *jschema_compile_child_idx(struct jschema_compiler *c, const json_t *j,
                                               const char *path, const char *kw, size_t idx,
                                               const char *base);

/* ---- jsonschema_keywords.c: the keyword table. ---- */

const struct jschema_keyword *jschema_find_keyword(const char *name, size_t len);

#endif
