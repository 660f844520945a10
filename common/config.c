/* The endpoints.yaml loader; see config.h.
 *
 * The file becomes a yamltree (every node with its line and column), then a
 * table of known keys per section, each with a setter, fills struct cfg. A
 * setter that meets a bad value records an error and goes on, so one run
 * reports every problem of the file. Checks that need the whole file
 * (duplicate routes, defaults that depend on other sections, environment
 * overrides, plugin paths) run after the tables.
 */
#include "config.h"

#include "auth.h"

#include "jsonschema.h"
#include "yamltree.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Largest configuration file read; anything larger is surely not one. */
#define MAX_FILE_SIZE (16u * 1024 * 1024)
/* AMQP exchange and queue names are short strings of at most 255 bytes. */
#define MAX_AMQP_NAME 255

/* ---- errors ---- */

enum lerr_kind {
    LERR_POS,  /* file:line:col: msg */
    LERR_FILE, /* file: msg */
    LERR_BARE, /* msg (environment overrides name themselves) */
};

struct lerr {
    enum lerr_kind kind;
    int line, col;
    size_t seq;
    char *msg;
};

struct loader {
    const char *file;
    struct cfg *cfg;
    struct lerr *errs;
    size_t n_errs, cap_errs;
    bool oom;
};

static void add_err(struct loader *ld, enum lerr_kind kind, int line, int col, const char *msg) {
    struct lerr *e;

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

static void errf(struct loader *ld, const struct ynode *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records a problem at node at (borrowed; NULL: the file as a whole). */
static void errf(struct loader *ld, const struct ynode *at, const char *fmt, ...) {
    char msg[768];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (at)
        add_err(ld, LERR_POS, at->line, at->col, msg);
    else
        add_err(ld, LERR_FILE, 0, 0, msg);
}

static void env_errf(struct loader *ld, const char *var, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void env_errf(struct loader *ld, const char *var, const char *fmt, ...) {
    char msg[512], line[640];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(line, sizeof(line), "%s: %s", var, msg);
    add_err(ld, LERR_BARE, 0, 0, line);
}

static void tree_err(void *ctx, int line, int col, const char *msg) {
    struct loader *ld = ctx;

    if (line > 0)
        add_err(ld, LERR_POS, line, col, msg);
    else
        add_err(ld, LERR_FILE, 0, 0, msg);
}

/* Problems with a position come first in file order, then the rest in the
 * order they were found. */
static int lerr_cmp(const void *a, const void *b) {
    const struct lerr *x = a, *y = b;
    int xr = x->kind == LERR_POS ? 0 : 1, yr = y->kind == LERR_POS ? 0 : 1;

    if (xr != yr)
        return xr - yr;
    if (xr == 0 && x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (xr == 0 && x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : (x->seq > y->seq ? 1 : 0);
}

static void print_errs(struct loader *ld, FILE *out) {
    size_t i;

    qsort(ld->errs, ld->n_errs, sizeof(*ld->errs), lerr_cmp);
    for (i = 0; out && i < ld->n_errs; i++) {
        const struct lerr *e = &ld->errs[i];
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
static const char *q(const char *s, char *buf, size_t len) {
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
static const char *describe(const struct ynode *n, char *buf, size_t len) {
    char t[96];

    if (n->kind == YNODE_MAP)
        return "a mapping";
    if (n->kind == YNODE_SEQ)
        return "a list";
    if (ytree_is_null(n))
        return "nothing";
    if (n->quoted) {
        snprintf(buf, len, "the string \"%s\"", q(n->value, t, sizeof(t)));
        return buf;
    }
    snprintf(buf, len, "\"%s\"", q(n->value, t, sizeof(t)));
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
static const char *suggest(const char *word, const char *const *cands, size_t n) {
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

/* ---- parsing of values ---- */

int cfg_parse_size(const char *s, size_t *out) {
    static const struct {
        const char *unit;
        unsigned long long mult;
    } units[] = {
        {"", 1},
        {"b", 1},
        {"k", 1000ull},
        {"kb", 1000ull},
        {"kib", 1024ull},
        {"m", 1000ull * 1000},
        {"mb", 1000ull * 1000},
        {"mib", 1024ull * 1024},
        {"g", 1000ull * 1000 * 1000},
        {"gb", 1000ull * 1000 * 1000},
        {"gib", 1024ull * 1024 * 1024},
    };
    unsigned long long n;
    char *end;
    size_t i;

    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    n = strtoull(s, &end, 10);
    if (errno == ERANGE)
        return -1;
    while (*end == ' ')
        end++;
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end, units[i].unit) == 0) {
            if (n > SIZE_MAX / units[i].mult)
                return -1;
            *out = (size_t)(n * units[i].mult);
            return 0;
        }
    }
    return -1;
}

int cfg_parse_duration(const char *s, long *out_ms) {
    static const struct {
        const char *unit;
        double mult;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    char num[64];
    const char *p = s;
    size_t n = 0, i, dots = 0;
    double v, ms, r;
    char *end;

    if (!s)
        return -1;
    /* Only digits and one point: strtod alone would take "inf", "0x1p3", ... */
    while ((*p >= '0' && *p <= '9') || *p == '.') {
        if (*p == '.')
            dots++;
        p++;
    }
    n = (size_t)(p - s);
    if (n == 0 || n >= sizeof(num) || dots > 1 || (n == 1 && dots == 1))
        return -1;
    memcpy(num, s, n);
    num[n] = '\0';
    v = strtod(num, &end);
    if (*end != '\0' || !isfinite(v))
        return -1;
    while (*p == ' ')
        p++;
    if (*p == '\0') {
        /* A bare number has no unit; only zero means the same in all. */
        if (v != 0)
            return -1;
        *out_ms = 0;
        return 0;
    }
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(p, units[i].unit) == 0) {
            ms = v * units[i].mult;
            if (ms > 1e12)
                return -1;
            r = floor(ms + 0.5);
            if (fabs(ms - r) > 1e-6)
                return -1;
            *out_ms = (long)r;
            return 0;
        }
    }
    return -1;
}

/* "host:port", "[v6addr]:port" or ":port"-less "port". host may be NULL
 * when only a port is given. Returns 0, or -1 with why filled. */
static int parse_listen(const char *s, char **host, int *port, char *why, size_t why_len) {
    const char *colon = strrchr(s, ':');
    const char *h = s, *ps;
    size_t hl;
    long long p;
    char *end;

    *host = NULL;
    if (!colon) {
        ps = s;
        hl = 0;
    } else {
        ps = colon + 1;
        hl = (size_t)(colon - s);
        if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
            h = s + 1;
            hl -= 2;
        } else if (memchr(s, ':', hl) || memchr(s, '[', hl) || memchr(s, ']', hl)) {
            snprintf(why, why_len, "an IPv6 address must be written in brackets: [::1]:8081");
            return -1;
        }
        if (hl == 0) {
            snprintf(why, why_len, "expected host:port, the host is missing");
            return -1;
        }
    }
    if (*ps < '0' || *ps > '9') {
        snprintf(why, why_len, "expected host:port with a port number");
        return -1;
    }
    errno = 0;
    p = strtoll(ps, &end, 10);
    if (errno || *end != '\0' || p < 1 || p > 65535) {
        snprintf(why, why_len, "port must be a number from 1 to 65535");
        return -1;
    }
    if (hl > 0) {
        *host = strndup(h, hl);
        if (!*host) {
            snprintf(why, why_len, "out of memory");
            return -1;
        }
    }
    *port = (int)p;
    return 0;
}

/* ---- the key tables ---- */

struct key;
typedef void set_fn(struct loader *ld, const struct key *k, const struct ynode *v, void *base);

#define K_REQUIRED 1u

struct key {
    const char *name;
    set_fn *set;
    size_t off;  /* the field in base */
    size_t off2; /* a second field: a listen's port, a list's count, a compiled schema */
    long long min, max;
    const struct key *sub; /* a section's or a list item's keys */
    unsigned flags;
};

#define FIELD(base, off, type) ((type *)(void *)((char *)(base) + (off)))

static bool scalar_ok(struct loader *ld, const struct key *k, const struct ynode *v,
                      const char *what) {
    char d[96];

    if (v->kind == YNODE_SCALAR && !ytree_is_null(v))
        return true;
    errf(ld, v, "expected %s for \"%s\", got %s", what, k->name, describe(v, d, sizeof(d)));
    return false;
}

static bool is_plain_int(const struct ynode *v, long long *out) {
    const char *s = v->value;
    char *end;

    if (v->kind != YNODE_SCALAR || v->quoted)
        return false;
    if (!((*s >= '0' && *s <= '9') || ((*s == '-' || *s == '+') && s[1] >= '0' && s[1] <= '9')))
        return false;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return errno == 0 && *end == '\0';
}

/* An integer in [k->min, k->max]; 0 on success. */
static int get_int(struct loader *ld, const struct key *k, const struct ynode *v, long long *out) {
    char d[96];

    if (!is_plain_int(v, out)) {
        errf(ld, v, "expected an integer for \"%s\", got %s", k->name, describe(v, d, sizeof(d)));
        return -1;
    }
    if (*out < k->min || *out > k->max) {
        errf(ld, v, "\"%s\" must be from %lld to %lld, got %lld", k->name, k->min, k->max, *out);
        return -1;
    }
    return 0;
}

static void set_int(struct loader *ld, const struct key *k, const struct ynode *v, void *base) {
    long long n;

    if (get_int(ld, k, v, &n) == 0)
        *FIELD(base, k->off, int) = (int)n;
}

static void set_long(struct loader *ld, const struct key *k, const struct ynode *v, void *base) {
    long long n;

    if (get_int(ld, k, v, &n) == 0)
        *FIELD(base, k->off, long) = (long)n;
}

static void set_count(struct loader *ld, const struct key *k, const struct ynode *v, void *base) {
    long long n;

    if (get_int(ld, k, v, &n) == 0)
        *FIELD(base, k->off, size_t) = (size_t)n;
}

static void set_bool(struct loader *ld, const struct key *k, const struct ynode *v, void *base) {
    char d[96];

    if (v->kind == YNODE_SCALAR && !v->quoted) {
        if (!strcmp(v->value, "true") || !strcmp(v->value, "True") || !strcmp(v->value, "TRUE")) {
            *FIELD(base, k->off, bool) = true;
            return;
        }
        if (!strcmp(v->value, "false") || !strcmp(v->value, "False") ||
            !strcmp(v->value, "FALSE")) {
            *FIELD(base, k->off, bool) = false;
            return;
        }
    }
    errf(ld, v, "expected true or false for \"%s\", got %s", k->name, describe(v, d, sizeof(d)));
}

static bool store_str(struct loader *ld, char **field, const char *s) {
    char *dup = strdup(s);

    if (!dup) {
        ld->oom = true;
        return false;
    }
    free(*field);
    *field = dup;
    return true;
}

static void set_str(struct loader *ld, const struct key *k, const struct ynode *v, void *base) {
    if (!scalar_ok(ld, k, v, "a string"))
        return;
    if (v->value[0] == '\0') {
        errf(ld, v, "\"%s\" must not be empty", k->name);
        return;
    }
    store_str(ld, FIELD(base, k->off, char *), v->value);
}

/* One URL, or a comma-separated list of them tried in turn (a cluster). */
static bool bus_url_ok(const char *s) {
    for (;;) {
        const char *comma = strchr(s, ',');
        if (strncmp(s, "amqp://", 7) != 0 && strncmp(s, "amqps://", 8) != 0)
            return false;
        if (!comma)
            return true;
        s = comma + 1;
        while (*s == ' ')
            s++;
    }
}

static void set_bus_url(struct loader *ld, const struct key *k, const struct ynode *v, void *base) {
    char t[96];

    if (!scalar_ok(ld, k, v, "a URL"))
        return;
    if (!bus_url_ok(v->value)) {
        errf(ld, v, "expected an amqp:// or amqps:// URL for \"%s\", got \"%s\"", k->name,
             q(v->value, t, sizeof(t)));
        return;
    }
    store_str(ld, FIELD(base, k->off, char *), v->value);
}

static void set_size(struct loader *ld, const struct key *k, const struct ynode *v, void *base) {
    char t[96];
    size_t n;

    if (!scalar_ok(ld, k, v, "a size such as 64KiB"))
        return;
    if (cfg_parse_size(v->value, &n) < 0) {
        errf(ld, v,
             "bad size \"%s\" for \"%s\" (expected bytes or a number with B, KB, KiB, MB, "
             "MiB, GB or GiB)",
             q(v->value, t, sizeof(t)), k->name);
        return;
    }
    if ((long long)n < k->min || (unsigned long long)n > (unsigned long long)k->max) {
        errf(ld, v, "\"%s\" must be from %lld to %lld bytes, got %zu", k->name, k->min, k->max, n);
        return;
    }
    *FIELD(base, k->off, size_t) = n;
}

static int get_duration(struct loader *ld, const struct key *k, const struct ynode *v, long *ms) {
    char t[96];

    if (!scalar_ok(ld, k, v, "a duration such as 500ms or 2s"))
        return -1;
    if (cfg_parse_duration(v->value, ms) < 0) {
        errf(ld, v, "bad duration \"%s\" for \"%s\" (expected a number with ms, s, m or h)",
             q(v->value, t, sizeof(t)), k->name);
        return -1;
    }
    if (*ms < k->min || *ms > k->max) {
        errf(ld, v, "\"%s\" must be from %lldms to %lldms, got %ldms", k->name, k->min, k->max,
             *ms);
        return -1;
    }
    return 0;
}

static void set_duration(struct loader *ld, const struct key *k, const struct ynode *v,
                         void *base) {
    long ms;

    if (get_duration(ld, k, v, &ms) == 0)
        *FIELD(base, k->off, long) = ms;
}

/* Whole seconds: an integer, or a duration such as "30s" or "1m". min and
 * max are in seconds. */
static void set_seconds(struct loader *ld, const struct key *k, const struct ynode *v, void *base) {
    char t[96];
    long long n;
    long ms;

    if (is_plain_int(v, &n)) {
        set_int(ld, k, v, base);
        return;
    }
    if (!scalar_ok(ld, k, v, "a number of seconds"))
        return;
    if (cfg_parse_duration(v->value, &ms) < 0 || ms % 1000 != 0) {
        errf(ld, v, "bad duration \"%s\" for \"%s\" (expected whole seconds: 30 or 30s)",
             q(v->value, t, sizeof(t)), k->name);
        return;
    }
    n = ms / 1000;
    if (n < k->min || n > k->max) {
        errf(ld, v, "\"%s\" must be from %lld to %lld seconds, got %lld", k->name, k->min, k->max,
             n);
        return;
    }
    *FIELD(base, k->off, int) = (int)n;
}

static void set_listen(struct loader *ld, const struct key *k, const struct ynode *v, void *base) {
    char why[128], t[96];
    char *host;
    int port;

    if (!scalar_ok(ld, k, v, "host:port"))
        return;
    if (parse_listen(v->value, &host, &port, why, sizeof(why)) < 0) {
        errf(ld, v, "bad \"%s\" value \"%s\": %s", k->name, q(v->value, t, sizeof(t)), why);
        return;
    }
    if (host) {
        free(*FIELD(base, k->off, char *));
        *FIELD(base, k->off, char *) = host;
    }
    *FIELD(base, k->off2, int) = port;
}

static void free_strv(char **v, size_t n) {
    size_t i;

    for (i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

static void set_strlist(struct loader *ld, const struct key *k, const struct ynode *v, void *base) {
    char d[96];
    char **list;
    size_t i, n = 0;

    if (v->kind != YNODE_SEQ) {
        errf(ld, v, "expected a list of strings for \"%s\", got %s", k->name,
             describe(v, d, sizeof(d)));
        return;
    }
    list = calloc(v->n_items + 1, sizeof(*list));
    if (!list) {
        ld->oom = true;
        return;
    }
    for (i = 0; i < v->n_items; i++) {
        const struct ynode *it = v->items[i];
        if (it->invalid)
            continue;
        if (it->kind != YNODE_SCALAR || ytree_is_null(it) || it->value[0] == '\0') {
            errf(ld, it, "expected a non-empty string in \"%s\", got %s", k->name,
                 describe(it, d, sizeof(d)));
            continue;
        }
        list[n] = strdup(it->value);
        if (!list[n]) {
            ld->oom = true;
            break;
        }
        n++;
    }
    free_strv(*FIELD(base, k->off, char **), *FIELD(base, k->off2, size_t));
    *FIELD(base, k->off, char **) = list;
    *FIELD(base, k->off2, size_t) = n;
}

static void apply_map(struct loader *ld, const struct key *keys, const struct ynode *map,
                      void *base);

static void set_section(struct loader *ld, const struct key *k, const struct ynode *v, void *base) {
    char d[96];

    if (v->kind != YNODE_MAP) {
        errf(ld, v, "expected a mapping for \"%s\", got %s", k->name, describe(v, d, sizeof(d)));
        return;
    }
    apply_map(ld, k->sub, v, base);
}

/* ---- endpoints ---- */

static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
static const char *const modes[] = {"publish", "rpc"};

static void set_method(struct loader *ld, const struct key *k, const struct ynode *v, void *base) {
    char up[16], t[96];
    const char *s;
    size_t i;

    if (!scalar_ok(ld, k, v, "an HTTP method"))
        return;
    for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (strcasecmp(v->value, methods[i]) == 0) {
            store_str(ld, FIELD(base, k->off, char *), methods[i]);
            return;
        }
    }
    snprintf(up, sizeof(up), "%s", v->value);
    for (i = 0; up[i]; i++)
        if (up[i] >= 'a' && up[i] <= 'z')
            up[i] = (char)(up[i] - 'a' + 'A');
    s = strlen(v->value) < sizeof(up) ? suggest(up, methods, 5) : NULL;
    if (s)
        errf(ld, v, "unknown method \"%s\" (did you mean \"%s\"?)", q(v->value, t, sizeof(t)), s);
    else
        errf(ld, v, "unknown method \"%s\" (expected GET, POST, PUT, PATCH or DELETE)",
             q(v->value, t, sizeof(t)));
}

static void set_mode(struct loader *ld, const struct key *k, const struct ynode *v, void *base) {
    char t[96];
    const char *s;

    if (!scalar_ok(ld, k, v, "publish or rpc"))
        return;
    if (strcmp(v->value, "publish") == 0) {
        *FIELD(base, k->off, enum cfg_mode) = CFG_MODE_PUBLISH;
        return;
    }
    if (strcmp(v->value, "rpc") == 0) {
        *FIELD(base, k->off, enum cfg_mode) = CFG_MODE_RPC;
        return;
    }
    s = suggest(v->value, modes, 2);
    if (s)
        errf(ld, v, "unknown mode \"%s\" (did you mean \"%s\"?)", q(v->value, t, sizeof(t)), s);
    else
        errf(ld, v, "unknown mode \"%s\" (expected publish or rpc)", q(v->value, t, sizeof(t)));
}

static const char *const compats[] = {"none", "fpesa-python"};

static void set_compat(struct loader *ld, const struct key *k, const struct ynode *v, void *base) {
    char t[96];
    const char *s;

    if (!scalar_ok(ld, k, v, "none or fpesa-python"))
        return;
    for (size_t i = 0; i < sizeof(compats) / sizeof(compats[0]); i++) {
        if (strcmp(v->value, compats[i]) == 0) {
            *FIELD(base, k->off, enum cfg_compat) = (enum cfg_compat)i;
            return;
        }
    }
    s = suggest(v->value, compats, 2);
    if (s)
        errf(ld, v, "unknown compat \"%s\" (did you mean \"%s\"?)", q(v->value, t, sizeof(t)), s);
    else
        errf(ld, v, "unknown compat \"%s\" (expected none or fpesa-python)",
             q(v->value, t, sizeof(t)));
}

static const char *const queue_types[] = {"classic", "quorum"};

/* Returns the index of name in queue_types, or -1. */
static int queue_type_of(const char *name) {
    for (size_t i = 0; i < sizeof(queue_types) / sizeof(queue_types[0]); i++)
        if (strcmp(name, queue_types[i]) == 0)
            return (int)i;
    return -1;
}

static void set_queue_type(struct loader *ld, const struct key *k, const struct ynode *v,
                           void *base) {
    char t[96];
    const char *s;
    int i;

    if (!scalar_ok(ld, k, v, "classic or quorum"))
        return;
    i = queue_type_of(v->value);
    if (i >= 0) {
        *FIELD(base, k->off, enum cfg_queue_type) = (enum cfg_queue_type)i;
        return;
    }
    s = suggest(v->value, queue_types, 2);
    if (s)
        errf(ld, v, "unknown queue_type \"%s\" (did you mean \"%s\"?)", q(v->value, t, sizeof(t)),
             s);
    else
        errf(ld, v, "unknown queue_type \"%s\" (expected classic or quorum)",
             q(v->value, t, sizeof(t)));
}

static bool is_param_name(const char *s, size_t n) {
    size_t i;

    if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return false;
    for (i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

/* Checks a path pattern; returns NULL or why it is bad (in why). */
static const char *path_problem(const char *path, char *why, size_t why_len) {
    const char *seg, *end, *p;
    const char *names[32];
    size_t lens[32], n_names = 0, i, sl;

    if (path[0] != '/')
        return "path must start with \"/\"";
    for (p = path; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return "path must not contain spaces or control characters";
        if (*p == '?' || *p == '#')
            return "path must not contain \"?\" or \"#\" (the query string is described by args)";
    }
    for (seg = path + 1;; seg = end + 1) {
        end = strchr(seg, '/');
        sl = end ? (size_t)(end - seg) : strlen(seg);
        if (sl == 0 && end)
            return "path must not contain an empty segment (\"//\")";
        if (sl > 0 && seg[0] == '{') {
            if (seg[sl - 1] != '}' || !is_param_name(seg + 1, sl - 2)) {
                snprintf(why, why_len,
                         "malformed parameter \"%.*s\" in path (expected {name}: a letter or _ "
                         "then letters, digits or _, filling a whole segment)",
                         (int)(sl > 60 ? 60 : sl), seg);
                return why;
            }
            for (i = 0; i < n_names; i++) {
                if (lens[i] == sl - 2 && memcmp(names[i], seg + 1, sl - 2) == 0) {
                    snprintf(why, why_len, "parameter \"%.*s\" appears twice in path",
                             (int)(sl - 2 > 60 ? 60 : sl - 2), seg + 1);
                    return why;
                }
            }
            if (n_names == sizeof(names) / sizeof(names[0]))
                return "path has too many parameters";
            names[n_names] = seg + 1;
            lens[n_names++] = sl - 2;
        } else if (memchr(seg, '{', sl) || memchr(seg, '}', sl)) {
            snprintf(why, why_len,
                     "malformed parameter in segment \"%.*s\" of path (a parameter {name} must "
                     "fill a whole segment)",
                     (int)(sl > 60 ? 60 : sl), seg);
            return why;
        }
        if (!end)
            break;
    }
    return NULL;
}

static void set_path(struct loader *ld, const struct key *k, const struct ynode *v, void *base) {
    char why[256], t[96];
    const char *problem;

    if (!scalar_ok(ld, k, v, "a path such as /messages/"))
        return;
    problem = path_problem(v->value, why, sizeof(why));
    if (problem) {
        errf(ld, v, "bad path \"%s\": %s", q(v->value, t, sizeof(t)), problem);
        return;
    }
    store_str(ld, FIELD(base, k->off, char *), v->value);
}

/* http.public_prefix: where clients reach the API, a path ("/api/v1") or an
 * absolute http(s) URL; kept without a trailing slash (except "/" itself). */
static void set_prefix(struct loader *ld, const struct key *k, const struct ynode *v, void *base) {
    char t[96], *stored;
    const char *s;
    size_t n;

    if (!scalar_ok(ld, k, v, "a path such as /api/v1 or an http(s) URL"))
        return;
    s = v->value;
    if (s[0] != '/' && strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0) {
        errf(ld, v, "bad \"%s\" \"%s\": expected a path starting with / or an http(s) URL", k->name,
             q(s, t, sizeof(t)));
        return;
    }
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == '?' || *p == '#' || *p == 0x7f) {
            errf(ld, v, "bad \"%s\" \"%s\": no spaces, control characters, ? or # allowed", k->name,
                 q(s, t, sizeof(t)));
            return;
        }
    }
    if (!store_str(ld, FIELD(base, k->off, char *), s))
        return;
    stored = *FIELD(base, k->off, char *);
    n = strlen(stored);
    while (n > 1 && stored[n - 1] == '/')
        stored[--n] = '\0';
}

/* YAML -> JSON for a block of free-form data (a schema, a handler's config). */
static json_t *node_json(struct loader *ld, const struct key *k, const struct ynode *v) {
    const struct ynode *bad = NULL;
    char msg[160];
    json_t *j = ytree_to_json(v, &bad, msg, sizeof(msg));

    if (!j)
        errf(ld, bad ? bad : v, "in \"%s\": %s", k->name, msg);
    return j;
}

static void set_schema(struct loader *ld, const struct key *k, const struct ynode *v, void *base) {
    struct jschema_error err;
    const struct ynode *at;
    struct jschema *compiled;
    json_t *j, *type;
    char d[96];
    size_t i;
    bool is_args = strcmp(k->name, "args") == 0;

    if (v->kind != YNODE_MAP && !(v->kind == YNODE_SCALAR && !v->quoted &&
                                  (!strcmp(v->value, "true") || !strcmp(v->value, "false")))) {
        errf(ld, v, "expected a JSON Schema (a mapping, true or false) for \"%s\", got %s", k->name,
             describe(v, d, sizeof(d)));
        return;
    }
    j = node_json(ld, k, v);
    if (!j)
        return;
    type = json_object_get(j, "type");
    if (is_args && type) {
        bool ok = json_is_string(type) && strcmp(json_string_value(type), "object") == 0;
        if (json_is_array(type) && json_array_size(type) > 0) {
            ok = true;
            for (i = 0; i < json_array_size(type); i++) {
                json_t *t = json_array_get(type, i);
                if (!json_is_string(t) || strcmp(json_string_value(t), "object") != 0)
                    ok = false;
            }
        }
        if (!ok) {
            errf(ld, ytree_pointer(v, "/type"),
                 "args schema must have type \"object\" (the query string is an object of "
                 "strings)");
            json_decref(j);
            return;
        }
    }
    memset(&err, 0, sizeof(err));
    compiled = jschema_compile(j, &err);
    if (!compiled) {
        err.schema_path[sizeof(err.schema_path) - 1] = '\0';
        err.message[sizeof(err.message) - 1] = '\0';
        at = ytree_pointer(v, err.schema_path);
        errf(ld, at, "invalid %s schema: %s", k->name,
             err.message[0] ? err.message : "rejected by the validator");
        json_decref(j);
        return;
    }
    json_decref(*FIELD(base, k->off, json_t *));
    jschema_free(*FIELD(base, k->off2, struct jschema *));
    *FIELD(base, k->off, json_t *) = j;
    *FIELD(base, k->off2, struct jschema *) = compiled;
}

static void set_json(struct loader *ld, const struct key *k, const struct ynode *v, void *base) {
    json_t *j;

    if (ytree_is_null(v))
        return;
    j = node_json(ld, k, v);
    if (!j)
        return;
    json_decref(*FIELD(base, k->off, json_t *));
    *FIELD(base, k->off, json_t *) = j;
}

static bool media_type_ok(const char *t) {
    const char *slash = strchr(t, '/');

    return slash && slash != t && slash[1] != '\0' && !strchr(t, ' ') && !strchr(t, ';');
}

/* One item of content_types in its long form: {type: image/png, max_body: 5MiB}. */
struct ctype_item {
    char *type;
    size_t max_body;
    int kind; /* enum cfg_body_kind + 1, or 0 when not given */
};

static const char *const body_kinds[] = {"json", "form", "multipart", "binary"};

static void set_body_kind(struct loader *ld, const struct key *k, const struct ynode *v,
                          void *base) {
    char t[96];
    const char *s;

    if (!scalar_ok(ld, k, v, "json or binary"))
        return;
    for (size_t i = 0; i < sizeof(body_kinds) / sizeof(body_kinds[0]); i++) {
        if (strcmp(v->value, body_kinds[i]) == 0) {
            *FIELD(base, k->off, int) = (int)i + 1;
            return;
        }
    }
    s = suggest(v->value, body_kinds, 4);
    if (s)
        errf(ld, v, "unknown kind \"%s\" (did you mean \"%s\"?)", q(v->value, t, sizeof(t)), s);
    else
        errf(ld, v, "unknown kind \"%s\" (expected json, form, multipart or binary)",
             q(v->value, t, sizeof(t)));
}

/* The kind a content type has when none is given. */
static enum cfg_body_kind default_kind(const char *type) {
    static const char *const binary_prefixes[] = {"image/", "audio/", "video/", "font/"};
    static const char *const binary_types[] = {"application/octet-stream", "application/pdf",
                                               "application/zip", "application/gzip"};

    if (strcasecmp(type, "application/x-www-form-urlencoded") == 0)
        return CFG_BODY_FORM;
    if (strcasecmp(type, "multipart/form-data") == 0)
        return CFG_BODY_MULTIPART;
    for (size_t i = 0; i < sizeof(binary_prefixes) / sizeof(binary_prefixes[0]); i++)
        if (strncasecmp(type, binary_prefixes[i], strlen(binary_prefixes[i])) == 0)
            return CFG_BODY_BINARY;
    for (size_t i = 0; i < sizeof(binary_types) / sizeof(binary_types[0]); i++)
        if (strcasecmp(type, binary_types[i]) == 0)
            return CFG_BODY_BINARY;
    return CFG_BODY_JSON;
}

#define CT(f) offsetof(struct ctype_item, f)

static const struct key ctype_keys[] = {
    {"type", set_str, CT(type), 0, 0, 0, NULL, K_REQUIRED},
    {"max_body", set_size, CT(max_body), 0, 1, 1024ll * 1024 * 1024, NULL, 0},
    {"kind", set_body_kind, CT(kind), 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

/* content_types: a list whose items are a media type, or a mapping with the
 * type and its own size limit. */
static void set_content_types(struct loader *ld, const struct key *k, const struct ynode *v,
                              void *base) {
    struct cfg_endpoint *ep = base;
    char d[96], t[96];
    char **list;
    size_t *limits, i, j, n = 0;
    enum cfg_body_kind *kinds;

    if (v->kind != YNODE_SEQ) {
        errf(ld, v, "expected a list of media types for \"%s\", got %s", k->name,
             describe(v, d, sizeof(d)));
        return;
    }
    if (v->n_items == 0)
        errf(ld, v, "\"%s\" must not be empty", k->name);
    list = calloc(v->n_items + 1, sizeof(*list));
    limits = calloc(v->n_items + 1, sizeof(*limits));
    kinds = calloc(v->n_items + 1, sizeof(*kinds));
    if (!list || !limits || !kinds) {
        free(list);
        free(limits);
        free(kinds);
        ld->oom = true;
        return;
    }
    for (i = 0; i < v->n_items; i++) {
        const struct ynode *it = v->items[i];
        struct ctype_item item = {0};

        if (it->invalid)
            continue;
        if (it->kind == YNODE_MAP) {
            apply_map(ld, ctype_keys, it, &item);
            if (!item.type)
                continue;
        } else if (it->kind == YNODE_SCALAR && !ytree_is_null(it) && it->value[0] != '\0') {
            item.type = strdup(it->value);
            if (!item.type) {
                ld->oom = true;
                break;
            }
        } else {
            errf(ld, it, "expected a media type or {type, max_body} in \"%s\", got %s", k->name,
                 describe(it, d, sizeof(d)));
            continue;
        }
        if (!media_type_ok(item.type)) {
            errf(ld, it, "bad content type \"%s\" (expected type/subtype, e.g. application/json)",
                 q(item.type, t, sizeof(t)));
            free(item.type);
            continue;
        }
        for (j = 0; j < n; j++)
            if (strcasecmp(list[j], item.type) == 0)
                break;
        if (j < n) {
            errf(ld, it, "content type \"%s\" is listed twice", q(item.type, t, sizeof(t)));
            free(item.type);
            continue;
        }
        if (item.kind == CFG_BODY_FORM + 1 || item.kind == CFG_BODY_MULTIPART + 1 ||
            default_kind(item.type) == CFG_BODY_FORM ||
            default_kind(item.type) == CFG_BODY_MULTIPART) {
            if (item.kind && (enum cfg_body_kind)(item.kind - 1) != default_kind(item.type)) {
                errf(ld, ytree_get(it, "kind"),
                     "kind form is for application/x-www-form-urlencoded and multipart for "
                     "multipart/form-data only");
                free(item.type);
                continue;
            }
        }
        list[n] = item.type;
        kinds[n] = item.kind ? (enum cfg_body_kind)(item.kind - 1) : default_kind(item.type);
        limits[n++] = item.max_body;
    }
    free_strv(ep->content_types, ep->n_content_types);
    free(ep->content_max_body);
    free(ep->content_kinds);
    ep->content_types = list;
    ep->content_max_body = limits;
    ep->content_kinds = kinds;
    ep->n_content_types = n;
}

/* response: any JSON value; the answer's body on success. */
static void set_response(struct loader *ld, const struct key *k, const struct ynode *v,
                         void *base) {
    json_t *j = node_json(ld, k, v);

    if (!j)
        return;
    json_decref(*FIELD(base, k->off, json_t *));
    *FIELD(base, k->off, json_t *) = j;
}

#define FL(f) offsetof(struct cfg_file, f)

static const struct key file_keys[] = {
    {"field", set_str, FL(field), 0, 0, 0, NULL, K_REQUIRED},
    {"required", set_bool, FL(required), 0, 0, 0, NULL, 0},
    {"types", set_strlist, FL(types), FL(n_types), 0, 0, NULL, 0},
    {"max_size", set_size, FL(max_size), 0, 1, 1024ll * 1024 * 1024, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static void file_free(struct cfg_file *f) {
    free(f->field);
    free_strv(f->types, f->n_types);
}

static void file_init(void *item, const struct ynode *map) {
    struct cfg_file *f = item;

    f->pos.line = map->line;
    f->pos.col = map->col;
}

static void file_check_cb(struct loader *ld, const struct ynode *map, void *item) {
    struct cfg_file *f = item;
    char t[96];

    for (size_t i = 0; i < f->n_types; i++)
        if (!media_type_ok(f->types[i]))
            errf(ld, ytree_get(map, "types"),
                 "bad content type \"%s\" (expected type/subtype, e.g. image/png)",
                 q(f->types[i], t, sizeof(t)));
}

static void *apply_list(struct loader *ld, const struct key *k, const struct ynode *v, size_t elem,
                        const char *what, size_t *n,
                        void (*init)(void *item, const struct ynode *map),
                        void (*check)(struct loader *ld, const struct ynode *map, void *item));

static void set_files(struct loader *ld, const struct key *k, const struct ynode *v, void *base) {
    struct cfg_endpoint *ep = base;

    for (size_t i = 0; i < ep->n_files; i++)
        file_free(&ep->files[i]);
    free(ep->files);
    ep->files = apply_list(ld, k, v, sizeof(struct cfg_file), "file fields", &ep->n_files,
                           file_init, file_check_cb);
}

/* ---- authentication (auth, endpoints[].auth, endpoints[].live_auth) ---- */

#define AR(f) offsetof(struct cfg_auth_rule, f)
#define AK(f) offsetof(struct cfg_api_key, f)
#define JK(f) offsetof(struct cfg_jwt_key, f)
#define CF(f) offsetof(struct cfg, f)

static const struct key auth_rule_keys[] = {
    {"anonymous", set_bool, AR(anonymous), 0, 0, 0, NULL, 0},
    {"scopes", set_strlist, AR(scopes), AR(n_scopes), 0, 0, NULL, 0},
    {"roles", set_strlist, AR(roles), AR(n_roles), 0, 0, NULL, 0},
    {"methods", set_strlist, AR(methods), AR(n_methods), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static const char *const auth_methods[] = {"api_key", "jwt"};
static const char *const jwt_algs[] = {"HS256", "HS384", "HS512", "RS256", "RS384",
                                       "RS512", "ES256", "ES384", "ES512"};

/* An endpoint's auth or live_auth section (its struct at base + k->off). */
static void set_auth_rule(struct loader *ld, const struct key *k, const struct ynode *v,
                          void *base) {
    struct cfg_auth_rule *r = FIELD(base, k->off, struct cfg_auth_rule);
    char d[96];

    if (v->kind != YNODE_MAP) {
        errf(ld, v, "expected a mapping for \"%s\" (anonymous, scopes, roles, methods), got %s",
             k->name, describe(v, d, sizeof(d)));
        return;
    }
    r->given = true;
    r->pos.line = v->line;
    r->pos.col = v->col;
    apply_map(ld, auth_rule_keys, v, r);
    for (size_t i = 0; i < r->n_methods; i++) {
        bool ok = false;

        for (size_t j = 0; j < sizeof(auth_methods) / sizeof(auth_methods[0]); j++)
            ok |= strcmp(r->methods[i], auth_methods[j]) == 0;
        if (!ok)
            errf(ld, ytree_get(v, "methods"),
                 "unknown auth method \"%s\" (expected api_key or jwt)", r->methods[i]);
    }
}

/* A string whose node's position is kept in the struct cfg_pos at k->off2. */
static void set_str_pos(struct loader *ld, const struct key *k, const struct ynode *v, void *base) {
    set_str(ld, k, v, base);
    FIELD(base, k->off2, struct cfg_pos)->line = v->line;
    FIELD(base, k->off2, struct cfg_pos)->col = v->col;
}

static const struct key api_key_keys[] = {
    {"name", set_str, AK(name), 0, 0, 0, NULL, K_REQUIRED},
    {"sha256", set_str, AK(sha256), 0, 0, 0, NULL, K_REQUIRED},
    {"scopes", set_strlist, AK(scopes), AK(n_scopes), 0, 0, NULL, 0},
    {"roles", set_strlist, AK(roles), AK(n_roles), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static const struct key jwt_key_keys[] = {
    {"kid", set_str, JK(kid), 0, 0, 0, NULL, 0},
    {"alg", set_str, JK(alg), 0, 0, 0, NULL, K_REQUIRED},
    {"secret", set_str, JK(secret), 0, 0, 0, NULL, 0},
    {"secret_file", set_str, JK(secret_file), 0, 0, 0, NULL, 0},
    {"pem_file", set_str, JK(pem_file), 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static void api_key_free(struct cfg_api_key *a) {
    free(a->name);
    free(a->sha256);
    free_strv(a->scopes, a->n_scopes);
    free_strv(a->roles, a->n_roles);
}

static void jwt_key_free(struct cfg_jwt_key *j) {
    free(j->kid);
    free(j->alg);
    free(j->secret);
    free(j->secret_file);
    free(j->pem_file);
}

static void api_key_init(void *item, const struct ynode *map) {
    struct cfg_api_key *a = item;

    a->pos.line = map->line;
    a->pos.col = map->col;
}

static void api_key_check(struct loader *ld, const struct ynode *map, void *item) {
    struct cfg_api_key *a = item;
    size_t n = 0;

    if (!a->sha256)
        return;
    for (char *p = a->sha256; *p; p++, n++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F'))) {
            n = 0;
            break;
        }
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    }
    if (n != 64)
        errf(ld, ytree_get(map, "sha256"),
             "\"sha256\" must be the 64 hex digits of the key's SHA-256 (never the key itself)");
}

static void jwt_key_init(void *item, const struct ynode *map) {
    struct cfg_jwt_key *j = item;

    j->pos.line = map->line;
    j->pos.col = map->col;
}

static void jwt_key_check(struct loader *ld, const struct ynode *map, void *item) {
    struct cfg_jwt_key *j = item;
    bool known = false;

    if (!j->alg)
        return;
    for (size_t i = 0; i < sizeof(jwt_algs) / sizeof(jwt_algs[0]); i++)
        known |= strcmp(j->alg, jwt_algs[i]) == 0;
    if (!known) {
        errf(ld, ytree_get(map, "alg"),
             "unknown JWT algorithm \"%s\" (expected HS256, RS256, ES256 or their 384/512 forms)",
             j->alg);
        return;
    }
    if (j->alg[0] == 'H' && !!j->secret == !!j->secret_file)
        errf(ld, map, "an %s key needs exactly one of \"secret\" and \"secret_file\"", j->alg);
    if (j->alg[0] == 'H' && j->pem_file)
        errf(ld, ytree_get(map, "pem_file"), "an %s key is a shared secret, not a PEM file",
             j->alg);
    if (j->alg[0] != 'H' && !j->pem_file)
        errf(ld, map, "an %s key needs \"pem_file\" (its public key)", j->alg);
    if (j->alg[0] != 'H' && (j->secret || j->secret_file))
        errf(ld, map, "an %s key is a public key in \"pem_file\", not a secret", j->alg);
}

static void set_api_keys(struct loader *ld, const struct key *k, const struct ynode *v,
                         void *base) {
    struct cfg *cfg = base;

    for (size_t i = 0; i < cfg->auth.n_api_keys; i++)
        api_key_free(&cfg->auth.api_keys[i]);
    free(cfg->auth.api_keys);
    cfg->auth.api_keys = apply_list(ld, k, v, sizeof(struct cfg_api_key), "API keys",
                                    &cfg->auth.n_api_keys, api_key_init, api_key_check);
}

static void set_jwt_keys(struct loader *ld, const struct key *k, const struct ynode *v,
                         void *base) {
    struct cfg *cfg = base;

    for (size_t i = 0; i < cfg->auth.n_jwt_keys; i++)
        jwt_key_free(&cfg->auth.jwt_keys[i]);
    free(cfg->auth.jwt_keys);
    cfg->auth.jwt_keys = apply_list(ld, k, v, sizeof(struct cfg_jwt_key), "JWT keys",
                                    &cfg->auth.n_jwt_keys, jwt_key_init, jwt_key_check);
}

static const struct key jwt_keys[] = {
    {"issuer", set_str, CF(auth.issuer), 0, 0, 0, NULL, 0},
    {"audience", set_str, CF(auth.audience), 0, 0, 0, NULL, 0},
    {"leeway", set_seconds, CF(auth.leeway), 0, 0, 3600, NULL, 0},
    {"jwks_file", set_str_pos, CF(auth.jwks_file), CF(auth.jwks_file_pos), 0, 0, NULL, 0},
    {"keys", set_jwt_keys, 0, 0, 0, 0, jwt_key_keys, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static const struct key auth_keys[] = {
    {"realm", set_str, CF(auth.realm), 0, 0, 0, NULL, 0},
    {"api_keys", set_api_keys, 0, 0, 0, 0, api_key_keys, 0},
    {"api_keys_file", set_str_pos, CF(auth.api_keys_file), CF(auth.api_keys_file_pos), 0, 0, NULL,
     0},
    {"jwt", set_section, 0, 0, 0, 0, jwt_keys, 0},
    {"origins", set_strlist, CF(auth.origins), CF(auth.n_origins), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

#define RL(f) offsetof(struct cfg_rate_limit, f)

static const struct key rate_limit_keys[] = {
    {"requests", set_int, RL(requests), 0, 1, 1000000000, NULL, K_REQUIRED},
    {"per", set_duration, RL(per_ms), 0, 1, 86400000, NULL, 0},
    {"burst", set_int, RL(burst), 0, 1, 1000000000, NULL, 0},
    {"by", set_str, RL(by), 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

/* An endpoint's rate_limit section (its struct at base + k->off). */
static void set_rate_limit(struct loader *ld, const struct key *k, const struct ynode *v,
                           void *base) {
    struct cfg_rate_limit *r = FIELD(base, k->off, struct cfg_rate_limit);
    char d[96];

    if (v->kind != YNODE_MAP) {
        errf(ld, v, "expected a mapping for \"%s\" (requests, per, burst, by), got %s", k->name,
             describe(v, d, sizeof(d)));
        return;
    }
    r->given = true;
    r->per_ms = 1000;
    r->pos.line = v->line;
    r->pos.col = v->col;
    apply_map(ld, rate_limit_keys, v, r);
    if (!r->burst)
        r->burst = r->requests;
    if (!r->by || strcmp(r->by, "client") == 0)
        r->by_kind = CFG_RATE_CLIENT;
    else if (strcmp(r->by, "principal") == 0)
        r->by_kind = CFG_RATE_PRINCIPAL;
    else if (strcmp(r->by, "route") == 0)
        r->by_kind = CFG_RATE_ROUTE;
    else
        errf(ld, ytree_get(v, "by"),
             "unknown rate limit key \"%s\" (expected client, principal or route)", r->by);
}

static void set_auth(struct loader *ld, const struct key *k, const struct ynode *v, void *base) {
    struct cfg *cfg = base;

    cfg->auth.enabled = true;
    set_section(ld, k, v, base);
}

static void auth_report(void *ctx, const struct cfg_pos *pos, const char *msg) {
    struct loader *ld = ctx;

    if (pos && pos->line)
        add_err(ld, LERR_POS, pos->line, pos->col, msg);
    else
        add_err(ld, LERR_FILE, 0, 0, msg);
}

/* Checks the auth rules against what the auth section offers, and the key
 * files it names (read by auth_verify_files, as a start would). */
static void check_auth(struct loader *ld) {
    struct cfg *cfg = ld->cfg;
    bool has_keys = cfg->auth.n_api_keys || cfg->auth.api_keys_file;
    bool has_jwt = cfg->auth.n_jwt_keys || cfg->auth.jwks_file;
    char msg[300];

    for (size_t i = 0; i < cfg->n_endpoints; i++) {
        const struct cfg_endpoint *ep = &cfg->endpoints[i];
        const struct cfg_auth_rule *rules[2] = {&ep->auth, &ep->live_auth};

        for (int r = 0; r < 2; r++) {
            const struct cfg_auth_rule *a = rules[r];

            if (!a->given || a->anonymous)
                continue;
            if (!cfg->auth.enabled) {
                snprintf(msg, sizeof(msg),
                         "%s asks for credentials but the file has no top-level \"auth\" section",
                         r ? "live_auth" : "auth");
                auth_report(ld, &a->pos, msg);
                continue;
            }
            for (size_t m = 0; m < a->n_methods; m++) {
                if ((strcmp(a->methods[m], "jwt") == 0 && !has_jwt) ||
                    (strcmp(a->methods[m], "api_key") == 0 && !has_keys)) {
                    snprintf(msg, sizeof(msg), "method %s is named but auth configures no %s",
                             a->methods[m],
                             a->methods[m][0] == 'j' ? "JWT keys (jwt.keys or jwt.jwks_file)"
                                                     : "API keys (api_keys or api_keys_file)");
                    auth_report(ld, &a->pos, msg);
                }
            }
        }
    }
    if (cfg->auth.enabled)
        auth_verify_files(cfg, auth_report, ld);
}

#define EP(f) offsetof(struct cfg_endpoint, f)
#define HD(f) offsetof(struct cfg_handler, f)

static const struct key endpoint_keys[] = {
    {"path", set_path, EP(path), 0, 0, 0, NULL, K_REQUIRED},
    {"method", set_method, EP(method), 0, 0, 0, NULL, K_REQUIRED},
    {"mode", set_mode, EP(mode), 0, 0, 0, NULL, K_REQUIRED},
    {"summary", set_str, EP(summary), 0, 0, 0, NULL, 0},
    {"body", set_schema, EP(body), EP(body_schema), 0, 0, NULL, 0},
    {"args", set_schema, EP(args), EP(args_schema), 0, 0, NULL, 0},
    {"live", set_bool, EP(live), 0, 0, 0, NULL, 0},
    {"trailing_slash", set_bool, EP(trailing_slash), 0, 0, 0, NULL, 0},
    {"timeout", set_duration, EP(timeout_ms), 0, 1, 3600000, NULL, 0},
    {"status", set_int, EP(status), 0, 200, 299, NULL, 0},
    {"validation_status", set_int, EP(validation_status), 0, 400, 499, NULL, 0},
    {"max_body", set_size, EP(max_body), 0, 1, 1024ll * 1024 * 1024, NULL, 0},
    {"content_types", set_content_types, EP(content_types), EP(n_content_types), 0, 0, NULL, 0},
    {"response", set_response, EP(response), 0, 0, 0, NULL, 0},
    {"files", set_files, 0, 0, 0, 0, file_keys, 0},
    {"auth", set_auth_rule, EP(auth), 0, 0, 0, auth_rule_keys, 0},
    {"live_auth", set_auth_rule, EP(live_auth), 0, 0, 0, auth_rule_keys, 0},
    {"rate_limit", set_rate_limit, EP(rate_limit), 0, 0, 0, rate_limit_keys, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static const struct key handler_keys[] = {
    {"name", set_str, HD(name), 0, 0, 0, NULL, K_REQUIRED},
    {"plugin", set_str, HD(plugin), 0, 0, 0, NULL, K_REQUIRED},
    {"queue", set_str, HD(queue), 0, 0, 0, NULL, K_REQUIRED},
    {"prefetch", set_int, HD(prefetch), 0, 1, 65535, NULL, 0},
    {"batch", set_int, HD(batch), 0, 1, 100000, NULL, 0},
    {"batch_wait", set_duration, HD(batch_wait_ms), 0, 0, 60000, NULL, 0},
    {"instances", set_int, HD(instances), 0, 1, 1024, NULL, 0},
    {"crash_limit", set_int, HD(crash_limit), 0, 1, 1000, NULL, 0},
    {"config", set_json, HD(config), 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static void endpoint_defaults(struct cfg_endpoint *ep) {
    ep->mode = CFG_MODE_PUBLISH;
    ep->timeout_ms = 5000;
    ep->status = 202;
    ep->validation_status = 400;
}

static void endpoint_free(struct cfg_endpoint *ep) {
    free(ep->path);
    free(ep->method);
    free(ep->exchange);
    free(ep->summary);
    json_decref(ep->body);
    json_decref(ep->args);
    jschema_free(ep->body_schema);
    jschema_free(ep->args_schema);
    free_strv(ep->content_types, ep->n_content_types);
    free(ep->content_max_body);
    free(ep->content_kinds);
    json_decref(ep->response);
    for (int r = 0; r < 2; r++) {
        struct cfg_auth_rule *a = r ? &ep->live_auth : &ep->auth;

        free_strv(a->scopes, a->n_scopes);
        free_strv(a->roles, a->n_roles);
        free_strv(a->methods, a->n_methods);
    }
    free(ep->rate_limit.by);
    for (size_t i = 0; i < ep->n_files; i++)
        file_free(&ep->files[i]);
    free(ep->files);
}

static void handler_free(struct cfg_handler *h) {
    free(h->name);
    free(h->plugin);
    free(h->plugin_path);
    free(h->queue);
    json_decref(h->config);
}

/* Checks of one endpoint that involve several of its keys. */
static void endpoint_check(struct loader *ld, const struct ynode *map, struct cfg_endpoint *ep) {
    const struct ynode *v;
    size_t n;

    v = ytree_get(map, "mode");
    /* Only when the mode itself is valid, or a typo there would bring more. */
    if (v && v->kind == YNODE_SCALAR &&
        (!strcmp(v->value, "publish") || !strcmp(v->value, "rpc"))) {
        if (ep->mode == CFG_MODE_PUBLISH && (v = ytree_get(map, "timeout")))
            errf(ld, v, "\"timeout\" applies only to rpc endpoints");
        if (ep->mode == CFG_MODE_RPC && (v = ytree_get(map, "live")))
            errf(ld, v, "\"live\" applies only to publish endpoints");
        if (ep->mode == CFG_MODE_RPC && (v = ytree_get(map, "status")))
            errf(ld, v, "\"status\" applies only to publish endpoints (an rpc answer sets it)");
        if (ep->mode == CFG_MODE_RPC && (v = ytree_get(map, "response")))
            errf(ld, v, "\"response\" applies only to publish endpoints (an rpc answer is it)");
    }
    if (ep->n_files > 0 && (v = ytree_get(map, "files"))) {
        bool multipart = false;

        for (n = 0; n < ep->n_content_types; n++)
            if (strcasecmp(ep->content_types[n], "multipart/form-data") == 0)
                multipart = true;
        if (!multipart)
            errf(ld, v, "\"files\" needs multipart/form-data in \"content_types\"");
        for (n = 0; n < ep->n_files; n++)
            for (size_t m = 0; m < n; m++)
                if (ep->files[n].field && ep->files[m].field &&
                    strcmp(ep->files[n].field, ep->files[m].field) == 0)
                    errf(ld, v->items[n], "file field \"%s\" is listed twice", ep->files[n].field);
    }
    if (ep->path && ep->method) {
        n = strlen(ep->path) + 1 + strlen(ep->method);
        ep->exchange = malloc(n + 1);
        if (!ep->exchange) {
            ld->oom = true;
            return;
        }
        snprintf(ep->exchange, n + 1, "%s:%s", ep->path, ep->method);
        if (n > MAX_AMQP_NAME)
            errf(ld, ytree_get(map, "path"),
                 "path is too long: its exchange name \"<path>:<METHOD>\" must fit in %d bytes",
                 MAX_AMQP_NAME);
    }
}

/* Applies an item table to every mapping of a list; returns the array (new)
 * and its length through n. */
static void *apply_list(struct loader *ld, const struct key *k, const struct ynode *v, size_t elem,
                        const char *what, size_t *n,
                        void (*init)(void *item, const struct ynode *map),
                        void (*check)(struct loader *ld, const struct ynode *map, void *item)) {
    char d[96];
    char *arr;
    size_t i;

    *n = 0;
    if (v->kind != YNODE_SEQ) {
        if (!ytree_is_null(v))
            errf(ld, v, "expected a list of %s for \"%s\", got %s", what, k->name,
                 describe(v, d, sizeof(d)));
        return NULL;
    }
    arr = calloc(v->n_items ? v->n_items : 1, elem);
    if (!arr) {
        ld->oom = true;
        return NULL;
    }
    for (i = 0; i < v->n_items; i++) {
        const struct ynode *it = v->items[i];
        if (it->invalid)
            continue;
        if (it->kind != YNODE_MAP) {
            errf(ld, it, "expected a mapping for each of \"%s\", got %s", k->name,
                 describe(it, d, sizeof(d)));
            continue;
        }
        init(arr + *n * elem, it);
        apply_map(ld, k->sub, it, arr + *n * elem);
        check(ld, it, arr + *n * elem);
        (*n)++;
    }
    return arr;
}

static void endpoint_init(void *item, const struct ynode *map) {
    struct cfg_endpoint *ep = item;

    endpoint_defaults(ep);
    ep->pos.line = map->line;
    ep->pos.col = map->col;
}

static void endpoint_check_cb(struct loader *ld, const struct ynode *map, void *item) {
    endpoint_check(ld, map, item);
}

static void handler_init(void *item, const struct ynode *map) {
    struct cfg_handler *h = item;

    h->prefetch = 256;
    h->batch = 100;
    h->batch_wait_ms = 5;
    h->instances = 1;
    h->crash_limit = 3;
    h->pos.line = map->line;
    h->pos.col = map->col;
}

static void handler_check_cb(struct loader *ld, const struct ynode *map, void *item) {
    struct cfg_handler *h = item;

    if (h->queue && strlen(h->queue) > MAX_AMQP_NAME)
        errf(ld, ytree_get(map, "queue"), "queue name is longer than %d bytes", MAX_AMQP_NAME);
}

static void set_endpoints(struct loader *ld, const struct key *k, const struct ynode *v,
                          void *base) {
    struct cfg *cfg = base;
    size_t i;

    for (i = 0; i < cfg->n_endpoints; i++)
        endpoint_free(&cfg->endpoints[i]);
    free(cfg->endpoints);
    cfg->endpoints = apply_list(ld, k, v, sizeof(struct cfg_endpoint), "endpoints",
                                &cfg->n_endpoints, endpoint_init, endpoint_check_cb);
}

static void set_handlers(struct loader *ld, const struct key *k, const struct ynode *v,
                         void *base) {
    struct cfg *cfg = base;
    size_t i;

    for (i = 0; i < cfg->n_handlers; i++)
        handler_free(&cfg->handlers[i]);
    free(cfg->handlers);
    cfg->handlers = apply_list(ld, k, v, sizeof(struct cfg_handler), "handlers", &cfg->n_handlers,
                               handler_init, handler_check_cb);
}

static const struct key cors_keys[] = {
    {"origins", set_strlist, CF(http.cors_origins), CF(http.n_cors_origins), 0, 0, NULL, 0},
    {"headers", set_strlist, CF(http.cors_headers), CF(http.n_cors_headers), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static const struct key bus_keys[] = {
    {"url", set_bus_url, CF(bus.url), 0, 0, 0, NULL, 0},
    {"heartbeat", set_seconds, CF(bus.heartbeat), 0, 0, 3600, NULL, 0},
    {"confirm_timeout", set_duration, CF(bus.confirm_timeout_ms), 0, 1, 600000, NULL, 0},
    {"queue_type", set_queue_type, CF(bus.queue_type), 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static const struct key http_keys[] = {
    {"listen", set_listen, CF(http.host), CF(http.port), 0, 0, NULL, 0},
    {"max_body", set_size, CF(http.max_body), 0, 1, 1024ll * 1024 * 1024, NULL, 0},
    {"threads", set_int, CF(http.threads), 0, 1, 1024, NULL, 0},
    {"max_connections", set_int, CF(http.max_connections), 0, 1, 1000000, NULL, 0},
    {"max_connections_per_client", set_int, CF(http.max_connections_per_client), 0, 1, 1000000,
     NULL, 0},
    {"header_timeout", set_seconds, CF(http.header_timeout), 0, 1, 3600, NULL, 0},
    {"body_timeout", set_seconds, CF(http.body_timeout), 0, 1, 3600, NULL, 0},
    {"idle_timeout", set_seconds, CF(http.idle_timeout), 0, 1, 3600, NULL, 0},
    {"max_headers", set_int, CF(http.max_headers), 0, 1, 1000, NULL, 0},
    {"max_query_params", set_int, CF(http.max_query_params), 0, 1, 10000, NULL, 0},
    {"max_uri", set_size, CF(http.max_uri), 0, 64, 12 * 1024, NULL, 0},
    {"cors", set_section, 0, 0, 0, 0, cors_keys, 0},
    {"public_prefix", set_prefix, CF(http.public_prefix), 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static const struct key live_keys[] = {
    {"listen", set_listen, CF(live.host), CF(live.port), 0, 0, NULL, 0},
    {"client_queue", set_count, CF(live.client_queue), 0, 1, 10000000, NULL, 0},
    {"max_frame", set_size, CF(live.max_frame), 0, 16, 64ll * 1024 * 1024, NULL, 0},
    {"ping_interval", set_seconds, CF(live.ping_interval), 0, 1, 3600, NULL, 0},
    {"resume_limit", set_long, CF(live.resume_limit), 0, 0, 10000000, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static const struct key handler_host_keys[] = {
    {"listen", set_listen, CF(handler_host.host), CF(handler_host.port), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static const struct key database_keys[] = {
    {"url", set_str, CF(database.url), 0, 0, 0, NULL, 0},
    {"read_url", set_str, CF(database.read_url), 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static const struct key idempotency_keys[] = {
    {"exchange", set_str, CF(idempotency.exchange), 0, 0, 0, NULL, K_REQUIRED},
    {"timeout", set_duration, CF(idempotency.timeout_ms), 0, 1, 60000, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static const struct key top_keys[] = {
    {"bus", set_section, 0, 0, 0, 0, bus_keys, 0},
    {"http", set_section, 0, 0, 0, 0, http_keys, 0},
    {"liveupdate", set_section, 0, 0, 0, 0, live_keys, 0},
    {"database", set_section, 0, 0, 0, 0, database_keys, 0},
    {"plugin_dir", set_str, CF(plugin_dir), 0, 0, 0, NULL, 0},
    {"auth", set_auth, 0, 0, 0, 0, auth_keys, 0},
    {"compat", set_compat, CF(compat), 0, 0, 0, NULL, 0},
    {"endpoints", set_endpoints, 0, 0, 0, 0, endpoint_keys, 0},
    {"handlers", set_handlers, 0, 0, 0, 0, handler_keys, 0},
    {"handler_host", set_section, 0, 0, 0, 0, handler_host_keys, 0},
    {"idempotency", set_section, 0, 0, 0, 0, idempotency_keys, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static void apply_map(struct loader *ld, const struct key *keys, const struct ynode *map,
                      void *base) {
    const char *names[32];
    const char *suggested[32];
    const struct key *k;
    const char *s;
    char t[96];
    size_t i, j, n = 0, n_suggested = 0;
    bool hinted;

    for (k = keys; k->name && n < sizeof(names) / sizeof(names[0]); k++)
        names[n++] = k->name;
    for (i = 0; i < map->n_pairs; i++) {
        const struct ynode *key = map->pairs[i].key;
        for (k = keys; k->name; k++)
            if (strcmp(k->name, key->value) == 0)
                break;
        if (!k->name) {
            s = suggest(key->value, names, n);
            if (s && n_suggested < sizeof(suggested) / sizeof(suggested[0]))
                suggested[n_suggested++] = s;
            if (s)
                errf(ld, key, "unknown key \"%s\" (did you mean \"%s\"?)",
                     q(key->value, t, sizeof(t)), s);
            else
                errf(ld, key, "unknown key \"%s\"", q(key->value, t, sizeof(t)));
            continue;
        }
        /* An alias stands here; it was reported already. */
        if (!map->pairs[i].value->invalid)
            k->set(ld, k, map->pairs[i].value, base);
    }
    for (k = keys; k->name; k++) {
        if (!(k->flags & K_REQUIRED) || ytree_get(map, k->name))
            continue;
        /* A misspelt required key was reported with a suggestion already. */
        hinted = false;
        for (j = 0; j < n_suggested; j++)
            if (suggested[j] == k->name)
                hinted = true;
        if (!hinted)
            errf(ld, map, "missing required key \"%s\"", k->name);
    }
}

/* ---- whole-file checks ---- */

/* The pattern with parameter names dropped: /a/{id} and /a/{x} are one route. */
static void route_pattern(const char *path, char *buf, size_t len) {
    size_t o = 0;
    bool in = false;

    for (; *path && o + 3 < len; path++) {
        if (*path == '{') {
            buf[o++] = '{';
            buf[o++] = '}';
            in = true;
        } else if (*path == '}') {
            in = false;
        } else if (!in) {
            buf[o++] = *path;
        }
    }
    buf[o] = '\0';
}

static void check_duplicates(struct loader *ld, const struct ynode *root) {
    const struct ynode *eps = ytree_get(root, "endpoints");
    const struct ynode *hds = ytree_get(root, "handlers");
    struct cfg *cfg = ld->cfg;
    char a[512], b[512], t[96];
    size_t i, j;

    for (i = 0; i < cfg->n_endpoints; i++) {
        const struct cfg_endpoint *x = &cfg->endpoints[i];
        if (!x->path || !x->method)
            continue;
        route_pattern(x->path, a, sizeof(a));
        for (j = 0; j < i; j++) {
            const struct cfg_endpoint *y = &cfg->endpoints[j];
            if (!y->path || !y->method || strcmp(x->method, y->method) != 0)
                continue;
            route_pattern(y->path, b, sizeof(b));
            if (strcmp(a, b) == 0) {
                const struct ynode *at = NULL;
                size_t k;
                /* The second endpoint's path node, found by its position. */
                for (k = 0; eps && k < eps->n_items; k++)
                    if (eps->items[k]->line == x->pos.line && eps->items[k]->col == x->pos.col)
                        at = ytree_get(eps->items[k], "path");
                if (!at)
                    at = eps;
                errf(ld, at, "duplicate route %s %s (first declared at line %d)", x->method,
                     q(x->path, t, sizeof(t)), y->pos.line);
                break;
            }
        }
    }
    for (i = 0; i < cfg->n_handlers; i++) {
        const struct cfg_handler *x = &cfg->handlers[i];
        if (!x->name)
            continue;
        for (j = 0; j < i; j++) {
            const struct cfg_handler *y = &cfg->handlers[j];
            if (y->name && strcmp(x->name, y->name) == 0) {
                const struct ynode *at = NULL;
                size_t k;
                for (k = 0; hds && k < hds->n_items; k++)
                    if (hds->items[k]->line == x->pos.line && hds->items[k]->col == x->pos.col)
                        at = ytree_get(hds->items[k], "name");
                if (!at)
                    at = hds;
                errf(ld, at, "duplicate handler name \"%s\" (first declared at line %d)",
                     q(x->name, t, sizeof(t)), y->pos.line);
                break;
            }
        }
    }
}

static void env_overrides(struct loader *ld) {
    struct cfg *cfg = ld->cfg;
    char why[128];
    const char *s;
    char *host;
    int port;

    s = getenv("FPESA_AMQP_URL");
    if (s && *s) {
        if (bus_url_ok(s))
            store_str(ld, &cfg->bus.url, s);
        else
            env_errf(ld, "FPESA_AMQP_URL", "expected an amqp:// or amqps:// URL");
    }
    s = getenv("FPESA_QUEUE_TYPE");
    if (s && *s) {
        if (queue_type_of(s) >= 0)
            cfg->bus.queue_type = (enum cfg_queue_type)queue_type_of(s);
        else
            env_errf(ld, "FPESA_QUEUE_TYPE", "expected classic or quorum, not \"%.40s\"", s);
    }
    s = getenv("FPESA_DATABASE_URL");
    if (s && *s)
        store_str(ld, &cfg->database.url, s);
    s = getenv("FPESA_DATABASE_READ_URL");
    if (s && *s)
        store_str(ld, &cfg->database.read_url, s);
    s = getenv("FPESA_HTTP_LISTEN");
    if (s && *s) {
        if (parse_listen(s, &host, &port, why, sizeof(why)) < 0) {
            env_errf(ld, "FPESA_HTTP_LISTEN", "bad value \"%.60s\": %s", s, why);
        } else {
            if (host) {
                free(cfg->http.host);
                cfg->http.host = host;
            }
            cfg->http.port = port;
        }
    }
    s = getenv("FPESA_LIVE_LISTEN");
    if (s && *s) {
        if (parse_listen(s, &host, &port, why, sizeof(why)) < 0) {
            env_errf(ld, "FPESA_LIVE_LISTEN", "bad value \"%.60s\": %s", s, why);
        } else {
            if (host) {
                free(cfg->live.host);
                cfg->live.host = host;
            }
            cfg->live.port = port;
        }
    }
    s = getenv("FPESA_HANDLER_LISTEN");
    if (s && *s) {
        if (parse_listen(s, &host, &port, why, sizeof(why)) < 0) {
            env_errf(ld, "FPESA_HANDLER_LISTEN", "bad value \"%.60s\": %s", s, why);
        } else {
            if (host) {
                free(cfg->handler_host.host);
                cfg->handler_host.host = host;
            }
            cfg->handler_host.port = port;
        }
    }
    s = getenv("FPESA_PLUGIN_DIR");
    if (s && *s)
        store_str(ld, &cfg->plugin_dir, s);
}

static char *join_path(const char *dir, size_t dir_len, const char *name) {
    size_t n = dir_len + 1 + strlen(name);
    char *out = malloc(n + 1);

    if (out)
        snprintf(out, n + 1, "%.*s/%s", (int)dir_len, dir, name);
    return out;
}

/* The folder "plugins" beside the folder of the running program:
 * build/bin/restmapper -> build/plugins; for an installed program, where
 * there is no such folder, lib/fpesa/plugins: /usr/bin/fpesa-handler ->
 * /usr/lib/fpesa/plugins (so an installed tree can be moved as a whole). */
static char *default_plugin_dir(void) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    char *slash, *dir;
    struct stat st;

    if (n <= 0)
        return strdup("plugins");
    exe[n] = '\0';
    slash = strrchr(exe, '/');
    if (!slash)
        return strdup("plugins");
    *slash = '\0';
    slash = strrchr(exe, '/');
    if (!slash)
        return strdup("/plugins");
    dir = join_path(exe, (size_t)(slash - exe), "plugins");
    if (!dir || (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)))
        return dir;
    free(dir);
    return join_path(exe, (size_t)(slash - exe), "lib/fpesa/plugins");
}

static void resolve_plugins(struct loader *ld, const struct ynode *root) {
    struct cfg *cfg = ld->cfg;
    const char *slash;
    char *dir;
    size_t i;

    /* A relative plugin_dir written in the file is relative to the file. */
    if (cfg->plugin_dir && cfg->plugin_dir[0] != '/' && ytree_get(root, "plugin_dir") &&
        !(getenv("FPESA_PLUGIN_DIR") && *getenv("FPESA_PLUGIN_DIR"))) {
        slash = strrchr(ld->file, '/');
        if (slash) {
            dir = join_path(ld->file, (size_t)(slash - ld->file), cfg->plugin_dir);
            if (!dir) {
                ld->oom = true;
                return;
            }
            free(cfg->plugin_dir);
            cfg->plugin_dir = dir;
        }
    }
    if (!cfg->plugin_dir) {
        cfg->plugin_dir = default_plugin_dir();
        if (!cfg->plugin_dir) {
            ld->oom = true;
            return;
        }
    }
    for (i = 0; i < cfg->n_handlers; i++) {
        struct cfg_handler *h = &cfg->handlers[i];
        if (!h->plugin)
            continue;
        if (strchr(h->plugin, '/'))
            h->plugin_path = strdup(h->plugin);
        else
            h->plugin_path = join_path(cfg->plugin_dir, strlen(cfg->plugin_dir), h->plugin);
        if (!h->plugin_path)
            ld->oom = true;
    }
}

static void finish(struct loader *ld) {
    struct cfg *cfg = ld->cfg;
    size_t i;

    for (i = 0; i < cfg->n_endpoints; i++) {
        struct cfg_endpoint *ep = &cfg->endpoints[i];
        if (ep->max_body == 0)
            ep->max_body = cfg->http.max_body;
        if (ep->n_content_types == 0) {
            free(ep->content_types);
            ep->content_types = calloc(2, sizeof(char *));
            if (!ep->content_types || !(ep->content_types[0] = strdup("application/json"))) {
                ld->oom = true;
                return;
            }
            ep->n_content_types = 1;
        }
        if (!ep->content_max_body || !ep->content_kinds) {
            free(ep->content_max_body);
            free(ep->content_kinds);
            ep->content_max_body = calloc(ep->n_content_types + 1, sizeof(size_t));
            ep->content_kinds = calloc(ep->n_content_types + 1, sizeof(enum cfg_body_kind));
            if (!ep->content_max_body || !ep->content_kinds) {
                ld->oom = true;
                return;
            }
        }
        for (size_t j = 0; j < ep->n_content_types; j++)
            if (ep->content_max_body[j] == 0)
                ep->content_max_body[j] = ep->max_body;
    }
}

static int set_defaults(struct cfg *cfg) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    cfg->bus.url = strdup("amqp://guest:guest@127.0.0.1:5672");
    cfg->bus.heartbeat = 5;
    cfg->bus.confirm_timeout_ms = 5000;
    cfg->http.host = strdup("127.0.0.1");
    cfg->http.port = 8081;
    cfg->http.max_body = 64 * 1024;
    cfg->http.threads = cores > 0 ? (cores > 1024 ? 1024 : (int)cores) : 1;
    cfg->http.max_connections = 10000;
    cfg->http.public_prefix = strdup("/api/v1");
    cfg->http.max_connections_per_client = 512;
    cfg->auth.leeway = 30;
    cfg->http.header_timeout = 10;
    cfg->http.body_timeout = 30;
    cfg->http.idle_timeout = 30;
    cfg->http.max_headers = 64;
    cfg->http.max_query_params = 100;
    cfg->http.max_uri = 8 * 1024;
    cfg->live.host = strdup("127.0.0.1");
    cfg->live.port = 8082;
    cfg->handler_host.host = strdup("127.0.0.1");
    cfg->live.client_queue = 1024;
    cfg->live.max_frame = 4 * 1024;
    cfg->live.ping_interval = 20;
    cfg->live.resume_limit = 1000;
    cfg->database.url = strdup("postgresql://fpesa@127.0.0.1:5432/fpesa");
    cfg->idempotency.timeout_ms = 2000;
    if (!cfg->bus.url || !cfg->http.host || !cfg->http.public_prefix || !cfg->live.host ||
        !cfg->handler_host.host || !cfg->database.url)
        return -1;
    return 0;
}

static char *read_file(const char *path, size_t *len, char *why, size_t why_len) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL, *nb;
    size_t cap = 0, n = 0, got;
    int saved;

    if (!f) {
        saved = errno;
        snprintf(why, why_len, "cannot open: %s", strerror(saved));
        return NULL;
    }
    for (;;) {
        if (n == cap) {
            if (cap >= MAX_FILE_SIZE) {
                snprintf(why, why_len, "file is larger than %u bytes", MAX_FILE_SIZE);
                goto out_fail;
            }
            cap = cap ? cap * 2 : 8192;
            nb = realloc(buf, cap + 1);
            if (!nb) {
                snprintf(why, why_len, "out of memory");
                goto out_fail;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                saved = errno;
                snprintf(why, why_len, "cannot read: %s", strerror(saved));
                goto out_fail;
            }
            break;
        }
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
out_fail:
    fclose(f);
    free(buf);
    return NULL;
}

struct cfg *cfg_load(const char *path, FILE *errs) {
    struct loader ld;
    struct ynode *root = NULL;
    struct cfg *cfg;
    char why[256];
    char *buf;
    size_t len, i;
    bool failed = false;

    memset(&ld, 0, sizeof(ld));
    ld.file = path;
    cfg = calloc(1, sizeof(*cfg));
    if (!cfg || !(cfg->file = strdup(path)) || set_defaults(cfg) < 0) {
        ld.oom = true;
        goto out;
    }
    ld.cfg = cfg;
    buf = read_file(path, &len, why, sizeof(why));
    if (!buf) {
        errf(&ld, NULL, "%s", why);
        goto out;
    }
    root = ytree_parse(buf, len, tree_err, &ld, &failed);
    free(buf);
    if (!root) {
        if (!failed)
            errf(&ld, NULL, "the file is empty (expected a mapping of sections)");
        goto out;
    }
    if (root->kind != YNODE_MAP) {
        char d[96];
        errf(&ld, root, "expected a mapping of sections (bus, http, endpoints, ...), got %s",
             describe(root, d, sizeof(d)));
        goto out;
    }
    apply_map(&ld, top_keys, root, cfg);
    check_duplicates(&ld, root);
    check_auth(&ld);
    env_overrides(&ld);
    resolve_plugins(&ld, root);
    finish(&ld);
out:
    ytree_free(root);
    if (ld.n_errs || ld.oom) {
        if (!ld.n_errs && !ld.oom)
            ld.oom = true;
        print_errs(&ld, errs);
        cfg_free(cfg);
        cfg = NULL;
    }
    for (i = 0; i < ld.n_errs; i++)
        free(ld.errs[i].msg);
    free(ld.errs);
    return cfg;
}

void cfg_free(struct cfg *cfg) {
    size_t i;

    if (!cfg)
        return;
    free(cfg->file);
    free(cfg->bus.url);
    free(cfg->http.host);
    free(cfg->http.public_prefix);
    free_strv(cfg->http.cors_origins, cfg->http.n_cors_origins);
    free_strv(cfg->http.cors_headers, cfg->http.n_cors_headers);
    free(cfg->live.host);
    free(cfg->handler_host.host);
    free(cfg->database.url);
    free(cfg->database.read_url);
    free(cfg->idempotency.exchange);
    free(cfg->plugin_dir);
    free(cfg->auth.realm);
    for (i = 0; i < cfg->auth.n_api_keys; i++)
        api_key_free(&cfg->auth.api_keys[i]);
    free(cfg->auth.api_keys);
    free(cfg->auth.api_keys_file);
    free(cfg->auth.issuer);
    free(cfg->auth.audience);
    free(cfg->auth.jwks_file);
    for (i = 0; i < cfg->auth.n_jwt_keys; i++)
        jwt_key_free(&cfg->auth.jwt_keys[i]);
    free(cfg->auth.jwt_keys);
    free_strv(cfg->auth.origins, cfg->auth.n_origins);
    for (i = 0; i < cfg->n_endpoints; i++)
        endpoint_free(&cfg->endpoints[i]);
    free(cfg->endpoints);
    for (i = 0; i < cfg->n_handlers; i++)
        handler_free(&cfg->handlers[i]);
    free(cfg->handlers);
    free(cfg);
}

const struct cfg_endpoint *cfg_endpoint_find(const struct cfg *cfg, const char *method,
                                             const char *path) {
    size_t i;

    if (!cfg || !method || !path)
        return NULL;
    for (i = 0; i < cfg->n_endpoints; i++) {
        const struct cfg_endpoint *ep = &cfg->endpoints[i];
        if (strcasecmp(ep->method, method) == 0 && strcmp(ep->path, path) == 0)
            return ep;
    }
    return NULL;
}

/* ---- the list of known keys ---- */

#define MAX_KNOWN 160

static char known_buf[MAX_KNOWN][64];
static const char *known_keys[MAX_KNOWN + 1];
static pthread_once_t known_once = PTHREAD_ONCE_INIT;
static size_t n_known;

static void collect_keys(const struct key *keys, const char *prefix) {
    const struct key *k;
    char sub[64];

    for (k = keys; k->name; k++) {
        if (k->set == set_section || k->set == set_auth || k->set == set_auth_rule ||
            k->set == set_rate_limit) {
            snprintf(sub, sizeof(sub), "%s%s.", prefix, k->name);
            collect_keys(k->sub, sub);
        } else if (k->set == set_endpoints || k->set == set_handlers || k->set == set_files ||
                   k->set == set_api_keys || k->set == set_jwt_keys) {
            snprintf(sub, sizeof(sub), "%s%s[].", prefix, k->name);
            collect_keys(k->sub, sub);
        } else if (n_known < MAX_KNOWN) {
            snprintf(known_buf[n_known], sizeof(known_buf[n_known]), "%s%s", prefix, k->name);
            known_keys[n_known] = known_buf[n_known];
            n_known++;
        }
    }
}

static void build_known(void) {
    collect_keys(top_keys, "");
    known_keys[n_known] = NULL;
}

bool cfg_declare_durable(const struct cfg *cfg) {
    return !cfg || cfg->compat != CFG_COMPAT_FPESA_PYTHON;
}

const char *cfg_queue_type_arg(const struct cfg *cfg) {
    return cfg && cfg->bus.queue_type == CFG_QUEUE_QUORUM ? "quorum" : NULL;
}

const char *cfg_compat_name(const struct cfg *cfg) {
    return compats[cfg && cfg->compat == CFG_COMPAT_FPESA_PYTHON ? 1 : 0];
}

const char *const *cfg_known_keys(void) {
    pthread_once(&known_once, build_known);
    return known_keys;
}

int cfg_check_main(const char *path) {
    struct cfg *cfg = cfg_load(path, stderr);

    if (!cfg)
        return 1;
    printf("%s: ok\n", path);
    fflush(stdout);
    cfg_free(cfg);
    return 0;
}
