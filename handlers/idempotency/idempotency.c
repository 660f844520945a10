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
#include <fpesa/handler.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/dbconn.h"
#include "../lib/rpc.h"
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
    struct rpc rpc;
    struct dbconn db;
    long ttl_s;
    char *cleanup; /* SQL with the table */
    time_t cleaned_at;
};

/* A new connection: the table's migrations, the claim prepared. */
static int setup(void *owner, PGconn *conn, bool primary) {
    struct idem *g = owner;
    char err[512];

    (void)primary; /* no replica: always the primary */
    if (store_migrate_set(conn, g->db.table, migrations, sizeof(migrations) / sizeof(migrations[0]),
                          g->db.table, err, sizeof(err)) < 0) {
        FPESA_LOG(&g->rpc, FPESA_LOG_ERROR, "idempotency: migration of table %s failed: %s",
                  g->db.table, err);
        return -1;
    }
    return dbconn_prepare(&g->db, conn, "claim", claim_sql, 4);
}

static int idem_init(const struct fpesa_host *host, struct fpesa_ctx *ctx, const char *config_json,
                     void **state) {
    struct idem *g = calloc(1, sizeof(*g));

    (void)config_json;
    if (!g)
        return -1;
    g->rpc = (struct rpc){host, ctx, "idempotency"};
    if (rpc_config_long(&g->rpc, "ttl_s", TTL_DEFAULT_S, 1, TTL_MAX_S, &g->ttl_s) < 0)
        goto out_free;
    /* The table is checked before its name goes into SQL. */
    if (dbconn_init(&g->db, &g->rpc, "idempotency_keys", false, setup, g) < 0)
        goto out_free;
    g->cleanup = store_sql(cleanup_sql, g->db.table);
    if (!g->cleanup)
        goto out_free;
    *state = g;
    return 0;

out_free:
    dbconn_fini(&g->db);
    free(g);
    return -1;
}

/* Claims (scope, key) for fingerprint: 1 new, 0 the same, 2 another
 * fingerprint holds it, -1 the database failed. */
static int claim(struct idem *g, const char *scope, const char *key, const char *fp) {
    char ttl[24];
    const char *vals[4] = {scope, key, fp, ttl};
    PGresult *r;
    int rc;

    snprintf(ttl, sizeof(ttl), "%ld", g->ttl_s);
    r = dbconn_run(&g->db, "claim", 4, vals);
    if (!r)
        return -1;
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
    if (store_exec_params(g->db.pg, g->cleanup, 1, vals, err, sizeof(err)) < 0)
        FPESA_LOG(&g->rpc, FPESA_LOG_WARN, "idempotency: cleanup failed: %s", err);
}

/* One claim, for dbconn_serve: *rc as claim() answers. */
struct req {
    struct idem *g;
    const char *scope, *key, *fp;
    int rc;
};

static int claim_req(void *arg) {
    struct req *r = arg;

    r->rc = claim(r->g, r->scope, r->key, r->fp);
    return r->rc < 0 ? -1 : 0;
}

static void handle(void *state, const struct fpesa_message *m) {
    struct idem *g = state;
    json_t *req = rpc_envelope(&g->rpc, m);
    struct req r = {g, json_string_value(json_object_get(req, "scope")),
                    json_string_value(json_object_get(req, "key")),
                    json_string_value(json_object_get(req, "fingerprint")), -1};

    if (!req)
        return;
    if (!r.scope || !r.key || !r.fp) {
        rpc_reply_error(&g->rpc, m, 400, "a claim is {\"scope\", \"key\", \"fingerprint\"}");
        goto out;
    }
    if (dbconn_serve(&g->db, false, claim_req, &r) < 0) {
        rpc_reply_error(&g->rpc, m, 503, "the idempotency key store is unavailable");
    } else if (r.rc == 2) {
        char desc[400];

        snprintf(desc, sizeof(desc),
                 "Idempotency-Key \"%.200s\" was already used with a different request (a key is "
                 "remembered for %ld s); nothing was sent",
                 r.key, g->ttl_s);
        rpc_reply_error(&g->rpc, m, 409, desc);
    } else {
        rpc_reply_json(&g->rpc, m, json_pack("{s:s}", "claim", r.rc == 1 ? "new" : "same"));
    }
out:
    json_decref(req);
}

static int idem_batch(void *state, const struct fpesa_message *const *msgs, size_t n,
                      enum fpesa_result *results) {
    struct idem *g = state;

    rpc_batch(&g->rpc, g, handle, msgs, n, results);
    if (g->db.pg)
        cleanup(g);
    return 0;
}

static void idem_fini(void *state) {
    struct idem *g = state;

    if (!g)
        return;
    dbconn_fini(&g->db);
    free(g->cleanup);
    free(g);
}

FPESA_HANDLER_DEFINE("idempotency: Idempotency-Key claims, one row per key in PostgreSQL",
                     idem_init, idem_batch, idem_fini)
