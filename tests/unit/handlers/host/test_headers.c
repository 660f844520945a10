/* A message's AMQP headers become the ABI's name/value text pairs. */
#include <criterion/criterion.h>
#include <string.h>

#include "../../../../handlers/host/headers.h"
#include "../../amqp_fixtures.h"
#include <fpesa/handler.h>

Test(headers, every_kind_as_text) {
    amqp_field_value_t i32 = {.kind = AMQP_FIELD_KIND_I32, .value.i32 = -42};
    amqp_field_value_t u64 = {.kind = AMQP_FIELD_KIND_U64, .value.u64 = 18446744073709551615ull};
    amqp_field_value_t yes = {.kind = AMQP_FIELD_KIND_BOOLEAN, .value.boolean = 1};
    amqp_field_value_t none = {.kind = AMQP_FIELD_KIND_VOID};
    amqp_table_entry_t inner[] = {entry("a", text("b")), entry("n", i32)};
    amqp_field_value_t table = {.kind = AMQP_FIELD_KIND_TABLE,
                                .value.table = {.num_entries = 2, .entries = inner}};
    amqp_field_value_t items[] = {text("x"), yes};
    amqp_field_value_t array = {.kind = AMQP_FIELD_KIND_ARRAY,
                                .value.array = {.num_entries = 2, .entries = items}};
    amqp_table_entry_t all[] = {
        entry("x-fpesa-args", text("{\"tag\":\"t\"}")),
        entry("count", i32),
        entry("big", u64),
        entry("flag", yes),
        entry("empty", none),
        entry("table", table),
        entry("list", array),
    };
    amqp_table_t raw = {.num_entries = 7, .entries = all};
    /* The view the bus client gives of a received message's table. */
    struct amqpc_table t = {&raw, 7};
    char **h;
    size_t n;

    cr_assert_eq(headers_from_amqp(&t, &h, &n), 0);
    cr_assert_eq(n, 7);
    cr_assert_str_eq(h[0], "x-fpesa-args");
    cr_assert_str_eq(h[1], "{\"tag\":\"t\"}");
    cr_assert_str_eq(h[3], "-42");
    cr_assert_str_eq(h[5], "18446744073709551615");
    cr_assert_str_eq(h[7], "true");
    cr_assert_str_eq(h[9], "");
    cr_assert_str_eq(h[11], "{\"a\":\"b\",\"n\":-42}");
    cr_assert_str_eq(h[13], "[\"x\",true]");
    cr_assert_null(h[14]);

    /* What a plugin sees: looked up by name, in any case. */
    struct fpesa_message m = {.abi_version = FPESA_HANDLER_ABI_VERSION,
                              .struct_size = sizeof(m),
                              .headers = (const char *const *)h,
                              .n_headers = n};
    cr_assert_str_eq(fpesa_message_header(&m, "X-Fpesa-Args"), "{\"tag\":\"t\"}");
    cr_assert_str_eq(fpesa_message_header(&m, "flag"), "true");
    cr_assert_null(fpesa_message_header(&m, "fla"));
    cr_assert_null(fpesa_message_header(&m, "flags"));
    headers_free(h, n);
}

Test(headers, none_is_an_empty_list) {
    amqp_table_t raw = {.num_entries = 0, .entries = NULL};
    struct amqpc_table t = {&raw, 0};
    char **h;
    size_t n = 99;

    cr_assert_eq(headers_from_amqp(&t, &h, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_not_null(h);
    cr_assert_null(h[0]);
    headers_free(h, n);
    cr_assert_eq(headers_from_amqp(NULL, &h, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_null(h[0]);
    headers_free(h, n);
}

Test(headers, an_older_host_has_none) {
    /* A message struct that ends before the headers field: the lookup says
     * "no such header" instead of reading past it. */
    struct fpesa_message m = {.abi_version = FPESA_HANDLER_ABI_VERSION,
                              .struct_size = offsetof(struct fpesa_message, headers)};
    cr_assert_null(fpesa_message_header(&m, "x-fpesa-args"));
}
