/* idempotency: the claim worker behind the Idempotency-Key contract.
 *
 * The mapper (with "idempotency: {exchange: ...}" in the YAML) sends every
 * request that carries an Idempotency-Key here first, as an rpc claim
 * {"scope": <endpoint exchange>, "key": <key>, "fingerprint": <SHA-256 of
 * the message>}, and puts the message on the bus only when the claim is
 * answered 200. One row per (scope, key) in PostgreSQL decides, whatever the
 * number of mappers and however concurrent the requests (the primary key
 * serialises them; INSERT ... ON CONFLICT DO UPDATE returns the row that
 * won):
 *   a new key               -> 200 {"claim": "new"}, the fingerprint is kept
 *   the same key and print  -> 200 {"claim": "same"}: the same request again
 *   another fingerprint     -> 409 {"error": {...}}: nothing is sent
 * A key is remembered for ttl_s seconds from its first claim (default 24
 * hours); after that it is new again. Expired rows are deleted about once a
 * minute. A database that cannot be reached answers 503 (the mapper then
 * sends nothing). Every claim is answered and acknowledged.
 *
 * config:
 *   table: idempotency_keys   the table (a plain identifier)
 *   ttl_s: 86400              how long a key is remembered, in seconds
 */
#include <errno.h>
#include <fpesa/handler.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/store.h"

#define TTL_DEFAULT_S 86400L
#define TTL_MAX_S (366L * 86400)
#define CLEANUP_EVERY_S 60

static const char *const migrations[] = {
    "CREATE TABLE {t} ("
    " scope text NOT NULL,"
    " key text NOT NULL,"
    " fingerprint text NOT NULL,"
    " created_at timestamptz NOT NULL DEFAULT now(),"
    " PRIMARY KEY (scope, key))",
    "CREATE INDEX {t}_created_at_idx ON {t} (created_at)",
};

/* An expired key is claimed afresh; a live one keeps its fingerprint. The
 * row is always returned, also when another transaction inserted it a
 * moment ago. */
static const char claim_sql[] =
    "INSERT INTO {t} AS k (scope, key, fingerprint) VALUES ($1, $2, $3)"
    " ON CONFLICT (scope, key) DO UPDATE SET"
    "  fingerprint = CASE WHEN k.created_at < now() - $4::bigint * interval '1 second'"
    "   THEN EXCLUDED.fingerprint ELSE k.fingerprint END,"
    "  created_at = CASE WHEN k.created_at < now() - $4::bigint * interval '1 second'"
    "   THEN now() ELSE k.created_at END"
    " RETURNING k.fingerprint, (k.xmax = 0) AS inserted";

static const char cleanup_sql[] =
    "DELETE FROM {t} WHERE created_at < now() - $1::bigint * interval '1 second'";

struct idem {
    const struct fpesa_host *host;
    struct fpesa_ctx *ctx;
    char table[STORE_TABLE_MAX + 1];
    long ttl_s;
    char *claim, *cleanup; /* SQL with the table */
    PGconn *pg;
    time_t failed_at, cleaned_at;
};

#define LOG(g, lvl, ...) (g)->host->log((g)->ctx, (lvl), __VA_ARGS__)

static int open_db(struct idem *g) {
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
        LOG(g, FPESA_LOG_WARN, "idempotency: database unavailable: %s", err);
        goto out_fail;
    }
    if (store_migrate_set(g->pg, g->table, migrations, sizeof(migrations) / sizeof(migrations[0]),
                          g->table, err, sizeof(err)) < 0) {
        LOG(g, FPESA_LOG_ERROR, "idempotency: migration of table %s failed: %s", g->table, err);
        goto out_fail;
    }
    g->failed_at = 0;
    LOG(g, FPESA_LOG_INFO, "idempotency: database connected table=%s ttl_s=%ld", g->table,
        g->ttl_s);
    return 0;

out_fail:
    PQfinish(g->pg);
    g->pg = NULL;
    g->failed_at = now;
    return -1;
}

static int idem_init(const struct fpesa_host *host, struct fpesa_ctx *ctx, const char *config_json,
                     void **state) {
    struct idem *g = calloc(1, sizeof(*g));
    const char *table = host->config(ctx, "table");
    const char *ttl = host->config(ctx, "ttl_s");

    (void)config_json;
    if (!g)
        return -1;
    g->host = host;
    g->ctx = ctx;
    if (!table)
        table = "idempotency_keys";
    if (!store_ident_is_valid(table)) {
        LOG(g, FPESA_LOG_ERROR,
            "idempotency: config table \"%s\" is not a plain identifier ([a-z_][a-z0-9_]*)", table);
        goto out_free;
    }
    snprintf(g->table, sizeof(g->table), "%s", table);
    g->ttl_s = TTL_DEFAULT_S;
    if (ttl) {
        char *end;
        long v;

        errno = 0;
        v = strtol(ttl, &end, 10);
        if (errno || end == ttl || *end || v < 1 || v > TTL_MAX_S) {
            LOG(g, FPESA_LOG_ERROR, "idempotency: config ttl_s \"%s\" is not 1 to %ld", ttl,
                TTL_MAX_S);
            goto out_free;
        }
        g->ttl_s = v;
    }
    g->claim = store_sql(claim_sql, g->table);
    g->cleanup = store_sql(cleanup_sql, g->table);
    if (!g->claim || !g->cleanup)
        goto out_free;
    open_db(g);
    *state = g;
    return 0;

out_free:
    free(g->claim);
    free(g->cleanup);
    free(g);
    return -1;
}

static void answer(struct idem *g, const struct fpesa_message *m, json_t *doc) {
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

    if (!text || g->host->reply(g->ctx, m, text, strlen(text), "application/json") < 0)
        LOG(g, FPESA_LOG_WARN, "idempotency: cannot answer id=%s",
            m->message_id ? m->message_id : "-");
    free(text);
    json_decref(doc);
}

static void answer_error(struct idem *g, const struct fpesa_message *m, int code,
                         const char *desc) {
    answer(g, m, json_pack("{s:{s:i,s:s}}", "error", "code", code, "description", desc));
}

/* Claims (scope, key) for fingerprint: 1 new, 0 the same, 2 another
 * fingerprint holds it, -1 the database failed. */
static int claim(struct idem *g, const char *scope, const char *key, const char *fp) {
    char ttl[24];
    const char *vals[4] = {scope, key, fp, ttl};
    PGresult *r;
    int rc;

    snprintf(ttl, sizeof(ttl), "%ld", g->ttl_s);
    r = PQexecParams(g->pg, g->claim, 4, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        LOG(g, FPESA_LOG_WARN, "idempotency: claim failed: %s",
            r ? PQresultErrorMessage(r) : PQerrorMessage(g->pg));
        PQclear(r);
        if (PQstatus(g->pg) != CONNECTION_OK) {
            PQfinish(g->pg);
            g->pg = NULL;
        }
        return -1;
    }
    if (strcmp(PQgetvalue(r, 0, 0), fp) != 0)
        rc = 2;
    else
        rc = strcmp(PQgetvalue(r, 0, 1), "t") == 0 ? 1 : 0;
    PQclear(r);
    return rc;
}

static void cleanup(struct idem *g) {
    char ttl[24], err[256];
    const char *vals[1] = {ttl};
    time_t now = time(NULL);

    if (now - g->cleaned_at < CLEANUP_EVERY_S)
        return;
    g->cleaned_at = now;
    snprintf(ttl, sizeof(ttl), "%ld", g->ttl_s);
    if (store_exec_params(g->pg, g->cleanup, 1, vals, err, sizeof(err)) < 0)
        LOG(g, FPESA_LOG_WARN, "idempotency: cleanup failed: %s", err);
}

static void handle(struct idem *g, const struct fpesa_message *m) {
    json_t *req = json_loadb(m->body, m->len, 0, NULL);
    const char *scope = json_string_value(json_object_get(req, "scope"));
    const char *key = json_string_value(json_object_get(req, "key"));
    const char *fp = json_string_value(json_object_get(req, "fingerprint"));
    int rc = -1;

    if (!scope || !key || !fp) {
        answer_error(g, m, 400, "a claim is {\"scope\", \"key\", \"fingerprint\"}");
        goto out;
    }
    /* A connection broken since the last claim is noticed when the query
     * fails: reconnect and try once more. */
    for (int attempt = 0; attempt < 2 && rc < 0; attempt++) {
        if (open_db(g) < 0)
            break;
        rc = claim(g, scope, key, fp);
        if (g->pg)
            break;
    }
    if (rc < 0) {
        answer_error(g, m, 503, "the idempotency key store is unavailable");
    } else if (rc == 2) {
        char desc[400];

        snprintf(desc, sizeof(desc),
                 "Idempotency-Key \"%.200s\" was already used with a different request (a key is "
                 "remembered for %ld s); nothing was sent",
                 key, g->ttl_s);
        answer_error(g, m, 409, desc);
    } else {
        answer(g, m, json_pack("{s:s}", "claim", rc == 1 ? "new" : "same"));
    }
out:
    json_decref(req);
}

static int idem_batch(void *state, const struct fpesa_message *const *msgs, size_t n,
                      enum fpesa_result *results) {
    struct idem *g = state;

    for (size_t i = 0; i < n; i++) {
        if (!msgs[i]->reply_to) {
            LOG(g, FPESA_LOG_WARN, "idempotency: claim without reply_to id=%s",
                msgs[i]->message_id ? msgs[i]->message_id : "-");
            results[i] = FPESA_REJECT;
            continue;
        }
        handle(g, msgs[i]);
        results[i] = FPESA_OK;
    }
    if (g->pg)
        cleanup(g);
    return 0;
}

static void idem_fini(void *state) {
    struct idem *g = state;

    if (!g)
        return;
    PQfinish(g->pg);
    free(g->claim);
    free(g->cleanup);
    free(g);
}

FPESA_HANDLER_DEFINE("idempotency: Idempotency-Key claims, one row per key in PostgreSQL",
                     idem_init, idem_batch, idem_fini)
