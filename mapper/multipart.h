/* multipart/form-data (RFC 7578) bodies, parsed in place.
 *
 * The body is in memory whole (never more than the endpoint's limit), so the
 * parser walks it once and hands each part to a callback with pointers into
 * it: no copy of any part's content is made.
 */
#ifndef FPESA_MAPPER_MULTIPART_H
#define FPESA_MAPPER_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>

/* Longest boundary accepted (RFC 2046 allows 70; some clients send more). */
#define MPART_BOUNDARY_MAX 200
/* Longest field name, file name and content type kept from a part's headers. */
#define MPART_NAME_MAX 256
#define MPART_TYPE_MAX 128
/* Most bytes of headers in one part, and most parts in one body. */
#define MPART_HEADERS_MAX 8192
#define MPART_PARTS_MAX 256

struct mpart {
    char name[MPART_NAME_MAX];         /* the form field's name, never empty */
    char filename[MPART_NAME_MAX];     /* as sent, when has_filename */
    bool has_filename;                 /* filename="..." was given (even empty) */
    char content_type[MPART_TYPE_MAX]; /* bare media type, lower case; "" when not given */
    const char *data;                  /* the content, into the body (borrowed) */
    size_t len;
};

/* Called for each part in order; part is borrowed for the call. A non-zero
 * return stops the parse, and multipart_parse returns it. */
typedef int (*mpart_fn)(void *ctx, const struct mpart *part);

/* Extracts the boundary parameter of a multipart Content-Type header value
 * (borrowed), quoted or not, into out (cap bytes, NUL-terminated). Returns 0,
 * or -1 when the type is not multipart/form-data or has no valid boundary. */
int multipart_boundary(const char *content_type, char *out, size_t cap);

/* Parses body[0..len) (borrowed) with boundary (borrowed) and calls fn for
 * each part. Returns 0 when the whole body was well formed up to the closing
 * delimiter; -1 with a sentence in err (errlen bytes) when it is not (no
 * opening delimiter, a bad delimiter line, part headers that are malformed,
 * over MPART_HEADERS_MAX, or without Content-Disposition: form-data; name=...,
 * more than MPART_PARTS_MAX parts, a missing closing delimiter); or what fn
 * returned when it stopped the parse. Parts already passed to fn before an
 * error was found stay passed: callers act only once 0 is returned. */
int multipart_parse(const char *body, size_t len, const char *boundary, mpart_fn fn, void *ctx,
                    char *err, size_t errlen);

#endif
