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
 * for up to REPLAY_WAIT_MS; a replica further behind, or away, leaves the
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
    const struct fpesa_host *host;
    struct fpesa_ctx *ctx;
    char table[STORE_TABLE_MAX + 1];
    bool original; /* compat fpesa-python: offset pages in the original's shape */
    PGconn *pg;
    time_t failed_at; /* last failed connect: no new attempt within a second */
    char *read_url;   /* the replica, or NULL */
    PGconn *rpg;      /* the replica's connection, or NULL */
    time_t rfailed_at;
    PGconn **use; /* the connection the request at hand reads from (&pg or &rpg) */
    unsigned long n_replica, n_primary; /* reads served by each, for the log */
};

/* How long a continued page waits for the replica to replay what the
 * primary had, before the primary answers it. */
#define REPLAY_WAIT_MS 1000

static int prepare(struct get *g, PGconn *conn, const char *name, const char *tmpl, int nparams) {
    char *sql = store_sql(tmpl, g->table);
    PGresult *r;
    int rc = 0;

    if (!sql)
        return -1;
    r = PQprepare(conn, name, sql, nparams, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        FPESA_LOG(g, FPESA_LOG_ERROR, "messages_get: cannot prepare %s: %s", name,
                  PQresultErrorMessage(r));
        rc = -1;
    }
    PQclear(r);
    free(sql);
    return rc;
}

static int open_db(struct get *g);

static int prepare_all(struct get *g, PGconn *conn) {
    if (prepare(g, conn, "keyset", sql_keyset, 2) < 0 ||
        prepare(g, conn, "keyset_contains", sql_keyset_contains, 3) < 0 ||
        prepare(g, conn, "one", sql_one, 1) < 0 || prepare(g, conn, "after", sql_after, 2) < 0 ||
        prepare(g, conn, "offset", g->original ? sql_offset_original : sql_offset, 3) < 0)
        return -1;
    return 0;
}

/* The replica's connection, like open_db's but without migrations (the
 * primary runs them; the replica replays them). */
static int open_replica(struct get *g) {
    char err[512];
    time_t now = time(NULL);

    if (g->rpg && PQstatus(g->rpg) == CONNECTION_OK)
        return 0;
    if (g->rpg) {
        PQfinish(g->rpg);
        g->rpg = NULL;
    }
    if (g->rfailed_at && now - g->rfailed_at < 1)
        return -1;
    g->rpg = store_connect(g->read_url, err, sizeof(err));
    if (!g->rpg || prepare_all(g, g->rpg) < 0) {
        if (g->rpg)
            FPESA_LOG(g, FPESA_LOG_WARN, "messages_get: replica not usable yet table=%s", g->table);
        else
            FPESA_LOG(g, FPESA_LOG_WARN, "messages_get: replica unavailable: %s", err);
        PQfinish(g->rpg);
        g->rpg = NULL;
        g->rfailed_at = now;
        return -1;
    }
    g->rfailed_at = 0;
    FPESA_LOG(g, FPESA_LOG_INFO, "messages_get: replica connected table=%s", g->table);
    return 0;
}

/* True when the replica has replayed everything the primary had written
 * when this was called (waiting up to REPLAY_WAIT_MS), or when the primary
 * cannot be asked. */
static bool replica_caught_up(struct get *g) {
    int r;

    if (open_db(g) < 0)
        return true;
    r = store_replica_caught_up(g->pg, g->rpg, REPLAY_WAIT_MS);
    if (r == -1) {
        PQfinish(g->rpg);
        g->rpg = NULL;
    }
    return r == 1 || r == -2;
}

/* Where the request at hand reads: the replica when there is one and it is
 * recent enough (continued is true for a request that continues from an
 * earlier answer), else the primary, else the replica as it is. */
static PGconn **pick(struct get *g, bool continued) {
    if (g->read_url && open_replica(g) == 0 && (!continued || replica_caught_up(g)) && g->rpg) {
        g->n_replica++;
        return &g->rpg;
    }
    if (open_db(g) == 0) {
        g->n_primary++;
        return &g->pg;
    }
    if (g->read_url && open_replica(g) == 0) {
        g->n_replica++;
        return &g->rpg;
    }
    return NULL;
}

static int open_db(struct get *g) {
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
        FPESA_LOG(g, FPESA_LOG_WARN, "messages_get: database unavailable: %s", err);
        goto out_fail;
    }
    if (store_migrate(g->pg, g->table, err, sizeof(err)) < 0) {
        FPESA_LOG(g, FPESA_LOG_ERROR, "messages_get: migration of table %s failed: %s", g->table,
                  err);
        goto out_fail;
    }
    {
        char name[STORE_TABLE_MAX + 16];

        snprintf(name, sizeof(name), "%s.contains", g->table);
        if (store_migrate_set(g->pg, name, contains_migrations,
                              sizeof(contains_migrations) / sizeof(contains_migrations[0]),
                              g->table, err, sizeof(err)) < 0) {
            FPESA_LOG(g, FPESA_LOG_ERROR, "messages_get: migration %s failed: %s", name, err);
            goto out_fail;
        }
    }
    if (prepare_all(g, g->pg) < 0)
        goto out_fail;
    g->failed_at = 0;
    FPESA_LOG(g, FPESA_LOG_INFO, "messages_get: database connected table=%s", g->table);
    return 0;

out_fail:
    PQfinish(g->pg);
    g->pg = NULL;
    g->failed_at = now;
    return -1;
}

static int get_init(const struct fpesa_host *host, struct fpesa_ctx *ctx, const char *config_json,
                    void **state) {
    struct get *g = calloc(1, sizeof(*g));
    const char *table = host->config(ctx, "table");
    const char *compat = host->config(ctx, "compat");

    (void)config_json;
    if (!g)
        return -1;
    g->host = host;
    g->ctx = ctx;
    if (compat && strcmp(compat, "fpesa-python") == 0) {
        g->original = true;
    } else if (compat && strcmp(compat, "none") != 0) {
        FPESA_LOG(g, FPESA_LOG_ERROR,
                  "messages_get: config compat \"%s\" is not none or fpesa-python", compat);
        free(g);
        return -1;
    }
    if (!table)
        table = "messages";
    if (!store_ident_is_valid(table)) {
        FPESA_LOG(g, FPESA_LOG_ERROR,
                  "messages_get: config table \"%s\" is not a plain identifier ([a-z_][a-z0-9_]*)",
                  table);
        free(g);
        return -1;
    }
    snprintf(g->table, sizeof(g->table), "%s", table);
    {
        const char *ru = host->config(ctx, "read_url");
        if (ru && *ru) {
            g->read_url = strdup(ru);
            if (!g->read_url) {
                free(g);
                return -1;
            }
            FPESA_LOG(g, FPESA_LOG_INFO, "messages_get: reading from a replica where it is recent");
        }
    }
    open_db(g);
    if (g->read_url)
        open_replica(g);
    *state = g;
    return 0;
}

static void reply_error(struct get *g, const struct fpesa_message *m, int code, const char *desc) {
    json_t *doc = json_pack("{s:{s:i,s:s}}", "error", "code", code, "description", desc);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

    if (text)
        g->host->reply(g->ctx, m, text, strlen(text), "application/json");
    free(text);
    json_decref(doc);
}

/* Runs a prepared statement; NULL (after logging) when it failed. */
static PGresult *run(struct get *g, const char *name, int n, const char *const *vals) {
    PGconn **conn = g->use ? g->use : &g->pg;
    PGresult *r = PQexecPrepared(*conn, name, n, vals, NULL, NULL, 0);

    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        return r;
    FPESA_LOG(g, FPESA_LOG_WARN, "messages_get: %s failed: %s", name,
              r ? PQresultErrorMessage(r) : PQerrorMessage(*conn));
    PQclear(r);
    if (PQstatus(*conn) != CONNECTION_OK) {
        PQfinish(*conn);
        *conn = NULL;
    }
    return NULL;
}

/* Answers with text pieces concatenated; -1 when out of memory. */
static int reply_parts(struct get *g, const struct fpesa_message *m, const char *const *parts,
                       size_t n) {
    size_t len = 0, w = 0;
    char *buf;

    for (size_t i = 0; i < n; i++)
        len += strlen(parts[i]);
    buf = malloc(len + 1);
    if (!buf)
        return -1;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(parts[i]);
        memcpy(buf + w, parts[i], l);
        w += l;
    }
    buf[w] = '\0';
    g->host->reply(g->ctx, m, buf, w, "application/json");
    free(buf);
    return 0;
}

static int answer_keyset(struct get *g, const struct fpesa_message *m, const struct msgq *q) {
    char before[24], limit[24], cur[CURSOR_MAX + 3] = "null";
    const char *vals[3] = {before, limit, q->contains};
    PGresult *r;

    snprintf(before, sizeof(before), "%" PRId64, q->before);
    snprintf(limit, sizeof(limit), "%ld", q->limit);
    r = q->contains[0] ? run(g, "keyset_contains", 3, vals) : run(g, "keyset", 2, vals);
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
        reply_parts(g, m, parts, 5);
    }
    PQclear(r);
    return 0;
}

/* GET /messages/{id}: the message, or 404. */
static int answer_one(struct get *g, const struct fpesa_message *m, const char *id) {
    const char *vals[1] = {id};
    PGresult *r = run(g, "one", 1, vals);

    if (!r)
        return -1;
    if (PQgetisnull(r, 0, 0)) {
        reply_error(g, m, 404, "no stored message has this id");
    } else {
        const char *parts[] = {PQgetvalue(r, 0, 0)};
        reply_parts(g, m, parts, 1);
    }
    PQclear(r);
    return 0;
}

static int answer_after(struct get *g, const struct fpesa_message *m, const struct msgq *q) {
    char limit[24];
    const char *vals[2] = {q->after, limit};
    PGresult *r;

    snprintf(limit, sizeof(limit), "%ld", q->limit);
    r = run(g, "after", 2, vals);
    if (!r)
        return -1;
    if (strcmp(PQgetvalue(r, 0, 1), "0") == 0) {
        reply_error(g, m, 404, "after: no stored message has this id");
    } else {
        /* "next" is the id to ask after for the following page, when this
         * one is full (a JSON string built by the database). */
        const char *next = PQgetisnull(r, 0, 2) ? "null" : PQgetvalue(r, 0, 2);
        const char *parts[] = {"{\"messages\":", PQgetvalue(r, 0, 0), ",\"next\":", next, "}"};
        reply_parts(g, m, parts, 5);
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
    r = run(g, "offset", 3, vals);
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
        reply_parts(g, m, parts, 4);
    }
    PQclear(r);
    return 0;
}

static void handle(struct get *g, const struct fpesa_message *m) {
    json_error_t jerr;
    json_t *env = json_loadb(m->body, m->len, 0, &jerr);
    struct msgq q;
    const char *one;
    char err[256];
    int rc;

    if (!env || !json_is_object(env)) {
        reply_error(g, m, 400, "the request is not a JSON envelope");
        goto out;
    }
    one = json_string_value(json_object_get(json_object_get(env, "params"), "id"));
    if (one) {
        const json_t *args = json_object_get(env, "args");

        if (!*one || strlen(one) > MSGQ_ID_MAX) {
            reply_error(g, m, 400, "the id must be 1 to 200 characters");
            goto out;
        }
        if (json_object_size(args) > 0) {
            reply_error(g, m, 400, "GET /messages/{id} takes no query arguments");
            goto out;
        }
    } else if (msgq_parse(json_object_get(env, "args"), &q, err, sizeof(err)) < 0) {
        reply_error(g, m, 400, err);
        goto out;
    }
    /* A connection that broke since the last request (a database restart)
     * is only noticed when a query fails: then reconnect and try once more,
     * so that a restart costs the client nothing. */
    rc = -1;
    for (int attempt = 0; attempt < 2 && rc < 0; attempt++) {
        /* A request continues from an earlier answer when it names where
         * to go on from. */
        bool continued = one || q.mode == MSGQ_AFTER ||
                         (q.mode == MSGQ_KEYSET && q.before != INT64_MAX) ||
                         (q.mode != MSGQ_KEYSET && q.frozen >= 0);
        g->use = pick(g, continued);
        if (!g->use)
            break;
        rc = one                     ? answer_one(g, m, one)
             : q.mode == MSGQ_KEYSET ? answer_keyset(g, m, &q)
             : q.mode == MSGQ_AFTER  ? answer_after(g, m, &q)
                                     : answer_offset(g, m, &q);
        if (*g->use)
            break; /* the connection is fine: the failure was the query's own */
    }
    if (rc < 0)
        reply_error(g, m, 503, "the message store is unavailable");
out:
    json_decref(env);
}

static int get_batch(void *state, const struct fpesa_message *const *msgs, size_t n,
                     enum fpesa_result *results) {
    struct get *g = state;

    for (size_t i = 0; i < n; i++) {
        if (!msgs[i]->reply_to) {
            FPESA_LOG(g, FPESA_LOG_WARN, "messages_get: request without reply_to id=%s",
                      msgs[i]->message_id ? msgs[i]->message_id : "-");
            results[i] = FPESA_REJECT;
            continue;
        }
        handle(g, msgs[i]);
        results[i] = FPESA_OK;
    }
    return 0;
}

static void get_fini(void *state) {
    struct get *g = state;

    if (!g)
        return;
    if (g->read_url)
        FPESA_LOG(g, FPESA_LOG_INFO, "messages_get: reads replica=%lu primary=%lu", g->n_replica,
                  g->n_primary);
    PQfinish(g->pg);
    PQfinish(g->rpg);
    free(g->read_url);
    free(g);
}

FPESA_HANDLER_DEFINE("messages_get: pages of stored messages (keyset and offset)", get_init,
                     get_batch, get_fini)
