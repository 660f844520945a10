/* A message's AMQP header table as the plugin ABI's name/value pairs
 * (struct fpesa_message's headers and n_headers). */
#ifndef HOST_HEADERS_H
#define HOST_HEADERS_H

#include <stddef.h>

#include "amqpc.h"

/* Converts t (borrowed; NULL is an empty table) into a new array name, value, ..., NULL of 2 * *n +
 * 1 pointers (caller frees with headers_free(*out, *n)). Strings and byte arrays are copied as they
 * are, numbers and booleans printed, tables and arrays written as JSON, void as "". A table without
 * entries gives *n 0 and an array holding only the NULL. Returns 0, or -1 when out of memory
 * (nothing to free then). */
int headers_from_amqp(const struct amqpc_table *t, char ***out, size_t *n);

/* Frees what headers_from_amqp() made (taken); h may be NULL. */
void headers_free(char **h, size_t n);

#endif
