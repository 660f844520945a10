/* The multipart/form-data parser: boundaries, quoted parameters, CRLF edge
 * cases, truncated input, a missing closing delimiter, oversized headers. */
#include "../../../mapper/multipart.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct seen {
    size_t n;
    struct mpart parts[8];
    char data[8][64];
};

static int collect(void *ctx, const struct mpart *p) {
    struct seen *s = ctx;

    if (s->n < 8) {
        s->parts[s->n] = *p;
        snprintf(s->data[s->n], sizeof(s->data[0]), "%.*s", (int)p->len, p->data);
    }
    s->n++;
    return 0;
}

static int parse(const char *body, size_t len, const char *b, struct seen *s, char *err) {
    memset(s, 0, sizeof(*s));
    err[0] = '\0';
    return multipart_parse(body, len, b, collect, s, err, 200);
}

#define PARSE_OK(body, s)                                                                          \
    do {                                                                                           \
        char err_[200];                                                                            \
        cr_assert_eq(parse(body, strlen(body), "B", s, err_), 0, "%s", err_);                      \
    } while (0)

static void parse_bad(const char *body, size_t len, const char *needle) {
    struct seen s;
    char err[200];

    cr_assert_eq(parse(body, len, "B", &s, err), -1, "accepted: %.*s", (int)len, body);
    cr_assert(strstr(err, needle), "error: %s (wanted %s)", err, needle);
}

Test(multipart, fields_and_a_file) {
    struct seen s;
    const char *body = "--B\r\n"
                       "Content-Disposition: form-data; name=\"title\"\r\n\r\n"
                       "hello\r\n"
                       "--B\r\n"
                       "content-disposition: FORM-DATA; filename=\"a b;c.png\"; name=pic\r\n"
                       "Content-Type: Image/PNG; charset=x\r\n\r\n"
                       "\x89PNG\r\n\r\n--not-the-boundary\r\n"
                       "--B--\r\n";

    PARSE_OK(body, &s);
    cr_assert_eq(s.n, 2);
    cr_assert_str_eq(s.parts[0].name, "title");
    cr_assert_not(s.parts[0].has_filename);
    cr_assert_str_eq(s.parts[0].content_type, "");
    cr_assert_str_eq(s.data[0], "hello");
    cr_assert_str_eq(s.parts[1].name, "pic");
    cr_assert(s.parts[1].has_filename);
    cr_assert_str_eq(s.parts[1].filename, "a b;c.png");
    cr_assert_str_eq(s.parts[1].content_type, "image/png");
    /* CRLFs and a near-boundary inside the content are content. */
    cr_assert_eq(s.parts[1].len, strlen("\x89PNG\r\n\r\n--not-the-boundary"));
}

Test(multipart, quoted_parameters_with_escapes) {
    struct seen s;
    const char *body = "--B\r\nContent-Disposition: form-data; name=\"a\\\"b\"; "
                       "filename=\"c:\\\\x\"\r\n\r\nv\r\n--B--";

    PARSE_OK(body, &s);
    cr_assert_str_eq(s.parts[0].name, "a\"b");
    cr_assert_str_eq(s.parts[0].filename, "c:\\x");
}

Test(multipart, preamble_epilogue_empty_content_and_padding) {
    struct seen s;
    const char *body = "ignored preamble\r\n--B  \r\n"
                       "Content-Disposition: form-data; name=e\r\n\r\n"
                       "\r\n--B\t\r\n"
                       "Content-Disposition: form-data; name=f\r\n\r\n"
                       "\r\n\r\n--B--epilogue is ignored";

    PARSE_OK(body, &s);
    cr_assert_eq(s.n, 2);
    cr_assert_eq(s.parts[0].len, 0);
    cr_assert_eq(s.parts[1].len, 2);
}

Test(multipart, boundary_parameter) {
    char b[MPART_BOUNDARY_MAX + 1];

    cr_assert_eq(multipart_boundary("multipart/form-data; boundary=abc", b, sizeof(b)), 0);
    cr_assert_str_eq(b, "abc");
    cr_assert_eq(
        multipart_boundary("Multipart/Form-Data ; charset=utf-8; BOUNDARY=\"a b:c\"", b, sizeof(b)),
        0);
    cr_assert_str_eq(b, "a b:c");
    cr_assert_eq(multipart_boundary("multipart/form-data", b, sizeof(b)), -1);
    cr_assert_eq(multipart_boundary("multipart/form-data; boundary=", b, sizeof(b)), -1);
    cr_assert_eq(multipart_boundary("multipart/form-data; boundary=\"unterminated", b, sizeof(b)),
                 -1);
    cr_assert_eq(multipart_boundary("multipart/mixed; boundary=abc", b, sizeof(b)), -1);
    cr_assert_eq(multipart_boundary("text/plain", b, sizeof(b)), -1);
    cr_assert_eq(multipart_boundary(NULL, b, sizeof(b)), -1);
    cr_assert_eq(multipart_boundary("multipart/form-data; boundary=abcdef", b, 4), -1);
}

Test(multipart, missing_closing_delimiter) {
    parse_bad("--B\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n", 50, "closing");
    parse_bad("--B\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--B",
              strlen("--B\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--B"), "closing");
    parse_bad("--B\r\nContent-Disposition: form-data; name=a\r\n\r\nv",
              strlen("--B\r\nContent-Disposition: form-data; name=a\r\n\r\nv"), "closing");
}

Test(multipart, truncated_everywhere_is_an_error_never_a_crash) {
    const char *body = "--B\r\nContent-Disposition: form-data; name=\"a\"; filename=\"f\"\r\n"
                       "Content-Type: image/png\r\n\r\nDATA\r\n--B--";
    size_t len = strlen(body);

    for (size_t cut = 0; cut < len - 1; cut++) {
        struct seen s;
        char err[200];
        char *copy = malloc(cut ? cut : 1);

        memcpy(copy, body, cut);
        cr_assert_eq(parse(copy, cut, "B", &s, err), -1, "cut at %zu accepted", cut);
        cr_assert(err[0]);
        free(copy);
    }
}

Test(multipart, bad_delimiter_lines_and_headers) {
    parse_bad("no delimiter here", 17, "no multipart delimiter");
    parse_bad("--Bx\r\n\r\n--B--", 13, "not followed by CRLF");
    parse_bad("--B\nContent-Disposition: form-data; name=a\n\nv\n--B--", 47, "CRLF");
    parse_bad("--B\r\nContent-Type: text/plain\r\n\r\nv\r\n--B--", 40, "Content-Disposition");
    parse_bad("--B\r\nContent-Disposition: attachment; name=a\r\n\r\nv\r\n--B--", 54, "form-data");
    parse_bad("--B\r\nContent-Disposition: form-data\r\n\r\nv\r\n--B--", 45, "no field name");
    parse_bad("--B\r\nContent-Disposition: form-data; name=\"a\r\n\r\nv\r\n--B--", 50, "malformed");
    parse_bad("--B\r\nno colon\r\n\r\nv\r\n--B--", 26, "no name");
    parse_bad("--B\r\n\r\nv\r\n--B--", 15, "Content-Disposition");
    parse_bad("--B\r\nContent-Disposition: form-data; name=a\r\nContent-Type: nonsense\r\n\r\nv"
              "\r\n--B--",
              strlen("--B\r\nContent-Disposition: form-data; name=a\r\nContent-Type: nonsense\r\n"
                     "\r\nv\r\n--B--"),
              "Content-Type");
}

Test(multipart, huge_part_headers_are_refused) {
    size_t n = MPART_HEADERS_MAX + 100;
    char *body = malloc(n + 64);
    size_t len;

    len = (size_t)snprintf(body, 64, "--B\r\nX-Big: ");
    memset(body + len, 'x', n - len);
    len = n;
    memcpy(body + len, "\r\n\r\nv\r\n--B--", 12);
    len += 12;
    parse_bad(body, len, "larger than");
    free(body);
}

Test(multipart, too_many_parts) {
    const char *one = "--B\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n";
    size_t ol = strlen(one), len = 0;
    char *body = malloc(ol * (MPART_PARTS_MAX + 1) + 8);

    for (int i = 0; i <= MPART_PARTS_MAX; i++, len += ol)
        memcpy(body + len, one, ol);
    memcpy(body + len, "--B--", 5);
    len += 5;
    parse_bad(body, len, "more than");
    free(body);
}

static int stop_at_second(void *ctx, const struct mpart *p) {
    int *n = ctx;

    (void)p;
    return ++*n == 2 ? 7 : 0;
}

Test(multipart, callback_stops_the_parse) {
    const char *body = "--B\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n"
                       "--B\r\nContent-Disposition: form-data; name=b\r\n\r\n2\r\n--B--";
    int n = 0;
    char err[100];

    cr_assert_eq(multipart_parse(body, strlen(body), "B", stop_at_second, &n, err, sizeof(err)), 7);
    cr_assert_eq(n, 2);
}

Test(multipart, bad_boundaries) {
    char err[100];
    char longb[MPART_BOUNDARY_MAX + 2];

    memset(longb, 'a', sizeof(longb) - 1);
    longb[sizeof(longb) - 1] = '\0';
    cr_assert_eq(multipart_parse("--B--", 5, "", NULL, NULL, err, sizeof(err)), -1);
    cr_assert_eq(multipart_parse("--B--", 5, NULL, NULL, NULL, err, sizeof(err)), -1);
    cr_assert_eq(multipart_parse("--B--", 5, longb, NULL, NULL, err, sizeof(err)), -1);
    cr_assert_eq(multipart_parse(NULL, 0, "B", NULL, NULL, err, sizeof(err)), -1);
    cr_assert_eq(multipart_parse("--B--", 5, "B", NULL, NULL, err, sizeof(err)), 0);
}
