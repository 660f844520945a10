#include "tstore.h"
#include "../lib/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const migrations[] = {
    /* 1: the table and the one index the schedulers read it by. */
    "CREATE TABLE timers ("
    " id uuid PRIMARY KEY,"
    " url text NOT NULL,"
    " created_at timestamptz NOT NULL DEFAULT now(),"
    " due_at timestamptz NOT NULL,"
    " state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'fired', 'failed')),"
    " next_try_at timestamptz NOT NULL,"
    " attempts integer NOT NULL DEFAULT 0,"
    " fired_at timestamptz,"
    " last_status integer,"
    " last_error text);"
    "CREATE INDEX timers_pending_next_try ON timers (next_try_at) WHERE state = 'pending'",
};

static void set_err(char *err, size_t errlen, const char *what) {
    size_t l;

    snprintf(err, errlen, "%s", what && *what ? what : "unknown database error");
    l = strlen(err);
    while (l && (err[l - 1] == '\n' || err[l - 1] == ' '))
        err[--l] = '\0';
}

int tstore_migrate(PGconn *pg, char *err, size_t errlen) {
    return store_migrate_set(pg, "timers", migrations, sizeof(migrations) / sizeof(*migrations),
                             NULL, err, errlen);
}

bool tstore_id_is_valid(const char *id) {
    if (!id || strlen(id) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        char c = id[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

/* Runs a one-parameter statement whose parameter is a JSON document. */
static PGresult *exec_json(PGconn *pg, const char *sql, const json_t *doc, char *err,
                           size_t errlen) {
    char *text = json_dumps(doc, JSON_COMPACT);
    const char *params[1];
    PGresult *r;

    if (!text) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    params[0] = text;
    r = PQexecParams(pg, sql, 1, NULL, params, NULL, NULL, 0);
    free(text);
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
        set_err(err, errlen, PQresultErrorMessage(r));
        PQclear(r);
        return NULL;
    }
    return r;
}

#define TIME_LEFT                                                                                  \
    "CASE WHEN t.state = 'pending'"                                                                \
    " THEN greatest(0, ceil(extract(epoch FROM t.due_at - clock_timestamp())))::bigint"            \
    " ELSE 0 END"

json_t *tstore_create(PGconn *pg, const json_t *rows, char *err, size_t errlen) {
    /* The key becomes the id: kept when it is a UUID, hashed otherwise. */
    static const char sql[] =
        "WITH input AS ("
        "  SELECT r.key, r.url, r.secs,"
        "   CASE WHEN r.key ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'"
        "   THEN r.key::uuid ELSE md5(r.key)::uuid END AS id"
        "  FROM json_to_recordset($1::json) AS r(key text, url text, secs bigint)),"
        " ins AS ("
        "  INSERT INTO timers AS t (id, url, due_at, next_try_at)"
        "  SELECT DISTINCT ON (id) id, url, now() + secs * interval '1 second',"
        "   now() + secs * interval '1 second' FROM input"
        "  ON CONFLICT (id) DO NOTHING"
        "  RETURNING t.id, " TIME_LEFT " AS time_left)"
        " SELECT i.key, i.id, coalesce(ins.time_left, "
        "  (SELECT " TIME_LEFT " FROM timers t WHERE t.id = i.id)) "
        " FROM input i LEFT JOIN ins ON ins.id = i.id";
    PGresult *r;
    json_t *out = NULL;
    char ignore[8];

    if (store_exec(pg, "BEGIN", err, errlen) < 0)
        return NULL;
    r = exec_json(pg, sql, rows, err, errlen);
    if (!r)
        goto out_rollback;
    out = json_object();
    for (int i = 0; out && i < PQntuples(r); i++) {
        long long left = strtoll(PQgetvalue(r, i, 2), NULL, 10);
        json_object_set_new(
            out, PQgetvalue(r, i, 0),
            json_pack("{s:s,s:I}", "id", PQgetvalue(r, i, 1), "time_left", (json_int_t)left));
    }
    PQclear(r);
    if (!out) {
        set_err(err, errlen, "out of memory");
        goto out_rollback;
    }
    /* Delivered to the listening schedulers when this commits. */
    if (store_exec(pg, "NOTIFY " TSTORE_CHANNEL, err, errlen) < 0 ||
        store_exec(pg, "COMMIT", err, errlen) < 0) {
        json_decref(out);
        out = NULL;
        goto out_rollback;
    }
    return out;

out_rollback:
    if (PQtransactionStatus(pg) != PQTRANS_IDLE)
        store_exec(pg, "ROLLBACK", ignore, sizeof(ignore));
    return NULL;
}

int tstore_time_left(PGconn *pg, const char *id, int64_t *time_left, char *err, size_t errlen) {
    const char *params[1] = {id};
    PGresult *r = PQexecParams(pg, "SELECT " TIME_LEFT " FROM timers t WHERE t.id = $1::uuid", 1,
                               NULL, params, NULL, NULL, 0);
    int rc;

    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        set_err(err, errlen, PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    rc = PQntuples(r) > 0;
    if (rc)
        *time_left = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return rc;
}

json_t *tstore_claim(PGconn *pg, int limit, long lease_ms, char *err, size_t errlen) {
    char lim[24], lease[24];
    const char *params[2] = {lim, lease};
    PGresult *r;
    json_t *out;

    snprintf(lim, sizeof(lim), "%d", limit);
    snprintf(lease, sizeof(lease), "%ld", lease_ms);
    r = PQexecParams(pg,
                     "UPDATE timers t SET attempts = t.attempts + 1,"
                     " next_try_at = now() + $2::bigint * interval '1 millisecond'"
                     " FROM (SELECT id FROM timers WHERE state = 'pending' AND next_try_at <= now()"
                     "  ORDER BY next_try_at LIMIT $1::int FOR UPDATE SKIP LOCKED) due"
                     " WHERE t.id = due.id RETURNING t.id, t.url, t.attempts",
                     2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        set_err(err, errlen, PQresultErrorMessage(r));
        PQclear(r);
        return NULL;
    }
    out = json_array();
    for (int i = 0; out && i < PQntuples(r); i++)
        json_array_append_new(out, json_pack("{s:s,s:s,s:I}", "id", PQgetvalue(r, i, 0), "url",
                                             PQgetvalue(r, i, 1), "attempt",
                                             (json_int_t)strtoll(PQgetvalue(r, i, 2), NULL, 10)));
    PQclear(r);
    if (!out)
        set_err(err, errlen, "out of memory");
    return out;
}

int tstore_record(PGconn *pg, const json_t *outcomes, char *err, size_t errlen) {
    static const char sql[] =
        "UPDATE timers t SET"
        " state = CASE WHEN o.ok THEN 'fired' WHEN o.retry_ms < 0 THEN 'failed' ELSE 'pending' END,"
        " fired_at = CASE WHEN o.ok THEN now() ELSE t.fired_at END,"
        " next_try_at = CASE WHEN o.ok OR o.retry_ms < 0 THEN t.next_try_at"
        "  ELSE now() + o.retry_ms * interval '1 millisecond' END,"
        " last_status = o.status, last_error = o.error"
        " FROM json_to_recordset($1::json)"
        "  AS o(id uuid, attempt int, ok boolean, status int, error text, retry_ms bigint)"
        " WHERE t.id = o.id AND t.state = 'pending' AND (o.ok OR t.attempts = o.attempt)";
    PGresult *r = exec_json(pg, sql, outcomes, err, errlen);

    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

long tstore_next_ms(PGconn *pg, char *err, size_t errlen) {
    PGresult *r = PQexec(pg, "SELECT ceil(greatest(0, extract(epoch FROM min(next_try_at) - "
                             "clock_timestamp()) * 1000))::bigint FROM timers "
                             "WHERE state = 'pending'");
    long ms;

    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        set_err(err, errlen, PQresultErrorMessage(r));
        PQclear(r);
        return -2;
    }
    ms = PQgetisnull(r, 0, 0) ? -1 : strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return ms;
}
