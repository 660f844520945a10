/* The pure parts of the store code: identifiers, SQL templates, UUIDv7 time. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "../../../../handlers/lib/store.h"

Test(store, identifiers) {
    cr_assert(store_ident_is_valid("messages"));
    cr_assert(store_ident_is_valid("_t2"));
    cr_assert_not(store_ident_is_valid(""));
    cr_assert_not(store_ident_is_valid(NULL));
    cr_assert_not(store_ident_is_valid("2t"));
    cr_assert_not(store_ident_is_valid("Messages"));
    cr_assert_not(store_ident_is_valid("m; DROP TABLE x"));
    cr_assert_not(
        store_ident_is_valid("a234567890123456789012345678901234567890123456789012345678901234"));
}

Test(store, sql_template) {
    char *s = store_sql("SELECT {t}.id FROM {t}", "msgs");
    cr_assert_str_eq(s, "SELECT msgs.id FROM msgs");
    free(s);
}

Test(store, uuid7_time) {
    int64_t ms = 0;
    /* 0x018f3a2b4c5d = 1714000000093 ms */
    cr_assert(store_uuid7_ms("018f3a2b-4c5d-7abc-8def-0123456789ab", &ms));
    cr_assert_eq(ms, 0x018f3a2b4c5dLL);
    cr_assert_not(store_uuid7_ms("018f3a2b-4c5d-4abc-8def-0123456789ab", &ms)); /* v4 */
    cr_assert_not(store_uuid7_ms("018f3a2b4c5d7abc8def0123456789ab", &ms));
    cr_assert_not(store_uuid7_ms("018f3a2b-4c5d-7abc-8def-0123456789zz", &ms));
    cr_assert_not(store_uuid7_ms("my-idempotency-key", &ms));
}
