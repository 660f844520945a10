#include "jsontext.h"
#include "jsontext_int.h"

#include "decimal.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct jtext_num {
    const json_t *v;
    const char *text;
    size_t len;
};

struct jtext_numbers {
    struct jtext_num *e;
    size_t n, cap;
};

/* The reader's state. A member to capture (jtext_member) is looked for in
 * the top-level object only. */
struct reader {
    const char *s;
    size_t len, pos;
    int max_depth;
    size_t max_expanded, expanded;
    bool build, grammar_only;
    struct jtext_numbers *nums;
    struct jtext_error *err;
    int status;
    const char *want_key; /* capture this member of the root object */
    const char *got;
    size_t got_len;
    bool root_is_object, root_is_array;
    jtext_element_fn elem_fn; /* called for each element of the root array */
    void *elem_ctx;
    int elem_rc;
};

__attribute__((format(printf, 3, 4))) static int fail(struct reader *r, int status, const char *fmt,
                                                      ...) {
    va_list ap;

    if (r->status)
        return -1;
    r->status = status;
    if (!r->err)
        return -1;
    r->err->status = status;
    r->err->offset = r->pos;
    r->err->line = 1;
    r->err->column = 1;
    for (size_t i = 0; i < r->pos && i < r->len; i++) {
        if (r->s[i] == '\n') {
            r->err->line++;
            r->err->column = 1;
        } else {
            r->err->column++;
        }
    }
    va_start(ap, fmt);
    vsnprintf(r->err->text, sizeof(r->err->text), fmt, ap);
    va_end(ap);
    return -1;
}

/* Describes the byte at the reader's position for an error message. */
static const char *what_here(struct reader *r, char *buf, size_t cap) {
    unsigned char ch;

    if (r->pos >= r->len)
        return "the end of the text";
    ch = (unsigned char)r->s[r->pos];
    if (ch >= 0x21 && ch < 0x7f)
        snprintf(buf, cap, "character '%c'", ch);
    else
        snprintf(buf, cap, "byte 0x%02x", ch);
    return buf;
}

static int unexpected(struct reader *r, const char *wanted) {
    char b[32];

    return fail(r, JTEXT_SYNTAX, "expected %s, found %s", wanted, what_here(r, b, sizeof(b)));
}

static void skip_ws(struct reader *r) {
    while (r->pos < r->len) {
        char ch = r->s[r->pos];

        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r')
            return;
        r->pos++;
    }
}

static int hex4(const char *p) {
    int v = 0;

    for (int i = 0; i < 4; i++) {
        char ch = p[i];
        int d;

        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if (ch >= 'a' && ch <= 'f')
            d = ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F')
            d = ch - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Reads a string at the opening quote. With out, writes its unescaped bytes
 * there (out has room for as many bytes as the text of the string: an
 * escape never grows) and their count in *out_len. */
static int read_string(struct reader *r, char *out, size_t *out_len) {
    size_t w = 0;

    r->pos++; /* the quote */
    while (r->pos < r->len) {
        unsigned char ch = (unsigned char)r->s[r->pos];

        if (ch == '"') {
            r->pos++;
            if (out_len)
                *out_len = w;
            return 0;
        }
        if (ch < 0x20)
            return fail(r, JTEXT_SYNTAX, "control character 0x%02x in a string (escape it)", ch);
        if (ch == '\\') {
            char e;
            int cp;

            if (r->pos + 1 >= r->len)
                break;
            e = r->s[r->pos + 1];
            switch (e) {
            case '"':
            case '\\':
            case '/':
                if (out)
                    out[w++] = e;
                r->pos += 2;
                continue;
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                if (out)
                    out[w++] = e == 'b'   ? '\b'
                               : e == 'f' ? '\f'
                               : e == 'n' ? '\n'
                               : e == 'r' ? '\r'
                                          : '\t';
                r->pos += 2;
                continue;
            case 'u':
                break;
            default:
                r->pos++;
                return fail(r, JTEXT_SYNTAX, "invalid escape in a string");
            }
            if (r->pos + 6 > r->len || (cp = hex4(r->s + r->pos + 2)) < 0) {
                r->pos++;
                return fail(r, JTEXT_SYNTAX, "invalid \\u escape in a string");
            }
            if (r->grammar_only && !out) {
                r->pos += 6;
                continue;
            }
            if (cp == 0)
                return fail(r, JTEXT_SYNTAX, "\\u0000 is not allowed in a string");
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return fail(r, JTEXT_SYNTAX, "unpaired surrogate escape in a string");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                int lo;

                if (r->pos + 12 > r->len || r->s[r->pos + 6] != '\\' || r->s[r->pos + 7] != 'u' ||
                    (lo = hex4(r->s + r->pos + 8)) < 0 || lo < 0xdc00 || lo > 0xdfff)
                    return fail(r, JTEXT_SYNTAX, "unpaired surrogate escape in a string");
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                r->pos += 6;
            }
            if (out)
                w += put_utf8(out + w, (unsigned)cp);
            r->pos += 6;
            continue;
        }
        if (ch < 0x80) {
            if (out)
                out[w++] = (char)ch;
            r->pos++;
            continue;
        }
        {
            size_t n = jtext_utf8_seq((const unsigned char *)r->s + r->pos, r->len - r->pos);

            if (n == 0)
                return fail(r, JTEXT_SYNTAX, "a string is not valid UTF-8");
            if (out)
                memcpy(out + w, r->s + r->pos, n);
            w += out ? n : 0;
            r->pos += n;
        }
    }
    return fail(r, JTEXT_SYNTAX, "unterminated string");
}

/* The bytes between the quote at start and its closing quote (or the end
 * of the text): at least the unescaped length of the string. */
static size_t raw_length(const struct reader *r, size_t start) {
    size_t i = start + 1;

    while (i < r->len && r->s[i] != '"')
        i += r->s[i] == '\\' ? 2 : 1;
    return (i < r->len ? i : r->len) - start;
}

static int nums_add(struct jtext_numbers **np, const json_t *v, const char *text, size_t len) {
    struct jtext_numbers *n = *np;

    if (!n) {
        n = calloc(1, sizeof(*n));
        if (!n)
            return -1;
        *np = n;
    }
    if (n->n == n->cap) {
        size_t cap = n->cap ? n->cap * 2 : 8;
        struct jtext_num *e = realloc(n->e, cap * sizeof(*e));

        if (!e)
            return -1;
        n->e = e;
        n->cap = cap;
    }
    n->e[n->n++] = (struct jtext_num){v, text, len};
    return 0;
}

/* A jansson number for the number text t[0..len): an integer when it is one
 * that fits int64, a real when the double reads back as the same decimal,
 * else a real near the value with the text kept in r->nums. */
static json_t *make_number(struct reader *r, const char *t, size_t len, bool integral, size_t sig,
                           long long lead) {
    char small[64], *buf = small;
    json_t *v = NULL;
    double d;

    if (len >= sizeof(small)) {
        buf = malloc(len + 1);
        if (!buf)
            return NULL;
    }
    memcpy(buf, t, len);
    buf[len] = '\0';
    if (integral && len <= 20) {
        char *end;
        long long x;

        errno = 0;
        x = strtoll(buf, &end, 10);
        if (errno == 0 && *end == '\0') {
            v = json_integer(x);
            goto out;
        }
    }
    d = strtod(buf, NULL);
    /* Up to 15 significant digits in the normal range a double keeps. */
    if (sig <= 15 && lead > -300 && lead < 300) {
        v = json_real(d);
        goto out;
    }
    if (isfinite(d)) {
        struct decimal a, b;
        int same;

        long long iv;

        if (decimal_parse(&a, t, len) < 0)
            goto out;
        if (decimal_to_int64(&a, &iv)) {
            /* 1.0e3 or 1234567890123456789.0: an integer jansson holds. */
            decimal_fini(&a);
            v = json_integer(iv);
            goto out;
        }
        decimal_from_double(&b, d);
        same = decimal_cmp(&a, &b) == 0;
        decimal_fini(&a);
        decimal_fini(&b);
        if (same) {
            v = json_real(d);
            goto out;
        }
    } else {
        d = copysign(DBL_MAX, d);
    }
    v = json_real(d);
    if (v && nums_add(&r->nums, v, t, len) < 0) {
        json_decref(v);
        v = NULL;
    }
out:
    if (buf != small)
        free(buf);
    return v;
}

static int read_number(struct reader *r, json_t **out) {
    size_t start = r->pos, ip_len = 0, fp_len = 0, sig = 0, first_nz = SIZE_MAX, last_nz = 0;
    size_t idx = 0; /* digits of the significand read so far */
    long long e = 0, lead, dscale, int_digits;
    bool eneg = false, integral = true;
    const char *s = r->s;

    if (s[r->pos] == '-')
        r->pos++;
    if (r->pos >= r->len || s[r->pos] < '0' || s[r->pos] > '9')
        return unexpected(r, "a digit");
    if (s[r->pos] == '0') {
        r->pos++;
        ip_len = 1;
        idx = 1;
        if (r->pos < r->len && s[r->pos] >= '0' && s[r->pos] <= '9')
            return fail(r, JTEXT_SYNTAX, "a number has a leading zero");
    } else {
        while (r->pos < r->len && s[r->pos] >= '0' && s[r->pos] <= '9') {
            if (s[r->pos] != '0') {
                if (first_nz == SIZE_MAX)
                    first_nz = idx;
                last_nz = idx;
            }
            idx++;
            ip_len++;
            r->pos++;
        }
    }
    if (r->pos < r->len && s[r->pos] == '.') {
        integral = false;
        r->pos++;
        if (r->pos >= r->len || s[r->pos] < '0' || s[r->pos] > '9')
            return unexpected(r, "a digit after the decimal point");
        while (r->pos < r->len && s[r->pos] >= '0' && s[r->pos] <= '9') {
            if (s[r->pos] != '0') {
                if (first_nz == SIZE_MAX)
                    first_nz = idx;
                last_nz = idx;
            }
            idx++;
            fp_len++;
            r->pos++;
        }
    }
    if (r->pos < r->len && (s[r->pos] == 'e' || s[r->pos] == 'E')) {
        integral = false;
        r->pos++;
        if (r->pos < r->len && (s[r->pos] == '+' || s[r->pos] == '-'))
            eneg = s[r->pos++] == '-';
        if (r->pos >= r->len || s[r->pos] < '0' || s[r->pos] > '9')
            return unexpected(r, "a digit in the exponent");
        while (r->pos < r->len && s[r->pos] >= '0' && s[r->pos] <= '9') {
            if (e < 1000000000LL)
                e = e * 10 + (s[r->pos] - '0');
            r->pos++;
        }
        if (eneg)
            e = -e;
    }
    /* Where PostgreSQL's numeric puts the value: the power of ten of the
     * leading digit, and the digits after the point it shows. */
    if (first_nz == SIZE_MAX) {
        lead = 0;
        sig = 0;
    } else {
        lead = (long long)ip_len - 1 - (long long)first_nz + e;
        sig = last_nz - first_nz + 1;
    }
    dscale = (long long)fp_len - e;
    if (dscale < 0)
        dscale = 0;
    int_digits = first_nz == SIZE_MAX || lead < 0 ? 1 : lead + 1;
    if (!r->grammar_only && (int_digits > JTEXT_MAX_INT_DIGITS || dscale > JTEXT_MAX_FRAC_DIGITS)) {
        r->pos = start;
        return fail(r, JTEXT_RANGE,
                    "a number is out of range (at most %d digits before the decimal point and %d "
                    "after it)",
                    JTEXT_MAX_INT_DIGITS, JTEXT_MAX_FRAC_DIGITS);
    }
    /* The text the store writes for it: sign, integer digits, point and
     * fraction; counted against the budget in place of the original. */
    r->expanded +=
        (size_t)(s[start] == '-') + (size_t)int_digits + (dscale ? 1 + (size_t)dscale : 0);
    r->expanded -= r->pos - start;
    if (r->max_expanded && r->expanded > r->max_expanded) {
        r->pos = start;
        return fail(r, JTEXT_EXPANDED,
                    "the text is larger than %zu bytes once its numbers are written out in full",
                    r->max_expanded);
    }
    if (out) {
        *out = make_number(r, s + start, r->pos - start, integral, sig, lead);
        if (!*out)
            return fail(r, JTEXT_NOMEM, "out of memory");
    }
    return 0;
}

static int read_value(struct reader *r, int depth, json_t **out);

static int read_literal(struct reader *r, const char *word, json_t *(*make)(void), json_t **out) {
    size_t n = strlen(word);

    if (r->len - r->pos < n || memcmp(r->s + r->pos, word, n) != 0)
        return unexpected(r, "a JSON value");
    r->pos += n;
    if (out)
        *out = make();
    return 0;
}

static int read_array(struct reader *r, int depth, json_t **out) {
    json_t *arr = NULL;

    r->pos++;
    if (out) {
        arr = json_array();
        if (!arr)
            return fail(r, JTEXT_NOMEM, "out of memory");
    }
    skip_ws(r);
    if (r->pos < r->len && r->s[r->pos] == ']') {
        r->pos++;
        goto done;
    }
    for (;;) {
        json_t *v = NULL;
        size_t vstart;

        skip_ws(r);
        vstart = r->pos;
        if (read_value(r, depth + 1, out ? &v : NULL) < 0)
            goto out_fail;
        if (depth == 1 && r->elem_fn) {
            int rc = r->elem_fn(r->elem_ctx, r->s + vstart, r->pos - vstart);

            if (rc != 0) {
                r->elem_rc = rc;
                fail(r, JTEXT_SYNTAX, "stopped");
                goto out_fail;
            }
        }
        if (arr && json_array_append_new(arr, v) != 0) {
            fail(r, JTEXT_NOMEM, "out of memory");
            goto out_fail;
        }
        skip_ws(r);
        if (r->pos < r->len && r->s[r->pos] == ',') {
            r->pos++;
            continue;
        }
        if (r->pos < r->len && r->s[r->pos] == ']') {
            r->pos++;
            break;
        }
        unexpected(r, "',' or ']'");
        goto out_fail;
    }
done:
    if (out)
        *out = arr;
    return 0;
out_fail:
    json_decref(arr);
    return -1;
}

static int read_object(struct reader *r, int depth, json_t **out) {
    json_t *obj = NULL;
    char small[128], *key = small;
    size_t key_cap = sizeof(small);
    bool root = depth == 1;
    int rc = -1;

    r->pos++;
    if (out) {
        obj = json_object();
        if (!obj)
            return fail(r, JTEXT_NOMEM, "out of memory");
    }
    skip_ws(r);
    if (r->pos < r->len && r->s[r->pos] == '}') {
        r->pos++;
        rc = 0;
        goto out;
    }
    for (;;) {
        size_t kstart, klen = 0, vstart;
        json_t *v = NULL;
        bool keep_key = out || (root && r->want_key);

        skip_ws(r);
        if (r->pos >= r->len || r->s[r->pos] != '"') {
            unexpected(r, "a string key");
            goto out;
        }
        kstart = r->pos;
        if (keep_key) {
            /* The key's text bounds its unescaped length. */
            size_t need = raw_length(r, kstart) + 1;

            if (need > key_cap) {
                char *nk = malloc(need);

                if (!nk) {
                    fail(r, JTEXT_NOMEM, "out of memory");
                    goto out;
                }
                if (key != small)
                    free(key);
                key = nk;
                key_cap = need;
            }
        }
        if (read_string(r, keep_key ? key : NULL, &klen) < 0)
            goto out;
        skip_ws(r);
        if (r->pos >= r->len || r->s[r->pos] != ':') {
            unexpected(r, "':'");
            goto out;
        }
        r->pos++;
        skip_ws(r);
        vstart = r->pos;
        if (read_value(r, depth + 1, out ? &v : NULL) < 0)
            goto out;
        if (root && r->want_key && klen == strlen(r->want_key) &&
            memcmp(key, r->want_key, klen) == 0) {
            r->got = r->s + vstart;
            r->got_len = r->pos - vstart;
        }
        if (obj) {
            if (json_object_getn(obj, key, klen)) {
                json_decref(v);
                r->pos = kstart;
                fail(r, JTEXT_SYNTAX, "duplicate key in an object");
                goto out;
            }
            if (json_object_setn_new_nocheck(obj, key, klen, v) != 0) {
                fail(r, JTEXT_NOMEM, "out of memory");
                goto out;
            }
        }
        skip_ws(r);
        if (r->pos < r->len && r->s[r->pos] == ',') {
            r->pos++;
            continue;
        }
        if (r->pos < r->len && r->s[r->pos] == '}') {
            r->pos++;
            break;
        }
        unexpected(r, "',' or '}'");
        goto out;
    }
    rc = 0;
out:
    if (key != small)
        free(key);
    if (rc < 0) {
        json_decref(obj);
        return -1;
    }
    if (out)
        *out = obj;
    return 0;
}

static int read_value(struct reader *r, int depth, json_t **out) {
    char ch;

    if (r->pos >= r->len)
        return unexpected(r, "a JSON value");
    ch = r->s[r->pos];
    if (ch == '{' || ch == '[') {
        if (depth > r->max_depth)
            return fail(r, JTEXT_DEPTH, "nested deeper than %d levels", r->max_depth);
        if (depth == 1) {
            r->root_is_object = ch == '{';
            r->root_is_array = ch == '[';
        }
        return ch == '{' ? read_object(r, depth, out) : read_array(r, depth, out);
    }
    if (ch == '"') {
        size_t start = r->pos, n = 0;
        char *buf = NULL;

        if (out) {
            /* A string without escapes is its own text: check it, then copy
             * it once into jansson. */
            const char *q = memchr(r->s + start + 1, '"', r->len - start - 1);
            bool plain = q && !memchr(r->s + start + 1, '\\', (size_t)(q - r->s) - start - 1);

            if (!plain) {
                buf = malloc(raw_length(r, start) + 1);
                if (!buf)
                    return fail(r, JTEXT_NOMEM, "out of memory");
            }
            if (read_string(r, buf, &n) < 0) {
                free(buf);
                return -1;
            }
            *out = plain ? json_stringn_nocheck(r->s + start + 1, r->pos - start - 2)
                         : json_stringn_nocheck(buf, n);
            free(buf);
            if (!*out)
                return fail(r, JTEXT_NOMEM, "out of memory");
            return 0;
        }
        return read_string(r, NULL, NULL);
    }
    if (ch == '-' || (ch >= '0' && ch <= '9'))
        return read_number(r, out);
    if (ch == 't')
        return read_literal(r, "true", json_true, out);
    if (ch == 'f')
        return read_literal(r, "false", json_false, out);
    if (ch == 'n')
        return read_literal(r, "null", json_null, out);
    return unexpected(r, "a JSON value");
}

static void reader_init(struct reader *r, const char *s, size_t len, const struct jtext_limits *lim,
                        struct jtext_error *err) {
    memset(r, 0, sizeof(*r));
    r->s = s ? s : "";
    r->len = s ? len : 0;
    r->max_depth = lim && lim->max_depth > 0 ? lim->max_depth : JTEXT_DEFAULT_DEPTH;
    r->max_expanded = lim ? lim->max_expanded : 0;
    r->grammar_only = lim && lim->grammar_only;
    r->expanded = r->len;
    r->err = err;
    if (err)
        memset(err, 0, sizeof(*err));
}

/* Reads the whole text: whitespace, one value, whitespace, the end. */
static int read_text(struct reader *r, json_t **out) {
    skip_ws(r);
    if (read_value(r, 1, out) < 0)
        return r->status;
    skip_ws(r);
    if (r->pos != r->len) {
        if (out) {
            json_decref(*out);
            *out = NULL;
        }
        unexpected(r, "the end of the text");
        return r->status;
    }
    return JTEXT_OK;
}

int jtext_check(const char *s, size_t len, const struct jtext_limits *lim,
                struct jtext_error *err) {
    struct reader r;

    reader_init(&r, s, len, lim, err);
    return read_text(&r, NULL);
}

static int cmp_num(const void *a, const void *b) {
    uintptr_t x = (uintptr_t)((const struct jtext_num *)a)->v;
    uintptr_t y = (uintptr_t)((const struct jtext_num *)b)->v;

    return x < y ? -1 : x > y;
}

int jtext_parse(const char *s, size_t len, const struct jtext_limits *lim, json_t **out,
                struct jtext_numbers **nums, struct jtext_error *err) {
    struct reader r;
    json_t *tree = NULL;
    int rc;

    reader_init(&r, s, len, lim, err);
    r.build = true;
    rc = read_text(&r, &tree);
    if (rc != JTEXT_OK) {
        jtext_numbers_free(r.nums);
        *out = NULL;
        if (nums)
            *nums = NULL;
        return rc;
    }
    if (r.nums)
        qsort(r.nums->e, r.nums->n, sizeof(*r.nums->e), cmp_num);
    *out = tree;
    if (nums)
        *nums = r.nums;
    else
        jtext_numbers_free(r.nums);
    return JTEXT_OK;
}

const char *jtext_number_text(const struct jtext_numbers *nums, const json_t *v, size_t *len) {
    struct jtext_num key = {v, NULL, 0}, *hit;

    if (!nums || !nums->n || !json_is_real(v))
        return NULL;
    hit = bsearch(&key, nums->e, nums->n, sizeof(*nums->e), cmp_num);
    if (!hit)
        return NULL;
    *len = hit->len;
    return hit->text;
}

void jtext_numbers_free(struct jtext_numbers *nums) {
    if (!nums)
        return;
    free(nums->e);
    free(nums);
}

int jtext_member(const char *s, size_t len, const char *key, const char **val, size_t *vlen) {
    struct reader r;

    static const struct jtext_limits relay = {.max_depth = JTEXT_RELAY_DEPTH, .grammar_only = true};

    reader_init(&r, s, len, &relay, NULL);
    r.want_key = key;
    if (read_text(&r, NULL) != JTEXT_OK || !r.root_is_object)
        return -1;
    if (!r.got)
        return 0;
    *val = r.got;
    *vlen = r.got_len;
    return 1;
}

int jtext_error_code(const char *s, size_t len, int *code, struct jtext_error *err) {
    struct reader r;
    const char *e, *c;
    size_t elen, clen;
    long v = 0;

    static const struct jtext_limits relay = {.max_depth = JTEXT_RELAY_DEPTH, .grammar_only = true};

    reader_init(&r, s, len, &relay, err);
    r.want_key = "error";
    if (read_text(&r, NULL) != JTEXT_OK)
        return r.status;
    if (!r.got)
        return 0;
    e = r.got;
    elen = r.got_len;
    if (jtext_member(e, elen, "code", &c, &clen) != 1)
        return 0;
    if (clen == 0 || clen > 6)
        return 0;
    for (size_t i = 0; i < clen; i++) {
        if (c[i] < '0' || c[i] > '9')
            return 0;
        v = v * 10 + (c[i] - '0');
    }
    *code = (int)v;
    return 1;
}

char *jtext_string(const char *s, size_t len, size_t *out_len) {
    struct reader r;
    char *buf;
    size_t n = 0;

    if (len < 2 || s[0] != '"')
        return NULL;
    reader_init(&r, s, len, NULL, NULL);
    buf = malloc(len);
    if (!buf)
        return NULL;
    if (read_string(&r, buf, &n) < 0 || r.pos != len) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *out_len = n;
    return buf;
}

int jtext_elements(const char *s, size_t len, jtext_element_fn fn, void *ctx) {
    static const struct jtext_limits relay = {.max_depth = JTEXT_RELAY_DEPTH, .grammar_only = true};
    struct reader r;

    reader_init(&r, s, len, &relay, NULL);
    r.elem_fn = fn;
    r.elem_ctx = ctx;
    /* The root must be an array before any element is reported. */
    skip_ws(&r);
    if (r.pos >= r.len || r.s[r.pos] != '[')
        return -1;
    if (read_text(&r, NULL) != JTEXT_OK)
        return r.elem_rc ? r.elem_rc : -1;
    return 0;
}
