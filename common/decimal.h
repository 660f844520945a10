/* Exact decimal numbers for the JSON Schema keywords on numbers.
 *
 * A JSON number's text is read into a sign, a string of significant digits
 * and a power of ten, without rounding: 1e400, 1e-400 and
 * 123456789012345678901234567890 compare and divide exactly. A double (a
 * number jansson holds as a real) reads as the shortest decimal that turns
 * back into the same double, so 0.1 from a schema equals 0.1 sent by a
 * client, as a person reading both would expect.
 */
#ifndef FPESA_DECIMAL_H
#define FPESA_DECIMAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* value = (neg ? -1 : 1) * digits * 10^exp; digits has no leading or
 * trailing zeros; zero is nd == 0 (its sign ignored). */
struct decimal {
    bool neg;
    size_t nd;
    long long exp;
    const char *digits; /* into buf, or allocated (see decimal_fini) */
    char *owned;
    char buf[40];
};

/* Reads the JSON number text s[0..len) (borrowed) into d. Returns 0, or -1
 * when out of memory (d is then zero). Text that is not a JSON number reads
 * as whatever digits it has; check it first (jsontext.h). */
int decimal_parse(struct decimal *d, const char *s, size_t len);

/* d = v, exactly. */
void decimal_from_int(struct decimal *d, long long v);

/* d = the shortest decimal (of 15 to 17 significant digits) that reads back
 * as the finite double v. */
void decimal_from_double(struct decimal *d, double v);

/* Frees what d allocated; d may be reused after decimal_parse again. */
void decimal_fini(struct decimal *d);

/* -1, 0 or 1 as a <, ==, > b. */
int decimal_cmp(const struct decimal *a, const struct decimal *b);

bool decimal_is_integer(const struct decimal *d);

/* True when a / m is an integer; m must not be zero. A divisor of more than
 * 19 significant digits is never given by a schema (its numbers are int64s
 * or doubles) and answers false. */
bool decimal_is_multiple(const struct decimal *a, const struct decimal *m);

/* True, with *out, when d is an integer that fits int64. */
bool decimal_to_int64(const struct decimal *d, long long *out);

/* A hash equal for equal values. */
uint64_t decimal_hash(const struct decimal *d);

/* Writes d as JSON number text (digits, then "e<exp>" when exp != 0) into
 * buf of size cap, cut with "..." when it does not fit. */
void decimal_format(const struct decimal *d, char *buf, size_t cap);

#endif
