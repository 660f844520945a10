#include "../../../mapper/query.h"

#include <criterion/criterion.h>
#include <string.h>

static json_t *parse_ok(const char *qs) {
    char err[256] = "";
    json_t *o = NULL;

    cr_assert_eq(query_parse(qs, &o, err, sizeof(err)), 0, "%s: %s", qs, err);
    cr_assert(json_is_object(o));
    return o;
}

static void parse_bad(const char *qs, const char *needle) {
    char err[256] = "";
    json_t *o = (json_t *)1;

    cr_assert_eq(query_parse(qs, &o, err, sizeof(err)), -1, "%s was accepted", qs);
    cr_assert_null(o);
    cr_assert(strstr(err, needle) != NULL, "error for %s: %s", qs, err);
}

Test(query, empty_is_an_empty_object) {
    json_t *o = parse_ok("");

    cr_assert_eq(json_object_size(o), 0);
    json_decref(o);
    o = parse_ok(NULL);
    cr_assert_eq(json_object_size(o), 0);
    json_decref(o);
}

Test(query, names_and_values) {
    json_t *o = parse_ok("limit=10&before=abc&flag&empty=");

    cr_assert_eq(json_object_size(o), 4);
    cr_assert_str_eq(json_string_value(json_object_get(o, "limit")), "10");
    cr_assert_str_eq(json_string_value(json_object_get(o, "before")), "abc");
    cr_assert_str_eq(json_string_value(json_object_get(o, "flag")), "");
    cr_assert_str_eq(json_string_value(json_object_get(o, "empty")), "");
    json_decref(o);
}

Test(query, percent_decoding_and_plus) {
    json_t *o = parse_ok("q=a%20b+c%2Bd&caf%C3%A9=%E2%82%AC&eq=a%3Db=c");

    cr_assert_str_eq(json_string_value(json_object_get(o, "q")), "a b c+d");
    cr_assert_str_eq(json_string_value(json_object_get(o, "caf\xc3\xa9")), "\xe2\x82\xac");
    cr_assert_str_eq(json_string_value(json_object_get(o, "eq")), "a=b=c");
    json_decref(o);
}

Test(query, empty_pieces_are_skipped) {
    json_t *o = parse_ok("&&a=1&&b=2&");

    cr_assert_eq(json_object_size(o), 2);
    json_decref(o);
}

Test(query, duplicates_are_refused) {
    parse_bad("a=1&a=2", "more than once");
    parse_bad("a=1&%61=2", "more than once");
}

Test(query, malformed_is_refused) {
    parse_bad("a=%zz", "percent-encoded");
    parse_bad("a=%4", "percent-encoded");
    parse_bad("a=%", "percent-encoded");
    parse_bad("a%=1", "percent-encoded");
    parse_bad("a=%00", "percent-encoded");
    parse_bad("a=%C3%28", "percent-encoded");
    parse_bad("a=%ED%A0%80", "percent-encoded"); /* a UTF-16 surrogate */
    parse_bad("a=%C0%AF", "percent-encoded");    /* overlong */
    parse_bad("=1", "no name");
}

Test(query, too_many_parameters) {
    char qs[8192] = "";

    for (int i = 0; i <= QUERY_MAX_PARAMS; i++) {
        char p[32];
        snprintf(p, sizeof(p), "p%d=1&", i);
        strncat(qs, p, sizeof(qs) - strlen(qs) - 1);
    }
    parse_bad(qs, "more than");
}

Test(query, decode) {
    size_t len = 0;
    char *s = query_decode("a%2Fb+c", 7, false, &len);

    cr_assert_str_eq(s, "a/b+c");
    cr_assert_eq(len, 5);
    free(s);
    s = query_decode("a+c", 3, true, NULL);
    cr_assert_str_eq(s, "a c");
    free(s);
}

Test(query, utf8) {
    cr_assert(query_utf8_is_valid("plain", 5));
    cr_assert(query_utf8_is_valid("\xf0\x9f\x98\x80", 4));
    cr_assert_not(query_utf8_is_valid("\xf0\x9f\x98", 3));
    cr_assert_not(query_utf8_is_valid("\xff", 1));
    cr_assert_not(query_utf8_is_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
}
