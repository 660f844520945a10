/* The database half of the rpc plugin skeleton: the connection an rpc
 * plugin answers from, opened again when it breaks, and optionally a
 * streaming replica to read from.
 *
 * Opening: the primary is the file's database (the host's database_url);
 * a failed attempt is not repeated within a second, so a database that is
 * away costs each request a quick 503, not a connect timeout. On every new
 * connection the plugin's setup callback runs (migrations on the primary,
 * prepared statements on both).
 *
 * Retrying: a connection that broke since the last request (a database
 * restart) is only noticed when a query fails. dbconn_serve then
 * reconnects and runs the answer once more, so that a restart costs the
 * client nothing; a query that failed on a healthy connection is the
 * query's own failure and is not repeated.
 *
 * Replica (config read_url, or the file's database.read_url passed by the
 * host): a request that starts afresh reads the replica as it is, a little
 * behind the primary at worst. A request that continues from something the
 * client already read (a cursor, a token, one message by id) must see at
 * least what the primary had committed when that was read, or a page would
 * skip the rows the replica has not replayed yet: the primary is asked for
 * its WAL insert position and the replica is used once its replay position
 * reached it (store_replica_caught_up, up to DBCONN_REPLAY_WAIT_MS); a
 * replica further behind, or away, leaves the request to the primary. With
 * the primary away, the replica answers as it is: the best there is.
 *
 * Linked into plugins that name `dbconn` (and `store`) in their build.mk. */
#ifndef FPESA_HANDLERS_LIB_DBCONN_H
#define FPESA_HANDLERS_LIB_DBCONN_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <time.h>

#include "rpc.h"
#include "store.h"

/* How long a continued request waits for the replica to replay what the
 * primary had, before the primary answers it. */
#define DBCONN_REPLAY_WAIT_MS 1000

/* Runs on every new connection: primary is true for the primary (run the
 * migrations there), false for the replica (the primary's migrations reach
 * it by replication). 0, or -1 after logging: the connection is dropped. */
typedef int (*dbconn_setup_fn)(void *owner, PGconn *conn, bool primary);

struct dbconn {
    const struct rpc *rpc; /* host, context and name for the logs (borrowed) */
    char table[STORE_TABLE_MAX + 1];
    dbconn_setup_fn setup;
    void *owner;
    char *read_url;   /* the replica, or NULL */
    PGconn *pg, *rpg; /* primary and replica connections, or NULL */
    time_t failed_at; /* last failed connect: no new attempt within a second */
    time_t rfailed_at;
    PGconn **use;                       /* the connection the request at hand reads from */
    unsigned long n_replica, n_primary; /* requests served by each, for the log */
};

/* Reads the config keys table (default def_table; a plain identifier) and,
 * when replica is true, read_url, then opens the primary (and the replica)
 * once: a database that is away is retried at the first request. 0, or -1
 * after logging (a bad table name, out of memory). */
int dbconn_init(struct dbconn *d, const struct rpc *rpc, const char *def_table, bool replica,
                dbconn_setup_fn setup, void *owner);

/* Closes both connections and logs how many requests each served. */
void dbconn_fini(struct dbconn *d);

/* The primary's connection, opened (with setup) when it is not open. 0, or
 * -1 (logged; not tried again within a second). */
int dbconn_open(struct dbconn *d);

/* Prepares tmpl ("{t}" replaced by the table) as name with nparams
 * parameters on conn (one that setup was given). 0, or -1 after logging. */
int dbconn_prepare(struct dbconn *d, PGconn *conn, const char *name, const char *tmpl, int nparams);

/* Runs the prepared statement name on the connection of the request at
 * hand; its result when it returned exactly one row (PQclear it), else NULL
 * after logging, the connection dropped when it is the cause. */
PGresult *dbconn_run(struct dbconn *d, const char *name, int n, const char *const *vals);

/* Answers one request from the database: answer(arg) reads through
 * dbconn_run and returns 0, or -1 when a query failed. continued says the
 * request goes on from an earlier answer (see the replica above). The
 * answer is run once more on a fresh connection when the connection broke.
 * Returns answer's 0, or -1 when no database could answer (the caller
 * answers 503). */
int dbconn_serve(struct dbconn *d, bool continued, int (*answer)(void *arg), void *arg);

#endif
