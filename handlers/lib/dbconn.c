/* The database half of the rpc plugin skeleton (dbconn.h): the primary and
 * replica connections, reopened when they break, and the retry-once loop. */
#include "dbconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Opens *conn to url when it is not open, at most one attempt a second
 * (*failed_at), and runs setup on it. 0 or -1 (logged). */
static int reopen(struct dbconn *d, PGconn **conn, time_t *failed_at, const char *url,
                  bool primary) {
    const char *what = primary ? "database" : "replica";
    char err[512];
    time_t now = time(NULL);

    if (*conn && PQstatus(*conn) == CONNECTION_OK)
        return 0;
    PQfinish(*conn);
    *conn = NULL;
    if (*failed_at && now - *failed_at < 1)
        return -1;
    *conn = store_connect(url, err, sizeof(err));
    if (!*conn) {
        FPESA_LOG(d->rpc, FPESA_LOG_WARN, "%s: %s unavailable: %s", d->rpc->name, what, err);
        goto out_fail;
    }
    if (d->setup(d->owner, *conn, primary) < 0) {
        FPESA_LOG(d->rpc, FPESA_LOG_WARN, "%s: %s not usable yet table=%s", d->rpc->name, what,
                  d->table);
        goto out_fail;
    }
    *failed_at = 0;
    FPESA_LOG(d->rpc, FPESA_LOG_INFO, "%s: %s connected table=%s", d->rpc->name, what, d->table);
    return 0;

out_fail:
    PQfinish(*conn);
    *conn = NULL;
    *failed_at = now;
    return -1;
}

int dbconn_open(struct dbconn *d) {
    return reopen(d, &d->pg, &d->failed_at, d->rpc->host->database_url(d->rpc->ctx), true);
}

static int open_replica(struct dbconn *d) {
    return reopen(d, &d->rpg, &d->rfailed_at, d->read_url, false);
}

int dbconn_init(struct dbconn *d, const struct rpc *rpc, const char *def_table, bool replica,
                dbconn_setup_fn setup, void *owner) {
    const char *table = rpc->host->config(rpc->ctx, "table");
    const char *ru = replica ? rpc->host->config(rpc->ctx, "read_url") : NULL;

    memset(d, 0, sizeof(*d));
    d->rpc = rpc;
    d->setup = setup;
    d->owner = owner;
    if (!table)
        table = def_table;
    if (!store_ident_is_valid(table)) {
        FPESA_LOG(rpc, FPESA_LOG_ERROR,
                  "%s: config table \"%s\" is not a plain identifier ([a-z_][a-z0-9_]*)", rpc->name,
                  table);
        return -1;
    }
    snprintf(d->table, sizeof(d->table), "%s", table);
    if (ru && *ru) {
        d->read_url = strdup(ru);
        if (!d->read_url)
            return -1;
        FPESA_LOG(rpc, FPESA_LOG_INFO, "%s: reading from a replica where it is recent", rpc->name);
    }
    dbconn_open(d);
    if (d->read_url)
        open_replica(d);
    return 0;
}

void dbconn_fini(struct dbconn *d) {
    if (d->read_url)
        FPESA_LOG(d->rpc, FPESA_LOG_INFO, "%s: reads replica=%lu primary=%lu", d->rpc->name,
                  d->n_replica, d->n_primary);
    PQfinish(d->pg);
    PQfinish(d->rpg);
    free(d->read_url);
    d->pg = d->rpg = NULL;
    d->read_url = NULL;
}

/* True when the replica has replayed everything the primary had written
 * when this was called (waiting up to DBCONN_REPLAY_WAIT_MS), or when the
 * primary cannot be asked. */
static bool replica_caught_up(struct dbconn *d) {
    int r;

    if (dbconn_open(d) < 0)
        return true;
    r = store_replica_caught_up(d->pg, d->rpg, DBCONN_REPLAY_WAIT_MS);
    if (r == -1) {
        PQfinish(d->rpg);
        d->rpg = NULL;
    }
    return r == 1 || r == -2;
}

/* Where the request at hand reads: the replica when there is one and it is
 * recent enough, else the primary, else the replica as it is. */
static PGconn **pick(struct dbconn *d, bool continued) {
    if (d->read_url && open_replica(d) == 0 && (!continued || replica_caught_up(d)) && d->rpg) {
        d->n_replica++;
        return &d->rpg;
    }
    if (dbconn_open(d) == 0) {
        d->n_primary++;
        return &d->pg;
    }
    if (d->read_url && open_replica(d) == 0) {
        d->n_replica++;
        return &d->rpg;
    }
    return NULL;
}

int dbconn_prepare(struct dbconn *d, PGconn *conn, const char *name, const char *tmpl,
                   int nparams) {
    char *sql = store_sql(tmpl, d->table);
    PGresult *r;
    int rc = 0;

    if (!sql)
        return -1;
    r = PQprepare(conn, name, sql, nparams, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        FPESA_LOG(d->rpc, FPESA_LOG_ERROR, "%s: cannot prepare %s: %s", d->rpc->name, name,
                  PQresultErrorMessage(r));
        rc = -1;
    }
    PQclear(r);
    free(sql);
    return rc;
}

PGresult *dbconn_run(struct dbconn *d, const char *name, int n, const char *const *vals) {
    PGconn **conn = d->use ? d->use : &d->pg;
    PGresult *r = PQexecPrepared(*conn, name, n, vals, NULL, NULL, 0);

    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        return r;
    FPESA_LOG(d->rpc, FPESA_LOG_WARN, "%s: %s failed: %s", d->rpc->name, name,
              r ? PQresultErrorMessage(r) : PQerrorMessage(*conn));
    PQclear(r);
    if (PQstatus(*conn) != CONNECTION_OK) {
        PQfinish(*conn);
        *conn = NULL;
    }
    return NULL;
}

int dbconn_serve(struct dbconn *d, bool continued, int (*answer)(void *arg), void *arg) {
    int rc = -1;

    for (int attempt = 0; attempt < 2 && rc < 0; attempt++) {
        d->use = pick(d, continued);
        if (!d->use)
            break;
        rc = answer(arg);
        if (*d->use)
            break; /* the connection is fine: the failure was the query's own */
    }
    d->use = NULL;
    return rc;
}
