/* Header tables as the AMQP library decodes them, for the unit tests of
 * what reads them (the bus client and the handler host's headers). */
#ifndef FPESA_TESTS_AMQP_FIXTURES_H
#define FPESA_TESTS_AMQP_FIXTURES_H

#include <amqp.h>

static inline amqp_table_entry_t entry(const char *key, amqp_field_value_t v) {
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes(key);
    e.value = v;
    return e;
}

static inline amqp_field_value_t text(const char *s) {
    amqp_field_value_t v;
    v.kind = AMQP_FIELD_KIND_UTF8;
    v.value.bytes = amqp_cstring_bytes(s);
    return v;
}

#endif
