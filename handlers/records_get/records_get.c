/* records_get: answers the rpc requests of "GET /records[?next=TOKEN]" from
 * the message store, oldest first.
 *
 *   {"results": [{"timestamp", "message_id", "data"}, ...],
 *    "count": <records on this page>, "next": TOKEN | null}
 *
 * Pages are a keyset on the row value (received_at, id): a page is the rows
 * with (received_at, id) > the last row of the previous page, in that order,
 * so rows sharing a timestamp are neither skipped nor repeated, and a page
 * costs the same at any depth (an index on exactly that pair, created by this
 * plugin's own versioned migration). "next" is null on the last page; a
 * token this plugin did not write is answered 400.
 *
 * PostgreSQL builds the JSON of the page (json_agg), so no row is parsed
 * here. Errors are answered {"error":{"code","description"}}: 400 bad
 * arguments, 503 database unavailable. Every request is answered and acked.
 *
 * Reads from a streaming replica (config read_url, or the file's
 * database.read_url) like messages_get: a first page as the replica has it,
 * a page that goes on from a token only once the replica has replayed what
 * the primary had when the request came (else from the primary), so that
 * replication lag never makes a page skip a row.
 *
 * config:
 *   read_url: URL       a streaming replica to read from
 *   table: messages     the message store's table (messages_post's)
 *   page_size: 50       records per page (1 to 1000)
 *   format: json        json: "data" is the stored JSON value and "timestamp"
 *                       PostgreSQL's text (1 to 6 fraction digits); seed: the
 *                       original service's form, "data" the JSON as a text
 *                       string and "timestamp" with six fraction digits
 *                       (2026-11-23T09:32:30.438000+00:00)
 */
#include <errno.h>
#include <fpesa/handler.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/store.h"
#include "token.h"

#define PAGE_SIZE_DEFAULT 50
#define PAGE_SIZE_MAX 1000

#define ROW_JSON "json_build_object('timestamp', received_at, 'message_id', id, 'data', data)"
#define ROW_SEED                                                                                   \
    "json_build_object('timestamp', to_char(received_at AT TIME ZONE 'UTC',"                       \
    " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'), 'message_id', id, 'data', data::text)"
#define EPOCH_US "timestamptz 'epoch' + $1::bigint * interval '1 microsecond'"

/* $3 + 1 rows tell whether a next page exists; only $3 are shown. The cursor
 * is the last shown row, its time in exact microseconds. */
#define PAGE_SQL(ROW, where)                                                                       \
    "WITH page AS (SELECT id, received_at, data FROM {t} " where                                   \
    " ORDER BY received_at, id LIMIT $3 + 1),"                                                     \
    " shown AS (SELECT * FROM page ORDER BY received_at, id LIMIT $3)"                             \
    " SELECT coalesce((SELECT json_agg(" ROW " ORDER BY received_at, id) FROM shown), '[]'),"      \
    " (SELECT count(*) FROM shown),"                                                               \
    " CASE WHEN (SELECT count(*) FROM page) > $3 THEN"                                             \
    "  (SELECT (extract(epoch FROM received_at) * 1000000)::bigint || ':' || id FROM shown"        \
    "   ORDER BY received_at DESC, id DESC LIMIT 1) END"

/* The first page has no position; it still names $1 and $2 (always NULL)
 * so both statements take the same three parameters. */
#define WHERE_FIRST "WHERE $1::bigint IS NULL AND $2::text IS NULL"
#define WHERE_NEXT "WHERE (received_at, id) > (" EPOCH_US ", $2::text)"
static const char *const sql_first = PAGE_SQL(ROW_JSON, WHERE_FIRST);
static const char *const sql_next = PAGE_SQL(ROW_JSON, WHERE_NEXT);
static const char *const sql_first_seed = PAGE_SQL(ROW_SEED, WHERE_FIRST);
static const char *const sql_next_seed = PAGE_SQL(ROW_SEED, WHERE_NEXT);

/* The index of the keyset, versioned apart from the table's own migrations
 * (schema_migrations name "<table>.records"). */
static const char *const index_migrations[] = {
    "CREATE INDEX IF NOT EXISTS {t}_received_at_id_idx ON {t} (received_at, id)",
};

struct rec {
    const struct fpesa_host *host;
    struct fpesa_ctx *ctx;
    char table[STORE_TABLE_MAX + 1];
    long page_size;
    bool seed; /* format: seed */
    PGconn *pg;
    time_t failed_at; /* last failed connect: no new attempt within a second */
    char *read_url;   /* the replica, or NULL */
    PGconn *rpg;      /* the replica's connection, or NULL */
    time_t rfailed_at;
    PGconn **use; /* the connection the request at hand reads from (&pg or &rpg) */
};

/* How long a continued page waits for the replica (see messages_get). */
#define REPLAY_WAIT_MS 1000

/* Applies the index migrations the table lacks (schema_migrations name
 * "<table>.records"). */
static int migrate_index(struct rec *g, char *err, size_t errlen) {
    char name[STORE_TABLE_MAX + 16];

    snprintf(name, sizeof(name), "%s.records", g->table);
    return store_migrate_set(g->pg, name, index_migrations,
                             sizeof(index_migrations) / sizeof(index_migrations[0]), g->table, err,
                             errlen);
}

static int prepare(struct rec *g, PGconn *conn, const char *name, const char *tmpl) {
    char *sql = store_sql(tmpl, g->table);
    PGresult *r;
    int rc = 0;

    if (!sql)
        return -1;
    r = PQprepare(conn, name, sql, 3, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        FPESA_LOG(g, FPESA_LOG_ERROR, "records_get: cannot prepare %s: %s", name,
                  PQresultErrorMessage(r));
        rc = -1;
    }
    PQclear(r);
    free(sql);
    return rc;
}

static int open_db(struct rec *g) {
    char err[512];
    time_t now = time(NULL);

    if (g->pg && PQstatus(g->pg) == CONNECTION_OK)
        return 0;
    if (g->pg) {
        PQfinish(g->pg);
        g->pg = NULL;
    }
    if (g->failed_at && now - g->failed_at < 1)
        return -1;
    g->pg = store_connect(g->host->database_url(g->ctx), err, sizeof(err));
    if (!g->pg) {
        FPESA_LOG(g, FPESA_LOG_WARN, "records_get: database unavailable: %s", err);
        goto out_fail;
    }
    if (store_migrate(g->pg, g->table, err, sizeof(err)) < 0 ||
        migrate_index(g, err, sizeof(err)) < 0) {
        FPESA_LOG(g, FPESA_LOG_ERROR, "records_get: migration of table %s failed: %s", g->table,
                  err);
        goto out_fail;
    }
    if (prepare(g, g->pg, "first", g->seed ? sql_first_seed : sql_first) < 0 ||
        prepare(g, g->pg, "next", g->seed ? sql_next_seed : sql_next) < 0)
        goto out_fail;
    g->failed_at = 0;
    FPESA_LOG(g, FPESA_LOG_INFO, "records_get: database connected table=%s page_size=%ld", g->table,
              g->page_size);
    return 0;

out_fail:
    PQfinish(g->pg);
    g->pg = NULL;
    g->failed_at = now;
    return -1;
}

/* The replica's connection: no migrations (the primary runs them). */
static int open_replica(struct rec *g) {
    char err[512];
    time_t now = time(NULL);

    if (g->rpg && PQstatus(g->rpg) == CONNECTION_OK)
        return 0;
    PQfinish(g->rpg);
    g->rpg = NULL;
    if (g->rfailed_at && now - g->rfailed_at < 1)
        return -1;
    g->rpg = store_connect(g->read_url, err, sizeof(err));
    if (!g->rpg || prepare(g, g->rpg, "first", g->seed ? sql_first_seed : sql_first) < 0 ||
        prepare(g, g->rpg, "next", g->seed ? sql_next_seed : sql_next) < 0) {
        FPESA_LOG(g, FPESA_LOG_WARN, "records_get: replica not usable: %s",
                  g->rpg ? "the table is not there yet" : err);
        PQfinish(g->rpg);
        g->rpg = NULL;
        g->rfailed_at = now;
        return -1;
    }
    g->rfailed_at = 0;
    FPESA_LOG(g, FPESA_LOG_INFO, "records_get: replica connected table=%s", g->table);
    return 0;
}

/* Where the request at hand reads (continued: it goes on from a token). */
static PGconn **pick(struct rec *g, bool continued) {
    if (g->read_url && open_replica(g) == 0) {
        int r = continued
                    ? (open_db(g) < 0 ? -2 : store_replica_caught_up(g->pg, g->rpg, REPLAY_WAIT_MS))
                    : 1;
        if (r == -1) {
            PQfinish(g->rpg);
            g->rpg = NULL;
        } else if (r != 0) {
            return &g->rpg;
        }
    }
    if (open_db(g) == 0)
        return &g->pg;
    if (g->read_url && open_replica(g) == 0)
        return &g->rpg;
    return NULL;
}

static int rec_init(const struct fpesa_host *host, struct fpesa_ctx *ctx, const char *config_json,
                    void **state) {
    struct rec *g = calloc(1, sizeof(*g));
    const char *table = host->config(ctx, "table");
    const char *size = host->config(ctx, "page_size");
    const char *format = host->config(ctx, "format");

    (void)config_json;
    if (!g)
        return -1;
    g->host = host;
    g->ctx = ctx;
    if (!table)
        table = "messages";
    if (!store_ident_is_valid(table)) {
        FPESA_LOG(g, FPESA_LOG_ERROR,
                  "records_get: config table \"%s\" is not a plain identifier ([a-z_][a-z0-9_]*)",
                  table);
        goto out_free;
    }
    snprintf(g->table, sizeof(g->table), "%s", table);
    g->page_size = PAGE_SIZE_DEFAULT;
    if (size) {
        char *end;
        long v;

        errno = 0;
        v = strtol(size, &end, 10);
        if (errno || end == size || *end || v < 1 || v > PAGE_SIZE_MAX) {
            FPESA_LOG(g, FPESA_LOG_ERROR, "records_get: config page_size \"%s\" is not 1 to %d",
                      size, PAGE_SIZE_MAX);
            goto out_free;
        }
        g->page_size = v;
    }
    if (format && strcmp(format, "seed") == 0) {
        g->seed = true;
    } else if (format && strcmp(format, "json") != 0) {
        FPESA_LOG(g, FPESA_LOG_ERROR, "records_get: config format \"%s\" is not json or seed",
                  format);
        goto out_free;
    }
    {
        const char *ru = host->config(ctx, "read_url");
        if (ru && *ru && !(g->read_url = strdup(ru)))
            goto out_free;
    }
    open_db(g);
    if (g->read_url)
        open_replica(g);
    *state = g;
    return 0;

out_free:
    free(g);
    return -1;
}

static void reply_error(struct rec *g, const struct fpesa_message *m, int code, const char *desc) {
    json_t *doc = json_pack("{s:{s:i,s:s}}", "error", "code", code, "description", desc);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

    if (text)
        g->host->reply(g->ctx, m, text, strlen(text), "application/json");
    free(text);
    json_decref(doc);
}

/* Reads the arguments: none, or "next" only. 0, or -1 with err set. */
static int parse_args(const json_t *args, struct token *t, int *has, char *err, size_t errlen) {
    const char *key;
    json_t *v;

    *has = 0;
    if (!args || json_is_null(args))
        return 0;
    if (!json_is_object(args)) {
        snprintf(err, errlen, "the arguments are not an object");
        return -1;
    }
    json_object_foreach((json_t *)args, key, v) {
        if (strcmp(key, "next") != 0) {
            snprintf(err, errlen, "unknown argument \"%.60s\" (only next is known)", key);
            return -1;
        }
        if (!json_is_string(v)) {
            snprintf(err, errlen, "next: not a page token");
            return -1;
        }
        if (token_decode(json_string_value(v), t, err, errlen) < 0)
            return -1;
        *has = 1;
    }
    return 0;
}

/* Answers one page; -1 when the query failed (the connection is dropped
 * when it is the cause). */
static int answer(struct rec *g, const struct fpesa_message *m, const struct token *t, int has) {
    char usec[24], limit[24], tok[TOKEN_MAX + 1], next[TOKEN_MAX + 3] = "null";
    const char *vals[3] = {has ? usec : NULL, has ? t->id : NULL, limit};
    const char *name = has ? "next" : "first";
    PGresult *r;
    char *text = NULL;

    snprintf(usec, sizeof(usec), "%lld", has ? (long long)t->usec : 0LL);
    snprintf(limit, sizeof(limit), "%ld", g->page_size);
    r = PQexecPrepared(*g->use, name, 3, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        FPESA_LOG(g, FPESA_LOG_WARN, "records_get: %s failed: %s", name,
                  r ? PQresultErrorMessage(r) : PQerrorMessage(*g->use));
        PQclear(r);
        if (PQstatus(*g->use) != CONNECTION_OK) {
            PQfinish(*g->use);
            *g->use = NULL;
        }
        return -1;
    }
    if (!PQgetisnull(r, 0, 2)) {
        const char *pos = PQgetvalue(r, 0, 2);
        const char *colon = strchr(pos, ':');
        long long us = strtoll(pos, NULL, 10);

        if (colon && token_encode(us, colon + 1, tok, sizeof(tok)) == 0)
            snprintf(next, sizeof(next), "\"%s\"", tok);
    }
    /* The array is the database's JSON text, pasted as it is. */
    {
        const char *results = PQgetvalue(r, 0, 0);
        const char *count = PQgetvalue(r, 0, 1);
        size_t cap = strlen(results) + strlen(count) + strlen(next) + 40;

        text = malloc(cap);
        if (text) {
            int k = snprintf(text, cap, "{\"results\":%s,\"count\":%s,\"next\":%s}", results, count,
                             next);
            g->host->reply(g->ctx, m, text, (size_t)k, "application/json");
        }
    }
    free(text);
    PQclear(r);
    return 0;
}

static void handle(struct rec *g, const struct fpesa_message *m) {
    json_error_t jerr;
    json_t *env = json_loadb(m->body, m->len, 0, &jerr);
    struct token t;
    char err[160];
    int has, rc = -1;

    if (!env || !json_is_object(env)) {
        reply_error(g, m, 400, "the request is not a JSON envelope");
        goto out;
    }
    if (parse_args(json_object_get(env, "args"), &t, &has, err, sizeof(err)) < 0) {
        reply_error(g, m, 400, err);
        goto out;
    }
    /* A connection broken since the last request is noticed when a query
     * fails: reconnect and try once more. */
    for (int attempt = 0; attempt < 2 && rc < 0; attempt++) {
        g->use = pick(g, has);
        if (!g->use)
            break;
        rc = answer(g, m, &t, has);
        if (*g->use)
            break;
    }
    if (rc < 0)
        reply_error(g, m, 503, "the record store is unavailable");
out:
    json_decref(env);
}

static int rec_batch(void *state, const struct fpesa_message *const *msgs, size_t n,
                     enum fpesa_result *results) {
    struct rec *g = state;

    for (size_t i = 0; i < n; i++) {
        if (!msgs[i]->reply_to) {
            FPESA_LOG(g, FPESA_LOG_WARN, "records_get: request without reply_to id=%s",
                      msgs[i]->message_id ? msgs[i]->message_id : "-");
            results[i] = FPESA_REJECT;
            continue;
        }
        handle(g, msgs[i]);
        results[i] = FPESA_OK;
    }
    return 0;
}

static void rec_fini(void *state) {
    struct rec *g = state;

    if (!g)
        return;
    PQfinish(g->pg);
    PQfinish(g->rpg);
    free(g->read_url);
    free(g);
}

FPESA_HANDLER_DEFINE("records_get: stored messages oldest first, a keyset on (received_at, id)",
                     rec_init, rec_batch, rec_fini)
