/* The timers table in PostgreSQL: its schema and every statement the three
 * roles of the plugin run against it.
 *
 * One row per timer. A timer is "pending" until a webhook call succeeds
 * ("fired") or the attempts run out ("failed"). next_try_at is when a
 * scheduler may next claim it: the due time at first, then the end of the
 * lease a claim takes, then the retry time after a failure. Claiming moves
 * next_try_at past now under FOR UPDATE SKIP LOCKED, so two schedulers never
 * hold the same timer, and a scheduler that dies mid-call loses its claim
 * when the lease ends. */
#ifndef TIMER_STORE_H
#define TIMER_STORE_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The channel creations are notified on, so schedulers wake at once. */
#define TSTORE_CHANNEL "fpesa_timers"

/* Creates or upgrades the table (versioned in schema_migrations under the
 * name "timers", under an advisory lock). 0, or -1 with the reason in err. */
int tstore_migrate(PGconn *pg, char *err, size_t errlen);

/* True when id is a UUID in its canonical text form (any case). */
bool tstore_id_is_valid(const char *id);

/* Inserts the timers of rows (borrowed): a JSON array of {"key", "url",
 * "secs"}, key being the request's message id (a UUID is kept as the timer
 * id, anything else is hashed into one, so a redelivered request or a
 * repeated Idempotency-Key names the same timer and inserts nothing), and
 * notifies the schedulers, in one transaction. On success returns a new JSON
 * object {key: {"id", "time_left"}} (json_decref) for every row; NULL on a
 * database failure, with the reason in err. */
json_t *tstore_create(PGconn *pg, const json_t *rows, char *err, size_t errlen);

/* Looks id (a valid UUID, borrowed) up. 1 and *time_left (seconds, rounded
 * up, 0 once fired or due) when found, 0 when not, -1 on a database failure
 * with the reason in err. */
int tstore_time_left(PGconn *pg, const char *id, int64_t *time_left, char *err, size_t errlen);

/* Claims up to limit due timers for lease_ms: returns a new JSON array of
 * {"id", "url", "attempt"} (json_decref), empty when none is due, NULL on a
 * database failure with the reason in err. */
json_t *tstore_claim(PGconn *pg, int limit, long lease_ms, char *err, size_t errlen);

/* Records outcomes (borrowed): a JSON array of {"id", "attempt", "ok",
 * "status", "error", "retry_ms"}. A success marks the timer fired; a failure
 * makes it due again retry_ms later, or failed when retry_ms is negative
 * (no attempt left). An outcome whose claim was taken over by another
 * scheduler after the lease ended changes nothing unless it is a success.
 * 0, or -1 with the reason in err. */
int tstore_record(PGconn *pg, const json_t *outcomes, char *err, size_t errlen);

/* Milliseconds until the next pending timer may be claimed (0 when one is
 * due now), or -1 when there is none; -2 on a database failure. */
long tstore_next_ms(PGconn *pg, char *err, size_t errlen);

#endif
