#include "decimal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Exponents are clamped here: a JSON text cannot hold more digits than this,
 * so the clamp never changes a comparison between real inputs. */
#define EXP_CLAMP (LLONG_MAX / 4)

static void set_zero(struct decimal *d) {
    d->neg = false;
    d->nd = 0;
    d->exp = 0;
    d->digits = d->buf;
    d->buf[0] = '\0';
}

void decimal_fini(struct decimal *d) {
    free(d->owned);
    d->owned = NULL;
    set_zero(d);
}

int decimal_parse(struct decimal *d, const char *s, size_t len) {
    size_t i = 0, frac = 0, ndig = 0;
    long long e = 0;
    bool in_frac = false, eneg = false;
    char *out;

    d->owned = NULL;
    set_zero(d);
    if (i < len && s[i] == '-') {
        d->neg = true;
        i++;
    }
    /* Digits are at most len; write them into buf or a new buffer. */
    if (len < sizeof(d->buf)) {
        out = d->buf;
    } else {
        d->owned = malloc(len + 1);
        if (!d->owned)
            return -1;
        out = d->owned;
    }
    for (; i < len; i++) {
        char ch = s[i];

        if (ch >= '0' && ch <= '9') {
            if (ndig == 0 && ch == '0') {
                /* A leading zero: it only moves the point. */
                if (in_frac)
                    frac++;
                continue;
            }
            out[ndig++] = ch;
            if (in_frac)
                frac++;
        } else if (ch == '.') {
            in_frac = true;
        } else if (ch == 'e' || ch == 'E') {
            i++;
            break;
        } else {
            break;
        }
    }
    if (i < len && (s[i] == '+' || s[i] == '-'))
        eneg = s[i++] == '-';
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        if (e < EXP_CLAMP / 10)
            e = e * 10 + (s[i] - '0');
    }
    if (eneg)
        e = -e;
    while (ndig > 0 && out[ndig - 1] == '0') {
        ndig--;
        e++;
    }
    out[ndig] = '\0';
    d->digits = out;
    d->nd = ndig;
    d->exp = e - (long long)frac;
    if (ndig == 0) {
        d->neg = false;
        d->exp = 0;
    }
    return 0;
}

void decimal_from_int(struct decimal *d, long long v) {
    char tmp[32];

    snprintf(tmp, sizeof(tmp), "%lld", v);
    decimal_parse(d, tmp, strlen(tmp)); /* fits buf: never allocates */
}

void decimal_from_double(struct decimal *d, double v) {
    char tmp[40];

    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, v);
        if (prec == 17 || strtod(tmp, NULL) == v)
            break;
    }
    decimal_parse(d, tmp, strlen(tmp));
}

/* The power of ten of the leading digit of a non-zero d. */
static long long lead_power(const struct decimal *d) {
    return d->exp + (long long)d->nd - 1;
}

int decimal_cmp(const struct decimal *a, const struct decimal *b) {
    int sa = a->nd == 0 ? 0 : a->neg ? -1 : 1;
    int sb = b->nd == 0 ? 0 : b->neg ? -1 : 1;
    int mag = 0;

    if (sa != sb)
        return sa < sb ? -1 : 1;
    if (sa == 0)
        return 0;
    if (lead_power(a) != lead_power(b)) {
        mag = lead_power(a) < lead_power(b) ? -1 : 1;
    } else {
        size_t n = a->nd > b->nd ? a->nd : b->nd;

        for (size_t i = 0; i < n && mag == 0; i++) {
            char x = i < a->nd ? a->digits[i] : '0', y = i < b->nd ? b->digits[i] : '0';

            if (x != y)
                mag = x < y ? -1 : 1;
        }
    }
    return sa < 0 ? -mag : mag;
}

bool decimal_is_integer(const struct decimal *d) {
    return d->nd == 0 || d->exp >= 0;
}

/* b^e mod m, m > 0. */
static uint64_t pow_mod(uint64_t b, long long e, uint64_t m) {
    unsigned __int128 r = 1 % m, x = b % m;

    while (e > 0) {
        if (e & 1)
            r = r * x % m;
        x = x * x % m;
        e >>= 1;
    }
    return (uint64_t)r;
}

bool decimal_is_multiple(const struct decimal *a, const struct decimal *m) {
    uint64_t dm = 0;
    unsigned __int128 r = 0;

    if (m->nd == 0)
        return false;
    if (a->nd == 0)
        return true;
    /* a's digits end in a non-zero digit, so a / m needs m's point at or
     * right of a's: with a->exp < m->exp the quotient has a fraction. */
    if (a->exp < m->exp)
        return false;
    if (m->nd > 19)
        return false;
    for (size_t i = 0; i < m->nd; i++)
        dm = dm * 10 + (uint64_t)(m->digits[i] - '0');
    for (size_t i = 0; i < a->nd; i++)
        r = (r * 10 + (unsigned)(a->digits[i] - '0')) % dm;
    r = r * pow_mod(10, a->exp - m->exp, dm) % dm;
    return r == 0;
}

bool decimal_to_int64(const struct decimal *d, long long *out) {
    unsigned long long v = 0, lim;

    if (d->nd == 0) {
        *out = 0;
        return true;
    }
    if (d->exp < 0 || (long long)d->nd + d->exp > 19)
        return false;
    lim = d->neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
    for (long long i = 0; i < (long long)d->nd + d->exp; i++) {
        unsigned dig = i < (long long)d->nd ? (unsigned)(d->digits[i] - '0') : 0;

        if (v > (lim - dig) / 10)
            return false;
        v = v * 10 + dig;
    }
    *out = d->neg ? (long long)(0 - v) : (long long)v;
    return true;
}

uint64_t decimal_hash(const struct decimal *d) {
    uint64_t h = 1469598103934665603ULL;

    if (d->nd == 0)
        return 0x5a17;
    h = (h ^ (uint64_t)d->neg) * 1099511628211ULL;
    h = (h ^ (uint64_t)d->exp) * 1099511628211ULL;
    for (size_t i = 0; i < d->nd; i++)
        h = (h ^ (unsigned char)d->digits[i]) * 1099511628211ULL;
    return h;
}

void decimal_format(const struct decimal *d, char *buf, size_t cap) {
    size_t room;
    int n;

    if (cap == 0)
        return;
    if (d->nd == 0) {
        snprintf(buf, cap, "0");
        return;
    }
    /* Room for the sign, "e" and the exponent; the digits take what is left. */
    room = cap > 32 ? cap - 32 : 1;
    if (d->nd <= room) {
        n = snprintf(buf, cap, "%s%s", d->neg ? "-" : "", d->digits);
    } else {
        n = snprintf(buf, cap, "%s%.*s...", d->neg ? "-" : "", (int)(room > 3 ? room - 3 : 1),
                     d->digits);
        /* The exponent of what is shown stays that of the whole number. */
        snprintf(buf + n, cap - (size_t)n, "e%lld", lead_power(d));
        return;
    }
    if (d->exp != 0 && n >= 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, "e%lld", d->exp);
}
