/* Tests of the exact JSON reader (jsontext) and the decimals behind the
 * schema's number keywords. */
#include <criterion/criterion.h>
#include <string.h>

#include "decimal.h"
#include "jsontext.h"

static int check(const char *s) {
    return jtext_check(s, strlen(s), NULL, NULL);
}

Test(jsontext, accepts_what_rfc8259_allows) {
    const char *ok[] = {"0",
                        "-0",
                        "-0.0",
                        "1e400",
                        "1E+2",
                        "-1.5e-300",
                        "\"\"",
                        "[]",
                        "{}",
                        " [1, {\"a\": null}] ",
                        "true",
                        "\"\\ud83d\\ude00\\u00e9\\n\"",
                        "123456789012345678901234567890",
                        "\"\xf0\x9f\x98\x80\"",
                        "{\"a\":{\"b\":[[],{}]}}"};

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        cr_expect_eq(check(ok[i]), JTEXT_OK, "%s", ok[i]);
}

Test(jsontext, refuses_what_it_does_not) {
    const char *bad[] = {
        "",          "01",      "1.",         ".5",       "1e",           "+1",
        "NaN",       "[1,]",    "{\"a\":1,}", "{a:1}",    "'a'",          "[1] 2",
        "\"\x01\"",  "\"\\x\"", "\"\\u12\"",  "\"\xff\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"",
        "/* c */ 1", "[1 2]",   "tru"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(check(bad[i]), JTEXT_SYNTAX, "%s", bad[i]);
}

Test(jsontext, refuses_what_no_store_can_hold_unless_relaying) {
    struct jtext_limits relay = {.grammar_only = true};

    cr_expect_eq(check("\"\\u0000\""), JTEXT_SYNTAX);
    cr_expect_eq(check("\"\\ud800\""), JTEXT_SYNTAX);
    cr_expect_eq(check("\"\\udc00\\ud800\""), JTEXT_SYNTAX);
    cr_expect_eq(check("1e131072"), JTEXT_RANGE);
    cr_expect_eq(check("1e131071"), JTEXT_OK);
    cr_expect_eq(check("1e-16383"), JTEXT_OK);
    cr_expect_eq(check("1e-16384"), JTEXT_RANGE);
    cr_expect_eq(check("0.5e-16383"), JTEXT_RANGE);
    cr_expect_eq(jtext_check("\"\\u0000\"", 8, &relay, NULL), JTEXT_OK);
    cr_expect_eq(jtext_check("1e-99999", 8, &relay, NULL), JTEXT_OK);
}

Test(jsontext, expanded_size_and_depth_limits) {
    struct jtext_limits lim = {.max_expanded = 1000};
    struct jtext_limits shallow = {.max_depth = 3};
    struct jtext_error err;

    cr_expect_eq(jtext_check("[1e900]", 7, &lim, &err), JTEXT_OK);
    cr_expect_eq(jtext_check("[1e999]", 7, &lim, &err), JTEXT_EXPANDED);
    cr_expect_eq(jtext_check("[[[1]]]", 7, &shallow, &err), JTEXT_OK);
    cr_expect_eq(jtext_check("[[[[1]]]]", 9, &shallow, &err), JTEXT_DEPTH);
    cr_expect(strstr(err.text, "3 levels") != NULL, "%s", err.text);
}

Test(jsontext, error_position) {
    struct jtext_error err;

    cr_assert_eq(jtext_check("{\n  \"a\": 1,\n  }", 15, NULL, &err), JTEXT_SYNTAX);
    cr_expect_eq(err.line, 3);
    cr_expect_eq(err.column, 3);
    cr_expect(strstr(err.text, "string key") != NULL, "%s", err.text);
}

Test(jsontext, tree_keeps_the_text_of_numbers_jansson_cannot_hold) {
    const char *s = "{\"big\": 123456789012345678901234567890, \"i\": -42, \"r\": 0.5,"
                    " \"huge\": -1e400, \"tiny\": 1e-400, \"long\": 0.10000000000000000000001,"
                    " \"int\": 1.0e3, \"i64\": 1234567890123456789.0}";
    json_t *t = NULL;
    struct jtext_numbers *nums = NULL;
    size_t len;
    const char *txt;

    cr_assert_eq(jtext_parse(s, strlen(s), NULL, &t, &nums, NULL), JTEXT_OK);
    cr_expect(json_is_integer(json_object_get(t, "i")));
    cr_expect_null(jtext_number_text(nums, json_object_get(t, "i"), &len));
    cr_expect_null(jtext_number_text(nums, json_object_get(t, "r"), &len));
    cr_expect_eq(json_integer_value(json_object_get(t, "i64")), 1234567890123456789LL);
    txt = jtext_number_text(nums, json_object_get(t, "big"), &len);
    cr_assert_not_null(txt);
    cr_expect_eq(len, 30);
    cr_expect_eq(memcmp(txt, "123456789012345678901234567890", 30), 0);
    txt = jtext_number_text(nums, json_object_get(t, "huge"), &len);
    cr_assert_not_null(txt);
    cr_expect_eq(memcmp(txt, "-1e400", len), 0);
    cr_expect_not_null(jtext_number_text(nums, json_object_get(t, "tiny"), &len));
    cr_expect_not_null(jtext_number_text(nums, json_object_get(t, "long"), &len));
    json_decref(t);
    jtext_numbers_free(nums);
}

Test(jsontext, parse_refuses_duplicate_keys_check_does_not_care) {
    const char *s = "{\"a\":1,\"\\u0061\":2}";
    json_t *t = NULL;

    cr_expect_eq(jtext_parse(s, strlen(s), NULL, &t, NULL, NULL), JTEXT_SYNTAX);
    cr_expect_null(t);
    cr_expect_eq(check(s), JTEXT_OK);
}

Test(jsontext, member_elements_error_code_and_strings) {
    const char *env = "{\"data\": {\"x\": 1e400}, \"args\": null, \"d\\u0061ta2\": [1]}";
    const char *v;
    size_t vl, n;
    int code = 0;
    char *str;

    cr_assert_eq(jtext_member(env, strlen(env), "data", &v, &vl), 1);
    cr_expect_eq(vl, strlen("{\"x\": 1e400}"));
    cr_expect_eq(memcmp(v, "{\"x\": 1e400}", vl), 0);
    cr_expect_eq(jtext_member(env, strlen(env), "data2", &v, &vl), 1);
    cr_expect_eq(jtext_member(env, strlen(env), "nope", &v, &vl), 0);
    cr_expect_eq(jtext_member("[1]", 3, "data", &v, &vl), -1);
    cr_expect_eq(jtext_member("{\"data\":", 8, "data", &v, &vl), -1);

    cr_expect_eq(jtext_error_code("{\"error\":{\"code\":409}}", 22, &code, NULL), 1);
    cr_expect_eq(code, 409);
    cr_expect_eq(jtext_error_code("{\"error\":\"x\"}", 13, &code, NULL), 0);
    cr_expect_eq(jtext_error_code("{\"messages\":[1e999999]}", 23, &code, NULL), 0);
    cr_expect_lt(jtext_error_code("{\"error\":", 9, &code, NULL), 0);

    v = "\"a\\u00e9\\ud83d\\ude00\\\"\"";
    str = jtext_string(v, strlen(v), &n);
    cr_assert_not_null(str);
    cr_expect_str_eq(str, "a\xc3\xa9\xf0\x9f\x98\x80\"");
    free(str);
}

static int count_elements(void *ctx, const char *t, size_t l) {
    (void)t;
    (void)l;
    (*(int *)ctx)++;
    return 0;
}

Test(jsontext, elements_of_an_array) {
    const char *page = "[{\"n\":1}, 2 ,\"three\", [[]]]";
    int n = 0;

    cr_expect_eq(jtext_elements(page, strlen(page), count_elements, &n), 0);
    cr_expect_eq(n, 4);
    cr_expect_eq(jtext_elements("{}", 2, count_elements, &n), -1);
}

Test(jsontext, utf8_clean_never_cuts_a_character) {
    char out[8];

    /* Four two-byte characters do not fit in 7 bytes: three do. */
    cr_expect_eq(jtext_utf8_clean(out, sizeof(out), "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 8), 6);
    cr_expect_str_eq(out, "\xc3\xa9\xc3\xa9\xc3\xa9");
    cr_expect_eq(jtext_utf8_clean(out, sizeof(out),
                                  "a\xff"
                                  "b",
                                  3),
                 5);
    cr_expect_str_eq(out, "a\xef\xbf\xbd"
                          "b");
    cr_expect_eq(jtext_utf8_clean(out, sizeof(out), "\xe2\x82", 2), 6);
    cr_expect_str_eq(out, "\xef\xbf\xbd\xef\xbf\xbd");
}

Test(decimal, compare_and_divide_exactly) {
    struct decimal a, b;

    decimal_parse(&a, "1e400", 5);
    decimal_parse(&b, "10e399", 6);
    cr_expect_eq(decimal_cmp(&a, &b), 0);
    cr_expect_eq(decimal_hash(&a), decimal_hash(&b));
    decimal_fini(&a);
    decimal_fini(&b);
    decimal_parse(&a, "-0.0", 4);
    decimal_parse(&b, "0", 1);
    cr_expect_eq(decimal_cmp(&a, &b), 0);
    decimal_fini(&a);
    decimal_fini(&b);
    decimal_parse(&a, "0.0075", 6);
    decimal_from_double(&b, 0.0001);
    cr_expect(decimal_is_multiple(&a, &b));
    decimal_fini(&a);
    decimal_fini(&b);
    decimal_parse(&a, "9999999999999999999", 19);
    decimal_from_double(&b, 1e19);
    cr_expect_lt(decimal_cmp(&a, &b), 0);
    cr_expect(decimal_is_integer(&a));
    decimal_fini(&a);
    decimal_fini(&b);
    decimal_parse(&a, "-12.5", 5);
    decimal_parse(&b, "-12.25", 6);
    cr_expect_lt(decimal_cmp(&a, &b), 0);
    cr_expect_not(decimal_is_integer(&a));
    decimal_fini(&a);
    decimal_fini(&b);
}
