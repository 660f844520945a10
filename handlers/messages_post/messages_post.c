/* messages_post: stores the messages of "POST /messages/" in PostgreSQL.
 *
 * A batch is one transaction: a multi-row INSERT ... ON CONFLICT (id) DO
 * NOTHING, so a redelivered message is stored once, and the host acks only
 * after COMMIT. While the database is unreachable every batch is answered
 * FPESA_RETRY (the host backs off and the broker keeps the messages); the
 * connection is re-opened on the next batch.
 *
 * A message without a message_id (the original Python fpesa sets none) is
 * stored under an id minted here on arrival, a UUIDv7; a redelivery of such a
 * message gets another id, so it cannot be deduplicated.
 *
 * A message is poison (FPESA_REJECT, dead-lettered) when its body is not a JSON object, or it lacks
 * "data", or the database refuses its data on its own (e.g. a string PostgreSQL's jsonb cannot
 * hold) while the rest of its batch is stored. A failure that depends on the database's state
 * (read-only, privileges, a missing table, a full disk, no connection) is never a message's fault:
 * the batch is retried with backoff until the database is healthy again (store_is_transient).
 *
 * config:
 *   table: messages     the table (a plain identifier)
 *   data_field: NAME    store the member NAME of the body instead of the
 *                       whole body (a form's field, say); a body without it
 *                       is poison
 *   data_json: true     with data_field: the member is JSON text (a form
 *                       field holds text only) and is stored as the JSON it
 *                       holds; text that is not JSON is poison. A member
 *                       that is already a JSON value is stored as it is.
 */
#include <fpesa/handler.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/store.h"
#include "jsontext.h"

struct post {
    const struct fpesa_host *host;
    struct fpesa_ctx *ctx;
    char table[STORE_TABLE_MAX + 1];
    char *data_field; /* or NULL: the whole body */
    bool data_json;
    PGconn *pg;
    char *lock_sql;
};

struct row {
    const char *id;
    char minted[37]; /* the id when the message came without one */
    char ms[24];     /* received_at in Unix ms, or "" for now() */
    char *data;      /* compact JSON text, new */
    size_t index;    /* in the batch */
};

static int open_db(struct post *p) {
    char err[512];

    if (p->pg && PQstatus(p->pg) == CONNECTION_OK)
        return 0;
    if (p->pg) {
        PQfinish(p->pg);
        p->pg = NULL;
    }
    p->pg = store_connect(p->host->database_url(p->ctx), err, sizeof(err));
    if (!p->pg) {
        FPESA_LOG(p, FPESA_LOG_WARN, "messages_post: database unavailable: %s", err);
        return -1;
    }
    if (store_migrate(p->pg, p->table, err, sizeof(err)) < 0) {
        FPESA_LOG(p, FPESA_LOG_ERROR, "messages_post: migration of table %s failed: %s", p->table,
                  err);
        PQfinish(p->pg);
        p->pg = NULL;
        return -1;
    }
    FPESA_LOG(p, FPESA_LOG_INFO, "messages_post: database connected table=%s", p->table);
    return 0;
}

static int post_init(const struct fpesa_host *host, struct fpesa_ctx *ctx, const char *config_json,
                     void **state) {
    struct post *p = calloc(1, sizeof(*p));
    const char *table = host->config(ctx, "table");

    (void)config_json;
    if (!p) {
        host->log(ctx, FPESA_LOG_ERROR, "messages_post: out of memory");
        return -1;
    }
    p->host = host;
    p->ctx = ctx;
    if (!table)
        table = "messages";
    if (!store_ident_is_valid(table)) {
        FPESA_LOG(p, FPESA_LOG_ERROR,
                  "messages_post: config table \"%s\" is not a plain identifier ([a-z_][a-z0-9_]*)",
                  table);
        free(p);
        return -1;
    }
    snprintf(p->table, sizeof(p->table), "%s", table);
    if (host->config(ctx, "data_field")) {
        const char *dj = host->config(ctx, "data_json");

        p->data_field = strdup(host->config(ctx, "data_field"));
        p->data_json = dj && strcmp(dj, "true") == 0;
        if (!p->data_field) {
            free(p);
            return -1;
        }
        if (dj && strcmp(dj, "true") != 0 && strcmp(dj, "false") != 0) {
            FPESA_LOG(p, FPESA_LOG_ERROR, "messages_post: config data_json must be true or false");
            free(p->data_field);
            free(p);
            return -1;
        }
    }
    p->lock_sql = store_sql("SELECT pg_advisory_xact_lock(hashtext('fpesa.store.{t}'))", p->table);
    if (!p->lock_sql) {
        free(p->data_field);
        free(p);
        return -1;
    }
    /* A database that is down now is not a reason to refuse to start: the
     * first batch connects (and migrates) again. */
    open_db(p);
    *state = p;
    return 0;
}

/* Reads a message into a row; -1 when it is poison. The data is the text of
 * the envelope's member, passed to PostgreSQL as it is: never parsed into
 * doubles, so every number is stored as sent (as numeric keeps it). */
static int row_fill(struct post *p, const struct fpesa_message *m, struct row *r) {
    struct jtext_error jerr;
    const char *data;
    size_t dlen;
    int64_t ms;

    memset(r, 0, sizeof(*r));
    if (m->message_id && *m->message_id) {
        r->id = m->message_id;
    } else {
        store_uuid7_new(r->minted);
        r->id = r->minted;
    }
    /* The strict check refuses what jsonb cannot hold (\u0000, numbers
     * beyond numeric) before the database does. */
    if (jtext_check(m->body, m->len, NULL, &jerr) != JTEXT_OK) {
        FPESA_LOG(p, FPESA_LOG_WARN, "messages_post: rejected id=%s: %s (offset %zu)", r->id,
                  jerr.text, jerr.offset);
        return -1;
    }
    if (jtext_member(m->body, m->len, "data", &data, &dlen) != 1) {
        FPESA_LOG(p, FPESA_LOG_WARN, "messages_post: rejected id=%s: %s", r->id,
                  "the body is not an envelope with \"data\"");
        return -1;
    }
    if (p->data_field && jtext_member(data, dlen, p->data_field, &data, &dlen) != 1) {
        FPESA_LOG(p, FPESA_LOG_WARN, "messages_post: rejected id=%s: the body has no \"%s\"", r->id,
                  p->data_field);
        return -1;
    }
    if (p->data_json && data[0] == '"') {
        size_t n;
        char *inner = jtext_string(data, dlen, &n);

        if (!inner || jtext_check(inner, n, NULL, &jerr) != JTEXT_OK) {
            FPESA_LOG(p, FPESA_LOG_WARN, "messages_post: rejected id=%s: %s is not JSON: %s", r->id,
                      p->data_field, inner ? jerr.text : "not a string");
            free(inner);
            return -1;
        }
        r->data = inner;
    } else {
        r->data = strndup(data, dlen);
    }
    if (!r->data)
        return -1;
    if (store_uuid7_ms(r->id, &ms))
        snprintf(r->ms, sizeof(r->ms), "%lld", (long long)ms);
    else if (m->timestamp > 0)
        snprintf(r->ms, sizeof(r->ms), "%lld", (long long)m->timestamp * 1000);
    return 0;
}

/* One statement for the batch. pos (store.h) is numbered here: the highest
 * stored pos + 1, 2, ... over the rows that are not stored yet, once each
 * (a redelivery may repeat an id within a batch), in the batch's order, so
 * that pos has no gap; the caller holds the table's advisory lock. */
static PGresult *insert(struct post *p, struct row *rows, size_t n) {
    size_t cap = 512 + 4 * strlen(p->table) + n * 160;
    char *sql = malloc(cap);
    const char **vals = calloc(n * 3 + 1, sizeof(*vals));
    size_t w;
    PGresult *res = NULL;

    if (!sql || !vals)
        goto out;
    w = (size_t)snprintf(
        sql, cap,
        "INSERT INTO %s (id, received_at, data, pos)"
        " SELECT v.id, coalesce(to_timestamp(v.ms / 1000.0), now()), v.data,"
        " (SELECT coalesce(max(pos), 0) FROM %s) + row_number() OVER (ORDER BY v.i)"
        " FROM (SELECT DISTINCT ON (id) * FROM (VALUES ",
        p->table, p->table);
    for (size_t i = 0; i < n; i++) {
        w += (size_t)snprintf(sql + w, cap - w, "%s($%zu::text, $%zu::bigint, $%zu::jsonb, %zu)",
                              i ? "," : "", 3 * i + 1, 3 * i + 2, 3 * i + 3, i);
        vals[3 * i] = rows[i].id;
        vals[3 * i + 1] = rows[i].ms[0] ? rows[i].ms : NULL;
        vals[3 * i + 2] = rows[i].data;
    }
    snprintf(sql + w, cap - w,
             ") AS r (id, ms, data, i) ORDER BY id, i) v"
             " WHERE NOT EXISTS (SELECT 1 FROM %s s WHERE s.id = v.id)"
             " ORDER BY v.i ON CONFLICT (id) DO NOTHING",
             p->table);
    res = PQexecParams(p->pg, sql, (int)(n * 3), NULL, vals, NULL, NULL, 0);
out:
    free(sql);
    free(vals);
    return res;
}

static bool cmd_ok(PGresult *r) {
    ExecStatusType st = PQresultStatus(r);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

enum { STORED = 0, DB_STATE = 1, DATA_TYPE = -1, DATA_CONSTRAINT = -2 };

/* One transaction for the rows. STORED; DB_STATE when the failure is the
 * database's (unreachable, read-only, privileges, a missing table, a full
 * disk: retried, never blamed on a message); DATA_TYPE when a value was
 * refused by its type or size (SQLSTATE class 22 or 54); DATA_CONSTRAINT when
 * a constraint refused it (class 23), which may be the table's doing. */
static int store_rows(struct post *p, struct row *rows, size_t n) {
    PGresult *r;
    int rc;

    r = PQexec(p->pg, "BEGIN");
    if (!cmd_ok(r))
        goto out_fail;
    PQclear(r);
    /* seq is drawn under this lock and released at COMMIT: seq order is
     * commit order, which keeps keyset readers from missing a row. */
    r = PQexec(p->pg, p->lock_sql);
    if (!cmd_ok(r))
        goto out_fail;
    PQclear(r);
    r = insert(p, rows, n);
    if (!cmd_ok(r))
        goto out_fail;
    PQclear(r);
    r = PQexec(p->pg, "COMMIT");
    if (!cmd_ok(r))
        goto out_fail;
    PQclear(r);
    return 0;

out_fail:
    if (store_is_transient(p->pg, r)) {
        rc = DB_STATE;
    } else {
        const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        rc = st && strncmp(st, "23", 2) == 0 ? DATA_CONSTRAINT : DATA_TYPE;
    }
    FPESA_LOG(p, rc == DB_STATE ? FPESA_LOG_WARN : FPESA_LOG_ERROR,
              "messages_post: batch of %zu not stored: %s", n,
              r ? PQresultErrorMessage(r) : PQerrorMessage(p->pg));
    PQclear(r);
    if (PQstatus(p->pg) == CONNECTION_OK && PQtransactionStatus(p->pg) != PQTRANS_IDLE)
        PQclear(PQexec(p->pg, "ROLLBACK"));
    return rc;
}

/* The batch was refused for its data: find the message to blame by storing
 * each row on its own (still idempotent). A row is poison only when it fails
 * alone with a data error of its own and that is proven: another row of the
 * batch was stored meanwhile, or the value itself was refused by its type or
 * size (class 22/54, which no table state causes). A constraint refusing
 * every row alike is the table's doing: those rows are retried. 0, the
 * outcome of each row in results. */
static int isolate(struct post *p, const struct fpesa_message *const *msgs, struct row *rows,
                   size_t k, enum fpesa_result *results) {
    int *one = calloc(k, sizeof(*one));
    bool any_stored = false;

    if (!one)
        return 1;
    for (size_t j = 0; j < k; j++) {
        one[j] = store_rows(p, &rows[j], 1);
        any_stored = any_stored || one[j] == STORED;
    }
    for (size_t j = 0; j < k; j++) {
        size_t i = rows[j].index;
        switch (one[j]) {
        case STORED:
            results[i] = FPESA_OK;
            break;
        case DATA_TYPE:
            results[i] = FPESA_REJECT;
            break;
        case DATA_CONSTRAINT:
            results[i] = any_stored ? FPESA_REJECT : FPESA_RETRY;
            if (!any_stored)
                FPESA_LOG(p, FPESA_LOG_WARN,
                          "messages_post: id=%s refused by a constraint like the rest of its batch;"
                          " retried, not dead-lettered",
                          msgs[i]->message_id);
            break;
        default:
            results[i] = FPESA_RETRY;
            break;
        }
    }
    free(one);
    return 0;
}

static int post_batch(void *state, const struct fpesa_message *const *msgs, size_t n,
                      enum fpesa_result *results) {
    struct post *p = state;
    struct row *rows = calloc(n, sizeof(*rows));
    size_t k = 0;
    int rc = 1;

    if (!rows)
        return 1;
    for (size_t i = 0; i < n; i++) {
        if (row_fill(p, msgs[i], &rows[k]) < 0) {
            free(rows[k].data);
            results[i] = FPESA_REJECT;
            continue;
        }
        rows[k++].index = i;
    }
    if (k == 0) {
        rc = 0;
        goto out;
    }
    if (open_db(p) < 0)
        goto out; /* everything not rejected stays FPESA_RETRY */
    switch (store_rows(p, rows, k)) {
    case STORED:
        for (size_t j = 0; j < k; j++)
            results[rows[j].index] = FPESA_OK;
        rc = 0;
        break;
    case DB_STATE:
        break;
    default:
        rc = isolate(p, msgs, rows, k, results);
        break;
    }
out:
    for (size_t j = 0; j < k; j++)
        free(rows[j].data);
    free(rows);
    return rc;
}

static void post_fini(void *state) {
    struct post *p = state;

    if (!p)
        return;
    PQfinish(p->pg);
    free(p->data_field);
    free(p->lock_sql);
    free(p);
}

FPESA_HANDLER_DEFINE("messages_post: stores messages in PostgreSQL, a batch per transaction",
                     post_init, post_batch, post_fini)
