/* messages_get: answers the rpc requests of "GET /messages/" from
 * PostgreSQL (the contracts are in query.h).
 *
 * Every query is a prepared statement, and PostgreSQL builds the JSON array
 * of the page itself (json_agg), so no row is parsed here: the answer is the
 * database's text with a few fields around it. The keyset query walks the
 * UNIQUE index on seq backwards from the cursor, so a page costs the same at
 * any depth. Errors are answered as {"error":{"code","description"}}: 400 for
 * bad arguments or a body that is not an envelope, 404 for an unknown
 * `after` id, 503 when the database is unavailable. Every request is
 * answered and acknowledged (FPESA_OK): the caller is waiting on a timeout,
 * so a retry later would be an answer nobody reads.
 *
 * GET /messages/{id} (the same plugin on that route's queue: the envelope's
 * params.id) answers the one message {"id", "received_at", "data"}, or 404.
 *
 * ?contains= filters the keyset pages by JSONB containment; a GIN index on
 * data (jsonb_path_ops, this plugin's own versioned migration, name
 * "<table>.contains") serves it.
 *
 * Reads from a streaming replica (config read_url, or the file's
 * database.read_url): a first page is read there as it is, a little behind
 * the primary at worst. A request that continues from something the client
 * already read (a cursor, an after id, a paginationId, one message by id)
 * must see at least what the primary had committed when that was read, or a
 * page would skip the rows the replica has not replayed yet. So the primary
 * is asked for its WAL insert position (cheap, no table touched) and the
 * replica is used once its replay position has reached it, which is waited
 * for up to DBCONN_REPLAY_WAIT_MS; a replica further behind, or away, leaves the
 * request to the primary. With the primary away, the replica answers as it
 * is: the best there is.
 *
 * config: { table: messages, compat: none | fpesa-python, read_url: URL }
 *   compat: fpesa-python answers offset pages in the original fpesa's shape:
 *   {"paginationId": <integer>, "offset", "limit", "total", "messages": [the
 *   stored objects]}. The handler host passes the file's top-level compat
 *   when the handler's config does not name one.
 */
#include <fpesa/handler.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/dbconn.h"
#include "../lib/rpc.h"
#include "../lib/store.h"
#include "query.h"

#define ROW_JSON "json_build_object('id', id, 'received_at', received_at, 'data', data)"

static const char *const sql_keyset =
    "WITH page AS (SELECT seq, id, received_at, data FROM {t} WHERE seq < $1"
    " ORDER BY seq DESC LIMIT $2 + 1),"
    " shown AS (SELECT * FROM page ORDER BY seq DESC LIMIT $2)"
    " SELECT coalesce((SELECT json_agg(" ROW_JSON " ORDER BY seq DESC) FROM shown), '[]'),"
    " CASE WHEN (SELECT count(*) FROM page) > $2 THEN (SELECT min(seq) FROM shown) END";

/* The same page with a containment filter ($3, JSON text). */
static const char *const sql_keyset_contains =
    "WITH page AS (SELECT seq, id, received_at, data FROM {t} WHERE seq < $1 AND data @> $3::jsonb"
    " ORDER BY seq DESC LIMIT $2 + 1),"
    " shown AS (SELECT * FROM page ORDER BY seq DESC LIMIT $2)"
    " SELECT coalesce((SELECT json_agg(" ROW_JSON " ORDER BY seq DESC) FROM shown), '[]'),"
    " CASE WHEN (SELECT count(*) FROM page) > $2 THEN (SELECT min(seq) FROM shown) END";

static const char *const sql_one = "SELECT (SELECT " ROW_JSON " FROM {t} WHERE id = $1)";

/* The index of the containment filter, versioned apart from the table's own
 * migrations (schema_migrations name "<table>.contains"). */
static const char *const contains_migrations[] = {
    "CREATE INDEX IF NOT EXISTS {t}_data_path_idx ON {t} USING gin (data jsonb_path_ops)",
};

static const char *const sql_after =
    "WITH a AS (SELECT seq FROM {t} WHERE id = $1),"
    " page AS (SELECT seq, id, received_at, data FROM {t} WHERE seq > (SELECT seq FROM a)"
    " ORDER BY seq LIMIT $2)"
    " SELECT coalesce((SELECT json_agg(" ROW_JSON " ORDER BY seq) FROM page), '[]'),"
    " (SELECT count(*) FROM a),"
    " CASE WHEN (SELECT count(*) FROM page) >= $2"
    "  THEN (SELECT to_json(id) FROM page ORDER BY seq DESC LIMIT 1) END";

/* The offset page seeks on pos (store.h): the view frozen at position $1
 * (-1: the newest), the page below $1 - offset. min and max come from the
 * pos index, so neither the table's size nor the offset costs anything.
 * A paginationId beyond the newest message counts only what exists, and an
 * empty store answers paginationId 0, as the original fpesa did. */
#define SQL_OFFSET(ROW)                                                                            \
    "WITH b AS (SELECT coalesce(min(pos), 1) AS lo, coalesce(max(pos), 0) AS hi FROM {t}),"        \
    " f AS (SELECT lo, hi, CASE WHEN hi = 0 THEN 0 WHEN $1::bigint < 0 THEN hi ELSE $1::bigint"    \
    "  END AS pid, CASE WHEN $1::bigint < 0 THEN hi ELSE least($1::bigint, hi) END AS p FROM b)"   \
    " SELECT (SELECT pid FROM f), (SELECT greatest(p - lo + 1, 0) FROM f),"                        \
    " coalesce((SELECT json_agg(" ROW " ORDER BY pos DESC) FROM"                                   \
    "  (SELECT pos, id, received_at, data FROM {t} WHERE pos <= (SELECT p FROM f) - $2::bigint"    \
    "   ORDER BY pos DESC LIMIT $3) x), '[]')"

static const char *const sql_offset = SQL_OFFSET(ROW_JSON);

/* The original fpesa's shape: the stored objects themselves. */
static const char *const sql_offset_original = SQL_OFFSET("data");

struct get {
    struct rpc rpc;
    struct dbconn db;
    bool original; /* compat fpesa-python: offset pages in the original's shape */
};

/* A new connection: the table's migrations and the containment index on
 * the primary, the prepared statements on both. */
static int setup(void *owner, PGconn *conn, bool primary) {
    struct get *g = owner;
    char err[512];

    if (primary) {
        char name[STORE_TABLE_MAX + 16];

        if (store_migrate(conn, g->db.table, err, sizeof(err)) < 0) {
            FPESA_LOG(&g->rpc, FPESA_LOG_ERROR, "messages_get: migration of table %s failed: %s",
                      g->db.table, err);
            return -1;
        }
        snprintf(name, sizeof(name), "%s.contains", g->db.table);
        if (store_migrate_set(conn, name, contains_migrations,
                              sizeof(contains_migrations) / sizeof(contains_migrations[0]),
                              g->db.table, err, sizeof(err)) < 0) {
            FPESA_LOG(&g->rpc, FPESA_LOG_ERROR, "messages_get: migration %s failed: %s", name, err);
            return -1;
        }
    }
    if (dbconn_prepare(&g->db, conn, "keyset", sql_keyset, 2) < 0 ||
        dbconn_prepare(&g->db, conn, "keyset_contains", sql_keyset_contains, 3) < 0 ||
        dbconn_prepare(&g->db, conn, "one", sql_one, 1) < 0 ||
        dbconn_prepare(&g->db, conn, "after", sql_after, 2) < 0 ||
        dbconn_prepare(&g->db, conn, "offset", g->original ? sql_offset_original : sql_offset, 3) <
            0)
        return -1;
    return 0;
}

static int get_init(const struct fpesa_host *host, struct fpesa_ctx *ctx, const char *config_json,
                    void **state) {
    struct get *g = calloc(1, sizeof(*g));
    const char *compat = host->config(ctx, "compat");

    (void)config_json;
    if (!g)
        return -1;
    g->rpc = (struct rpc){host, ctx, "messages_get"};
    if (compat && strcmp(compat, "fpesa-python") == 0) {
        g->original = true;
    } else if (compat && strcmp(compat, "none") != 0) {
        FPESA_LOG(&g->rpc, FPESA_LOG_ERROR,
                  "messages_get: config compat \"%s\" is not none or fpesa-python", compat);
        free(g);
        return -1;
    }
    if (dbconn_init(&g->db, &g->rpc, "messages", true, setup, g) < 0) {
        dbconn_fini(&g->db);
        free(g);
        return -1;
    }
    *state = g;
    return 0;
}

static int answer_keyset(struct get *g, const struct fpesa_message *m, const struct msgq *q) {
    char before[24], limit[24], cur[CURSOR_MAX + 3] = "null";
    const char *vals[3] = {before, limit, q->contains};
    PGresult *r;

    snprintf(before, sizeof(before), "%" PRId64, q->before);
    snprintf(limit, sizeof(limit), "%ld", q->limit);
    r = q->contains[0] ? dbconn_run(&g->db, "keyset_contains", 3, vals)
                       : dbconn_run(&g->db, "keyset", 2, vals);
    if (!r)
        return -1;
    if (!PQgetisnull(r, 0, 1)) {
        char enc[CURSOR_MAX + 1];
        long long next = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
        if (cursor_encode('b', next, enc, sizeof(enc)) == 0)
            snprintf(cur, sizeof(cur), "\"%s\"", enc);
    }
    {
        const char *parts[] = {"{\"messages\":", PQgetvalue(r, 0, 0), ",\"next\":", cur, "}"};
        rpc_reply_parts(&g->rpc, m, parts, 5);
    }
    PQclear(r);
    return 0;
}

/* GET /messages/{id}: the message, or 404. */
static int answer_one(struct get *g, const struct fpesa_message *m, const char *id) {
    const char *vals[1] = {id};
    PGresult *r = dbconn_run(&g->db, "one", 1, vals);

    if (!r)
        return -1;
    if (PQgetisnull(r, 0, 0)) {
        rpc_reply_error(&g->rpc, m, 404, "no stored message has this id");
    } else {
        const char *parts[] = {PQgetvalue(r, 0, 0)};
        rpc_reply_parts(&g->rpc, m, parts, 1);
    }
    PQclear(r);
    return 0;
}

static int answer_after(struct get *g, const struct fpesa_message *m, const struct msgq *q) {
    char limit[24];
    const char *vals[2] = {q->after, limit};
    PGresult *r;

    snprintf(limit, sizeof(limit), "%ld", q->limit);
    r = dbconn_run(&g->db, "after", 2, vals);
    if (!r)
        return -1;
    if (strcmp(PQgetvalue(r, 0, 1), "0") == 0) {
        rpc_reply_error(&g->rpc, m, 404, "after: no stored message has this id");
    } else {
        /* "next" is the id to ask after for the following page, when this
         * one is full (a JSON string built by the database). */
        const char *next = PQgetisnull(r, 0, 2) ? "null" : PQgetvalue(r, 0, 2);
        const char *parts[] = {"{\"messages\":", PQgetvalue(r, 0, 0), ",\"next\":", next, "}"};
        rpc_reply_parts(&g->rpc, m, parts, 5);
    }
    PQclear(r);
    return 0;
}

static int answer_offset(struct get *g, const struct fpesa_message *m, const struct msgq *q) {
    char frozen[24], off[24], limit[24], pid[CURSOR_MAX + 3], head[200];
    const char *vals[3] = {frozen, off, limit};
    PGresult *r;

    snprintf(frozen, sizeof(frozen), "%" PRId64, q->frozen);
    snprintf(off, sizeof(off), "%lld", q->offset);
    snprintf(limit, sizeof(limit), "%ld", q->limit);
    r = dbconn_run(&g->db, "offset", 3, vals);
    if (!r)
        return -1;
    if (g->original) {
        /* The original's member order: paginationId, offset, limit, total. */
        snprintf(head, sizeof(head),
                 "{\"paginationId\":%s,\"offset\":%lld,\"limit\":%ld,\"total\":%s,",
                 PQgetvalue(r, 0, 0), q->offset, q->limit, PQgetvalue(r, 0, 1));
    } else {
        char enc[CURSOR_MAX + 1];
        if (cursor_encode('p', strtoll(PQgetvalue(r, 0, 0), NULL, 10), enc, sizeof(enc)) < 0) {
            PQclear(r);
            return -1;
        }
        snprintf(pid, sizeof(pid), "\"%s\"", enc);
        snprintf(head, sizeof(head),
                 "{\"offset\":%lld,\"limit\":%ld,\"paginationId\":%s,\"total\":%s,", q->offset,
                 q->limit, pid, PQgetvalue(r, 0, 1));
    }
    {
        const char *parts[] = {head, "\"messages\":", PQgetvalue(r, 0, 2), "}"};
        rpc_reply_parts(&g->rpc, m, parts, 4);
    }
    PQclear(r);
    return 0;
}

/* One request, for dbconn_serve. */
struct req {
    struct get *g;
    const struct fpesa_message *m;
    const struct msgq *q;
    const char *one; /* GET /messages/{id}: the id, else NULL */
};

static int answer(void *arg) {
    const struct req *r = arg;

    return r->one                      ? answer_one(r->g, r->m, r->one)
           : r->q->mode == MSGQ_KEYSET ? answer_keyset(r->g, r->m, r->q)
           : r->q->mode == MSGQ_AFTER  ? answer_after(r->g, r->m, r->q)
                                       : answer_offset(r->g, r->m, r->q);
}

static void handle(void *state, const struct fpesa_message *m) {
    struct get *g = state;
    json_t *env = rpc_envelope(&g->rpc, m);
    struct msgq q = {0};
    const char *one;
    char err[256];
    bool continued;

    if (!env)
        return;
    one = json_string_value(json_object_get(json_object_get(env, "params"), "id"));
    if (one) {
        const json_t *args = json_object_get(env, "args");

        if (!*one || strlen(one) > MSGQ_ID_MAX) {
            rpc_reply_error(&g->rpc, m, 400, "the id must be 1 to 200 characters");
            goto out;
        }
        if (json_object_size(args) > 0) {
            rpc_reply_error(&g->rpc, m, 400, "GET /messages/{id} takes no query arguments");
            goto out;
        }
    } else if (msgq_parse(json_object_get(env, "args"), &q, err, sizeof(err)) < 0) {
        rpc_reply_error(&g->rpc, m, 400, err);
        goto out;
    }
    /* A request continues from an earlier answer when it names where to go
     * on from (dbconn.h: the replica must have caught up for it). */
    continued = one || q.mode == MSGQ_AFTER || (q.mode == MSGQ_KEYSET && q.before != INT64_MAX) ||
                (q.mode != MSGQ_KEYSET && q.frozen >= 0);
    if (dbconn_serve(&g->db, continued, answer, &(struct req){g, m, &q, one}) < 0)
        rpc_reply_error(&g->rpc, m, 503, "the message store is unavailable");
out:
    json_decref(env);
}

static int get_batch(void *state, const struct fpesa_message *const *msgs, size_t n,
                     enum fpesa_result *results) {
    struct get *g = state;

    return rpc_batch(&g->rpc, g, handle, msgs, n, results);
}

static void get_fini(void *state) {
    struct get *g = state;

    if (!g)
        return;
    dbconn_fini(&g->db);
    free(g);
}

FPESA_HANDLER_DEFINE("messages_get: pages of stored messages (keyset and offset)", get_init,
                     get_batch, get_fini)
