/* PostgreSQL helpers every plugin may use, and the message store's schema
 * (messages_post, messages_get, records_get, image_service). handlers/lib/ is
 * compiled into each plugin (plugins link nothing of the host and nothing of
 * each other), so this is one source with a private copy per .so.
 *
 * Table (migration 1), "messages" unless the handler's config says
 * `table: NAME`:
 *   seq          bigint identity, UNIQUE  the store order; keyset pagination key
 *   id           text PRIMARY KEY         the message id (UUIDv7 or Idempotency-Key)
 *   received_at  timestamptz              the mapper's receive time (see below)
 *   data         jsonb                    the envelope's "data"
 *   pos          bigint UNIQUE            (migration 2) 1, 2, 3, ... without gaps,
 *                                         in seq order: the offset pagination key
 * messages_post numbers its rows itself (highest pos + 1, 2, ... for the
 * rows of a batch that are not stored yet) under its transaction-level
 * advisory lock; a BEFORE INSERT trigger, run only for a row inserted without
 * pos, does the same for any other writer (taking the same lock), so a row
 * skipped by ON CONFLICT DO NOTHING leaves no gap. Since the store only ever grows,
 * the rows up to pos P number P - min(pos) + 1 and the row at offset k below
 * P is the one with pos P - k: an offset page is an index lookup, whatever
 * the offset and the table's size.
 * The id is text and not uuid because an Idempotency-Key may be any string;
 * ordering therefore never relies on the id but on seq, which messages_post
 * assigns under a transaction-level advisory lock so that seq order is also
 * commit order (a reader paging by seq never sees a lower seq appear later).
 *
 * Migrations are versioned in schema_migrations(name, version, applied_at),
 * name being the table, applied under a session advisory lock so that many
 * hosts starting at once apply each version exactly once. */
#ifndef MSGSTORE_STORE_H
#define MSGSTORE_STORE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_TABLE_MAX 63

/* True when s is a plain lower-case SQL identifier ([a-z_][a-z0-9_]*, at
 * most 63 bytes), safe to paste into SQL. */
bool store_ident_is_valid(const char *s);

/* Connects to url (borrowed) with a short connect timeout and the session
 * in UTC. Returns the new connection (PQfinish), or NULL with the reason in
 * err (the URL itself is never written there). */
PGconn *store_connect(const char *url, char *err, size_t errlen);

/* Runs sql (borrowed); 0 when it succeeded, else -1 with the server's
 * message in err. */
int store_exec(PGconn *pg, const char *sql, char *err, size_t errlen);

/* Runs one statement with n text parameters (vals, borrowed); 0 when it
 * succeeded, else -1 with the server's message in err. */
int store_exec_params(PGconn *pg, const char *sql, int n, const char *const *vals, char *err,
                      size_t errlen);

/* Applies, in order and each in its own transaction, the migrations of the
 * list (borrowed, n entries) that schema_migrations does not record under
 * name yet, under one advisory lock shared by every plugin, so that several
 * processes starting at once apply each version exactly once. When table is
 * not NULL, "{t}" in each statement is replaced by it. 0, or -1 with the
 * reason in err. */
int store_migrate_set(PGconn *pg, const char *name, const char *const *migrations, size_t n,
                      const char *table, char *err, size_t errlen);

/* Applies the migrations table (borrowed, valid identifier) lacks. 0, or -1
 * with the reason in err. */
int store_migrate(PGconn *pg, const char *table, char *err, size_t errlen);

/* Replaces every "{t}" in tmpl with table; new string (free), or NULL. */
char *store_sql(const char *tmpl, const char *table);

/* When id is a UUIDv7, stores its embedded Unix time in milliseconds in
 * *ms and returns true. */
bool store_uuid7_ms(const char *id, int64_t *ms);

/* Writes a new UUIDv7 (time-ordered random id) in its 36-character text
 * form into out (borrowed, at least 37 bytes). For messages that arrive
 * without a message_id. */
void store_uuid7_new(char out[37]);

/* True when the failed result res says the data of the statement is wrong
 * (SQLSTATE class 22 data exception, 23 integrity constraint violation, 54
 * program limit exceeded): the only failures a message can be blamed for,
 * and only once it fails alone (see messages_post). False for everything
 * that depends on the database's state: no connection, read-only (25006),
 * privileges (42501), a missing table (42P01), a full disk (53100), a
 * shutdown, a deadlock. */
bool store_is_data_error(PGconn *pg, const PGresult *res);

/* The opposite of store_is_data_error: the failure is the database's
 * (unreachable, read-only, missing privileges or tables, out of space,
 * restarting), so the work is retried later and never dead-lettered. */
bool store_is_transient(PGconn *pg, const PGresult *res);

/* Whether replica (a streaming replica of primary) has replayed everything
 * primary had written when this was called: asks primary for its WAL insert
 * position and waits up to wait_ms for the replica's replay position to
 * reach it. A reader uses it before a page that continues from an earlier
 * answer, so that replication lag cannot make the page skip rows.
 * Both connections are borrowed. Returns 1 (caught up), 0 (still behind
 * after wait_ms), -1 (the replica's query failed: drop that connection) or
 * -2 (the primary could not be asked). */
int store_replica_caught_up(PGconn *primary, PGconn *replica, long wait_ms);

#endif
