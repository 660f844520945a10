/* The bus client's mapping between the library's message types and the
 * project's: header values both ways, received properties, and the
 * properties and headers of a publish (a dead letter's included). */
#include <criterion/criterion.h>
#include <string.h>

#include "../amqp_fixtures.h"
#include "amqpc_int.h"

static bool str_is(struct amqpc_str s, const char *want) {
    return s.p && s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

Test(amqpc_msg, received_values_fold_into_the_project_kinds) {
    amqp_field_value_t f[] = {
        {.kind = AMQP_FIELD_KIND_I8, .value.i8 = -8},
        {.kind = AMQP_FIELD_KIND_U32, .value.u32 = 4000000000u},
        {.kind = AMQP_FIELD_KIND_I64, .value.i64 = -5000000000ll},
        {.kind = AMQP_FIELD_KIND_U64, .value.u64 = 18446744073709551615ull},
        {.kind = AMQP_FIELD_KIND_TIMESTAMP, .value.u64 = 1700000000},
        {.kind = AMQP_FIELD_KIND_F32, .value.f32 = 1.5f},
        {.kind = AMQP_FIELD_KIND_BOOLEAN, .value.boolean = 1},
        {.kind = AMQP_FIELD_KIND_VOID},
        {.kind = AMQP_FIELD_KIND_DECIMAL},
    };
    struct amqpc_value v;

    amqpc_value_of(&f[0], &v);
    cr_assert(v.kind == AMQPC_V_INT && v.v.i == -8);
    amqpc_value_of(&f[1], &v);
    cr_assert(v.kind == AMQPC_V_INT && v.v.i == 4000000000ll);
    amqpc_value_of(&f[2], &v);
    cr_assert(v.kind == AMQPC_V_INT && v.v.i == -5000000000ll);
    amqpc_value_of(&f[3], &v);
    cr_assert(v.kind == AMQPC_V_UINT && v.v.u == 18446744073709551615ull);
    amqpc_value_of(&f[4], &v);
    cr_assert(v.kind == AMQPC_V_TIMESTAMP && v.v.i == 1700000000);
    amqpc_value_of(&f[5], &v);
    cr_assert(v.kind == AMQPC_V_FLOAT && v.v.f == 1.5);
    amqpc_value_of(&f[6], &v);
    cr_assert(v.kind == AMQPC_V_BOOL && v.v.b);
    amqpc_value_of(&f[7], &v);
    cr_assert_eq(v.kind, AMQPC_V_VOID);
    amqpc_value_of(&f[8], &v);
    cr_assert_eq(v.kind, AMQPC_V_OTHER);
}

Test(amqpc_msg, nested_tables_and_arrays_are_read_through_views) {
    amqp_table_entry_t inner[] = {entry("a", text("b"))};
    amqp_field_value_t items[] = {text("x"), {.kind = AMQP_FIELD_KIND_I16, .value.i16 = 7}};
    amqp_table_entry_t all[] = {
        entry("t", (amqp_field_value_t){.kind = AMQP_FIELD_KIND_TABLE,
                                        .value.table = {.num_entries = 1, .entries = inner}}),
        entry("l", (amqp_field_value_t){.kind = AMQP_FIELD_KIND_ARRAY,
                                        .value.array = {.num_entries = 2, .entries = items}}),
    };
    amqp_table_t raw = {.num_entries = 2, .entries = all};
    struct amqpc_table t = {&raw, 2};
    struct amqpc_str name;
    struct amqpc_value v, w;

    amqpc_table_get(&t, 0, &name, &v);
    cr_assert(str_is(name, "t"));
    cr_assert(v.kind == AMQPC_V_TABLE && v.v.t.n == 1);
    amqpc_table_get(&v.v.t, 0, &name, &w);
    cr_assert(str_is(name, "a") && w.kind == AMQPC_V_STRING && str_is(w.v.s, "b"));
    amqpc_table_get(&t, 1, &name, &v);
    cr_assert(v.kind == AMQPC_V_ARRAY && v.v.t.n == 2);
    amqpc_array_get(&v.v.t, 1, &w);
    cr_assert(w.kind == AMQPC_V_INT && w.v.i == 7);
}

Test(amqpc_msg, values_to_send_keep_their_kind) {
    struct amqpc_value small = {.kind = AMQPC_V_INT, .v.i = 3};
    struct amqpc_value big = {.kind = AMQPC_V_INT, .v.i = 1ll << 40};
    struct amqpc_value s = amqpc_string("hi");
    amqp_field_value_t f;

    amqpc_field_of(&small, &f);
    cr_assert(f.kind == AMQP_FIELD_KIND_I32 && f.value.i32 == 3);
    amqpc_field_of(&big, &f);
    cr_assert(f.kind == AMQP_FIELD_KIND_I64 && f.value.i64 == 1ll << 40);
    amqpc_field_of(&s, &f);
    cr_assert(f.kind == AMQP_FIELD_KIND_UTF8 && f.value.bytes.len == 2 &&
              memcmp(f.value.bytes.bytes, "hi", 2) == 0);
}

Test(amqpc_msg, received_properties_name_what_is_present) {
    amqp_table_entry_t h[] = {entry("x-a", text("1"))};
    amqp_basic_properties_t p;
    struct amqpc_props out;

    memset(&p, 0, sizeof(p));
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
               AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    p.content_type = amqp_cstring_bytes("application/json");
    p.correlation_id = amqp_cstring_bytes("c-1");
    p.message_id = amqp_cstring_bytes("not sent: its flag is off");
    p.timestamp = 42;
    p.delivery_mode = 2;
    p.headers = (amqp_table_t){1, h};
    amqpc_props_of(&p, &out);
    cr_assert(str_is(out.content_type, "application/json"));
    cr_assert(str_is(out.correlation_id, "c-1"));
    cr_assert_null(out.message_id.p);
    cr_assert_null(out.reply_to.p);
    cr_assert_null(out.expiration.p);
    cr_assert(out.has_timestamp && out.timestamp == 42);
    cr_assert_eq(out.delivery_mode, 2);
    cr_assert_eq(out.headers.n, 1);
    amqpc_props_of(NULL, &out);
    cr_assert(out.headers.n == 0 && !out.has_timestamp && !out.content_type.p);
}

Test(amqpc_msg, a_publish_sends_only_what_it_names) {
    struct amqpc_header hd[] = {{"x-fpesa-header-A", amqpc_string("b")}};
    struct amqpc_out m = {.exchange = "e",
                          .content_type = "text/plain",
                          .expiration = "1500",
                          .delivery_mode = 1,
                          .headers = hd,
                          .n_headers = 1};
    amqp_basic_properties_t p;
    amqp_table_entry_t e[4];

    cr_assert_eq(amqpc_props_build(&m, &p, e, 4), 0);
    cr_assert_eq(p._flags, AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_EXPIRATION_FLAG |
                               AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG);
    cr_assert(p.expiration.len == 4 && memcmp(p.expiration.bytes, "1500", 4) == 0);
    cr_assert_eq(p.delivery_mode, 1);
    cr_assert_eq(p.headers.num_entries, 1);
    cr_assert_eq(amqpc_props_build(&m, &p, e, 0), -1, "more headers than room is refused");
}

/* A dead letter: every property of the delivery, its headers but the
 * dropped ones, and the new ones last. */
Test(amqpc_msg, a_dead_letter_keeps_the_delivery_and_replaces_its_reason) {
    amqp_table_entry_t old[] = {
        entry("x-keep", text("k")),
        entry("x-fpesa-death-reason", text("earlier")),
        entry("x-fpesa-crashes", (amqp_field_value_t){.kind = AMQP_FIELD_KIND_I32, .value.i32 = 2}),
    };
    static const char *const drop[] = {"x-fpesa-death-reason", "x-fpesa-crashes"};
    struct amqpc_header hd[] = {{"x-fpesa-death-reason", amqpc_string("rejected")}};
    amqp_envelope_t raw;
    struct amqpc_envelope env = {0};
    struct amqpc_out m = {.exchange = "q.dlq",
                          .base = &env,
                          .drop = drop,
                          .n_drop = 2,
                          .delivery_mode = 2,
                          .headers = hd,
                          .n_headers = 1};
    amqp_basic_properties_t p;
    amqp_table_entry_t e[8];

    memset(&raw, 0, sizeof(raw));
    raw.message.properties._flags =
        AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    raw.message.properties.message_id = amqp_cstring_bytes("m-1");
    raw.message.properties.delivery_mode = 1;
    raw.message.properties.headers = (amqp_table_t){3, old};
    env.impl = &raw;
    cr_assert_eq(amqpc_props_build(&m, &p, e, 8), 0);
    cr_assert(p._flags & AMQP_BASIC_MESSAGE_ID_FLAG);
    cr_assert(p.message_id.len == 3 && memcmp(p.message_id.bytes, "m-1", 3) == 0);
    cr_assert_eq(p.delivery_mode, 2);
    cr_assert_eq(p.headers.num_entries, 2);
    cr_assert(p.headers.entries[0].key.len == 6 &&
              memcmp(p.headers.entries[0].key.bytes, "x-keep", 6) == 0);
    cr_assert(p.headers.entries[1].value.kind == AMQP_FIELD_KIND_UTF8 &&
              p.headers.entries[1].value.value.bytes.len == 8 &&
              memcmp(p.headers.entries[1].value.value.bytes.bytes, "rejected", 8) == 0);
    cr_assert_eq(raw.message.properties.headers.num_entries, 3, "the delivery is left as it was");
}
