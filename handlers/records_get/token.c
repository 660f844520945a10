#include "token.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64val(char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int token_encode(int64_t usec, const char *id, char *out, size_t outlen) {
    char raw[32 + TOKEN_ID_MAX];
    size_t n, idl = strlen(id), w = 0;
    int k;

    if (idl == 0 || idl > TOKEN_ID_MAX)
        return -1;
    k = snprintf(raw, sizeof(raw), "%lld:%s", (long long)usec, id);
    if (k < 0 || (size_t)k >= sizeof(raw))
        return -1;
    n = (size_t)k;
    if ((n + 2) / 3 * 4 + 1 > outlen)
        return -1;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)raw[i] << 16;
        size_t left = n - i;

        if (left > 1)
            v |= (uint32_t)(unsigned char)raw[i + 1] << 8;
        if (left > 2)
            v |= (unsigned char)raw[i + 2];
        out[w++] = alphabet[(v >> 18) & 63];
        out[w++] = alphabet[(v >> 12) & 63];
        if (left > 1)
            out[w++] = alphabet[(v >> 6) & 63];
        if (left > 2)
            out[w++] = alphabet[v & 63];
    }
    out[w] = '\0';
    return 0;
}

int token_decode(const char *text, struct token *t, char *err, size_t errlen) {
    unsigned char raw[TOKEN_MAX];
    size_t len = strlen(text), n = 0;
    char num[24], *end;
    const char *colon;
    long long usec;

    if (len == 0 || len > TOKEN_MAX || len % 4 == 1) {
        snprintf(err, errlen, "next: not a page token (bad length)");
        return -1;
    }
    for (size_t i = 0; i < len; i += 4) {
        uint32_t v = 0;
        size_t k = len - i < 4 ? len - i : 4;

        for (size_t j = 0; j < 4; j++) {
            int d = j < k ? b64val(text[i + j]) : 0;
            if (d < 0) {
                snprintf(err, errlen, "next: not a page token (bad character)");
                return -1;
            }
            v = (v << 6) | (uint32_t)d;
        }
        raw[n++] = (unsigned char)(v >> 16);
        if (k > 2)
            raw[n++] = (unsigned char)(v >> 8);
        if (k > 3)
            raw[n++] = (unsigned char)v;
    }
    colon = memchr(raw, ':', n);
    if (!colon || colon == (const char *)raw ||
        (size_t)(colon - (const char *)raw) >= sizeof(num)) {
        snprintf(err, errlen, "next: not a page token");
        return -1;
    }
    memcpy(num, raw, (size_t)(colon - (const char *)raw));
    num[colon - (const char *)raw] = '\0';
    for (const char *p = num; *p; p++) {
        if (!(*p >= '0' && *p <= '9') && !(p == num && *p == '-')) {
            snprintf(err, errlen, "next: not a page token (bad time)");
            return -1;
        }
    }
    errno = 0;
    usec = strtoll(num, &end, 10);
    if (errno == ERANGE || *end || end == num) {
        snprintf(err, errlen, "next: not a page token (bad time)");
        return -1;
    }
    {
        size_t idl = n - (size_t)(colon + 1 - (const char *)raw);

        if (idl == 0 || idl > TOKEN_ID_MAX) {
            snprintf(err, errlen, "next: not a page token (bad id)");
            return -1;
        }
        for (size_t i = 0; i < idl; i++) {
            unsigned char c = (unsigned char)colon[1 + i];
            if (c < 0x20 || c > 0x7e) {
                snprintf(err, errlen, "next: not a page token (bad id)");
                return -1;
            }
        }
        memcpy(t->id, colon + 1, idl);
        t->id[idl] = '\0';
    }
    t->usec = usec;
    return 0;
}
