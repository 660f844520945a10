/* The key-table engine of the config loader: a table of known keys per
 * section, each with a setter, applied to a mapping (unknown keys with a
 * suggestion, missing required keys) or to every mapping of a list; and the
 * setters of plain values (integers, booleans, strings, sizes, durations,
 * listen addresses, string lists, sections).
 */
#include "config_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool cfg_scalar_ok(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                   const char *what) {
    char d[96];

    if (v->kind == YNODE_SCALAR && !ytree_is_null(v))
        return true;
    cfg_errf(ld, v, "expected %s for \"%s\", got %s", what, k->name, cfg_describe(v, d, sizeof(d)));
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
static int get_int(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                   long long *out) {
    char d[96];

    if (!is_plain_int(v, out)) {
        cfg_errf(ld, v, "expected an integer for \"%s\", got %s", k->name,
                 cfg_describe(v, d, sizeof(d)));
        return -1;
    }
    if (*out < k->min || *out > k->max) {
        cfg_errf(ld, v, "\"%s\" must be from %lld to %lld, got %lld", k->name, k->min, k->max,
                 *out);
        return -1;
    }
    return 0;
}

void cfg_set_int(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                 void *base) {
    long long n;

    if (get_int(ld, k, v, &n) == 0)
        *FIELD(base, k->off, int) = (int)n;
}

void cfg_set_long(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                  void *base) {
    long long n;

    if (get_int(ld, k, v, &n) == 0)
        *FIELD(base, k->off, long) = (long)n;
}

void cfg_set_count(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                   void *base) {
    long long n;

    if (get_int(ld, k, v, &n) == 0)
        *FIELD(base, k->off, size_t) = (size_t)n;
}

void cfg_set_bool(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                  void *base) {
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
    cfg_errf(ld, v, "expected true or false for \"%s\", got %s", k->name,
             cfg_describe(v, d, sizeof(d)));
}

bool cfg_store_str(struct cfg_loader *ld, char **field, const char *s) {
    char *dup = strdup(s);

    if (!dup) {
        ld->oom = true;
        return false;
    }
    free(*field);
    *field = dup;
    return true;
}

void cfg_set_str(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                 void *base) {
    if (!cfg_scalar_ok(ld, k, v, "a string"))
        return;
    if (v->value[0] == '\0') {
        cfg_errf(ld, v, "\"%s\" must not be empty", k->name);
        return;
    }
    cfg_store_str(ld, FIELD(base, k->off, char *), v->value);
}

/* One URL, or a comma-separated list of them tried in turn (a cluster). */
bool cfg_bus_url_ok(const char *s) {
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

void cfg_set_bus_url(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                     void *base) {
    char t[96];

    if (!cfg_scalar_ok(ld, k, v, "a URL"))
        return;
    if (!cfg_bus_url_ok(v->value)) {
        cfg_errf(ld, v, "expected an amqp:// or amqps:// URL for \"%s\", got \"%s\"", k->name,
                 cfg_quote(v->value, t, sizeof(t)));
        return;
    }
    cfg_store_str(ld, FIELD(base, k->off, char *), v->value);
}

void cfg_set_size(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                  void *base) {
    char t[96];
    size_t n;

    if (!cfg_scalar_ok(ld, k, v, "a size such as 64KiB"))
        return;
    if (cfg_parse_size(v->value, &n) < 0) {
        cfg_errf(ld, v,
                 "bad size \"%s\" for \"%s\" (expected bytes or a number with B, KB, KiB, MB, "
                 "MiB, GB or GiB)",
                 cfg_quote(v->value, t, sizeof(t)), k->name);
        return;
    }
    if ((long long)n < k->min || (unsigned long long)n > (unsigned long long)k->max) {
        cfg_errf(ld, v, "\"%s\" must be from %lld to %lld bytes, got %zu", k->name, k->min, k->max,
                 n);
        return;
    }
    *FIELD(base, k->off, size_t) = n;
}

static int get_duration(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                        long *ms) {
    char t[96];

    if (!cfg_scalar_ok(ld, k, v, "a duration such as 500ms or 2s"))
        return -1;
    if (cfg_parse_duration(v->value, ms) < 0) {
        cfg_errf(ld, v, "bad duration \"%s\" for \"%s\" (expected a number with ms, s, m or h)",
                 cfg_quote(v->value, t, sizeof(t)), k->name);
        return -1;
    }
    if (*ms < k->min || *ms > k->max) {
        cfg_errf(ld, v, "\"%s\" must be from %lldms to %lldms, got %ldms", k->name, k->min, k->max,
                 *ms);
        return -1;
    }
    return 0;
}

void cfg_set_duration(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                      void *base) {
    long ms;

    if (get_duration(ld, k, v, &ms) == 0)
        *FIELD(base, k->off, long) = ms;
}

/* Whole seconds: an integer, or a duration such as "30s" or "1m". min and
 * max are in seconds. */
void cfg_set_seconds(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                     void *base) {
    char t[96];
    long long n;
    long ms;

    if (is_plain_int(v, &n)) {
        cfg_set_int(ld, k, v, base);
        return;
    }
    if (!cfg_scalar_ok(ld, k, v, "a number of seconds"))
        return;
    if (cfg_parse_duration(v->value, &ms) < 0 || ms % 1000 != 0) {
        cfg_errf(ld, v, "bad duration \"%s\" for \"%s\" (expected whole seconds: 30 or 30s)",
                 cfg_quote(v->value, t, sizeof(t)), k->name);
        return;
    }
    n = ms / 1000;
    if (n < k->min || n > k->max) {
        cfg_errf(ld, v, "\"%s\" must be from %lld to %lld seconds, got %lld", k->name, k->min,
                 k->max, n);
        return;
    }
    *FIELD(base, k->off, int) = (int)n;
}

void cfg_set_listen(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                    void *base) {
    char why[128], t[96];
    char *host;
    int port;

    if (!cfg_scalar_ok(ld, k, v, "host:port"))
        return;
    if (cfg_parse_listen(v->value, &host, &port, why, sizeof(why)) < 0) {
        cfg_errf(ld, v, "bad \"%s\" value \"%s\": %s", k->name, cfg_quote(v->value, t, sizeof(t)),
                 why);
        return;
    }
    if (host) {
        free(*FIELD(base, k->off, char *));
        *FIELD(base, k->off, char *) = host;
    }
    *FIELD(base, k->off2, int) = port;
}

void cfg_free_strv(char **v, size_t n) {
    size_t i;

    for (i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

void cfg_set_strlist(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                     void *base) {
    char d[96];
    char **list;
    size_t i, n = 0;

    if (v->kind != YNODE_SEQ) {
        cfg_errf(ld, v, "expected a list of strings for \"%s\", got %s", k->name,
                 cfg_describe(v, d, sizeof(d)));
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
            cfg_errf(ld, it, "expected a non-empty string in \"%s\", got %s", k->name,
                     cfg_describe(it, d, sizeof(d)));
            continue;
        }
        list[n] = strdup(it->value);
        if (!list[n]) {
            ld->oom = true;
            break;
        }
        n++;
    }
    cfg_free_strv(*FIELD(base, k->off, char **), *FIELD(base, k->off2, size_t));
    *FIELD(base, k->off, char **) = list;
    *FIELD(base, k->off2, size_t) = n;
}

void cfg_set_section(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                     void *base) {
    char d[96];

    if (v->kind != YNODE_MAP) {
        cfg_errf(ld, v, "expected a mapping for \"%s\", got %s", k->name,
                 cfg_describe(v, d, sizeof(d)));
        return;
    }
    cfg_apply_map(ld, k->sub, v, base);
}

/* Applies an item table to every mapping of a list; returns the array (new)
 * and its length through n. */
void *cfg_apply_list(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                     size_t elem, const char *what, size_t *n,
                     void (*init)(void *item, const struct ynode *map),
                     void (*check)(struct cfg_loader *ld, const struct ynode *map, void *item)) {
    char d[96];
    char *arr;
    size_t i;

    *n = 0;
    if (v->kind != YNODE_SEQ) {
        if (!ytree_is_null(v))
            cfg_errf(ld, v, "expected a list of %s for \"%s\", got %s", what, k->name,
                     cfg_describe(v, d, sizeof(d)));
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
            cfg_errf(ld, it, "expected a mapping for each of \"%s\", got %s", k->name,
                     cfg_describe(it, d, sizeof(d)));
            continue;
        }
        init(arr + *n * elem, it);
        cfg_apply_map(ld, k->sub, it, arr + *n * elem);
        check(ld, it, arr + *n * elem);
        (*n)++;
    }
    return arr;
}

void cfg_apply_map(struct cfg_loader *ld, const struct cfg_key *keys, const struct ynode *map,
                   void *base) {
    const char *names[32];
    const char *suggested[32];
    const struct cfg_key *k;
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
            s = cfg_suggest(key->value, names, n);
            if (s && n_suggested < sizeof(suggested) / sizeof(suggested[0]))
                suggested[n_suggested++] = s;
            if (s)
                cfg_errf(ld, key, "unknown key \"%s\" (did you mean \"%s\"?)",
                         cfg_quote(key->value, t, sizeof(t)), s);
            else
                cfg_errf(ld, key, "unknown key \"%s\"", cfg_quote(key->value, t, sizeof(t)));
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
            cfg_errf(ld, map, "missing required key \"%s\"", k->name);
    }
}
