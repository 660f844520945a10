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
#include <fpesa/handler.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/dbconn.h"
#include "../lib/rpc.h"
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
    struct rpc rpc;
    struct dbconn db;
    long page_size;
    bool seed; /* format: seed */
};

/* A new connection: the table's migrations and the keyset's index
 * (schema_migrations name "<table>.records") on the primary, the prepared
 * statements on both. */
static int setup(void *owner, PGconn *conn, bool primary) {
    struct rec *g = owner;
    char err[512], name[STORE_TABLE_MAX + 16];

    snprintf(name, sizeof(name), "%s.records", g->db.table);
    if (primary && (store_migrate(conn, g->db.table, err, sizeof(err)) < 0 ||
                    store_migrate_set(conn, name, index_migrations,
                                      sizeof(index_migrations) / sizeof(index_migrations[0]),
                                      g->db.table, err, sizeof(err)) < 0)) {
        FPESA_LOG(&g->rpc, FPESA_LOG_ERROR, "records_get: migration of table %s failed: %s",
                  g->db.table, err);
        return -1;
    }
    if (dbconn_prepare(&g->db, conn, "first", g->seed ? sql_first_seed : sql_first, 3) < 0 ||
        dbconn_prepare(&g->db, conn, "next", g->seed ? sql_next_seed : sql_next, 3) < 0)
        return -1;
    return 0;
}

static int rec_init(const struct fpesa_host *host, struct fpesa_ctx *ctx, const char *config_json,
                    void **state) {
    struct rec *g = calloc(1, sizeof(*g));
    const char *format = host->config(ctx, "format");

    (void)config_json;
    if (!g)
        return -1;
    g->rpc = (struct rpc){host, ctx, "records_get"};
    if (rpc_config_long(&g->rpc, "page_size", PAGE_SIZE_DEFAULT, 1, PAGE_SIZE_MAX, &g->page_size) <
        0)
        goto out_free;
    if (format && strcmp(format, "seed") == 0) {
        g->seed = true;
    } else if (format && strcmp(format, "json") != 0) {
        FPESA_LOG(&g->rpc, FPESA_LOG_ERROR, "records_get: config format \"%s\" is not json or seed",
                  format);
        goto out_free;
    }
    if (dbconn_init(&g->db, &g->rpc, "messages", true, setup, g) < 0)
        goto out_free;
    *state = g;
    return 0;

out_free:
    dbconn_fini(&g->db);
    free(g);
    return -1;
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

    snprintf(usec, sizeof(usec), "%lld", has ? (long long)t->usec : 0LL);
    snprintf(limit, sizeof(limit), "%ld", g->page_size);
    r = dbconn_run(&g->db, name, 3, vals);
    if (!r)
        return -1;
    if (!PQgetisnull(r, 0, 2)) {
        const char *pos = PQgetvalue(r, 0, 2);
        const char *colon = strchr(pos, ':');
        long long us = strtoll(pos, NULL, 10);

        if (colon && token_encode(us, colon + 1, tok, sizeof(tok)) == 0)
            snprintf(next, sizeof(next), "\"%s\"", tok);
    }
    /* The array is the database's JSON text, pasted as it is. */
    {
        const char *parts[] = {"{\"results\":",
                               PQgetvalue(r, 0, 0),
                               ",\"count\":",
                               PQgetvalue(r, 0, 1),
                               ",\"next\":",
                               next,
                               "}"};
        rpc_reply_parts(&g->rpc, m, parts, 7);
    }
    PQclear(r);
    return 0;
}

/* One request, for dbconn_serve. */
struct req {
    struct rec *g;
    const struct fpesa_message *m;
    const struct token *t;
    int has;
};

static int answer_req(void *arg) {
    const struct req *r = arg;

    return answer(r->g, r->m, r->t, r->has);
}

static void handle(void *state, const struct fpesa_message *m) {
    struct rec *g = state;
    json_t *env = rpc_envelope(&g->rpc, m);
    struct token t;
    char err[160];
    int has;

    if (!env)
        return;
    if (parse_args(json_object_get(env, "args"), &t, &has, err, sizeof(err)) < 0) {
        rpc_reply_error(&g->rpc, m, 400, err);
        goto out;
    }
    if (dbconn_serve(&g->db, has, answer_req, &(struct req){g, m, &t, has}) < 0)
        rpc_reply_error(&g->rpc, m, 503, "the record store is unavailable");
out:
    json_decref(env);
}

static int rec_batch(void *state, const struct fpesa_message *const *msgs, size_t n,
                     enum fpesa_result *results) {
    struct rec *g = state;

    return rpc_batch(&g->rpc, g, handle, msgs, n, results);
}

static void rec_fini(void *state) {
    struct rec *g = state;

    if (!g)
        return;
    dbconn_fini(&g->db);
    free(g);
}

FPESA_HANDLER_DEFINE("records_get: stored messages oldest first, a keyset on (received_at, id)",
                     rec_init, rec_batch, rec_fini)
