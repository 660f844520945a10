/* RFC 3986 reference resolution, just what "$id" and "$ref" need: no
 * normalisation beyond removing dot segments, no percent-decoding. */
#include "jschema_uri.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct part {
    const char *s;
    size_t len;
    bool set;
};

struct uri {
    struct part scheme, authority, path, query, fragment;
};

static void uri_split(const char *s, struct uri *u) {
    memset(u, 0, sizeof *u);
    const char *p = s;
    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" */
    const char *q = p;
    if ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z')) {
        while ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
               *q == '+' || *q == '-' || *q == '.')
            q++;
        if (*q == ':') {
            u->scheme = (struct part){p, (size_t)(q - p), true};
            p = q + 1;
        }
    }
    if (p[0] == '/' && p[1] == '/') {
        p += 2;
        size_t n = strcspn(p, "/?#");
        u->authority = (struct part){p, n, true};
        p += n;
    }
    size_t n = strcspn(p, "?#");
    u->path = (struct part){p, n, true};
    p += n;
    if (*p == '?') {
        p++;
        n = strcspn(p, "#");
        u->query = (struct part){p, n, true};
        p += n;
    }
    if (*p == '#') {
        p++;
        u->fragment = (struct part){p, strlen(p), true};
    }
}

/* Appends len bytes to the buffer *out (capacity sized by the caller). */
static void put(char *out, size_t *pos, const char *s, size_t len) {
    memcpy(out + *pos, s, len);
    *pos += len;
}

/* RFC 3986 5.2.4: writes the path in (len bytes) without "." and ".."
 * segments into out (at least len + 1 bytes); returns the new length. */
static size_t remove_dots(const char *in, size_t len, char *out) {
    size_t o = 0, i = 0;
    while (i < len) {
        const char *r = in + i;
        size_t left = len - i;
        if (left >= 3 && memcmp(r, "../", 3) == 0) {
            i += 3;
        } else if (left >= 2 && memcmp(r, "./", 2) == 0) {
            i += 2;
        } else if (left >= 3 && memcmp(r, "/./", 3) == 0) {
            i += 2;
        } else if (left == 2 && memcmp(r, "/.", 2) == 0) {
            out[o++] = '/';
            i += 2;
        } else if ((left >= 4 && memcmp(r, "/../", 4) == 0) ||
                   (left == 3 && memcmp(r, "/..", 3) == 0)) {
            i += 3;
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
            if (left == 3)
                out[o++] = '/';
        } else if ((left == 1 && r[0] == '.') || (left == 2 && memcmp(r, "..", 2) == 0)) {
            i += left;
        } else {
            size_t seg = 1;
            while (seg < left && r[seg] != '/')
                seg++;
            if (r[0] != '/') {
                seg = 0;
                while (seg < left && r[seg] != '/')
                    seg++;
            }
            memcpy(out + o, r, seg);
            o += seg;
            i += seg;
        }
    }
    return o;
}

char *jschema_uri_resolve(const char *base, const char *ref) {
    struct uri b, r;
    uri_split(base, &b);
    uri_split(ref, &r);

    /* Every part of the result comes from base or ref, plus a few
     * separators: this bounds the output. */
    size_t cap = strlen(base) + strlen(ref) + 8;
    char *out = malloc(cap);
    char *merged = malloc(cap);
    if (!out || !merged) {
        free(out);
        free(merged);
        return NULL;
    }
    struct part scheme, authority, query;
    const char *path;
    size_t path_len;

    if (r.scheme.set) {
        scheme = r.scheme;
        authority = r.authority;
        path = r.path.s;
        path_len = r.path.len;
        query = r.query;
    } else {
        scheme = b.scheme;
        if (r.authority.set) {
            authority = r.authority;
            path = r.path.s;
            path_len = r.path.len;
            query = r.query;
        } else {
            authority = b.authority;
            if (r.path.len == 0) {
                path = b.path.s;
                path_len = b.path.len;
                query = r.query.set ? r.query : b.query;
            } else {
                query = r.query;
                if (r.path.s[0] == '/') {
                    path = r.path.s;
                    path_len = r.path.len;
                } else {
                    /* 5.2.3 merge: the base path up to its last "/". */
                    size_t m = 0;
                    if (b.authority.set && b.path.len == 0) {
                        merged[m++] = '/';
                    } else {
                        size_t keep = b.path.len;
                        while (keep > 0 && b.path.s[keep - 1] != '/')
                            keep--;
                        memcpy(merged, b.path.s, keep);
                        m = keep;
                    }
                    memcpy(merged + m, r.path.s, r.path.len);
                    m += r.path.len;
                    path = merged;
                    path_len = m;
                }
            }
        }
    }

    size_t pos = 0;
    if (scheme.set) {
        put(out, &pos, scheme.s, scheme.len);
        put(out, &pos, ":", 1);
    }
    if (authority.set) {
        put(out, &pos, "//", 2);
        put(out, &pos, authority.s, authority.len);
    }
    /* Dot segments only mean something in hierarchical paths. */
    if (path_len > 0 && (authority.set || path[0] == '/' || path == merged))
        pos += remove_dots(path, path_len, out + pos);
    else
        put(out, &pos, path, path_len);
    if (query.set) {
        put(out, &pos, "?", 1);
        put(out, &pos, query.s, query.len);
    }
    if (r.fragment.set) {
        put(out, &pos, "#", 1);
        put(out, &pos, r.fragment.s, r.fragment.len);
    }
    out[pos] = '\0';
    free(merged);
    return out;
}
