/* The page token of GET /records: round trips and refusals. */
#include <criterion/criterion.h>
#include <string.h>

#include "../../../../handlers/records_get/token.h"

static void round_trip(int64_t usec, const char *id) {
    char text[TOKEN_MAX + 1], err[128];
    struct token t;

    cr_assert_eq(token_encode(usec, id, text, sizeof(text)), 0);
    cr_assert_eq(strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                 strlen(text), "not base64url: %s", text);
    cr_assert_eq(token_decode(text, &t, err, sizeof(err)), 0, "%s: %s", text, err);
    cr_expect_eq(t.usec, usec);
    cr_expect_str_eq(t.id, id);
}

Test(token, round_trips) {
    round_trip(1763890350438666, "01a207c4-6c09-7000-8073-a3b8b76805f6");
    round_trip(0, "a");
    round_trip(-1, "before the epoch");
    round_trip(978307200000001, "ab");
    round_trip(978307200000001, "abc");
    round_trip(978307200000001, "client key: with ~ printable ASCII!");
}

Test(token, refuses_what_it_did_not_write) {
    const char *bad[] = {"",
                         "A",
                         "!!!!",
                         "abc",
                         "bm8gY29sb24",                      /* "no colon" */
                         "OmFuLWlk",                         /* ":an-id" */
                         "MTJ4NDphbi1pZA",                   /* "12x4:an-id" */
                         "MTIzOg",                           /* "123:" */
                         "MTIzOmEBYg",                       /* "123:a\x01b" */
                         "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OmlK", /* out of range */
                         "MTIzOmFi=",
                         "MTIz Omk"};
    char err[128];
    struct token t;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_neq(token_decode(bad[i], &t, err, sizeof(err)), 0, "accepted \"%s\"", bad[i]);
}

Test(token, refuses_ids_it_cannot_carry) {
    char text[TOKEN_MAX + 1], id[TOKEN_ID_MAX + 2];

    memset(id, 'x', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    cr_expect_neq(token_encode(1, "", text, sizeof(text)), 0);
    cr_expect_neq(token_encode(1, id, text, sizeof(text)), 0);
    cr_expect_neq(token_encode(1, "abc", text, 4), 0);
}
