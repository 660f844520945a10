/* A YAML document as a tree of nodes that remember where they stood.
 *
 * libyaml's event parser is turned into scalars, sequences and mappings, each
 * with its 1-based line and column, so that the configuration loader can say
 * exactly where a problem is. Only the plain data model is supported: anchors,
 * aliases, tags, complex (non-scalar) mapping keys and streams of several
 * documents are refused with an error, and so is a key repeated in one mapping.
 */
#ifndef FPESA_YAMLTREE_H
#define FPESA_YAMLTREE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Deepest nesting of sequences and mappings accepted; deeper input is an error
 * (keeps recursion bounded on hostile input). */
#define YTREE_MAX_DEPTH 128

enum ynode_kind { YNODE_SCALAR, YNODE_SEQ, YNODE_MAP };

struct ynode;

struct ypair {
    struct ynode *key; /* always a scalar */
    struct ynode *value;
};

struct ynode {
    enum ynode_kind kind;
    int line; /* 1-based */
    int col;  /* 1-based */
    /* YNODE_SCALAR */
    char *value; /* NUL-terminated (may also contain NULs; see len) */
    size_t len;
    bool quoted;  /* any style but plain: always a string */
    bool invalid; /* stands for something already reported (an alias): skip it */
    /* YNODE_SEQ */
    struct ynode **items;
    size_t n_items;
    /* YNODE_MAP */
    struct ypair *pairs;
    size_t n_pairs;
};

/* Called for every problem found while building the tree; line and col are
 * 1-based, or 0 when the problem has no position. */
typedef void ytree_error_fn(void *ctx, int line, int col, const char *msg);

/* Parses len bytes of YAML at buf (borrowed). Returns the root node (new; free
 * with ytree_free), or NULL for an empty document. *failed is set when any
 * problem was reported through err (the tree returned, if any, holds what
 * could be read and may still be checked for more problems); a syntax error
 * stops the parse. */
struct ynode *ytree_parse(const char *buf, size_t len, ytree_error_fn *err, void *ctx,
                          bool *failed);

/* Frees a tree. NULL is fine. */
void ytree_free(struct ynode *node);

/* The value stored under key in a mapping, or NULL (borrowed). */
struct ynode *ytree_get(const struct ynode *map, const char *key);

/* True when node is a plain scalar that the YAML 1.2 core schema reads as
 * null: "", "~", "null", "Null", "NULL". */
bool ytree_is_null(const struct ynode *node);

/* Converts a node to JSON following the YAML 1.2 core schema: quoted scalars
 * are strings; plain scalars are null, true/false, integers (decimal, 0o
 * octal, 0x hex) or floats when they read as such, strings otherwise. Returns
 * a new reference, or NULL with *bad set to the offending node (borrowed) and
 * msg filled (infinity and NaN have no JSON form). */
json_t *ytree_to_json(const struct ynode *node, const struct ynode **bad, char *msg,
                      size_t msg_len);

/* Follows a JSON pointer ("/properties/a/type") from node down the tree.
 * Returns the node of the last token found (for a mapping member, its key
 * node), or node itself for "" (borrowed; never NULL when node is not). */
const struct ynode *ytree_pointer(const struct ynode *node, const char *pointer);

#endif
