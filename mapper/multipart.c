#include "multipart.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

__attribute__((format(printf, 3, 4))) static int bad(char *err, size_t errlen, const char *fmt,
                                                     ...) {
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static bool is_token_char(char c) {
    return (unsigned char)c > 0x20 && c != 0x7f && c != ';' && c != '=' && c != '"' && c != ',';
}

/* Parses one "; key=value" parameter at p. Returns the position after it,
 * or end with key[0] == '\0' when there are no more; NULL when malformed or
 * when the key or the value does not fit its buffer. The value may be a
 * token or a quoted string with backslash escapes. */
static const char *next_param(const char *p, const char *end, char *key, size_t kcap, char *val,
                              size_t vcap) {
    size_t n = 0;

    key[0] = val[0] = '\0';
    p = skip_ws(p, end);
    if (p == end)
        return end;
    if (*p != ';')
        return NULL;
    p = skip_ws(p + 1, end);
    if (p == end)
        return end; /* a trailing ';' */
    while (p < end && is_token_char(*p)) {
        if (n + 1 >= kcap)
            return NULL;
        key[n++] = *p++;
    }
    key[n] = '\0';
    if (n == 0)
        return NULL;
    p = skip_ws(p, end);
    if (p == end || *p != '=')
        return NULL;
    p = skip_ws(p + 1, end);
    n = 0;
    if (p < end && *p == '"') {
        for (p++;; p++) {
            if (p == end)
                return NULL; /* unterminated */
            if (*p == '"')
                break;
            if (*p == '\\') {
                if (++p == end)
                    return NULL;
            }
            if (n + 1 >= vcap)
                return NULL;
            val[n++] = *p;
        }
        p++;
    } else {
        while (p < end && is_token_char(*p)) {
            if (n + 1 >= vcap)
                return NULL;
            val[n++] = *p++;
        }
        if (n == 0)
            return NULL;
    }
    val[n] = '\0';
    return p;
}

/* The media type at the start of s[0..end): its length, after leading
 * blanks (*start). */
static size_t media_type(const char *s, const char *end, const char **start) {
    const char *p = skip_ws(s, end), *q = p;

    while (q < end && *q != ';' && *q != ' ' && *q != '\t')
        q++;
    *start = p;
    return (size_t)(q - p);
}

int multipart_boundary(const char *content_type, char *out, size_t cap) {
    const char *end, *mt, *p;
    char key[32], val[MPART_BOUNDARY_MAX + 1];
    size_t mlen;

    if (!content_type || cap == 0)
        return -1;
    end = content_type + strlen(content_type);
    mlen = media_type(content_type, end, &mt);
    if (mlen != strlen("multipart/form-data") || strncasecmp(mt, "multipart/form-data", mlen) != 0)
        return -1;
    p = mt + mlen;
    for (;;) {
        p = next_param(p, end, key, sizeof(key), val, sizeof(val));
        if (!p || key[0] == '\0')
            return -1;
        if (strcasecmp(key, "boundary") == 0)
            break;
    }
    /* RFC 2046: 1 to 70 characters, the last not a space. */
    if (val[0] == '\0' || val[strlen(val) - 1] == ' ' || strlen(val) + 1 > cap)
        return -1;
    memcpy(out, val, strlen(val) + 1);
    return 0;
}

/* Parses the header block hdr[0..len) of one part (lines separated by CRLF,
 * without the blank line) into part. */
static int parse_headers(const char *hdr, size_t len, struct mpart *part, char *err,
                         size_t errlen) {
    const char *p = hdr, *end = hdr + len;
    bool disposition = false;

    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        const char *colon, *v;

        if (!eol)
            eol = end;
        colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p)
            return bad(err, errlen, "a part header line has no name");
        for (const char *c = p; c < colon; c++)
            if (!is_token_char(*c))
                return bad(err, errlen, "a part header name is malformed");
        for (const char *c = colon + 1; c < eol; c++)
            if ((unsigned char)*c < 0x20 && *c != '\t')
                return bad(err, errlen, "a part header value holds a control character");
        v = colon + 1;
        if ((size_t)(colon - p) == strlen("content-disposition") &&
            strncasecmp(p, "content-disposition", (size_t)(colon - p)) == 0) {
            const char *mt, *q;
            char key[32], val[MPART_NAME_MAX];
            size_t mlen = media_type(v, eol, &mt);

            if (mlen != strlen("form-data") || strncasecmp(mt, "form-data", mlen) != 0)
                return bad(err, errlen, "a part's Content-Disposition is not form-data");
            if (disposition)
                return bad(err, errlen, "a part has two Content-Disposition headers");
            disposition = true;
            for (q = mt + mlen;;) {
                q = next_param(q, eol, key, sizeof(key), val, sizeof(val));
                if (!q)
                    return bad(err, errlen,
                               "a part's Content-Disposition has a malformed or too long "
                               "parameter");
                if (key[0] == '\0')
                    break;
                if (strcasecmp(key, "name") == 0)
                    memcpy(part->name, val, strlen(val) + 1);
                else if (strcasecmp(key, "filename") == 0) {
                    memcpy(part->filename, val, strlen(val) + 1);
                    part->has_filename = true;
                }
            }
        } else if ((size_t)(colon - p) == strlen("content-type") &&
                   strncasecmp(p, "content-type", (size_t)(colon - p)) == 0) {
            const char *mt;
            size_t mlen = media_type(v, eol, &mt);

            if (mlen == 0 || mlen >= sizeof(part->content_type) || !memchr(mt, '/', mlen))
                return bad(err, errlen, "a part's Content-Type is malformed");
            for (size_t i = 0; i < mlen; i++) {
                char c = mt[i];
                part->content_type[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
            }
            part->content_type[mlen] = '\0';
        }
        p = eol == end ? end : eol + 2;
    }
    if (!disposition)
        return bad(err, errlen, "a part has no Content-Disposition: form-data header");
    if (part->name[0] == '\0')
        return bad(err, errlen, "a part has no field name");
    return 0;
}

int multipart_parse(const char *body, size_t len, const char *boundary, mpart_fn fn, void *ctx,
                    char *err, size_t errlen) {
    char delim[MPART_BOUNDARY_MAX + 5]; /* "\r\n--" boundary */
    size_t blen = boundary ? strlen(boundary) : 0, dlen;
    const char *p, *end = body + len;
    struct mpart part;
    size_t n_parts = 0;
    int rc;

    if (blen == 0 || blen > MPART_BOUNDARY_MAX)
        return bad(err, errlen, "the multipart boundary is missing or too long");
    memcpy(delim, "\r\n--", 4);
    memcpy(delim + 4, boundary, blen);
    dlen = blen + 4;
    if (!body)
        len = 0;

    /* The first delimiter may open the body or follow a preamble. */
    if (len >= dlen - 2 && memcmp(body, delim + 2, dlen - 2) == 0) {
        p = body + dlen - 2;
    } else {
        p = len ? memmem(body, len, delim, dlen) : NULL;
        if (!p)
            return bad(err, errlen, "the body has no multipart delimiter for its boundary");
        p += dlen;
    }
    for (;;) {
        const char *hdr_end, *next;
        size_t room;

        /* p is just past a delimiter: "--" closes, else a line break opens a part. */
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            return 0; /* the epilogue, if any, is ignored */
        p = skip_ws(p, end);
        if (end - p < 2)
            return bad(err, errlen, "the body ends without the closing multipart delimiter");
        if (p[0] != '\r' || p[1] != '\n')
            return bad(err, errlen, "a multipart delimiter line is not followed by CRLF");
        p += 2;
        if (++n_parts > MPART_PARTS_MAX)
            return bad(err, errlen, "the body has more than %d parts", MPART_PARTS_MAX);

        memset(&part, 0, sizeof(part));
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
            hdr_end = p; /* no headers at all */
        } else {
            room = (size_t)(end - p);
            if (room > MPART_HEADERS_MAX + 4)
                room = MPART_HEADERS_MAX + 4;
            hdr_end = memmem(p, room, "\r\n\r\n", 4);
            if (!hdr_end)
                return bad(err, errlen,
                           room == MPART_HEADERS_MAX + 4
                               ? "a part's headers are larger than %d bytes"
                               : "the body ends inside a part's headers",
                           MPART_HEADERS_MAX);
            if (parse_headers(p, (size_t)(hdr_end - p), &part, err, errlen) < 0)
                return -1;
            hdr_end += 2;
        }
        if (part.name[0] == '\0')
            return bad(err, errlen, "a part has no Content-Disposition: form-data header");
        p = hdr_end + 2;
        next = memmem(p, (size_t)(end - p), delim, dlen);
        if (!next)
            return bad(err, errlen, "the body ends without the closing multipart delimiter");
        part.data = p;
        part.len = (size_t)(next - p);
        rc = fn ? fn(ctx, &part) : 0;
        if (rc != 0)
            return rc;
        p = next + dlen;
    }
}
