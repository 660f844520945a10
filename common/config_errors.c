/* The config loader's error list: every problem found is recorded with its
 * position and reported at the end, sorted, as file:line:col: message; plus
 * the helpers that word those messages (quoting, "got X", "did you mean").
 */
#include "config_int.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void cfg_add_err(struct cfg_loader *ld, enum cfg_lerr_kind kind, int line, int col,
                 const char *msg) {
    struct cfg_lerr *e;

    if (ld->n_errs == ld->cap_errs) {
        size_t cap = ld->cap_errs ? ld->cap_errs * 2 : 16;
        e = realloc(ld->errs, cap * sizeof(*e));
        if (!e) {
            ld->oom = true;
            return;
        }
        ld->errs = e;
        ld->cap_errs = cap;
    }
    e = &ld->errs[ld->n_errs];
    e->msg = strdup(msg);
    if (!e->msg) {
        ld->oom = true;
        return;
    }
    e->kind = kind;
    e->line = line;
    e->col = col;
    e->seq = ld->n_errs++;
}

/* Records a problem at node at (borrowed; NULL: the file as a whole). */
void cfg_errf(struct cfg_loader *ld, const struct ynode *at, const char *fmt, ...) {
    char msg[768];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (at)
        cfg_add_err(ld, LERR_POS, at->line, at->col, msg);
    else
        cfg_add_err(ld, LERR_FILE, 0, 0, msg);
}

void cfg_env_errf(struct cfg_loader *ld, const char *var, const char *fmt, ...) {
    char msg[512], line[640];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(line, sizeof(line), "%s: %s", var, msg);
    cfg_add_err(ld, LERR_BARE, 0, 0, line);
}

void cfg_tree_err(void *ctx, int line, int col, const char *msg) {
    struct cfg_loader *ld = ctx;

    if (line > 0)
        cfg_add_err(ld, LERR_POS, line, col, msg);
    else
        cfg_add_err(ld, LERR_FILE, 0, 0, msg);
}

/* Problems with a position come first in file order, then the rest in the
 * order they were found. */
static int lerr_cmp(const void *a, const void *b) {
    const struct cfg_lerr *x = a, *y = b;
    int xr = x->kind == LERR_POS ? 0 : 1, yr = y->kind == LERR_POS ? 0 : 1;

    if (xr != yr)
        return xr - yr;
    if (xr == 0 && x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (xr == 0 && x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : (x->seq > y->seq ? 1 : 0);
}

void cfg_print_errs(struct cfg_loader *ld, FILE *out) {
    size_t i;

    qsort(ld->errs, ld->n_errs, sizeof(*ld->errs), lerr_cmp);
    for (i = 0; out && i < ld->n_errs; i++) {
        const struct cfg_lerr *e = &ld->errs[i];
        switch (e->kind) {
        case LERR_POS:
            fprintf(out, "%s:%d:%d: %s\n", ld->file, e->line, e->col, e->msg);
            break;
        case LERR_FILE:
            fprintf(out, "%s: %s\n", ld->file, e->msg);
            break;
        case LERR_BARE:
            fprintf(out, "%s\n", e->msg);
            break;
        }
    }
    if (out && ld->oom)
        fprintf(out, "%s: out of memory\n", ld->file);
}

/* A user's string made safe to quote in a message: control characters
 * escaped, cut at 60 bytes. Returns buf. */
const char *cfg_quote(const char *s, char *buf, size_t len) {
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s;

    for (; *p && o + 8 < len; p++) {
        if (o >= 60) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\')
            o += (size_t)snprintf(buf + o, len - o, "\\x%02x", *p);
        else
            buf[o++] = (char)*p;
    }
    buf[o] = '\0';
    return buf;
}

/* How a node reads in "expected X, got Y". */
const char *cfg_describe(const struct ynode *n, char *buf, size_t len) {
    char t[96];

    if (n->kind == YNODE_MAP)
        return "a mapping";
    if (n->kind == YNODE_SEQ)
        return "a list";
    if (ytree_is_null(n))
        return "nothing";
    if (n->quoted) {
        snprintf(buf, len, "the string \"%s\"", cfg_quote(n->value, t, sizeof(t)));
        return buf;
    }
    snprintf(buf, len, "\"%s\"", cfg_quote(n->value, t, sizeof(t)));
    return buf;
}

/* ---- suggestions ---- */

static size_t edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b), i, j;
    size_t row[64], prev, tmp;

    if (lb >= sizeof(row) / sizeof(row[0]) || la >= 64)
        return SIZE_MAX;
    for (j = 0; j <= lb; j++)
        row[j] = j;
    for (i = 1; i <= la; i++) {
        prev = row[0];
        row[0] = i;
        for (j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = prev + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            tmp = row[j];
            row[j] = best;
            prev = tmp;
        }
    }
    return row[lb];
}

/* The candidate closest to word: within two edits (and fewer edits than word
 * has characters), else the only candidate word is a prefix of. NULL if none. */
const char *cfg_suggest(const char *word, const char *const *cands, size_t n) {
    const char *best = NULL, *prefix = NULL;
    size_t best_d = SIZE_MAX, d, i, wl = strlen(word), n_prefix = 0;

    for (i = 0; i < n; i++) {
        d = edit_distance(word, cands[i]);
        if (d < best_d) {
            best_d = d;
            best = cands[i];
        }
        if (wl >= 2 && strncasecmp(word, cands[i], wl) == 0) {
            prefix = cands[i];
            n_prefix++;
        }
    }
    if (best && best_d <= 2 && best_d < wl)
        return best;
    if (n_prefix == 1)
        return prefix;
    return NULL;
}
