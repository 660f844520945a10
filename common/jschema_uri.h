/* URI reference resolution (RFC 3986 section 5) for the JSON Schema
 * validator: "$id" and "$ref" are resolved against the current base URI. */
#ifndef FPESA_JSCHEMA_URI_H
#define FPESA_JSCHEMA_URI_H

/* Resolves ref (borrowed) against the absolute URI base (borrowed). Returns a
 * new string (free with free), the fragment kept as written, or NULL when
 * out of memory. */
char *jschema_uri_resolve(const char *base, const char *ref);

#endif
