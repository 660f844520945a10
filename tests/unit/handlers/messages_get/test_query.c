/* The cursor codec and the argument parsing of GET /messages/. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "../../../../handlers/messages_get/query.h"

static json_t *args(const char *text) {
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    cr_assert_not_null(j, "bad test JSON %s: %s", text, e.text);
    return j;
}

Test(cursor, round_trips_every_length) {
    int64_t seqs[] = {0, 1, 9, 10, 99, 100, 12345, 999999, 1000000, 4294967296LL, INT64_MAX};
    for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
        for (int k = 0; k < 2; k++) {
            char kind = k ? 'p' : 'b', buf[CURSOR_MAX + 1];
            int64_t back = -1;
            cr_assert_eq(cursor_encode(kind, seqs[i], buf, sizeof(buf)), 0);
            cr_assert_eq(
                strspn(buf, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                strlen(buf), "not base64url: %s", buf);
            cr_assert_eq(cursor_decode(buf, kind, &back), 0, "decode %s", buf);
            cr_assert_eq(back, seqs[i]);
        }
    }
}

Test(cursor, known_spelling) {
    char buf[CURSOR_MAX + 1];
    cr_assert_eq(cursor_encode('b', 119, buf, sizeof(buf)), 0);
    cr_assert_str_eq(buf, "YjExOQ"); /* base64url("b119") */
}

Test(cursor, kinds_do_not_mix) {
    char buf[CURSOR_MAX + 1];
    int64_t s;
    cr_assert_eq(cursor_encode('b', 42, buf, sizeof(buf)), 0);
    cr_assert_eq(cursor_decode(buf, 'p', &s), -1);
    cr_assert_eq(cursor_encode('x', 42, buf, sizeof(buf)), -1);
    cr_assert_eq(cursor_encode('b', -1, buf, sizeof(buf)), -1);
}

Test(cursor, refuses_garbage) {
    int64_t s;
    const char *bad[] = {"",
                         "Y",
                         "YjExOQ==",
                         "YjExOQ!",
                         "Yj+xOQ",
                         "Yj/xOQ",
                         "YmE",
                         /* "b" alone */ "Yg",
                         /* "b007": leading zero */ "YjAwNw",
                         /* "b99999999999999999999": overflow */ "Yjk5OTk5OTk5OTk5OTk5OTk5OTk5",
                         /* "YjExOR": non-canonical trailing bits of "b119" */ "YjExOR",
                         "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(cursor_decode(bad[i], 'b', &s), -1, "accepted %s", bad[i]);
    cr_assert_eq(cursor_decode(NULL, 'b', &s), -1);
}

Test(args, defaults_are_keyset_50) {
    struct msgq q;
    char err[256];
    cr_assert_eq(msgq_parse(NULL, &q, err, sizeof(err)), 0);
    cr_assert_eq(q.mode, MSGQ_KEYSET);
    cr_assert_eq(q.limit, 50);
    cr_assert_eq(q.before, INT64_MAX);
    json_t *n = json_null();
    cr_assert_eq(msgq_parse(n, &q, err, sizeof(err)), 0);
    json_decref(n);
}

Test(args, keyset_with_cursor_and_clipped_limit) {
    struct msgq q;
    char err[256], cur[CURSOR_MAX + 1], text[128];
    cr_assert_eq(cursor_encode('b', 777, cur, sizeof(cur)), 0);
    snprintf(text, sizeof(text), "{\"limit\":\"5000\",\"before\":\"%s\"}", cur);
    json_t *a = args(text);
    cr_assert_eq(msgq_parse(a, &q, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(q.mode, MSGQ_KEYSET);
    cr_assert_eq(q.limit, MSGQ_MAX_LIMIT);
    cr_assert_eq(q.before, 777);
    json_decref(a);
}

Test(args, offset_contract_clips_to_100) {
    struct msgq q;
    char err[256];
    json_t *a = args("{\"offset\":\"20\",\"limit\":\"500\"}");
    cr_assert_eq(msgq_parse(a, &q, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(q.mode, MSGQ_OFFSET);
    cr_assert_eq(q.limit, 100);
    cr_assert_eq(q.offset, 20);
    cr_assert_eq(q.frozen, -1);
    json_decref(a);
}

Test(args, pagination_id_alone_is_offset_mode) {
    struct msgq q;
    char err[256], cur[CURSOR_MAX + 1], text[128];
    cr_assert_eq(cursor_encode('p', 0, cur, sizeof(cur)), 0);
    snprintf(text, sizeof(text), "{\"paginationId\":\"%s\"}", cur);
    json_t *a = args(text);
    cr_assert_eq(msgq_parse(a, &q, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(q.mode, MSGQ_OFFSET);
    cr_assert_eq(q.frozen, 0);
    cr_assert_eq(q.offset, 0);
    json_decref(a);
}

Test(args, pagination_id_as_the_originals_whole_number) {
    struct msgq q;
    char err[256];
    json_t *a = args("{\"offset\":\"10\",\"limit\":\"10\",\"paginationId\":\"1042\"}");
    cr_assert_eq(msgq_parse(a, &q, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(q.mode, MSGQ_OFFSET);
    cr_assert_eq(q.frozen, 1042);
    json_decref(a);
    a = args("{\"offset\":\"0\",\"paginationId\":7}");
    cr_assert_eq(msgq_parse(a, &q, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(q.frozen, 7);
    json_decref(a);
    a = args("{\"offset\":\"0\",\"paginationId\":\"12a\"}");
    cr_assert_eq(msgq_parse(a, &q, err, sizeof(err)), -1);
    json_decref(a);
    a = args("{\"offset\":\"0\",\"paginationId\":-3}");
    cr_assert_eq(msgq_parse(a, &q, err, sizeof(err)), -1);
    json_decref(a);
}

Test(args, after_mode) {
    struct msgq q;
    char err[256];
    json_t *a = args("{\"after\":\"018f-abc\",\"limit\":20}");
    cr_assert_eq(msgq_parse(a, &q, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(q.mode, MSGQ_AFTER);
    cr_assert_str_eq(q.after, "018f-abc");
    cr_assert_eq(q.limit, 20);
    json_decref(a);
}

Test(args, bad_ones_say_why) {
    struct {
        const char *json, *needle;
    } cases[] = {
        {"{\"limit\":\"0\"}", "at least 1"},
        {"{\"limit\":\"-3\"}", "limit"},
        {"{\"limit\":\"12abc\"}", "limit"},
        {"{\"limit\":\"99999999999\"}", "limit"},
        {"{\"limit\":true}", "limit"},
        {"{\"offset\":\"1e3\"}", "offset"},
        {"{\"before\":\"???\"}", "before"},
        {"{\"before\":\"cDEyMA\"}", "before"},             /* a paginationId */
        {"{\"paginationId\":\"YjExOQ\"}", "paginationId"}, /* a before cursor */
        {"{\"before\":\"YjExOQ\",\"offset\":\"1\"}", "cannot be combined"},
        {"{\"after\":\"x\",\"before\":\"YjExOQ\"}", "cannot be combined"},
        {"{\"after\":\"\"}", "after"},
        {"{\"after\":5}", "after"},
        {"{\"page\":\"2\"}", "unknown argument \"page\""},
        {"[1]", "object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct msgq q;
        char err[256] = "";
        json_t *a = args(cases[i].json);
        cr_assert_eq(msgq_parse(a, &q, err, sizeof(err)), -1, "accepted %s", cases[i].json);
        cr_assert(strstr(err, cases[i].needle), "%s: error \"%s\" lacks \"%s\"", cases[i].json, err,
                  cases[i].needle);
        json_decref(a);
    }
}

Test(args, contains_is_json_text_with_keyset_only) {
    struct msgq q;
    char err[256];
    json_t *a = args("{\"limit\": \"5\", \"contains\": \"{\\\"k\\\": 12345678901234567890}\"}");

    cr_assert_eq(msgq_parse(a, &q, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(q.mode, MSGQ_KEYSET);
    cr_assert_eq(q.limit, 5);
    /* The text as given: PostgreSQL reads the number exactly. */
    cr_assert_str_eq(q.contains, "{\"k\": 12345678901234567890}");
    json_decref(a);

    a = args("{}");
    cr_assert_eq(msgq_parse(a, &q, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(q.contains, "");
    json_decref(a);

    const char *bad[] = {
        "{\"contains\": \"{not json\"}",
        "{\"contains\": \"\\\"a string\\\"\"}",
        "{\"contains\": \"{\\\"a\\\": 1, \\\"a\\\": 2}\"}",
        "{\"contains\": \"\"}",
        "{\"contains\": 5}",
        "{\"contains\": \"{}\", \"offset\": \"0\"}",
        "{\"contains\": \"{}\", \"after\": \"x\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        a = args(bad[i]);
        err[0] = '\0';
        cr_assert_eq(msgq_parse(a, &q, err, sizeof(err)), -1, "accepted %s", bad[i]);
        cr_assert(strstr(err, "contains"), "the error names contains: %s", err);
        json_decref(a);
    }
}
