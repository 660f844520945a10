/* The page token of GET /records: the position (received_at, id) of the last
 * record of a page, opaque to clients.
 *
 * Encoded as base64url without padding of "<microseconds since the epoch>:<id>",
 * so it is URL-safe and carries the exact timestamp (PostgreSQL keeps
 * microseconds) and the id that breaks ties between equal timestamps. */
#ifndef RECORDS_TOKEN_H
#define RECORDS_TOKEN_H

#include <stddef.h>
#include <stdint.h>

/* Longest id a token carries, and the longest token text. */
#define TOKEN_ID_MAX 200
#define TOKEN_MAX 300

struct token {
    int64_t usec;              /* received_at in microseconds since the epoch */
    char id[TOKEN_ID_MAX + 1]; /* the record's message id */
};

/* Writes the token of (usec, id) into out (outlen bytes, NUL-terminated).
 * 0, or -1 when id is empty, too long or out is too small. */
int token_encode(int64_t usec, const char *id, char *out, size_t outlen);

/* Parses text (borrowed) into *t. 0, or -1 with a reason in err when text is
 * not a token this plugin wrote (bad characters, length, number or id). */
int token_decode(const char *text, struct token *t, char *err, size_t errlen);

#endif
