/* Parsers of configuration values that stand alone (sizes, durations,
 * host:port), used by the key tables and by the environment overrides.
 */
#include "config_int.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int cfg_parse_size(const char *s, size_t *out) {
    static const struct {
        const char *unit;
        unsigned long long mult;
    } units[] = {
        {"", 1},
        {"b", 1},
        {"k", 1000ull},
        {"kb", 1000ull},
        {"kib", 1024ull},
        {"m", 1000ull * 1000},
        {"mb", 1000ull * 1000},
        {"mib", 1024ull * 1024},
        {"g", 1000ull * 1000 * 1000},
        {"gb", 1000ull * 1000 * 1000},
        {"gib", 1024ull * 1024 * 1024},
    };
    unsigned long long n;
    char *end;
    size_t i;

    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    n = strtoull(s, &end, 10);
    if (errno == ERANGE)
        return -1;
    while (*end == ' ')
        end++;
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end, units[i].unit) == 0) {
            if (n > SIZE_MAX / units[i].mult)
                return -1;
            *out = (size_t)(n * units[i].mult);
            return 0;
        }
    }
    return -1;
}

int cfg_parse_duration(const char *s, long *out_ms) {
    static const struct {
        const char *unit;
        double mult;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    char num[64];
    const char *p = s;
    size_t n = 0, i, dots = 0;
    double v, ms, r;
    char *end;

    if (!s)
        return -1;
    /* Only digits and one point: strtod alone would take "inf", "0x1p3", ... */
    while ((*p >= '0' && *p <= '9') || *p == '.') {
        if (*p == '.')
            dots++;
        p++;
    }
    n = (size_t)(p - s);
    if (n == 0 || n >= sizeof(num) || dots > 1 || (n == 1 && dots == 1))
        return -1;
    memcpy(num, s, n);
    num[n] = '\0';
    v = strtod(num, &end);
    if (*end != '\0' || !isfinite(v))
        return -1;
    while (*p == ' ')
        p++;
    if (*p == '\0') {
        /* A bare number has no unit; only zero means the same in all. */
        if (v != 0)
            return -1;
        *out_ms = 0;
        return 0;
    }
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(p, units[i].unit) == 0) {
            ms = v * units[i].mult;
            if (ms > 1e12)
                return -1;
            r = floor(ms + 0.5);
            if (fabs(ms - r) > 1e-6)
                return -1;
            *out_ms = (long)r;
            return 0;
        }
    }
    return -1;
}

/* "host:port", "[v6addr]:port" or ":port"-less "port". host may be NULL
 * when only a port is given. Returns 0, or -1 with why filled. */
int cfg_parse_listen(const char *s, char **host, int *port, char *why, size_t why_len) {
    const char *colon = strrchr(s, ':');
    const char *h = s, *ps;
    size_t hl;
    long long p;
    char *end;

    *host = NULL;
    if (!colon) {
        ps = s;
        hl = 0;
    } else {
        ps = colon + 1;
        hl = (size_t)(colon - s);
        if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
            h = s + 1;
            hl -= 2;
        } else if (memchr(s, ':', hl) || memchr(s, '[', hl) || memchr(s, ']', hl)) {
            snprintf(why, why_len, "an IPv6 address must be written in brackets: [::1]:8081");
            return -1;
        }
        if (hl == 0) {
            snprintf(why, why_len, "expected host:port, the host is missing");
            return -1;
        }
    }
    if (*ps < '0' || *ps > '9') {
        snprintf(why, why_len, "expected host:port with a port number");
        return -1;
    }
    errno = 0;
    p = strtoll(ps, &end, 10);
    if (errno || *end != '\0' || p < 1 || p > 65535) {
        snprintf(why, why_len, "port must be a number from 1 to 65535");
        return -1;
    }
    if (hl > 0) {
        *host = strndup(h, hl);
        if (!*host) {
            snprintf(why, why_len, "out of memory");
            return -1;
        }
    }
    *port = (int)p;
    return 0;
}
