/* Idempotency-Key claims: what the mapper asks the claim worker before a
 * keyed request goes on the bus.
 *
 * A request's fingerprint is the SHA-256 of what would be sent: the content
 * type, the AMQP headers and the body bytes (for JSON the envelope, so the
 * body as the client sent it, the query string and the path parameters).
 * The claim {"scope": <endpoint exchange>, "key": <key>, "fingerprint":
 * <hex>} is answered by the worker: 200 when the key is new or was claimed
 * with the same fingerprint, 409 when it was claimed with another one.
 */
#ifndef FPESA_MAPPER_IDEM_H
#define FPESA_MAPPER_IDEM_H

#include <stddef.h>

#include "bus.h"

#define IDEM_FINGERPRINT_HEX 64

/* Writes the hex SHA-256 of the message (borrowed) into out (NUL-terminated,
 * IDEM_FINGERPRINT_HEX + 1 bytes). Returns 0, or -1 when the digest cannot
 * be computed. */
int idem_fingerprint(const struct mbus_msg *msg, char *out);

/* The claim's JSON text for scope, key and fingerprint (borrowed): new,
 * free with free(); NULL when out of memory. */
char *idem_claim_body(const char *scope, const char *key, const char *fingerprint);

#endif
