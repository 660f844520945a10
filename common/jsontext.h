/* JSON text read exactly: a strict RFC 8259 reader that keeps the client's
 * bytes.
 *
 * jansson holds a number as an int64 or a double, so a value such as 1e400,
 * 123456789012345678901234567890 or 0.1000000000000000000001 cannot pass
 * through it unchanged. The data path therefore never re-encodes user data:
 * it checks the text here, splices the original bytes into envelopes and
 * answers, and builds a jansson tree only to evaluate a JSON Schema. In that
 * tree a number jansson cannot hold exactly is a real near its value, and
 * its text is kept beside the tree (struct jtext_numbers) so the schema
 * validator compares it exactly (see decimal.h).
 *
 * What is refused (jtext_check and jtext_parse alike): anything RFC 8259
 * does not allow (comments, trailing commas, leading zeros, NaN, single
 * quotes, control characters in strings), bytes that are not UTF-8, the
 * escape \u0000 and unpaired surrogate escapes (no UTF-8 text and no
 * PostgreSQL jsonb can hold them), nesting deeper than the limit, and a
 * number outside what PostgreSQL's numeric keeps (more than 131072 digits
 * before the decimal point or 16383 after it, once written out in full).
 * Optionally the text written with every number in full (as the store and
 * every reader show it) is limited in size, so a few bytes such as 1e100000
 * cannot become hundreds of kilobytes downstream. jtext_parse also refuses a
 * duplicate key in an object.
 */
#ifndef FPESA_JSONTEXT_H
#define FPESA_JSONTEXT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define JTEXT_DEFAULT_DEPTH 512
/* The depth jtext_member, jtext_elements and jtext_error_code accept: as
 * deep as jansson reads, so a relayed answer is never refused for depth
 * where it used to pass. */
#define JTEXT_RELAY_DEPTH 2048
/* PostgreSQL numeric's range: digits before and after the decimal point. */
#define JTEXT_MAX_INT_DIGITS 131072
#define JTEXT_MAX_FRAC_DIGITS 16383

enum jtext_status {
    JTEXT_OK = 0,
    JTEXT_SYNTAX = -1,   /* not JSON (or not UTF-8, or a duplicate key) */
    JTEXT_DEPTH = -2,    /* nested deeper than the limit */
    JTEXT_RANGE = -3,    /* a number outside PostgreSQL numeric's range */
    JTEXT_EXPANDED = -4, /* too large once its numbers are written in full */
    JTEXT_NOMEM = -5,    /* out of memory building the tree */
};

struct jtext_limits {
    int max_depth;       /* 0: JTEXT_DEFAULT_DEPTH */
    size_t max_expanded; /* 0: no limit on the size with numbers in full */
    bool grammar_only;   /* RFC 8259's grammar and UTF-8 only: \u0000, unpaired
                            surrogate escapes and numbers of any size pass
                            (for text relayed, never for text stored) */
};

struct jtext_error {
    enum jtext_status status;
    size_t offset;  /* byte offset of the problem */
    int line;       /* 1-based */
    int column;     /* 1-based, in bytes */
    char text[160]; /* a sentence for a human, e.g. "unexpected character '}'" */
};

/* The text of every number in a tree built by jtext_parse that jansson does
 * not hold exactly. Opaque; free with jtext_numbers_free. */
struct jtext_numbers;

/* Checks that s[0..len) (borrowed) is one JSON text, surrounding whitespace
 * allowed. lim may be NULL (defaults). Returns JTEXT_OK or a negative
 * jtext_status with err (may be NULL) filled. Builds nothing, allocates
 * nothing. */
int jtext_check(const char *s, size_t len, const struct jtext_limits *lim, struct jtext_error *err);

/* Like jtext_check, and builds the jansson tree of the text into *out (new
 * reference) and, when nums is not NULL, the exact text of the numbers
 * jansson cannot hold into *nums (new, free with jtext_numbers_free; NULL
 * when there are none). The texts point into s, which must outlive *nums.
 * On failure *out and *nums are NULL. */
int jtext_parse(const char *s, size_t len, const struct jtext_limits *lim, json_t **out,
                struct jtext_numbers **nums, struct jtext_error *err);

/* The exact text of number v (borrowed, a node of the tree *nums was built
 * with), or NULL when jansson holds v exactly. nums may be NULL. */
const char *jtext_number_text(const struct jtext_numbers *nums, const json_t *v, size_t *len);

void jtext_numbers_free(struct jtext_numbers *nums);

/* Finds the member key (NUL-terminated, compared after unescaping) of the
 * object that s[0..len) holds. Returns 1 and the span of its value text in
 * *val and *vlen (pointers into s), 0 when the object has no such member, or -1
 * when the text is not a JSON object (or not valid JSON as far as read). The
 * last of duplicate members wins, as in PostgreSQL. */
int jtext_member(const char *s, size_t len, const char *key, const char **val, size_t *vlen);

/* Calls fn(ctx, text, len) with the text of each element, in order, of the
 * array that s[0..len) holds (read as with grammar_only). Returns 0, -1 when
 * the text is not a JSON array (or not valid JSON), or fn's first non-zero
 * return value (which stops the walk). */
typedef int (*jtext_element_fn)(void *ctx, const char *text, size_t len);
int jtext_elements(const char *s, size_t len, jtext_element_fn fn, void *ctx);

/* The value of the JSON string literal s[0..len) (quotes included, checked
 * JSON) unescaped into a new NUL-terminated buffer (free with free()), its
 * length in *out_len; NULL when s is not a string literal or out of memory. */
char *jtext_string(const char *s, size_t len, size_t *out_len);

/* Reads the integer member "code" of the member "error" of the object in
 * s[0..len) when the text is valid JSON (read as with grammar_only): returns 1 and *code when that
 * member is an integer that fits an int, 0 when the text is valid JSON without one, and a negative
 * jtext_status (err filled, may be NULL) when the text is not valid. */
int jtext_error_code(const char *s, size_t len, int *code, struct jtext_error *err);

/* Copies src[0..len) into dst (of size cap, NUL-terminated on return; cap
 * >= 1) as valid UTF-8 text: every byte that does not start a valid UTF-8
 * character becomes U+FFFD, NUL becomes U+FFFD, and a character that does
 * not fit is left out whole, never cut. Returns the length written. */
size_t jtext_utf8_clean(char *dst, size_t cap, const char *src, size_t len);

/* Appends to dst (of size cap, NUL-terminated on return; cap >= 1) the JSON
 * string body (no quotes) of the bytes src[0..len): valid UTF-8 is kept,
 * every other byte becomes U+FFFD, control characters, quote and backslash
 * are escaped. A character or escape that does not fit is left out whole,
 * never cut. Returns the length written. */
size_t jtext_escape(char *dst, size_t cap, const char *src, size_t len);

#endif
