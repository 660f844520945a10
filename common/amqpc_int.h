/* The inside of the shared bus client (amqpc.h): what amqpc.c and
 * amqpc_msg.c share, and what the unit tests reach. Nothing outside
 * common/amqpc*.c includes it. */
#ifndef FPESA_COMMON_AMQPC_INT_H
#define FPESA_COMMON_AMQPC_INT_H

#include <amqp.h>

#include "amqpc.h"

struct amqpc_conn {
    amqp_connection_state_t st;
};

/* The text of a reply, for the logs: "ok", a library error, or the broker's
 * "connection closed by broker: 320 CONNECTION_FORCED - ..." /
 * "channel closed by broker: 404 NOT_FOUND - ...". Returns buf. */
const char *amqpc_reply_text(amqp_rpc_reply_t r, char *buf, size_t len);

/* 0 when the last synchronous method on conn succeeded; else logs
 * "bus <what> failed name=<name>: <reason>" at level warn and returns -1. */
int amqpc_check(struct amqpc_conn *conn, const char *what, const char *name);

/* A received value in the project's terms. */
void amqpc_value_of(const amqp_field_value_t *f, struct amqpc_value *out);

/* A value to send in the library's terms (strings borrowed). */
void amqpc_field_of(const struct amqpc_value *v, amqp_field_value_t *out);

/* The properties of a received message in the project's terms (borrowed
 * from p). */
void amqpc_props_of(const amqp_basic_properties_t *p, struct amqpc_props *out);

/* The properties and headers m asks for: p, with its header entries in e
 * (cap of them). Returns 0, or -1 when there are more headers than cap. */
int amqpc_props_build(const struct amqpc_out *m, amqp_basic_properties_t *p, amqp_table_entry_t *e,
                      size_t cap);

#endif
