/* The arguments of GET /messages/ and its opaque cursors (pure code, unit
 * tested without a database).
 *
 * Three ways to ask, chosen by which arguments are present:
 *   keyset  ?limit=N[&before=CURSOR]     newest first; "next" is the cursor of
 *                                         the following page or null. limit
 *                                         defaults to 50 and is clipped to 1000.
 *   offset  ?offset=N[&limit=N][&paginationId=ID]  the original fpesa contract;
 *                                         limit defaults to 50, clipped to 100;
 *                                         paginationId freezes the view: the
 *                                         store position (pos) of its newest
 *                                         message, as the original's whole
 *                                         number or as an opaque cursor.
 *   after   ?after=ID[&limit=N]           oldest first, the messages stored
 *                                         after the message ID (liveupdate's
 *                                         resume); limit as keyset.
 * keyset takes a filter too: &contains=JSON (a JSON object or array as text)
 * keeps the messages whose data contains it (PostgreSQL's jsonb @>, e.g.
 * {"sensor":"t-1"} matches every message with that key and value).
 * Mixing modes (before with offset, after with either) is an error, as are
 * unknown arguments, non-numeric or zero limits, and cursors that do not
 * decode. Values are strings (the mapper passes the query string as strings);
 * JSON integers are accepted too.
 *
 * Cursors are base64url (no padding) of a kind letter and a decimal seq:
 * "b<seq>" for before, "p<pos>" for paginationId, so neither can be passed
 * as the other. */
#ifndef MSGGET_QUERY_H
#define MSGGET_QUERY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define MSGQ_DEFAULT_LIMIT 50
#define MSGQ_MAX_LIMIT 1000
#define MSGQ_MAX_OFFSET_LIMIT 100
#define MSGQ_MAX_OFFSET 1000000000LL
#define MSGQ_ID_MAX 200
#define CURSOR_MAX 40
#define MSGQ_CONTAINS_MAX 4000

enum msgq_mode { MSGQ_KEYSET = 0, MSGQ_OFFSET = 1, MSGQ_AFTER = 2 };

struct msgq {
    enum msgq_mode mode;
    long limit;
    int64_t before;              /* keyset: rows with seq < before; INT64_MAX for the first page */
    long long offset;            /* offset mode */
    int64_t frozen;              /* offset mode: rows with pos <= frozen; -1 until a paginationId */
    char after[MSGQ_ID_MAX + 1]; /* after mode: the message id */
    char contains[MSGQ_CONTAINS_MAX + 1]; /* keyset filter: JSON text as given, "" for none */
};

/* Fills q from args (borrowed; NULL or JSON null mean no arguments). On a bad
 * argument returns -1 with a description for the client in err. */
int msgq_parse(const json_t *args, struct msgq *q, char *err, size_t errlen);

/* Writes the cursor of kind ('b' or 'p') and seq (>= 0) into out (at least
 * CURSOR_MAX + 1 bytes). 0, or -1 when it does not fit or kind is unknown. */
int cursor_encode(char kind, int64_t seq, char *out, size_t len);

/* Decodes s as a cursor of kind; 0 and *seq, or -1 for anything else. */
int cursor_decode(const char *s, char kind, int64_t *seq);

#endif
