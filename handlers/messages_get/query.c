#include "query.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64val(char c) {
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

int cursor_encode(char kind, int64_t seq, char *out, size_t len) {
    char raw[24];
    int n;
    size_t w = 0;

    if ((kind != 'b' && kind != 'p') || seq < 0)
        return -1;
    n = snprintf(raw, sizeof(raw), "%c%lld", kind, (long long)seq);
    if (n < 0 || (size_t)n >= sizeof(raw))
        return -1;
    for (int i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)raw[i] << 16;
        int left = n - i;
        if (left > 1)
            v |= (unsigned char)raw[i + 1] << 8;
        if (left > 2)
            v |= (unsigned char)raw[i + 2];
        if (w + 5 > len)
            return -1;
        out[w++] = b64[(v >> 18) & 63];
        out[w++] = b64[(v >> 12) & 63];
        if (left > 1)
            out[w++] = b64[(v >> 6) & 63];
        if (left > 2)
            out[w++] = b64[v & 63];
    }
    out[w] = '\0';
    return 0;
}

int cursor_decode(const char *s, char kind, int64_t *seq) {
    char raw[32];
    size_t n, w = 0;
    char *end;
    long long v;

    if (!s)
        return -1;
    n = strlen(s);
    if (n < 2 || n > CURSOR_MAX || n % 4 == 1)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        unsigned v4 = 0;
        size_t left = n - i < 4 ? n - i : 4;
        for (size_t j = 0; j < 4; j++) {
            int d = j < left ? b64val(s[i + j]) : 0;
            if (d < 0)
                return -1;
            v4 = v4 << 6 | (unsigned)d;
        }
        /* Bits past the last whole byte must be zero: one spelling per cursor. */
        if ((left == 2 && (v4 & 0xFFFF)) || (left == 3 && (v4 & 0xFF)))
            return -1;
        raw[w++] = (char)(v4 >> 16);
        if (left > 2)
            raw[w++] = (char)(v4 >> 8 & 0xFF);
        if (left > 3)
            raw[w++] = (char)(v4 & 0xFF);
        if (w > sizeof(raw) - 4)
            return -1;
    }
    raw[w] = '\0';
    if (w < 2 || raw[0] != kind)
        return -1;
    for (size_t i = 1; i < w; i++)
        if (raw[i] < '0' || raw[i] > '9')
            return -1;
    if (raw[1] == '0' && w > 2)
        return -1; /* no leading zeros */
    errno = 0;
    v = strtoll(raw + 1, &end, 10);
    if (errno || *end || v < 0)
        return -1;
    *seq = v;
    return 0;
}

/* A decimal number of at most 10 digits as a string (or a JSON integer). */
static int number(const json_t *v, const char *name, long long max, long long *out, char *err,
                  size_t errlen) {
    const char *s;
    char *end;
    long long n;

    if (json_is_integer(v)) {
        n = json_integer_value(v);
    } else if ((s = json_string_value(v))) {
        size_t l = strlen(s);
        if (l == 0 || l > 10 || strspn(s, "0123456789") != l) {
            snprintf(err, errlen, "%s must be a non-negative whole number", name);
            return -1;
        }
        errno = 0;
        n = strtoll(s, &end, 10);
        if (errno || *end) {
            snprintf(err, errlen, "%s must be a non-negative whole number", name);
            return -1;
        }
    } else {
        snprintf(err, errlen, "%s must be a string of digits", name);
        return -1;
    }
    if (n < 0 || n > max) {
        snprintf(err, errlen, "%s must be between 0 and %lld", name, max);
        return -1;
    }
    *out = n;
    return 0;
}

/* contains: the text of a JSON object or array, copied into out. */
static int parse_contains(const json_t *v, char *out, size_t len, char *err, size_t errlen) {
    const char *s = json_string_value(v);
    json_error_t jerr;
    json_t *doc;
    size_t n;

    if (!s || !*s) {
        snprintf(err, errlen, "contains must be JSON text, e.g. {\"key\":\"value\"}");
        return -1;
    }
    doc = json_loads(s, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
    if (!doc) {
        snprintf(err, errlen, "contains is not JSON: %.100s (column %d)", jerr.text, jerr.column);
        return -1;
    }
    if (!json_is_object(doc) && !json_is_array(doc)) {
        json_decref(doc);
        snprintf(err, errlen, "contains must be a JSON object or array");
        return -1;
    }
    json_decref(doc);
    /* The text itself goes to PostgreSQL, which reads its numbers exactly;
     * jansson only said it is JSON. */
    n = strlen(s);
    if (n >= len) {
        snprintf(err, errlen, "contains is longer than %zu bytes", len - 1);
        return -1;
    }
    memcpy(out, s, n + 1);
    return 0;
}

int msgq_parse(const json_t *args, struct msgq *q, char *err, size_t errlen) {
    const json_t *limit = NULL, *before = NULL, *offset = NULL, *pid = NULL, *after = NULL,
                 *contains = NULL;
    const char *key;
    json_t *v;
    long long n;

    memset(q, 0, sizeof(*q));
    q->mode = MSGQ_KEYSET;
    q->limit = MSGQ_DEFAULT_LIMIT;
    q->before = INT64_MAX;
    q->frozen = -1;
    if (!args || json_is_null(args))
        return 0;
    if (!json_is_object(args)) {
        snprintf(err, errlen, "args must be an object");
        return -1;
    }
    json_object_foreach((json_t *)args, key, v) {
        if (strcmp(key, "limit") == 0)
            limit = v;
        else if (strcmp(key, "before") == 0)
            before = v;
        else if (strcmp(key, "offset") == 0)
            offset = v;
        else if (strcmp(key, "paginationId") == 0)
            pid = v;
        else if (strcmp(key, "after") == 0)
            after = v;
        else if (strcmp(key, "contains") == 0)
            contains = v;
        else {
            snprintf(err, errlen,
                     "unknown argument \"%.64s\" (known: limit, before, offset, paginationId, "
                     "after, contains)",
                     key);
            return -1;
        }
    }
    if (after && (before || offset || pid)) {
        snprintf(err, errlen, "after cannot be combined with before, offset or paginationId");
        return -1;
    }
    if (before && (offset || pid)) {
        snprintf(err, errlen,
                 "before (keyset pagination) cannot be combined with offset or paginationId");
        return -1;
    }
    if (contains && (after || offset || pid)) {
        snprintf(err, errlen, "contains goes with keyset pagination only (limit, before)");
        return -1;
    }
    if (offset || pid)
        q->mode = MSGQ_OFFSET;
    else if (after)
        q->mode = MSGQ_AFTER;
    if (limit) {
        if (number(limit, "limit", 9999999999LL, &n, err, errlen) < 0)
            return -1;
        if (n == 0) {
            snprintf(err, errlen, "limit must be at least 1");
            return -1;
        }
        q->limit = (long)n;
    }
    if (q->mode == MSGQ_OFFSET) {
        if (q->limit > MSGQ_MAX_OFFSET_LIMIT)
            q->limit = MSGQ_MAX_OFFSET_LIMIT;
    } else if (q->limit > MSGQ_MAX_LIMIT) {
        q->limit = MSGQ_MAX_LIMIT;
    }
    if (offset) {
        if (number(offset, "offset", MSGQ_MAX_OFFSET, &n, err, errlen) < 0)
            return -1;
        q->offset = n;
    }
    if (pid) {
        /* The original fpesa's paginationId is a whole number (a string of
         * digits in a query string): the position of the newest message of
         * the view. The opaque form is the same number as a cursor. */
        const char *ps = json_string_value(pid);
        size_t pl = ps ? strlen(ps) : 0;

        if (json_is_integer(pid) && json_integer_value(pid) >= 0) {
            q->frozen = json_integer_value(pid);
        } else if (ps && pl > 0 && pl <= 18 && strspn(ps, "0123456789") == pl) {
            q->frozen = strtoll(ps, NULL, 10);
        } else if (!ps || cursor_decode(ps, 'p', &q->frozen) < 0) {
            snprintf(err, errlen, "paginationId is not one this service issued");
            return -1;
        }
    }
    if (before) {
        if (!json_is_string(before) ||
            cursor_decode(json_string_value(before), 'b', &q->before) < 0 || q->before < 1) {
            snprintf(err, errlen, "before is not a cursor this service issued (use \"next\")");
            return -1;
        }
    }
    if (contains && parse_contains(contains, q->contains, sizeof(q->contains), err, errlen) < 0)
        return -1;
    if (after) {
        const char *s = json_string_value(after);
        if (!s || !*s || strlen(s) > MSGQ_ID_MAX) {
            snprintf(err, errlen, "after must be a message id of 1 to %d characters", MSGQ_ID_MAX);
            return -1;
        }
        snprintf(q->after, sizeof(q->after), "%s", s);
    }
    return 0;
}
