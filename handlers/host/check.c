#include "check.h"

#include "config.h"
#include "jsonschema.h"
#include "plugin.h"
#include "yamltree.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* The whole file, NUL-terminated, or NULL. New; free with free(). */
static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL, *nb;
    size_t cap = 0, n = 0, got;

    if (!f)
        return NULL;
    do {
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 16384;
            nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void ignore_error(void *ctx, int line, int col, const char *msg) {
    (void)ctx;
    (void)line;
    (void)col;
    (void)msg;
}

/* Follows a JSON pointer from node to the value it names (not the key, as
 * ytree_pointer does: the mistake is the value). Stops at the deepest node
 * found. Borrowed. */
static const struct ynode *value_at(const struct ynode *node, const char *pointer) {
    char tok[256];

    while (node && *pointer == '/') {
        size_t o = 0;
        const struct ynode *next = NULL;

        for (pointer++; *pointer && *pointer != '/' && o + 1 < sizeof(tok); pointer++) {
            if (pointer[0] == '~' && pointer[1] == '0') {
                tok[o++] = '~';
                pointer++;
            } else if (pointer[0] == '~' && pointer[1] == '1') {
                tok[o++] = '/';
                pointer++;
            } else {
                tok[o++] = *pointer;
            }
        }
        tok[o] = '\0';
        if (node->kind == YNODE_MAP) {
            next = ytree_get(node, tok);
        } else if (node->kind == YNODE_SEQ) {
            char *end;
            unsigned long k = strtoul(tok, &end, 10);
            if (*end == '\0' && end != tok && k < node->n_items)
                next = node->items[k];
        }
        if (!next)
            break;
        node = next;
    }
    return node;
}

/* Where handlers[i].config<pointer> stands in the file: line and col, or the
 * handler's own position when the file cannot be read again. */
static void position(const struct cfg *cfg, size_t i, const char *pointer, int *line, int *col) {
    const struct cfg_handler *h = &cfg->handlers[i];
    struct ynode *root = NULL;
    const struct ynode *n;
    bool failed = false;
    size_t len = 0;
    char *buf;

    *line = h->pos.line;
    *col = h->pos.col;
    buf = slurp(cfg->file, &len);
    if (!buf)
        return;
    root = ytree_parse(buf, len, ignore_error, NULL, &failed);
    free(buf);
    n = root ? ytree_get(root, "handlers") : NULL;
    if (n && n->kind == YNODE_SEQ && i < n->n_items) {
        const struct ynode *block = ytree_get(n->items[i], "config");
        n = block ? value_at(block, pointer) : n->items[i];
        *line = n->line;
        *col = n->col;
    }
    ytree_free(root);
}

int host_check_config(const struct cfg *cfg, size_t i, const struct plugin *p, FILE *errs) {
    const struct cfg_handler *h = &cfg->handlers[i];
    const struct fpesa_handler *t = p->table;
    struct jschema_error err;
    struct jschema *schema = NULL;
    json_t *doc = NULL, *empty = NULL;
    json_error_t jerr;
    int line, col, rc = -1;

    if (!FPESA_HAS_FIELD(t, struct fpesa_handler, config_schema) || !t->config_schema)
        return 0;
    doc = json_loads(t->config_schema, 0, &jerr);
    if (!doc) {
        fprintf(errs, "%s: plugin %s declares a config schema that is not JSON: %s\n", cfg->file,
                p->path, jerr.text);
        goto out;
    }
    memset(&err, 0, sizeof(err));
    schema = jschema_compile(doc, &err);
    if (!schema) {
        fprintf(errs, "%s: plugin %s declares a config schema the host cannot use: %s: %s\n",
                cfg->file, p->path, err.schema_path, err.message);
        goto out;
    }
    empty = json_object();
    if (jschema_validate(schema, h->config ? h->config : empty, &err) != 0) {
        position(cfg, i, err.instance_path, &line, &col);
        fprintf(errs, "%s:%d:%d: handlers[%zu].config%s: %s: %s (schema of plugin %s)\n", cfg->file,
                line, col, i, err.instance_path, err.keyword, err.message, h->plugin);
        goto out;
    }
    rc = 0;
out:
    json_decref(empty);
    jschema_free(schema);
    json_decref(doc);
    return rc;
}

int host_check_main(const char *path) {
    struct cfg *cfg = cfg_load(path, stderr);
    char err[1024];
    int rc = 0;

    if (!cfg)
        return 1;
    for (size_t i = 0; i < cfg->n_handlers; i++) {
        struct plugin p = {0};

        if (plugin_open(cfg->handlers[i].plugin_path, &p, err, sizeof(err)) < 0) {
            const struct cfg_handler *h = &cfg->handlers[i];
            fprintf(stderr, "%s:%d:%d: handlers[%zu] (%s): %s\n", cfg->file, h->pos.line,
                    h->pos.col, i, h->name, err);
            rc = 1;
            continue;
        }
        if (host_check_config(cfg, i, &p, stderr) < 0)
            rc = 1;
        plugin_close(&p);
    }
    if (rc == 0)
        printf("%s: ok\n", path);
    fflush(stdout);
    cfg_free(cfg);
    return rc;
}
