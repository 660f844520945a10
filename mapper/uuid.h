/* UUIDv7 message ids (RFC 9562): 48 bits of Unix milliseconds, version 7,
 * 12 bits of a per-millisecond sequence (rand_a), the variant, and 62 random
 * bits. Ids minted by one process are strictly increasing, from any number of
 * threads, so they double as a sort key.
 */
#ifndef FPESA_MAPPER_UUID_H
#define FPESA_MAPPER_UUID_H

#include <stdint.h>

/* Length of the text form without its terminating NUL. */
#define UUID_STR_LEN 36

/* Writes a new UUIDv7 in its 36-character lower-case text form, NUL-terminated,
 * into out (borrowed, at least UUID_STR_LEN + 1 bytes). Thread-safe; never
 * fails. When more than 4096 ids are asked for within one millisecond the
 * timestamp is advanced by one so that ordering holds (RFC 9562, 6.2). */
void uuid_v7(char out[UUID_STR_LEN + 1]);

/* The same id as 16 bytes in network order. */
void uuid_v7_bytes(uint8_t out[16]);

#endif
