#include "query.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool query_utf8_is_valid(const char *str, size_t len) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1fu;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0fu;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07u;
        } else {
            return false;
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0u) != 0x80u)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3fu);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

char *query_decode(const char *s, size_t len, bool plus_is_space, size_t *out_len) {
    char *out = malloc(len + 1);
    size_t o = 0;

    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (c == '%') {
            int hi, lo;

            if (len - i < 3)
                goto out_bad;
            hi = hex_value(s[i + 1]);
            lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                goto out_bad;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == '\0')
            goto out_bad;
        out[o++] = c;
    }
    out[o] = '\0';
    if (!query_utf8_is_valid(out, o))
        goto out_bad;
    if (out_len)
        *out_len = o;
    return out;

out_bad:
    free(out);
    return NULL;
}

/* Copies at most 40 bytes of a piece for an error message, escaping nothing:
 * the caller's JSON encoder takes care of that. */
static void excerpt(char *dst, size_t dstlen, const char *s, size_t len) {
    snprintf(dst, dstlen, "%.*s%s", (int)(len > 40 ? 40 : len), s, len > 40 ? "..." : "");
}

int query_parse(const char *qs, json_t **out, char *err, size_t errlen) {
    json_t *obj = json_object();
    const char *p = qs ? qs : "";
    size_t count = 0;
    char *name = NULL, *value = NULL;
    char piece[64];

    *out = NULL;
    if (!obj) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    while (*p) {
        const char *end = strchr(p, '&');
        size_t plen = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', plen);
        size_t nlen = eq ? (size_t)(eq - p) : plen;
        json_t *v;

        if (plen == 0) {
            p++;
            continue;
        }
        excerpt(piece, sizeof(piece), p, plen);
        if (nlen == 0) {
            snprintf(err, errlen, "query parameter \"%s\" has no name", piece);
            goto out_fail;
        }
        if (++count > QUERY_MAX_PARAMS) {
            snprintf(err, errlen, "more than %d query parameters", QUERY_MAX_PARAMS);
            goto out_fail;
        }
        name = query_decode(p, nlen, true, NULL);
        value = eq ? query_decode(eq + 1, plen - nlen - 1, true, NULL) : strdup("");
        if (!name || !value) {
            snprintf(err, errlen, "query parameter \"%s\" is not valid percent-encoded UTF-8",
                     piece);
            goto out_fail;
        }
        if (json_object_get(obj, name)) {
            snprintf(err, errlen, "query parameter \"%s\" is given more than once", name);
            goto out_fail;
        }
        v = json_string(value);
        if (!v || json_object_set_new(obj, name, v) != 0) {
            snprintf(err, errlen, "out of memory");
            goto out_fail;
        }
        free(name);
        free(value);
        name = value = NULL;
        p += plen;
        if (*p == '&')
            p++;
    }
    *out = obj;
    return 0;

out_fail:
    free(name);
    free(value);
    json_decref(obj);
    return -1;
}
