/* Query strings and path segments as they arrive on the wire: percent-decoding
 * and "a=1&b=2" parsing into a JSON object of strings.
 */
#ifndef FPESA_MAPPER_QUERY_H
#define FPESA_MAPPER_QUERY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Most parameters accepted in one query string. */
#define QUERY_MAX_PARAMS 256

/* Decodes s[0..len) (borrowed): "%XX" becomes that byte and, when
 * plus_is_space, '+' becomes ' '. Returns a new NUL-terminated string (free
 * with free()) with its length in *out_len (may be NULL), or NULL when s has a
 * malformed escape, decodes to a NUL byte or to invalid UTF-8, or memory runs
 * out. */
char *query_decode(const char *s, size_t len, bool plus_is_space, size_t *out_len);

/* True when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
bool query_utf8_is_valid(const char *s, size_t len);

/* Parses the query string qs (borrowed; without the '?'; NULL or "" is
 * empty) into *out, a new JSON object mapping each decoded name to its decoded
 * value ("a" alone gives "a": ""). Empty pieces ("a=1&&b=2") are skipped.
 * Returns 0, or -1 with a sentence in err (borrowed, errlen bytes) when a
 * name is empty, appears twice, an escape is malformed, a piece is not UTF-8,
 * or there are more than QUERY_MAX_PARAMS parameters; *out is then NULL. */
int query_parse(const char *qs, json_t **out, char *err, size_t errlen);

#endif
