/* libyaml events -> a tree of positioned nodes; see yamltree.h. */
#include "yamltree.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct yparser {
    yaml_parser_t parser;
    ytree_error_fn *err;
    void *ctx;
    const char *buf;
    size_t len;
    bool failed;
};

static void report(struct yparser *yp, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report(struct yparser *yp, int line, int col, const char *fmt, ...) {
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    yp->failed = true;
    if (yp->err)
        yp->err(yp->ctx, line, col, msg);
}

/* Line and column of a byte offset, for reader errors which carry no mark. */
static void offset_pos(const char *buf, size_t len, size_t offset, int *line, int *col) {
    size_t i;

    *line = 1;
    *col = 1;
    for (i = 0; i < offset && i < len; i++) {
        if (buf[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static void report_syntax(struct yparser *yp) {
    const yaml_parser_t *p = &yp->parser;
    const char *problem = p->problem ? p->problem : "unknown problem";
    int line, col;

    switch (p->error) {
    case YAML_MEMORY_ERROR:
        report(yp, 0, 0, "out of memory while reading YAML");
        return;
    case YAML_READER_ERROR:
        offset_pos(yp->buf, yp->len, p->problem_offset, &line, &col);
        if (p->problem_value != -1)
            report(yp, line, col, "YAML syntax error: %s (byte 0x%02x)", problem,
                   (unsigned)p->problem_value & 0xffu);
        else
            report(yp, line, col, "YAML syntax error: %s", problem);
        return;
    default:
        line = (int)p->problem_mark.line + 1;
        col = (int)p->problem_mark.column + 1;
        if (p->context)
            report(yp, line, col, "YAML syntax error: %s (%s at line %d)", problem, p->context,
                   (int)p->context_mark.line + 1);
        else
            report(yp, line, col, "YAML syntax error: %s", problem);
        return;
    }
}

/* Reads the next event; on a syntax error reports it and returns -1. */
static int next_event(struct yparser *yp, yaml_event_t *ev) {
    if (!yaml_parser_parse(&yp->parser, ev)) {
        report_syntax(yp);
        return -1;
    }
    return 0;
}

static struct ynode *node_new(enum ynode_kind kind, const yaml_mark_t *mark) {
    struct ynode *n = calloc(1, sizeof(*n));

    if (!n)
        return NULL;
    n->kind = kind;
    n->line = (int)mark->line + 1;
    n->col = (int)mark->column + 1;
    return n;
}

static struct ynode *scalar_new(const yaml_mark_t *mark, const char *value, size_t len,
                                bool quoted) {
    struct ynode *n = node_new(YNODE_SCALAR, mark);

    if (!n)
        return NULL;
    n->value = malloc(len + 1);
    if (!n->value) {
        free(n);
        return NULL;
    }
    memcpy(n->value, value, len);
    n->value[len] = '\0';
    n->len = len;
    n->quoted = quoted;
    return n;
}

void ytree_free(struct ynode *node) {
    size_t i;

    if (!node)
        return;
    free(node->value);
    for (i = 0; i < node->n_items; i++)
        ytree_free(node->items[i]);
    free(node->items);
    for (i = 0; i < node->n_pairs; i++) {
        ytree_free(node->pairs[i].key);
        ytree_free(node->pairs[i].value);
    }
    free(node->pairs);
    free(node);
}

/* Anchors and explicit tags would change what a node means in ways the
 * loader does not model, so they are refused rather than ignored. */
static void check_props(struct yparser *yp, const yaml_mark_t *mark, const yaml_char_t *anchor,
                        const yaml_char_t *tag) {
    int line = (int)mark->line + 1, col = (int)mark->column + 1;

    if (anchor)
        report(yp, line, col, "anchors are not supported (&%s)", (const char *)anchor);
    if (tag)
        report(yp, line, col, "tags are not supported (%s)", (const char *)tag);
}

static struct ynode *parse_node(struct yparser *yp, yaml_event_t *ev, int depth);

static int seq_push(struct ynode *seq, struct ynode *item) {
    struct ynode **items = realloc(seq->items, (seq->n_items + 1) * sizeof(*items));

    if (!items)
        return -1;
    seq->items = items;
    seq->items[seq->n_items++] = item;
    return 0;
}

static int map_push(struct ynode *map, struct ynode *key, struct ynode *value) {
    struct ypair *pairs = realloc(map->pairs, (map->n_pairs + 1) * sizeof(*pairs));

    if (!pairs)
        return -1;
    map->pairs = pairs;
    map->pairs[map->n_pairs].key = key;
    map->pairs[map->n_pairs].value = value;
    map->n_pairs++;
    return 0;
}

/* Reads the next event and the node it starts. NULL on a fatal error. */
static struct ynode *parse_next(struct yparser *yp, int depth, yaml_event_type_t end,
                                bool *at_end) {
    yaml_event_t ev;
    struct ynode *n;

    *at_end = false;
    if (next_event(yp, &ev) < 0)
        return NULL;
    if (ev.type == end) {
        yaml_event_delete(&ev);
        *at_end = true;
        return NULL;
    }
    n = parse_node(yp, &ev, depth);
    yaml_event_delete(&ev);
    return n;
}

static struct ynode *parse_seq(struct yparser *yp, const yaml_event_t *start, int depth) {
    struct ynode *seq = node_new(YNODE_SEQ, &start->start_mark);
    struct ynode *item;
    bool at_end;

    if (!seq)
        goto out_oom;
    for (;;) {
        item = parse_next(yp, depth + 1, YAML_SEQUENCE_END_EVENT, &at_end);
        if (at_end)
            return seq;
        if (!item)
            goto out_free;
        if (seq_push(seq, item) < 0) {
            ytree_free(item);
            goto out_oom;
        }
    }
out_oom:
    report(yp, 0, 0, "out of memory while reading YAML");
out_free:
    ytree_free(seq);
    return NULL;
}

static struct ynode *parse_map(struct yparser *yp, const yaml_event_t *start, int depth) {
    struct ynode *map = node_new(YNODE_MAP, &start->start_mark);
    struct ynode *key, *value;
    bool at_end, keep;
    size_t i;

    if (!map)
        goto out_oom;
    for (;;) {
        key = parse_next(yp, depth + 1, YAML_MAPPING_END_EVENT, &at_end);
        if (at_end)
            return map;
        if (!key)
            goto out_free;
        value = parse_next(yp, depth + 1, YAML_MAPPING_END_EVENT, &at_end);
        if (!value) {
            ytree_free(key);
            goto out_free;
        }
        keep = true;
        if (key->kind != YNODE_SCALAR) {
            report(yp, key->line, key->col, "mapping keys must be scalars");
            keep = false;
        }
        for (i = 0; keep && i < map->n_pairs; i++) {
            const struct ynode *k = map->pairs[i].key;
            if (k->len == key->len && memcmp(k->value, key->value, k->len) == 0) {
                report(yp, key->line, key->col, "duplicate key \"%s\" (first at line %d)",
                       key->value, k->line);
                keep = false;
            }
        }
        if (!keep || map_push(map, key, value) < 0) {
            ytree_free(key);
            ytree_free(value);
            if (keep)
                goto out_oom;
        }
    }
out_oom:
    report(yp, 0, 0, "out of memory while reading YAML");
out_free:
    ytree_free(map);
    return NULL;
}

/* Builds the node that ev (borrowed) starts, reading the events of its
 * children. NULL on a fatal error (already reported). */
static struct ynode *parse_node(struct yparser *yp, yaml_event_t *ev, int depth) {
    struct ynode *n;

    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        check_props(yp, &ev->start_mark, ev->data.scalar.anchor, ev->data.scalar.tag);
        n = scalar_new(&ev->start_mark, (const char *)ev->data.scalar.value, ev->data.scalar.length,
                       ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE);
        break;
    case YAML_ALIAS_EVENT:
        report(yp, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
               "aliases are not supported (*%s)", (const char *)ev->data.alias.anchor);
        /* Stands for a null so the rest of the file is still checked. */
        n = scalar_new(&ev->start_mark, "", 0, false);
        if (n)
            n->invalid = true;
        break;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        if (depth >= YTREE_MAX_DEPTH) {
            report(yp, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                   "nesting deeper than %d levels", YTREE_MAX_DEPTH);
            return NULL;
        }
        if (ev->type == YAML_SEQUENCE_START_EVENT) {
            check_props(yp, &ev->start_mark, ev->data.sequence_start.anchor,
                        ev->data.sequence_start.tag);
            return parse_seq(yp, ev, depth);
        }
        check_props(yp, &ev->start_mark, ev->data.mapping_start.anchor, ev->data.mapping_start.tag);
        return parse_map(yp, ev, depth);
    default:
        report(yp, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
               "unexpected YAML event");
        return NULL;
    }
    if (!n)
        report(yp, 0, 0, "out of memory while reading YAML");
    return n;
}

struct ynode *ytree_parse(const char *buf, size_t len, ytree_error_fn *err, void *ctx,
                          bool *failed) {
    struct yparser yp;
    yaml_event_t ev;
    struct ynode *root = NULL;
    bool done = false;

    memset(&yp, 0, sizeof(yp));
    yp.err = err;
    yp.ctx = ctx;
    yp.buf = buf;
    yp.len = len;
    if (!yaml_parser_initialize(&yp.parser)) {
        report(&yp, 0, 0, "out of memory while reading YAML");
        *failed = true;
        return NULL;
    }
    yaml_parser_set_input_string(&yp.parser, (const unsigned char *)buf, len);
    while (!done) {
        if (next_event(&yp, &ev) < 0)
            break;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (root) {
                report(&yp, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                       "only one YAML document is allowed");
                done = true;
            }
            break;
        case YAML_SCALAR_EVENT:
        case YAML_ALIAS_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            root = parse_node(&yp, &ev, 0);
            if (!root)
                done = true;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&yp.parser);
    *failed = yp.failed;
    return root;
}

struct ynode *ytree_get(const struct ynode *map, const char *key) {
    size_t i;

    if (!map || map->kind != YNODE_MAP)
        return NULL;
    for (i = 0; i < map->n_pairs; i++)
        if (strcmp(map->pairs[i].key->value, key) == 0)
            return map->pairs[i].value;
    return NULL;
}

bool ytree_is_null(const struct ynode *node) {
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    size_t i;

    if (!node || node->kind != YNODE_SCALAR || node->quoted)
        return false;
    for (i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
        if (strcmp(node->value, nulls[i]) == 0)
            return true;
    return false;
}

static bool is_one_of(const char *s, const char *a, const char *b, const char *c) {
    return strcmp(s, a) == 0 || strcmp(s, b) == 0 || strcmp(s, c) == 0;
}

static bool all_in(const char *s, const char *set) {
    if (!*s)
        return false;
    for (; *s; s++)
        if (!strchr(set, *s))
            return false;
    return true;
}

/* [-+]?[0-9]+ */
static bool is_decimal_int(const char *s) {
    if (*s == '-' || *s == '+')
        s++;
    return all_in(s, "0123456789");
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool is_float(const char *s) {
    size_t digits = 0;

    if (*s == '-' || *s == '+')
        s++;
    while (*s >= '0' && *s <= '9') {
        s++;
        digits++;
    }
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9') {
            s++;
            digits++;
        }
    }
    if (digits == 0)
        return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+')
            s++;
        return all_in(s, "0123456789");
    }
    return *s == '\0';
}

static json_t *plain_to_json(const struct ynode *node, char *msg, size_t msg_len) {
    const char *s = node->value;
    const char *sign_less = (*s == '-' || *s == '+') ? s + 1 : s;
    char *end;
    long long ll;
    double d;

    if (ytree_is_null(node))
        return json_null();
    if (is_one_of(s, "true", "True", "TRUE"))
        return json_true();
    if (is_one_of(s, "false", "False", "FALSE"))
        return json_false();
    if (is_one_of(sign_less, ".inf", ".Inf", ".INF") || is_one_of(s, ".nan", ".NaN", ".NAN")) {
        snprintf(msg, msg_len, "%s has no JSON form", s);
        return NULL;
    }
    if (strncmp(s, "0o", 2) == 0 && all_in(s + 2, "01234567")) {
        errno = 0;
        ll = strtoll(s + 2, &end, 8);
        if (errno == 0 && *end == '\0')
            return json_integer(ll);
    } else if (strncmp(s, "0x", 2) == 0 && all_in(s + 2, "0123456789abcdefABCDEF")) {
        errno = 0;
        ll = strtoll(s + 2, &end, 16);
        if (errno == 0 && *end == '\0')
            return json_integer(ll);
    } else if (is_decimal_int(s)) {
        errno = 0;
        ll = strtoll(s, &end, 10);
        if (errno == 0 && *end == '\0')
            return json_integer(ll);
        /* Too large for an integer: it stays a number, as a float. */
    }
    if (is_float(s) || is_decimal_int(s)) {
        d = strtod(s, &end);
        if (*end == '\0' && isfinite(d))
            return json_real(d);
        snprintf(msg, msg_len, "number %s is out of range", s);
        return NULL;
    }
    return json_stringn(node->value, node->len);
}

json_t *ytree_to_json(const struct ynode *node, const struct ynode **bad, char *msg,
                      size_t msg_len) {
    json_t *out, *child;
    size_t i;

    switch (node->kind) {
    case YNODE_SCALAR:
        msg[0] = '\0';
        out =
            node->quoted ? json_stringn(node->value, node->len) : plain_to_json(node, msg, msg_len);
        if (!out) {
            *bad = node;
            if (node->quoted || msg[0] == '\0')
                snprintf(msg, msg_len, "string is not valid UTF-8");
        }
        return out;
    case YNODE_SEQ:
        out = json_array();
        for (i = 0; out && i < node->n_items; i++) {
            child = ytree_to_json(node->items[i], bad, msg, msg_len);
            if (!child || json_array_append_new(out, child) < 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    case YNODE_MAP:
        out = json_object();
        for (i = 0; out && i < node->n_pairs; i++) {
            const struct ynode *key = node->pairs[i].key;
            if (memchr(key->value, '\0', key->len)) {
                *bad = key;
                snprintf(msg, msg_len, "key contains a NUL character");
                json_decref(out);
                return NULL;
            }
            child = ytree_to_json(node->pairs[i].value, bad, msg, msg_len);
            if (!child) {
                json_decref(out);
                return NULL;
            }
            if (json_object_set_new(out, key->value, child) < 0) {
                *bad = key;
                snprintf(msg, msg_len, "key is not valid UTF-8");
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    return NULL;
}

/* Decodes one JSON pointer token (~1 is '/', ~0 is '~') into buf. */
static void pointer_token(const char *s, size_t n, char *buf, size_t len) {
    size_t i, o = 0;

    for (i = 0; i < n && o + 1 < len; i++) {
        if (s[i] == '~' && i + 1 < n && (s[i + 1] == '0' || s[i + 1] == '1')) {
            buf[o++] = s[i + 1] == '0' ? '~' : '/';
            i++;
        } else {
            buf[o++] = s[i];
        }
    }
    buf[o] = '\0';
}

const struct ynode *ytree_pointer(const struct ynode *node, const char *pointer) {
    const struct ynode *cur = node, *mark = node;
    const char *p = pointer;
    char tok[256];
    char *end;
    long long idx;
    size_t n, i;
    bool found;

    while (cur && *p == '/') {
        p++;
        n = strcspn(p, "/");
        pointer_token(p, n, tok, sizeof(tok));
        p += n;
        found = false;
        if (cur->kind == YNODE_MAP) {
            for (i = 0; i < cur->n_pairs; i++) {
                if (strcmp(cur->pairs[i].key->value, tok) == 0) {
                    mark = cur->pairs[i].key;
                    cur = cur->pairs[i].value;
                    found = true;
                    break;
                }
            }
        } else if (cur->kind == YNODE_SEQ && tok[0] >= '0' && tok[0] <= '9') {
            errno = 0;
            idx = strtoll(tok, &end, 10);
            if (errno == 0 && *end == '\0' && idx >= 0 && (size_t)idx < cur->n_items) {
                cur = cur->items[idx];
                mark = cur;
                found = true;
            }
        }
        if (!found)
            break;
    }
    return mark;
}
